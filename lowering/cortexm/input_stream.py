"""Stream the step input into the transient arena: each reader gets the bytes it loads, when it runs.

With a patched first stage (``patch-stage``) each kernel that reads the input reads only the rows
of one patch's receptive field: a 128x128x3 int8 image is 49,152 B, one of 3x3 patches reads about
20 KB of it. Placed whole (``input_overlay.py``), the input sits in the arena from the first
command to the last patch, next to every patch's working set. Streamed, every command that reads
the input reads its own copy (``input@<function>#<k>``, :attr:`Alloc.streamed`): *read-input*
copies inserted just before it bring in the byte hulls of its static ``dispatch.tensor.load``s
(its bindings are marked :attr:`Command.precise`, so only those bytes count as read), and the
copy dies with that command. The layout (``replan.py``) keeps the copy at the input's offsets
inside a tensor as large as the input (the kernel indexes into it as into the input), but only
the bytes brought in occupy memory, from their copy to their reader, and the tensor's base may
lie below the function's tensors (in the trained state), so those bytes go wherever there is room. Overlapping patches read
their halo rows again; the copies cost a few hundred thousand bytes of ``memmove`` per step.

A read-input copy takes its bytes from the caller's input buffer (which may be in flash or any
memory outside the arena) or, when the caller set an input reader (``tt_model_set_input_reader``:
a file, a camera driver's buffer), from the reader, so the whole input need never be in SRAM (the
generated header defines ``TT_MODEL_INPUT_STREAMED``; the firmware harness reads each range from
the record file). A reader is asked for ranges in program order (for a patched stage, patch by
patch in raster order: the ranges' starts do not decrease, consecutive ranges overlap).

Only a non-f32 input is streamed (an f32 input is checked for NaN/Inf before any kernel runs) and
only when every command that touches it is a dispatch whose read-only loads are static (else
:func:`stream_input` leaves it to ``input_overlay.py`` and says why).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from . import dispatch_memory as dm
from .input_overlay import _uses
from .schedule_model import Alloc, Buf, Command, Schedule, Unsupported, _align

__all__ = ["Stream", "stream_input"]


@dataclass
class Stream:
    """What :func:`stream_input` did for the step input: per function, the read-input copies
    ((offset, bytes) in issue order) in ``reads``; ``reason``: why it was not streamed (empty when
    it was)."""

    size: int
    reads: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def streamed(self) -> bool:
        return bool(self.reads)

    def describe(self) -> str:
        if not self.streamed:
            return f"input ({self.size} B) not streamed: {self.reason}"
        per = ", ".join(f"@{f} {len(b)} reads of {sum(n for _, n in b)} B (largest {max(n for _, n in b)} B)"
                        for f, b in self.reads.items())
        return f"input ({self.size} B) streamed: each kernel reading it gets the bytes it loads: {per}"


def _stream_function(schedule: Schedule, fn, index: int, exports: dict) -> list:
    """Rewrite ``fn`` so that each command reading input ``index`` reads its own copy of the
    bytes it takes; returns the read-input copies' (offset, bytes) in issue order."""
    arg, _ = _uses(fn, index)
    if arg is None:
        raise Unsupported("no command reads it")
    if any(d.buf is not None and d.buf.alloc is arg for d in fn.outputs):
        raise Unsupported(f"@{fn.name} returns it")
    size = fn.inputs[index].length
    rewritten = []
    for i, c in enumerate(fn.commands):
        bindings = tuple(k for k, r in enumerate(c.refs) if r.alloc is arg)
        if not bindings:
            continue
        if c.op != "dispatch":
            raise Unsupported(f"command {i} ({c.op}) touches it; only kernels' static loads are streamed")
        # the reader's own copy: a tensor as large as the input (the kernel indexes into it as
        # into the input) of which only the bytes it loads are brought in and occupy memory
        own = Alloc("arena", size, fn.name, name=f"input@{fn.name}#{len(rewritten)}", start=c.time,
                    end=c.time, streamed=True)
        probe = Command(c.op, c.time, [Buf(own, r.offset, r.length) if r.alloc is arg else r for r in c.refs],
                        export=c.export, constants=c.constants, precise=bindings)
        hulls = []
        for a in dm.command_accesses(probe, exports):
            if a.alloc is own:
                if a.mode != "r":
                    raise Unsupported(f"command {i} ({c.export}) writes it")
                hulls.append((a.lo, a.hi))
        c.refs, c.precise = probe.refs, bindings
        rewritten.append((i, own, sorted(set(hulls))))
    # IREE's layout has no place for them: all on top of the function's tensors (never two
    # alive at once: each lives from its copies to its reader), what keeping IREE's layout costs
    top = schedule.transient_top(fn.name)
    schedule.arena_size = max(schedule.arena_size, top + _align(size))
    for i, own, hulls in reversed(rewritten):   # from the end: the indices below stay valid
        for lo, hi in reversed(hulls):
            fn.commands.insert(i, Command("copy", fn.commands[i].time, [Buf(arg, lo, hi - lo), Buf(own, lo, hi - lo)],
                                          length=hi - lo, stream_read=True))
        own.offset = top
        schedule.allocs.append(own)
    return [(lo, hi - lo) for _, _, hulls in rewritten for lo, hi in hulls]


def stream_input(schedule: Schedule, exports: dict | None, uses: dict) -> Stream:
    """Stream the step input (``uses``: function -> its argument index) of every function that
    takes it, or of none (a function reading it from a buffer of its own keeps that buffer in
    SRAM anyway); rewrites ``schedule`` (module docstring) and records the result in
    ``schedule.placements["input_stream"]``. ``exports``: the kernels' sources
    (:func:`dispatch_memory.read_sources`), None when they could not be read."""
    size = max((schedule.function(f).inputs[i].length for f, i in uses.items()), default=0)
    out = Stream(size, reason=_why_not(schedule, exports, uses))
    if not out.reason:
        trial = copy.deepcopy(schedule)
        try:
            out.reads = {f: _stream_function(trial, trial.function(f), i, exports) for f, i in uses.items()}
            schedule.__dict__.update(trial.__dict__)
        except Unsupported as e:
            out.reason = str(e)
    schedule.placements["input_stream"] = out
    return out


def _why_not(schedule: Schedule, exports: dict | None, uses: dict) -> str:
    """Why the input cannot be streamed before looking at its readers, or ""."""
    if not uses:
        return "the program takes no step input"
    if exports is None:
        return "the kernels' sources could not be read"
    if any(schedule.function(f).inputs[i].dtype == "f32" for f, i in uses.items()):
        return "an f32 input is checked for NaN/Inf before the step, so it must be whole"
    return ""
