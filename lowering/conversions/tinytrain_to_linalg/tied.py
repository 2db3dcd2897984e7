"""Ordering the reads of a tied (updated-in-place) argument before its in-place write.

IREE 3.13 writes the result tied to an `iree.abi.output` argument into the argument's storage,
but it orders a read of that argument before the write only when the read is upstream of the
write (canary: tests/python/test_iree_tied_hazard.py). Every read of a trained parameter by the
forward pass is upstream of its update (the update is guarded by the loss), but a backward op
reading the parameter (a conv/linear input gradient reading the weight, `mul` by a BatchNorm
scale, ...) is not: without more, IREE may run the update first, and the reader sees the new
value (`test_numerics.py::test_update_equals_sgd_on_gradients` fails).

`order_tied_reads` makes each such read safe without the copy made at the start of the step
that this replaces (IREE hoisted it there, so it lived through the whole forward pass; issue
#9). The readers R of a tied argument W are found through views of it (`channel_scale`
for an int8 weight's real value, `concat` of a trained slice with its frozen rest, `slice`,
`reshape`, `transpose`, `dequantize`). Let g be an operand of the first R that W's update also
depends on (the layer's output gradient: the update reads the weight gradient computed from it).
Either of two dependencies, neither of which changes a value, then orders things:

- W smaller than g (most int8 and sliced weights): a late copy
  `W' = select(ord(t, 0.0) | uno(t, 0.0), W, 0)`, t a 0-d tensor holding g's first element. The
  condition is true for every t (NaN included), so W' = W, but W' can only be made once g exists,
  i.e. in the layer's backward step, and lives from there to its last reader (W bytes, briefly).
  The update and the backward readers read W'; the update, reading W', is downstream of the copy.
  A reader reaching W through a view the forward pass also reads (a `concat` of a trained slice
  and its frozen rest) still reads W and is ordered as below.
- Otherwise (large fp32 weights, e.g. a classifier whose output gradient is 10 floats): the loss
  operand of W's update (the 0-d tensor its non-finite guard reads) becomes
  `loss' = select(ord(r, 0.0) | uno(r, 0.0), loss, r)` over the first element r of each reader's
  result (a 0-d `linalg.generic`; several readers chain, each link behind a
  `util.optimization_barrier` so that IREE does not fuse the chain into one dispatch reading every
  reader's result at the end), so the update, which reads W itself,
  waits for every reader; it then keeps the update's other inputs live across the readers.

Measured on MobileNetV2-w0.35's `49kb` scheme at 128x128 for the cortex-m7 (the SRAM plan): with
the `sparse-split` pass, 296,640 B with the start-of-step copies, 270,080 B with these
dependencies. Alternatives, measured before `sparse-split` (copies: 390,912 B): a
`util.optimization_barrier` `(r', W') = barrier(r, W)` with the update reading W' is rejected by
IREE (a barrier's operands and results must share one resource lifetime; r is transient, W
external); one on transient values only (r with g, the update reading g') works but splits IREE's
execution at every barrier, each part's escaping values getting their own allocation: 593,792 B.
The guard alone for every weight (no late copies): 386,432 B. The constant index maps keep IREE
from fusing R into the 0-d generics (elementwise fusion needs permutation maps).

Readers that the update already depends on (the forward pass) need nothing; a reader that
depends on the update itself (it reads the old and the new value) cannot be ordered and is a
CompileError.
"""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import arith, tensor

from tinytrain.errors import CompileError
from tinytrain.irfuncs import arg_attrs, optimization_barrier, tensor_bytes

from .builders import PARALLEL, STAGE, amap, const_f32, empty, generic, identity

__all__ = ["VIEWS", "order_tied_reads"]

#: Ops whose result is a view of (a value computed elementwise from, or a re-arrangement of) their
#: operand: a reader of the result reads the operand.
VIEWS = ("tinytrain.channel_scale", "tinytrain.concat", "tinytrain.slice", "tinytrain.reshape",
         "tinytrain.transpose", "tinytrain.dequantize")


class _Deps:
    """Transitive-dependency queries on a block's ops, each op's producers read once through the
    bindings and kept in a dict; `forget(ops)` after their operands change (new ops are read when
    first reached; no op is erased while it is used)."""

    def __init__(self):
        self._producers: dict = {}

    def forget(self, ops) -> None:
        for op in ops:
            self._producers.pop(op, None)

    def _of(self, op: ir.Operation) -> list:
        got = self._producers.get(op)
        if got is None:
            got = self._producers[op] = [v.owner.operation for v in op.operands if not isinstance(v.owner, ir.Block)]
        return got

    def ancestors(self, op: ir.Operation) -> set:
        """The ops whose results `op` depends on (transitively), as `ir.Operation`s."""
        seen: set = set()
        stack = [op]
        while stack:
            for d in self._of(stack.pop()):
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return seen


def _views(w: ir.Value) -> list[ir.Value]:
    """`w` and the values computed from it by `VIEWS`."""
    out, i = [w], 0
    while i < len(out):
        for use in out[i].uses:
            if use.owner.operation.name in VIEWS:
                out.extend(use.owner.operation.results)
        i += 1
    return out


def _readers(w: ir.Value, update: ir.Operation, ret: ir.Operation) -> list[ir.Operation]:
    """The ops other than `update` and `ret` reading `w`, directly or through `VIEWS`."""
    out = []
    for v in _views(w):
        for use in v.uses:
            op = use.owner.operation
            if op.name not in VIEWS and op != update and op != ret and op not in out:
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


def _always(d: ir.Value) -> ir.Value:
    """An i1 that is true for every value of the float `d` (NaN included) but that the compiler
    does not fold: `ord(d, 0.0) | uno(d, 0.0)`."""
    zero = const_f32(0.0)
    known = arith.CmpFOp(arith.CmpFPredicate.ORD, d, zero).result
    nan = arith.CmpFOp(arith.CmpFPredicate.UNO, d, zero).result
    return arith.OrIOp(known, nan).result


def _first(rank: int, dep: ir.Value) -> ir.AffineMap:
    """The map from a `rank`-d iteration space to `dep`'s first element."""
    return amap(rank, [ir.AffineConstantExpr.get(0)] * ir.RankedTensorType(dep.type).rank)


def _after(value: ir.Value, dep: ir.Value) -> ir.Value:
    """`value` (a 0-d f32 tensor) recomputed by a `linalg.generic` that also reads `dep`'s first
    element (see the module docstring)."""
    return generic([value, dep], empty([]), [amap(0, []), _first(0, dep), amap(0, [])], [],
                   lambda v, d, acc: arith.SelectOp(_always(d), v, d).result)


def _late_copy(w: ir.Value, dep: ir.Value) -> ir.Value:
    """A copy of `w` by a `linalg.generic` that also reads `dep`'s first element (through a 0-d
    token holding it), so that it is made once `dep` exists (see the module docstring)."""
    ty = ir.RankedTensorType(w.type)
    rank = ty.rank
    zero = arith.ConstantOp(ty.element_type, 0 if isinstance(ty.element_type, ir.IntegerType) else 0.0).result
    token = generic([dep], empty([]), [_first(0, dep), amap(0, [])], [], lambda d, acc: d)
    return generic([w, token], tensor.EmptyOp(list(ty.shape), ty.element_type).result,
                   [identity(rank), amap(rank, []), identity(rank)], [PARALLEL] * rank,
                   lambda x, d, acc: arith.SelectOp(_always(d), x, zero).result)


def _shared_operand(reader: ir.Operation, views: list, upstream: set) -> ir.Value | None:
    """An operand of `reader` that the update also depends on and that is computed in the step
    (not an argument or a constant, not a view of the parameter): the layer's output gradient."""
    for v in reader.operands:
        if (not isinstance(v.owner, ir.Block) and v.owner.operation.name != "arith.constant"
                and not any(v == x for x in views) and v.owner.operation in upstream
                and isinstance(ir.RankedTensorType(v.type).element_type, ir.F32Type)):
            return v
    return None


def _copy_late(w: ir.Value, dep: ir.Value, upstream: set) -> ir.Operation:
    """Give the update and the backward readers of `w` (every user not upstream of the update) a
    copy of `w` made once `dep` exists; returns the op making it."""
    anchor = dep.owner.operation
    with ir.InsertionPoint.after(anchor), anchor.location:
        copy = _late_copy(w, dep)
    made = copy.owner.operation
    for use in list(w.uses):
        op = use.owner.operation
        if op != made and op not in upstream:
            op.operands[use.operand_number] = copy
            _sink(op, made)
    return made


def _float_result(reader: ir.Operation) -> ir.Value | None:
    """The reader's float result, else the first float tensor computed from it (an int8 conv
    recomputed in backward, `channel-groups`: the clamp gradient reading it): what the update's
    guard can wait for."""
    work, seen = [reader], set()
    while work:
        op = work.pop(0)
        for res in op.results:
            if isinstance(res.type, ir.RankedTensorType) and isinstance(res.type.element_type, ir.FloatType):
                return res
        for res in op.results:
            for use in res.uses:
                user = use.owner.operation
                if user not in seen and user.name != "func.return":
                    seen.add(user)
                    work.append(user)
    return None


def _order_by_guard(w: ir.Value, readers: list, update: ir.Operation, where: str) -> None:
    """Make `update`'s loss operand depend on every reader's result (`_after`)."""
    guard = [i for i, v in enumerate(update.operands)
             if isinstance(v.type, ir.RankedTensorType) and v.type.rank == 0
             and isinstance(v.type.element_type, ir.F32Type)]
    if len(guard) != 1:
        raise CompileError(f"to-linalg: cannot order the reads of {where} before its in-place update: "
                           f"'{update.name}' (at {update.location}) has no single 0-d f32 (loss) operand",
                           stage=STAGE)
    loss = update.operands[guard[0]]
    for r in readers:
        dep = _float_result(r)
        if dep is None:
            raise CompileError(f"to-linalg: cannot order the read of {where} by '{r.name}' (at {r.location}) "
                               "before its update: neither its result nor any value computed from it is a "
                               "float tensor", stage=STAGE)
        r = dep.owner.operation
        at = r
        if not isinstance(loss.owner, ir.Block) and r.is_before_in_block(loss.owner.operation):
            at = loss.owner.operation
        with ir.InsertionPoint.after(at), r.location:
            loss = _after(loss, dep)
            if len(readers) > 1:
                # IREE fuses a chain of 0-d generics into one dispatch, which reads every reader's
                # result: all of them would live until the last reader (a weight read by each
                # channel group, `channel-groups`: one partial input gradient per group). Behind a
                # barrier each link is a dispatch of its own, run once its reader is.
                loss = optimization_barrier([loss])[0]
    update.operands[guard[0]] = loss
    _sink(update, loss.owner.operation)


def order_tied_reads(func) -> int:
    """Make every read of each tied argument of `func` upstream of its in-place update (see the
    module docstring); returns the number of tied arguments that needed it."""
    block = func.regions[0].blocks[0]
    ret = list(block.operations)[-1].operation
    fname = ir.StringAttr(func.attributes["sym_name"]).value
    position = {op.operation: i for i, op in enumerate(block.operations)}
    count = 0
    deps = _Deps()
    for w, attrs in zip(block.arguments, arg_attrs(func)):
        if "iree.abi.output" not in attrs:
            continue
        result = ret.operands[ir.IntegerAttr(attrs["iree.abi.output"]).value]
        if isinstance(result.owner, ir.Block):  # returned unchanged: never written
            continue
        update = result.owner.operation
        upstream = deps.ancestors(update)
        readers = sorted((r for r in _readers(w, update, ret) if r not in upstream), key=lambda r: position[r])
        if not readers:
            continue
        name = ir.StringAttr(attrs["tinytrain.param"]).value if "tinytrain.param" in attrs else f"#{w.arg_number}"
        where = f"the tied argument '{name}' of @{fname}"
        for r in readers:
            if update in deps.ancestors(r):
                raise CompileError(f"to-linalg: '{r.name}' (at {r.location}) reads {where} after its update: "
                                   "it cannot be updated in place", stage=STAGE)
        dep = _shared_operand(readers[0], _views(w), upstream)
        if dep is not None and tensor_bytes(w) < tensor_bytes(dep):
            made = _copy_late(w, dep, upstream)
            deps.forget(use.owner.operation for use in made.results[0].uses)
            # readers that reach W through a view the forward pass also reads (a `concat` of a
            # trained slice) still read W itself
            readers = [r for r in _readers(w, update, ret) if r not in upstream and r != made]
        if readers:
            # a parameter updated per channel group (`channel-groups`) is the concat of its pieces'
            # updates: every piece waits for the readers
            for piece in _piece_updates(update):
                _order_by_guard(w, readers, piece, where)
                deps.forget([piece])
        count += 1
    return count


def _piece_updates(update: ir.Operation) -> list:
    """`update` itself, or the updates whose results a `tinytrain.concat` (chain) joins or a
    `tinytrain.insert` chain writes into the parameter (`channel-groups`), through the
    `util.optimization_barrier`s that carry them from group to group."""
    if update.name not in ("tinytrain.concat", "tinytrain.insert"):
        return [update]
    out = []
    for n, v in enumerate(update.operands):
        src = v.owner
        while not isinstance(src, ir.Block) and src.operation.name == "util.optimization_barrier":
            v = src.operands[ir.OpResult(v).result_number]
            src = v.owner
        if isinstance(src, ir.Block):
            if update.name == "tinytrain.insert" and n == 0:  # the chain starts at the parameter
                continue
            return [update]
        out += _piece_updates(src.operation)
    return out
