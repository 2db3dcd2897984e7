"""Our int8 kernels entering through IREE (issue #10), in QEMU on the Cortex-M4 and the Cortex-M7:
- a one-layer program whose pointwise conv is a `flow.dispatch` of a `stream.executable` calling
  `ttk_iree_conv1x1_s8` (`hal.import.static`, runtime/kernels/src/ttk_iree.c linked into the
  firmware) gives exactly the output of the same layer compiled by IREE from linalg
  (`linalg.quantized_matmul` + the requantization generic) and of the numpy oracle;
- a whole int8 backbone lowered with `to-linalg{kernels=ttk}` (pointwise and depthwise convs
  as dispatches of our kernels) gives the logits of the same backbone with IREE's kernels;
- a whole int8 training step built by `tinytrain.int8.compile_training(..., kernels="ttk")` gives
  exactly the state and loss of the same program with IREE's kernels."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "firmware"))
sys.path.insert(0, str(ROOT / "bench"))

import iree_kernels as ik  # noqa: E402
import ttk_kernels as tk  # noqa: E402
import ttk_oracle as oracle  # noqa: E402

pytestmark = pytest.mark.skipif(not tk.qemu_available(), reason="needs qemu-system-arm and arm-none-eabi-gcc")


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
def test_pointwise_dispatch_of_our_kernel_equals_iree_kernel(target, tmp_path):
    rng = np.random.default_rng(5)
    # Odd sizes (C_in not a multiple of 4, odd C_out, odd pixel count): the kernel's tail paths.
    p, c_in, c_out = 63, 22, 13
    q = tk.quant_params(rng, c_out, relu6=True)  # a clamp narrower than int8: general epilogue
    x, w, b = tk.s8(rng, (p, c_in)), tk.s8(rng, (c_in, c_out)), tk.bias32(rng, c_out)
    ref = oracle.conv1x1(x, w, b, q)
    _, ours = ik.build_and_run(ik.pw_ttk_mlir(x.shape, w, b, q), x, ref.shape, tmp_path / "ttk", target)
    _, iree = ik.build_and_run(ik.pw_mlir(x.shape, w, b, q), x, ref.shape, tmp_path / "iree", target)
    np.testing.assert_array_equal(ours, iree)
    np.testing.assert_array_equal(ours, ref)
    # The call is a direct reference in IREE's object, resolved by our kernel library.
    nm = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "ttk" / "k_lib.o")],
                        capture_output=True, text=True, check=True).stdout
    assert " U ttk_iree_conv1x1_s8" in nm


def test_pointwise_scratch_is_bounded_by_the_layers_tensors():
    """The scratch a pointwise dispatch gets: every channel when that is small or the layer's
    tensors are big; at most twice its input + output bytes (floor 8 KB) otherwise (a 336 -> 112
    layer at 4x4 pixels would take 87 KB for 27 KB of tensors); never below the kernel's
    minimum."""
    from tinytrain.lowering.conversions.tinytrain_to_linalg.kernels import (
        CONV1X1_SCRATCH_FLOOR, conv1x1_scratch_bytes)

    full = conv1x1_scratch_bytes(336, 112)
    assert full > 80_000
    capped = conv1x1_scratch_bytes(336, 112, 16)
    assert capped == 2 * 16 * (336 + 112) and capped % 4 == 0
    assert conv1x1_scratch_bytes(16, 96, 64 * 64) == conv1x1_scratch_bytes(16, 96)  # < floor
    assert conv1x1_scratch_bytes(336, 56, 8 * 8) == conv1x1_scratch_bytes(336, 56)  # tensors big
    assert conv1x1_scratch_bytes(2048, 2048, 1) == max(CONV1X1_SCRATCH_FLOOR, 2048 * 12 + 2 * 64 + 8)
    # the kernel's minimum: 4 widened pixels and one channel pair with its epilogue records
    assert conv1x1_scratch_bytes(4096, 4096, 1) >= 4096 * 12 + 8


def _forward_text(graph, kernels: str) -> str:
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass
    from tinytrain.pipeline import run_pipeline
    from torch_mlir import ir

    run_pipeline(graph.module, [ConvertTinytrainToLinalgPass(values=graph.values, kernels=kernels)],
                 stage="test")
    for op in graph.module.body.operations:  # the firmware harness runs @predict
        if op.operation.name == "func.func":
            op.attributes["sym_name"] = ir.StringAttr.get("predict", graph.module.context)
    return str(graph.module)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
def test_int8_backbone_with_our_kernels_equals_iree_kernels(target, tmp_path):
    """A whole int8 forward (the paper's MobileNetV2-w0.35, first 2 blocks, 32x32, fp32 head):
    lowered with `to-linalg{kernels=ttk}` (its first 3x3 conv, pointwise and depthwise convs
    dispatch our kernels; the fp32 head stays IREE's) and with IREE's kernels only, bit-identical
    logits in QEMU."""
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    model = truncate(load_mcu_model("mbv2-w0.35"), 2)
    texts = {k: _forward_text(build_forward(model, classifier="fp32", num_classes=10, input_hw=32), k)
             for k in ("ttk", "iree")}
    # blocks.0.pointwise2, blocks.1.pointwise1/2; blocks.0.depthwise (s1), blocks.1.depthwise (s2);
    # the first conv (3x3 s2, 3 input channels)
    assert texts["ttk"].count("call @ttk_iree_conv1x1_s8(") == 3
    assert texts["ttk"].count("call @ttk_iree_dwconv_s8(") == 2
    assert texts["ttk"].count("call @ttk_iree_conv_s8(") == 1
    assert texts["ttk"].count('"flow.dispatch"') == 6
    assert '"flow.dispatch"' not in texts["iree"]
    x = np.random.default_rng(2).integers(-128, 128, (1, 32, 32, 3)).astype(np.int8)
    out = {k: ik.build_and_run(t, x, (1, 10), tmp_path / k, target, out_dtype=np.float32)[1]
           for k, t in texts.items()}
    np.testing.assert_array_equal(out["ttk"].view(np.uint32), out["iree"].view(np.uint32))
    assert np.abs(out["iree"]).max() > 0


def test_firmware_project_links_our_kernels_when_a_dispatch_calls_them(tmp_path):
    """The generated firmware project (firmware.build_firmware) adds runtime/kernels to its link
    exactly when IREE's object references `ttk_iree_*`."""
    from tinytrain.lowering.cortexm import firmware, iree_static

    rng = np.random.default_rng(5)
    q = tk.quant_params(rng, 13, relu6=True)
    x, w, b = tk.s8(rng, (63, 22)), tk.s8(rng, (22, 13)), tk.bias32(rng, 13)
    for name, text in (("ttk", ik.pw_ttk_mlir(x.shape, w, b, q)), ("iree", ik.pw_mlir(x.shape, w, b, q))):
        mod = iree_static.build_static_module(text, tmp_path / name / "m", target="cortex-m4", prefix="k",
                                              sram_bytes=None)
        fw = firmware.build_firmware(mod, tmp_path / name / "fw", board="mps2-an386", check_budget=False)
        cmake = (fw.project_dir / "CMakeLists.txt").read_text()
        syms = subprocess.run(["arm-none-eabi-nm", str(fw.elf)], capture_output=True, text=True,
                              check=True).stdout
        assert ("TTK_KERNELS" in cmake) == (name == "ttk")
        assert (" T ttk_iree_conv1x1_s8" in syms) == (name == "ttk")
        # our kernels keep the firmware's stack statically bounded (no jump the stack analysis
        # must read as an indirect call, e.g. LDR PC in the assembly routines)
        assert mod.stack is not None, (name, mod.stack_error)


# ---- a whole int8 training step on the device with our kernels ---------------------------------

# The first 3 blocks of MobileNetV2-w0.35 at 32x32 with a 4-class fp32 head (as
# test_int8_device_training); trained: int8 pointwise weights (written back), a depthwise weight
# kept as an fp32 master copy, int32 biases and the head. Its forward has the first conv, 5
# pointwise and 3 depthwise convs inside our kernels' contracts, trained layers among them.
# (With kernels="iree" this is test_int8_device_training's program, byte for byte: keep them
# equal, the suite's compile cache then builds it once per board.)
TRAIN_MASTER = "blocks.2.depthwise.weight"
TRAIN_PARAMS = ["blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", TRAIN_MASTER,
                "blocks.2.depthwise.bias", "blocks.2.pointwise2.weight", "blocks.2.pointwise2.bias",
                "fc.weight", "fc.bias"]


def _training_program(kernels: str, target: str, build_dir):
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    model = truncate(load_mcu_model("mbv2-w0.35"), 3)
    g = build_forward(model, classifier="fp32", num_classes=4, input_hw=32, seed=0,
                      master_weights=[TRAIN_MASTER])
    # bands=1: the dispatch counts below are those of whole blocks (row-bands would run block 2's
    # forward in bands of rows, each band shape a kernel of its own)
    return compile_training(g, TRAIN_PARAMS, lr=0.05, target=target, build_dir=build_dir, kernels=kernels,
                            bands=1)


def _two_steps(progs: dict, hw: int, rng, tmp_path) -> dict:
    """{kernels: the QEMU result} of two training steps of each program on the same 2 random
    images."""
    from tinytrain import reference as R
    from tinytrain.pretrained import load_mcu_model

    first = load_mcu_model("mbv2-w0.35").first_conv
    xs = R.preprocess(rng.integers(0, 256, (2, hw, hw, 3)).astype(np.uint8), first.x_scale, first.x_zero)
    ys = rng.integers(0, 4, 2).astype(np.int32)
    res = {k: p.run_qemu(train=(xs, ys), workdir=tmp_path / f"run-{k}") for k, p in progs.items()}
    for k, r in res.items():
        assert r.returncode == 0, (k, r.output[-2000:])
        assert len(r.trace) == 2
    return res


def _two_steps_identical(progs: dict, hw: int, rng, tmp_path) -> set:
    """Two training steps of `progs["ttk"]` and `progs["iree"]` (and any other program in `progs`)
    in QEMU on the same 2 random images: the integer state, float state and loss of "ttk"
    bit-identical to "iree" after each; returns the names of the trained tensors that changed."""
    res = _two_steps(progs, hw, rng, tmp_path)
    p0 = progs["iree"].initial_params()
    changed = set()
    for step, ((ours, ours_loss), (theirs, theirs_loss)) in enumerate(zip(res["ttk"].trace, res["iree"].trace)):
        for name, a, b, init in zip(progs["ttk"].trainable, ours, theirs, p0):
            assert a.dtype == b.dtype and a.shape == b.shape, name
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=f"step {step} {name}")
            if not np.array_equal(a, init):
                changed.add(name)
        assert np.float32(ours_loss).view(np.uint32) == np.float32(theirs_loss).view(np.uint32), step
    _f32_kernels_close(progs, res)
    return changed


def _f32_kernels_close(progs: dict, res: dict) -> None:
    """`progs["ttk-f32"]` (when built) against "iree" after each step: float state and loss
    within 1e-6 of the tensor's / loss's scale, integer state within 1 (rounding of `lr * g` at a
    tie moved by a float ulp) on at most 1% of the elements."""
    if "ttk-f32" not in res:
        return
    for step, ((ours, ours_loss), (theirs, theirs_loss)) in enumerate(zip(res["ttk-f32"].trace, res["iree"].trace)):
        for name, a, b in zip(progs["ttk-f32"].trainable, ours, theirs):
            if a.dtype.kind == "f":
                scale = float(np.abs(b).max()) or 1.0
                assert float(np.abs(a - b).max()) <= 1e-6 * scale, (step, name, float(np.abs(a - b).max()), scale)
            else:
                diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
                assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.01 * diff.size, (step, name)
        assert abs(ours_loss - theirs_loss) <= 1e-6 * abs(theirs_loss), (step, ours_loss, theirs_loss)


def _moved(prog, state, initial) -> set:
    """The names of `prog`'s trained tensors whose `state` differs from `initial`."""
    return {name for name, a, init in zip(prog.trainable, state, initial) if not np.array_equal(a, init)}


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
def test_int8_training_step_with_our_kernels_equals_iree_kernels(target, tmp_path):
    """`compile_training(..., kernels="ttk")`: the firmware's int8 convs (frozen and trained
    layers' forward) dispatch our kernels; on the M4 two training steps in QEMU give exactly the
    integer state, the float state (master copy, head) and the losses of the same program with
    IREE's kernels (kernels="iree", the default). On the M7 `kernels="ttk-f32"` (the same int8
    dispatches, and our fp32 kernel for the dense 1x1 input gradients too; the M4 runs it in
    test_compile_with_our_kernels_trains_on_cortex_m4_like_the_host): state and losses equal to
    IREE's to float rounding. (The M7's kernels="ttk" training step, bit-identical to IREE's, is
    test_patched_int8_training_step_with_our_kernels_equals_iree_kernels: the same blocks, with
    trained int8 pointwise weights, master copy, biases and head; the M7's padded first conv and
    strided depthwise conv with our kernels are also in
    test_int8_backbone_with_our_kernels_equals_iree_kernels.)"""
    ours = "ttk-f32" if target == "cortex-m7" else "ttk"
    progs = {k: _training_program(k, target, tmp_path / k) for k in (ours, "iree")}
    dev = progs[ours].stages["linalg_device"]
    # (one function per executable: channel-groups splits blocks.2's backward (its 8x8x48 fp32
    # gradient is 12 KB, above the pass's 8 KB) into 6 groups of 8 channels (2 KB each), whose
    # recomputed pointwise1 / depthwise outputs are one more conv1x1 and one more dwconv executable)
    assert dev.count("call @ttk_iree_conv1x1_s8(") == 6 and dev.count("call @ttk_iree_dwconv_s8(") == 4
    assert dev.count("call @ttk_iree_conv_s8(") == 1
    if ours == "ttk":
        assert "ttk_iree_conv1x1_grad_input_f32" not in dev
    else:
        # ttk-f32: the same int8 dispatches, and our fp32 kernels for the input gradients of the
        # dense 1x1 convs between the head and the earliest trained layer (blocks.2's two
        # pointwise convs; the trained blocks.1.pointwise2 needs no input gradient) and the
        # weight gradients of the trained pointwise weights (blocks.1.pointwise2,
        # blocks.2.pointwise2); with 8-channel groups both of blocks.2's input gradients are
        # 64 pixels 8 -> 8 channels per group: one executable
        assert dev.count("call @ttk_iree_conv1x1_grad_input_f32(") == 1
        # (both 48 -> 8 at 16x16: one executable, two dispatches)
        assert dev.count("entry_points = [@ttk_conv1x1_grad_weight_f32_") == 2
        # blocks.2's depthwise conv: its input gradient and its weight's (the fp32 master copy),
        # one dispatch per channel group
        assert (dev.count("entry_points = [@ttk_dwconv_grad_input_f32_"),
                dev.count("entry_points = [@ttk_dwconv_grad_weight_f32_")) == (6, 6)
    assert "linalg_device" not in progs["iree"].stages and "ttk_iree" not in progs[ours].stages["linalg"]
    syms = subprocess.run(["arm-none-eabi-nm", str(progs[ours].firmware.elf)], capture_output=True,
                          text=True, check=True).stdout
    assert all(f" T ttk_iree_{k}_s8" in syms for k in ("conv1x1", "dwconv", "conv"))

    rng = np.random.default_rng(3)
    if ours == "ttk":
        changed = _two_steps_identical(progs, 32, rng, tmp_path)
    else:
        res = _two_steps(progs, 32, rng, tmp_path)
        _f32_kernels_close(progs, res)
        changed = _moved(progs[ours], res[ours].trace[-1][0], progs["iree"].initial_params())
    assert {"blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", TRAIN_MASTER,
            "blocks.2.pointwise2.weight", "fc.weight"} <= changed, changed


# The same backbone at 64x64, where `patch-stage` computes the frozen first stage (the first conv,
# blocks 0 and 1, down to 16x16) in the default 2x2 patches: each patch's convs run with padding 0
# on a patch padded only at the image border. Trained: block 2 (an int8 pointwise weight written
# back, the depthwise weight as an fp32 master copy, biases) and the head.
PATCH_PARAMS = ["blocks.2.pointwise1.weight", TRAIN_MASTER, "blocks.2.depthwise.bias",
                "blocks.2.pointwise2.bias", "fc.weight", "fc.bias"]


def _pads(text: str, kernel: str) -> list:
    """The padding constant of every executable of `ttk_iree_<kernel>_s8` (its name lists the
    workgroup function's constants: h w c k stride pad ... for dwconv, h w c_in c_out k stride
    pad ... for conv)."""
    import re

    at = {"dwconv": 5, "conv": 6}[kernel]
    return [int(m.split("_")[at]) for m in re.findall(rf'sym_name = "ttk_{kernel}_s8_([0-9_m]+)"', text)]


def test_patched_int8_training_step_with_our_kernels_equals_iree_kernels(tmp_path):
    """`compile_training(..., kernels="ttk")` at 64x64 on the M7 (default 2x2 patches): the
    patched stage's padding-0 depthwise convs and first conv dispatch our kernels (no int8
    linalg conv is left for IREE), and two training steps give exactly the state and losses of
    the same patched program with IREE's kernels."""
    from tinytrain.int8 import compile_training, patch_grid
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    target = "cortex-m7"
    assert patch_grid(target, 64) == 2
    progs = {}
    for k in ("ttk", "iree"):
        g = build_forward(truncate(load_mcu_model("mbv2-w0.35"), 3), classifier="fp32", num_classes=4,
                          input_hw=64, seed=0, master_weights=[TRAIN_MASTER])
        progs[k] = compile_training(g, PATCH_PARAMS, lr=0.05, target=target, sram_kb=512, build_dir=tmp_path / k,
                                    kernels=k, bands=1)  # the counts below: block 2 whole
    dev = progs["ttk"].stages["linalg_device"]
    assert "linalg.depthwise_conv_2d_nhwc_hwc_q" not in dev and "linalg.conv_2d_nhwc_hwcf_q" not in dev
    assert set(_pads(dev, "dwconv")) == {0, 1}, _pads(dev, "dwconv")  # patched / block 2
    assert set(_pads(dev, "conv")) == {0}, _pads(dev, "conv")  # the first conv only runs in patches
    # 4 patches x (first conv, blocks 0-1: 2 depthwise) + block 2's depthwise + block 2's
    # depthwise recomputed by each of the 12 channel groups of its backward (channel-groups: its
    # 16x16x48 fp32 gradient is 48 KB, at most 4 KB a group)
    body = dev[dev.find("func.func @train_step("):]
    body = body[:body.find("func.func @", 1)]
    counts = [body.count(f"entry_points = [@ttk_{k}_s8_") for k in ("conv", "dwconv")]
    assert counts == [4, 4 * 2 + 1 + 12], counts
    # Our kernels' buffers (memref subspans) are read like IREE's tensors: the compiler lays the
    # transient tensors out itself and streams the input (the default) with our kernels too.
    ttk_module = progs["ttk"].firmware.module
    assert not ttk_module.schedule.replans["train_step"].reason, ttk_module.schedule.replans
    assert ttk_module.input_streamed, ttk_module.input_stream.describe()

    changed = _two_steps_identical(progs, 64, np.random.default_rng(4), tmp_path)
    assert {"blocks.2.pointwise1.weight", TRAIN_MASTER, "fc.weight"} <= changed, changed


def test_our_kernels_need_a_cortexm_target():
    from tinytrain.int8 import compile_predict, compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    g = build_forward(truncate(load_mcu_model("mbv2-w0.35"), 1), classifier="fp32", num_classes=4, input_hw=32)
    for kernels in ("ttk", "ttk-f32"):
        with pytest.raises(ValueError, match=f"kernels='{kernels}'.*cortex-m4"):
            compile_training(g, ["fc.bias"], kernels=kernels)
    with pytest.raises(ValueError, match="kernels='cmsis'.*'iree'.*'ttk'"):
        compile_predict(g, target="cortex-m7", kernels="cmsis")


# ---- compile(..., quantize="int8", kernels=...) and the CLI ------------------------------------

def _digits_model():
    import torch

    from tinytrain.datasets import digits_8x8
    from tinytrain.models import fit, residual_cnn

    xtr, ytr, _, _ = digits_8x8()
    torch.manual_seed(0)
    return fit(residual_cnn(), xtr, ytr, epochs=2, lr=0.02, batch=64, seed=0), xtr, ytr


def test_compile_kernels_argument_errors():
    """`compile(kernels=...)` refuses an unknown value, our kernels on the host and our kernels
    for an fp32 model, before any work, each naming the fix."""
    import torch

    import tinytrain
    from tinytrain.models import residual_cnn

    model, x = residual_cnn().eval(), torch.zeros(1, 1, 8, 8)
    calib = np.zeros((4, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="kernels='cmsis' is not supported: use 'iree'.*'ttk'.*'ttk-f32'"):
        tinytrain.compile(model, x, quantize="int8", calibration=calib, target="cortex-m7", kernels="cmsis")
    with pytest.raises(ValueError, match="kernels='ttk'.*needs target='cortex-m4' or 'cortex-m7'"):
        tinytrain.compile(model, x, quantize="int8", calibration=calib, kernels="ttk")
    with pytest.raises(ValueError, match="kernels='ttk-f32'.*needs quantize='int8'"):
        tinytrain.compile(model, x, target="cortex-m7", kernels="ttk-f32")


#: What the digits residual CNN trains with `kernels="ttk-f32"` below: the stem's bias (so the
#: block's depthwise input gradient is computed), the block's depthwise weight (so its pointwise
#: input gradient is), the block's pointwise weight and bias, and the head.
DIGITS_TRAINABLE = ["stem.0.bias", "block.dw.weight", "block.pw.weight", "block.pw.bias", "fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def digits_ttk_f32(tmp_path_factory):
    """The digits residual CNN compiled for the M4 with `kernels="ttk-f32"` training
    `DIGITS_TRAINABLE`, 4 steps of it in QEMU, each step checked against the host's
    (`_trains_like_the_host`): (program, the trained tensors that moved). One program for the two
    tests below (each checks its own dispatches on it): the host steps move the program's state,
    so they run once, here."""
    import torch

    import tinytrain

    tmp_path = tmp_path_factory.mktemp("digits-ttk-f32")
    model, xtr, ytr = _digits_model()
    prog = tinytrain.compile(model, torch.zeros(1, 1, 8, 8), quantize="int8", calibration=xtr[:100],
                             trainable=DIGITS_TRAINABLE, lr=0.05, target="cortex-m4", build_dir=tmp_path / "fw",
                             kernels="ttk-f32")
    samples = torch.from_numpy(xtr[:4]), torch.from_numpy(ytr[:4].astype(np.int64))
    res = prog.run_qemu(train=samples, workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    return prog, _trains_like_the_host(prog, res, samples)


def _trains_like_the_host(prog, res, samples) -> set:
    """Each device step of `res` against the host's step on the same sample: integer state
    exactly, float state and loss within 1e-6; returns the trained tensors that moved."""
    from conftest import assert_device_equals_host, loss_close

    xs, ys = samples
    moved = set()
    for i, (state, dev_loss) in enumerate(res.trace):
        loss = prog.train_step(xs[i:i + 1], ys[i:i + 1])
        assert loss_close(dev_loss, loss), (i, dev_loss, loss)
        for name, d, h in zip(prog.trainable, state, prog.program_params()):
            assert_device_equals_host(d, h, err_msg=f"step {i} {name}")
            if not np.array_equal(d, prog.quantized_params[name]):
                moved.add(name)
    return moved


def test_compile_with_our_kernels_trains_on_cortex_m4_like_the_host(digits_ttk_f32):
    """`tinytrain.compile(model, quantize="int8", target="cortex-m4", kernels="ttk-f32")`: the
    firmware's int8 convs inside our kernels' contracts (the stem's 3x3, the block's pointwise and
    depthwise) and the block's pointwise input gradient (its depthwise weight is trained) dispatch
    our kernels, and the block's pointwise weight gradient; 4 steps in QEMU keep the device rule
    against the host `.vmfb` (IREE's kernels, `digits_ttk_f32`):
    integer state exactly, float state and losses within 1e-6."""
    prog, moved = digits_ttk_f32
    dev = prog.stages["linalg_device"]
    assert dev.count("call @ttk_iree_conv1x1_grad_input_f32(") == 1
    assert dev.count("call @ttk_iree_conv1x1_grad_weight_f32(") == 1
    assert "call @ttk_iree_conv1x1_s8(" in dev and "call @ttk_iree_dwconv_s8(" in dev
    assert "ttk_iree" not in prog.stages["linalg"]
    assert {"block.dw.weight", "block.pw.weight", "fc.weight"} <= moved, moved


def test_depthwise_input_gradient_dispatch_trains_on_cortex_m4_like_the_host(digits_ttk_f32):
    """`kernels="ttk-f32"` with the stem's bias trained: the block's depthwise input gradient
    (3x3, stride 1) is a dispatch of `ttk_dwconv_grad_input_f32` and its weight gradient (from
    the saved int8 input) one of `ttk_dwconv_grad_weight_f32`, and `train_step` keeps the
    compiler's own layout of its transient tensors (replan.py). 4 steps in QEMU keep the host's
    integer state exactly, float state and losses within 1e-6 (`digits_ttk_f32`). (This program
    caught a liveness error of that layout: the int8 output of the block's pointwise dispatch, a
    read-write binding over a dead tensor's bytes in part, was overwritten before its last
    read.)"""
    prog, moved = digits_ttk_f32
    dev = prog.stages["linalg_device"]
    assert dev.count("call @ttk_iree_dwconv_grad_input_f32(") == 1
    assert dev.count("call @ttk_iree_dwconv_grad_weight_f32(") == 1
    assert "ttk_iree" not in prog.stages["linalg"]
    replans = prog.firmware.module.schedule.replans
    assert not replans["train_step"].reason, replans["train_step"].describe()
    assert "stem.0.bias" in moved


def test_sparse_depthwise_weight_gradient_dispatch_agrees_with_iree_kernels(tmp_path):
    """A sparse update of half of a depthwise weight's channels (`blocks.2.depthwise.weight`: "1/2",
    MobileNetV2-w0.35's first 3 blocks at 32x32, M4): with `kernels="ttk-f32"` its weight gradient,
    the slice of the leading 24 of 48 channels, is a dispatch of `ttk_dwconv_grad_weight_f32` on the
    whole int8 input and dY; two steps in QEMU agree with IREE's kernels to float rounding."""
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    scheme = {"parameters": {"blocks.2.depthwise.weight": "1/2", "fc.weight": 1, "fc.bias": 1}}
    progs = {}
    for k in ("iree", "ttk-f32"):
        g = build_forward(truncate(load_mcu_model("mbv2-w0.35"), 3), classifier="fp32", num_classes=4,
                          input_hw=32, seed=0)
        progs[k] = compile_training(g, scheme=scheme, lr=0.05, target="cortex-m4", build_dir=tmp_path / k,
                                    kernels=k)
    dev = progs["ttk-f32"].stages["linalg_device"]
    assert dev.count("entry_points = [@ttk_dwconv_grad_weight_f32_8_8_48_3_1_m128_24_48::") == 1
    res = _two_steps(progs, 32, np.random.default_rng(5), tmp_path)
    _f32_kernels_close(progs, res)
    trained = {n: (a, b) for n, a, b in zip(progs["ttk-f32"].trainable, res["ttk-f32"].trace[-1][0],
                                             progs["iree"].initial_params())}
    dw = [n for n in trained if n.startswith("blocks.2.depthwise")]
    assert dw and all(not np.array_equal(*trained[n]) for n in dw), (list(trained), dw)
