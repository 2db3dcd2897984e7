"""Binary elementwise ops: the residual add and the (broadcasting) multiply of squeeze-excite."""

from __future__ import annotations

from tinytrain.dialects.tinytrain import AddOp
from tinytrain.dialects.tinytrain_layers import MulOp, broadcast_dims

from ..conversion import Conversion, TVal, nhwc_shape


def add(cv: Conversion, op) -> None:
    """`aten.add.Tensor(a, b, alpha)` with alpha 1 and equal shapes (no broadcasting)."""
    a, b = cv.tensor(op, op.operands[0]), cv.tensor(op, op.operands[1])
    alpha = cv.const(op, op.operands[2])
    if alpha != 1:
        cv.fail(op, f"add with alpha={alpha} is not supported (only alpha=1)")
    if a.shape != b.shape:
        cv.fail(op, f"broadcasting add {a.shape} + {b.shape} is not supported; both operands "
                    "must have the same shape")
    if a.nhwc != b.nhwc:
        cv.fail(op, "add of tensors in different layouts is not supported")
    y = AddOp(a.value, b.value, a.value.type, loc=cv.loc(op)).result
    cv.bind(op.result, TVal(y, a.shape, a.nhwc))


def _stored(t: TVal) -> list[int]:
    """The shape of `t`'s tinytrain value (NHWC for an activation map)."""
    return nhwc_shape(t.shape) if t.nhwc else list(t.shape)


def mul(cv: Conversion, op) -> None:
    """`aten.mul.Tensor(a, b)`: equal shapes, or one operand broadcast to the other's shape (e.g.
    squeeze-excite's `x * s` with s [N, C, 1, 1], in either operand order). The full-shape
    operand becomes the tinytrain op's lhs (multiplication commutes)."""
    if not isinstance(cv.vals.get(op.operands[1]), TVal):
        cv.fail(op, "multiplication by a Python number or a parameter is not supported; multiply "
                    "two activation tensors (e.g. squeeze-excite's x * s)")
    a, b = cv.tensor(op, op.operands[0]), cv.tensor(op, op.operands[1])
    shape = cv.result_shape(op)
    if a.shape != shape:
        a, b = b, a
    if a.shape != shape:
        cv.fail(op, f"mul {a.shape} * {b.shape} broadcasts both operands; one of them must already "
                    f"have the result shape {shape}")
    if a.nhwc != b.nhwc or len(a.shape) != len(b.shape):
        cv.fail(op, f"mul of a {a.shape} and a {b.shape} tensor of different ranks or layouts is not "
                    "supported; give both operands the same rank (e.g. s of shape [N, C, 1, 1])")
    if broadcast_dims(_stored(a), _stored(b)) is None:
        cv.fail(op, f"mul {a.shape} * {b.shape}: the second operand does not broadcast")
    y = MulOp(a.value, b.value, a.value.type, loc=cv.loc(op)).result
    cv.bind(op.result, TVal(y, a.shape, a.nhwc))
