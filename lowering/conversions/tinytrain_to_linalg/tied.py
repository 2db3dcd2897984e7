"""Ordering the reads of a tied (updated-in-place) argument before its in-place write.

IREE 3.13 writes the result tied to an `iree.abi.output` argument into the argument's storage,
but it orders a read of that argument before the write only when the read is upstream of the
write (canary: tests/python/test_iree_tied_hazard.py). Every read of a trained parameter by the
forward pass is upstream of its update (the update is guarded by the loss), but a backward op
reading the parameter (a conv/linear input gradient reading the weight, `mul` by a BatchNorm
scale, ...) is not: without more, IREE may run the update first, and the reader sees the new
value (`test_numerics.py::test_update_equals_sgd_on_gradients` fails).

`order_tied_reads` makes each such read upstream of the write, without copying the parameter.
For each reader R of a tied argument W (directly, or through views of it: `channel_scale` for an
int8 weight's real value, `concat` of a trained slice with its frozen rest, `slice`, `reshape`,
`transpose`, `dequantize`) whose result is r, the loss operand of W's update (the 0-d tensor its
non-finite guard reads) is replaced by

    loss' = linalg.generic {maps: () -> (), () -> (0, .., 0), () -> ()} ins(loss, r)
              { select(ord(r[0..0], 0.0) | uno(r[0..0], 0.0), loss, 0.0) }

The condition is true for every value of r[0..0] (NaN included), so loss' = loss; but the
update's dispatch now reads r, so R is upstream of it and IREE writes W after R has read it.
Several readers of W chain (loss'' reads loss' and the next r). Why not a
`util.optimization_barrier`: `(r', W') = barrier(r, W)` with the update reading W' is rejected
by IREE (a barrier's operands and results must have one resource lifetime; r is transient, W
external), and a barrier on transient values only (r with the gradient the update reads) works
but splits IREE's execution at every barrier: each part's escaping values get their own
allocation, which MobileNetV2's 49kb step paid with +203 KB of SRAM. The constant index map keeps
IREE from fusing R into the 0-d generic (elementwise fusion needs a permutation map), so R stays
its own dispatch.

Readers that the update already depends on (the forward pass) need nothing; a reader that
depends on the update itself (it reads the old and the new value) cannot be ordered and is a
CompileError. This replaces a copy of every such weight made at the start of the step, which
IREE kept live through the whole forward pass (issue #9).
"""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import arith

from tinytrain.errors import CompileError
from tinytrain.irfuncs import arg_attrs

from .builders import STAGE, amap, const_f32, empty, generic

__all__ = ["VIEWS", "order_tied_reads"]

#: Ops whose result is a view of (a value computed elementwise from, or a re-arrangement of) their
#: operand: a reader of the result reads the operand.
VIEWS = ("tinytrain.channel_scale", "tinytrain.concat", "tinytrain.slice", "tinytrain.reshape",
         "tinytrain.transpose", "tinytrain.dequantize")


def _ancestors(op: ir.Operation) -> set:
    """The ops whose results `op` depends on (transitively), as `ir.Operation`s."""
    seen: set = set()
    stack = [op]
    while stack:
        for v in stack.pop().operands:
            d = v.owner
            if isinstance(d, ir.Block) or d.operation in seen:
                continue
            seen.add(d.operation)
            stack.append(d.operation)
    return seen


def _readers(w: ir.Value, update: ir.Operation, ret: ir.Operation) -> list[ir.Operation]:
    """The ops other than `update` and `ret` reading `w`, directly or through `VIEWS`."""
    out, seen, values = [], set(), [w]
    while values:
        for use in values.pop().uses:
            op = use.owner.operation
            if op == update or op == ret or op in seen:
                continue
            seen.add(op)
            if op.name in VIEWS:
                values.extend(op.results)
            else:
                out.append(op)
    return out


def _sink(op: ir.Operation, anchor: ir.Operation) -> None:
    """Move `op` just after `anchor` when it is above it, then its users that are now above it
    (the block stays in a valid SSA order)."""
    if anchor.is_before_in_block(op):
        return
    op.move_after(anchor)
    for r in op.results:
        for use in list(r.uses):
            if use.owner.operation.name != "func.return":
                _sink(use.owner.operation, op)


def _after(value: ir.Value, dep: ir.Value) -> ir.Value:
    """`value` (a 0-d f32 tensor) recomputed by a `linalg.generic` that also reads `dep`'s first
    element, in a condition that holds for every value of it (see the module docstring)."""
    zero = const_f32(0.0)
    first = amap(0, [ir.AffineConstantExpr.get(0)] * len(ir.RankedTensorType(dep.type).shape))

    def body(v, d, acc):
        known = arith.CmpFOp(arith.CmpFPredicate.ORD, d, zero).result
        nan = arith.CmpFOp(arith.CmpFPredicate.UNO, d, zero).result
        return arith.SelectOp(arith.OrIOp(known, nan).result, v, zero).result

    return generic([value, dep], empty([]), [amap(0, []), first, amap(0, [])], [], body)


def order_tied_reads(func) -> int:
    """Make every read of each tied argument of `func` upstream of its in-place update (see the
    module docstring); returns the number of reads ordered."""
    block = func.regions[0].blocks[0]
    ret = list(block.operations)[-1].operation
    fname = ir.StringAttr(func.attributes["sym_name"]).value
    position = {op.operation: i for i, op in enumerate(block.operations)}
    count = 0
    for w, attrs in zip(block.arguments, arg_attrs(func)):
        if "iree.abi.output" not in attrs:
            continue
        result = ret.operands[ir.IntegerAttr(attrs["iree.abi.output"]).value]
        if isinstance(result.owner, ir.Block):  # returned unchanged: never written
            continue
        update = result.owner.operation
        upstream = _ancestors(update)
        readers = sorted((r for r in _readers(w, update, ret) if r not in upstream), key=lambda r: position[r])
        if not readers:
            continue
        name = ir.StringAttr(attrs["tinytrain.param"]).value if "tinytrain.param" in attrs else f"#{w.arg_number}"
        guard = [i for i, v in enumerate(update.operands)
                 if isinstance(v.type, ir.RankedTensorType) and v.type.rank == 0 and isinstance(v.type.element_type, ir.F32Type)]
        if len(guard) != 1:
            raise CompileError(f"to-linalg: cannot order the reads of the tied argument '{name}' of @{fname} "
                               f"before its in-place update: '{update.name}' (at {update.location}) has no "
                               "single 0-d f32 (loss) operand", stage=STAGE)
        loss = update.operands[guard[0]]
        for r in readers:
            if update in _ancestors(r):
                raise CompileError(f"to-linalg: '{r.name}' (at {r.location}) of @{fname} reads the tied argument "
                                   f"'{name}' after its update: it cannot be updated in place", stage=STAGE)
            dep = r.results[0]
            if not isinstance(ir.RankedTensorType(dep.type).element_type, ir.FloatType):
                raise CompileError(f"to-linalg: cannot order the read of the tied argument '{name}' by '{r.name}' "
                                   f"(at {r.location}) of @{fname} before its update: its result is not a float "
                                   "tensor", stage=STAGE)
            with ir.InsertionPoint.after(r), r.location:
                loss = _after(loss, dep)
            count += 1
        update.operands[guard[0]] = loss
        _sink(update, loss.owner.operation)
    return count
