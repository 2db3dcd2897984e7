"""Shape ops (flatten / view / reshape) and ops that are the identity at inference
(dropout in eval mode, clone, contiguous, detach)."""

from __future__ import annotations

from torch_mlir import ir

from tinytrain.dialects.tinytrain import ReshapeOp, TransposeOp

from ..conversion import Conversion, TVal, tensor_type


def reshape(cv: Conversion, op) -> None:
    """flatten / view / reshape to a rank < 4 shape, in PyTorch's (NCHW) element order."""
    x = cv.tensor(op, op.operands[0])
    shape = cv.result_shape(op)
    if len(shape) == 4:
        cv.fail(op, "reshape to a 4-D tensor is not supported")
    loc = cv.loc(op)
    src = x.value
    if x.nhwc and not (x.shape[2] == 1 and x.shape[3] == 1):
        # Back to NCHW before flattening, so the elements keep PyTorch's order. (An NHWC
        # [N, 1, 1, C] already has the element order of NCHW [N, C, 1, 1].)
        src = TransposeOp(src, ir.DenseI64ArrayAttr.get([0, 3, 1, 2]), tensor_type(x.shape), loc=loc).result
    y = ReshapeOp(src, tensor_type(shape), loc=loc).result
    cv.bind(op.result, TVal(y, shape))


def identity(cv: Conversion, op) -> None:
    """clone / contiguous / detach: the result is the input."""
    cv.bind(op.result, cv.tensor(op, op.operands[0]))


def dropout(cv: Conversion, op) -> None:
    """`aten.dropout(x, p, train)`: the identity in eval mode."""
    if cv.const(op, op.operands[2]):
        cv.fail(op, "Dropout in training mode; call model.eval() first")
    identity(cv, op)
