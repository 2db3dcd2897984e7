"""The front half's linalg (`tinytrain.compile(...).stages["linalg"]`) trained on Cortex-M.

small_cnn (conv-bn-relu, depthwise conv + ReLU6, 1x1 conv, global pool, linear) with the first
layer frozen (its folded weights become flash constants) runs N training steps on both QEMU
boards; parameters and loss after each step equal the host llvm-cpu .vmfb to 1e-6 (bit-exact
on the Cortex-M4). Evaluation accuracy before/after training is counted on the device.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_reference as reference  # noqa: E402
from tinytrain.lowering.cortexm import firmware  # noqa: E402

STEPS = 3


@pytest.fixture(scope="module")
def program():
    import torch

    from tinytrain.models import small_cnn

    torch.manual_seed(0)
    prog = reference.compile_linalg(small_cnn().eval(), torch.randn(1, 1, 16, 16),
                                    trainable=["3.weight", "3.bias", "6.weight", "6.bias", "10.weight",
                                               "10.bias"], lr=0.05)
    params = [p.copy() for p in prog.program_params()]
    rng = np.random.default_rng(5)
    xs = rng.standard_normal((STEPS, 1, 16, 16, 1)).astype(np.float32)
    ys = [int(v) for v in rng.integers(0, 10, STEPS)]
    text = prog.stages["linalg"]
    host = reference.HostModule(reference.compile_vmfb(text))
    return text, params, xs, ys, host, host.train(params, xs, ys)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
def test_small_cnn_trains_on_device_like_host(program, tmp_path, target):
    text, params, xs, ys, host, ref = program
    fw = firmware.compile_firmware(text, tmp_path, target=target, params=params, prefix="scnn")
    assert fw.module.pool_bytes > 0  # the frozen first layer lives in flash
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys), evaluate=(xs, ys), timeout=60)
    assert res.returncode == 0, res.output
    assert len(res.trace) == STEPS
    reference.assert_trace_matches(res.trace, ref, target)
    # Accuracy on the device equals the host's predictions before and after training.
    for tag, p in (("before", params), ("after", ref[-1][0])):
        correct = sum(int(np.argmax(host.predict(p, x))) == y for x, y in zip(xs, ys))
        assert res.evals[tag] == (correct, STEPS), tag
    assert res.mem["sram_peak"] <= 256 * 1024


FASHION = Path("/usr/share/datasets/fashion-mnist")


def _fashion(split: str, n: int):
    import gzip

    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FASHION / f"{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    with gzip.open(FASHION / f"{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return (x.astype(np.float32) / 255.0 - 0.5)[:, None, :, :, None], [int(v) for v in y]


@pytest.mark.skipif(not FASHION.exists(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_300_steps_stay_bit_exact_on_m4(tmp_path):
    """300 steps on real offline data streamed from host files: the Cortex-M4 parameters stay
    bit-identical to the host .vmfb's at every step, and on-device accuracy counts equal the
    host's predictions before and after."""
    import torch

    from tinytrain.models import small_cnn

    torch.manual_seed(0)
    prog = reference.compile_linalg(small_cnn().eval(), torch.randn(1, 1, 28, 28), trainable="all", lr=0.05)
    params = [p.copy() for p in prog.program_params()]
    xs, ys = _fashion("train", 300)
    ex, ey = _fashion("test", 50)
    text = prog.stages["linalg"]
    fw = firmware.compile_firmware(text, tmp_path, params=params, prefix="fmnist")
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys), evaluate=(ex, ey), timeout=120)
    assert res.returncode == 0, res.output
    host = reference.HostModule(reference.compile_vmfb(text))
    ref = host.train(params, xs, ys)
    assert len(res.trace) == len(ref) == 300
    for step, ((dp, dl), (rp, rl)) in enumerate(zip(res.trace, ref)):
        assert dl == rl, step
        assert all(np.array_equal(d, r) for d, r in zip(dp, rp)), step
    assert any(not np.array_equal(a, b) for a, b in zip(ref[-1][0], params))
    for tag, p in (("before", params), ("after", ref[-1][0])):
        correct = sum(int(np.argmax(host.predict(p, x))) == y for x, y in zip(ex, ey))
        assert res.evals[tag] == (correct, 50), tag


def test_stack_overflow_past_the_reserve_faults_at_run_time(program, tmp_path):
    """QEMU has 4 MB of RAM: the MPU guard below the stack reserve turns an overflow into a
    fault (exit 121) instead of a silent write past the budget."""
    text, params, xs, ys, _, _ = program
    fw = firmware.compile_firmware(text, tmp_path / "ok", params=params, prefix="scnn")
    ok = firmware.run_qemu(fw, tmp_path / "run_ok", train=(xs[:1], ys[:1]))
    assert ok.returncode == 0, ok.output
    peak = ok.mem["stack_peak"]
    small = (peak - 1) // 1024 * 1024  # the largest 1 KB multiple the stack does not fit in
    if small == 0:
        pytest.fail(f"stack peak {peak} B is below 1 KB; this model cannot exercise the guard")
    fw = firmware.compile_firmware(text, tmp_path / "small", params=params, prefix="scnn",
                                   stack_bytes=small)
    bad = firmware.run_qemu(fw, tmp_path / "run_bad", train=(xs[:1], ys[:1]))
    assert bad.returncode == 121, bad.output
    assert "FAULT" in bad.output and "TT done" not in bad.output


@pytest.fixture(scope="module")
def mobilenet():
    import torch

    from tinytrain.models import mobilenet_v2

    torch.manual_seed(0)
    prog = reference.compile_linalg(mobilenet_v2(0.35).eval(), torch.randn(1, 3, 64, 64),
                                    trainable=["classifier.weight", "classifier.bias"], lr=0.01)
    params = [p.copy() for p in prog.program_params()]
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((2, 1, 64, 64, 3)).astype(np.float32)
    ys = [3, 8]
    text = prog.stages["linalg"]
    ref = reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)
    return text, params, xs, ys, ref


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
def test_mobilenet_v2_w035_64x64_trains_on_both_boards(mobilenet, tmp_path, target):
    """The foundation issue's MobileNetV2-w0.35 at 64x64 (classifier trained, 1.5 MB of frozen
    weights in flash). With fp32 activations its working set does not fit 256 KB: the compiler
    says so; with a 512 KB budget (QEMU maps 4 MB) it trains like the host. (The whole network:
    its flash and SRAM sizes are the point.)"""
    from tinytrain.lowering.cortexm import iree_static

    text, params, xs, ys, ref = mobilenet
    module = iree_static.build_static_module(text, tmp_path / "m", target=target, prefix="mbv2",
                                             state_init=params, sram_bytes=None)
    assert module.pool_bytes > 1_000_000
    with pytest.raises(iree_static.SramBudgetError, match="262144 available"):
        module.check_sram(256 * 1024)
    fw = firmware.build_firmware(module, tmp_path / "fw", board=firmware.TARGET_BOARD[target],
                                 sram_kb=512)
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys), timeout=120)
    assert res.returncode == 0, res.output
    assert len(res.trace) == 2
    reference.assert_trace_matches(res.trace, ref, target)
    plan = module.planned_peak()
    assert abs(res.mem["sram_peak"] - plan) <= 0.05 * plan, (res.mem, plan)
