"""Our own placement of each function's transient tensors (replaces IREE's packing of them).

IREE packs a function's transient tensors into a few allocations and lays them out at compile
time; its layout keeps tensors of concurrently scheduled commands apart and leaves 20-65 KB above
what is really live at the worst command of a training step (measured on the paper's models at
128x128, ``memory_report``). The static schedule runs every command in program order, one at a
time, so a tighter layout is valid. It can be changed after IREE because the Cortex-M build asks
IREE not to fuse bindings (``--iree-scheduling-optimize-bindings=false``): every tensor a kernel
touches is then a binding of its own whose offset the host program (our C schedule) passes, not a
constant inside the kernel.

:func:`replan` works per function on what the commands really touch
(:func:`dispatch_memory.command_accesses`: IREE's executable sources, our kernels' dispatches
included: their read-only buffers are reads, their results writes; a dispatch whose sources
cannot be read counts each binding as read and written, which only makes its tensors live
longer):

1. the tensors' lifetimes in program order (:func:`dispatch_memory.live_ranges`);
2. *blocks*: tensors one binding, fill or copy touches together keep their relative layout (a
   concatenation written in parts, a remainder of a partly overwritten tensor), and so do the
   bytes a binding covers beyond what its kernel touches;
3. first-fit placement, each block 64-byte aligned and apart from every block whose lifetime
   (first write .. last use, in command order) overlaps its own; eight orders are tried
   (largest first, longest-lived first, program order, size classes, ...), a seeded hill climb
   on the order from the best three, then from the best order and each climb's end a block that
   reaches the layout's end is placed first instead while that makes it smaller
   (:func:`_best_layout`), and the smallest layout kept, IREE's own if it is smaller;
4. every binding, fill, copy and result buffer rewritten to the new offsets, in one allocation
   per function (``plan@<function>``), after :func:`_verify` ran both layouts and found every
   read delivered the bytes of the same writer as in IREE's (an internal error otherwise).

``reserve`` keeps a hole for a step input from the first command to its last read, so that the
input overlay (``input_overlay.py``) finds its window in the new layout. A streamed input's copies
(``input_stream.py``, :attr:`Alloc.streamed`) keep the reader's binding as a block's extent that
occupies no memory (``_NOWHERE``): only the bytes copied in are placed apart from other tensors,
and the binding's base may lie below the function's tensors, down to the arena's first byte (the
trained state, which the kernel never touches through it), so a later patch's rows need not sit
at their offset in the input (MobileNetV2-w0.35 99kb at 128x128: the first stage's cut no longer
sits above the input's 49,152 B, plan 137,920 -> 128,832 B). Such a binding ends at the last byte
its kernel loads.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import numpy as np

from . import dispatch_memory as dm
from .input_overlay import _uses, place_step_input
from .schedule_model import ALIGN, Alloc, Buf, Schedule, Unsupported, _align

__all__ = ["Replan", "replan", "replan_from_sources", "replan_and_place"]


@dataclass
class Replan:
    """What :func:`replan` did for one function: IREE's transient bytes and ours (equal when it
    kept IREE's layout), the blocks placed, and why it kept IREE's layout (empty otherwise)."""

    function: str
    iree_bytes: int
    bytes: int
    blocks: int = 0
    unread_dispatches: list = field(default_factory=list)
    reason: str = ""

    def describe(self) -> str:
        if self.reason:
            return f"@{self.function}: IREE's layout kept ({self.iree_bytes} B): {self.reason}"
        unread = (f"; {len(self.unread_dispatches)} dispatch(es) without readable sources counted as "
                  "reading and writing all their bindings") if self.unread_dispatches else ""
        return (f"@{self.function}: {self.blocks} tensor blocks placed in {self.bytes} B "
                f"(IREE's layout: {self.iree_bytes} B){unread}")


class _Blocks:
    """Union-find over tensor values. A block is rigid (its members keep their relative layout)
    but not a rectangle: it occupies each member's bytes only during that member's lifetime (the
    interior of a padded tensor a later weight gradient reads stays; the rest is free)."""

    def __init__(self):
        self.parent: dict = {}
        self.pieces: dict = {}       # root -> [(lo, hi, start, end), ...] in the old layout

    def add(self, key, lo, hi, start, end):
        if key not in self.parent:
            self.parent[key] = key
            self.pieces[key] = []
        self.pieces[self.find(key)].append((lo, hi, start, end))

    def find(self, k):
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            self.pieces[ra] += self.pieces.pop(rb)
        return ra

    def base(self, root) -> int:
        """The block's lowest byte in the old layout, rounded down to the alignment."""
        lo = min(p[0] for p in self.pieces[root])
        return lo - lo % ALIGN


#: the lifetime of a piece that only fixes a block's extent and relative layout, never occupies
#: memory (``_place`` finds no piece alive at the same time as it)
_NOWHERE = -1


def _lowest(pieces, floor: int) -> int:
    """The lowest offset of a block: 0, or for a block with an extent that occupies no memory
    (a streamed input's binding) the offset that puts its lowest occupying byte at 0, not below
    ``floor`` (the binding's base may then lie under the function's tensors, in the arena's
    trained state or persistent tensors, which the kernel never touches through it)."""
    if all(q[2] != _NOWHERE for q in pieces):
        return 0
    lo = min((q[0] for q in pieces if q[2] != _NOWHERE), default=0)
    return min(0, max(-(lo - lo % ALIGN), -(-floor // ALIGN) * ALIGN))


def _place(blocks: list, order=None, floor: int = 0) -> tuple[dict, int]:
    """First fit of rigid blocks: ``blocks`` are (key, pieces relative to the block's base), in
    ``order`` (a sort key; None: as given); each block goes to the lowest aligned offset
    (:func:`_lowest`) where none of its pieces meets a placed piece alive at the same time.
    Returns ({key: offset}, end): the end of the pieces that occupy memory.

    A piece q meets a placed piece p alive at the same time at the block offsets x with
    p.lo - q.hi < x < p.hi - q.lo; on aligned offsets that is the range [A, B) (A the first aligned
    offset above p.lo - q.hi, B the first at or above p.hi - q.lo). The lowest free aligned offset
    is found by sweeping these ranges in order of A (numpy arrays: a layout of the 965 blocks of a
    128x128 training step takes 0.1 s)."""
    placed = np.empty((4, 1024), dtype=np.int64)   # lo, hi, start, end of the occupying pieces
    n, offsets, top = 0, {}, 0
    for key, pieces in (blocks if order is None else sorted(blocks, key=order)):
        low = _lowest(pieces, floor)
        occ = [q for q in pieces if q[2] != _NOWHERE]
        lows, highs = [], []
        for q in occ if n else ():
            alive = (placed[2, :n] <= q[3]) & (q[2] <= placed[3, :n])
            lows.append(placed[0, :n][alive] - q[1])
            highs.append(placed[1, :n][alive] - q[0])
        x = low
        if lows:
            a, b = np.concatenate(lows), np.concatenate(highs)
            first, end = a - a % ALIGN + ALIGN, -(-b // ALIGN) * ALIGN
            keep = end > low
            first, end = first[keep], end[keep]
            if first.size:
                o = np.argsort(first, kind="stable")
                first, end = first[o], end[o]
                reach = np.maximum(np.maximum.accumulate(end), low)
                before = np.concatenate(([low], reach[:-1]))
                gap = np.nonzero(first > before)[0]
                x = int(before[gap[0]]) if gap.size else int(reach[-1])
        offsets[key] = x
        if occ:
            if n + len(occ) > placed.shape[1]:
                placed = np.concatenate([placed, np.empty((4, max(placed.shape[1], len(occ))), dtype=np.int64)], 1)
            placed[:, n:n + len(occ)] = np.array([(q[0] + x, q[1] + x, q[2], q[3]) for q in occ]).T
            n += len(occ)
            top = max(top, max(q[1] for q in occ) + x)
    return offsets, _align(top)


def _extent(pieces) -> int:
    return max(q[1] for q in pieces)


def _area(pieces) -> int:
    return sum((q[1] - q[0]) * (q[3] - q[2] + 1) for q in pieces if q[2] != _NOWHERE)


def _start(pieces) -> int:
    return min((q[2] for q in pieces if q[2] != _NOWHERE), default=0)


def _end(pieces) -> int:
    return max(q[3] for q in pieces)


# First fit is sensitive to the order; none of these wins on every program (MCUNet-5FPS 49kb:
# largest tensor first; ProxylessNAS-w0.3 98kb: longest-lived first), so all are tried.
_ORDERS = (lambda b: (-_extent(b[1]), _start(b[1])),                           # widest block first
           lambda b: (-max(q[1] - q[0] for q in b[1]), _start(b[1])),          # largest tensor first
           lambda b: (-_area(b[1]), _start(b[1])),                             # most bytes x commands
           lambda b: (_start(b[1]) - _end(b[1]), -_extent(b[1])),              # longest-lived first
           lambda b: (_start(b[1]), -_extent(b[1])),                           # program order
           lambda b: (_end(b[1]), -_extent(b[1])),                             # first to die first
           # size classes, longest-lived first within one: the big gradients of a backward no
           # longer split the long-lived saved activations' space (MobileNetV2-w0.35 99kb with the
           # input streamed: 73,984 -> 70,656 B)
           lambda b: (-(_extent(b[1]) // 8192), _start(b[1]) - _end(b[1])),
           lambda b: (-(_extent(b[1]) // 4096), _start(b[1]) - _end(b[1])))


#: the hill climb of :func:`_best_layout`: from each of the ``_CLIMB_STARTS`` best orders,
#: ``_CLIMB_STEPS`` layouts, each the current order with a tenth of its blocks swapped with their
#: neighbour (a fixed seed: the same program gets the same layout), kept when no larger
_CLIMB_STARTS, _CLIMB_STEPS, _CLIMB_SEED = 3, 30, 0

#: how many first-fit layouts :func:`_promote` tries
_PROMOTIONS = 12


def _top_blocks(seq: list, offsets: dict, size: int) -> list:
    """(position, block) of the blocks of a layout whose occupying bytes reach its end (aligned)."""
    return [(n, b) for n, b in enumerate(seq)
            if any(q[2] != _NOWHERE and _align(q[1] + offsets[b[0]]) >= size for q in b[1])]


def _climb(seq: list, size: int, floor: int, rng) -> tuple[list, int]:
    """Hill climb on the order of a first-fit layout (``_CLIMB_STEPS`` steps from ``seq``)."""
    swaps = max(1, len(seq) // 10)
    for _ in range(_CLIMB_STEPS if len(seq) > 1 else 0):
        cand = list(seq)
        for _ in range(swaps):
            j = rng.randrange(len(cand) - 1)
            cand[j], cand[j + 1] = cand[j + 1], cand[j]
        s2 = _place(cand, None, floor)[1]
        if s2 <= size:
            seq, size = cand, s2
    return seq, size


def _promote(seq: list, floor: int) -> tuple[list, dict, int]:
    """From the first-fit layout of ``seq``: a block that reaches the layout's end placed first
    instead (the rest in the same order), kept when the layout gets smaller, until no such block
    helps or ``_PROMOTIONS`` layouts were tried."""
    offsets, size = _place(seq, None, floor)
    budget, improved = _PROMOTIONS, True
    while improved and budget:
        improved = False
        for n, block in _top_blocks(seq, offsets, size):
            if n == 0:
                continue
            if not budget:
                break
            budget -= 1
            cand = [block] + seq[:n] + seq[n + 1:]
            o2, s2 = _place(cand, None, floor)
            if s2 < size:
                seq, offsets, size, improved = cand, o2, s2, True
                break
    return seq, offsets, size


def _best_layout(items: list, floor: int) -> tuple[dict, int]:
    """The smallest first-fit layout found: each order of ``_ORDERS``; a hill climb on the order
    from the best ``_CLIMB_STARTS`` of them (random neighbour swaps, seeded, a layout kept when it
    is no larger); then :func:`_promote` from the best order and from each climb's end.
    First fit leaves holes that no fixed order closes: ProxylessNAS-w0.3 98kb at 128x128, the
    training step's and the prediction's arena 42,176 -> 39,808 B with the climb (39,697 B live at
    their worst command), MobileNetV2-w0.35 99kb's training step 35,072 -> 33,728 B. A block placed
    late often lands above a hole that is too small for it only because of blocks placed earlier
    that could have gone elsewhere (ProxylessNAS-w0.3 98kb with 5x5 patches, the training step's
    arena: 46,656 -> 39,040 B with the promotions, 32 B above the bytes live at its worst command;
    MCUNet-5FPS 99kb's training step 46,336 -> 43,072 B: from there no climb does better)."""
    layouts = sorted(((seq, _place(seq, None, floor)[1]) for seq in (sorted(items, key=order) for order in _ORDERS)),
                     key=lambda layout: layout[1])
    rng = random.Random(_CLIMB_SEED)
    starts = [layouts[0][0]] + [_climb(seq, size, floor, rng)[0] for seq, size in layouts[:_CLIMB_STARTS]]
    _, offsets, size = min((_promote(seq, floor) for seq in starts), key=lambda layout: layout[2])
    return offsets, size


def _accesses(cmd, exports: dict, mine: set, unread: list) -> list:
    try:
        acc = dm.command_accesses(cmd, exports)
    except Unsupported:
        if cmd.op != "dispatch":
            raise
        unread.append(cmd.export)
        acc = [dm.Access(r.alloc, r.offset, r.offset + r.length, "rw") for r in cmd.refs]
    return [a for a in acc if id(a.alloc) in mine and a.hi > a.lo]


def _replan_function(schedule: Schedule, fn, exports: dict, reserve: list, hole_cost: bool = False,
                     state_bytes: int = 0) -> Replan:
    trans = [a for a in schedule.allocs if a.kind == "arena" and not a.persistent and a.scope == fn.name
             and not a.name.endswith("_overlay")]
    iree_bytes = max((a.offset + _align(a.size) for a in trans), default=schedule.persistent_size) \
        - schedule.persistent_size
    rep = Replan(fn.name, iree_bytes, iree_bytes)
    if not trans:
        rep.reason = "no transient tensors"
        return rep
    mine = {id(a) for a in trans}
    unread: list = []
    try:
        events = [_accesses(c, exports, mine, unread) for c in fn.commands]
    except Unsupported as e:
        rep.reason = f"the bytes the commands touch are unknown: {e}"
        return rep
    last = len(fn.commands) - 1
    outs = [dm.Access(d.buf.alloc, d.buf.offset, d.buf.offset + d.buf.length, "r") for d in fn.outputs
            if d.buf is not None and id(d.buf.alloc) in mine and d.buf.length]
    values = dm.live_ranges(events, outs)
    blocks = _Blocks()
    for v in values:
        blocks.add(id(v), v.lo, v.hi, v.start, v.end)
    by_alloc: dict = {}
    for v in values:
        by_alloc.setdefault(id(v.alloc), []).append(v)

    def members(alloc, lo, hi, i):
        return [v for v in by_alloc.get(id(alloc), ()) if v.start <= i <= v.end and v.lo < hi and lo < v.hi]

    # Every byte range a command names (binding, fill, copy) or touches: the values alive there
    # move together, and the range itself must stay inside their block.
    ref_block: dict = {}             # (command index, ref index) -> a member key
    for i, c in enumerate(fn.commands):
        ranges = [(k, r.alloc, r.offset, r.offset + r.length) for k, r in enumerate(c.refs)
                  if id(r.alloc) in mine and r.length]
        ranges += [(None, a.alloc, a.lo, a.hi) for a in events[i]]
        for n, (k, alloc, lo, hi) in enumerate(ranges):
            hit = members(alloc, lo, hi, i)
            key = ("ref", i, n)        # the named range itself, at this command
            if k is not None and alloc.streamed:
                # a binding of the streamed input: it keeps the input's bytes at their relative
                # offsets, but only the bands alive here (its values) occupy memory
                blocks.add(key, lo, hi, _NOWHERE, _NOWHERE)
            else:
                blocks.add(key, lo, hi, i, i)
            root = key
            for v in hit:
                root = blocks.union(root, id(v))
            if k is not None:
                ref_block[(i, k)] = root
    out_block: dict = {}
    for j, d in enumerate(fn.outputs):
        if d.buf is not None and id(d.buf.alloc) in mine and d.buf.length:
            root = ("out", j)
            blocks.add(root, d.buf.offset, d.buf.offset + d.buf.length, last, last)
            for v in members(d.buf.alloc, d.buf.offset, d.buf.offset + d.buf.length, last):
                root = blocks.union(root, id(v))
            out_block[j] = root
    items = []
    for root, pieces in blocks.pieces.items():
        base = blocks.base(root)
        items.append((root, [(lo - base, hi - base, a, b) for lo, hi, a, b in pieces]))
    items += [(("reserve", n), [(0, _align(size), 0, upto)]) for n, (size, upto) in enumerate(reserve)]
    floor = -(schedule.persistent_size + state_bytes)   # the arena's first byte, from the plan's
    offsets, size = _best_layout(items, floor)
    rep.blocks, rep.unread_dispatches = len(blocks.pieces), unread
    # with hole_cost, IREE's layout is charged for the input it may have no room for (ours keeps
    # the hole): the input may then sit on top of it
    limit = iree_bytes + (sum(_align(b) for b, _ in reserve) if hole_cost else 0)
    if size >= limit:
        rep.reason = (f"our first-fit layout ({size} B) is not smaller"
                      + (" than IREE's with the step input on top" if hole_cost and reserve else ""))
        return rep
    _check(fn.name, values, blocks, offsets)
    plan = Alloc("arena", size, fn.name, name=f"plan@{fn.name}", start=min(a.start for a in trans),
                 end=max(a.end for a in trans))

    def moved(r: Buf, root, length=None) -> Buf:
        root = blocks.find(root)
        return Buf(plan, offsets[root] + r.offset - blocks.base(root), r.length if length is None else length)

    def reach(i, r: Buf):
        """A streamed input's binding ends at the last byte its kernel loads: its base may lie
        below the plan (``_lowest``), its nominal end above it."""
        if not r.alloc.streamed:
            return None
        return max((a.hi for a in events[i] if a.alloc is r.alloc), default=r.offset) - r.offset

    new_refs = [[moved(r, ref_block[(i, k)], reach(i, r)) if (i, k) in ref_block
                 else (Buf(plan, 0, 0) if id(r.alloc) in mine else r) for k, r in enumerate(c.refs)]
                for i, c in enumerate(fn.commands)]
    new_outs = [moved(d.buf, out_block[j]) if j in out_block
                else (Buf(plan, 0, 0) if d.buf is not None and id(d.buf.alloc) in mine else d.buf)
                for j, d in enumerate(fn.outputs)]
    _verify(fn, exports, trans, events, outs, plan, new_refs, new_outs)
    for c, refs in zip(fn.commands, new_refs):
        c.refs = refs
    for d, buf in zip(fn.outputs, new_outs):
        d.buf = buf
    schedule.allocs[:] = [a for a in schedule.allocs if id(a) not in mine] + [plan]
    plan.offset = schedule.persistent_size
    rep.bytes = size
    return rep


def _check(name: str, values: list, blocks: _Blocks, offsets: dict) -> None:
    """No two tensors alive at the same command share a byte in the new layout (an internal
    error if they do: the placement above is wrong, never the user's program)."""
    spans = []
    for v in values:
        root = blocks.find(id(v))
        lo = offsets[root] + v.lo - blocks.base(root)
        spans.append((v.start, v.end, lo, lo + v.hi - v.lo, v))
    events = sorted(spans, key=lambda s: s[0])
    active: list = []
    for start, end, lo, hi, v in events:
        active = [a for a in active if a[1] >= start]
        for a in active:
            if a[2] < hi and lo < a[3] and not (a[4].alloc is v.alloc and a[4].lo < v.hi and v.lo < a[4].hi):
                raise Unsupported(f"internal error in the transient layout of @{name}: tensors "
                                  f"[{a[2]}, {a[3]}) and [{lo}, {hi}) overlap while both are alive "
                                  f"(commands {a[0]}-{a[1]} and {start}-{end}); build with "
                                  "replan_memory=False and report this")
        active.append((start, end, lo, hi, v))


def _verify(fn, exports: dict, trans: list, events: list, outs: list, plan: Alloc, new_refs: list,
            new_outs: list) -> None:
    """The new layout delivers every read what IREE's delivers: both layouts are run command by
    command, each byte tagged with the command that last wrote it, and every byte a command (or
    the function's result) reads must come from the same writer in both (bytes nothing wrote
    in IREE's layout, e.g. a scratch buffer, are not compared). Independent of the liveness and
    placement above: an error there (a tensor overwritten before its last read) is an
    :class:`Unsupported` naming the command and the bytes instead of a wrong program."""
    old = {id(a): np.full(a.size, -1, np.int32) for a in trans}
    new = np.full(plan.size, -1, np.int32)
    mine = {id(plan)}

    def name(i):
        if i >= len(fn.commands):
            return f"the result of @{fn.name}"
        c = fn.commands[i]
        return f"command {i} ({c.export if c.op == 'dispatch' else c.op})"

    after = [dm.Access(b.alloc, b.offset, b.offset + b.length, "r") for b in new_outs
             if b is not None and b.alloc is plan and b.length]
    steps = list(enumerate(events)) + [(len(fn.commands), outs)]
    for i, was in steps:
        if i < len(fn.commands):
            moved = copy.copy(fn.commands[i])
            moved.refs = new_refs[i]
            now = _accesses(moved, exports, mine, [])
        else:
            now = after
        if len(now) != len(was):
            raise Unsupported(f"internal error in the transient layout of @{fn.name}: {name(i)} touches "
                              f"{len(was)} tensors in IREE's layout and {len(now)} in ours; build "
                              "with replan_memory=False and report this")
        for a, b in zip(was, now):
            if a.mode == "w":
                continue
            want, got = old[id(a.alloc)][a.lo:a.hi], new[b.lo:b.hi]
            bad = np.nonzero((want >= 0) & (want != got))[0]
            if len(bad):
                k = int(bad[0])
                raise Unsupported(
                    f"internal error in the transient layout of @{fn.name}: {name(i)} reads bytes "
                    f"[{b.lo}, {b.hi}) of {plan.name} ({a.alloc.name} [{a.lo}, {a.hi}) in IREE's layout), "
                    f"{len(bad)} of them last written by another command than in IREE's layout (byte "
                    f"{b.lo + k}: {name(int(got[k])) if got[k] >= 0 else 'nothing'} instead of "
                    f"{name(int(want[k]))}); build with replan_memory=False and report this")
        for a, b in zip(was, now):
            if a.mode != "r":
                old[id(a.alloc)][a.lo:a.hi] = i
                new[b.lo:b.hi] = i


def replan(schedule: Schedule, exports: dict, reserve: dict | None = None, hole_cost: bool = False,
           state_bytes: int = 0) -> list:
    """Place every public function's transient tensors ourselves (module docstring); rewrites
    ``schedule`` (its commands, outputs, allocations and arena size) and returns one
    :class:`Replan` per function. ``reserve``: function -> [(bytes, last command index), ...]
    holes kept free from the first command to that index (step inputs). ``hole_cost``: keep IREE's
    layout of a function only when it is smaller than ours by more than its holes (else only when
    it is smaller). ``state_bytes``: arena bytes below the schedule's own (the trained parameters,
    ``schedule_c``), which a streamed input's binding may start in."""
    reserve = reserve or {}
    reports = [_replan_function(schedule, fn, exports, reserve.get(fn.name, []), hole_cost, state_bytes)
               for fn in schedule.functions if fn.name != "__init"]
    top = schedule.persistent_size
    for a in schedule.allocs:
        if a.kind == "arena" and not a.persistent:
            top = max(top, a.offset + _align(a.size))
    schedule.arena_size = top
    schedule.replans = {r.function: r for r in reports}
    return reports


def replan_from_sources(schedule: Schedule, sources_dir, inputs: dict, exports: dict | None = None,
                        hole_cost: bool = False, state_bytes: int = 0) -> list:
    """:func:`replan` with IREE's executable sources in ``sources_dir`` (or ``exports``, already
    read from them), keeping a hole for the step input of each function in ``inputs`` (function
    -> argument index) up to its last read. Sources that cannot be read keep IREE's layout, the
    reason in ``schedule.replans``."""
    try:
        exports = dm.read_sources(sources_dir) if exports is None else exports
    except Unsupported as e:
        schedule.replans = {fn.name: Replan(fn.name, 0, 0, reason=f"no executable sources: {e}")
                            for fn in schedule.functions if fn.name != "__init"}
        return list(schedule.replans.values())
    reserve = {}
    for fname, index in inputs.items():
        fn = schedule.function(fname)
        arg, last = _uses(fn, index)
        if arg is not None:
            reserve[fname] = [(fn.inputs[index].length, last)]
    return replan(schedule, exports, reserve, hole_cost, state_bytes)


def _footprint(schedule: Schedule) -> int:
    """Arena bytes plus a step input kept outside it: what the two layouts are compared by."""
    placed = schedule.placements.get("input")
    return schedule.arena_size + (_align(placed.size) if placed is not None and not placed.in_arena else 0)


def replan_and_place(schedule: Schedule, sources_dir, inputs: dict, exports: dict | None = None,
                     state_bytes: int = 0) -> Schedule:
    """Our layout (:func:`replan_from_sources`, a hole kept for the step input; a function keeps
    IREE's where that is smaller, or, second candidate, where it is smaller even with the input on
    top of it) and IREE's with the input in one of its holes (``input_overlay``), the smallest of
    the three; returns the
    schedule chosen (``schedule`` itself or a rewritten copy). ``inputs``: function -> index of
    its input argument (empty: the input keeps its own buffer, nothing is placed). ``exports``:
    the sources already read (else read from ``sources_dir``)."""
    iree = copy.deepcopy(schedule)
    charged = copy.deepcopy(schedule) if inputs else None
    replan_from_sources(schedule, sources_dir, inputs, exports, state_bytes=state_bytes)
    if not inputs:
        return schedule
    place_step_input(schedule, sources_dir, inputs, exports)
    # the same with each function's IREE layout charged for the input it may have no room for:
    # a function keeping IREE's layout with no window for the input grows the arena by it. Only
    # a function taking the input that kept IREE's layout can come out differently.
    if any(schedule.replans[f].reason for f in inputs if f in schedule.replans):
        replan_from_sources(charged, sources_dir, inputs, exports, hole_cost=True, state_bytes=state_bytes)
        place_step_input(charged, sources_dir, inputs, exports)
        if _footprint(charged) < _footprint(schedule):
            schedule = charged
    place_step_input(iree, sources_dir, inputs, exports)
    if _footprint(iree) < _footprint(schedule):
        iree.replans = {name: Replan(name, r.iree_bytes, r.iree_bytes, r.blocks, r.unread_dispatches,
                                     reason=f"IREE's layout with the input in one of its holes needs "
                                            f"{_footprint(iree)} B, ours {_footprint(schedule)} B")
                        for name, r in schedule.replans.items()}
        return iree
    return schedule
