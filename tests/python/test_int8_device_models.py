"""The paper's pretrained int8 models, whole networks at their 128x128 input, run `predict` on the
emulated Cortex-M boards bit for bit like `tinytrain.reference.forward` (device rule) and the host
`.vmfb`; scikit-image's chelsea.png comes out as a cat (ImageNet classes 281-285). The check is
`tinytrain.tools.pretrained_on_device.run_case` (firmware built inside 256 KB, linker-enforced).

Each case compiles a whole network for the board (about a minute on this machine), so the suite
runs two cases that between them cover both boards and two of the three architectures; all six
(three models x two boards), with the host `.vmfb` of the same patched program beside them, run
in `bench/int8_device_predict.py` (`bench/results/int8_device_predict.md`). The tests leave that
host compile out (`check_host=False`, as long as the board's): the host's bit-exactness on the
whole networks is `test_pretrained_graph.test_int8_forward_bit_exact` (all three models), on
patched programs `test_patch_stage`."""

import pytest

from tinytrain.tools.pretrained_on_device import run_case

pytestmark = pytest.mark.models


@pytest.mark.parametrize("name,target", [("mcunet-5fps", "cortex-m4"), ("mbv2-w0.35", "cortex-m7")])
def test_pretrained_int8_predict_on_device(name, target, tmp_path):
    r = run_case(name, target, tmp_path, check_host=False)
    assert r["returncode"] == 0, r.get("output_tail")
    assert r["output_dtype"] == "int8" and r["output_shape"] == [2, 1, 1000]
    assert r["device_equals_reference"], f"{name} on {target}: device logits differ from the reference"
    assert r["is_cat"], f"{name} on {target}: chelsea.png -> classes {r['top_classes']}"
    assert r["sram_kb"] == 256 and r["sram_peak_bytes"] <= 256 * 1024
    assert r["device_accuracy_vs_reference_argmax"] == [2, 2]
    assert r["planned_sram_bytes"] <= r["sram_kb"] * 1024 and r["sram_peak_bytes"] <= r["planned_sram_bytes"]
