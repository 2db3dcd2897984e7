"""Our Cortex-M int8 kernels as IREE dispatches (issue #10: they enter through IREE, not around it).

With `to-linalg{kernels=ttk}`, a `qconv2d` inside the contract of `ttk_conv1x1_s8` (1x1, stride 1,
no padding, dense) or of `ttk_dwconv_s8` (depthwise KxK, K = 3/5/7, stride 1/2, padding (K-1)/2 or
0, the latter on the pre-padded patches of `patch-stage`) or of `ttk_conv_s8` (the first dense conv,
same two paddings),
batch 1, per-channel multipliers in [2^30, 2^31) or 0, shifts in [-31, 30], an int32 accumulator
that cannot overflow, becomes one `flow.dispatch` of a `stream.executable` whose workgroup
function calls `ttk_iree_conv1x1_s8` / `ttk_iree_dwconv_s8` / `ttk_iree_conv_s8`
(runtime/kernels/src/ttk_iree.c),
declared `hal.import.static`: with `--iree-llvmcpu-link-static` the call stays a direct, undefined
reference in IREE's object, resolved by the firmware link. IREE keeps the schedule and the memory:
it allocates every binding (input, packed weights, bias, requantization constants, output and
the kernel's scratch, a second, transient result) and orders the dispatch. Anything outside the
contract keeps the linalg lowering (IREE's generated code), as does the host (`kernels=iree`).

The pointwise weights are packed `[C_out][C_in]` (the kernel's layout) by a `linalg.transpose` of
the HWIO constant, which IREE evaluates at compile time (depthwise weights stay HWIO); the
depthwise kernel pads its input itself, so no padded copy is made; the layer's shapes, padding, zero points and clamp are
constants of the workgroup function (one executable per distinct layer signature).

The `stream`/`flow` ops are IREE's dialects, which the torch-mlir bindings do not register: they
are built as generic operations (the context allows unregistered dialects for this), in the
generic form IREE parses (`entry_points`, `operandSegmentSizes`, `tied_operands`).
"""

from __future__ import annotations

import math

from torch_mlir import ir
from torch_mlir.dialects import arith, func, linalg, tensor

from .builders import PARALLEL, amap, dims, generic, identity, shape_of, tensor_type

__all__ = ["KERNELS", "conv1x1_contract", "conv1x1_scratch_bytes", "conv1x1_dispatch", "conv_contract",
           "conv_dispatch", "conv1x1_grad_input_contract", "conv1x1_grad_input_dispatch", "conv1x1_grad_weight_dispatch",
           "dwconv_contract",
           "dwconv_dispatch", "dwconv_scratch_bytes"]

#: `to-linalg{kernels=...}`: "iree" (IREE's generated code for every op), "ttk" (our int8 kernels
#: where an int8 conv is inside a kernel's contract, IREE's code elsewhere: bit-identical to
#: "iree") or "ttk-f32" ("ttk" and our fp32 backward kernels where a gradient op is inside
#: theirs: dense 1x1 and depthwise input gradients, each sum in IREE's order, but IREE itself
#: rounds a multiply-add fused (VFMA) in some dispatches and unfused (VMLA) in others; dense 1x1
#: and depthwise weight gradients of a dequantized int8 input, the 1x1 one applying the scale once
#: per weight; so the results agree to float rounding, not bit for bit).
KERNELS = ("iree", "ttk", "ttk-f32")

#: Upper bound of sizeof(ttk_rq_t) (runtime/kernels/src/ttk_simd.h, 36 bytes today): the scratch
#: binding may be larger than the kernel's need, never smaller.
_RQ_BOUND = 64


#: Scratch `conv1x1_dispatch` gives `ttk_conv1x1_s8` whatever its tensors' size (bytes).
CONV1X1_SCRATCH_FLOOR = 8192


def conv1x1_scratch_bytes(c_in: int, c_out: int, pixels: int | None = None) -> int:
    """Scratch for `ttk_conv1x1_s8`'s widened-operand path. `pixels` None: every output channel
    in one block (`ttk_conv1x1_s8_scratch_size`, with `_RQ_BOUND` for the per-channel
    constants). Else what a dispatch of that many pixels gets: at most twice the bytes of its
    own input and output (or `CONV1X1_SCRATCH_FLOOR`), at least the kernel's minimum (4 pixels
    and one channel pair, `ttk_conv1x1_s8_scratch_min`). The kernel widens as many output
    channels per block as the scratch holds and widens the input once per block, so a smaller
    scratch costs a few instructions per MAC (about 2 / pixels of the layer's work) and never
    makes a layer with many weights and few pixels (e.g. 336 -> 112 channels at 4x4: 87 KB
    for all channels, 27 KB of tensors) the step's SRAM peak."""
    k4 = (c_in + 3) & ~3
    full = k4 * 8 + (c_out + 1) // 2 * (k4 * 4 + 2 * _RQ_BOUND + 8)
    if pixels is None:
        return full
    least = k4 * 12 + 2 * _RQ_BOUND + 8
    cap = max(CONV1X1_SCRATCH_FLOOR, 2 * pixels * (c_in + c_out)) & ~3
    return max(least, min(full, cap))


def dwconv_scratch_bytes(h: int, w: int, k: int, stride: int, pad: int) -> int:
    """Scratch for `ttk_dwconv_s8`'s SMLAD path (`ttk_dwconv_s8_scratch_size`): the weight words
    of 4 channels, 16 K (K-1) bytes, and a strip of 4 output rows' input rows (K + 3 stride,
    at most the padded height) widened to 4 int16 channel planes of (W + 2 pad + 4) & ~1
    columns."""
    rows = max(k, min(k + 3 * stride, h + 2 * pad))
    return 16 * k * (k - 1) + rows * ((w + 2 * pad + 4) & ~1) * 8


def _quant_contract(mult, shift, clamp, zero_points, taps: int) -> str | None:
    """The requantization and accumulator part of both kernels' contract (`taps` MACs per output)."""
    if any(m != 0 and not (1 << 30) <= m < (1 << 31) for m in mult):
        return "a multiplier outside [2^30, 2^31)"
    if any(not -31 <= s <= 30 for s in shift):
        return "a shift outside [-31, 30]"
    lo, hi = clamp
    if not -128 <= lo <= hi <= 127 or any(not -128 <= z <= 127 for z in zero_points):
        return "clamp or zero point outside int8"
    if taps * 255 * 128 >= (1 << 30):  # |sum((x - x_zero) * w)| stays far from 2^31
        return "too many MACs per output for the int32 accumulator"
    return None


def conv1x1_contract(x_shape, w_shape, strides, padding, groups, mult, shift, clamp,
                     zero_points) -> str | None:
    """None when `ttk_conv1x1_s8` computes this qconv2d bit-exactly, else why not."""
    if groups != 1 or list(w_shape[:2]) != [1, 1]:
        return "not a dense 1x1 convolution"
    if list(strides) != [1, 1] or any(padding):
        return "stride or padding"
    if x_shape[0] != 1:
        return "batch > 1"
    return _quant_contract(mult, shift, clamp, zero_points, w_shape[2])


def _padding_contract(x_shape, out_shape, k: int, strides, padding) -> str | None:
    """The spatial part both KxK kernels share: equal strides, the same padding on every side,
    either (K-1)/2 (the kernel pads with x_zero) or 0 (a pre-padded input, as `patch-stage`
    gives its patches), batch 1 and the output size of that padding."""
    if strides[0] != strides[1] or len(set(padding)) != 1 or padding[0] not in (0, (k - 1) // 2):
        return "stride or padding"
    if x_shape[0] != 1:
        return "batch > 1"
    expect = [(d + 2 * padding[0] - k) // strides[0] + 1 for d in x_shape[1:3]]
    if list(out_shape[1:3]) != expect or min(expect) < 1:
        return "output size"
    return None


def dwconv_contract(x_shape, w_shape, out_shape, strides, padding, depthwise, mult, shift, clamp,
                    zero_points) -> str | None:
    """None when `ttk_dwconv_s8` computes this qconv2d bit-exactly, else why not."""
    k = w_shape[0]
    if not depthwise or w_shape[1] != k or k not in (3, 5, 7):
        return "not a depthwise 3x3/5x5/7x7 convolution"
    if strides[0] not in (1, 2):
        return "stride or padding"
    return _padding_contract(x_shape, out_shape, k, strides, padding) or \
        _quant_contract(mult, shift, clamp, zero_points, k * k)


#: runtime/kernels/include/ttk/kernels.h TTK_CONV_MAX_K: the largest K*K*C_in of ttk_conv_s8.
CONV_MAX_K = 64


def conv_contract(x_shape, w_shape, out_shape, strides, padding, groups, depthwise, mult, shift, clamp,
                  zero_points) -> str | None:
    """None when `ttk_conv_s8` (the first dense conv: K x K, few input channels) computes this
    qconv2d bit-exactly, else why not."""
    kh, kw, c_in, _ = w_shape
    if groups != 1 or depthwise or kh != kw or kh % 2 == 0 or kh == 1:
        return "not a dense KxK convolution with an odd K > 1"
    if kh * kw * c_in > CONV_MAX_K:
        return f"K*K*C_in above {CONV_MAX_K}"
    if strides[0] < 1:
        return "stride or padding"
    return _padding_contract(x_shape, out_shape, kh, strides, padding) or \
        _quant_contract(mult, shift, clamp, zero_points, kh * kw * c_in)


def _module_block(op) -> ir.Block:
    parent = op.operation
    while parent.name != "builtin.module":
        parent = parent.parent
    return parent.regions[0].blocks[0]


def _generic(name: str, operands=(), results=(), attributes=None, regions: int = 0) -> ir.Operation:
    return ir.Operation.create(name, results=list(results), operands=list(operands),
                               attributes=attributes or {}, regions=regions)


def _index(v: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), ir.IntegerAttr.get(ir.IndexType.get(), v)).result


def _executable(block: ir.Block, name: str, entry: str, memrefs: list, consts: list) -> None:
    """`stream.executable @name` with the export and workgroup function `@name` (one workgroup:
    IREE links every executable into one library, so the function names must be unique)
    calling `entry(memrefs..., consts...)`."""
    for existing in block.operations:
        if existing.operation.name == "stream.executable" and \
                ir.StringAttr(existing.operation.attributes["sym_name"]).value == name:
            return
    binding = ir.Type.parse("!stream.binding")
    index = ir.IndexType.get()
    with ir.InsertionPoint.at_block_begin(block):
        exe = _generic("stream.executable", regions=1,
                       attributes={"sym_name": ir.StringAttr.get(name),
                                   "sym_visibility": ir.StringAttr.get("private")})
    with ir.InsertionPoint(exe.regions[0].blocks.append()):
        export = _generic("stream.executable.export", regions=1, attributes={
            "function_ref": ir.FlatSymbolRefAttr.get(name),
            "sym_name": ir.StringAttr.get(name), "sym_visibility": ir.StringAttr.get("public")})
        inner = _generic("builtin.module", regions=1)
        _generic("stream.executable.end")
    with ir.InsertionPoint(export.regions[0].blocks.append()):
        one = _index(1)
        _generic("stream.return", [one, one, one])
    with ir.InsertionPoint(inner.regions[0].blocks.append()):
        callee_type = ir.FunctionType.get(memrefs + [index] * len(consts), [])
        decl = func.FuncOp(entry, callee_type, visibility="private")
        decl.attributes["hal.import.static"] = ir.UnitAttr.get()
        fn = func.FuncOp(name, ir.FunctionType.get([binding] * len(memrefs), []))
        body = fn.add_entry_block()
    with ir.InsertionPoint(body):
        zero = _index(0)
        views = [_generic("stream.binding.subspan", [arg, zero], [t]).result
                 for arg, t in zip(body.arguments, memrefs)]
        func.CallOp([], ir.FlatSymbolRefAttr.get(entry), views + [_index(c) for c in consts])
        func.ReturnOp([])


def _dispatch(op, entry: str, operands: list, results: list, consts: list) -> ir.Operation:
    """`flow.dispatch` of `entry` on 1-D `operands` -> 1-D `results` (the executable is created
    once per `entry` and `consts`)."""
    name = entry.replace("_iree", "") + "_" + "_".join(str(v).replace("-", "m") for v in consts)
    memrefs = [ir.MemRefType.get(shape_of(v), ir.RankedTensorType(v.type).element_type) for v in operands]
    memrefs += [ir.MemRefType.get(ir.RankedTensorType(t).shape, ir.RankedTensorType(t).element_type)
                for t in results]
    _executable(_module_block(op), name, entry, memrefs, consts)
    index = ir.IndexType.get()
    return _generic("flow.dispatch", operands, results, attributes={
        "entry_points": ir.ArrayAttr.get([ir.SymbolRefAttr.get([name, name])]),
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([0, len(operands), 0, 0]),
        "tied_operands": ir.ArrayAttr.get([ir.IntegerAttr.get(index, -1)] * len(results))})


def _flat(v: ir.Value) -> ir.Value:
    shape = shape_of(v)
    if len(shape) == 1:
        return v
    et = ir.RankedTensorType(v.type).element_type
    return tensor.CollapseShapeOp(tensor_type([math.prod(shape)], et), v, [list(range(len(shape)))]).result


def _unflat(v: ir.Value, shape) -> ir.Value:
    et = ir.RankedTensorType(v.type).element_type
    return tensor.ExpandShapeOp(tensor_type(shape, et), v, [list(range(len(shape)))], [], list(shape)).result


def conv1x1_dispatch(op, x: ir.Value, w: ir.Value, bias: ir.Value, mult: ir.Value, shift: ir.Value,
                     x_zero: int, y_zero: int, clamp) -> ir.Value:
    """The qconv2d `op` (inside `conv1x1_contract`) as a dispatch of our kernel; built at the
    current insertion point, returns the `[1, H, W, C_out]` int8 result."""
    n, h, wd, k = shape_of(x)
    c_out = shape_of(w)[3]
    i8 = ir.IntegerType.get_signless(8)
    w_io = tensor.CollapseShapeOp(tensor_type([k, c_out], i8), w, [[0, 1, 2], [3]]).result
    w_oi = linalg.transpose(w_io, outs=[tensor.EmptyOp([c_out, k], i8).result], permutation=[1, 0]).results[0]
    results = [tensor_type([h * wd * c_out], i8), tensor_type([conv1x1_scratch_bytes(k, c_out, h * wd)], i8)]
    d = _dispatch(op, "ttk_iree_conv1x1_s8", [_flat(x), _flat(w_oi), bias, mult, shift], results,
                  [h * wd, k, c_out, x_zero, y_zero, clamp[0], clamp[1]])
    return _unflat(d.results[0], [n, h, wd, c_out])


def dwconv_dispatch(op, x: ir.Value, w: ir.Value, bias: ir.Value, mult: ir.Value, shift: ir.Value,
                    x_zero: int, y_zero: int, clamp, stride: int, pad: int) -> ir.Value:
    """The depthwise qconv2d `op` (inside `dwconv_contract`) as a dispatch of our kernel on the
    unpadded input (the kernel pads with x_zero itself when `pad` is (K-1)/2; 0: the input is
    already padded); returns the int8 result."""
    n, h, wd, c = shape_of(x)
    out = shape_of(op.result)
    k = shape_of(w)[0]
    i8 = ir.IntegerType.get_signless(8)
    results = [tensor_type([math.prod(out)], i8), tensor_type([dwconv_scratch_bytes(h, wd, k, stride, pad)], i8)]
    d = _dispatch(op, "ttk_iree_dwconv_s8", [_flat(x), _flat(w), bias, mult, shift], results,
                  [h, wd, c, k, stride, pad, x_zero, y_zero, clamp[0], clamp[1]])
    return _unflat(d.results[0], out)


def _double(v: ir.Value) -> ir.Value:
    return arith.AddIOp(v, v).result


def _pack_conv_q15(w: ir.Value) -> ir.Value:
    """HWIO int8 weights in `ttk_pack_conv_q15`'s layout, 1-D int16: per output channel pair j and
    4 k (K = KH*KW*C_in zero padded to K4, C_out to even) the lanes (j, quad, a, b, c) of
    channel 2j + b, k = 4 quad + 2c + a, each weight doubled (2 w: the kernel's q2 epilogue takes
    2 acc). One linalg.generic (sign extension, then w + w) on the padded, expanded weights; IREE
    folds it for constant weights."""
    kh, kw, c_in, c_out = shape_of(w)
    kk = kh * kw * c_in
    k4, co2 = (kk + 3) & ~3, c_out + (c_out & 1)
    i8, i16 = ir.IntegerType.get_signless(8), ir.IntegerType.get_signless(16)
    w2 = tensor.CollapseShapeOp(tensor_type([kk, c_out], i8), w, [[0, 1, 2], [3]]).result
    if (k4, co2) != (kk, c_out):
        pad = tensor.PadOp(tensor_type([k4, co2], i8), w2, [], [], [0, 0], [k4 - kk, co2 - c_out])
        block = pad.region.blocks.append(ir.IndexType.get(), ir.IndexType.get())
        with ir.InsertionPoint(block):
            tensor.YieldOp(arith.ConstantOp(i8, ir.IntegerAttr.get(i8, 0)).result)
        w2 = pad.result
    quads, pairs = k4 // 4, co2 // 2
    w5 = tensor.ExpandShapeOp(tensor_type([quads, 2, 2, pairs, 2], i8), w2, [[0, 1, 2], [3, 4]], [],
                              [quads, 2, 2, pairs, 2]).result
    j, quad, a, b, c = dims(5)
    out = tensor.EmptyOp([pairs, quads, 2, 2, 2], i16).result
    packed = generic([w5], out, [amap(5, [quad, c, a, j, b]), identity(5)], [PARALLEL] * 5,
                     lambda v, _: _double(arith.ExtSIOp(i16, v).result))
    return _flat(packed)


def conv_dispatch(op, x: ir.Value, w: ir.Value, bias: ir.Value, mult: ir.Value, shift: ir.Value,
                  x_zero: int, y_zero: int, clamp, stride: int, pad: int) -> ir.Value:
    """The dense qconv2d `op` (inside `conv_contract`) as a dispatch of `ttk_conv_s8` on the
    unpadded input (the kernel pads with x_zero when `pad` is (K-1)/2; 0: already padded);
    returns the int8 result."""
    _, h, wd, c_in = shape_of(x)
    k, _, _, c_out = shape_of(w)
    out = shape_of(op.result)
    i8 = ir.IntegerType.get_signless(8)
    d = _dispatch(op, "ttk_iree_conv_s8", [_flat(x), _pack_conv_q15(w), bias, mult, shift],
                  [tensor_type([math.prod(out)], i8)],
                  [h, wd, c_in, c_out, k, stride, pad, x_zero, y_zero, clamp[0], clamp[1]])
    return _unflat(d.results[0], out)


def conv1x1_grad_input_contract(w_shape, strides, padding, depthwise: bool) -> str | None:
    """None when `ttk_conv1x1_grad_input_f32` computes this fp32 `conv2d_grad_input` (each
    input-gradient value one sum over the output channels, sequential from 0, one rounding per
    multiply-add, as IREE's contraction where it fuses the multiply-add), else why not. The same
    window rule makes a `conv2d_grad_weight` one of `ttk_conv1x1_grad_weight_f32` when its input
    is a `dequantize` of the saved int8 activation."""
    if depthwise or list(w_shape[:2]) != [1, 1]:
        return "not a dense 1x1 convolution"
    if list(strides) != [1, 1] or any(padding):
        return "stride or padding"
    return None


def conv1x1_grad_input_dispatch(op, dy: ir.Value, w: ir.Value) -> ir.Value:
    """The fp32 input gradient `op` (inside `conv1x1_grad_input_contract`) as a dispatch of
    `ttk_conv1x1_grad_input_f32`: `dX[p, c] = sum_f dY[p, f] W[c, f]` over the N*H*W pixels,
    W as HWIO (its producer, e.g. the int8 weight's `channel_scale`, becomes IREE's own
    dispatch); returns the `[N, H, W, C]` result."""
    out = shape_of(op.result)
    _, _, c, f = shape_of(w)
    pixels = math.prod(out[:-1])
    d = _dispatch(op, "ttk_iree_conv1x1_grad_input_f32", [_flat(dy), _flat(w)],
                  [tensor_type([pixels * c], ir.F32Type.get())], [pixels, f, c])
    return _unflat(d.results[0], out)


def conv1x1_grad_weight_dispatch(op, x: ir.Value, x_zero: int, x_scale: float, dy: ir.Value) -> ir.Value:
    """The fp32 weight gradient `op` of a dense 1x1 stride-1 unpadded conv whose input is
    `dequantize(x, x_scale, x_zero)` as a dispatch of `ttk_conv1x1_grad_weight_f32` on the int8
    `x` itself (no fp32 copy of it): `dW[c, f] = x_scale * sum_p (x[p, c] - x_zero) dY[p, f]`
    over the N*H*W pixels (the scale applied once per weight: equal to the sum of dequantized
    products to float rounding); returns the `[1, 1, C, F]` result."""
    out = shape_of(op.result)
    _, _, c, f = out
    pixels = math.prod(shape_of(x)[:-1])
    f32 = ir.F32Type.get()
    scale = arith.ConstantOp(tensor_type([1], f32), ir.DenseElementsAttr.get_splat(
        tensor_type([1], f32), ir.FloatAttr.get(f32, x_scale))).result
    d = _dispatch(op, "ttk_iree_conv1x1_grad_weight_f32", [_flat(x), scale, _flat(dy)],
                  [tensor_type([c * f], f32)], [pixels, c, f, x_zero])
    return _unflat(d.results[0], out)


def dwconv_grad_input_contract(x_shape, w_shape, dy_shape, strides, padding, depthwise: bool) -> str | None:
    """None when `ttk_dwconv_grad_input_f32` computes this fp32 `conv2d_grad_input` (a depthwise
    K x K window, K = 3, 5 or 7, the same stride 1 or 2 and padding (K-1)/2 on both axes, batch 1;
    each input-gradient value one sum over its taps inside dY in (kh, kw) order, one rounding per
    multiply-add), else why not."""
    if not depthwise:
        return "not a depthwise convolution"
    k = w_shape[0]
    if w_shape[1] != k or k not in (3, 5, 7):
        return f"window {w_shape[0]}x{w_shape[1]} (the kernel takes 3x3, 5x5 and 7x7)"
    if list(strides) not in ([1, 1], [2, 2]):
        return f"strides {list(strides)}"
    if list(padding) != [(k - 1) // 2] * 2:
        return f"padding {list(padding)}"
    n, h, w, _ = x_shape
    if n != 1:
        return f"batch {n}"
    s, p = strides[0], (k - 1) // 2
    if list(dy_shape[1:3]) != [(h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1]:
        return f"output gradient {list(dy_shape)} for an input of {list(x_shape)}"
    return None


def dwconv_grad_input_dispatch(op, dy: ir.Value, w: ir.Value, stride: int) -> ir.Value:
    """The fp32 input gradient `op` of a depthwise conv (inside `dwconv_grad_input_contract`) as
    a dispatch of `ttk_dwconv_grad_input_f32`, W as HWIO `[K, K, 1, C]` (its producer, e.g. the
    int8 weight's `channel_scale`, becomes IREE's own dispatch); returns the `[1, H, W, C]`
    result."""
    out = shape_of(op.result)
    _, h, wd, c = out
    k = shape_of(w)[0]
    d = _dispatch(op, "ttk_iree_dwconv_grad_input_f32", [_flat(dy), _flat(w)],
                  [tensor_type([h * wd * c], ir.F32Type.get())], [h, wd, c, k, stride])
    return _unflat(d.results[0], out)


def dwconv_grad_weight_dispatch(op, x: ir.Value, x_zero: int, x_scale: float, dy: ir.Value, stride: int) -> ir.Value:
    """The fp32 weight gradient `op` of a depthwise conv (inside `dwconv_grad_input_contract`, the
    same window rule) whose input is `dequantize(x, x_scale, x_zero)`, or of its first channels
    (`x` then has all C channels, `dy` C or only the N < C trained ones), as a dispatch of
    `ttk_dwconv_grad_weight_f32` on the int8 `x` itself: `dW[kh, kw, c] = sum_{oh, ow}
    ((x[ih, iw, c] - x_zero) x_scale) dY[oh, ow, c]` for c < N over the taps inside the input, in
    (oh, ow) order, one rounding per multiply-add; returns the `[K, K, 1, N]` result."""
    out = shape_of(op.result)
    k, _, _, n_ch = out
    _, h, wd, c = shape_of(x)
    f32 = ir.F32Type.get()
    scale = arith.ConstantOp(tensor_type([1], f32), ir.DenseElementsAttr.get_splat(
        tensor_type([1], f32), ir.FloatAttr.get(f32, x_scale))).result
    d = _dispatch(op, "ttk_iree_dwconv_grad_weight_f32", [_flat(x), scale, _flat(dy)],
                  [tensor_type([k * k * n_ch], f32)], [h, wd, c, k, stride, x_zero, n_ch, shape_of(dy)[3]])
    return _unflat(d.results[0], out)
