"""Numerics of the lowered layer ops (issue #7) against PyTorch: each test writes a few small
tinytrain functions, lowers them with `to-linalg`, compiles them with the host backend and
compares with `torch.nn.functional` (forward ops, NHWC <-> NCHW permuted) and with
`torch.autograd.grad` of the forward under a random upstream gradient (gradient ops).

Tolerance: rtol = 1e-5 relative, with atol = 1e-6 for entries near zero (f32, summation order
may differ from PyTorch's). Max-pool ties (constant and integer-valued inputs, overlapping
windows) must route every gradient exactly as PyTorch's CPU kernel does."""

import numpy as np
import torch
import torch.nn.functional as F

from tinytrain.context import new_context, parse_module
from tinytrain.lowering.conversions import tinytrain_to_linalg as t2l
from tinytrain.lowering.host.iree_host import HostModule, compile_host

RTOL, ATOL = 1e-5, 1e-6


def _t(shape) -> str:
    return "tensor<" + "".join(f"{d}x" for d in shape) + "f32>"


def _arr(vals) -> str:
    return "array<i64: " + ", ".join(str(v) for v in vals) + ">"


def _func(name: str, op: str, operands: list, result, attrs: str = "") -> str:
    """`func.func @name(args) -> result { %r = "tinytrain.op"(args) {attrs} ... }`."""
    args = ", ".join(f"%a{i}: {_t(s)}" for i, s in enumerate(operands))
    vals = ", ".join(f"%a{i}" for i in range(len(operands)))
    types = ", ".join(_t(s) for s in operands)
    attr = f" {{{attrs}}}" if attrs else ""
    return (f"func.func @{name}({args}) -> {_t(result)} {{\n"
            f"  %r = \"tinytrain.{op}\"({vals}){attr} : ({types}) -> {_t(result)}\n"
            f"  return %r : {_t(result)}\n}}\n")


def _compile(funcs: list[str]) -> HostModule:
    module = parse_module("\n".join(funcs), new_context(), stage="test")
    t2l.lower_to_linalg(module)
    text = str(module)
    assert "tinytrain." not in text.replace("tinytrain.param", "")
    return HostModule(compile_host(text))


def _call(host, name, *args):
    (out,) = host.call(name, *[np.ascontiguousarray(a, dtype=np.float32) for a in args])
    return out


def _close(actual, expected):
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float32), rtol=RTOL, atol=ATOL)


def _nchw(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a)).permute(0, 3, 1, 2).contiguous()


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy()


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# pad, slice, concat
# ----------------------------------------------------------------------------------------------


def test_pad_slice_concat():
    rng = np.random.default_rng(0)
    x = _rand(rng, (1, 4, 5, 2))
    b = _rand(rng, (1, 4, 5, 3))
    c = _rand(rng, (1, 2, 5, 2))
    host = _compile([
        _func("pad", "pad", [x.shape], (1, 5, 8, 3),
              f"low = {_arr([0, 1, 0, 1])}, high = {_arr([0, 0, 3, 0])}"),
        _func("slice", "slice", [x.shape], (1, 2, 3, 1), f"offsets = {_arr([0, 1, 2, 1])}"),
        _func("cat_c", "concat", [x.shape, b.shape], (1, 4, 5, 5), "axis = 3 : i64"),
        _func("cat_h", "concat", [x.shape, c.shape], (1, 6, 5, 2), "axis = 1 : i64"),
    ])
    # F.pad takes (last dim low, high, next-to-last low, high, ...)
    _close(_call(host, "pad", x), F.pad(torch.tensor(x), (1, 0, 0, 3, 1, 0)).numpy())
    _close(_call(host, "slice", x), x[:, 1:3, 2:5, 1:2])
    _close(_call(host, "cat_c", x, b), torch.cat([torch.tensor(x), torch.tensor(b)], 3).numpy())
    _close(_call(host, "cat_h", x, c), torch.cat([torch.tensor(x), torch.tensor(c)], 1).numpy())


# ----------------------------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------------------------

ACTIVATIONS = {
    "hardswish": (F.hardswish, ""),
    "hardsigmoid": (F.hardsigmoid, ""),
    "sigmoid": (torch.sigmoid, ""),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), "alpha = 1.000000e-01 : f32"),
}


def test_activations_and_their_gradients():
    rng = np.random.default_rng(1)
    shape = (2, 3, 4, 5)
    # the boundaries of the piecewise rules, zero, large magnitudes (sigmoid's exp), random values
    special = np.array([-3.0, 3.0, 0.0, -0.0, -100.0, 100.0, -3.0001, 3.0001, 2.9999, -2.9999,
                        -90.0, 90.0, 1e-8, -1e-8], np.float32)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.reshape(-1)[:special.size] = special
    dy = _rand(rng, shape)
    funcs = []
    for name, (_, attrs) in ACTIVATIONS.items():
        funcs.append(_func(name, name, [shape], shape, attrs))
        funcs.append(_func(name + "_grad", name + "_grad", [shape, shape], shape, attrs))
    host = _compile(funcs)
    for name, (fn, _) in ACTIVATIONS.items():
        xt = torch.tensor(x, requires_grad=True)
        y = fn(xt)
        (dx,) = torch.autograd.grad(y, xt, torch.tensor(dy))
        _close(_call(host, name, x), y.detach().numpy())
        # sigmoid_grad reads the forward output, the others the forward input
        first = y.detach().numpy() if name == "sigmoid" else x
        _close(_call(host, name + "_grad", first, dy), dx.numpy())
    # stability: no inf/nan at +-100
    assert np.isfinite(_call(host, "sigmoid", x)).all()


# ----------------------------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------------------------

# (input NHWC shape, kernel, strides, padding (top, left, bottom, right))
POOLS = {
    "k3s2p1": ((1, 8, 8, 2), (3, 3), (2, 2), (1, 1, 1, 1)),
    "k2s2": ((2, 6, 6, 3), (2, 2), (2, 2), (0, 0, 0, 0)),
    "k3s1p1": ((1, 5, 5, 2), (3, 3), (1, 1), (1, 1, 1, 1)),
    "k3x2_s2x1_asym": ((1, 7, 6, 2), (3, 2), (2, 1), (0, 1, 2, 0)),  # ceil_mode-like bottom pad
}


def _pool_out(shape, kernel, strides, padding):
    n, h, w, c = shape
    return (n, (h + padding[0] + padding[2] - kernel[0]) // strides[0] + 1,
            (w + padding[1] + padding[3] - kernel[1]) // strides[1] + 1, c)


def _pool_attrs(kernel, strides, padding, divisor=None):
    s = f"kernel = {_arr(kernel)}, strides = {_arr(strides)}, padding = {_arr(padding)}"
    return s + (f", divisor = \"{divisor}\"" if divisor else "")


def _torch_pad(t, padding, value):
    top, left, bottom, right = padding
    return F.pad(t, (left, right, top, bottom), value=value)


def _symmetric(padding) -> bool:
    return padding[0] == padding[2] and padding[1] == padding[3]


def _torch_max_pool(t, kernel, strides, padding):
    """PyTorch's max pool: its own padding when symmetric, else over an input padded by
    (top, left, bottom, right) with -inf (the same except for all -inf windows, where PyTorch
    gives the gradient to the first in-bounds position, as the lowering does, and an explicitly
    padded input to the first padded one)."""
    if _symmetric(padding):
        return F.max_pool2d(t, kernel, strides, (padding[0], padding[1]))
    return F.max_pool2d(_torch_pad(t, padding, float("-inf")), kernel, strides)


def _torch_avg_pool(t, kernel, strides, padding, divisor):
    """"window": zero padding counted (count_include_pad=True); "valid": divided by the number
    of in-bounds elements (count_include_pad=False), written as two sum pools."""
    k = kernel[0] * kernel[1]
    sums = F.avg_pool2d(_torch_pad(t, padding, 0.0), kernel, strides) * k
    if divisor == "window":
        return sums / k
    ones = torch.ones_like(t[:1, :1])
    counts = F.avg_pool2d(_torch_pad(ones, padding, 0.0), kernel, strides) * k
    return sums / counts.round()


def test_pool_torch_references_agree_with_native_padding():
    """The padded references above are PyTorch's own padding semantics (symmetric case)."""
    t = torch.randn(1, 2, 8, 8)
    assert torch.equal(_torch_max_pool(t, (3, 3), (2, 2), (1, 1, 1, 1)), F.max_pool2d(t, 3, 2, 1))
    for divisor, include in (("window", True), ("valid", False)):
        torch.testing.assert_close(_torch_avg_pool(t, (3, 3), (2, 2), (1, 1, 1, 1), divisor),
                                   F.avg_pool2d(t, 3, 2, 1, count_include_pad=include),
                                   rtol=1e-6, atol=1e-6)


def _pool_module(kind: str) -> HostModule:
    funcs = []
    for name, (shape, k, s, p) in POOLS.items():
        out = _pool_out(shape, k, s, p)
        if kind == "max":
            funcs.append(_func(f"fwd_{name}", "max_pool2d", [shape], out, _pool_attrs(k, s, p)))
            funcs.append(_func(f"grad_{name}", "max_pool2d_grad", [shape, out], shape,
                               _pool_attrs(k, s, p)))
        else:
            for div in ("window", "valid"):
                funcs.append(_func(f"fwd_{name}_{div}", "avg_pool2d", [shape], out,
                                   _pool_attrs(k, s, p, div)))
                funcs.append(_func(f"grad_{name}_{div}", "avg_pool2d_grad", [out], shape,
                                   _pool_attrs(k, s, p, div)))
    return _compile(funcs)


def _max_pool_inputs(rng, shape, padding):
    yield "random", _rand(rng, shape)
    yield "constant", np.full(shape, 0.5, np.float32)  # every window is one big tie
    yield "integers", rng.integers(0, 3, shape).astype(np.float32)  # scattered ties
    if _symmetric(padding):
        # all -inf: padding must still lose the tie (the gradient goes to an in-bounds position)
        yield "negative_infinity", np.full(shape, -np.inf, np.float32)


def test_max_pool_and_gradient_with_ties():
    rng = np.random.default_rng(2)
    host = _pool_module("max")
    for name, (shape, k, s, p) in POOLS.items():
        for what, x in _max_pool_inputs(rng, shape, p):
            xt = _nchw(x).requires_grad_(True)
            y = _torch_max_pool(xt, k, s, p)
            dy = _rand(rng, _pool_out(shape, k, s, p))
            (dx,) = torch.autograd.grad(y, xt, _nchw(dy))
            np.testing.assert_array_equal(_call(host, f"fwd_{name}", x), _nhwc(y), err_msg=f"{name} {what}")
            np.testing.assert_allclose(_call(host, f"grad_{name}", x, dy), _nhwc(dx), rtol=RTOL,
                                       atol=ATOL, err_msg=f"{name} {what}")


def test_avg_pool_and_gradient():
    rng = np.random.default_rng(3)
    host = _pool_module("avg")
    for name, (shape, k, s, p) in POOLS.items():
        for div in ("window", "valid"):
            x = _rand(rng, shape)
            xt = _nchw(x).requires_grad_(True)
            y = _torch_avg_pool(xt, k, s, p, div)
            dy = _rand(rng, _pool_out(shape, k, s, p))
            (dx,) = torch.autograd.grad(y, xt, _nchw(dy))
            _close(_call(host, f"fwd_{name}_{div}", x), _nhwc(y))
            _close(_call(host, f"grad_{name}_{div}", dy), _nhwc(dx))


# ----------------------------------------------------------------------------------------------
# broadcast multiply, sum_to, channel_affine
# ----------------------------------------------------------------------------------------------

LHS = (2, 3, 4, 5)
RHS_SHAPES = {"se": (2, 1, 1, 5), "channel": (5,), "mid": (3, 1, 5), "same": LHS, "unit": (1,),
              "row": (4, 1)}


def test_mul_sum_to_channel_affine():
    rng = np.random.default_rng(4)
    funcs = []
    for name, shape in RHS_SHAPES.items():
        funcs.append(_func(f"mul_{name}", "mul", [LHS, shape], LHS))
        funcs.append(_func(f"sum_to_{name}", "sum_to", [LHS], shape))
    funcs.append(_func("sum_to_scalar", "sum_to", [LHS], ()))
    funcs.append(_func("affine", "channel_affine", [LHS, (5,), (5,)], LHS))
    host = _compile(funcs)
    x, dy = _rand(rng, LHS), _rand(rng, LHS)
    for name, shape in RHS_SHAPES.items():
        r = _rand(rng, shape)
        xt, rt = torch.tensor(x, requires_grad=True), torch.tensor(r, requires_grad=True)
        y = xt * rt
        dx, dr = torch.autograd.grad(y, (xt, rt), torch.tensor(dy))
        _close(_call(host, f"mul_{name}", x, r), y.detach().numpy())
        # the adjoints autodiff builds from mul and sum_to
        _close(_call(host, f"mul_{name}", dy, r), dx.numpy())
        _close(_call(host, f"sum_to_{name}", dy * x), dr.numpy())
    _close(_call(host, "sum_to_scalar", x), np.asarray(torch.tensor(x).sum().numpy()))
    scale, shift = _rand(rng, (5,)), _rand(rng, (5,))
    _close(_call(host, "affine", x, scale, shift), x * scale + shift)


# ----------------------------------------------------------------------------------------------
# end to end: autodiff's adjoints of every forward layer op, lowered, against torch.autograd
# ----------------------------------------------------------------------------------------------

E2E_FORWARD = """
func.func @forward(%cw: tensor<3x3x3x4xf32> {tinytrain.param = "conv.weight"},
                   %cb: tensor<4xf32> {tinytrain.param = "conv.bias"},
                   %bw: tensor<6xf32> {tinytrain.param = "bn.weight"},
                   %bb: tensor<6xf32> {tinytrain.param = "bn.bias"},
                   %fw: tensor<5x6xf32> {tinytrain.param = "fc.weight"},
                   %fb: tensor<5xf32> {tinytrain.param = "fc.bias"},
                   %x: tensor<2x8x8x3xf32> {tinytrain.input}) -> tensor<2x5xf32> {
  %c = "tinytrain.conv2d"(%x, %cw, %cb) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>, groups = 1 : i64} : (tensor<2x8x8x3xf32>, tensor<3x3x3x4xf32>, tensor<4xf32>) -> tensor<2x8x8x4xf32>
  %p = "tinytrain.pad"(%c) {low = array<i64: 0, 1, 0, 0>, high = array<i64: 0, 0, 1, 0>} : (tensor<2x8x8x4xf32>) -> tensor<2x9x9x4xf32>
  %m = "tinytrain.max_pool2d"(%p) {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, padding = array<i64: 1, 1, 1, 1>} : (tensor<2x9x9x4xf32>) -> tensor<2x5x5x4xf32>
  %h = "tinytrain.hardswish"(%m) : (tensor<2x5x5x4xf32>) -> tensor<2x5x5x4xf32>
  %s = "tinytrain.slice"(%h) {offsets = array<i64: 0, 0, 0, 1>} : (tensor<2x5x5x4xf32>) -> tensor<2x5x5x2xf32>
  %cat = "tinytrain.concat"(%h, %s) {axis = 3 : i64} : (tensor<2x5x5x4xf32>, tensor<2x5x5x2xf32>) -> tensor<2x5x5x6xf32>
  %a = "tinytrain.channel_affine"(%cat, %bw, %bb) : (tensor<2x5x5x6xf32>, tensor<6xf32>, tensor<6xf32>) -> tensor<2x5x5x6xf32>
  %g = "tinytrain.global_avg_pool"(%a) : (tensor<2x5x5x6xf32>) -> tensor<2x6xf32>
  %gr = "tinytrain.reshape"(%g) : (tensor<2x6xf32>) -> tensor<2x1x1x6xf32>
  %sg = "tinytrain.sigmoid"(%gr) : (tensor<2x1x1x6xf32>) -> tensor<2x1x1x6xf32>
  %y = "tinytrain.mul"(%a, %sg) : (tensor<2x5x5x6xf32>, tensor<2x1x1x6xf32>) -> tensor<2x5x5x6xf32>
  %lr = "tinytrain.leaky_relu"(%y) {alpha = 0.1 : f32} : (tensor<2x5x5x6xf32>) -> tensor<2x5x5x6xf32>
  %hs = "tinytrain.hardsigmoid"(%lr) : (tensor<2x5x5x6xf32>) -> tensor<2x5x5x6xf32>
  %ap = "tinytrain.avg_pool2d"(%hs) {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, padding = array<i64: 0, 0, 1, 1>, divisor = "valid"} : (tensor<2x5x5x6xf32>) -> tensor<2x3x3x6xf32>
  %q = "tinytrain.global_avg_pool"(%ap) : (tensor<2x3x3x6xf32>) -> tensor<2x6xf32>
  %l = "tinytrain.linear"(%q, %fw, %fb) : (tensor<2x6xf32>, tensor<5x6xf32>, tensor<5xf32>) -> tensor<2x5xf32>
  return %l : tensor<2x5xf32>
}
"""


def _torch_e2e(p, x):
    """The forward above in PyTorch (NCHW; the conv weight given as HWIO)."""
    c = F.conv2d(x, p["conv.weight"].permute(3, 2, 0, 1), p["conv.bias"], padding=1)
    m = F.max_pool2d(F.pad(c, (0, 1, 1, 0)), 3, 2, 1)
    h = F.hardswish(m)
    a = torch.cat([h, h[:, 1:3]], 1) * p["bn.weight"][:, None, None] + p["bn.bias"][:, None, None]
    y = a * torch.sigmoid(a.mean((2, 3)))[:, :, None, None]
    hs = F.hardsigmoid(F.leaky_relu(y, 0.1))
    q = _torch_avg_pool(hs, (2, 2), (2, 2), (0, 0, 1, 1), "valid").mean((2, 3))
    return F.linear(q, p["fc.weight"], p["fc.bias"])


def test_layer_ops_end_to_end_gradients():
    """autodiff{gradients=true} then to-linalg: every parameter gradient and the loss of a small
    network using every forward layer op match torch.autograd (rtol 1e-5, atol 1e-6)."""
    from tinytrain.pipeline import run_pipeline

    rng = np.random.default_rng(5)
    shapes = {"conv.weight": (3, 3, 3, 4), "conv.bias": (4,), "bn.weight": (6,), "bn.bias": (6,),
              "fc.weight": (5, 6), "fc.bias": (5,)}
    params = {k: (rng.standard_normal(s) * 0.7).astype(np.float32) for k, s in shapes.items()}
    x = _rand(rng, (2, 8, 8, 3))
    labels = np.array([3, 1], np.int32)
    module = parse_module(E2E_FORWARD, new_context(), stage="test")
    run_pipeline(module, "autodiff{trainable=all gradients=true},to-linalg")
    host = HostModule(compile_host(str(module)))
    outs = host.call("gradients", *params.values(), x, labels)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    loss = F.cross_entropy(_torch_e2e(tp, _nchw(x)), torch.tensor(labels, dtype=torch.long))
    grads = torch.autograd.grad(loss, list(tp.values()))
    assert len(outs) == len(grads) + 1
    for name, got, want in zip(params, outs, grads):
        np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)
    np.testing.assert_allclose(outs[-1], loss.item(), rtol=RTOL)
