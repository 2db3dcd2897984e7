"""Elementwise ops: `add`, `relu`, `relu6` and their gradients, `sgd_update` and `sgd_momentum`;
each one `linalg.generic` with identity maps. ReLU is `x` clamped below at 0, ReLU6 `x` clamped to
[0, 6], lowered as the pass's `clamp` option says (`builders.clamp_f32`: compare+select, or
`maxnumf`/`minnumf`); the gradients pass `dy` where the forward output is strictly inside the
active range (`0 < y` / `0 < y < 6`)."""

from __future__ import annotations

import functools

from torch_mlir import ir
from torch_mlir.dialects import arith, tensor

from tinytrain.dialects import tinytrain as tt

from .builders import CLAMPS, clamp_f32, const_f32, elementwise

__all__ = ["add_f32", "convert_add", "convert_relu", "convert_relu6", "convert_relu_grad",
           "convert_relu6_grad", "convert_sgd_update", "convert_sgd_momentum", "PATTERNS", "CLAMP_PATTERNS"]


def add_f32(lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lhs + rhs`, two f32 tensors of one shape, as one elementwise `linalg.generic`."""
    return elementwise([lhs, rhs], lambda a, b, acc: arith.AddFOp(a, b).result)


def convert_add(op, adaptor, type_converter, rewriter):
    with rewriter.ip, op.location:
        result = add_f32(adaptor.lhs, adaptor.rhs)
    rewriter.replace_op(op, [result])


def convert_relu(op, adaptor, type_converter, rewriter, clamp: str = "select"):
    with rewriter.ip, op.location:
        result = elementwise([adaptor.input], lambda a, acc: clamp_f32(a, 0.0, None, clamp))
    rewriter.replace_op(op, [result])


def convert_relu6(op, adaptor, type_converter, rewriter, clamp: str = "select"):
    with rewriter.ip, op.location:
        result = elementwise([adaptor.input], lambda a, acc: clamp_f32(a, 0.0, 6.0, clamp))
    rewriter.replace_op(op, [result])


def convert_relu_grad(op, adaptor, type_converter, rewriter):
    with rewriter.ip, op.location:
        zero = const_f32(0.0)

        def body(y, dy, acc):
            active = arith.CmpFOp(arith.CmpFPredicate.OGT, y, zero).result
            return arith.SelectOp(active, dy, zero).result

        result = elementwise([adaptor.output, adaptor.grad_output], body)
    rewriter.replace_op(op, [result])


def convert_relu6_grad(op, adaptor, type_converter, rewriter):
    with rewriter.ip, op.location:
        zero, six = const_f32(0.0), const_f32(6.0)

        def body(y, dy, acc):
            above = arith.CmpFOp(arith.CmpFPredicate.OGT, y, zero).result
            below = arith.CmpFOp(arith.CmpFPredicate.OLT, y, six).result
            active = arith.AndIOp(above, below).result
            return arith.SelectOp(active, dy, zero).result

        result = elementwise([adaptor.output, adaptor.grad_output], body)
    rewriter.replace_op(op, [result])


def _loss_is_finite(loss_tensor) -> ir.Value:
    """i1: the rank-0 loss is finite, as `loss - loss == 0` (false for NaN and +-Inf); computed
    once outside the generic of a guarded update."""
    loss = tensor.ExtractOp(loss_tensor, []).result
    diff = arith.SubFOp(loss, loss).result
    return arith.CmpFOp(arith.CmpFPredicate.OEQ, diff, const_f32(0.0)).result


def convert_sgd_update(op, adaptor, type_converter, rewriter):
    """`loss finite ? param - lr * grad : param`, with `lr` the op's f32 attribute."""
    with rewriter.ip, op.location:
        lr = const_f32(ir.FloatAttr(op.attributes["lr"]))
        finite = _loss_is_finite(adaptor.loss)

        def body(p, g, acc):
            stepped = arith.SubFOp(p, arith.MulFOp(lr, g).result).result
            return arith.SelectOp(finite, stepped, p).result

        result = elementwise([adaptor.param, adaptor.grad], body)
    rewriter.replace_op(op, [result])


def convert_sgd_momentum(op, adaptor, type_converter, rewriter):
    """`loss finite ? momentum * buffer + grad : buffer` (PyTorch's `buf.mul_(m).add_(g)`: a
    multiply then an add, in that order)."""
    with rewriter.ip, op.location:
        m = const_f32(ir.FloatAttr(op.attributes["momentum"]))
        finite = _loss_is_finite(adaptor.loss)

        def body(v, g, acc):
            stepped = arith.AddFOp(arith.MulFOp(m, v).result, g).result
            return arith.SelectOp(finite, stepped, v).result

        result = elementwise([adaptor.buffer, adaptor.grad], body)
    rewriter.replace_op(op, [result])

#: clamp lowering (`builders.CLAMPS`) -> the patterns of the ops whose lowering depends on it
#: (module-level objects: the bindings do not keep a pattern callable alive).
CLAMP_PATTERNS = {mode: {tt.ReluOp: functools.partial(convert_relu, clamp=mode),
                         tt.Relu6Op: functools.partial(convert_relu6, clamp=mode)} for mode in CLAMPS}

PATTERNS = {
    **CLAMP_PATTERNS["select"],
    tt.AddOp: convert_add,
    tt.ReluGradOp: convert_relu_grad,
    tt.Relu6GradOp: convert_relu6_grad,
    tt.SgdUpdateOp: convert_sgd_update,
    tt.SgdMomentumOp: convert_sgd_momentum,
}
