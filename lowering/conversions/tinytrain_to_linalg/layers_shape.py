"""Layer shape ops (issue #7): `pad` (`tensor.pad` with a zero body), `slice`
(`tensor.extract_slice`, unit strides) and `concat` (both inputs `tensor.insert_slice`d into a
`tensor.empty` of the result shape, the rhs at the lhs's size along the axis).

`pad_to` is shared with the pooling patterns, which pad with -inf (max) or zero (average)."""

from __future__ import annotations

from collections.abc import Sequence

from torch_mlir import ir
from torch_mlir.dialects import tensor

from tinytrain.dialects import tinytrain_layers as tl

from .builders import const_f32, empty, shape_of, tensor_type

__all__ = ["pad_to", "crop", "convert_pad", "convert_slice", "convert_concat", "PATTERNS"]


def _i64s(op, name: str) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def pad_to(x: ir.Value, low: Sequence[int], high: Sequence[int], value: float = 0.0) -> ir.Value:
    """`x` padded by `low` / `high` elements per dim with the f32 `value` (`x` itself when
    nothing is padded)."""
    if not any(low) and not any(high):
        return x
    shape = [d + lo + hi for d, lo, hi in zip(shape_of(x), low, high)]
    fill = const_f32(value)
    pad = tensor.PadOp(tensor_type(shape), x, [], [], list(low), list(high))
    block = pad.region.blocks.append(*([ir.IndexType.get()] * len(shape)))
    with ir.InsertionPoint(block):
        tensor.YieldOp(fill)
    return pad.result


def crop(x: ir.Value, offsets: Sequence[int], sizes: Sequence[int]) -> ir.Value:
    """`x[offsets : offsets + sizes]` with unit strides (`x` itself when that is all of it)."""
    if not any(offsets) and list(sizes) == shape_of(x):
        return x
    elem = ir.RankedTensorType(x.type).element_type
    return tensor.ExtractSliceOp(tensor_type(sizes, elem), x, [], [], [], list(offsets), list(sizes),
                                 [1] * len(sizes)).result


def convert_pad(op, adaptor, type_converter, rewriter):
    with rewriter.ip, op.location:
        result = pad_to(adaptor.input, _i64s(op, "low"), _i64s(op, "high"), 0.0)
    rewriter.replace_op(op, [result])


def convert_slice(op, adaptor, type_converter, rewriter):
    with rewriter.ip, op.location:
        result = crop(adaptor.input, _i64s(op, "offsets"), shape_of(op.result))
    rewriter.replace_op(op, [result])


def convert_concat(op, adaptor, type_converter, rewriter):
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    lhs, rhs = adaptor.lhs, adaptor.rhs
    out_shape = shape_of(op.result)
    r = len(out_shape)
    with rewriter.ip, op.location:
        cur = empty(out_shape)
        offset = 0
        for part in (lhs, rhs):
            shape = shape_of(part)
            offsets = [offset if d == axis else 0 for d in range(r)]
            cur = tensor.InsertSliceOp(part, cur, [], [], [], offsets, shape, [1] * r).result
            offset += shape[axis]
    rewriter.replace_op(op, [cur])


PATTERNS = {
    tl.PadOp: convert_pad,
    tl.SliceOp: convert_slice,
    tl.ConcatOp: convert_concat,
}
