"""Layer shape ops (issue #7): `pad` (a gather over the padded shape, see `pad_to`), `slice`
(`tensor.extract_slice`, unit strides) and `concat` (both inputs `tensor.insert_slice`d into a
`tensor.empty` of the result shape, the rhs at the lhs's size along the axis) and `insert`
(`tensor.insert_slice` into the destination: IREE writes the piece's producer into the
destination's buffer, in place when nothing reads the destination afterwards).

`pad_to` is shared with the pooling patterns, which pad with -inf (max) or zero (average)."""

from __future__ import annotations

from collections.abc import Sequence

from torch_mlir import ir
from torch_mlir.dialects import arith, linalg, tensor

from tinytrain.dialects import tinytrain_layers as tl

from .builders import PARALLEL, const_f32, const_index, empty, generic, identity, shape_of, tensor_type

__all__ = ["pad_to", "crop", "convert_pad", "convert_slice", "convert_concat", "convert_insert", "PATTERNS"]


def _i64s(op, name: str) -> list[int]:
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def pad_to(x: ir.Value, low: Sequence[int], high: Sequence[int], value: float = 0.0) -> ir.Value:
    """`x` padded by `low` / `high` elements per dim with the f32 `value` (`x` itself when
    nothing is padded), as a gather: one `linalg.generic` over the padded shape whose body reads
    `x` (`tensor.extract`) at the clamped source index and selects `value` outside it.

    (Neither `tensor.pad` nor a `tensor.insert_slice` into a filled tensor: IREE 3.13 fuses
    those into the producer's dispatch, and a convolution whose result is padded twice, e.g. a
    `tinytrain.pad` followed by a padded pool, then fails to compile ("write affecting
    operations on global resources are restricted to workgroup distributed contexts"); seen in
    tests/python/test_layer_lowering.py::test_layer_ops_end_to_end_gradients.)"""
    if not any(low) and not any(high):
        return x
    src = shape_of(x)
    shape = [d + lo + hi for d, lo, hi in zip(src, low, high)]
    r = len(shape)

    def body(acc):
        fill = const_f32(value)
        zero = const_index(0)
        indices, inside = [], None
        for d in range(r):
            i = linalg.IndexOp(d).result
            if not low[d] and not high[d]:
                indices.append(i)
                continue
            s = arith.SubIOp(i, const_index(low[d])).result if low[d] else i
            ok = arith.AndIOp(arith.CmpIOp(arith.CmpIPredicate.sge, s, zero).result,
                              arith.CmpIOp(arith.CmpIPredicate.slt, s, const_index(src[d])).result).result
            inside = ok if inside is None else arith.AndIOp(inside, ok).result
            clamped = arith.MinSIOp(arith.MaxSIOp(s, zero).result, const_index(src[d] - 1)).result
            indices.append(clamped)
        v = tensor.ExtractOp(x, indices).result
        return arith.SelectOp(inside, v, fill).result

    return generic([], empty(shape), [identity(r)], [PARALLEL] * r, body)


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
        elem = ir.RankedTensorType(op.result.type).element_type  # f32, or i8/i32 (sparse weights)
        cur = tensor.EmptyOp(out_shape, elem).result
        offset = 0
        for part in (lhs, rhs):
            shape = shape_of(part)
            offsets = [offset if d == axis else 0 for d in range(r)]
            cur = tensor.InsertSliceOp(part, cur, [], [], [], offsets, shape, [1] * r).result
            offset += shape[axis]
    rewriter.replace_op(op, [cur])


def convert_insert(op, adaptor, type_converter, rewriter):
    shape = shape_of(adaptor.piece)
    with rewriter.ip, op.location:
        result = tensor.InsertSliceOp(adaptor.piece, adaptor.dest, [], [], [], _i64s(op, "offsets"), shape,
                                      [1] * len(shape)).result
    rewriter.replace_op(op, [result])


PATTERNS = {
    tl.PadOp: convert_pad,
    tl.SliceOp: convert_slice,
    tl.ConcatOp: convert_concat,
    tl.InsertOp: convert_insert,
}
