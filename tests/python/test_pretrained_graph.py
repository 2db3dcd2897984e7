"""The paper's three pretrained int8 models as tinytrain graphs, compiled for the host: their
logits equal `tinytrain.reference.forward` (device rule) bit for bit.

Each model is built once (`tinytrain.pretrained.graph.build_forward`), lowered with its weights
as constants and compiled once per test session (module-scoped fixture). IREE's constant
evaluation is turned off for these compiles: it only precomputes weight-derived values at
compile time and roughly doubles the compile time of these graphs; the numerics do not depend on it.
"""

import numpy as np
import pytest

from tinytrain import reference as R
from tinytrain.lowering.conversions.tinytrain_to_linalg import lower_to_linalg
from tinytrain.lowering.host.iree_host import HostModule, compile_host
from tinytrain.pretrained import MODEL_NAMES, load_mcu_model
from tinytrain.pretrained.graph import build_forward

from tinytrain.tools.pretrained_on_device import CAT_CLASSES

pytestmark = pytest.mark.models

FAST_FLAGS = ["--iree-opt-const-eval=false"]


def compiled(graph) -> HostModule:
    with graph.module.context:
        lower_to_linalg(graph.module, graph.values)
    return HostModule(compile_host(str(graph.module), extra_flags=FAST_FLAGS))


@pytest.fixture(scope="module", params=MODEL_NAMES)
def int8_model(request):
    model = load_mcu_model(request.param)
    return model, compiled(build_forward(model, classifier="int8", input="int8"))


def test_int8_forward_bit_exact(int8_model, chelsea_rgb):
    model, host = int8_model
    rng = np.random.default_rng(0)
    x_cat = R.preprocess(chelsea_rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    inputs = [x_cat] + [rng.integers(-128, 128, x_cat.shape).astype(np.int8) for _ in range(2)]
    for i, x in enumerate(inputs):
        got = host.call("forward", x)[0]
        want = R.forward(model, x, rule="device").logits
        assert got.dtype == np.int8 and got.shape == (1, 1000)
        np.testing.assert_array_equal(got, want, err_msg=f"{model.name}, input {i}")
    cat = host.call("forward", x_cat)[0][0]
    top = np.flatnonzero(cat == cat.max())
    assert set(top) <= set(CAT_CLASSES), f"{model.name}: chelsea.png -> classes {top}"


def test_fp32_head_float_input(chelsea_rgb):
    """The training variant: float input quantized in the graph, int8 backbone, the pretrained
    classifier dequantized as an fp32 linear head. The backbone is bit-exact, so the logits
    differ from the reference's (double) `classifier_fp32` only by float32 rounding of one
    dot product of length C: rtol 1e-5 of the largest logit."""
    model = load_mcu_model("mbv2-w0.35")
    host = compiled(build_forward(model, classifier="fp32", input="float"))
    v = ((chelsea_rgb.astype(np.float64) / 255.0 - 0.5) / 0.5).astype(np.float32)
    got = host.call("forward", v)[0]
    x = R.quantize(v, model.first_conv.x_scale, model.first_conv.x_zero)
    want = R.forward(model, x, rule="device", classifier="fp32").logits
    assert got.dtype == np.float32 and got.shape == (1, 1000)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert int(np.argmax(got)) in CAT_CLASSES


def test_build_forward_errors():
    model = load_mcu_model("mbv2-w0.35")
    with pytest.raises(ValueError, match="classifier must be one of"):
        build_forward(model, classifier="int4")
    with pytest.raises(ValueError, match="new head .* fp32"):
        build_forward(model, classifier="int8", num_classes=10)


def test_full_model_sparse_update_compiles_and_trains(chelsea_rgb):
    """The whole MobileNetV2-w0.35 int8 graph at 128x128 with the paper's 49 KB sparse update
    scheme (its bias layers and weight layers, whole tensors) and a new 10-class fp32 head: the
    training program (autodiff, qas, to-linalg) compiles, and repeated steps on one image drive
    its loss down (a memorisation check, loose: below half of the first loss after 5 steps)."""
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_sparse_scheme

    model = load_mcu_model("mbv2-w0.35")
    scheme = load_sparse_scheme(model, "49kb")
    trainable = ([f"{n}.bias" for n in scheme.bias_layers] + [f"{w.name}.weight" for w in scheme.weight_updates]
                 + ["fc.weight", "fc.bias"])
    prog = compile_training(build_forward(model, classifier="fp32", num_classes=10), trainable, lr=0.01)
    x = R.preprocess(chelsea_rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    params = prog.initial_params()
    losses = []
    for _ in range(5):
        params, loss = prog.step(params, x, [3])
        losses.append(loss)
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0], losses


def test_fp32_twin_follows_the_int8_model(chelsea_rgb):
    """`build_forward_fp32` (the fp32 fine-tuning baseline of `bench/accuracy_qas.py`) is the fp32
    network of the int8 model: ReLU6 after exactly the convs whose int8 output clamps at real 0
    (first_conv, pointwise1, depthwise in all three models), linear pointwise2. Its logits equal
    a float64 torch forward of the dequantized weights (float32 vs float64: 1e-4 of the norm),
    and follow the int8 model's (its dequantized pooled features through the same head) within
    quantization noise: 16% relative measured on chelsea.png for mbv2-w0.35; bound 30%. (When
    only the convs with `255 y_scale == 6` got their ReLU6, the twin was 90x off.)"""
    import torch
    import torch.nn.functional as F

    from tinytrain.pretrained.graph import build_forward_fp32

    for name in MODEL_NAMES:
        for c in load_mcu_model(name).convs():
            activated = c.name == "first_conv" or c.name.endswith((".pointwise1", ".depthwise"))
            assert (c.y_zero == -128) == activated, f"{name} {c.name}: y_zero {c.y_zero}"
    model = load_mcu_model("mbv2-w0.35")
    g = build_forward_fp32(model, num_classes=64, seed=0)
    host = compiled(g)
    x = R.preprocess(chelsea_rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    v = R.dequantize(x, model.first_conv.x_scale, model.first_conv.x_zero)
    got = host.call("forward", v)[0][0].astype(np.float64)
    w = g.values["fc.weight"].astype(np.float64)

    def conv(h, c):
        ws = c.w_scales.astype(np.float64)
        y = F.conv2d(h, torch.from_numpy(c.weight.astype(np.float64) * ws).permute(3, 2, 0, 1),
                     torch.from_numpy(c.bias.astype(np.float64) * c.x_scale * ws),
                     stride=c.stride, padding=c.padding, groups=c.groups)
        return y.clamp(0, 6) if c.y_zero == -128 else y

    h = conv(torch.from_numpy(v.astype(np.float64)).permute(0, 3, 1, 2), model.first_conv)
    for blk in model.blocks:
        block_in = h
        for c in blk.convs():
            h = conv(h, c)
        if blk.residual is not None:
            h = h + block_in
    want = w @ h.mean(dim=(2, 3))[0].numpy()
    assert np.linalg.norm(got - want) <= 1e-4 * np.linalg.norm(want)
    last = model.blocks[-1]
    pooled_q = R.dequantize(R.forward(model, x, keep=True).activations["pool"], last.out_scale, last.out_zero)
    logits_q = w @ pooled_q.reshape(-1).astype(np.float64)
    rel = np.linalg.norm(got - logits_q) / np.linalg.norm(logits_q)
    assert rel < 0.3, f"fp32 twin vs int8 model: {rel:.2f} relative"
