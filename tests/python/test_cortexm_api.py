"""`tinytrain.compile(..., target="cortex-m4")`: firmware from the public API, run in QEMU."""

import numpy as np
import pytest
import torch

import tinytrain
from tinytrain.models import small_cnn


@pytest.fixture(scope="module")
def m4(tmp_path_factory):
    torch.manual_seed(0)
    model = small_cnn(num_classes=4, in_channels=1, width=4).eval()
    return tinytrain.compile(model, torch.randn(1, 1, 12, 12), lr=0.05, target="cortex-m4",
                             build_dir=tmp_path_factory.mktemp("m4"))


def test_compile_for_cortex_m4_trains_in_qemu_like_the_host(m4, tmp_path):
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(6, 1, 12, 12, generator=g)
    ys = torch.tensor([0, 1, 2, 3, 0, 1])
    res = m4.run_qemu(train=(xs, ys), evaluate=(xs, ys), workdir=tmp_path)
    assert res.returncode == 0, res.output[-2000:]
    host_losses = [m4.train_step(xs[i:i + 1], ys[i:i + 1]) for i in range(6)]
    assert np.allclose([l for l, _ in res.steps], host_losses, rtol=0, atol=1e-6)
    assert res.mem["sram_peak"] <= 256 * 1024
    assert set(res.evals) == {"before", "after"}


def test_device_refuses_a_label_outside_the_class_range(m4, tmp_path):
    xs = torch.randn(2, 1, 12, 12)
    res = m4.run_qemu(train=(xs, np.array([1, 3])), workdir=tmp_path)  # valid: runs
    assert res.returncode == 0
    # Bypass the Python-side check: the runtime itself must refuse label 7 of 4 classes.
    from tinytrain.lowering.cortexm.firmware import run_qemu

    nhwc = [xs[i:i + 1].permute(0, 2, 3, 1).numpy() for i in range(2)]
    res = run_qemu(m4.firmware, tmp_path, train=(nhwc, [1, 7]))
    assert res.returncode != 0
    assert "TT error tt_train_step: " in res.output and "STEP 1 " not in res.output
    with pytest.raises(ValueError, match="label 7 is outside"):
        m4.run_qemu(train=(xs, [1, 7]), workdir=tmp_path)


def test_relative_build_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prog = tinytrain.compile(small_cnn(num_classes=3, in_channels=1, width=4).eval(), torch.randn(1, 1, 8, 8),
                             target="cortex-m7", build_dir="rel/m7")
    assert prog.firmware.elf.is_file() and prog.firmware.elf.is_absolute()


def test_device_targets_need_batch_one():
    with pytest.raises(ValueError, match="batch size 1"):
        tinytrain.compile(small_cnn(in_channels=1).eval(), torch.randn(2, 1, 8, 8), target="cortex-m7")


def test_over_budget_model_is_a_compile_error_naming_the_bytes(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1 * 120 * 120, 4)).eval()
    with pytest.raises(tinytrain.CompileError) as e:
        tinytrain.compile(model, torch.randn(1, 1, 120, 120), target="cortex-m4", sram_kb=64,
                          build_dir=tmp_path)
    assert e.value.stage == "memory-plan"
    assert "needs" in str(e.value) and "65536" in str(e.value)


def test_small_lr_on_cortex_m4_updates_like_the_host(tmp_path):
    """lr=1e-05 (once unparsable IR: `1e-05` is no MLIR float literal) compiles for the device;
    the device's losses and parameters after each step agree with the host program's (1e-6,
    as every device test) and the parameters moved by about lr * grad."""
    torch.manual_seed(0)
    model = small_cnn(num_classes=4, in_channels=1, width=4).eval()
    prog = tinytrain.compile(model, torch.randn(1, 1, 8, 8), lr=1e-5, target="cortex-m4",
                             build_dir=tmp_path / "fw")
    assert "lr = 9.99999974E-6 : f32" in prog.stages["autodiff"]
    start = [p.copy() for p in prog.program_params()]
    xs, ys = torch.randn(2, 1, 8, 8), torch.tensor([1, 3])
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    assert len(res.trace) == 2
    for i in range(2):
        loss = prog.train_step(xs[i:i + 1], ys[i:i + 1])
        dev_params, dev_loss = res.trace[i]
        assert abs(dev_loss - loss) <= 1e-6
        for d, h in zip(dev_params, prog.program_params()):
            np.testing.assert_allclose(d, h, rtol=0, atol=1e-6)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(prog.program_params(), start))
    assert 0 < moved < 1e-3, moved  # two steps of lr=1e-5 times gradients of order 1
