"""Our int8 pointwise kernel entering through IREE (issue #10): a one-layer program whose conv is
a `flow.dispatch` of a `stream.executable` calling `ttk_iree_conv1x1_s8` (`hal.import.static`,
runtime/kernels/src/ttk_iree.c linked into the firmware) gives, in QEMU on the Cortex-M4 and the
Cortex-M7, exactly the output of the same layer compiled by IREE from linalg
(`linalg.quantized_matmul` + the requantization generic) and of the numpy oracle."""

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
    lowered with `to-linalg{kernels=ttk}` (its pointwise convs dispatch our kernel) and with
    IREE's kernels, bit-identical logits in QEMU."""
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    model = truncate(load_mcu_model("mbv2-w0.35"), 2)
    texts = {k: _forward_text(build_forward(model, classifier="fp32", num_classes=10, input_hw=32), k)
             for k in ("ttk", "iree")}
    assert texts["ttk"].count('"flow.dispatch"') == 3  # blocks.0.pointwise2, blocks.1.pointwise1/2
    assert '"flow.dispatch"' not in texts["iree"]
    x = np.random.default_rng(2).integers(-128, 128, (1, 32, 32, 3)).astype(np.int8)
    out = {k: ik.build_and_run(t, x, (1, 10), tmp_path / k, target, out_dtype=np.float32)[1]
           for k, t in texts.items()}
    np.testing.assert_array_equal(out["ttk"].view(np.uint32), out["iree"].view(np.uint32))
    assert np.abs(out["iree"]).max() > 0
