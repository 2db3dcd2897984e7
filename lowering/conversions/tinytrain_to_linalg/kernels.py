"""Our Cortex-M int8 kernels as IREE dispatches (issue #10: they enter through IREE, not around it).

With `to-linalg{kernels=ttk}`, a `qconv2d` inside the contract of `ttk_conv1x1_s8` (1x1, stride 1,
no padding, dense, batch 1, per-channel multipliers in [2^30, 2^31) or 0, shifts in [-31, 30], an
int32 accumulator that cannot overflow) becomes one `flow.dispatch` of a `stream.executable`
whose workgroup function calls `ttk_iree_conv1x1_s8` (runtime/kernels/src/ttk_iree.c), declared
`hal.import.static`: with `--iree-llvmcpu-link-static` the call stays a direct, undefined
reference in IREE's object, resolved by the firmware link. IREE keeps the schedule and the memory:
it allocates every binding (input, packed weights, bias, requantization constants, output and
the kernel's scratch, a second, transient result) and orders the dispatch. Anything outside the
contract keeps the linalg lowering (IREE's generated code), as does the host (`kernels=iree`).

The weights are packed `[C_out][C_in]` (the kernel's layout) by a `linalg.transpose` of the HWIO
constant, which IREE evaluates at compile time; the layer's shapes, zero points and clamp are
constants of the workgroup function (one executable per distinct layer signature).

The `stream`/`flow` ops are IREE's dialects, which the torch-mlir bindings do not register: they
are built as generic operations (the context allows unregistered dialects for this), in the
generic form IREE parses (`entry_points`, `operandSegmentSizes`, `tied_operands`).
"""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import arith, func, linalg, tensor

from .builders import shape_of, tensor_type

__all__ = ["KERNELS", "conv1x1_contract", "conv1x1_scratch_bytes", "conv1x1_dispatch"]

#: `to-linalg{kernels=...}`: "iree" (IREE's generated code for every op) or "ttk" (our kernels
#: where an op is inside a kernel's contract, IREE's code elsewhere).
KERNELS = ("iree", "ttk")

#: Upper bound of sizeof(ttk_rq_t) (runtime/kernels/src/ttk_simd.h, 36 bytes today): the scratch
#: binding may be larger than the kernel's need, never smaller.
_RQ_BOUND = 64
_ENTRY = "ttk_iree_conv1x1_s8"


def conv1x1_scratch_bytes(c_in: int, c_out: int) -> int:
    """Scratch for `ttk_conv1x1_s8`'s widened-operand path with every output channel in one
    block (`ttk_conv1x1_s8_scratch_size`, with `_RQ_BOUND` for the per-channel constants)."""
    k4 = (c_in + 3) & ~3
    return k4 * 4 + (c_out + 1) // 2 * (k4 * 4 + 2 * _RQ_BOUND + 8)


def conv1x1_contract(x_shape, w_shape, strides, padding, groups, mult, shift, clamp,
                     zero_points) -> str | None:
    """None when `ttk_conv1x1_s8` computes this qconv2d bit-exactly, else why not."""
    if groups != 1 or list(w_shape[:2]) != [1, 1]:
        return "not a dense 1x1 convolution"
    if list(strides) != [1, 1] or any(padding):
        return "stride or padding"
    if x_shape[0] != 1:
        return "batch > 1"
    if any(m != 0 and not (1 << 30) <= m < (1 << 31) for m in mult):
        return "a multiplier outside [2^30, 2^31)"
    if any(not -31 <= s <= 30 for s in shift):
        return "a shift outside [-31, 30]"
    lo, hi = clamp
    if not -128 <= lo <= hi <= 127 or any(not -128 <= z <= 127 for z in zero_points):
        return "clamp or zero point outside int8"
    if w_shape[2] * 255 * 128 >= (1 << 30):  # |sum((x - x_zero) * w)| stays far from 2^31
        return "C_in too large for the int32 accumulator"
    return None


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


def _executable(block: ir.Block, name: str, memrefs: list, consts: list) -> None:
    """`stream.executable @name` with the export and workgroup function `@name` (one workgroup:
    IREE links every executable into one library, so the function names must be unique)
    calling `_ENTRY`."""
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
        decl = func.FuncOp(_ENTRY, callee_type, visibility="private")
        decl.attributes["hal.import.static"] = ir.UnitAttr.get()
        fn = func.FuncOp(name, ir.FunctionType.get([binding] * len(memrefs), []))
        entry = fn.add_entry_block()
    with ir.InsertionPoint(entry):
        zero = _index(0)
        views = [_generic("stream.binding.subspan", [arg, zero], [t]).result
                 for arg, t in zip(entry.arguments, memrefs)]
        func.CallOp([], ir.FlatSymbolRefAttr.get(_ENTRY), views + [_index(c) for c in consts])
        func.ReturnOp([])


def conv1x1_dispatch(op, x: ir.Value, w: ir.Value, bias: ir.Value, mult: ir.Value, shift: ir.Value,
                     x_zero: int, y_zero: int, clamp) -> ir.Value:
    """The qconv2d `op` (inside `conv1x1_contract`) as a dispatch of our kernel; built at the
    current insertion point, returns the `[1, H, W, C_out]` int8 result."""
    n, h, wd, k = shape_of(x)
    c_out = shape_of(w)[3]
    p = h * wd
    i8, i32 = ir.IntegerType.get_signless(8), ir.IntegerType.get_signless(32)
    scratch = conv1x1_scratch_bytes(k, c_out)
    w_io = tensor.CollapseShapeOp(tensor_type([k, c_out], i8), w, [[0, 1, 2], [3]]).result
    w_oi = linalg.transpose(w_io, outs=[tensor.EmptyOp([c_out, k], i8).result], permutation=[1, 0])
    w_flat = tensor.CollapseShapeOp(tensor_type([c_out * k], i8), w_oi, [[0, 1]]).result
    x_flat = tensor.CollapseShapeOp(tensor_type([p * k], i8), x, [[0, 1, 2, 3]]).result
    consts = [p, k, c_out, x_zero, y_zero, clamp[0], clamp[1]]
    name = "ttk_conv1x1_" + "_".join(str(v).replace("-", "m") for v in consts)
    memrefs = [ir.MemRefType.get([m], t) for m, t in ((p * k, i8), (c_out * k, i8), (c_out, i32), (c_out, i32),
                                                      (c_out, i32), (p * c_out, i8), (scratch, i8))]
    _executable(_module_block(op), name, memrefs, consts)
    index = ir.IndexType.get()
    dispatch = _generic("flow.dispatch", [x_flat, w_flat, bias, mult, shift],
                        [tensor_type([p * c_out], i8), tensor_type([scratch], i8)], attributes={
                            "entry_points": ir.ArrayAttr.get([ir.SymbolRefAttr.get([name, name])]),
                            "operandSegmentSizes": ir.DenseI32ArrayAttr.get([0, 5, 0, 0]),
                            "tied_operands": ir.ArrayAttr.get([ir.IntegerAttr.get(index, -1)] * 2)})
    return tensor.ExpandShapeOp(tensor_type([n, h, wd, c_out], i8), dispatch.results[0], [[0, 1, 2, 3]],
                                [], [n, h, wd, c_out]).result
