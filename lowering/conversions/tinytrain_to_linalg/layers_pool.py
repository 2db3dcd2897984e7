"""Windowed pooling (issue #7): `max_pool2d`, `avg_pool2d` and their gradients, NHWC.

Padding is `(top, left, bottom, right)`. Every pooled input is padded (max: -inf, so padding
never wins; average: zeros) and cropped to exactly the rows/columns the windows read,
`(O - 1) * s + K` (`pad_window`), like the convolution input (IREE 3.13 miscompiles a windowed
op whose input has unread rows once unit dims fold).

- `max_pool2d`: `linalg.pooling_nhwc_max` into a -inf filled output.
- `avg_pool2d`: `linalg.pooling_nhwc_sum`, then a division by the divisor: `kh * kw` for
  `divisor = "window"` (PyTorch's `count_include_pad=True`), or, for `"valid"`, the number of
  in-bounds input elements of the window, computed per output position from `linalg.index`:
  `(min(o*s - p + k, size) - max(o*s - p, 0))` per spatial dim.
- `avg_pool2d_grad`: `dy / divisor` is zero-dilated by the stride at offset `K - 1` (a
  strided `tensor.insert_slice` into zeros) and summed by a stride-1 `pooling_nhwc_sum` with the
  same (symmetric) window; the rows starting at the top/left padding are the input's.
- `max_pool2d_grad`, PyTorch's CPU tie rule (each window's gradient goes to its FIRST maximum in
  row-major order):
  1. one `linalg.generic` computes, per output, (max, flat index `i * KW + j` in the window) over
     the in-bounds window positions; the combine step takes the lexicographic maximum of
     `(value, -index)`, which is independent of the order in which the reduction is run;
  2. a gather instead of a scatter: the output gradients and argmax indices are zero-/(-1)-
     dilated like the average gradient, and each input position sums, over its `K` window
     offsets `(i, j)`, the gradients whose argmax is that position, i.e. whose index equals
     `(KH - 1 - i) * KW + (KW - 1 - j)`.
  Only positive-coefficient indexing maps are used (see conv.py on IREE 3.13).
"""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import arith, linalg, tensor

from tinytrain.dialects import tinytrain_layers as tl

from .builders import (PARALLEL, REDUCTION, amap, const_f32, const_index, dims, empty, full, generic,
                       identity, shape_of)
from .layers_shape import crop, pad_to

__all__ = ["pad_window", "convert_max_pool2d", "convert_avg_pool2d", "convert_avg_pool2d_grad",
           "convert_max_pool2d_grad", "PATTERNS"]

_NEG_INF = float("-inf")


def _attrs(op):
    a = op.attributes
    return (list(ir.DenseI64ArrayAttr(a["kernel"])), list(ir.DenseI64ArrayAttr(a["strides"])),
            list(ir.DenseI64ArrayAttr(a["padding"])))


def pad_window(x: ir.Value, padding, kernel, out_hw, strides, value: float) -> ir.Value:
    """`x` (NHWC) padded with `value` on the top/left by `padding[:2]` and cropped or padded on
    the bottom/right to exactly the `(O - 1) * s + K` rows/columns the windows read."""
    n, h, w, c = shape_of(x)
    need = [(o - 1) * s + k for o, s, k in zip(out_hw, strides, kernel)]
    top, left = padding[0], padding[1]
    high = [max(0, need[0] - h - top), max(0, need[1] - w - left)]
    padded = pad_to(x, [0, top, left, 0], [0, high[0], high[1], 0], value)
    return crop(padded, [0, 0, 0, 0], [n, need[0], need[1], c])


def _window(kernel) -> ir.Value:
    """The shape-only window operand of the named pooling ops."""
    return tensor.EmptyOp(list(kernel), ir.F32Type.get()).result


def _idx(i: int) -> ir.Value:
    return linalg.IndexOp(i).result


def _valid_count(o: ir.Value, size: int, k: int, s: int, p: int) -> ir.Value:
    """Number of in-bounds input positions of window `o` along one dim (index)."""
    start = arith.SubIOp(arith.MulIOp(o, const_index(s)).result, const_index(p)).result
    end = arith.AddIOp(start, const_index(k)).result
    lo = arith.MaxSIOp(start, const_index(0)).result
    hi = arith.MinSIOp(end, const_index(size)).result
    return arith.SubIOp(hi, lo).result


def _divide_by_divisor(op, v: ir.Value, in_hw, kernel, strides, padding) -> ir.Value:
    """`v` (`[N, OH, OW, C]`) divided elementwise by the op's pooling divisor."""
    shape = shape_of(v)
    divisor = ir.StringAttr(op.attributes["divisor"]).value
    if divisor == "window":
        k = const_f32(float(kernel[0] * kernel[1]))
        return generic([v], empty(shape), [identity(4)] * 2, [PARALLEL] * 4,
                       lambda a, acc: arith.DivFOp(a, k).result)

    def body(a, acc):
        ch = _valid_count(_idx(1), in_hw[0], kernel[0], strides[0], padding[0])
        cw = _valid_count(_idx(2), in_hw[1], kernel[1], strides[1], padding[1])
        count = arith.IndexCastOp(ir.IntegerType.get_signless(32), arith.MulIOp(ch, cw).result).result
        return arith.DivFOp(a, arith.SIToFPOp(ir.F32Type.get(), count).result).result

    return generic([v], empty(shape), [identity(4)] * 2, [PARALLEL] * 4, body)


def convert_max_pool2d(op, adaptor, type_converter, rewriter):
    kernel, strides, padding = _attrs(op)
    out_shape = shape_of(op.result)
    with rewriter.ip, op.location:
        xp = pad_window(adaptor.input, padding, kernel, out_shape[1:3], strides, _NEG_INF)
        result = linalg.pooling_nhwc_max(xp, _window(kernel), outs=[full(out_shape, _NEG_INF)],
                                         strides=strides, dilations=[1, 1])
    rewriter.replace_op(op, [result])


def convert_avg_pool2d(op, adaptor, type_converter, rewriter):
    kernel, strides, padding = _attrs(op)
    x = adaptor.input
    out_shape = shape_of(op.result)
    with rewriter.ip, op.location:
        xp = pad_window(x, padding, kernel, out_shape[1:3], strides, 0.0)
        total = linalg.pooling_nhwc_sum(xp, _window(kernel), outs=[full(out_shape, 0.0)],
                                        strides=strides, dilations=[1, 1])
        result = _divide_by_divisor(op, total, shape_of(x)[1:3], kernel, strides, padding)
    rewriter.replace_op(op, [result])


def _dilate(v: ir.Value, fill: ir.Value, kernel, strides, padding, in_hw) -> ir.Value:
    """`v` (`[N, OH, OW, C]`) inserted at stride `s` and offset `K - 1` into `fill`-ed rows,
    cropped to the `top + H + K - 1` rows (from `top`) that a stride-1 window over the input
    reads: row `top + h + i` holds output `o` iff `h = o * s + (K - 1 - i) - top`."""
    n, oh, ow, c = shape_of(v)
    kh, kw = kernel
    rows = max(padding[0] + in_hw[0] + kh - 1, kh - 1 + (oh - 1) * strides[0] + 1)
    cols = max(padding[1] + in_hw[1] + kw - 1, kw - 1 + (ow - 1) * strides[1] + 1)
    elem = ir.RankedTensorType(v.type).element_type
    base = linalg.fill(fill, outs=[tensor.EmptyOp([n, rows, cols, c], elem).result])
    spread = tensor.InsertSliceOp(v, base, [], [], [], [0, kh - 1, kw - 1, 0], [n, oh, ow, c],
                                  [1, strides[0], strides[1], 1]).result
    return crop(spread, [0, padding[0], padding[1], 0],
                [n, in_hw[0] + kh - 1, in_hw[1] + kw - 1, c])


def convert_avg_pool2d_grad(op, adaptor, type_converter, rewriter):
    kernel, strides, padding = _attrs(op)
    dy = adaptor.grad_output
    in_shape = shape_of(op.result)
    with rewriter.ip, op.location:
        scaled = _divide_by_divisor(op, dy, in_shape[1:3], kernel, strides, padding)
        spread = _dilate(scaled, const_f32(0.0), kernel, strides, padding, in_shape[1:3])
        result = linalg.pooling_nhwc_sum(spread, _window(kernel), outs=[full(in_shape, 0.0)],
                                         strides=[1, 1], dilations=[1, 1])
    rewriter.replace_op(op, [result])


def _i32(value: int) -> ir.Value:
    i32 = ir.IntegerType.get_signless(32)
    return arith.ConstantOp(i32, ir.IntegerAttr.get(i32, value)).result


def _to_i32(v: ir.Value) -> ir.Value:
    return arith.IndexCastOp(ir.IntegerType.get_signless(32), v).result


def _in_bounds(o: ir.Value, i: ir.Value, s: int, p: int, size: int) -> ir.Value:
    """`p <= o * s + i < p + size`: the padded-input row of window `o`, offset `i`, is real."""
    row = arith.AddIOp(arith.MulIOp(o, const_index(s)).result, i).result
    ge = arith.CmpIOp(arith.CmpIPredicate.sge, row, const_index(p)).result
    lt = arith.CmpIOp(arith.CmpIPredicate.slt, row, const_index(p + size)).result
    return arith.AndIOp(ge, lt).result


def _first_argmax(op, x: ir.Value, kernel, strides, padding, out_shape) -> ir.Value:
    """Per output `[N, OH, OW, C]`, the flat window index `i * KW + j` (i32) of the first
    maximum among the window's in-bounds positions."""
    n, h, w, c = shape_of(x)
    kh, kw = kernel
    sh, sw = strides
    xp = pad_window(x, padding, kernel, out_shape[1:3], strides, _NEG_INF)
    i32 = ir.IntegerType.get_signless(32)
    max_init = full(out_shape, _NEG_INF)
    idx_init = linalg.fill(_i32(kh * kw), outs=[tensor.EmptyOp(out_shape, i32).result])
    n_, oh_, ow_, c_, i_, j_ = dims(6)
    out_map = amap(6, [n_, oh_, ow_, c_])
    # The shape-only window operand gives the loop bounds of (i, j), as in the named pooling ops.
    maps = [amap(6, [n_, oh_ * sh + i_, ow_ * sw + j_, c_]), amap(6, [i_, j_]), out_map, out_map]
    gen = linalg.GenericOp_([xp, _window(kernel)], [max_init, idx_init], maps,
                            [PARALLEL] * 4 + [REDUCTION] * 2)
    block = gen.regions[0].blocks[0]
    with ir.InsertionPoint(block):
        v, _, best, best_idx = block.arguments
        i, j = _idx(4), _idx(5)
        flat = _to_i32(arith.AddIOp(arith.MulIOp(i, const_index(kw)).result, j).result)
        valid = arith.AndIOp(_in_bounds(_idx(1), i, sh, padding[0], h),
                             _in_bounds(_idx(2), j, sw, padding[1], w)).result
        greater = arith.CmpFOp(arith.CmpFPredicate.OGT, v, best).result
        tie = arith.AndIOp(arith.CmpFOp(arith.CmpFPredicate.OEQ, v, best).result,
                           arith.CmpIOp(arith.CmpIPredicate.slt, flat, best_idx).result).result
        take = arith.AndIOp(valid, arith.OrIOp(greater, tie).result).result
        linalg.YieldOp([arith.SelectOp(take, v, best).result, arith.SelectOp(take, flat, best_idx).result])
    return gen.results[1]


def convert_max_pool2d_grad(op, adaptor, type_converter, rewriter):
    kernel, strides, padding = _attrs(op)
    x, dy = adaptor.input, adaptor.grad_output
    in_shape = shape_of(op.result)
    kh, kw = kernel
    with rewriter.ip, op.location:
        argmax = _first_argmax(op, x, kernel, strides, padding, shape_of(dy))
        spread_dy = _dilate(dy, const_f32(0.0), kernel, strides, padding, in_shape[1:3])
        spread_idx = _dilate(argmax, _i32(-1), kernel, strides, padding, in_shape[1:3])
        n_, h_, w_, c_, i_, j_ = dims(6)
        window = amap(6, [n_, h_ + i_, w_ + j_, c_])

        def body(g, a, _, acc):
            i, j = _idx(4), _idx(5)
            offset = arith.AddIOp(arith.MulIOp(i, const_index(kw)).result, j).result
            wanted = _to_i32(arith.SubIOp(const_index(kh * kw - 1), offset).result)
            hit = arith.CmpIOp(arith.CmpIPredicate.eq, a, wanted).result
            return arith.AddFOp(acc, arith.SelectOp(hit, g, const_f32(0.0)).result).result

        result = generic([spread_dy, spread_idx, _window(kernel)], full(in_shape, 0.0),
                         [window, window, amap(6, [i_, j_]), amap(6, [n_, h_, w_, c_])],
                         [PARALLEL] * 4 + [REDUCTION] * 2, body)
    rewriter.replace_op(op, [result])


PATTERNS = {
    tl.MaxPool2dOp: convert_max_pool2d,
    tl.MaxPool2dGradOp: convert_max_pool2d_grad,
    tl.AvgPool2dOp: convert_avg_pool2d,
    tl.AvgPool2dGradOp: convert_avg_pool2d_grad,
}
