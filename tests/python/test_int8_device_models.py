"""The paper's three pretrained int8 models, whole networks at their 128x128 input, run `predict`
on the emulated Cortex-M boards bit for bit like `tinytrain.reference.forward` (device rule) and
the host `.vmfb`; scikit-image's chelsea.png comes out as a cat (ImageNet classes 281-285).

`SRAM_KB`: the SRAM budget each model's inference firmware is built with: the smallest multiple
of 64 KB above the compiler's plan (IREE's arena keeps more activations alive than the paper's
planner, so none fits 256 KB at 128x128; the QEMU boards have the room). The plans, from
`prog.planned_sram()`, are in the README's int8 section.

Every model runs on the Cortex-M4 (mps2-an386) and MobileNetV2-w0.35 also on the Cortex-M7
(mps2-an500): each case compiles the whole network for the host and the board (about 1.5-3 min
per case on this machine), hence the `models` marker.
"""

import numpy as np
import pytest
from test_pretrained_graph import CAT_CLASSES, chelsea_rgb  # noqa: F401 - fixture

from tinytrain import reference as R
from tinytrain.int8 import compile_predict
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward

pytestmark = pytest.mark.models

SRAM_KB = {"mbv2-w0.35": 448, "proxyless-w0.3": 384, "mcunet-5fps": 384}
CASES = [("mbv2-w0.35", "cortex-m4"), ("proxyless-w0.3", "cortex-m4"), ("mcunet-5fps", "cortex-m4"),
         ("mbv2-w0.35", "cortex-m7")]


@pytest.mark.parametrize("name,target", CASES)
def test_pretrained_int8_predict_on_device(name, target, chelsea_rgb, tmp_path):  # noqa: F811
    model = load_mcu_model(name)
    prog = compile_predict(build_forward(model, classifier="int8", input="int8"), target=target,
                           sram_kb=SRAM_KB[name], build_dir=tmp_path / "fw")
    x_cat = R.preprocess(chelsea_rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    x_rand = np.random.default_rng(0).integers(-128, 128, x_cat.shape).astype(np.int8)
    xs = np.concatenate([x_cat, x_rand])
    want = [R.forward(model, x[None], rule="device").logits[0] for x in xs]
    labels = [int(np.argmax(w)) for w in want]
    res = prog.run_qemu(evaluate=(xs, labels), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    got = res.outputs["before"]
    assert got.dtype == np.int8 and got.shape == (2, 1, 1000)
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(got[i, 0], want[i], err_msg=f"{name} on {target}, input {i}")
        np.testing.assert_array_equal(prog.predict([], x[None])[0], want[i], err_msg=f"{name} host, input {i}")
    top = np.flatnonzero(got[0, 0] == got[0, 0].max())
    assert set(top) <= set(CAT_CLASSES), f"{name} on {target}: chelsea.png -> classes {top}"
    assert res.evals["before"] == (2, 2)
    plan = prog.planned_sram()
    assert plan["total"] <= SRAM_KB[name] * 1024 and res.mem["sram_peak"] <= plan["total"]
    print(f"{name} {target}: planned SRAM {plan['total']} B, measured peak {res.mem['sram_peak']} B")
