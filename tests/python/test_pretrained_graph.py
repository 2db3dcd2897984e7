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

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is a test extra (pip install -e '.[test]')")
from skimage import transform  # noqa: E402

pytestmark = pytest.mark.models

CAT_CLASSES = range(281, 286)
FAST_FLAGS = ["--iree-opt-const-eval=false"]


def compiled(graph) -> HostModule:
    with graph.module.context:
        lower_to_linalg(graph.module, graph.values)
    return HostModule(compile_host(str(graph.module), extra_flags=FAST_FLAGS))


@pytest.fixture(scope="module")
def chelsea_rgb():
    img = skimage_data.chelsea()
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    r = transform.resize(img[top:top + s, left:left + s], (128, 128), order=1, anti_aliasing=False,
                         preserve_range=True)
    return np.clip(np.round(r), 0, 255).astype(np.uint8)[None]


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
