"""The int8 training step (int8 forward, fp32 backward, QAS, integer write-back and an fp32
master copy) on the emulated Cortex-M boards gives the host program's parameters.

Backbone: the first 3 blocks of the pretrained MobileNetV2-w0.35 at 32x32 with a new 4-class
fp32 head; trained: an int8 pointwise weight written back with rounding, a depthwise weight kept
as an fp32 master copy, int32 biases and the head. `tinytrain.int8.compile_training(...,
target=...)` builds the host `.vmfb` and the firmware; the firmware trains STEPS samples and
its trace (the state after every step) is compared with the host's steps.

Cortex-M4: bit for bit equal, integer and float state, to the same program built for a generic
x86 CPU (no fused multiply-add, like the M4: see `tests/firmware/cortexm_reference.py`). The
Cortex-M7 code and the host `.vmfb` for this machine contract multiply-adds: float state within
1e-6 of the program's own host steps; the integer state is compared exactly too (see the test).
"""

import numpy as np
import pytest

from tinytrain import reference as R
from tinytrain.int8 import compile_training
from tinytrain.lowering.host.iree_host import HostModule
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate

HW, BLOCKS, CLASSES, STEPS, LR = 32, 3, 4, 4, 0.05
MASTER = "blocks.2.depthwise.weight"
TRAINABLE = ["blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", MASTER,
             "blocks.2.depthwise.bias", "blocks.2.pointwise2.bias", "fc.weight", "fc.bias"]


def program(target, build_dir):
    model = truncate(load_mcu_model("mbv2-w0.35"), BLOCKS)
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0,
                      master_weights=[MASTER])
    return model, compile_training(g, TRAINABLE, lr=LR, target=target, build_dir=build_dir)


def samples(model, n, seed):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, HW, HW, 3)).astype(np.uint8)
    return R.preprocess(rgb, model.first_conv.x_scale, model.first_conv.x_zero), \
        rng.integers(0, CLASSES, n).astype(np.int32)


def generic_host(prog) -> HostModule:
    """The same linalg program for a generic x86 CPU (the M4's reference), f64 kept."""
    import iree.compiler as ireec

    return HostModule(ireec.compile_str(prog.stages["linalg"], target_backends=["llvm-cpu"], extra_args=[
        "--iree-llvmcpu-target-cpu=generic", *prog.cortexm_flags, "--iree-opt-const-eval=false"]))


def host_trace(call, params, xs, ys):
    out = []
    for i in range(len(xs)):
        res = call("train_step", *params, xs[i:i + 1], ys[i:i + 1])
        params = [np.asarray(r) for r in res[:-1]]
        out.append((params, float(res[-1])))
    return out


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
def test_int8_training_steps_on_device_equal_host(target, tmp_path):
    model, prog = program(target, tmp_path / "fw")
    xs, ys = samples(model, STEPS, 1)
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    assert len(res.trace) == STEPS and len(res.steps) == STEPS
    dtypes = [s["dtype"] for s in prog.firmware.state]
    assert dtypes == ["int8", "int32", "float32", "int32", "int32", "float32", "float32"], dtypes
    mine = host_trace(prog.host.call, prog.initial_params(), xs, ys)
    ref = host_trace(generic_host(prog).call, prog.initial_params(), xs, ys) if target == "cortex-m4" else mine
    changed = set()
    for step, ((dev, dev_loss), (want, want_loss), (own, _)) in enumerate(zip(res.trace, ref, mine)):
        for name, d, w, o, p0 in zip(prog.trainable, dev, want, own, prog.initial_params()):
            assert d.dtype == w.dtype and d.shape == w.shape, name
            if not np.array_equal(d, p0):
                changed.add(name)
            if target == "cortex-m4" or d.dtype != np.float32:
                # M4: bit-exact. M7: the integer state equals the host's exactly (observed; the
                # write-back rounds an fp32 update whose FMA-level differences stay far from .5)
                np.testing.assert_array_equal(d.view(np.uint8), w.view(np.uint8), err_msg=f"step {step} {name}")
            else:
                np.testing.assert_allclose(d, w, rtol=0, atol=1e-6 * max(1.0, float(np.abs(w).max())),
                                           err_msg=f"step {step} {name}")
            # the program's own host build (FMA) stays within 1e-6 (float) of the device
            np.testing.assert_allclose(d.astype(np.float64), o.astype(np.float64), rtol=0,
                                       atol=1e-6 * max(1.0, float(np.abs(o).max())) if d.dtype == np.float32 else 1,
                                       err_msg=f"step {step} {name} vs host .vmfb")
        if target == "cortex-m4":
            assert np.float32(dev_loss).view(np.uint32) == np.float32(want_loss).view(np.uint32), step
        else:
            assert abs(dev_loss - want_loss) <= 1e-6 * max(1.0, abs(want_loss)), step
    # every kind of state is really trained (int8 write-back, int32 biases, master copy, head)
    assert {"blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", MASTER, "fc.weight"} <= changed, changed
    # SRAM: planned by the compiler, measured by the firmware
    plan = prog.planned_sram()
    assert plan["total"] <= 256 * 1024 and 0 < res.mem["sram_peak"] <= plan["total"]
