"""Layer activations (issue #7) and their gradients, each one elementwise `linalg.generic`
computing what PyTorch's CPU kernels compute, in the same order of operations:

- hardswish `x * min(max(x + 3, 0), 6) / 6`; its gradient `dy * (x / 3 + 0.5)` for
  `-3 < x < 3`, `dy` from 3 up, 0 up to -3 (at the boundaries: 0 at -3, dy at 3, as torch);
- hardsigmoid `min(max(x + 3, 0), 6) / 6`; its gradient `dy * (1/6)` for `-3 < x < 3`, else 0;
- sigmoid, numerically stable: with `e = exp(-|x|)` (never overflows), `1 / (1 + e)` for
  `x >= 0` and `e / (1 + e)` below; its gradient `dy * (1 - y) * y` from the output y;
- leaky ReLU `x > 0 ? x : alpha * x`; its gradient `x > 0 ? dy : alpha * dy`.
"""

from __future__ import annotations

import functools

from torch_mlir import ir
from torch_mlir.dialects import arith, math

from tinytrain.dialects import tinytrain_layers as tl

from .builders import CLAMPS, clamp_f32, const_f32, elementwise

__all__ = ["convert_hardswish", "convert_hardswish_grad", "convert_hardsigmoid",
           "convert_hardsigmoid_grad", "convert_sigmoid", "convert_sigmoid_grad",
           "convert_leaky_relu", "convert_leaky_relu_grad", "PATTERNS", "CLAMP_PATTERNS"]

_P = arith.CmpFPredicate


def _cmp(pred, a, b):
    return arith.CmpFOp(pred, a, b).result


def _relu6_of_x_plus_3(x, clamp: str):
    """`min(max(x + 3, 0), 6)`, the clamp lowered as `clamp` (`builders.clamp_f32`)."""
    return clamp_f32(arith.AddFOp(x, const_f32(3.0)).result, 0.0, 6.0, clamp)


def _replace_elementwise(op, rewriter, ins, body):
    with rewriter.ip, op.location:
        result = elementwise(ins, body)
    rewriter.replace_op(op, [result])


def convert_hardswish(op, adaptor, type_converter, rewriter, clamp: str = "select"):
    def body(x, acc):
        prod = arith.MulFOp(x, _relu6_of_x_plus_3(x, clamp)).result
        return arith.DivFOp(prod, const_f32(6.0)).result

    _replace_elementwise(op, rewriter, [adaptor.input], body)


def convert_hardswish_grad(op, adaptor, type_converter, rewriter):
    def body(x, dy, acc):
        three, zero = const_f32(3.0), const_f32(0.0)
        slope = arith.AddFOp(arith.DivFOp(x, three).result, const_f32(0.5)).result
        middle = arith.MulFOp(dy, slope).result
        below = _cmp(_P.OLE, x, const_f32(-3.0))
        within = _cmp(_P.OLT, x, three)
        return arith.SelectOp(below, zero, arith.SelectOp(within, middle, dy).result).result

    _replace_elementwise(op, rewriter, [adaptor.input, adaptor.grad_output], body)


def convert_hardsigmoid(op, adaptor, type_converter, rewriter, clamp: str = "select"):
    _replace_elementwise(op, rewriter, [adaptor.input],
                         lambda x, acc: arith.DivFOp(_relu6_of_x_plus_3(x, clamp), const_f32(6.0)).result)


def convert_hardsigmoid_grad(op, adaptor, type_converter, rewriter):
    def body(x, dy, acc):
        inside = arith.AndIOp(_cmp(_P.OGT, x, const_f32(-3.0)), _cmp(_P.OLT, x, const_f32(3.0))).result
        scaled = arith.MulFOp(dy, const_f32(1.0 / 6.0)).result
        return arith.SelectOp(inside, scaled, const_f32(0.0)).result

    _replace_elementwise(op, rewriter, [adaptor.input, adaptor.grad_output], body)


def convert_sigmoid(op, adaptor, type_converter, rewriter):
    def body(x, acc):
        one = const_f32(1.0)
        e = math.ExpOp(arith.NegFOp(math.AbsFOp(x).result).result).result
        denom = arith.AddFOp(one, e).result
        nonneg = _cmp(_P.OGE, x, const_f32(0.0))
        return arith.DivFOp(arith.SelectOp(nonneg, one, e).result, denom).result

    _replace_elementwise(op, rewriter, [adaptor.input], body)


def convert_sigmoid_grad(op, adaptor, type_converter, rewriter):
    def body(y, dy, acc):
        one_minus = arith.SubFOp(const_f32(1.0), y).result
        return arith.MulFOp(arith.MulFOp(dy, one_minus).result, y).result

    _replace_elementwise(op, rewriter, [adaptor.output, adaptor.grad_output], body)


def _alpha(op) -> float:
    return ir.FloatAttr(op.attributes["alpha"]).value


def convert_leaky_relu(op, adaptor, type_converter, rewriter):
    alpha = _alpha(op)

    def body(x, acc):
        positive = _cmp(_P.OGT, x, const_f32(0.0))
        return arith.SelectOp(positive, x, arith.MulFOp(x, const_f32(alpha)).result).result

    _replace_elementwise(op, rewriter, [adaptor.input], body)


def convert_leaky_relu_grad(op, adaptor, type_converter, rewriter):
    alpha = _alpha(op)

    def body(x, dy, acc):
        positive = _cmp(_P.OGT, x, const_f32(0.0))
        return arith.SelectOp(positive, dy, arith.MulFOp(dy, const_f32(alpha)).result).result

    _replace_elementwise(op, rewriter, [adaptor.input, adaptor.grad_output], body)


#: clamp lowering -> the patterns that depend on it (as in `elementwise.CLAMP_PATTERNS`).
CLAMP_PATTERNS = {mode: {tl.HardswishOp: functools.partial(convert_hardswish, clamp=mode),
                         tl.HardsigmoidOp: functools.partial(convert_hardsigmoid, clamp=mode)}
                  for mode in CLAMPS}

PATTERNS = {
    **CLAMP_PATTERNS["select"],
    tl.HardswishGradOp: convert_hardswish_grad,
    tl.HardsigmoidGradOp: convert_hardsigmoid_grad,
    tl.SigmoidOp: convert_sigmoid,
    tl.SigmoidGradOp: convert_sigmoid_grad,
    tl.LeakyReluOp: convert_leaky_relu,
    tl.LeakyReluGradOp: convert_leaky_relu_grad,
}
