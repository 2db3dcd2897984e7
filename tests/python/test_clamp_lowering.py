"""The f32 clamp lowering per target (`to-linalg{clamp=select|minmax}`, issue #10 point 2).

- both variants against PyTorch (forward and the relu6 gradient of a conv net, host vmfb), and
  their stated semantics on the edge inputs (NaN, -0.0, +-inf, the bounds);
- `compile()` picks the variant from the target (select: host, cortex-m4; minmax: cortex-m7), and
  the M7 firmware trains a ReLU6 net in QEMU like its host program (1e-6), with VMAXNM/VMINNM in
  the kernels and no libcall for the clamp on either board.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tinytrain
from tinytrain.context import new_context, parse_module
from tinytrain.lowering.conversions import tinytrain_to_linalg as t2l
from tinytrain.lowering.host.iree_host import HostModule, compile_host

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
import cortexm_reference as reference  # noqa: E402
from test_convgrad_lowering import IM2COL  # noqa: E402

EDGES = np.array([np.nan, -0.0, 0.0, -1.5, 1e-30, 3.25, 6.0, 6.5, np.inf, -np.inf, 5.999999], np.float32)


def _host(clamp: str) -> HostModule:
    t = "tensor<11xf32>"
    text = "\n".join(f'func.func @{op}(%a: {t}) -> {t} {{\n  %r = "tinytrain.{op}"(%a) : ({t}) -> {t}\n'
                     f'  return %r : {t}\n}}' for op in ("relu", "relu6", "hardsigmoid"))
    module = parse_module(text, new_context(), stage="test")
    t2l.lower_to_linalg(module, clamp=clamp)
    return HostModule(compile_host(str(module)))


@pytest.mark.parametrize("clamp", t2l.CLAMPS)
def test_clamp_variants_on_edge_inputs(clamp):
    host = _host(clamp)
    x = torch.from_numpy(EDGES)
    expected = {"relu": torch.relu(x), "relu6": torch.clamp(x, 0, 6), "hardsigmoid": nn.functional.hardsigmoid(x)}
    for name, ref in expected.items():
        (out,) = host.call(name, EDGES)
        ref = ref.numpy()
        finite = ~np.isnan(EDGES)
        # Every non-NaN input gives PyTorch's value; select's zeros are +0.0 as maximumf's
        # (torch.relu keeps -0.0), minmax's may have either sign.
        np.testing.assert_array_equal(out[finite], ref[finite], err_msg=name)
        if clamp == "select":
            assert not np.signbit(out[finite & (out == 0)]).any(), name
        nan_out = out[~finite][0]
        if clamp == "select":  # NaN-propagating, as torch.clamp / maximumf
            assert np.isnan(nan_out), name
        else:  # IEEE maxNum: a NaN input gives the lower bound (0; hardsigmoid: 0 / 6)
            assert nan_out == 0.0, (name, nan_out)


def _relu6_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU6(), nn.Conv2d(8, 8, 3, 1, 1, groups=8),
                         nn.ReLU6(), nn.Conv2d(8, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3)).eval()


def _objdump(fw) -> str:
    return subprocess.run(["arm-none-eabi-objdump", "-d", str(fw.module.object_path)],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("target,clamp", [("cortex-m4", "select"), ("cortex-m7", "minmax")])
def test_target_clamp_trains_like_its_host_program(target, clamp, tmp_path):
    model = _relu6_net()
    prog = tinytrain.compile(model, torch.randn(1, 3, 6, 6), lr=0.1, target=target,
                             build_dir=tmp_path / "fw")
    linalg = prog.stages["linalg"]
    assert ("arith.maxnumf" in linalg) == (clamp == "minmax")
    assert not IM2COL.search(linalg)  # convgrad=direct on both boards: no im2col buffer in SRAM
    asm = _objdump(prog.firmware)
    assert ("vmaxnm.f32" in asm) == (clamp == "minmax"), target
    assert "fmaxf" not in asm and "fminf" not in asm  # no libcall for a clamp
    g = torch.Generator().manual_seed(3)
    xs, ys = torch.randn(3, 3, 6, 6, generator=g) * 3, [0, 2, 1]
    # The host reference of the firmware tests: the same linalg for the generic x86 CPU (no FMA,
    # as the M4), bit-exact on the M4 and within 1e-6 on the M7 (which contracts into VFMA).
    host = reference.HostModule(reference.compile_vmfb(linalg))
    ref = host.train(prog.program_params(), xs.permute(0, 2, 3, 1).numpy()[:, None], ys)
    res = prog.run_qemu(train=(xs, torch.tensor(ys)), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    reference.assert_trace_matches(res.trace, ref, target)


def test_minmax_program_matches_torch_gradients():
    """The M7's lowering (host vmfb of a cortex-m7 compile's linalg) trains like torch.autograd."""
    from conftest import assert_grads_match

    model = _relu6_net()
    x, y = torch.randn(2, 3, 6, 6) * 3, torch.tensor([1, 2])
    # only the (select) program's linalg is read here and its host module is replaced below:
    # compile() without its eager host build
    prog = reference.compile_linalg(model, x, lr=0.1, gradients=True)
    assert "arith.maxnumf" not in prog.stages["linalg"]
    # The same model lowered with minmax, compiled for the host.
    from tinytrain.lowering.conversions.torch_to_tinytrain import import_model
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.autodiff import AutodiffPass

    imported = import_model(model, x)
    run_pipeline(imported.module, [AutodiffPass(trainable=("all",), lr=0.1, gradients=True),
                                   t2l.ConvertTinytrainToLinalgPass(values=imported.params, clamp="minmax")],
                 stage="test")
    module_text = str(imported.module)
    assert "arith.maxnumf" in module_text
    prog._host = HostModule(compile_host(module_text))  # same signature, minmax clamps
    assert_grads_match(prog, model, x, y)
