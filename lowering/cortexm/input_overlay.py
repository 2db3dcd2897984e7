"""Place a step's input inside the transient arena: the bytes nothing writes before its last read.

The firmware used to keep the input (e.g. a 128x128x3 int8 image, 49,152 B), the label and the
predict output in static I/O buffers outside the arena for the whole step. But nothing transient
survives between calls, and the input is read only by the first commands (the patch stage): the
arena bytes that no command of the function touches up to the input's last read are free while
the input is alive. :func:`place_inputs` finds such a window with the byte ranges IREE's kernels
really touch (:func:`dispatch_memory.command_accesses`, from the dumped executable sources: IREE
packs all transient tensors into one allocation, so allocation lifetimes alone would find
nothing), and rewrites every reference to that argument into a reference to an arena
:class:`Alloc` at the window (``<name>_overlay``, one per function, same offset).

The caller writes the input into the arena before the call, exactly as it wrote the I/O buffer:
the generated header defines ``<P>_TRAIN_INPUT_OFFSET`` / ``<P>_PREDICT_INPUT_OFFSET`` and
``TT_MODEL_INPUT_IN_ARENA`` (the firmware harness reads records straight there) and the runtime
copies an input passed from elsewhere into its arena range before the first command
(``tt_run``). The input is clobbered by the step.

A window may also end past the arena's top (the arena grows by the part that sticks out) when
that part is smaller than the input: the step then needs fewer bytes than with a buffer of its own.
When no window helps (a program that reads the input late, or an arena too small) the input
keeps its separate buffer and :class:`Placement` says why: ``StaticModule.sram_contributors()``
and the memory report show where each input lives.

Every function that takes the input (``train_step``, ``predict``) gets its own window, and the
input goes into the arena only if all of them have one: a function reading it from a buffer of
its own would keep that buffer in SRAM anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import dispatch_memory as dm
from .schedule_model import Alloc, Buf, IODesc, Schedule, Unsupported, _align

__all__ = ["Placement", "place_inputs", "place_step_input"]


@dataclass
class Placement:
    """Where one step input lives. ``offsets``: per function, its first byte in the schedule's
    arena (before the trained state is prepended; empty = its own buffer outside the arena).
    ``last_read``: per function, the index of the last command that reads it. ``grown``: bytes
    the arena grew by for it. ``reason``: why it stays outside (empty when placed)."""

    name: str                    # "input" | "label"
    size: int
    offsets: dict = field(default_factory=dict)
    grown: int = 0
    last_read: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def in_arena(self) -> bool:
        return bool(self.offsets)

    def describe(self) -> str:
        if self.in_arena:
            where = ", ".join(f"@{f} [{o}, +{self.size}) until command #{self.last_read[f]}"
                              for f, o in self.offsets.items())
            grown = f"; the arena grew by {self.grown} B for it" if self.grown else ""
            return f"{self.name} ({self.size} B) in the transient arena: {where}{grown}"
        return f"{self.name} buffer ({self.size} B) outside the arena: {self.reason}"


def _input_size(schedule: Schedule, uses: dict) -> int:
    """Bytes of a step input taken by the functions in ``uses`` (function -> argument index)."""
    return max(schedule.function(f).inputs[i].length for f, i in uses.items())


def _uses(fn, index: int):
    """The argument alloc of input ``index`` of ``fn`` and the index of its last use (the last
    command that binds it; the end when a result is that argument)."""
    arg, last = None, -1
    for i, c in enumerate(fn.commands):
        for r in c.refs:
            if r.alloc.kind == "arg" and r.alloc.arg == index:
                arg, last = r.alloc, i
    for d in fn.outputs:
        if d.buf is not None and d.buf.alloc.kind == "arg" and d.buf.alloc.arg == index:
            arg, last = d.buf.alloc, len(fn.commands) - 1
    return arg, last


def _busy(fn, last: int, exports: dict) -> list:
    """Arena byte intervals any command of ``fn`` up to ``last`` touches (read or write)."""
    spans = []
    for c in fn.commands[:last + 1]:
        for a in dm.command_accesses(c, exports):
            if a.alloc.kind == "arena":
                spans.append((a.alloc.offset + a.lo, a.alloc.offset + a.hi))
    return sorted(spans)


def _window(spans: list, size: int, low: int, top: int) -> tuple[int, int]:
    """(offset, bytes past ``top``) of the cheapest 64-byte aligned free window of ``size``
    bytes at or above ``low``: the lowest one inside the arena, else the one sticking out least."""
    candidates = sorted({low, *(max(low, _align(hi)) for _, hi in spans)})
    best = None
    for off in candidates:
        if any(lo < off + size and off < hi for lo, hi in spans):
            continue
        cost = max(0, off + size - top)
        if best is None or cost < best[1]:
            best = (off, cost)
    return best


def place_inputs(schedule: Schedule, exports: dict, inputs: dict) -> list:
    """Place each step input inside the transient arena where every function taking it has a
    window (all or none: one function reading it from its own buffer would keep that buffer).

    ``inputs``: name -> {function name: argument index} (e.g. ``{"input": {"train_step": 8,
    "predict": 8}}``). ``exports``: :func:`dispatch_memory.read_sources`. Each function gets its
    own window (their commands differ); the arena grows by what the highest window sticks out.
    Rewrites the schedule (command references, output buffers, inputs' ``buf``, the arena size,
    new overlay allocations) and returns one :class:`Placement` per name."""
    placements = []
    for name, uses in inputs.items():
        size = _input_size(schedule, uses)
        need = _align(size)
        p = Placement(name, size)
        placements.append(p)
        windows = {}
        for fname, index in uses.items():
            fn = schedule.function(fname)
            arg, last = _uses(fn, index)
            p.last_read[fname] = last
            if arg is None:
                continue
            try:
                spans = _busy(fn, last, exports)
            except Unsupported as e:   # e.g. a dispatch of our own kernels (memref subspans)
                p.reason = f"the bytes @{fname}'s commands touch are unknown: {e}"
                break
            spans += [(a.offset, a.offset + _align(a.size)) for a in schedule.allocs
                      if a.name.endswith("_overlay") and a.scope == fname]
            windows[fname] = (arg, last, _window(sorted(spans), need, schedule.persistent_size,
                                                  schedule.arena_size)[0])
        if p.reason or not windows:
            p.reason = p.reason or "no command reads it"
            continue
        top = max(off for _, _, off in windows.values()) + need
        grown = max(0, top - schedule.arena_size)
        if grown >= need:
            reads = ", ".join(f"@{f} #{i}" for f, i in p.last_read.items())
            p.reason = (f"no free window of {need} B in the transient arena before its last read "
                        f"(command {reads}); the best one sticks out {grown} B past its top")
            continue
        p.grown = grown
        schedule.arena_size += grown
        for fname, (arg, last, off) in windows.items():
            fn = schedule.function(fname)
            start = fn.commands[0].time if fn.commands else 0
            ov = Alloc("arena", size, fname, name=f"{name}_overlay", start=start,
                       end=fn.commands[last].time, offset=off)
            schedule.allocs.append(ov)
            p.offsets[fname] = off
            for c in fn.commands:
                c.refs = [Buf(ov, r.offset, r.length) if r.alloc is arg else r for r in c.refs]
            for d in fn.outputs:
                if d.buf is not None and d.buf.alloc is arg:
                    d.buf = Buf(ov, d.buf.offset, d.buf.length)
            old = fn.inputs[uses[fname]]
            fn.inputs[uses[fname]] = IODesc(old.shape, old.dtype, old.length, Buf(ov, 0, old.length))
    schedule.placements = {p.name: p for p in placements}
    return placements


def place_step_input(schedule: Schedule, sources_dir, uses: dict, exports: dict | None = None) -> Placement:
    """:func:`place_inputs` for the step's input (``uses``: function -> argument index) with
    IREE's executable sources in ``sources_dir`` (or ``exports``, already read from them);
    sources the byte ranges cannot be read from keep the input's own buffer, the reason in the
    :class:`Placement`."""
    try:
        exports = dm.read_sources(sources_dir) if exports is None else exports
    except Unsupported as e:
        p = Placement("input", _input_size(schedule, uses), reason=f"the bytes the commands touch are unknown: {e}")
        schedule.placements = {"input": p}
        return p
    return place_inputs(schedule, exports, {"input": uses})[0]
