"""Fully connected layer (`linear`, weight `[out, in]` as PyTorch) and its two gradients, each one
`linalg.generic` contraction; the forward accumulator is the bias broadcast over the batch."""

from __future__ import annotations

from torch_mlir.dialects import arith

from tinytrain.dialects import tinytrain as tt

from .builders import PARALLEL, REDUCTION, amap, dims, empty, full, generic, identity, shape_of

__all__ = ["convert_linear", "convert_linear_grad_input", "convert_linear_grad_weight", "PATTERNS"]

_CONTRACTION = [PARALLEL, PARALLEL, REDUCTION]


def _mac(x, y, acc):
    return arith.AddFOp(acc, arith.MulFOp(x, y).result).result


def convert_linear(op, adaptor, type_converter, rewriter):
    """`y[n, o] = b[o] + sum_i x[n, i] * W[o, i]`."""
    x, w, bias = adaptor.input, adaptor.weight, adaptor.bias
    n, o = shape_of(op.result)
    with rewriter.ip, op.location:
        d0, d1 = dims(2)
        init = generic([bias], empty([n, o]), [amap(2, [d1]), identity(2)], [PARALLEL] * 2,
                       lambda b, acc: b)
        n_, o_, i_ = dims(3)
        maps = [amap(3, [n_, i_]), amap(3, [o_, i_]), amap(3, [n_, o_])]
        result = generic([x, w], init, maps, _CONTRACTION, _mac)
    rewriter.replace_op(op, [result])


def convert_linear_grad_input(op, adaptor, type_converter, rewriter):
    """`dx[n, i] = sum_o dy[n, o] * W[o, i]`."""
    g, w = adaptor.grad_output, adaptor.weight
    n, i = shape_of(op.result)
    with rewriter.ip, op.location:
        n_, i_, o_ = dims(3)
        maps = [amap(3, [n_, o_]), amap(3, [o_, i_]), amap(3, [n_, i_])]
        result = generic([g, w], full([n, i]), maps, _CONTRACTION, _mac)
    rewriter.replace_op(op, [result])


def convert_linear_grad_weight(op, adaptor, type_converter, rewriter):
    """`dW[o, i] = sum_n x[n, i] * dy[n, o]`."""
    x, g = adaptor.input, adaptor.grad_output
    o, i = shape_of(op.result)
    with rewriter.ip, op.location:
        o_, i_, n_ = dims(3)
        maps = [amap(3, [n_, i_]), amap(3, [n_, o_]), amap(3, [o_, i_])]
        result = generic([x, g], full([o, i]), maps, _CONTRACTION, _mac)
    rewriter.replace_op(op, [result])


PATTERNS = {
    tt.LinearOp: convert_linear,
    tt.LinearGradInputOp: convert_linear_grad_input,
    tt.LinearGradWeightOp: convert_linear_grad_weight,
}
