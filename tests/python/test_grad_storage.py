"""`grad-storage` (`transforms/grad_storage.py`, `compile_training(grad_dtype="bf16")`): the
backward pass's activation gradients stored in bfloat16 between ops.

Backbone: the first 4 blocks of the pretrained MobileNetV2-w0.35 at 32x32 with a new 4-class fp32
head, packed clamp masks and 4 channel groups (the Cortex-M defaults). Trained: blocks 1-3's
biases, blocks.3's expansion weight and the head."""

import re

import numpy as np
import pytest

from tinytrain import int8
from tinytrain import reference as R
from tinytrain.errors import CompileError
from tinytrain.int8 import _compile, _training_passes
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate
from tinytrain.transforms.grad_storage import GradStoragePass
from tinytrain.transforms.pin_masks import PinClampMasksPass

HW, BLOCKS, CLASSES, LR = 32, 4, 4, 0.05
TRAINABLE = ["blocks.1.pointwise1.bias", "blocks.1.depthwise.bias", "blocks.1.pointwise2.bias",
             "blocks.2.pointwise1.bias", "blocks.2.depthwise.bias", "blocks.2.pointwise2.bias",
             "blocks.3.pointwise1.weight", "blocks.3.pointwise1.bias", "blocks.3.depthwise.bias",
             "blocks.3.pointwise2.bias", "fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def model():
    return truncate(load_mcu_model("mbv2-w0.35"), BLOCKS)


def program(model, bf16: bool):
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    passes, order, values, _, _ = _training_passes(g, TRAINABLE, LR, True, True, clamp_masks=True,
                                                   channel_groups=4)
    passes += [PinClampMasksPass()] + ([GradStoragePass(dtype="bf16")] if bf16 else [])
    return _compile(g, passes, order, LR, ("--iree-opt-const-eval=false",), "host", 256, None, values)


def _bf16(x: np.ndarray) -> np.ndarray:
    """x rounded to bfloat16 (nearest, ties to even), as f32."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def test_gradients_are_the_fp32_ones_to_bf16_rounding(model):
    narrow, wide = program(model, True), program(model, False)
    text = narrow.stages["linalg"]
    assert "bf16" in text and "bf16" not in wide.stages["linalg"]
    # the channel groups' barriers carry the bf16 values, widened behind them (IREE cannot fuse a
    # widening across a barrier: it would store the f32 tensor)
    barriers = 0
    for fn in text.split("func.func")[1:]:
        widened = set(re.findall(r"(%[\w#]+) = arith\.extf", fn))
        for operands in re.findall(r'"util\.optimization_barrier"\(([^)]*)\)', fn):
            barriers += 1
            carried = {v.strip() for v in operands.split(",")}
            assert not widened & carried, (operands, widened & carried)
    assert barriers >= 6, barriers
    assert sum("bf16" in line for line in text.splitlines() if "optimization_barrier" in line) >= 3
    rng = np.random.default_rng(3)
    xs = R.preprocess(rng.integers(0, 256, (1, HW, HW, 3)).astype(np.uint8), model.first_conv.x_scale,
                      model.first_conv.x_zero)
    ys = np.array([1], np.int32)
    p = narrow.initial_params()
    (g_n, loss_n), (g_w, loss_w) = narrow.gradients(p, xs, ys), wide.gradients(p, xs, ys)
    assert loss_n == loss_w  # the forward pass is untouched
    for name, a, b in zip(TRAINABLE, g_n, g_w):
        a, b = a.astype(np.float64), b.astype(np.float64)
        rel = np.linalg.norm(a - b) / np.linalg.norm(b)
        if name.startswith("fc."):  # the head's gradients come from the loss, before any rounding
            assert rel == 0, name
        else:  # rounded to 8 significant bits a few times on the way: well under 1%, never exact
            assert 1e-5 < rel < 1e-2, (name, rel)


def test_one_rounding_is_round_to_nearest_even():
    # the numpy rule above is the one IREE applies: a value between two bf16 neighbours (and an exact tie)
    x = np.array([1.0 + 2 ** -9, 1.0 + 3 * 2 ** -9, 1.0 + 2 ** -8 + 2 ** -12, -3.14159, 1e-30], np.float32)
    assert _bf16(x).tolist() == [1.0, 1.0 + 2 ** -7, 1.0 + 2 ** -7, -3.140625, float(np.float32(_bf16(x)[-1]))]
    assert abs(_bf16(np.float32(1e-30)) - 1e-30) < 1e-32


def test_bad_dtype_is_an_error(model):
    with pytest.raises(CompileError, match="grad-storage: dtype must be bf16 or f32"):
        GradStoragePass(dtype="f16").run(None)
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    with pytest.raises(ValueError, match="grad_dtype must be 'f32' or 'bf16'"):
        int8.compile_training(g, ["fc.bias"], grad_dtype="fp16")


def test_bf16_step_on_cortex_m7_trains_like_the_host(model, tmp_path):
    """The device's program is the host's, bf16 roundings included; only its fp32 sums may be
    ordered differently (the host vectorizes them), and where such a last-bit difference meets a
    bf16 rounding the gradient moves by one bf16 step (2^-8 relative), which can move an integer
    write-back by one. So: two steps in QEMU, losses to 1e-4, every integer entry within one step
    of the host's and at most 5% of the integer state's entries off by one (counted over the whole
    state: a small tensor, e.g. an 8-channel bias, has too few entries for a per-tensor share),
    fp32 state to 1e-3."""
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    prog = int8.compile_training(g, TRAINABLE, lr=LR, target="cortex-m7", build_dir=tmp_path / "fw",
                                 grad_dtype="bf16")
    assert "bf16" in prog.stages["linalg"]
    rng = np.random.default_rng(6)
    xs = R.preprocess(rng.integers(0, 256, (2, HW, HW, 3)).astype(np.uint8), model.first_conv.x_scale,
                      model.first_conv.x_zero)
    ys = rng.integers(0, CLASSES, 2).astype(np.int32)
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    params = prog.initial_params()
    for i in range(2):
        params, loss = prog.step(params, xs[i:i + 1], ys[i:i + 1])
        dev, dev_loss = res.trace[i]
        assert abs(dev_loss - loss) <= 1e-4 * max(1.0, abs(loss)), (i, dev_loss, loss)
        off, entries = {}, 0
        for name, d, h in zip(prog.trainable, dev, params):
            d, h = np.asarray(d), np.asarray(h)
            if h.dtype.kind == "i":
                diff = np.abs(d.astype(np.int64) - h.astype(np.int64))
                assert diff.max() <= 1, (i, name, diff.max())
                off[name], entries = int(np.count_nonzero(diff)), entries + diff.size
            else:
                np.testing.assert_allclose(d, h, rtol=1e-3, atol=1e-6 * max(1.0, float(np.abs(h).max())),
                                           err_msg=f"step {i} {name}")
        assert sum(off.values()) <= 0.05 * entries, (i, entries, {k: v for k, v in off.items() if v})
    moved = [n for n, a, b in zip(prog.trainable, params, prog.initial_params()) if not np.array_equal(a, b)]
    assert "blocks.3.pointwise1.weight" in moved and "blocks.1.pointwise1.bias" in moved, moved
