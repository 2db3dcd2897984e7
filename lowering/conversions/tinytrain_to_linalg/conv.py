"""Convolutions: `conv2d`, its input and weight gradients, and `bias_grad`.

- `conv2d`: the named `linalg.conv_2d_nhwc_hwcf` (dense) or `linalg.depthwise_conv_2d_nhwc_hwc`
  (groups == C), so IREE's tuned convolution paths apply; the accumulator is the bias broadcast
  over N, H, W, and the input is zero-padded and cropped to the exact window (`conv_input`). On
  the host, a dense 1x1 one with rows N*H*W that IREE tiles poorly is a matmul over zero-padded
  rows (`ROW_MULTIPLE`).
- `conv2d_grad_input`, as the pass's `convgrad` option says: ("im2col", the host .vmfb's) the
  stride-1 convolution of the zero-dilated, padded output gradient with the spatially flipped,
  in/out-transposed kernel (paper Sec. 2.3; the construction of torch-mlir's
  `convolution_bwd.mlir`; a dense 1x1 window with a long F as a transposed matmul,
  `TRANSPOSED_GRAD_INPUT_MIN_INTENSITY`); ("direct", Cortex-M) one `linalg.generic` over the input gradient's
  index space and the taps that reads W through its map and dY at clamped indices, selecting 0
  for a tap outside dY: no padded/dilated copy of dY (the largest tensor at MobileNetV2's
  backward peak otherwise) and no flipped kernel.
- `conv2d_grad_input_acc` (a running sum plus an input gradient): the same, with the accumulator
  as the reduction's init, so IREE sums into its storage.
- `conv2d_grad_weight` = a contraction of the padded input with the output gradient over
  (N, OH, OW), lowered as the pass's `convgrad` option says (`CONVGRADS`): one `linalg.generic`
  ("direct": the input read bounds-checked, no padded copy; a 1x1 stride-1 window through its
  map), or ("im2col", the host .vmfb's) for dense windows other than 1x1 stride 1 im2col +
  a matmul-like `linalg.generic`, for depthwise windows one stride-1 contraction per stride phase
  over the batch stacked into one image.
- `bias_grad` = the sum of dY over all but the channel dim (a reduction, or with "im2col"
  `ones @ dY` as a `linalg.matmul`).
"""

from __future__ import annotations

import functools

from torch_mlir import ir
from torch_mlir.dialects import arith, linalg, tensor

from tinytrain.dialects import tinytrain as tt

from .kernels import KERNELS
from .builders import (PARALLEL, REDUCTION, amap, const_f32, conv_input, dims, empty, full, generic,
                       identity, reshape, shape_of, tensor_type, const_index, unsupported)
from .elementwise import add_f32

__all__ = ["convert_conv2d", "convert_conv2d_grad_input", "convert_conv2d_grad_input_acc", "convert_conv2d_grad_weight",
           "convert_bias_grad", "PATTERNS", "CONVGRADS", "CONVGRAD_PATTERNS", "GRAD_INPUT_PATTERNS"]

#: How `conv2d_grad_weight`, `bias_grad` and `conv2d_grad_input` are lowered; the
#: `to-linalg{convgrad=...}` option, set from the target by `compile()` (`CONVGRAD_BY_TARGET`).
#: Dense 1x1 stride-1 weight gradients are one contraction either way. Input gradients: "direct"
#: is the bounds-checked generic (`_padfree_grad_input`), "im2col" the named conv of the padded,
#: dilated dY (`_padded_grad_input`).
#: - "direct": one `linalg.generic` reducing over (N, OH, OW), the input read at `oh*s + kh - p`
#:   bounds-checked (`_padfree_grad_weight`); no buffer beyond the result, no padded input. The Cortex-M targets' (the im2col buffer of MobileNetV2's first
#:   conv at 128 px, N*OH*OW*KH*KW*C*4 bytes = 442 KB, does not fit a 256 KB device).
#: - "im2col": dense: every window of the padded input gathered as one row, then `cols^T @ dY`
#:   (IREE tiles and vectorizes it as a matmul: the first conv's gradient of MbV2-w0.35 128 b8
#:   7.8x faster on the host, 15.6x in a run under load 9, bench/conv_grad_kernels.py). Depthwise: per stride phase, the batch
#:   stacked into one image and one stride-1 contraction (`_depthwise_grad_weight_phases`; IREE
#:   vectorizes it as a convolution). `bias_grad` as `ones @ dY` (a `linalg.matmul`). The host
#:   .vmfb's (transient buffers: the im2col rows, the stride phases of the input, a
#:   zero-row-padded copy of dY).
CONVGRADS = ("direct", "im2col")


def _conv_attrs(op):
    """(strides, padding, groups) of a conv or conv-gradient op (verified by the dialect)."""
    a = op.attributes
    return (list(ir.DenseI64ArrayAttr(a["strides"])), list(ir.DenseI64ArrayAttr(a["padding"])),
            ir.IntegerAttr(a["groups"]).value)


def _is_depthwise(op, groups: int, weight_shape) -> bool:
    """True for groups == C (HWIO weight `[KH, KW, 1, C]`), False for a dense conv; any other
    grouping is refused (the importer only produces these two)."""
    if groups == 1:
        return False
    if weight_shape[2] != 1 or weight_shape[3] != groups:
        raise unsupported(op, f"with groups={groups} and weight {weight_shape} is a grouped "
                              "convolution; only dense (groups=1) and depthwise (groups=C) lower")
    return True


def _depthwise_kernel(w: ir.Value) -> ir.Value:
    """`[KH, KW, 1, C]` -> `[KH, KW, C]` (the depthwise named op's kernel layout)."""
    kh, kw, one, c = shape_of(w)
    return tensor.CollapseShapeOp(tensor_type([kh, kw, one * c]), w, [[0], [1], [2, 3]]).result


def _named_conv(depthwise: bool, x: ir.Value, w: ir.Value, init: ir.Value, strides) -> ir.Value:
    conv = linalg.depthwise_conv_2d_nhwc_hwc if depthwise else linalg.conv_2d_nhwc_hwcf
    return conv(x, w, outs=[init], strides=list(strides), dilations=[1, 1])


#: `convgrad="im2col"` (the host's): a dense 1x1 stride-1 unpadded f32 convolution whose rows
#: M = N*H*W have no divisor from `MIN_ROW_TILE` to `ROW_MULTIPLE` is a `linalg.matmul` over the
#: rows zero-padded to a multiple of `ROW_MULTIPLE` (`_row_padded_conv1x1`), the padded rows'
#: results dropped. IREE 3.13 picks its CPU vector tile among the divisors of M up to 8: for
#: MobileNetV2's 11x11 stage at 176 px, batch 1 (M = 121) that is one row
#: (`vector_common_parallel = [1, 24]`), half the rate of M = 120 or 128 ([8, 16]): an isolated
#: 121x24x144 matmul 0.028 ms, 128x24x144 0.015 ms (iree-benchmark-module, one thread). M = 36
#: (tile 6) padded to 40 was slower (the 1x1 conv to 1280: 0.097 -> 0.108 ms), so M with a divisor
#: of at least 4 is left as it is.
ROW_MULTIPLE = 8
MIN_ROW_TILE = 4


def _row_padded_conv1x1(x: ir.Value, w: ir.Value, bias: ir.Value, out_shape) -> ir.Value:
    """`x[M, C] @ W[C, F] + bias` with M (= N*H*W) zero-padded up to a multiple of
    `ROW_MULTIPLE`, then the first M rows: a dense 1x1 stride-1 unpadded convolution."""
    _, _, c, f = shape_of(w)
    m = out_shape[0] * out_shape[1] * out_shape[2]
    mp = -(-m // ROW_MULTIPLE) * ROW_MULTIPLE
    rows = _zero_pad_high(reshape(x, [m, c]), [mp - m, 0])
    _, k = dims(2)
    init = generic([bias], empty([mp, f]), [amap(2, [k]), identity(2)], [PARALLEL] * 2, lambda b, acc: b)
    kernel = tensor.CollapseShapeOp(tensor_type([c, f]), w, [[0, 1, 2], [3]]).result
    prod = linalg.matmul(rows, kernel, outs=[init])
    return reshape(_slice(prod, [m, f]), out_shape)


def _pads_rows(op, x: ir.Value, w: ir.Value, strides, padding, depthwise: bool, out_shape) -> bool:
    """Whether the host lowers this convolution as `_row_padded_conv1x1`."""
    m = out_shape[0] * out_shape[1] * out_shape[2]
    return not depthwise and tuple(shape_of(w)[:2]) == (1, 1) and tuple(strides) == (1, 1) and \
        tuple(padding) == (0, 0) and m > ROW_MULTIPLE and \
        max(d for d in range(1, ROW_MULTIPLE + 1) if m % d == 0) < MIN_ROW_TILE and \
        all(ir.RankedTensorType(v.type).element_type == ir.F32Type.get() for v in (x, w, op.result))


def convert_conv2d(op, adaptor, type_converter, rewriter, convgrad: str = "direct"):
    """The named convolution (`_named_conv`) of the padded, cropped input with the bias as its
    accumulator; with `convgrad="im2col"` (the host's) a dense 1x1 one with M = N*H*W not a
    multiple of `ROW_MULTIPLE` as `_row_padded_conv1x1`."""
    x, w, bias = adaptor.input, adaptor.weight, adaptor.bias
    strides, padding, groups = _conv_attrs(op)
    out_shape = shape_of(op.result)
    depthwise = _is_depthwise(op, groups, shape_of(w))
    with rewriter.ip, op.location:
        if convgrad == "im2col" and _pads_rows(op, x, w, strides, padding, depthwise, out_shape):
            rewriter.replace_op(op, [_row_padded_conv1x1(x, w, bias, out_shape)])
            return
        d = dims(4)
        # The bias, broadcast over N, H, W, is the accumulator the convolution adds into.
        init = generic([bias], empty(out_shape), [amap(4, [d[3]]), identity(4)], [PARALLEL] * 4,
                       lambda b, acc: b)
        xp = conv_input(x, padding, shape_of(w)[:2], out_shape[1:3], strides)
        kernel = _depthwise_kernel(w) if depthwise else w
        result = _named_conv(depthwise, xp, kernel, init, strides)
    rewriter.replace_op(op, [result])


def _flipped_kernel(w: ir.Value, depthwise: bool) -> ir.Value:
    """`Wf[kh, kw, f, c] = W[KH-1-kh, KW-1-kw, c, f]` (depthwise: `Wf[kh, kw, c] = W[.., 0, c]`).

    Written as a gather (`tensor.extract` at computed indices) rather than an indexing map with
    negative coefficients, which IREE 3.13's reshape propagation mishandles."""
    kh, kw, cg, f = shape_of(w)
    shape = [kh, kw, f] if depthwise else [kh, kw, f, cg]
    r = len(shape)

    def body(acc):
        idx = [linalg.IndexOp(i).result for i in range(r)]
        top_h, top_w = const_index(kh - 1), const_index(kw - 1)
        fh = arith.SubIOp(top_h, idx[0]).result
        fw = arith.SubIOp(top_w, idx[1]).result
        src = [fh, fw, const_index(0), idx[2]] if depthwise else [fh, fw, idx[3], idx[2]]
        return tensor.ExtractOp(w, src).result

    return generic([], empty(shape), [identity(r)], [PARALLEL] * r, body)


def _padded_grad_input(dy: ir.Value, w: ir.Value, out_shape, strides, padding, depthwise: bool,
                       init: ir.Value | None = None) -> ir.Value:
    """`convgrad="im2col"` (the host's): the stride-1 convolution of dY zero-dilated by the stride
    and padded by K - 1 - p with the flipped kernel (a padded copy of dY, named conv), summed onto
    `init` (zeros when None)."""
    n, h, wd, c = out_shape
    _, oh, ow, f = shape_of(dy)
    kh, kw = shape_of(w)[:2]
    lo_h, lo_w = kh - 1 - padding[0], kw - 1 - padding[1]
    hb = max(h + kh - 1, lo_h + (oh - 1) * strides[0] + 1)
    wb = max(wd + kw - 1, lo_w + (ow - 1) * strides[1] + 1)
    zeros = full([n, hb, wb, f])
    dilated = tensor.InsertSliceOp(dy, zeros, [], [], [], [0, lo_h, lo_w, 0], [n, oh, ow, f],
                                   [1, strides[0], strides[1], 1]).result
    out = full(out_shape) if init is None else init
    return _named_conv(depthwise, dilated, _flipped_kernel(w, depthwise), out, [1, 1])


#: `convgrad="im2col"`: a dense 1x1 stride-1 unpadded input gradient `dX[M, C] = dY[M, F] @
#: W[C, F]^T` (M = N*H*W) is computed transposed, `(W @ dY^T)^T` (`_transposed_grad_input`), when
#: its MACs per element of the two transposed copies, C*F / (C + F), reach the first and M the
#: second: IREE's matmul with a narrow C and a long F (MobileNetV2's 1x1 conv to 1280, C = 112,
#: M = 128..288) ran at about 60 GFLOP/s, the transposed product (M as the matmul's columns) at
#: about 95 with the copies; with few MACs per copied element (C = 8..32, large M) the copies
#: cost more than they save, and so they do with M = 36 (0.33 vs 0.21 ms) (isolated dispatches
#: of MobileNetV2-w0.35's shapes timed by iree-benchmark-module on a 2-core x86 host).
TRANSPOSED_GRAD_INPUT_MIN_INTENSITY = 64
TRANSPOSED_GRAD_INPUT_MIN_ROWS = 128


def _transposes_grad_input(kernel, strides, padding, cg: int, f: int, rows: int) -> bool:
    """Whether the host lowers this dense input gradient (`rows` = N*H*W) as
    `_transposed_grad_input`."""
    return (tuple(kernel), tuple(strides), tuple(padding)) == ((1, 1), (1, 1), (0, 0)) and \
        cg * f >= TRANSPOSED_GRAD_INPUT_MIN_INTENSITY * (cg + f) and rows >= TRANSPOSED_GRAD_INPUT_MIN_ROWS


def _transposed_grad_input(dy: ir.Value, w: ir.Value, out_shape) -> ir.Value:
    """A dense 1x1 stride-1 unpadded input gradient as `(W[C, F] @ dY^T[F, M])^T`: one
    `linalg.transpose` of dY, a `linalg.matmul` with M as its columns, one of the result."""
    _, _, cg, f = shape_of(w)
    m = out_shape[0] * out_shape[1] * out_shape[2]
    dyt = linalg.transpose(reshape(dy, [m, f]), outs=[empty([f, m])], permutation=[1, 0]).results[0]
    kernel = tensor.CollapseShapeOp(tensor_type([cg, f]), w, [[0, 1, 2], [3]]).result
    prod = linalg.matmul(kernel, dyt, outs=[full([cg, m])])
    dx = linalg.transpose(prod, outs=[empty([m, cg])], permutation=[1, 0]).results[0]
    return reshape(dx, out_shape)


def _clamped(t: ir.Value, hi: int) -> tuple[ir.Value, ir.Value]:
    """Index `t` clamped into [0, hi], and whether it was inside (`t` equals the clamped value)."""
    tc = arith.MinSIOp(arith.MaxSIOp(t, const_index(0)).result, const_index(hi)).result
    return tc, arith.CmpIOp(arith.CmpIPredicate.eq, t, tc).result


def _tap_index(i: ir.Value, k: ir.Value, pad: int, stride: int, size: int) -> tuple[ir.Value, ir.Value]:
    """For input row `i` and kernel tap `k`: the output row `o` with `o*stride + k - pad = i`,
    clamped into [0, size), and whether that row exists (`t = i + pad - k` is in
    [0, (size-1)*stride] and a multiple of `stride`)."""
    P = arith.CmpIPredicate
    t = arith.SubIOp(arith.AddIOp(i, const_index(pad)).result, k).result
    tc, valid = _clamped(t, (size - 1) * stride)
    if stride == 1:
        return tc, valid
    s = const_index(stride)
    on_grid = arith.CmpIOp(P.eq, arith.RemUIOp(tc, s).result, const_index(0)).result
    return arith.DivUIOp(tc, s).result, arith.AndIOp(valid, on_grid).result


def _padfree_grad_input(dy: ir.Value, w: ir.Value, out_shape, strides, padding, depthwise: bool,
                        init: ir.Value | None = None) -> ir.Value:
    """`convgrad="direct"` (Cortex-M): `dX[n, h, w, c] = init[n, h, w, c] + sum_{kh, kw, f}
    dY[n, oh, ow, f] * W[kh, kw, c, f]` (`init` zeros when None) over the taps with `oh*sh + kh - ph = h` (same for w) inside dY, as one
    `linalg.generic` over (N, H, W, C, KH, KW[, F]) reading W through its map (IREE fuses an
    elementwise producer of W, e.g. the int8 weight's `channel_scale`, into it) and dY by
    `tensor.extract` at clamped indices, a tap outside dY (border, or between two strided rows)
    selecting 0. No padded or dilated copy of dY and no flipped kernel exist; the MACs are those
    of the padded convolution (the out-of-range taps add 0 * w). A dense 1x1 stride-1 unpadded
    window reads dY through its map too (a plain contraction over F).

    Cost on the Cortex-M: IREE keeps the taps as the innermost (reduction) loop and reads dY as a
    gather with the index arithmetic per tap, so a MAC takes several times the instructions of
    the named convolution's register-blocked loop; unrolling the taps in a parallel generic's
    body (dY and W by `tensor.extract`) was slower per training step in a trial on the M7 (IREE
    collapsed it to 1-D); with W as K*K operands through constant-index maps it changed the
    second step's loss there (not investigated further); with the weight rows as `extract_slice`
    operands it cut the extra instructions of an fp32 trial by 59%, but the int8
    MobileNetV2-w0.35 `49kb` step at 128 px then planned 18 KB more SRAM (38 KB more persistent)
    and ran 24% more instructions than with this lowering (trials, not investigated further)."""
    kh, kw, cg, f = shape_of(w)
    if not depthwise and (kh, kw, *strides, *padding) == (1, 1, 1, 1, 0, 0):
        n_, h_, w_, c_, f_ = dims(5)
        maps = [amap(5, [n_, h_, w_, f_]), amap(5, [c_, f_]), amap(5, [n_, h_, w_, c_])]
        kernel = tensor.CollapseShapeOp(tensor_type([cg, f]), w, [[0, 1, 2], [3]]).result
        return generic([dy, kernel], full(out_shape) if init is None else init, maps,
                       [PARALLEL] * 4 + [REDUCTION], _mac)
    _, oh, ow, _ = shape_of(dy)
    zero = const_f32(0.0)
    r = 6 if depthwise else 7  # loops: N, H, W, C, KH, KW[, F]

    def body(wv, acc):
        idx = [linalg.IndexOp(i).result for i in range(r)]
        row, row_ok = _tap_index(idx[1], idx[4], padding[0], strides[0], oh)
        col, col_ok = _tap_index(idx[2], idx[5], padding[1], strides[1], ow)
        g = tensor.ExtractOp(dy, [idx[0], row, col, idx[3] if depthwise else idx[6]]).result
        g = arith.SelectOp(arith.AndIOp(row_ok, col_ok).result, g, zero).result
        return _mac(g, wv, acc)

    if depthwise:
        n_, h_, w_, c_, kh_, kw_ = dims(6)
        kernel, wmap = _depthwise_kernel(w), amap(6, [kh_, kw_, c_])
    else:
        n_, h_, w_, c_, kh_, kw_, f_ = dims(7)
        kernel, wmap = w, amap(7, [kh_, kw_, c_, f_])
    return generic([kernel], full(out_shape) if init is None else init, [wmap, amap(r, [n_, h_, w_, c_])],
                   [PARALLEL] * 4 + [REDUCTION] * (r - 4), body)


def convert_conv2d_grad_input(op, adaptor, type_converter, rewriter, convgrad: str = "direct",
                              kernels: str = "iree"):
    """`convgrad="im2col"` (host): a named convolution of the zero-dilated, padded dY with the
    flipped kernel (`_padded_grad_input`), or for a dense 1x1 stride-1 window with a long F the
    transposed matmul `_transposed_grad_input` (`TRANSPOSED_GRAD_INPUT_MIN_INTENSITY`). `convgrad="direct"` (Cortex-M): one `linalg.generic`
    reading W through its map, dY bounds-checked (`_padfree_grad_input`: no padded copy of dY,
    the largest tensor at MobileNetV2's backward peak otherwise, and no flipped copy of W).
    `kernels="ttk-f32"`: a dense 1x1 stride-1 unpadded one is a dispatch of our fp32 kernel
    (`kernels.conv1x1_grad_input_dispatch`: the same sums in the same order, fused multiply-adds),
    and so is a depthwise one inside `kernels.dwconv_grad_input_contract`
    (`kernels.dwconv_grad_input_dispatch`: the taps inside dY in the same order)."""
    _lower_grad_input(op, adaptor.grad_output, adaptor.weight, None, rewriter, convgrad, kernels)


def convert_conv2d_grad_input_acc(op, adaptor, type_converter, rewriter, convgrad: str = "direct",
                                  kernels: str = "iree"):
    """`conv2d_grad_input_acc`: as `conv2d_grad_input`, with the accumulator as the reduction's
    init (the named conv's or the generic's `outs`), so the sums start from it and IREE computes
    them in its storage when nothing else reads it. Where the gradient is not one reduction with
    an init (our fp32 kernels' dispatches, the host's transposed matmul) it is computed as
    `conv2d_grad_input` and added to the accumulator (a second tensor, the same values up to the
    order of the sums)."""
    _lower_grad_input(op, adaptor.grad_output, adaptor.weight, adaptor.accumulator, rewriter, convgrad, kernels)


def _lower_grad_input(op, dy: ir.Value, w: ir.Value, acc: ir.Value | None, rewriter, convgrad: str,
                      kernels: str) -> None:
    """`conv2d_grad_input` (`acc` None) or `conv2d_grad_input_acc` (its converted accumulator)."""
    from .kernels import (conv1x1_grad_input_contract, conv1x1_grad_input_dispatch,
                          dwconv_grad_input_contract, dwconv_grad_input_dispatch)

    strides, padding, groups = _conv_attrs(op)
    out_shape = shape_of(op.result)
    kh, kw = shape_of(w)[:2]
    depthwise = _is_depthwise(op, groups, shape_of(w))

    def summed(result: ir.Value) -> ir.Value:  # the accumulator + a gradient computed without it
        if acc is None:
            return result
        return add_f32(acc, result)

    if kernels == "ttk-f32" and conv1x1_grad_input_contract(shape_of(w), strides, padding, depthwise) is None:
        with rewriter.ip, op.location:
            rewriter.replace_op(op, [summed(conv1x1_grad_input_dispatch(op, dy, w))])
        return
    if kernels == "ttk-f32" and dwconv_grad_input_contract(out_shape, shape_of(w), shape_of(dy), strides,
                                                           padding, depthwise) is None:
        with rewriter.ip, op.location:
            rewriter.replace_op(op, [summed(dwconv_grad_input_dispatch(op, dy, w, strides[0]))])
        return
    if kh - 1 - padding[0] < 0 or kw - 1 - padding[1] < 0:
        raise unsupported(op, f"with padding {padding} larger than kernel-1 ({kh}x{kw} kernel) "
                              "is not supported")
    with rewriter.ip, op.location:
        if convgrad == "im2col" and not depthwise and \
                _transposes_grad_input((kh, kw), strides, padding, *shape_of(w)[2:],
                                       out_shape[0] * out_shape[1] * out_shape[2]):
            result = summed(_transposed_grad_input(dy, w, out_shape))
        else:
            lower = _padded_grad_input if convgrad == "im2col" else _padfree_grad_input
            result = lower(dy, w, out_shape, strides, padding, depthwise, init=acc)
    rewriter.replace_op(op, [result])


def _mac(x, y, acc):
    return arith.AddFOp(acc, arith.MulFOp(x, y).result).result


def _im2col(xp: ir.Value, out_hw, kernel, strides) -> ir.Value:
    """`cols[(n, oh, ow), (kh, kw, c)] = xp[n, oh*sh + kh, ow*sw + kw, c]`: every window of the
    padded input as one row (a gather written as a copy `linalg.generic`, then collapsed)."""
    n, _, _, c = shape_of(xp)
    (oh, ow), (kh, kw), (sh, sw) = out_hw, kernel, strides
    n_, oh_, ow_, kh_, kw_, c_ = dims(6)
    cols = generic([xp], empty([n, oh, ow, kh, kw, c]),
                   [amap(6, [n_, oh_ * sh + kh_, ow_ * sw + kw_, c_]), identity(6)], [PARALLEL] * 6,
                   lambda a, acc: a)
    return reshape(cols, [n * oh * ow, kh * kw * c])


def _matmul_ta(a: ir.Value, b: ir.Value) -> ir.Value:
    """`a^T @ b` for `a: [M, K]`, `b: [M, F]` (a contraction over the rows of both)."""
    (_, k), (_, f) = shape_of(a), shape_of(b)
    k_, f_, m_ = dims(3)
    return generic([a, b], full([k, f]), [amap(3, [m_, k_]), amap(3, [m_, f_]), amap(3, [k_, f_])],
                   [PARALLEL, PARALLEL, REDUCTION], _mac)


def _zero_pad_high(v: ir.Value, high) -> ir.Value:
    """`v` (f32) with `high[i]` zeros appended along dim i (`v` itself when nothing is)."""
    if not any(high):
        return v
    shape = [d + h for d, h in zip(shape_of(v), high)]
    pad = tensor.PadOp(tensor_type(shape), v, [], [], [0] * len(shape), list(high))
    block = pad.region.blocks.append(*([ir.IndexType.get()] * len(shape)))
    with ir.InsertionPoint(block):
        tensor.YieldOp(const_f32(0.0))
    return pad.result


def _pad_high(v: ir.Value, rows: int, cols: int = 0) -> ir.Value:
    """`v` (NHWC) with `rows` zero rows and `cols` zero columns appended to every image."""
    return _zero_pad_high(v, [0, rows, cols, 0])


def _slice(v: ir.Value, sizes) -> ir.Value:
    """The leading `sizes` block of `v` (unit strides; `v` itself if it has that shape)."""
    if shape_of(v) == list(sizes):
        return v
    return tensor.ExtractSliceOp(tensor_type(sizes), v, [], [], [], [0] * len(sizes), list(sizes),
                                 [1] * len(sizes)).result


def _depthwise_grad_weight_phases(xp: ir.Value, dy: ir.Value, kernel, strides) -> ir.Value:
    """Depthwise `dW[kh, kw, c] = sum_{n,oh,ow} xp[n, oh*sh + kh, ow*sw + kw, c] dY[n, oh, ow, c]`
    as stride-1, unit-batch contractions IREE vectorizes as a convolution (the batched or strided
    generic is left scalar: bench/conv_grad_kernels.py, `--convgrad direct` against `im2col`):

    - per stride phase (p, q): the taps kh = sh*a + p read `ph[n, oh + a, ow + b, c]` of the
      phase image `ph = xp[:, p::sh, q::sw, :]` (a strided slice), a stride-1 window. Every phase
      has the same A x B = ceil(KH/sh) x ceil(KW/sw) taps (xp gets zero rows/columns for the
      surplus ones, whose results are dropped): a phase with one tap per row or column would be
      folded to a plain reduction, which IREE ran several times slower per MAC in a trial;
    - the N images stacked into one (rows `n*R + oh`, R = OH + A - 1): dY gets A - 1 zero rows
      per image, so windows straddling two images add zero;
    - each phase's valid [a, b, C] block lands in dW at rows p::sh, columns q::sw."""
    (kh, kw), (sh, sw) = kernel, strides
    n, oh, ow, c = shape_of(dy)
    ta, tb = -(-kh // sh), -(-kw // sw)
    rows, cols = oh + ta - 1, ow + tb - 1
    xp = _pad_high(xp, ta * sh - kh, tb * sw - kw)
    # one image: no row of dY is followed by another image
    g = reshape(dy, [oh, ow, c]) if n == 1 else \
        _slice(reshape(_pad_high(dy, ta - 1), [n * rows, ow, c]), [n * rows - (ta - 1), ow, c])
    out = empty([kh, kw, c]) if (sh, sw) != (1, 1) else None
    for p in range(min(sh, kh)):
        for q in range(min(sw, kw)):
            ph = xp if (sh, sw) == (1, 1) else tensor.ExtractSliceOp(
                tensor_type([n, rows, cols, c]), xp, [], [], [], [0, p, q, 0], [n, rows, cols, c],
                [1, sh, sw, 1]).result
            a_, b_, c_, r_, w_ = dims(5)
            maps = [amap(5, [r_ + a_, w_ + b_, c_]), amap(5, [r_, w_, c_]), amap(5, [a_, b_, c_])]
            part = generic([reshape(ph, [n * rows, cols, c]), g], full([ta, tb, c]), maps,
                           [PARALLEL] * 3 + [REDUCTION] * 2, _mac)
            va, vb = -(-(kh - p) // sh), -(-(kw - q) // sw)  # the taps inside the kernel
            out = part if (sh, sw) == (1, 1) else tensor.InsertSliceOp(
                _slice(part, [va, vb, c]), out, [], [], [], [p, q, 0], [va, vb, c], [sh, sw, 1]).result
    return reshape(out, [kh, kw, 1, c])


def _padfree_grad_weight(x: ir.Value, dy: ir.Value, wshape, strides, padding, depthwise: bool) -> ir.Value:
    """`convgrad="direct"` (Cortex-M), windows other than 1x1 stride 1: `dW[kh, kw, c, f] =
    sum_{n, oh, ow} x[n, oh*sh + kh - ph, ow*sw + kw - pw, c] * dY[n, oh, ow, f]` as one
    `linalg.generic` over (KH, KW, C[, F], N, OH, OW) reading dY through its map and x by
    `tensor.extract` at clamped indices, a tap outside x (the zero border) selecting 0: no
    zero-padded copy of x (for a dequantized int8 activation IREE's padding fusion made that copy
    a pad tile of dynamic size iree-compile rejected on the M7) and the same MACs and sums, in the
    same order, as the contraction of the padded input."""
    kh, kw, cg, f = wshape
    (sh, sw), (ph, pw) = strides, padding
    _, h, w, _ = shape_of(x)
    zero = const_f32(0.0)

    def tap(o, k, s, p, size):  # input row o*s + k - p, clamped, and whether it is inside
        return _clamped(arith.SubIOp(arith.AddIOp(arith.MulIOp(o, const_index(s)).result, k).result,
                                     const_index(p)).result, size - 1)

    r = 6 if depthwise else 7  # loops: KH, KW, C[, F], N, OH, OW

    def body(g, acc):
        idx = [linalg.IndexOp(i).result for i in range(r)]
        n_, oh_, ow_ = idx[r - 3:]
        row, row_ok = tap(oh_, idx[0], sh, ph, h)
        col, col_ok = tap(ow_, idx[1], sw, pw, w)
        v = tensor.ExtractOp(x, [n_, row, col, idx[2]]).result
        v = arith.SelectOp(arith.AndIOp(row_ok, col_ok).result, v, zero).result
        return _mac(v, g, acc)

    if depthwise:
        kh_, kw_, c_, n_, oh_, ow_ = dims(6)
        out, gmap = [kh, kw, f], amap(6, [n_, oh_, ow_, c_])
    else:
        kh_, kw_, c_, f_, n_, oh_, ow_ = dims(7)
        out, gmap = [kh, kw, cg, f], amap(7, [n_, oh_, ow_, f_])
    result = generic([dy], full(out), [gmap, amap(r, dims(r)[:r - 3])],
                     [PARALLEL] * (r - 3) + [REDUCTION] * 3, body)
    return reshape(result, [kh, kw, 1, f]) if depthwise else result


def convert_conv2d_grad_weight(op, adaptor, type_converter, rewriter, convgrad: str = "direct",
                               kernels: str = "iree"):
    """`convgrad="direct"`: one contraction of the input with dY over (N, OH, OW), the input
    bounds-checked (`_padfree_grad_weight`: no padded copy); dense 1x1 stride 1 either way: the
    contraction through the input's map. `convgrad="im2col"`: other dense windows (3x3, strided) as im2col of
    the padded input, then one matmul-like contraction `cols^T @ dY` (IREE vectorizes it as a
    matmul; the direct generic with `oh*s + kh` maps was about 8x slower on MobileNetV2's first
    conv, bench/conv_grad_kernels.py); depthwise windows as unit-batch stride-1 contractions per
    stride phase (`_depthwise_grad_weight_phases`; a materialized im2col was slower there).
    `kernels="ttk-f32"`: a dense 1x1 stride-1 unpadded one whose input is a `dequantize` of the
    saved int8 activation is a dispatch of our fp32 kernel on that int8 tensor
    (`kernels.conv1x1_grad_weight_dispatch`), and so is a depthwise one inside
    `kernels.dwconv_grad_input_contract` (`kernels.dwconv_grad_weight_dispatch`)."""
    from .kernels import (conv1x1_grad_input_contract, conv1x1_grad_weight_dispatch,
                          dwconv_grad_input_contract, dwconv_grad_weight_dispatch)

    if convgrad not in CONVGRADS:
        raise ValueError(f"conv2d_grad_weight lowering must be one of {', '.join(CONVGRADS)}, "
                         f"got {convgrad!r}")
    x, dy = adaptor.input, adaptor.grad_output
    strides, padding, groups = _conv_attrs(op)
    kh, kw, cg, f = shape_of(op.result)
    depthwise = _is_depthwise(op, groups, [kh, kw, cg, f])
    sh, sw = strides
    n, oh, ow, _ = shape_of(dy)
    deq = op.operands[0].owner  # an op, or the Block of a function argument
    if kernels == "ttk-f32" and getattr(deq, "name", None) == "tinytrain.dequantize" and \
            conv1x1_grad_input_contract([kh, kw, cg, f], strides, padding, depthwise) is None:
        # the dequantize's int8 operand (the conversion maps it to its lowered value)
        x_scale = ir.FloatAttr(deq.attributes["scale"]).value
        x_zero = ir.IntegerAttr(deq.attributes["zero_point"]).value
        with rewriter.ip, op.location:
            rewriter.replace_op(op, [conv1x1_grad_weight_dispatch(op, deq.operands[0], x_zero, x_scale, dy)])
        return
    if kernels == "ttk-f32" and depthwise:
        # a dequantized int8 input, or the leading channels of one (a sparse update's slice), and
        # dY or the tensor dY is the leading channels of: the kernel reads both whole (its own
        # channel stride each) and writes the result's channels
        x8, g = _leading_channels(op.operands[0]), _leading_channels(op.operands[1])
        deq = getattr(x8.owner, "name", None) == "tinytrain.dequantize" and x8.owner
        if deq and dwconv_grad_input_contract(shape_of(x8), [kh, kw, cg, shape_of(x8)[3]], shape_of(g), strides,
                                              padding, depthwise) is None:
            x_scale = ir.FloatAttr(deq.attributes["scale"]).value
            x_zero = ir.IntegerAttr(deq.attributes["zero_point"]).value
            # the unconverted operands (the int8 tensor, the sliced dY) are mapped to their
            # lowered values by the conversion, as the dequantize's operand above
            with rewriter.ip, op.location:
                rewriter.replace_op(op, [dwconv_grad_weight_dispatch(op, deq.operands[0], x_zero, x_scale,
                                                                     dy if g == op.operands[1] else g, sh)])
            return
    with rewriter.ip, op.location:
        if convgrad == "direct" and (kh, kw, sh, sw) != (1, 1, 1, 1):
            rewriter.replace_op(op, [_padfree_grad_weight(x, dy, (kh, kw, cg, f), strides, padding, depthwise)])
            return
        xp = conv_input(x, padding, (kh, kw), (oh, ow), strides)
        if depthwise and convgrad == "im2col":
            result = _depthwise_grad_weight_phases(xp, dy, (kh, kw), strides)
        elif depthwise:
            kh_, kw_, c_, n_, oh_, ow_ = dims(6)
            maps = [amap(6, [n_, oh_ * sh + kh_, ow_ * sw + kw_, c_]), amap(6, [n_, oh_, ow_, c_]),
                    amap(6, [kh_, kw_, c_])]
            r = generic([xp, dy], full([kh, kw, f]), maps, [PARALLEL] * 3 + [REDUCTION] * 3, _mac)
            result = reshape(r, [kh, kw, 1, f])
        elif convgrad == "direct" or (kh, kw, sh, sw) == (1, 1, 1, 1):
            kh_, kw_, c_, f_, n_, oh_, ow_ = dims(7)
            maps = [amap(7, [n_, oh_ * sh + kh_, ow_ * sw + kw_, c_]), amap(7, [n_, oh_, ow_, f_]),
                    amap(7, [kh_, kw_, c_, f_])]
            result = generic([xp, dy], full([kh, kw, cg, f]), maps,
                             [PARALLEL] * 4 + [REDUCTION] * 3, _mac)
        else:
            cols = _im2col(xp, (oh, ow), (kh, kw), strides)
            r = _matmul_ta(cols, reshape(dy, [n * oh * ow, f]))
            result = reshape(r, [kh, kw, cg, f])
    rewriter.replace_op(op, [result])


def _leading_channels(v: ir.Value) -> ir.Value:
    """The tensor `v` is the leading channels of (a `tinytrain.slice` at offset 0 on every axis,
    the same N, H, W), else `v`."""
    o = v.owner
    if isinstance(o, ir.Block) or o.name != "tinytrain.slice":
        return v
    src = o.operands[0]
    if any(ir.DenseI64ArrayAttr(o.attributes["offsets"])) or shape_of(src)[:3] != shape_of(v)[:3]:
        return v
    return src


def convert_bias_grad(op, adaptor, type_converter, rewriter, convgrad: str = "direct"):
    """The sum of dY over all but the channel dim: one reduction `linalg.generic` ("direct"), or
    ("im2col", the host's) `ones[1, M] @ dY[M, C]` as a `linalg.matmul`, which IREE tiles along
    the contiguous channels (the reduction over the outer M rows was slower in a trial on the host
    for MobileNetV2's shapes)."""
    g = adaptor.grad_output
    shape = shape_of(g)
    r = len(shape)
    with rewriter.ip, op.location:
        if convgrad == "im2col" and r > 1:
            rows = 1
            for d in shape[:-1]:
                rows *= d
            total = linalg.matmul(full([1, rows], 1.0), reshape(g, [rows, shape[-1]]),
                                  outs=[full([1, shape[-1]])])
            result = reshape(total, [shape[-1]])
        else:
            result = generic([g], full([shape[-1]]), [identity(r), amap(r, [dims(r)[-1]])],
                             [REDUCTION] * (r - 1) + [PARALLEL],
                             lambda a, acc: arith.AddFOp(acc, a).result)
    rewriter.replace_op(op, [result])


#: convgrad lowering (`CONVGRADS`) -> the pattern of `conv2d_grad_weight` (module-level objects:
#: the bindings do not keep a pattern callable alive).
CONVGRAD_PATTERNS = {mode: {tt.Conv2dOp: functools.partial(convert_conv2d, convgrad=mode),
                            tt.Conv2dGradWeightOp: functools.partial(convert_conv2d_grad_weight, convgrad=mode),
                            tt.Conv2dGradInputOp: functools.partial(convert_conv2d_grad_input, convgrad=mode),
                            tt.Conv2dGradInputAccOp: functools.partial(convert_conv2d_grad_input_acc, convgrad=mode),
                            tt.BiasGradOp: functools.partial(convert_bias_grad, convgrad=mode)}
                     for mode in CONVGRADS}

#: (convgrad, `to-linalg{kernels=...}`) -> the `conv2d_grad_input` / `conv2d_grad_weight` patterns:
#: with "ttk-f32" the dense 1x1 ones dispatch our fp32 kernels.
GRAD_INPUT_PATTERNS = {(mode, k): {
    tt.Conv2dGradInputOp: functools.partial(convert_conv2d_grad_input, convgrad=mode, kernels=k),
    tt.Conv2dGradInputAccOp: functools.partial(convert_conv2d_grad_input_acc, convgrad=mode, kernels=k),
    tt.Conv2dGradWeightOp: functools.partial(convert_conv2d_grad_weight, convgrad=mode, kernels=k)}
    for mode in CONVGRADS for k in KERNELS}

PATTERNS = {
    **CONVGRAD_PATTERNS["direct"],
}
