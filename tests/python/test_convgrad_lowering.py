"""The dense conv weight-gradient lowering per target (`to-linalg{convgrad=direct|im2col}`, issue
#12 point 2).

- both variants of `conv2d_grad_weight` against `torch.nn.grad.conv2d_weight` (host vmfb), on
  dense and depthwise 3x3/5x5, strided (2, 3), padded and batched windows; `bias_grad` of
  both against torch's sum;
- `compile()` lowers the host program with im2col, and the direct lowering (the Cortex-M
  targets', `CONVGRAD_BY_TARGET`) of the same model trains like torch.autograd; the Cortex-M
  compile's own linalg is checked in test_clamp_lowering (no im2col buffer).
"""

import re

import numpy as np
import pytest
import torch
from torch import nn

import tinytrain
from tinytrain.context import new_context, parse_module
from tinytrain.lowering.conversions import tinytrain_to_linalg as t2l
from tinytrain.lowering.host.iree_host import HostModule, compile_host

#: The im2col gather's result: a 6-D [N, OH, OW, KH, KW, C] tensor (the models here have none).
IM2COL = re.compile(r"tensor\.empty\(\) : tensor<(\d+x){6}f32>")

# (N, C, H, W, F, K, stride, padding, groups): dense, then depthwise (groups = C = F: one
# stride-1 contraction per stride phase with im2col; odd sizes, 1-3 taps per phase, stride 3).
CASES = [(2, 3, 7, 7, 4, 3, 2, 1, 1), (1, 2, 9, 9, 5, 5, 2, 0, 1), (2, 3, 6, 6, 4, 3, 1, 1, 1),
         (3, 4, 6, 5, 4, 3, 1, 1, 4), (3, 5, 7, 7, 5, 3, 2, 1, 5), (2, 3, 9, 8, 3, 5, 2, 2, 3),
         (2, 2, 10, 10, 2, 3, 3, 0, 2)]


def _grad_weight_func(i, n, c, h, w, f, k, s, p, groups) -> tuple[str, tuple[int, int]]:
    """`@gw<i>`: one `conv2d_grad_weight` of the case, and its output size."""
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    x, dy = f"tensor<{n}x{h}x{w}x{c}xf32>", f"tensor<{n}x{oh}x{ow}x{f}xf32>"
    r = f"tensor<{k}x{k}x{c // groups}x{f}xf32>"
    text = (f'func.func @gw{i}(%x: {x}, %dy: {dy}) -> {r} {{\n'
            f'  %0 = "tinytrain.conv2d_grad_weight"(%x, %dy) {{strides = array<i64: {s}, {s}>, '
            f'padding = array<i64: {p}, {p}>, groups = {groups} : i64}} : ({x}, {dy}) -> {r}\n'
            f'  return %0 : {r}\n}}')
    return text, (oh, ow)


@pytest.mark.parametrize("convgrad", t2l.CONVGRADS)
def test_grad_weight_variants_match_torch(convgrad):
    """Every case a function of one module (one iree-compile per variant)."""
    funcs = [_grad_weight_func(i, *case) for i, case in enumerate(CASES)]
    module = parse_module("\n".join(t for t, _ in funcs), new_context(), stage="test")
    t2l.lower_to_linalg(module, convgrad=convgrad)
    text = str(module)
    # the lowered functions, in order: each case's own im2col gather (dense cases only, with im2col)
    bodies = re.split(r"func\.func @gw\d+", text)[1:]
    assert len(bodies) == len(CASES), text
    for body, case in zip(bodies, CASES):
        assert bool(IM2COL.search(body)) == (convgrad == "im2col" and case[-1] == 1), (case, body)
    host = HostModule(compile_host(text))
    rng = np.random.default_rng(0)
    for i, ((n, c, h, w, f, k, s, p, groups), (_, (oh, ow))) in enumerate(zip(CASES, funcs)):
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        dy = rng.standard_normal((n, oh, ow, f)).astype(np.float32)
        (ours,) = host.call(f"gw{i}", x, dy)
        ref = torch.nn.grad.conv2d_weight(torch.from_numpy(x).permute(0, 3, 1, 2), (f, c // groups, k, k),
                                          torch.from_numpy(dy).permute(0, 3, 1, 2), stride=s, padding=p,
                                          groups=groups)
        np.testing.assert_allclose(ours, ref.permute(2, 3, 1, 0).numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{convgrad} {(n, c, h, w, f, k, s, p, groups)}")


@pytest.mark.parametrize("convgrad", t2l.CONVGRADS)
def test_bias_grad_variants_match_torch(convgrad):
    shapes = {"conv": (3, 5, 4, 6), "linear": (7, 5)}
    text = "\n".join(f'func.func @{k}(%g: tensor<{"x".join(map(str, v))}xf32>) -> tensor<{v[-1]}xf32> {{\n'
                     f'  %0 = "tinytrain.bias_grad"(%g) : (tensor<{"x".join(map(str, v))}xf32>) -> tensor<{v[-1]}xf32>\n'
                     f'  return %0 : tensor<{v[-1]}xf32>\n}}' for k, v in shapes.items())
    module = parse_module(text, new_context(), stage="test")
    t2l.lower_to_linalg(module, convgrad=convgrad)
    assert ("linalg.matmul" in str(module)) == (convgrad == "im2col")
    host = HostModule(compile_host(str(module)))
    rng = np.random.default_rng(1)
    for name, shape in shapes.items():
        g = rng.standard_normal(shape).astype(np.float32)
        (ours,) = host.call(name, g)
        ref = torch.from_numpy(g).sum(dim=tuple(range(len(shape) - 1)))
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{convgrad} {name}")


def test_unknown_convgrad_names_the_choices():
    text = "func.func @f() { return }"
    with pytest.raises(tinytrain.CompileError, match=r"convgrad='winograd' is not one of direct, im2col"):
        t2l.lower_to_linalg(parse_module(text, new_context(), stage="test"), convgrad="winograd")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6(), nn.Conv2d(8, 8, 3, 2, 1, groups=8),
                         nn.ReLU6(), nn.Conv2d(8, 6, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(6, 3)).eval()


def test_host_compile_uses_im2col_and_direct_trains_like_torch():
    """compile() (host) lowers the dense 3x3 gradients with im2col; the same model lowered as the
    Cortex-M targets do (direct), compiled for the host, gives torch.autograd's gradients."""
    from conftest import assert_grads_match

    from tinytrain.lowering.conversions.torch_to_tinytrain import import_model
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.autodiff import AutodiffPass

    assert t2l.CONVGRAD_BY_TARGET == {"host": "im2col", "cortex-m4": "direct", "cortex-m7": "direct"}
    model = _net()
    x, y = torch.randn(2, 3, 8, 8) * 2, torch.tensor([1, 2])
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    # the two dense 3x3 convolutions, in @train_step and @gradients
    assert len(IM2COL.findall(prog.stages["linalg"])) == 4
    assert_grads_match(prog, model, x, y)
    imported = import_model(model, x)
    run_pipeline(imported.module, [AutodiffPass(trainable=("all",), lr=0.1, gradients=True),
                                   t2l.ConvertTinytrainToLinalgPass(values=imported.params, convgrad="direct")],
                 stage="test")
    text = str(imported.module)
    assert not IM2COL.search(text)
    prog._host = HostModule(compile_host(text))  # same signature, direct weight gradients
    assert_grads_match(prog, model, x, y)
