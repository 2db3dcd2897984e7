"""Training the real int8 graph: its fp32 gradients match torch.autograd on the dequantized graph
with straight-through clamps, and a seeded int8+QAS run on real data lowers the loss.

The backbone is the first blocks of the pretrained MobileNetV2-w0.35 (`truncate`), at 32x32
input, with a new fp32 head; compiled once per test module (`@gradients` without QAS, and
`@train_step` with QAS).

Torch reference. The int8 activations come from `tinytrain.reference` (device rule; the compiled
forward equals it bit for bit); in float64, every layer's real output is
`dequantize(y_q) + (f(x_real) - f(x_real).detach()) * mask` with `f` the real-valued op (conv of
the dequantized weights plus the real bias, or the real sum of a residual add, or the mean of the
pool) and `mask = lo < y_q < hi`: the value is the int8 one, the gradient straight through the
rounding and the clamp. The gradient of an integer parameter is `s_W dL/dW_real` (weights) and
`s_x s_W dL/db_real` (biases), as the compiled `@gradients` defines it.

Tolerance: forward values and clamp masks are identical (bit-exact int8), so the two sides differ
only by the float32 (compiled) vs float64 (torch) rounding of the backward: sums of at most
N*OH*OW*C_out = 16*16*48 ~ 12k products, relative error about sqrt(n) * 2^-24 ~ 1e-5 in the
typical case; we allow 1e-4 of each tensor's largest entry (and fail on any sign or scale error,
which are O(1)).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinytrain import reference as R
from tinytrain.int8 import compile_training
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate

HW, BLOCKS, CLASSES = 32, 3, 4
TRAINABLE = ["blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", "blocks.2.pointwise1.weight",
             "blocks.2.depthwise.weight", "blocks.2.depthwise.bias", "blocks.2.pointwise2.bias",
             "fc.weight", "fc.bias"]


def small_graph():
    return build_forward(truncate(load_mcu_model("mbv2-w0.35"), BLOCKS), classifier="fp32",
                         num_classes=CLASSES, input_hw=HW, seed=0)


LR = 0.3


@pytest.fixture(scope="module")
def grads_program():
    """One compile for the gradient and update tests: `qas` only rewrites the updates, so
    `@gradients` is the un-rescaled gradient and `@train_step` applies QAS."""
    g = small_graph()
    return g, compile_training(g, TRAINABLE, lr=LR, qas=True, gradients=True)


def _nchw(t):
    return t.permute(0, 3, 1, 2)


def _nhwc(t):
    return t.permute(0, 2, 3, 1)


def torch_gradients(model, values, x_q, label):
    """(loss, {name: gradient of the parameter's integer value (fc: of its real value)})."""
    leaves = {}

    def real_param(conv):
        ws = torch.tensor(conv.w_scales.astype(np.float64))
        w = torch.tensor(conv.weight.astype(np.float64)) * ws  # HWIO, real
        b = torch.tensor(conv.bias.astype(np.float64)) * (conv.x_scale * ws)
        for name, t in ((f"{conv.name}.weight", w), (f"{conv.name}.bias", b)):
            if name in TRAINABLE:
                t.requires_grad_(True)
                leaves[name] = t
        return w, b

    def ste(y_q, scale, zero, real, lo=-128, hi=127):
        val = torch.tensor(R.dequantize(y_q, scale, zero).astype(np.float64))
        mask = torch.tensor(((y_q > lo) & (y_q < hi)).astype(np.float64))
        return val + (real - real.detach()) * mask

    def conv(h_q, h_real, c):
        w, b = real_param(c)
        pre = F.conv2d(_nchw(h_real), w.permute(3, 2, 0, 1), b, stride=c.stride, padding=c.padding,
                       groups=c.groups)
        y_q = R.qconv2d(h_q, c, "device")
        return y_q, ste(y_q, c.y_scale, c.y_zero, _nhwc(pre))

    h_q = x_q
    h_real = torch.tensor(R.dequantize(x_q, model.first_conv.x_scale, model.first_conv.x_zero).astype(np.float64))
    h_q, h_real = conv(h_q, h_real, model.first_conv)
    for blk in model.blocks:
        in_q, in_real = h_q, h_real
        for c in blk.convs():
            h_q, h_real = conv(h_q, h_real, c)
        if blk.residual is not None:
            r, pw2 = blk.residual, blk.pointwise2
            y_q = R.add(in_q, r.x_scale, r.x_zero, h_q, pw2.y_scale, pw2.y_zero, r.y_scale, r.y_zero)
            h_q, h_real = y_q, ste(y_q, r.y_scale, r.y_zero, in_real + h_real)
    p_q = R.global_avg_pool(h_q)
    pooled = ste(p_q, model.pool.scale, model.pool.zero, h_real.mean(dim=(1, 2), keepdim=True))
    fw = torch.tensor(values["fc.weight"].astype(np.float64), requires_grad=True)
    fb = torch.tensor(values["fc.bias"].astype(np.float64), requires_grad=True)
    leaves["fc.weight"], leaves["fc.bias"] = fw, fb
    logits = pooled.reshape(1, -1) @ fw.T + fb
    loss = F.cross_entropy(logits, torch.tensor([label]))
    loss.backward()
    out = {}
    for name in TRAINABLE:
        g = leaves[name].grad.numpy()
        if not name.startswith("fc."):
            c = model.conv(name.rsplit(".", 1)[0])
            s = c.w_scales.astype(np.float64) * (1.0 if name.endswith(".weight") else c.x_scale)
            g = g * s
        out[name] = g
    return float(loss.detach()), out


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_torch_ste(grads_program, seed):
    g, prog = grads_program
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, HW, HW, 3)).astype(np.int8)
    label = int(rng.integers(CLASSES))
    got, loss = prog.gradients(prog.initial_params(), x, [label])
    want_loss, want = torch_gradients(g.model, g.values, x, label)
    assert prog.trainable == TRAINABLE
    assert loss == pytest.approx(want_loss, rel=1e-5)
    for name, gv in zip(prog.trainable, got):
        w = want[name]
        assert gv.shape == w.shape, name
        scale = np.abs(w).max()
        assert scale > 0, f"{name}: the reference gradient is zero, the test would be vacuous"
        np.testing.assert_allclose(gv, w, rtol=0, atol=1e-4 * scale, err_msg=name)


def test_int8_qas_training_lowers_the_loss():
    """3 seeded epochs of SGD (batch 1, lr 0.3) of int8 + QAS on 40 Animal-MNIST images (4 classes),
    trained: the last block's biases and pointwise2 weights (int8 write-back) and the fp32 head.
    The mean training loss over the 40 images must drop by at least 15 % (measured when written:
    1.386 -> 0.945; without QAS the int8 weights never change at this lr and the loss ends at 1.47)."""
    from tinytrain.datasets import load_dataset

    ds = load_dataset("animal-mnist", resolution=HW, classes=(0, 1, 2, 3), n_train=40, n_val=4, n_test=4, seed=0)
    g = small_graph()
    model = g.model
    trainable = ["blocks.2.pointwise1.bias", "blocks.2.depthwise.bias", "blocks.2.pointwise2.weight",
                 "blocks.2.pointwise2.bias", "fc.weight", "fc.bias"]
    prog = compile_training(g, trainable, lr=0.3, qas=True)
    xs = R.preprocess(ds.train.images, model.first_conv.x_scale, model.first_conv.x_zero)
    ys = ds.train.labels.astype(np.int32)

    def mean_loss(params):
        total = 0.0
        for i in range(len(xs)):
            logits = prog.predict(params, xs[i:i + 1]).astype(np.float64)[0]
            total += np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[ys[i]]
        return total / len(xs)

    params = prog.initial_params()
    before = mean_loss(params)
    order = np.random.default_rng(0).permutation(len(xs))
    for epoch in range(3):
        for i in order:
            params, _ = prog.step(params, xs[i:i + 1], ys[i:i + 1])
    after = mean_loss(params)
    assert params[2].dtype == np.int8 and not np.array_equal(params[2], g.values["blocks.2.pointwise2.weight"]), \
        "the int8 weights were not updated"
    assert after < 0.85 * before, f"loss {before:.4f} -> {after:.4f}"


def test_train_step_applies_qas_and_int8_write_back(grads_program):
    """One `@train_step` (QAS on) equals the update computed in numpy from `@gradients` of the
    same compiled module: `clamp(p - roundeven(f32(lr) * (g * f32(qas_scale))))` for the integer
    parameters, `p - lr * g` for the fp32 head. The trained int8 weights are also read by the
    backward pass (input gradient through them): this checks that the in-place update does not
    overwrite them before that read."""
    g, prog = grads_program
    lr = LR
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, HW, HW, 3)).astype(np.int8)
    params = prog.initial_params()
    grads, _ = prog.gradients(params, x, [2])
    new, _ = prog.step(params, x, [2])
    for name, p, gr, got in zip(prog.trainable, params, grads, new):
        if name.startswith("fc."):
            np.testing.assert_allclose(got, p - np.float32(lr) * gr, rtol=1e-6, atol=1e-7, err_msg=name)
            continue
        c = g.model.conv(name.rsplit(".", 1)[0])
        s = c.w_scales.astype(np.float64) * (1.0 if name.endswith(".weight") else c.x_scale)
        scaled = gr * (s ** -2).astype(np.float32)
        step = np.round(np.float32(lr) * scaled.astype(np.float32))
        lo, hi = (-127, 127) if p.dtype == np.int8 else (-(2**31), 2**31 - 1)
        want = np.clip(p.astype(np.int64) - step.astype(np.int64), lo, hi).astype(p.dtype)
        assert got.dtype == p.dtype
        assert np.abs(got.astype(np.int64) - want).max() <= 0, name
        assert not np.array_equal(got, p), f"{name} did not move: QAS missing?"


def test_master_copy_option_accumulates_small_steps():
    """`master_weights`: the trained int8 weight is an fp32 master copy (integer units) read
    through `quantize(scale=1)`; `@train_step` updates it with `sgd_update` of the QAS-scaled
    gradient (`p - lr * g * s_W^-2` in f32), so sub-LSB steps are kept instead of rounded away,
    and the first forward equals the int8 graph's."""
    name = "blocks.2.pointwise1.weight"
    m = truncate(load_mcu_model("mbv2-w0.35"), BLOCKS)
    g = build_forward(m, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0, master_weights=[name])
    assert g.values[name].dtype == np.float32
    lr = 0.01
    prog = compile_training(g, [name, "fc.weight", "fc.bias"], lr=lr, qas=True, gradients=True)
    x = np.random.default_rng(6).integers(-128, 128, (1, HW, HW, 3)).astype(np.int8)
    params = prog.initial_params()
    grads, _ = prog.gradients(params, x, [1])
    new, _ = prog.step(params, x, [1])
    s = m.conv("blocks.2.pointwise1").w_scales.astype(np.float64)
    want = params[0] - np.float32(lr) * (grads[0] * (s ** -2).astype(np.float32))
    np.testing.assert_allclose(new[0], want, rtol=1e-6, atol=1e-6)
    moved = np.abs(new[0] - params[0])
    assert moved.max() > 0 and np.any((moved > 0) & (moved < 0.5)), "no sub-LSB step was kept"
    with pytest.raises(ValueError, match="not conv weights"):
        build_forward(m, classifier="fp32", num_classes=CLASSES, master_weights=["fc.weight"])
