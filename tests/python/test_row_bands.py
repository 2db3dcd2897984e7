"""`row-bands` (`transforms/row_bands.py`): a chain of int8 convolutions whose inner tensors only it
reads (but for packed clamp masks) computed in bands of rows is the same program, bit for bit.

Backbone: the first 4 blocks of the pretrained MobileNetV2-w0.35 at 32x32 with a new 4-class fp32
head, packed clamp masks (the Cortex-M default). Trained: blocks 1-3's biases (their inner values'
masks are read by the backward pass) and blocks.3's expansion weight, and the head. `min_bytes=0`:
every chain splits."""

import numpy as np
import pytest

from tinytrain import reference as R
from tinytrain.errors import CompileError
from tinytrain.irfuncs import layer_name
from tinytrain.int8 import _compile, _training_passes
from tinytrain.pipeline import run_pipeline
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate
from tinytrain.transforms.pin_masks import PinClampMasksPass
from tinytrain.transforms.row_bands import RowBandsPass, find_chains

HW, BLOCKS, CLASSES, LR, STEPS = 32, 4, 4, 0.05, 3
TRAINABLE = ["blocks.1.pointwise1.bias", "blocks.1.depthwise.bias", "blocks.1.pointwise2.bias",
             "blocks.2.pointwise1.bias", "blocks.2.depthwise.bias", "blocks.2.pointwise2.bias",
             "blocks.3.pointwise1.weight", "blocks.3.pointwise1.bias", "blocks.3.depthwise.bias",
             "blocks.3.pointwise2.bias", "fc.weight", "fc.bias"]


def passes_of(g, bands: int):
    passes, order, values, _, _ = _training_passes(g, TRAINABLE, LR, True, True, clamp_masks=True)
    if bands > 1:
        passes.append(RowBandsPass(bands=bands, min_bytes=0, band_bytes=1))
    return passes + [PinClampMasksPass()], order, values


def program(model, bands: int):
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    passes, order, values = passes_of(g, bands)
    return _compile(g, passes, order, LR, ("--iree-opt-const-eval=false",), "host", 256, None, values)


@pytest.fixture(scope="module")
def model():
    return truncate(load_mcu_model("mbv2-w0.35"), BLOCKS)


def test_chains_and_their_masks(model):
    # a chain stays in one block; blocks.0-2's hold only frozen weights and masked inner values
    # (blocks.0's, frozen, none); blocks.3's expansion weight is trained, so its output is read by
    # `qclamp_grad` in the backward pass and its chain starts at the depthwise
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    passes, _, _ = passes_of(g, 1)
    run_pipeline(g.module, passes[:-1])
    fn = next(op for op in g.module.body.operations if op.sym_name.value == "train_step")
    chains = find_chains(fn)
    layers = [[layer_name(op) for op in c.ops] for c in chains]
    assert layers == [["blocks.0.depthwise", "blocks.0.pointwise2"],
                      ["blocks.1.pointwise1", "blocks.1.depthwise", "blocks.1.pointwise2"],
                      ["blocks.2.pointwise1", "blocks.2.depthwise", "blocks.2.pointwise2"],
                      ["blocks.3.depthwise", "blocks.3.pointwise2"]], layers
    masked = [sum(1 for ms in c.masks for _ in ms) for c in chains]
    assert sum(masked) >= 4, masked  # blocks 1-2: the expansion and depthwise outputs' masks


def test_banded_program_is_bit_identical(model):
    banded, whole = program(model, 4), program(model, 1)
    text = banded.stages["linalg"]
    assert "tinytrain.row_bands" in text and "tinytrain.row_bands" not in whole.stages["linalg"]
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (STEPS, HW, HW, 3)).astype(np.uint8)
    xs = R.preprocess(rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    ys = rng.integers(0, CLASSES, STEPS).astype(np.int32)
    p_b, p_w = banded.initial_params(), whole.initial_params()
    g_b, loss_b = banded.gradients(p_b, xs[:1], ys[:1])
    g_w, loss_w = whole.gradients(p_w, xs[:1], ys[:1])
    assert loss_b == loss_w
    for name, a, b in zip(TRAINABLE, g_b, g_w):
        assert np.count_nonzero(b), f"{name}: zero gradient, the check would be empty"
        np.testing.assert_array_equal(a, b, err_msg=f"gradient of {name}")
    for i in range(STEPS):
        p_b, loss_b = banded.step(p_b, xs[i:i + 1], ys[i:i + 1])
        p_w, loss_w = whole.step(p_w, xs[i:i + 1], ys[i:i + 1])
        assert loss_b == loss_w, i
        for name, a, b in zip(TRAINABLE, p_b, p_w):
            np.testing.assert_array_equal(a, b, err_msg=f"step {i}: {name}")
    for i in range(STEPS):
        np.testing.assert_array_equal(banded.predict(p_b, xs[i:i + 1]), whole.predict(p_w, xs[i:i + 1]))


def test_bad_options_are_compile_errors():
    with pytest.raises(CompileError, match="row-bands: bands and band_bytes must be >= 1"):
        RowBandsPass(bands=0).run(None)
