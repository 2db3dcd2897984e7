"""Which bytes each command of a static schedule touches, and which are live at each dispatch.

IREE packs a function's transient tensors into one allocation and bakes each tensor's offset
into the kernels (as constants, or as push constants the host program passes): the HAL program
binds the whole allocation to every dispatch (``hal2c`` sees ``alloc[0, +size)``). The tensors
are visible in IREE's executable sources (``--iree-hal-dump-executable-sources-to``, written by
``iree_static.build_static_module``): every ``hal.interface.binding.subspan`` names its binding,
its byte offset (an SSA value: constants, push-constant loads, casts, ``util.assume.int``,
integer arithmetic) and its ``!iree_tensor_ext.dispatch.tensor<readonly|writeonly|readwrite:
tensor<...>>`` type. :func:`read_sources` turns each export into :class:`Subspan` records,
:func:`command_accesses` resolves them against one scheduled dispatch (its bindings and push
constants) into byte ranges, and :func:`live_ranges` computes tensor lifetimes over the
function's commands in program order:

- a write (``writeonly`` subspan whose kernel stores all of it at static offsets, a writable
  buffer of one of our kernels' dispatches: a result, never tied to an operand, fill, copy
  target) starts a new value; the bytes of older values it overwrites end at their last use
  before it (a partly overwritten value lives on in its other bytes); a ``writeonly`` subspan
  stored only in part (or at a push-constant offset) counts as an update, below;
- a read (``readonly``; for the bindings a command marks ``precise``, only the byte hulls of the
  kernel's static ``dispatch.tensor.load``s, e.g. one patch's rows of the streamed input) or an update (``readwrite``, e.g. a conv storing into the interior of a
  zero-filled padded buffer) extends every value it overlaps to this command (the bytes of its
  range no value covers become a value of their own);
- the function's results (e.g. the loss) stay live to its end.

The live bytes at a command are the union of the values live there, per allocation.

Text edges, on purpose: IREE's Python bindings have no accessor for the dispatch tensor type's
access mode and shape, nor for the parts of a location, so both are read from their printed
form (``str(type)``, ``str(op.location)``); everything else goes through the op views.
Layer names come from the locations the compiler gives IREE: each tinytrain op is located at
``loc("<layer> (<Class>)"(...))`` (torch models) or ``loc("<conv name>")`` (the int8 graphs), and
``to-linalg`` and IREE keep them on the linalg ops inside each dispatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from iree.compiler import ir
from iree.compiler.dialects import arith, hal, util  # noqa: F401 - registers the op views

from .hal2c import _BIN, _CASTS  # the host program's integer arithmetic, shared
from .schedule_model import Alloc, Command, Unsupported, _dtype_size, loc_names

__all__ = ["Access", "Subspan", "ExportInfo", "Value", "read_sources", "command_accesses", "live_ranges",
           "live_bytes", "union_bytes", "unaligned_bindings"]

_TENSOR_TYPE = re.compile(r"dispatch\.tensor<(readonly|writeonly|readwrite):tensor<((?:\d+x)*)(\w+)>>")
# A buffer our own kernels take (``to-linalg{kernels=ttk}``: a dispatch calling a static import).
_MEMREF_TYPE = re.compile(r"^memref<((?:\d+x)*)(\w+)>$")
_READ_ONLY = 1                   # bit of ``descriptor_flags`` (IREE's HAL DescriptorFlags::ReadOnly)
_MODES = {"readonly": "r", "writeonly": "w", "readwrite": "rw"}
# Ops whose location names the layer a dispatch computes (not its buffer plumbing).
_COMPUTE = ("linalg.", "iree_linalg_ext.")
_FALLBACK = ("iree_tensor_ext.dispatch.tensor.store", "linalg.fill")


@dataclass(frozen=True)
class Subspan:
    """One tensor a kernel reads or writes: ``binding``'s bytes ``[offset, offset + length)``;
    ``offset`` is an expression (:func:`_eval`) over the dispatch's push constants."""

    binding: int
    offset: tuple
    length: int
    mode: str                    # "r" | "w" | "rw"
    alignment: int = 0           # the binding's declared alignment (``alignment(64)``), 0: none
    #: a read-only tensor's byte hulls ((lo, hi) from ``offset``) of its static
    #: ``dispatch.tensor.load``s, merged; empty: unknown (a dynamic load, or not read-only)
    reads: tuple = ()


@dataclass
class ExportInfo:
    """One kernel of the library: the tensors it touches and the layers it computes."""

    name: str
    subspans: list
    layers: list = field(default_factory=list)   # layer names, in the dispatch's op order


@dataclass(frozen=True)
class Access:
    """Bytes ``[lo, hi)`` of memory object ``alloc`` read (``r``), written (``w``) or both."""

    alloc: Alloc
    lo: int
    hi: int
    mode: str


def _expr(value) -> tuple:
    """The subspan offset ``value`` as an expression: ("const", n), ("push", ordinal) or
    (op name, operand expressions...)."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        raise Unsupported("a subspan offset is a block argument; the memory report reads offsets "
                          "that are constants or push constants")
    o = owner.operation if hasattr(owner, "operation") else owner
    name = o.name
    view = o.opview
    if name == "arith.constant":
        return ("const", ir.IntegerAttr(view.value).value)
    if name == "hal.interface.constant.load":
        return ("push", ir.IntegerAttr(view.ordinal).value)
    if name in _CASTS:
        return _expr(o.operands[0])
    if name == "util.assume.int":
        return _expr(o.operands[ir.OpResult(value).result_number])
    if name in _BIN:
        return (name, _expr(o.operands[0]), _expr(o.operands[1]))
    raise Unsupported(f"subspan offset computed by '{name}': the memory report reads constants, "
                      "push constants, casts and integer arithmetic")


def _eval(expr: tuple, constants: tuple) -> int:
    kind = expr[0]
    if kind == "const":
        return expr[1]
    if kind == "push":
        if expr[1] >= len(constants):
            raise Unsupported(f"subspan offset reads push constant {expr[1]}; the dispatch passes "
                              f"{len(constants)}")
        return int(constants[expr[1]]) & 0xFFFFFFFF
    return _BIN[kind](_eval(expr[1], constants), _eval(expr[2], constants))


def _subspan(op) -> Subspan:
    """A tensor subspan (its access mode from its type) or a buffer of our kernels (a static
    ``memref``: read-only when its descriptor says so, else a result the kernel writes)."""
    text = str(op.results[0].type)
    view = op.opview
    m = _TENSOR_TYPE.search(text)
    tensor = m is not None
    if tensor:
        dims, dtype, mode = m.group(2), m.group(3), _MODES[m.group(1)]
    else:
        m = _MEMREF_TYPE.match(text)
        if m is None:
            raise Unsupported(f"subspan of type {text}: the memory report reads "
                              "!iree_tensor_ext.dispatch.tensor results and memrefs with static shapes")
        flags = view.descriptor_flags
        read_only = flags is not None and ir.IntegerAttr(flags).value & _READ_ONLY
        # A writable memref is a result of one of our kernels' dispatches (kernels.py: results
        # are never tied to an operand), a fresh buffer IREE allocated free: the kernel writes it
        # (its output) or uses it as scratch, never reads what was there before.
        dims, dtype, mode = m.group(1), m.group(2), "r" if read_only else "w"
    n = 1
    for d in dims.split("x"):
        n *= int(d) if d else 1
    offset = view.byte_offset
    align = view.alignment
    shape = [int(d) for d in dims.split("x") if d]
    if mode == "w" and tensor and not _stores_whole(op, shape):
        # a write-only tensor its kernel stores only in part (a slice at a push-constant offset,
        # say): its other bytes keep what was there, so it counts as an update (their older
        # values stay live), never as a write that ends them
        mode = "rw"
    reads = _load_hulls(op, shape, _dtype_size(dtype)) if mode == "r" and tensor else ()
    return Subspan(ir.IntegerAttr(view.binding).value, _expr(offset) if offset is not None else ("const", 0),
                   n * _dtype_size(dtype), mode, ir.IntegerAttr(align).value if align is not None else 0,
                   reads)


DYNAMIC = ir.ShapedType.get_dynamic_size()   # the marker of a dynamic entry in a static offsets/sizes/strides array


def static_slice(o, rank: int):
    """(offsets, sizes, strides) of a slice op (``dispatch.tensor.load`` / ``.store``,
    ``tensor.extract_slice`` / ``insert_slice``), None when one of them is dynamic (an SSA
    operand) or they do not match the sliced tensor's `rank`."""
    attrs = {o.attributes[i].name: list(ir.DenseI64ArrayAttr(o.attributes[i].attr))
             for i in range(len(o.attributes)) if o.attributes[i].name.startswith("static_")}
    offs, sizes, steps = (attrs.get(k) for k in ("static_offsets", "static_sizes", "static_strides"))
    if offs is None or sizes is None or steps is None or len(offs) != rank or DYNAMIC in offs + sizes + steps:
        return None
    return offs, sizes, steps


def _stores_whole(op, dims: list) -> bool:
    """Whether the ``dispatch.tensor.store``s into a write-only subspan cover every element of its
    tensor (row-major `dims`) at static offsets; False when one is dynamic or the subspan has
    another use."""
    covered = np.zeros(dims or [1], dtype=bool)
    for use in op.results[0].uses:
        o = use.owner
        if o.name != "iree_tensor_ext.dispatch.tensor.store" or use.operand_number != 1 or len(o.operands) != 2:
            return False
        got = static_slice(o, len(dims))
        if got is None:
            return False
        offs, sizes, steps = got
        covered[tuple(slice(a, a + (k - 1) * t + 1, t) for a, k, t in zip(offs, sizes, steps))] = True
    return bool(covered.all())


def _load_hulls(op, dims: list, elem: int) -> tuple:
    """The byte hulls [first, last + 1) of the slices the subspan's ``dispatch.tensor.load``s
    take (row-major ``dims``, ``elem`` bytes each), merged and sorted; () when a use is not such
    a load or a load has a dynamic offset, size or stride (then the whole tensor counts)."""
    strides, acc = [], elem
    for d in reversed(dims):
        strides.insert(0, acc)
        acc *= d
    hulls = []
    for use in op.results[0].uses:
        o = use.owner
        if o.name != "iree_tensor_ext.dispatch.tensor.load" or len(o.operands) != 1:
            return ()
        got = static_slice(o, len(dims))
        if got is None:
            return ()
        offs, sizes, steps = got
        if 0 in sizes:
            continue
        lo = sum(a * s for a, s in zip(offs, strides))
        hi = sum((a + (k - 1) * t) * s for a, k, t, s in zip(offs, sizes, steps, strides)) + elem
        hulls.append((lo, hi))
    merged: list = []
    for lo, hi in sorted(hulls):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _layers(func) -> list:
    """The layer names of the ops a dispatch computes: its linalg ops (not the zero fills and
    empty tensors, which CSE shares between layers), else its tensor stores (a copy)."""
    ops = [op.operation for op in func.regions[0].blocks[0].operations]
    compute = [o for o in ops if o.name.startswith(_COMPUTE) and o.name != "linalg.fill"] or \
        [o for o in ops if o.name in _FALLBACK]
    names: list = []
    for o in compute:
        names += [n for n in loc_names(o.location) if n not in names]
    return names


def read_sources(sources_dir) -> dict:
    """``{export name: ExportInfo}`` of every executable source IREE dumped in ``sources_dir``."""
    d = Path(sources_dir)
    files = sorted(d.glob("*.mlir")) if d.is_dir() else []
    if not files:
        raise Unsupported(f"no executable sources in {d}: the static module was built without "
                          "--iree-hal-dump-executable-sources-to (rebuild it with this tinytrain)")
    ctx = ir.Context()
    out = {}
    for f in files:
        module = ir.Module.parse(f.read_text(), ctx)
        for exe in module.body.operations:
            for variant in exe.regions[0].blocks[0].operations:
                if variant.operation.name != "hal.executable.variant":
                    continue
                for inner in variant.regions[0].blocks[0].operations:
                    if inner.operation.name != "builtin.module":
                        continue
                    for func in inner.regions[0].blocks[0].operations:
                        if not len(func.regions) or not len(func.regions[0].blocks):
                            continue  # a declaration (hal.import.static: our kernels' entry points)
                        name = ir.StringAttr(func.operation.attributes["sym_name"]).value
                        subspans = [_subspan(op) for op in func.regions[0].blocks[0].operations
                                    if op.operation.name == "hal.interface.binding.subspan"]
                        out[name] = ExportInfo(name, subspans, _layers(func))
    return out


def unaligned_bindings(exports: dict) -> dict:
    """{export: bit mask of the bindings whose every subspan declares no 64-byte alignment}: the
    runtime need not check their offsets' alignment (``tt_export_t.unaligned_ok``)."""
    out = {}
    for name, info in exports.items():
        mask = 0
        for b in {s.binding for s in info.subspans}:
            if all(s.alignment < 64 for s in info.subspans if s.binding == b):
                mask |= 1 << b
        if mask:
            out[name] = mask
    return out


def command_accesses(cmd: Command, exports: dict) -> list:
    """The byte ranges command ``cmd`` touches (every memory kind), as :class:`Access` records."""
    if cmd.op == "fill":
        r = cmd.refs[0]
        return [Access(r.alloc, r.offset, r.offset + r.length, "w")]
    if cmd.op == "copy":
        src, dst = cmd.refs
        return [Access(src.alloc, src.offset, src.offset + src.length, "r"),
                Access(dst.alloc, dst.offset, dst.offset + dst.length, "w")]
    info = exports.get(cmd.export)
    if info is None:
        raise Unsupported(f"dispatch {cmd.export} has no executable source (sources of: "
                          f"{', '.join(sorted(exports)[:5])}...)")
    out = []
    for s in info.subspans:
        if s.binding >= len(cmd.refs):
            raise Unsupported(f"{cmd.export}: subspan of binding {s.binding}, the dispatch binds "
                              f"{len(cmd.refs)} buffers")
        ref = cmd.refs[s.binding]
        lo = ref.offset + _eval(s.offset, cmd.constants)
        precise = s.binding in cmd.precise and s.reads
        # a precise binding (a streamed input's) need only cover the bytes its kernel loads
        if (max(b for _, b in s.reads) if precise else s.length) + lo > ref.offset + ref.length:
            raise Unsupported(f"{cmd.export}: tensor [{lo}, +{s.length}) lies outside its binding "
                              f"[{ref.offset}, +{ref.length}) of {ref.alloc.name}")
        if precise:
            out += [Access(ref.alloc, lo + a, lo + b, "r") for a, b in s.reads]
        else:
            out.append(Access(ref.alloc, lo, lo + s.length, s.mode))
    return out


@dataclass
class Value:
    """One tensor in an allocation: bytes ``[lo, hi)``, written at command ``start``, last used
    at command ``end`` (indices into the command list)."""

    alloc: Alloc
    lo: int
    hi: int
    start: int
    end: int


def _gaps(lo: int, hi: int, spans) -> list:
    """The parts of ``[lo, hi)`` outside every (lo, hi) of ``spans``."""
    out, at = [], lo
    for a, b in sorted(spans):
        if a > at:
            out.append((at, min(a, hi)))
        at = max(at, b)
        if at >= hi:
            break
    if at < hi:
        out.append((at, hi))
    return out


def live_ranges(events: list, keep_to_end: list = ()) -> list:
    """The :class:`Value` records of ``events`` (one list of :class:`Access` per command, in
    program order); ``keep_to_end``: accesses (e.g. the function's results) whose values stay
    live to the last command."""
    current: dict = {}           # id(alloc) -> values not overwritten yet
    values = []

    def overlapping(a):
        return [v for v in current.get(id(a.alloc), []) if v.lo < a.hi and a.lo < v.hi]

    for i, accesses in enumerate(events):
        for a in accesses:
            if a.mode == "w":
                continue
            hit = overlapping(a)
            for v in hit:
                v.end = i
            # the bytes no value covers (all of them, or the gaps of a read that meets values in
            # part, e.g. one of our kernels' read-write outputs over a dead tensor's bytes)
            # become values of their own: every byte a command touches is live there
            for lo, hi in _gaps(a.lo, a.hi, [(v.lo, v.hi) for v in hit]):
                v = Value(a.alloc, lo, hi, i, i)
                values.append(v)
                current.setdefault(id(a.alloc), []).append(v)
        for a in accesses:
            if a.mode != "w":
                continue
            live = current.setdefault(id(a.alloc), [])
            kept = []
            for v in live:
                if v.hi <= a.lo or a.hi <= v.lo:
                    kept.append(v)
                    continue
                # Overwritten bytes are dead after their last use; the rest of the value lives on
                # as remainders (same history, extended only by later reads of those bytes).
                for lo, hi in ((v.lo, a.lo), (a.hi, v.hi)):
                    if lo < hi:
                        rest = Value(v.alloc, lo, hi, v.start, v.end)
                        values.append(rest)
                        kept.append(rest)
            live[:] = kept
            v = Value(a.alloc, a.lo, a.hi, i, i)
            values.append(v)
            live.append(v)
    last = len(events) - 1
    for a in keep_to_end:
        for v in overlapping(a):
            v.end = last
    return values


def union_bytes(spans) -> int:
    """Bytes covered by the byte intervals ``spans`` ((lo, hi) pairs, overlaps counted once)."""
    total, end = 0, None
    for lo, hi in sorted(spans):
        if end is None or lo >= end:
            total, end = total + hi - lo, hi
        elif hi > end:
            total, end = total + hi - end, hi
    return total


def live_bytes(values: list, index: int) -> int:
    """Bytes of the union of the values live at command ``index``."""
    by_alloc: dict = {}
    for v in values:
        if v.start <= index <= v.end:
            by_alloc.setdefault(id(v.alloc), []).append((v.lo, v.hi))
    return sum(union_bytes(spans) for spans in by_alloc.values())
