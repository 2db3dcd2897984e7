"""The int8 training step (int8 forward, fp32 backward, QAS, integer write-back and an fp32
master copy) on the emulated Cortex-M boards gives the host program's parameters.

Backbone: the first 3 blocks of the pretrained MobileNetV2-w0.35 at 32x32 with a new 4-class
fp32 head; trained: int8 pointwise weights written back with rounding (one of them also read by the input
gradient: the tied-argument hazard), a depthwise weight kept as an fp32 master copy, int32
biases and the head. `tinytrain.int8.compile_training(...,
target=...)` builds the host `.vmfb` and the firmware; the firmware trains STEPS samples and
its trace (the state after every step) is compared with the host's steps.

Integer state (int8 weights, int32 biases): exactly the host's, on both boards, compared with
the program's own host `.vmfb` and, on the M4, with the same program built for a generic x86 CPU
(no fused multiply-add, like the M4: `tests/firmware/cortexm_reference.py`). Float state (master
copy, head) and losses: within 1e-6 (relative to the tensor's largest value) of both. Observed
when written: on the M4 the float state equals the generic build bit for bit here, the loss
differs from it by 1 ulp at one step (the fp32 head's reduction order differs between the x86 and
the Cortex-M kernels); in a 6-block 48x48 variant the head differed by up to 6e-8 after 30 steps
while every integer stayed equal. The integer write-back amplifies any error of the fp32 update
(QAS scales the gradient of an int32 bias by (s_W s_x)^-2), so exact integers are a strong check.
"""

import numpy as np
import pytest

from tinytrain import reference as R
from tinytrain.int8 import compile_training
from tinytrain.lowering.host.iree_host import HostModule
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate

HW, BLOCKS, CLASSES, STEPS, LR = 32, 3, 4, 6, 0.05
MASTER = "blocks.2.depthwise.weight"
# blocks.2.pointwise2.weight: an int8 weight updated in place whose input gradient is needed too
# (the layers before it train): IREE's tied-argument hazard (to-linalg's `order_tied_reads`).
TRAINABLE = ["blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", MASTER,
             "blocks.2.depthwise.bias", "blocks.2.pointwise2.weight", "blocks.2.pointwise2.bias",
             "fc.weight", "fc.bias"]


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
    assert dtypes == ["int8", "int32", "float32", "int32", "int8", "int32", "float32", "float32"], dtypes
    mine = host_trace(prog.host.call, prog.initial_params(), xs, ys)
    ref = host_trace(generic_host(prog).call, prog.initial_params(), xs, ys) if target == "cortex-m4" else mine
    changed = set()
    for step, ((dev, dev_loss), (want, want_loss), (own, own_loss)) in enumerate(zip(res.trace, ref, mine)):
        for name, d, w, o, p0 in zip(prog.trainable, dev, want, own, prog.initial_params()):
            assert d.dtype == w.dtype and d.shape == w.shape, name
            if not np.array_equal(d, p0):
                changed.add(name)
            if d.dtype != np.float32:  # integer state: exactly the host's
                np.testing.assert_array_equal(d, w, err_msg=f"step {step} {name}")
                np.testing.assert_array_equal(d, o, err_msg=f"step {step} {name} vs host .vmfb")
            else:
                for h, what in ((w, "reference build"), (o, "host .vmfb")):
                    np.testing.assert_allclose(d, h, rtol=0, atol=1e-6 * max(1.0, float(np.abs(h).max())),
                                               err_msg=f"step {step} {name} vs {what}")
        for h in (want_loss, own_loss):
            assert abs(dev_loss - h) <= 1e-6 * max(1.0, abs(h)), (step, dev_loss, h)
    # every kind of state is really trained (int8 write-back, int32 biases, master copy, head)
    assert {"blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", MASTER, "blocks.2.pointwise2.weight",
            "fc.weight"} <= changed, changed
    # SRAM: planned by the compiler, measured by the firmware
    plan = prog.planned_sram()
    assert plan["total"] <= 256 * 1024 and 0 < res.mem["sram_peak"] <= plan["total"]
    # the stack reserve: the linked firmware's worst-case stack (lowering/cortexm/stack_bound.py)
    # + margin in whole KB, at least what the device measured by painting
    fw = prog.firmware
    assert res.mem["stack_reserved"] == fw.stack_bytes == fw.module.stack_reserve, (res.mem, fw.stack_bytes)
    assert 0 < res.mem["stack_peak"] <= fw.stack_bound < fw.stack_bytes, (res.mem, fw.stack_bound)
