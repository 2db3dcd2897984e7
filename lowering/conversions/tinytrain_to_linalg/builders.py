"""IR builders shared by the tinytrain -> linalg patterns.

Every helper creates ops with the bindings' op builders at the current `ir.InsertionPoint` and
`ir.Location` (a pattern enters `with rewriter.ip, op.location:` before calling them), and returns
the new `ir.Value`. Shapes and element types are read from the values' types, never from text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch_mlir import ir
from torch_mlir.dialects import arith, linalg, tensor

from tinytrain.errors import CompileError

__all__ = ["STAGE", "f32", "shape_of", "tensor_type", "const_f32", "const_index", "empty", "full",
           "dims", "amap", "identity", "PARALLEL", "REDUCTION", "generic", "elementwise",
           "conv_input", "reshape", "unsupported", "CLAMPS", "clamp_f32"]

#: The pipeline name of this conversion, used as the `stage` of its CompileErrors.
STAGE = "to-linalg"

PARALLEL = linalg.IteratorType.parallel
REDUCTION = linalg.IteratorType.reduction


def unsupported(op, message: str) -> CompileError:
    """A CompileError naming `op` and its location."""
    return CompileError(f"to-linalg: '{op.operation.name}' {message} (at {op.location})", stage=STAGE)


def f32() -> ir.Type:
    return ir.F32Type.get()


def shape_of(value: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(value.type).shape)


def tensor_type(shape: Sequence[int], element_type: ir.Type | None = None) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), element_type or f32())


def const_f32(value: float | ir.FloatAttr) -> ir.Value:
    """`arith.constant <value> : f32` (an f32 `FloatAttr` is used as is)."""
    attr = value if isinstance(value, ir.FloatAttr) and value.type == f32() else \
        ir.FloatAttr.get(f32(), float(value.value if isinstance(value, ir.FloatAttr) else value))
    return arith.ConstantOp(f32(), attr).result


def const_index(value: int) -> ir.Value:
    index = ir.IndexType.get()
    return arith.ConstantOp(index, ir.IntegerAttr.get(index, int(value))).result


def empty(shape: Sequence[int]) -> ir.Value:
    return tensor.EmptyOp(list(shape), f32()).result


def full(shape: Sequence[int], value: float = 0.0) -> ir.Value:
    """A tensor of `shape` filled with `value` (`linalg.fill` of a `tensor.empty`)."""
    c = const_f32(value)
    return linalg.fill(c, outs=[empty(shape)])


#: How an f32 clamp (ReLU, ReLU6, the ReLU6 inside hardswish/hardsigmoid) is lowered; the
#: `to-linalg{clamp=...}` option, set from the target by `compile()`:
#: - "select": `x ugt lo ? x : lo`, then `x ult hi ? x : hi` (`arith.cmpf` + `arith.select`). Equal
#:   to `maximumf`/`minimumf` (PyTorch's clamp) for every input, -0.0 and NaN included: the
#:   unordered predicates let a NaN through, -0.0 becomes the bound +0.0. Host and cortex-m4 (its
#:   FPv4 has no VMAXNM: one VCMP + VMRS + IT + VMOV per bound).
#: - "minmax": `maxnumf`/`minnumf` (IEEE 754-2008 maxNum/minNum): a NaN input gives the bound
#:   (0 for ReLU/ReLU6), not NaN; otherwise equal to "select" (up to the sign of a zero result).
#:   One VMAXNM/VMINNM each on the cortex-m7 (FPv5).
CLAMPS = ("select", "minmax")


def clamp_f32(x: ir.Value, lo: float | None, hi: float | None, mode: str) -> ir.Value:
    """`x` clamped to `[lo, hi]` (a bound of None is not applied), lowered as `mode` (`CLAMPS`)."""
    if mode not in CLAMPS:
        raise ValueError(f"clamp lowering must be one of {', '.join(CLAMPS)}, got {mode!r}")
    P = arith.CmpFPredicate
    for bound, pred, op in ((lo, P.UGT, arith.MaxNumFOp), (hi, P.ULT, arith.MinNumFOp)):
        if bound is None:
            continue
        c = const_f32(bound)
        if mode == "minmax":
            x = op(x, c).result
        else:
            x = arith.SelectOp(arith.CmpFOp(pred, x, c).result, x, c).result
    return x


def dims(n: int) -> list[ir.AffineExpr]:
    """The dimension expressions `d0 .. d<n-1>`."""
    return [ir.AffineDimExpr.get(i) for i in range(n)]


def amap(n: int, results: Sequence[ir.AffineExpr]) -> ir.AffineMap:
    """`affine_map<(d0, .., d<n-1>) -> (results)>`."""
    return ir.AffineMap.get(n, 0, list(results))


def identity(n: int) -> ir.AffineMap:
    return ir.AffineMap.get_identity(n)


def generic(ins: Sequence[ir.Value], out: ir.Value, maps: Sequence[ir.AffineMap],
            iterators: Sequence, body: Callable[..., ir.Value]) -> ir.Value:
    """`linalg.generic` with one output.

    `body(*in_elements, acc)` builds the scalar computation inside the region (at its insertion
    point) and returns the value to yield."""
    op = linalg.GenericOp_(list(ins), [out], list(maps), list(iterators))
    block = op.regions[0].blocks[0]
    with ir.InsertionPoint(block):
        linalg.YieldOp([body(*block.arguments)])
    return op.result


def elementwise(ins: Sequence[ir.Value], body: Callable[..., ir.Value]) -> ir.Value:
    """A `linalg.generic` over operands of one shape: identity maps, parallel iterators, a new
    `tensor.empty` as output. `body(*in_elements, acc)` as in `generic`."""
    shape = shape_of(ins[0])
    r = len(shape)
    return generic(ins, empty(shape), [identity(r)] * (len(ins) + 1), [PARALLEL] * r, body)


def conv_input(x: ir.Value, padding: Sequence[int], kernel: Sequence[int], out_hw: Sequence[int],
               strides: Sequence[int]) -> ir.Value:
    """Zero-pad `x` (NHWC) by `padding` and crop it to exactly the rows/columns a convolution
    reads, `(O - 1) * s + K`. (IREE 3.13 miscompiles a conv whose input has unread rows once
    unit output dims are folded, so the window is always exact.)"""
    n, h, w, c = shape_of(x)
    need = [(o - 1) * s + k for o, s, k in zip(out_hw, strides, kernel)]
    high = [max(0, nd - d - p) for nd, d, p in zip(need, (h, w), padding)]
    cur = x
    if any(padding) or any(high):
        zero = const_f32(0.0)
        ph, pw = padding
        padded = tensor_type([n, h + ph + high[0], w + pw + high[1], c])
        pad = tensor.PadOp(padded, cur, [], [], [0, ph, pw, 0], [0, high[0], high[1], 0])
        block = pad.region.blocks.append(*([ir.IndexType.get()] * 4))
        with ir.InsertionPoint(block):
            tensor.YieldOp(zero)
        cur = pad.result
    _, ch, cw, _ = shape_of(cur)
    if ch != need[0] or cw != need[1]:
        cur = tensor.ExtractSliceOp(tensor_type([n, need[0], need[1], c]), cur, [], [], [],
                                    [0, 0, 0, 0], [n, need[0], need[1], c], [1, 1, 1, 1]).result
    return cur


def reshape(x: ir.Value, shape: Sequence[int]) -> ir.Value:
    """`x` reshaped (row-major) to `shape`: collapsed to 1-D, then expanded (a rank-0 side is
    reached by collapsing or expanding with no reassociation groups)."""
    src = shape_of(x)
    et = ir.RankedTensorType(x.type).element_type  # kept (f32, or i8 in the int8 graphs)
    shape = list(shape)
    if src == shape:
        return x
    if not shape:
        return tensor.CollapseShapeOp(tensor_type([], et), x, []).result
    if not src:
        one = [1] * len(shape)
        x = tensor.ExpandShapeOp(tensor_type(one, et), x, [], [], one).result
        return reshape(x, shape)
    cur = x
    if len(src) != 1:
        total = 1
        for d in src:
            total *= d
        cur = tensor.CollapseShapeOp(tensor_type([total], et), cur, [list(range(len(src)))]).result
    if len(shape) == 1:
        return cur
    return tensor.ExpandShapeOp(tensor_type(shape, et), cur, [list(range(len(shape)))], [], shape).result
