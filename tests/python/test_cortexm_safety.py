"""`prog.run_qemu`: the device refuses what the host refuses, samples are checked before QEMU
starts, and the device's numbers (losses, parameters, accuracy counts) equal the host's."""

import numpy as np
import pytest
import torch

import tinytrain
from tinytrain.models import small_cnn

CLASSES = 4


@pytest.fixture(scope="module")
def m4(tmp_path_factory):
    torch.manual_seed(0)
    model = small_cnn(num_classes=CLASSES, in_channels=1, width=4).eval()
    return tinytrain.compile(model, torch.randn(1, 1, 12, 12), lr=0.05, target="cortex-m4",
                             build_dir=tmp_path_factory.mktemp("m4"))


def test_device_refuses_label_equal_to_class_count(m4, tmp_path):
    """The boundary: label == number of classes is one past the logits. The Python check is
    bypassed, so the C runtime itself must refuse it (label 3 = classes - 1 is accepted)."""
    from tinytrain.lowering.cortexm.firmware import run_qemu

    xs = torch.randn(2, 1, 12, 12)
    nhwc = [xs[i:i + 1].permute(0, 2, 3, 1).contiguous().numpy() for i in range(2)]
    res = run_qemu(m4.firmware, tmp_path, train=(nhwc, [CLASSES - 1, CLASSES]))
    assert "STEP 0 " in res.output, res.output[-2000:]  # label classes-1 trained
    assert res.returncode != 0, res.output[-2000:]
    assert "TT error tt_train_step: " in res.output and "STEP 1 " not in res.output
    with pytest.raises(ValueError, match=f"label {CLASSES} is outside the class range"):
        m4.run_qemu(train=(xs, [CLASSES - 1, CLASSES]), workdir=tmp_path)


def _no_qemu(monkeypatch):
    import tinytrain.lowering.cortexm.firmware as fwmod

    def refuse(*a, **k):
        raise AssertionError("QEMU was started with samples the host API refuses")

    monkeypatch.setattr(fwmod, "run_qemu", refuse)


@pytest.mark.parametrize("images, labels, exc, match", [
    (torch.randn(3, 1, 12, 12), torch.tensor([1.7, 2.2, 3.9]), ValueError, r"3 integer class indices .*float32"),
    (torch.randn(3, 1, 12, 12), torch.tensor([1]), ValueError, r"3 integer class indices .*\(1,\)"),
    (torch.randn(1, 1, 12, 12), torch.tensor([1, 2, 3]), ValueError, r"1 integer class indices .*\(3,\)"),
    (torch.randn(2, 1, 10, 10), torch.tensor([1, 2]), ValueError, r"images must be \[K, 1, 12, 12\].*\[2, 1, 10, 10\]"),
    (torch.randn(2, 12, 12, 1), torch.tensor([1, 2]), ValueError, r"images must be \[K, 1, 12, 12\]"),
    (torch.randn(1, 12, 12), torch.tensor([1]), ValueError, r"images must be \[K, 1, 12, 12\]"),
    (np.zeros((2, 1, 12, 12), np.uint8), torch.tensor([1, 2]), TypeError, r"floating-point values, got uint8"),
    (torch.randn(2, 1, 12, 12), torch.tensor([1, -1]), ValueError, r"label -1 is outside"),
    (torch.randn(2, 1, 12, 12), torch.tensor([1, 4]), ValueError, r"label 4 is outside"),
])
@pytest.mark.parametrize("which", ["train", "evaluate"])
def test_run_qemu_checks_samples_like_the_host_api_before_qemu(m4, monkeypatch, tmp_path, images,
                                                               labels, exc, match, which):
    _no_qemu(monkeypatch)
    with pytest.raises(exc, match=match):
        m4.run_qemu(**{which: (images, labels)}, workdir=tmp_path)


def test_qemu_losses_parameters_and_accuracy_equal_the_host(m4, tmp_path, monkeypatch):
    """Step by step: the device's loss and trained parameters vs the host program's, and the
    accuracy counts vs the host's predictions before and after (a relative work folder)."""
    g = torch.Generator().manual_seed(11)
    xs = torch.randn(5, 1, 12, 12, generator=g) * 2
    ys = torch.tensor([0, 1, 2, 3, 1])
    ex = torch.randn(6, 1, 12, 12, generator=g)
    ey = torch.tensor([0, 1, 2, 3, 0, 1])
    monkeypatch.chdir(tmp_path)
    initial = m4.state_dict()
    res = m4.run_qemu(train=(xs, ys), evaluate=(ex, ey), workdir="run")
    assert res.returncode == 0, res.output[-2000:]
    assert len(res.steps) == len(res.trace) == 5

    def correct():
        return sum(int(np.argmax(m4.predict(ex[i:i + 1])[0]) == ey[i]) for i in range(len(ey)))

    try:
        assert res.evals["before"] == (correct(), 6)
        for i, ((dev_params, dev_loss), (loss, _)) in enumerate(zip(res.trace, res.steps)):
            host_loss = m4.train_step(xs[i:i + 1], ys[i:i + 1])
            assert dev_loss == loss
            assert abs(loss - host_loss) <= 1e-6 * max(1.0, abs(host_loss)), (i, loss, host_loss)
            for k, dev, host in zip(m4.trainable, dev_params, m4.program_params()):
                assert np.abs(dev - host).max() <= 1e-6 * max(1.0, np.abs(host).max()), (i, k)
        assert res.evals["after"] == (correct(), 6)
    finally:
        m4.load_state_dict(initial)


def test_failed_firmware_build_leaves_no_build_folder(tmp_path):
    out = tmp_path / "new" / "m4"
    with pytest.raises(tinytrain.CompileError) as e:
        tinytrain.compile(small_cnn(num_classes=4, in_channels=1, width=4).eval(),
                          torch.randn(1, 1, 12, 12), target="cortex-m4", sram_kb=1, build_dir=out)
    assert e.value.stage == "memory-plan"
    assert not out.exists()
