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
