"""With `autodiff{clamp_masks=1}` a bias-only int8 layer keeps a packed 1-bit clamp mask instead
of its int8 output (`qclamp_mask` / `qmask_grad`, `transforms/autodiff_int8.py`): the training
step computes exactly what it computes with the int8 outputs kept (the default, `qclamp_grad`).

Backbone: the first 3 blocks of the pretrained MobileNetV2-w0.35 at 32x32 with a new 4-class fp32
head; trained: the biases of blocks 1-2, block 2's pointwise1 weight (its input, block 1's
output, stays kept: no mask there) and the head. Masked layers: block 1's pointwise1 and
depthwise, block 2's depthwise and pointwise2 (all but block 2's pointwise1 and block 1's
pointwise2)."""

import dataclasses

import numpy as np
import pytest

from tinytrain import reference as R
from tinytrain.int8 import _compile, _training_passes
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate
from tinytrain.transforms.autodiff import AutodiffPass

HW, BLOCKS, CLASSES, LR, STEPS = 32, 3, 4, 0.05, 4
TRAINABLE = ["blocks.1.pointwise1.bias", "blocks.1.depthwise.bias", "blocks.1.pointwise2.bias",
             "blocks.2.pointwise1.weight", "blocks.2.pointwise1.bias", "blocks.2.depthwise.bias",
             "blocks.2.pointwise2.bias", "fc.weight", "fc.bias"]
MASKED = ["blocks.1.pointwise1", "blocks.1.depthwise", "blocks.2.depthwise", "blocks.2.pointwise2"]


def program(model, clamp_masks: bool):
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    passes, order, values, _, _ = _training_passes(g, TRAINABLE, LR, True, True)
    passes = [dataclasses.replace(p, clamp_masks=clamp_masks) if isinstance(p, AutodiffPass) else p for p in passes]
    return _compile(g, passes, order, LR, ("--iree-opt-const-eval=false",), "host", 256, None, values)


@pytest.fixture(scope="module")
def model():
    return truncate(load_mcu_model("mbv2-w0.35"), BLOCKS)


def test_masked_training_step_equals_the_kept_output_step(model):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (STEPS, HW, HW, 3)).astype(np.uint8)
    xs = R.preprocess(rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    ys = rng.integers(0, CLASSES, STEPS).astype(np.int32)
    # the masks matter: the masked ReLU6 layers (all but the linear pointwise2) have outputs at
    # their clamp bound and inside it
    acts, h = {}, R.qconv2d(xs[:1], model.first_conv)
    assert model.blocks[0].residual is None and model.blocks[1].residual is None  # block 2's input is h
    for blk in model.blocks:
        for conv in blk.convs():
            h = acts[conv.name] = R.qconv2d(h, conv)
    for name in MASKED[:3]:
        y = acts[name]
        assert (y == -128).any() and ((y > -128) & (y < 127)).any(), name
    masked, kept = program(model, True), program(model, False)
    assert masked.stages["linalg"] != kept.stages["linalg"]
    assert masked.trainable == kept.trainable == TRAINABLE
    p_m, p_k = masked.initial_params(), kept.initial_params()
    g_m, loss_gm = masked.gradients(p_m, xs[:1], ys[:1])
    g_k, loss_gk = kept.gradients(p_k, xs[:1], ys[:1])
    assert loss_gm == loss_gk
    for name, a, b in zip(TRAINABLE, g_m, g_k):
        np.testing.assert_array_equal(a, b, err_msg=f"gradient of {name}")
        if name.endswith(".bias") and not name.startswith("fc"):
            assert np.count_nonzero(a), f"{name}: zero gradient, the check would be empty"
    for i in range(STEPS):
        p_m, loss_m = masked.step(p_m, xs[i:i + 1], ys[i:i + 1])
        p_k, loss_k = kept.step(p_k, xs[i:i + 1], ys[i:i + 1])
        assert loss_m == loss_k, i
        for name, a, b in zip(TRAINABLE, p_m, p_k):
            np.testing.assert_array_equal(a, b, err_msg=f"step {i} {name}")
    assert any(not np.array_equal(a, b) for a, b in zip(p_m, masked.initial_params()))
