"""int8 ops (`dialects/tinytrain_quant.py`): `qconv2d`, `qadd`, `qavg_pool`, `quantize`,
`dequantize`.

The numerics are `tinytrain.reference` with `rule="device"`, bit for bit (its module docstring
is the specification; the step numbers below are its steps):

- `qconv2d`: the input is padded with `input_zero_point` (a real zero) and cropped to the exact
  window; the i8 x i8 -> i32 dot product is the named `linalg.conv_2d_nhwc_hwcf_q` /
  `linalg.depthwise_conv_2d_nhwc_hwc_q` with the input zero point folded in (`x - x_zero`) and a
  kernel zero point of 0 (symmetric weights), accumulated from 0 (the dot always fits int32, see
  `reference.conv2d_acc`). A frozen weight (a constant: `frozen.constant_value`) takes the plain
  `conv_2d_nhwc_hwcf` / `depthwise_conv_2d_nhwc_hwc` of `x` instead, and `- x_zero * sum w` per
  output channel, computed here in numpy, joins the bias (`_zero_point_offsets`): the same
  integers, without the weight-sum reduction IREE's decomposition of the `_q` op builds into the
  kernel (which, once small constants are not inlined into kernels as on the Cortex-M, is a
  dispatch of its own per convolution and step). One `linalg.generic` then does, per element, in i64:
  step 0 `acc32 = saturate_int32(dot + bias)` (the saturating add of the Cortex-M kernels: the
  dead channels of ProxylessNAS / MCUNet have biases of +-2^31 and `dot + bias` leaves int32),
  steps 2-4 (`multiply_by_quantized_multiplier` with the per-channel `multiplier` / `shift`,
  given as i32 constant tensors) and step 5 (`+ y_zero`, clamp to `clamp`, truncate to i8).
- `qadd`: TFLite's int8 ADD: `(q - zero) << 20` per side, each rescaled by its fixed-point
  multiplier, summed, rescaled to the output, `+ zero`, clamped (one `linalg.generic`, in i32
  but for the 64-bit product of step 3, see `_mul_by_quantized_multiplier`). The three
  multipliers come from `reference.quantize_multiplier` on the op's scales, at compile time; a
  side's rescaled value depends on its int8 alone, so it is read from a 256-entry table the
  reference computes at compile time.
- `qavg_pool`: i32 sum over H, W (`linalg.generic`, reduction), then
  `trunc((s + sign(s) * (HW / 2)) / HW)` (`arith.divsi` truncates toward zero) clamped to int8.
- `quantize` / `dequantize`: in f64 as the reference (`x / scale` rounded half to even,
  `scale * (q - zero)` rounded once to f32). The host compile keeps f64
  (`lowering.host.iree_host.HOST_FLAGS` turn off IREE's default f64 -> f32 demotion; a backend
  that keeps it rounds these two ops in f32).

Training ops (built by `autodiff` / `qas` for int8 graphs, f32 arithmetic):
- `channel_scale`: `f32(x) * scale[c]` over the last axis (scales as an f32 constant tensor);
- `qclamp_grad`: `grad` where `lo < y < hi` (the int8 output strictly inside its clamp), else 0;
- `qclamp_mask`: the same test packed 8 channels per byte (an OR-reduction over `[..., C / 8, 8]`,
  `tensor.expand_shape` of `y`), and `qmask_grad`: `grad` where the channel's bit is set;
- `qsgd_update`: `clamp(p - roundeven(lr * g))`, i8 weights to [-127, 127] in i32 (the step
  clamped to +-256 before it is rounded), i32 biases saturated in i64 (the step clamped to
  +-2^32); rounded by an f32 add and subtract of a power of two; `p` unchanged for a NaN step.

The saturating-rounding-doubling-high-mul overflow case (`a == M0 == INT32_MIN`) is built for the
per-channel multipliers of `qconv2d` (read from a tensor), although `M0 >= 0` by construction
(`quantize_multiplier`); `qadd`'s multipliers are compile-time constants, so its shift amounts
are constants and the impossible branch is left out.
"""

from __future__ import annotations

import functools

import numpy as np
from torch_mlir import ir
from torch_mlir.dialects import arith, linalg, math, tensor

from tinytrain.dialects import tinytrain_quant as tq
from tinytrain.reference import multiply_by_quantized_multiplier, quantize_multiplier

from .frozen import constant_value
from .builders import (CLAMPS, PARALLEL, REDUCTION, amap, clamp_f32, dims, generic, identity, shape_of,
                       tensor_type)
from .kernels import KERNELS

__all__ = ["convert_qconv2d", "convert_qadd", "convert_qavg_pool", "convert_quantize",
           "convert_dequantize", "convert_channel_scale", "convert_qclamp_grad", "convert_qclamp_mask",
           "convert_qmask_grad", "convert_qsgd_update",
           "PATTERNS", "CLAMP_PATTERNS"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _i(bits: int) -> ir.IntegerType:
    return ir.IntegerType.get_signless(bits)


def _ci(value: int, bits: int = 64) -> ir.Value:
    t = _i(bits)
    return arith.ConstantOp(t, ir.IntegerAttr.get(t, int(value))).result


def _cf64(value: float) -> ir.Value:
    t = ir.F64Type.get()
    return arith.ConstantOp(t, ir.FloatAttr.get(t, float(value))).result


def _const_tensor(values, bits: int) -> ir.Value:
    """`arith.constant dense<values> : tensor<N x i<bits>>`."""
    arr = np.ascontiguousarray(np.asarray(values, dtype={32: np.int32, 64: np.int64}[bits]))
    ty = tensor_type([arr.size], _i(bits))
    return arith.ConstantOp(ty, ir.DenseElementsAttr.get(arr, type=ty)).result


def _const_tensor_fitting(values) -> ir.Value:
    """`_const_tensor` of integers in i32 when they all fit, else in i64."""
    values = np.asarray(values, dtype=np.int64)
    return _const_tensor(values, 32 if INT32_MIN <= values.min() and values.max() <= INT32_MAX else 64)


def _empty(shape, element_type) -> ir.Value:
    return tensor.EmptyOp(list(shape), element_type).result


def _zeros_i32(shape) -> ir.Value:
    return linalg.fill(_ci(0, 32), outs=[_empty(shape, _i(32))])


def _attr_f(op, name: str) -> float:
    return ir.FloatAttr(op.attributes[name]).value


def _attr_i(op, name: str) -> int:
    return ir.IntegerAttr(op.attributes[name]).value


def _attr_array(op, name: str, cls) -> list:
    return list(cls(op.attributes[name]))


# ----------------------------------------------------------------------------- scalar integer helpers
# (built inside a linalg.generic body; every value is an i32 or i64 holding an integer of the
# reference; constants take the width of the value they meet)


def _width(v: ir.Value) -> int:
    return ir.IntegerType(v.type).width


def _sext(v: ir.Value, bits: int = 64) -> ir.Value:
    return v if _width(v) == bits else arith.ExtSIOp(_i(bits), v).result


def _clamp(v: ir.Value, lo: int, hi: int) -> ir.Value:
    bits = _width(v)
    return arith.MinSIOp(arith.MaxSIOp(v, _ci(lo, bits)).result, _ci(hi, bits)).result


def _select(cond: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    return arith.SelectOp(cond, a, b).result


def _cmp(pred, a: ir.Value, b: ir.Value) -> ir.Value:
    return arith.CmpIOp(pred, a, b).result


def _rounding_divide_by_pot(h: ir.Value, right: ir.Value) -> ir.Value:
    """Step 4, `RoundingDivideByPOT(h, right)`, in the width of `h` (`right` of the same width,
    below that width)."""
    P = arith.CmpIPredicate
    bits = _width(h)
    one, zero = _ci(1, bits), _ci(0, bits)
    mask = arith.SubIOp(arith.ShLIOp(one, right).result, one).result
    rem = arith.AndIOp(h, mask).result
    neg = arith.ExtUIOp(_i(bits), _cmp(P.slt, h, zero)).result
    threshold = arith.AddIOp(arith.ShRSIOp(mask, one).result, neg).result
    up = arith.ExtUIOp(_i(bits), _cmp(P.sgt, rem, threshold)).result
    return arith.AddIOp(arith.ShRSIOp(h, right).result, up).result


def _high_mul(p: ir.Value) -> ir.Value:
    """Step 3 without its overflow case, on the i64 product `p = a * m0`: the reference's
    `trunc((p + nudge) / 2^31)` with `nudge = 2^30` for `p >= 0` and `1 - 2^30` below is
    `floor((p + 2^30) / 2^31)` for every `p` (for `p < 0`, `trunc(q / D) = ceil(q / D) =
    floor((q + D - 1) / D)` with `q = p + 1 - 2^30`), one add and one arithmetic shift."""
    return arith.ShRSIOp(arith.AddIOp(p, _ci(1 << 30)).result, _ci(31)).result


def _mul_by_quantized_multiplier_one_rounding(x: ir.Value, m0: int, right: int) -> ir.Value:
    """Steps 3-4 on an i32 `x` for compile-time `2^30 < m0 < 2^31` and `1 <= right < 31` (no left
    shift) as one rounding (`ttk_rq_apply_fast` of runtime/kernels): with `u = x m0 + 2^30`, step
    3 is `t = floor(u / 2^31)` and step 4 `floor((t + 2^(right-1) - [t < 0]) / 2^right)`; `t < 0`
    iff `x < 0` (`m0 > 2^30`), and the nested floors are one:
    `floor((x m0 + 2^30 + 2^(30+right) - [x < 0] 2^31) / 2^(31+right))`, an i64 multiply-add of a
    constant chosen by the sign, then one shift (of the high word) - instead of step 4's mask,
    threshold and compare."""
    P = arith.CmpIPredicate
    k0 = (1 << 30) + (1 << (30 + right))
    add = _select(_cmp(P.slt, x, _ci(0, 32)), _ci(k0 - (1 << 31)), _ci(k0))
    v = arith.AddIOp(arith.MulIOp(_sext(x), _ci(m0)).result, add).result
    return arith.TruncIOp(_i(32), arith.ShRSIOp(v, _ci(31 + right)).result).result


def _mul_by_quantized_multiplier(x: ir.Value, m0, shift) -> ir.Value:
    """`reference.multiply_by_quantized_multiplier`, steps 2-4, on an i32 or i64 `x` holding an
    integer.

    `m0`, `shift`: i64 values holding int32s (per-channel, read from constant tensors; `x` i64),
    giving an i64 result; or Python ints known at compile time (`qadd`), giving an i32 result
    (it always fits). With compile-time values the left / right shift amounts are constants and
    the statically impossible branches are not built; when moreover `x` is i32, `shift <= 0`
    (no left shift, so step 2 is the identity), `right < 31` and `m0 != INT32_MIN` (no
    overflow case), only the product is 64-bit: the high half fits int32, and step 4 runs in
    i32 (on a 32-bit target a 64-bit add, shift or compare is two or more instructions)."""
    P = arith.CmpIPredicate
    static = isinstance(shift, int)
    if static:
        m0_value, shift_value = int(m0), int(shift)
        right_value = max(-shift_value, 0)
        if _width(x) == 32 and shift_value <= 0 and 1 <= right_value < 31 and m0_value > 1 << 30:
            return _mul_by_quantized_multiplier_one_rounding(x, m0_value, right_value)
        if _width(x) == 32 and shift_value <= 0 and right_value < 31 and m0_value != INT32_MIN:
            h = _high_mul(arith.MulIOp(_sext(x), _ci(m0_value)).result)
            return _rounding_divide_by_pot(arith.TruncIOp(_i(32), h).result, _ci(right_value, 32))
        x = _sext(x)
        left, right, m0 = _ci(max(shift_value, 0)), _ci(right_value), _ci(m0_value)
    else:
        zero = _ci(0)
        left = arith.MaxSIOp(shift, zero).result
        right = arith.MaxSIOp(arith.SubIOp(zero, shift).result, zero).result
    # Step 2: a = saturate_int32(x * 2^left).
    a = x if static and shift_value <= 0 else arith.ShLIOp(x, left).result
    a = _clamp(a, INT32_MIN, INT32_MAX)
    # Step 3: SaturatingRoundingDoublingHighMul(a, m0).
    h = _high_mul(arith.MulIOp(a, m0).result)
    if not static or m0_value == INT32_MIN:
        imin = _ci(INT32_MIN)
        overflow = arith.AndIOp(_cmp(P.eq, a, imin), _cmp(P.eq, m0, imin)).result
        h = _select(overflow, _ci(INT32_MAX), h)
    # Step 4: RoundingDivideByPOT(h, right).
    result = _rounding_divide_by_pot(h, right)
    return arith.TruncIOp(_i(32), result).result if static else result


def _to_i8(v: ir.Value, zero_point: int, lo: int, hi: int) -> ir.Value:
    """Step 5: `clamp(v + zero_point, lo, hi)` as i8 (in the width of `v`)."""
    y = _clamp(arith.AddIOp(v, _ci(zero_point, _width(v))).result, lo, hi)
    return arith.TruncIOp(_i(8), y).result


# ----------------------------------------------------------------------------- qconv2d


def _pad_input(x: ir.Value, pad_value: int, padding, kernel, out_hw, strides) -> ir.Value:
    """`x` (NHWC i8) padded by `padding` with `pad_value` and cropped to exactly the window the
    convolution reads, `(O - 1) * s + K` (as `builders.conv_input` does for f32)."""
    n, h, w, c = shape_of(x)
    need = [(o - 1) * s + k for o, s, k in zip(out_hw, strides, kernel)]
    high = [max(0, nd - d - p) for nd, d, p in zip(need, (h, w), padding)]
    cur = x
    if any(padding) or any(high):
        ph, pw = padding
        padded = tensor_type([n, h + ph + high[0], w + pw + high[1], c], _i(8))
        pad = tensor.PadOp(padded, cur, [], [], [0, ph, pw, 0], [0, high[0], high[1], 0])
        block = pad.region.blocks.append(*([ir.IndexType.get()] * 4))
        with ir.InsertionPoint(block):
            tensor.YieldOp(_ci(pad_value, 8))
        cur = pad.result
    _, ch, cw, _ = shape_of(cur)
    if ch != need[0] or cw != need[1]:
        cur = tensor.ExtractSliceOp(tensor_type([n, need[0], need[1], c], _i(8)), cur, [], [], [],
                                    [0, 0, 0, 0], [n, need[0], need[1], c], [1, 1, 1, 1]).result
    return cur


def _zero_point_offsets(w: np.ndarray, x_zero: int, bias: ir.Value) -> list[ir.Value]:
    """What step 0 adds to `sum x w` of a frozen HWIO weight `w` (int8; depthwise `[KH, KW, 1,
    C]`) so that it equals `sum (x - x_zero) w + bias` of the reference: `bias - x_zero * sum w`
    per output channel, `sum w` computed here. A frozen bias folds in (one i32 constant, or i64
    where a dead channel's +-2^31 bias leaves int32); a trained bias stays a tensor beside the
    constant."""
    corr = -int(x_zero) * w.astype(np.int64).reshape(-1, w.shape[-1]).sum(axis=0)
    b_value = constant_value(bias)
    if b_value is None:
        return [bias, _const_tensor_fitting(corr)]
    return [_const_tensor_fitting(b_value.astype(np.int64) + corr)]


def convert_qconv2d(op, adaptor, type_converter, rewriter, kernels: str = "iree"):
    """`kernels="ttk"` (or "ttk-f32"): a qconv2d inside the contract of our pointwise, depthwise or first-conv
    kernel becomes a dispatch of it (`kernels.conv1x1_dispatch`, `dwconv_dispatch`,
    `conv_dispatch`); everything else, and `kernels="iree"`, is lowered to linalg."""
    from .conv import _conv_attrs, _is_depthwise
    from .kernels import (conv1x1_contract, conv1x1_dispatch, conv_contract, conv_dispatch, dwconv_contract,
                          dwconv_dispatch)

    x, w, bias = adaptor.input, adaptor.weight, adaptor.bias
    strides, padding, groups = _conv_attrs(op)
    out_shape = shape_of(op.result)
    w_shape = shape_of(w)
    depthwise = _is_depthwise(op, groups, w_shape)
    x_zero = _attr_i(op, "input_zero_point")
    y_zero = _attr_i(op, "output_zero_point")
    lo, hi = _attr_array(op, "clamp", ir.DenseI64ArrayAttr)
    m0 = _attr_array(op, "multiplier", ir.DenseI32ArrayAttr)
    shift = _attr_array(op, "shift", ir.DenseI32ArrayAttr)
    if kernels != "iree":
        quant = (m0, shift, (lo, hi), (x_zero, y_zero))
        pointwise = conv1x1_contract(shape_of(x), w_shape, strides, padding, groups, *quant) is None
        dw = dwconv_contract(shape_of(x), w_shape, out_shape, strides, padding, depthwise, *quant) is None
        dense = conv_contract(shape_of(x), w_shape, out_shape, strides, padding, groups, depthwise,
                              *quant) is None
        if pointwise or dw or dense:
            with rewriter.ip, op.location:
                args = (op, x, w, bias, _const_tensor(m0, 32), _const_tensor(shift, 32), x_zero, y_zero, (lo, hi))
                result = conv1x1_dispatch(*args) if pointwise else \
                    dwconv_dispatch(*args, strides[0], padding[0]) if dw else \
                    conv_dispatch(*args, strides[0], padding[0])
            rewriter.replace_op(op, [result])
            return
    w_value = constant_value(w)
    with rewriter.ip, op.location:
        xp = _pad_input(x, x_zero, padding, w_shape[:2], out_shape[1:3], strides)
        if w_value is None:
            izp, kzp = _ci(x_zero, 32), _ci(0, 32)
        init = _zeros_i32(out_shape)
        if depthwise:
            kh, kw, one, c = w_shape
            kernel = tensor.CollapseShapeOp(tensor_type([kh, kw, c], _i(8)), w, [[0], [1], [2, 3]]).result
        if w_value is None:  # a trained weight: the zero point inside the dot product
            dot = linalg.depthwise_conv_2d_nhwc_hwc_q(xp, kernel, izp, kzp, outs=[init], strides=list(strides),
                                                       dilations=[1, 1]) if depthwise else \
                linalg.conv_2d_nhwc_hwcf_q(xp, w, izp, kzp, outs=[init], strides=list(strides), dilations=[1, 1])
            offsets = [bias]
        else:  # frozen: sum (x - x_zero) w = sum x w - x_zero sum w, the last term a constant
            dot = linalg.depthwise_conv_2d_nhwc_hwc(xp, kernel, outs=[init], strides=list(strides),
                                                    dilations=[1, 1]) if depthwise else \
                linalg.conv_2d_nhwc_hwcf(xp, w, outs=[init], strides=list(strides), dilations=[1, 1])
            offsets = _zero_point_offsets(w_value, x_zero, bias)

        def body(d, *rest):
            *adds, m, s, _ = rest
            acc = _sext(d)
            for b in adds:
                acc = arith.AddIOp(acc, _sext(b)).result
            acc32 = _clamp(acc, INT32_MIN, INT32_MAX)  # step 0
            return _to_i8(_mul_by_quantized_multiplier(acc32, _sext(m), _sext(s)), y_zero, lo, hi)

        d4 = dims(4)
        chan = amap(4, [d4[3]])
        ins = [dot, *offsets, _const_tensor(m0, 32), _const_tensor(shift, 32)]
        result = generic(ins, _empty(out_shape, _i(8)), [identity(4)] + [chan] * (len(ins) - 1) + [identity(4)],
                         [PARALLEL] * 4, body)
    rewriter.replace_op(op, [result])


# ----------------------------------------------------------------------------- qadd

#: TFLite's int8 ADD: both inputs are scaled by 2^20 before rescaling.
ADD_LEFT_SHIFT = 20


def _qadd_side_table(zero: int, m0: int, shift: int) -> np.ndarray:
    """One side of `qadd` for each of the 256 int8 values `q` (index `q + 128`): its rescaled
    `mul_by_quantized_multiplier((q - zero) << 20)` (`reference.add`'s `ra` / `rb`), an i32."""
    q = np.arange(-128, 128, dtype=np.int64)
    return multiply_by_quantized_multiplier((q - zero) << ADD_LEFT_SHIFT, np.int64(m0), np.int64(shift)).astype(np.int32)


def convert_qadd(op, adaptor, type_converter, rewriter):
    """Each side's rescaled value depends on its int8 alone: 256-entry i32 tables computed at
    compile time by the reference (`_qadd_side_table`), so an element is two table loads, the sum
    and one rescale to the output (instead of three 64-bit multiply-and-round sequences: on the
    Cortex-M7 ~37 -> ~18 instructions an element)."""
    a, b = adaptor.lhs, adaptor.rhs
    sa, sb, sy = (_attr_f(op, f"{s}_scale") for s in ("lhs", "rhs", "output"))
    za, zb, zy = (_attr_i(op, f"{s}_zero_point") for s in ("lhs", "rhs", "output"))
    lo, hi = _attr_array(op, "clamp", ir.DenseI64ArrayAttr)
    twice_max = 2.0 * max(sa, sb)
    (ma,), (sha,) = quantize_multiplier([sa / twice_max])
    (mb,), (shb,) = quantize_multiplier([sb / twice_max])
    (my,), (shy,) = quantize_multiplier([twice_max / ((1 << ADD_LEFT_SHIFT) * sy)])
    shape = shape_of(op.result)
    r = len(shape)

    with rewriter.ip, op.location:
        table_a = _const_tensor(_qadd_side_table(za, int(ma), int(sha)), 32)
        table_b = _const_tensor(_qadd_side_table(zb, int(mb), int(shb)), 32)

        def side(q, table):
            index = arith.IndexCastOp(ir.IndexType.get(), arith.AddIOp(_sext(q, 32), _ci(128, 32)).result).result
            return tensor.ExtractOp(table, [index]).result

        def body(x, y, out):
            # |ra|, |rb| < 2^28 (|q - zero| <= 255 shifted by 20, rescaled by at most 1): the sum
            # fits i32
            s = _mul_by_quantized_multiplier(arith.AddIOp(side(x, table_a), side(y, table_b)).result,
                                             int(my), int(shy))
            return _to_i8(s, zy, lo, hi)

        result = generic([a, b], _empty(shape, _i(8)), [identity(r)] * 3, [PARALLEL] * r, body)
    rewriter.replace_op(op, [result])


# ----------------------------------------------------------------------------- qavg_pool


def convert_qavg_pool(op, adaptor, type_converter, rewriter):
    x = adaptor.input
    n, h, w, c = shape_of(x)
    count = h * w
    P = arith.CmpIPredicate
    with rewriter.ip, op.location:
        d = dims(4)
        total = generic([x], _zeros_i32([n, c]), [identity(4), amap(4, [d[0], d[3]])],
                        [PARALLEL, REDUCTION, REDUCTION, PARALLEL],
                        lambda v, acc: arith.AddIOp(acc, arith.ExtSIOp(_i(32), v).result).result)

        def body(s, out):
            s = _sext(s)
            half = _select(_cmp(P.sge, s, _ci(0)), _ci(count // 2), _ci(-(count // 2)))
            mean = arith.DivSIOp(arith.AddIOp(s, half).result, _ci(count)).result
            return arith.TruncIOp(_i(8), _clamp(mean, -128, 127)).result

        result = generic([total], _empty([n, c], _i(8)), [identity(2)] * 2, [PARALLEL] * 2, body)
    rewriter.replace_op(op, [result])


# ----------------------------------------------------------------------------- (de)quantize


def convert_quantize(op, adaptor, type_converter, rewriter):
    x = adaptor.input
    scale, zero = _attr_f(op, "scale"), _attr_i(op, "zero_point")
    shape = shape_of(x)
    r = len(shape)

    def body(v, out):
        q = math.roundeven(arith.DivFOp(arith.ExtFOp(ir.F64Type.get(), v).result, _cf64(scale)).result)
        q = arith.AddFOp(q, _cf64(float(zero))).result
        q = arith.MinimumFOp(arith.MaximumFOp(q, _cf64(-128.0)).result, _cf64(127.0)).result
        return arith.FPToSIOp(_i(8), q).result

    with rewriter.ip, op.location:
        result = generic([x], _empty(shape, _i(8)), [identity(r)] * 2, [PARALLEL] * r, body)
    rewriter.replace_op(op, [result])


def convert_dequantize(op, adaptor, type_converter, rewriter):
    q = adaptor.input
    scale, zero = _attr_f(op, "scale"), _attr_i(op, "zero_point")
    shape = shape_of(q)
    r = len(shape)

    def body(v, out):
        k = arith.SIToFPOp(ir.F64Type.get(), arith.SubIOp(_sext(v), _ci(zero)).result).result
        return arith.TruncFOp(ir.F32Type.get(), arith.MulFOp(_cf64(scale), k).result).result

    with rewriter.ip, op.location:
        result = generic([q], _empty(shape, ir.F32Type.get()), [identity(r)] * 2, [PARALLEL] * r, body)
    rewriter.replace_op(op, [result])


# ----------------------------------------------------------------------------- training ops


def _f32() -> ir.Type:
    return ir.F32Type.get()


def _to_f32(v: ir.Value) -> ir.Value:
    t = str(v.type)
    if t == "f32":
        return v
    return arith.SIToFPOp(_f32(), v).result


def convert_channel_scale(op, adaptor, type_converter, rewriter):
    x = adaptor.input
    scales = np.asarray(list(ir.DenseF64ArrayAttr(op.attributes["scales"])), np.float32)
    shape = shape_of(x)
    r = len(shape)
    with rewriter.ip, op.location:
        ty = tensor_type([scales.size], _f32())
        table = arith.ConstantOp(ty, ir.DenseElementsAttr.get(scales, type=ty)).result
        result = generic([x, table], _empty(shape, _f32()),
                         [identity(r), amap(r, [dims(r)[-1]]), identity(r)], [PARALLEL] * r,
                         lambda v, sc, out: arith.MulFOp(_to_f32(v), sc).result)
    rewriter.replace_op(op, [result])


def convert_qclamp_grad(op, adaptor, type_converter, rewriter):
    g, y = adaptor.grad, adaptor.output
    lo, hi = _attr_array(op, "clamp", ir.DenseI64ArrayAttr)
    shape = shape_of(g)
    r = len(shape)
    P = arith.CmpIPredicate

    def body(gv, yv, out):
        inside = arith.AndIOp(_cmp(P.sgt, yv, _ci(lo, 8)), _cmp(P.slt, yv, _ci(hi, 8))).result
        zero = arith.ConstantOp(_f32(), ir.FloatAttr.get(_f32(), 0.0)).result
        return _select(inside, gv, zero)

    with rewriter.ip, op.location:
        result = generic([g, y], _empty(shape, _f32()), [identity(r)] * 3, [PARALLEL] * r, body)
    rewriter.replace_op(op, [result])


def _bytes_of_8(v: ir.Value) -> ir.Value:
    """`v` [..., C] viewed as [..., C / 8, 8] (`tensor.expand_shape`; C a multiple of 8)."""
    shape = shape_of(v)
    r = len(shape)
    new = shape[:-1] + [shape[-1] // 8, 8]
    assoc = [[i] for i in range(r - 1)] + [[r - 1, r]]
    return tensor.ExpandShapeOp(tensor_type(new, ir.RankedTensorType(v.type).element_type), v, assoc, [], new).result


def convert_qclamp_mask(op, adaptor, type_converter, rewriter):
    """Bit k of byte [..., j] = `lo < y[..., 8 j + k] < hi`: an OR-reduction over the 8 channels."""
    lo, hi = _attr_array(op, "clamp", ir.DenseI64ArrayAttr)
    shape = shape_of(adaptor.output)
    r = len(shape)
    P = arith.CmpIPredicate

    def body(yv, acc):
        inside = arith.AndIOp(_cmp(P.sgt, yv, _ci(lo, 8)), _cmp(P.slt, yv, _ci(hi, 8))).result
        k = arith.IndexCastOp(_i(8), linalg.IndexOp(r).result).result
        return arith.OrIOp(acc, _select(inside, arith.ShLIOp(_ci(1, 8), k).result, _ci(0, 8))).result

    with rewriter.ip, op.location:
        y8 = _bytes_of_8(adaptor.output)
        out = linalg.fill(_ci(0, 8), outs=[_empty(shape[:-1] + [shape[-1] // 8], _i(8))])
        d = dims(r + 1)
        result = generic([y8], out, [identity(r + 1), amap(r + 1, d[:r])], [PARALLEL] * r + [REDUCTION], body)
    rewriter.replace_op(op, [result])


def convert_qmask_grad(op, adaptor, type_converter, rewriter):
    """`grad[..., 8 j + k]` where bit k of `mask[..., j]` is 1, else 0, on `grad` viewed as
    [..., C / 8, 8]. (Reading the mask through a `c floordiv 8` indexing map instead fails in
    iree-compile 3.13 for the M7: "tiling is not supported for the semi-affine indexing map".)"""
    shape = shape_of(adaptor.grad)
    r = len(shape)

    def body(gv, mv, out):
        k = arith.IndexCastOp(_i(8), linalg.IndexOp(r).result).result
        bit = arith.AndIOp(arith.ShRUIOp(mv, k).result, _ci(1, 8)).result
        zero = arith.ConstantOp(_f32(), ir.FloatAttr.get(_f32(), 0.0)).result
        return _select(_cmp(arith.CmpIPredicate.ne, bit, _ci(0, 8)), gv, zero)

    with rewriter.ip, op.location:
        g8 = _bytes_of_8(adaptor.grad)
        d = dims(r + 1)
        masked = generic([g8, adaptor.mask], _empty(shape_of(g8), _f32()),
                         [identity(r + 1), amap(r + 1, d[:r]), identity(r + 1)], [PARALLEL] * (r + 1), body)
        assoc = [[i] for i in range(r - 1)] + [[r - 1, r]]
        result = tensor.CollapseShapeOp(tensor_type(shape, _f32()), masked, assoc).result
    rewriter.replace_op(op, [result])


#: 1.5 * 2^23: for |x| <= 2^22, `(x + MAGIC) - MAGIC` is x rounded half to even (the sum lands in
#: [2^23, 2^24), where f32 steps by 1, and an f32 add rounds to nearest even).
_ROUND_MAGIC = 12582912.0


def convert_qsgd_update(op, adaptor, type_converter, rewriter, clamp: str = "select"):
    """`clamp(p - roundeven(lr * g))` in integers; `p` unchanged when the step's loss is not
    finite or the element's `lr * g` is NaN (a NaN would reach the float -> int conversion, whose
    result is undefined); an infinite `lr * g` saturates like any large step.

    The step is clamped before it is rounded (clamping to integer bounds commutes with rounding)
    with `clamp_f32(mode)` (one VMAXNM/VMINNM each on the cortex-m7), and rounded half to even by
    an f32 add and subtract of a power of two (`_ROUND_MAGIC` for an i8 weight's step of at most
    256): IREE expands `math.roundeven` into ~55 instructions per element on these targets."""
    p, g = adaptor.param, adaptor.grad
    lr = ir.FloatAttr(op.attributes["lr"]).value
    et = ir.RankedTensorType(p.type).element_type
    bits = ir.IntegerType(et).width
    lo, hi = (-127, 127) if bits == 8 else (INT32_MIN, INT32_MAX)
    shape = shape_of(p)
    r = len(shape)

    # An i8 weight moves at most 254, so a step clamped to +-256 gives the same result in i32
    # (a float -> i64 conversion is a library call on a 32-bit target); an i32 bias needs i64 and
    # a step clamped to +-2^32 (beyond it the result saturates either way).
    wide, limit = (32, 256.0) if bits == 8 else (64, 2.0**32)

    def body(pv, gv, out):
        f = lambda v: arith.ConstantOp(_f32(), ir.FloatAttr.get(_f32(), v)).result  # noqa: E731
        x = arith.MulFOp(f(lr), gv).result
        ok = arith.AndIOp(finite, arith.CmpFOp(arith.CmpFPredicate.ORD, x, x).result).result
        x = clamp_f32(x, -limit, limit, clamp)
        if limit <= 2.0**22:
            step = arith.SubFOp(arith.AddFOp(x, f(_ROUND_MAGIC)).result, f(_ROUND_MAGIC)).result
        else:  # |x| < 2^23: x +- 2^23 (x's sign) lands where f32 steps by 1; from 2^23 on x is whole
            m = math.copysign(f(2.0**23), x)
            rounded = arith.SubFOp(arith.AddFOp(x, m).result, m).result
            small = arith.CmpFOp(arith.CmpFPredicate.OLT, math.absf(x), f(2.0**23)).result
            step = arith.SelectOp(small, rounded, x).result
        new = arith.SubIOp(_sext(pv, wide), arith.FPToSIOp(_i(wide), step).result).result
        return arith.SelectOp(ok, arith.TruncIOp(et, _clamp(new, lo, hi)).result, pv).result

    with rewriter.ip, op.location:
        # The step's loss gates the update, as for sgd_update (loss - loss == 0 iff finite).
        loss = tensor.ExtractOp(adaptor.loss, []).result
        zero = arith.ConstantOp(_f32(), ir.FloatAttr.get(_f32(), 0.0)).result
        finite = arith.CmpFOp(arith.CmpFPredicate.OEQ, arith.SubFOp(loss, loss).result, zero).result
        result = generic([p, g], _empty(shape, et), [identity(r)] * 3, [PARALLEL] * r, body)
    rewriter.replace_op(op, [result])


#: `to-linalg{kernels=...}` -> the qconv2d pattern (module-level objects, as the bindings need).
KERNEL_PATTERNS = {mode: {tq.QConv2dOp: functools.partial(convert_qconv2d, kernels=mode)}
                   for mode in KERNELS}

#: clamp lowering (`builders.CLAMPS`) -> the patterns that depend on it (as in
#: `elementwise.CLAMP_PATTERNS`).
CLAMP_PATTERNS = {mode: {tq.QSgdUpdateOp: functools.partial(convert_qsgd_update, clamp=mode)}
                  for mode in CLAMPS}

PATTERNS = {
    tq.ChannelScaleOp: convert_channel_scale,
    tq.QClampGradOp: convert_qclamp_grad,
    tq.QClampMaskOp: convert_qclamp_mask,
    tq.QMaskGradOp: convert_qmask_grad,
    tq.QSgdUpdateOp: convert_qsgd_update,
    tq.QConv2dOp: convert_qconv2d,
    tq.QAddOp: convert_qadd,
    tq.QAvgPoolOp: convert_qavg_pool,
    tq.QuantizeOp: convert_quantize,
    tq.DequantizeOp: convert_dequantize,
}
