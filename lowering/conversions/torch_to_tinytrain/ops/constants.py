"""Constants of the torch dialect: Python values, lists, and the tagged parameter literals.

They are converted before every other op (a BatchNorm's parameters are defined after the conv it
folds into) and build nothing in @forward: handlers read them with `Conversion.const` and
`Conversion.param_name`.
"""

from __future__ import annotations

from torch_mlir import ir

from ..conversion import PARAM_ATTR, Conversion, ParamRef, TensorList


def literal(cv: Conversion, op) -> None:
    """`torch.vtensor.literal` tagged by the importer's hook with the parameter's name."""
    if PARAM_ATTR not in op.attributes:
        cv.fail(op, "a constant tensor inside the model is not supported; make it a parameter "
                    "or a buffer of the module")
    cv.bind(op.result, ParamRef(ir.StringAttr(op.attributes[PARAM_ATTR]).value))


def constant_int(cv: Conversion, op) -> None:
    cv.bind(op.result, ir.IntegerAttr(op.attributes["value"]).value)


def constant_float(cv: Conversion, op) -> None:
    cv.bind(op.result, ir.FloatAttr(op.attributes["value"]).value)


def constant_bool(cv: Conversion, op) -> None:
    cv.bind(op.result, bool(ir.BoolAttr(op.attributes["value"]).value))


def constant_none(cv: Conversion, op) -> None:
    cv.bind(op.result, None)


def constant_str(cv: Conversion, op) -> None:
    cv.bind(op.result, ir.StringAttr(op.attributes["value"]).value)


def list_construct(cv: Conversion, op) -> None:
    """A list of constants, or (`torch.cat`'s operand) of tensors: constants are converted before
    the tensors exist, so a tensor list keeps the torch values; `tensor_list` resolves them."""
    if all(v in cv.vals for v in op.operands):
        cv.bind(op.result, [cv.const(op, v) for v in op.operands])
    else:
        cv.bind(op.result, TensorList(list(op.operands)))
