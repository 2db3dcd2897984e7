"""Elementwise activations: ReLU, ReLU6 (= Hardtanh(0, 6)), Hardswish, Hardsigmoid, Sigmoid,
LeakyReLU. The result keeps the input's layout (NHWC for an activation map)."""

from __future__ import annotations

from torch_mlir import ir

from tinytrain.dialects.tinytrain import Relu6Op, ReluOp
from tinytrain.dialects.tinytrain_layers import HardsigmoidOp, HardswishOp, LeakyReluOp, SigmoidOp

from ..conversion import Conversion, TVal


def _unary(cv: Conversion, op, op_class, *attrs) -> None:
    x = cv.tensor(op, op.operands[0])
    y = op_class(x.value, *attrs, x.value.type, loc=cv.loc(op)).result
    cv.bind(op.result, TVal(y, x.shape, x.nhwc))


def relu(cv: Conversion, op) -> None:
    _unary(cv, op, ReluOp)


def relu6(cv: Conversion, op) -> None:
    _unary(cv, op, Relu6Op)


def hardtanh(cv: Conversion, op) -> None:
    lo, hi = cv.const(op, op.operands[1]), cv.const(op, op.operands[2])
    if (lo, hi) != (0.0, 6.0):
        cv.fail(op, f"Hardtanh({lo}, {hi}) is not supported; only ReLU6 = Hardtanh(0, 6)")
    _unary(cv, op, Relu6Op)


def hardswish(cv: Conversion, op) -> None:
    _unary(cv, op, HardswishOp)


def hardsigmoid(cv: Conversion, op) -> None:
    _unary(cv, op, HardsigmoidOp)


def sigmoid(cv: Conversion, op) -> None:
    _unary(cv, op, SigmoidOp)


def leaky_relu(cv: Conversion, op) -> None:
    """`aten.leaky_relu(x, negative_slope)`."""
    alpha = float(cv.const(op, op.operands[1]))
    _unary(cv, op, LeakyReluOp, ir.FloatAttr.get(ir.F32Type.get(), alpha))
