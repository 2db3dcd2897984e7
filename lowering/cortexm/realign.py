"""Bindings IREE passes at an offset its kernel may not take: each gets an aligned copy.

IREE's kernels declare their bindings 64-byte aligned (``hal.interface.binding.subspan ...
alignment(64)``) and LLVM may compile them relying on it, yet IREE's host program can bind a
tensor at an offset that is only 16-byte aligned: a kernel writing one channel group's 12-float
gradient in place into the concatenation of the groups (bytes 48, 96, ... of it). On the x86
host that goes unnoticed; the C schedule refuses it (``schedule_c.emit``). Which dispatches do
it depends on how IREE fuses: with small constants not inlined into the kernels
(``--iree-flow-inline-constants-max-byte-length=0``, the Cortex-M build) MobileNetV2-w0.35
``99kb`` at 128x128 has 6 such bindings among 7,653.

:func:`realign_bindings` gives each such binding a buffer of its own in the arena (64-byte
aligned wherever the layout puts it: ``replan`` keeps a block's offset modulo 64): the bytes are
copied in before the dispatch and, when the kernel writes the binding, copied back after it. The
copies are ``copy`` commands of the schedule, so the memory plan, the memory report and the
replanner's check (every read gets the bytes of the same writer) see them like any other.
"""

from __future__ import annotations

from . import dispatch_memory as dm
from .schedule_model import ALIGN, Alloc, Buf, Command, Schedule, _align

__all__ = ["realign_bindings"]


def _misaligned(c: Command, k: int, r: Buf, unaligned: dict) -> bool:
    if (unaligned.get(c.export, 0) >> k) & 1 or not r.length:
        return False
    if r.alloc.kind == "arena" and not r.alloc.streamed:
        return (r.alloc.offset + r.offset) % ALIGN != 0
    return r.alloc.kind == "arg" and r.offset % ALIGN != 0


def realign_bindings(schedule: Schedule, exports: dict) -> int:
    """Rewrite ``schedule`` so that no dispatch binds a buffer its kernel declares aligned at a
    misaligned offset (module docstring); ``exports``: the kernels' sources
    (:func:`dispatch_memory.read_sources`). Returns how many bindings were given a copy."""
    unaligned = dm.unaligned_bindings(exports)
    count = 0
    for fn in schedule.functions:
        # IREE's layout has no place for the copies: on top of the function's tensors (each
        # lives around one command; those of one command side by side)
        top = schedule.transient_top(fn.name)
        commands = []
        for c in fn.commands:
            moved = [(k, r) for k, r in enumerate(c.refs) if c.op == "dispatch" and _misaligned(c, k, r, unaligned)]
            if not moved:
                commands.append(c)
                continue
            info = exports.get(c.export)
            writes = {s.binding for s in info.subspans if s.mode != "r"} if info is not None else \
                {k for k, _ in moved}
            before, after, at = [], [], top
            for k, r in moved:
                own = Alloc("arena", r.length, fn.name, name=f"realign@{fn.name}#{count}", start=c.time,
                            end=c.time, offset=at)
                at += _align(r.length)
                schedule.allocs.append(own)
                mine = Buf(own, 0, r.length)
                # copied in also when the kernel only writes: bytes it leaves alone are copied back
                before.append(Command("copy", c.time, [r, mine], length=r.length))
                if k in writes:
                    after.append(Command("copy", c.time, [mine, r], length=r.length))
                c.refs[k] = mine
                count += 1
            schedule.arena_size = max(schedule.arena_size, at)
            commands += [*before, c, *after]
        fn.commands[:] = commands
    return count
