"""The conv input-gradient lowering per target (`to-linalg{convgrad=direct|im2col}`):

- `direct` (Cortex-M): one `linalg.generic` reading W through its map and dY by
  `tensor.extract` at clamped indices (a dense 1x1 stride-1 window: dY through its map): no
  padded/dilated copy of dY, no flipped kernel; `im2col` (host): the named convolution of the
  zero-dilated, padded dY with the flipped kernel (a dense 1x1 stride-1 window with a long F:
  `(W @ dY^T)^T`, at least 128 rows N*H*W);
- both against `torch.nn.grad.conv2d_input` (host vmfb) on depthwise and dense 3x3 windows at
  stride 1 and 2 with padding 1, an even input under stride 2 (a last row no window reads), a
  5x5 window with padding 2 and 1, stride 3, an unpadded 3x3 window, batch 2 and 1x1 windows.
"""

import numpy as np
import pytest
import torch

from tinytrain.context import new_context, parse_module
from tinytrain.lowering.conversions import tinytrain_to_linalg as t2l
from tinytrain.lowering.host.iree_host import HostModule, compile_host

# (N, C, H, W, F, K, stride, padding, groups)
CASES = [(1, 4, 6, 6, 4, 3, 1, 1, 4), (1, 4, 7, 7, 4, 3, 2, 1, 4), (2, 3, 8, 6, 3, 3, 2, 1, 3),
         (1, 3, 6, 5, 5, 3, 1, 1, 1), (2, 3, 7, 8, 4, 3, 2, 1, 1), (1, 2, 9, 9, 2, 5, 2, 2, 2),
         (1, 2, 8, 7, 3, 5, 3, 1, 1), (1, 3, 6, 5, 2, 3, 1, 0, 1), (1, 3, 5, 5, 4, 1, 2, 0, 1),
         (2, 3, 4, 4, 4, 1, 1, 0, 1), (2, 96, 8, 8, 192, 1, 1, 0, 1)]
#: the case the host lowers as a transposed matmul (`conv._transposes_grad_input`)
TRANSPOSED = [(2, 96, 8, 8, 192, 1, 1, 0, 1)]


def _module(cases, convgrad):
    funcs = []
    for i, (n, c, h, w, f, k, s, p, groups) in enumerate(cases):
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        dy, wt, r = (f"tensor<{n}x{oh}x{ow}x{f}xf32>", f"tensor<{k}x{k}x{c // groups}x{f}xf32>",
                     f"tensor<{n}x{h}x{w}x{c}xf32>")
        funcs.append(f'func.func @g{i}(%dy: {dy}, %w: {wt}) -> {r} {{\n'
                     f'  %0 = "tinytrain.conv2d_grad_input"(%dy, %w) {{strides = array<i64: {s}, {s}>, '
                     f'padding = array<i64: {p}, {p}>, groups = {groups} : i64}} : ({dy}, {wt}) -> {r}\n'
                     f'  return %0 : {r}\n}}')
    module = parse_module("\n".join(funcs), new_context(), stage="test")
    t2l.lower_to_linalg(module, convgrad=convgrad)
    return str(module)


def test_direct_grad_input_has_no_padded_copy():
    """Every case of `direct` is one generic: no fill+insert of a padded dY, no named
    convolution, no flipped kernel (the only other generics: none; `tensor.extract` of dY in all
    but the 1x1 stride-1 cases)."""
    text = _module(CASES, "direct")
    for pattern in ("tensor.insert_slice", "tensor.pad", "linalg.conv_2d", "linalg.depthwise_conv"):
        assert pattern not in text, pattern
    assert text.count("linalg.generic") == len(CASES)
    assert text.count("tensor.extract %") == len(CASES) - sum(c[5:8] == (1, 1, 0) for c in CASES)
    host = _module(CASES, "im2col")
    assert host.count("tensor.insert_slice") == host.count("linalg.conv_2d_nhwc_hwcf") + \
        host.count("linalg.depthwise_conv_2d_nhwc_hwc") == len(CASES) - len(TRANSPOSED)
    # the long-F 1x1 window: dY^T, W @ dY^T, its transpose (and no conv); a 1x1 window below the
    # thresholds (C = 3, F = 4; or fewer than 128 rows N*H*W) stays a named conv
    host_t = _module(TRANSPOSED, "im2col")
    assert (host_t.count("linalg.transpose"), host_t.count("linalg.matmul")) == (2, 1)
    assert "linalg.conv_2d" not in host_t
    assert not t2l.conv._transposes_grad_input((1, 1), (1, 1), (0, 0), 3, 4, 128)
    assert not t2l.conv._transposes_grad_input((1, 1), (2, 2), (0, 0), 96, 192, 128)
    assert not t2l.conv._transposes_grad_input((1, 1), (1, 1), (0, 0), 96, 192, 127)  # few rows


@pytest.mark.parametrize("convgrad", t2l.CONVGRADS)
def test_grad_input_variants_match_torch(convgrad):
    host = HostModule(compile_host(_module(CASES, convgrad)))
    rng = np.random.default_rng(0)
    for i, (n, c, h, w, f, k, s, p, groups) in enumerate(CASES):
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        dy = rng.standard_normal((n, oh, ow, f)).astype(np.float32)
        wt = rng.standard_normal((k, k, c // groups, f)).astype(np.float32)
        (ours,) = host.call(f"g{i}", dy, wt)
        ref = torch.nn.grad.conv2d_input((n, c, h, w), torch.from_numpy(wt).permute(3, 2, 0, 1),
                                         torch.from_numpy(dy).permute(0, 3, 1, 2), stride=s, padding=p,
                                         groups=groups)
        np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{convgrad} {(n, c, h, w, f, k, s, p, groups)}")


def test_direct_lowered_model_trains_like_torch():
    """A model whose input gradients cross dense 3x3, depthwise stride-1 and stride-2 (odd input:
    border taps) and pointwise convs, every parameter trained, lowered as the Cortex-M targets
    do (direct) and compiled for the host: torch.autograd's gradients, and three SGD steps like
    torch.optim.SGD (the pad-free generic reads the trained weight through its map, so this also
    guards the tied-argument hazard: no weight read after its in-place update)."""
    from conftest import assert_grads_match, assert_sgd_tracks
    from torch import nn

    import tinytrain
    from tinytrain.lowering.conversions.torch_to_tinytrain import import_model
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.autodiff import AutodiffPass

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU6(), nn.Conv2d(8, 8, 3, 2, 1, groups=8), nn.ReLU6(),
                          nn.Conv2d(8, 12, 1), nn.ReLU6(), nn.Conv2d(12, 12, 3, 1, 1, groups=12), nn.ReLU6(),
                          nn.Conv2d(12, 6, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(6, 4)).eval()
    x, y = torch.randn(2, 3, 9, 9) * 2, torch.tensor([1, 3])
    lr = 0.1
    prog = tinytrain.compile(model, x, lr=lr, gradients=True)
    imported = import_model(model, x)
    run_pipeline(imported.module, [AutodiffPass(trainable=("all",), lr=lr, gradients=True),
                                   t2l.ConvertTinytrainToLinalgPass(values=imported.params, convgrad="direct")],
                 stage="test")
    text = str(imported.module)
    # the host's lowering inserts dY into a zero tensor for each of the 4 input gradients
    assert prog.stages["linalg"].count("tensor.insert_slice") >= 4
    assert "tensor.insert_slice" not in text
    prog._host = HostModule(compile_host(text))
    assert_grads_match(prog, model, x, y)
    g = torch.Generator().manual_seed(2)
    xs = [torch.randn(2, 3, 9, 9, generator=g) for _ in range(3)]
    ys = [torch.randint(0, 4, (2,), generator=g) for _ in range(3)]
    assert_sgd_tracks(prog, model, xs, ys, lr)
