"""Binary elementwise ops: the residual add."""

from __future__ import annotations

from tinytrain.dialects.tinytrain import AddOp

from ..conversion import Conversion, TVal


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
