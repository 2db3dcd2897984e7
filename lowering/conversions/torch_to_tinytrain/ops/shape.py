"""Shape ops (flatten / view / reshape, torch.cat, zero padding) and ops that are the identity at inference
(dropout in eval mode, clone, contiguous, detach)."""

from __future__ import annotations

from torch_mlir import ir

from tinytrain.dialects.tinytrain import ReshapeOp, TransposeOp
from tinytrain.dialects.tinytrain_layers import ConcatOp, PadOp

from ..conversion import Conversion, TVal, nhwc_shape, tensor_type


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


#: Dim of the NHWC tinytrain value that holds PyTorch's (NCHW) dim d of an activation map.
_NHWC_DIM = (0, 3, 1, 2)


def _dim(t: TVal, d: int) -> int:
    d %= len(t.shape)
    return _NHWC_DIM[d] if t.nhwc else d


def cat(cv: Conversion, op) -> None:
    """`aten.cat(tensors, dim)` (e.g. torch.cat along channels): a chain of binary concats."""
    items = cv.tensors(op, op.operands[0])
    dim = cv.const(op, op.operands[1])
    if any(t.nhwc != items[0].nhwc or len(t.shape) != len(items[0].shape) for t in items):
        cv.fail(op, "torch.cat of tensors of different ranks or layouts is not supported")
    axis = _dim(items[0], dim)
    loc = cv.loc(op)
    acc = items[0]
    d = dim % len(acc.shape)
    for t in items[1:]:
        shape = list(acc.shape)
        shape[d] += t.shape[d]
        stored = nhwc_shape(shape) if acc.nhwc else shape
        y = ConcatOp(acc.value, t.value, ir.IntegerAttr.get(ir.IntegerType.get_signless(64), axis),
                     tensor_type(stored), loc=loc).result
        acc = TVal(y, shape, acc.nhwc)
    cv.bind(op.result, acc)


def zero_pad(cv: Conversion, op, x: TVal, low: list[int], high: list[int]) -> TVal:
    """`x` (PyTorch-order pads `low` / `high` per dim) zero-padded by a `tinytrain.pad`."""
    shape = [s + lo + hi for s, lo, hi in zip(x.shape, low, high)]
    if x.nhwc:
        low, high, stored = nhwc_shape(low), nhwc_shape(high), nhwc_shape(shape)
    else:
        stored = shape
    y = PadOp(x.value, ir.DenseI64ArrayAttr.get(low), ir.DenseI64ArrayAttr.get(high),
              tensor_type(stored), loc=cv.loc(op)).result
    return TVal(y, shape, x.nhwc)


def _pad(cv: Conversion, op, pad, mode: str, value) -> None:
    x = cv.tensor(op, op.operands[0])
    if mode != "constant" or value not in (None, 0, 0.0):
        cv.fail(op, f"padding with mode='{mode}', value={value} is not supported; only zero padding "
                    "(nn.ZeroPad2d, F.pad(x, pad) with the default mode and value 0)")
    if len(pad) % 2 or len(pad) // 2 > len(x.shape) or any(p < 0 for p in pad):
        cv.fail(op, f"padding {list(pad)} is not supported; give non-negative (left, right, top, "
                    "bottom) amounts (cropping with negative padding is not supported)")
    rank = len(x.shape)
    low, high = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):  # F.pad lists the last dim first
        low[rank - 1 - i], high[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
    cv.bind(op.result, zero_pad(cv, op, x, low, high))


def pad(cv: Conversion, op) -> None:
    """`aten.pad(x, pad, mode, value)` (F.pad, nn.ZeroPad2d)."""
    pads, mode, value = (cv.const(op, v) for v in list(op.operands)[1:4])
    _pad(cv, op, pads, mode, value)


def constant_pad_nd(cv: Conversion, op) -> None:
    """`aten.constant_pad_nd(x, pad, value)`."""
    _pad(cv, op, cv.const(op, op.operands[1]), "constant", cv.const(op, op.operands[2]))
