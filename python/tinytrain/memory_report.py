"""The memory report of a compiled Cortex-M step: live SRAM bytes per dispatch, as a table and a plot.

    prog = tinytrain.compile(model, x, target="cortex-m4", ...)
    rep = prog.memory_report()          # or Int8Training.memory_report(); CLI --memory-report DIR
    rep.peak_bytes                      # the plan's peak: what the device's `MEM sram_peak` measures
    rep.rows[i].live_bytes              # transient tensors live while dispatch i runs
    rep.peak_tensors                    # what is live at the worst dispatch, by the command that wrote it
    rep.hot_spots                       # the worst dispatch of each of the 4 worst blocks, with its tensors
    rep.write("build/mem")              # memory_report.md, .json, .svg

What it reads: the static schedule of the step (`lowering/cortexm/hal2c.py`: every fill, copy and
dispatch of `@train_step` in program order, with its buffer bindings) and IREE's executable
sources (`lowering/cortexm/dispatch_memory.py`: the tensor sub-ranges each dispatch reads and
writes inside IREE's transient allocation, and the layers it computes). A tensor is live from the
command that writes it to its last reader.

The SRAM of the firmware has two parts:

- **persistent** (`MemoryReport.persistent`): the trained state (parameters, momentum buffers) at
  the arena start, IREE's persistent buffers, the harness' I/O buffers outside the arena (label,
  predict output, and the input unless the compiler placed it inside the transient arena:
  `lowering/cortexm/input_overlay.py`, named in `notes`), the runtime's static data and the stack
  (its expected peak: the deepest call chain of the linked firmware, `StackBound.thread_depth`
  from `lowering/cortexm/stack_bound.py`; `iree_static.STACK_ESTIMATE` for a module whose
  firmware was not analysed);
- **transient**: the step's transient tensors in one static arena region whose size is fixed at
  compile time (`transient_arena_bytes`, the largest layout over the program's functions); the
  compiler lays them out itself (`lowering/cortexm/replan.py`) and keeps IREE's packing only where
  its own layout is not smaller (named in `notes`).

`peak_bytes` = persistent + transient arena = `StaticModule.planned_peak()`: the arena is one static
array, so this is what stack and SRAM painting measure on the device (`run_qemu(...).mem
["sram_peak"]`). `reserved_bytes` = `planned_sram()`, the budget check, reserves the whole stack
reserve: the firmware's worst-case stack (exception frames included) + margin, in whole KB, or
the fixed 8 KB when the code has no static bound (said in `notes`). Per dispatch, `live_bytes` counts the transient tensors live while it runs and
`allocated_bytes` IREE's transient allocations alive then; `live_peak_bytes` (persistent + the
largest `live_bytes`) is what an ideal packing of these very tensors would need. The gap to
`peak_bytes` is the layout's: every tensor has one offset for its whole life, so holes left by
tensors that die at different times cannot always be filled (with IREE's own packing, also the
tensors of commands it may run concurrently are kept apart).

`hot_spots`: the arena is sized by the worst dispatch, but a smaller arena needs every place
near that peak lower too. For each block (a layer's parent module: `blocks.12` for
`blocks.12.depthwise`; `first_conv` for itself), its worst dispatch (in the forward pass or the
backward pass, whichever holds more) and what is live there; the `HOT_SPOTS` worst blocks, worst
first (the first is the worst dispatch's block). E.g. MobileNetV2-w0.35 `99kb` at 128x128 on the
M7: the patched first stage's `blocks.3`, the backward of `blocks.12` (two whole 8x8x32 fp32
gradients) and the forward of `blocks.11` all hold about 32-35 KB.

The host target has no such report: IREE's runtime allocates its buffers dynamically there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

__all__ = ["HotSpot", "LiveTensor", "MemoryRow", "MemoryReport", "memory_report", "report_for"]

FILES = ("memory_report.md", "memory_report.json", "memory_report.svg")

#: how many blocks `MemoryReport.hot_spots` lists
HOT_SPOTS = 4

#: how many writers each hot spot's table in the Markdown lists (its `tensors` hold all)
HOT_SPOT_ROWS = 8


@dataclass
class MemoryRow:
    """One dispatch of the step, in program order."""

    index: int                   #: position among the function's dispatches (0-based)
    dispatch: str                #: IREE's export name (`<fn>_dispatch_<n>_<kind>_<shape>`)
    layers: list                 #: the layers it computes (from the ops' locations), maybe empty
    live_bytes: int              #: transient tensors live while it runs
    allocated_bytes: int         #: arena bytes of IREE's transient allocations (and a placed input) alive then
    total_bytes: int             #: persistent + live_bytes


@dataclass
class LiveTensor:
    """Bytes live at the worst dispatch, grouped by the command that wrote them."""

    bytes: int                   #: transient bytes of this writer still live there
    written_by: str              #: the writing command: IREE's export name, or "fill"/"copy"/...
    layers: list                 #: the writer's layers (a dispatch's locations), maybe empty
    last_read_by: str            #: the last command that reads these bytes
    written_at: int              #: the writer's position among the function's commands
    last_read_at: int            #: the last reader's position among the function's commands


@dataclass
class HotSpot:
    """A block's worst dispatch and what is live there (`MemoryReport.hot_spots`)."""

    block: str                   #: the parent module of the dispatch's first layer
    index: int                   #: the dispatch's position (`MemoryRow.index`)
    dispatch: str                #: IREE's export name
    live_bytes: int              #: transient tensors live while it runs
    tensors: list = field(default_factory=list)   #: `LiveTensor`s there, largest first


def block_of(layer: str) -> str:
    """The block a layer belongs to: its parent module (`blocks.12.depthwise` -> `blocks.12`), or
    the layer itself at the top level (`first_conv`, `fc`)."""
    return layer.rsplit(".", 1)[0] if "." in layer else layer


@dataclass
class MemoryReport:
    """Per-dispatch SRAM of one compiled function on a Cortex-M target (see the module doc)."""

    target: str
    function: str
    rows: list
    persistent: dict             #: what stays in SRAM the whole time -> bytes (ordered)
    transient_arena_bytes: int   #: the arena region IREE's transient allocations are packed into
    reserved_bytes: int          #: `planned_sram()`: with the whole stack reserve
    budget_bytes: int | None = None
    arena_function: str = ""     #: the function whose packing sizes the transient arena
    notes: list = field(default_factory=list)
    #: `LiveTensor`s live at the worst dispatch (`live_peak_row`), largest first; their bytes sum
    #: to its `live_bytes` (bytes two writers' values share count for the later writer)
    peak_tensors: list = field(default_factory=list)
    #: the worst dispatch of each of the `HOT_SPOTS` worst blocks, worst first (`HotSpot`)
    hot_spots: list = field(default_factory=list)

    @property
    def persistent_bytes(self) -> int:
        return sum(self.persistent.values())

    @property
    def peak_bytes(self) -> int:
        """The plan's peak: persistent + transient arena (`planned_peak()`)."""
        return self.persistent_bytes + self.transient_arena_bytes

    @property
    def live_peak_row(self) -> MemoryRow | None:
        return max(self.rows, key=lambda r: r.live_bytes) if self.rows else None

    @property
    def live_peak_bytes(self) -> int:
        """Persistent + the most transient bytes live at one dispatch."""
        row = self.live_peak_row
        return self.persistent_bytes + (row.live_bytes if row else 0)

    # -- output ------------------------------------------------------------------------------
    def summary(self) -> list:
        """The report's headline facts, one sentence each (in the Markdown and the CLI)."""
        lines = [f"peak SRAM (plan) {self.peak_bytes:,} B = persistent {self.persistent_bytes:,} B "
                 f"+ transient arena {self.transient_arena_bytes:,} B "
                 f"(sized by @{self.arena_function})"]
        row = self.live_peak_row
        if row is not None:
            where = f"dispatch {row.index} {row.dispatch}" + (f" ({', '.join(row.layers)})" if row.layers else "")
            lines.append(f"live at the worst dispatch {self.live_peak_bytes:,} B: {where}; "
                         f"{self.peak_bytes - self.live_peak_bytes:,} B more are the layout's "
                         "(one offset per tensor for its whole life)")
            if self.peak_tensors:
                top = self.peak_tensors[0]
                lines.append(f"largest live there: {top.bytes:,} B written by {top.written_by}"
                             + (f" ({', '.join(top.layers)})" if top.layers else "")
                             + f", last read by {top.last_read_by} ({len(self.peak_tensors)} writers in all; "
                             "table in the Markdown)")
        if len(self.hot_spots) > 1:
            lines.append("worst dispatch per block: " + ", ".join(
                f"{h.block} {h.live_bytes:,} B (#{h.index})" for h in self.hot_spots)
                + ": a smaller arena needs all of them lower (tables in the Markdown)")
        lines.append(f"reserved by the budget check (planned_sram, full stack reserve) "
                     f"{self.reserved_bytes:,} B" + (f" of {self.budget_bytes:,} B" if self.budget_bytes else ""))
        return lines + list(self.notes)

    def to_json(self) -> dict:
        return {"target": self.target, "function": self.function, "peak_bytes": self.peak_bytes,
                "live_peak_bytes": self.live_peak_bytes, "reserved_bytes": self.reserved_bytes,
                "budget_bytes": self.budget_bytes, "persistent": dict(self.persistent),
                "persistent_bytes": self.persistent_bytes,
                "transient_arena_bytes": self.transient_arena_bytes,
                "arena_function": self.arena_function, "notes": list(self.notes),
                "rows": [asdict(r) for r in self.rows],
                "peak_tensors": [asdict(t) for t in self.peak_tensors],
                "hot_spots": [asdict(h) for h in self.hot_spots]}

    def to_markdown(self) -> str:
        out = [f"# Memory report: @{self.function} on {self.target}", ""]
        out += [f"- {s}" for s in self.summary()]
        out += ["", "| persistent | bytes |", "|---|---:|"]
        out += [f"| {escape(k)} | {v:,} |" for k, v in self.persistent.items()]
        row = self.live_peak_row
        if row is not None and self.peak_tensors:
            out += ["", f"Live at the worst dispatch (#{row.index} `{row.dispatch}`), by the command that wrote "
                    "them (command positions in the function's schedule):", "",
                    "| bytes | written by | layers | last read by |", "|---:|---|---|---|"]
            out += _tensor_rows(self.peak_tensors)
        for h in self.hot_spots[1:]:
            out += ["", f"Worst dispatch of `{escape(h.block)}`: #{h.index} `{h.dispatch}`, {h.live_bytes:,} B live"
                    + (f" (the {HOT_SPOT_ROWS} largest of {len(h.tensors)} writers)"
                       if len(h.tensors) > HOT_SPOT_ROWS else "") + ":", "",
                    "| bytes | written by | layers | last read by |", "|---:|---|---|---|"]
            out += _tensor_rows(h.tensors[:HOT_SPOT_ROWS])
        out += ["", "| # | dispatch | layers | live transient B | IREE allocations B | total live B |",
                "|---:|---|---|---:|---:|---:|"]
        peak = self.live_peak_row
        for r in self.rows:
            mark = " **(peak)**" if r is peak else ""
            out.append(f"| {r.index} | `{r.dispatch}`{mark} | {escape(', '.join(r.layers)) or '-'} | "
                       f"{r.live_bytes:,} | {r.allocated_bytes:,} | {r.total_bytes:,} |")
        return "\n".join(out) + "\n"

    def to_svg(self) -> str:
        return _svg(self)

    def write(self, out_dir) -> list:
        """Write `memory_report.md`, `.json` and `.svg` into `out_dir`; returns their paths."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        texts = (self.to_markdown(), json.dumps(self.to_json(), indent=1) + "\n", self.to_svg())
        paths = [d / f for f in FILES]
        for p, t in zip(paths, texts):
            p.write_text(t)
        return paths


def _tensor_rows(tensors: list) -> list:
    """Markdown table rows of `LiveTensor`s: bytes, writer, its layers, last reader."""
    return [f"| {t.bytes:,} | {t.written_at} `{t.written_by}` | {escape(', '.join(t.layers)) or '-'} | "
            f"{t.last_read_at} `{t.last_read_by}` |" for t in tensors]


# ---- building the report --------------------------------------------------------------------

def memory_report(module, *, function: str | None = None, budget_bytes: int | None = None) -> MemoryReport:
    """The report of `function` (default: `train_step`, else `predict`) of a
    `lowering.cortexm.iree_static.StaticModule`."""
    from tinytrain.lowering.cortexm import dispatch_memory as dm
    from tinytrain.lowering.cortexm.iree_static import HARNESS_STATIC
    from tinytrain.lowering.cortexm.schedule_c import plan_state

    sched = module.schedule
    names = [f.name for f in sched.functions]
    if function is None:
        function = "train_step" if "train_step" in names else "predict"
    if function not in names:
        raise ValueError(f"memory_report: the program has no @{function}; it has "
                         f"{', '.join('@' + n for n in names)}")
    fn = sched.function(function)
    exports = dm.read_sources(module.sources_dir)
    transient = [a for a in sched.allocs if a.kind == "arena" and not a.persistent and a.scope == function]
    ours = {id(a) for a in transient}
    events = [[a for a in dm.command_accesses(c, exports) if id(a.alloc) in ours] for c in fn.commands]
    results = [dm.Access(d.buf.alloc, d.buf.offset, d.buf.offset + d.buf.length, "r")
               for d in fn.outputs if d.buf is not None and id(d.buf.alloc) in ours]
    if events:
        # an input placed in the arena is written by the caller before the call: live from the start
        events[0] = [dm.Access(a, 0, a.size, "r") for a in transient if a.name.endswith("_overlay")] + events[0]
    values = dm.live_ranges(events, results)

    n_state = len(plan_state(sched, "train_step"))
    persistent = {f"trained state ({n_state} tensors)": module.state_bytes}
    if sched.persistent_size:
        persistent["IREE persistent buffers"] = sched.persistent_size
    placed = sched.placements.get("input")
    io = module.io_buffers
    persistent[f"{'/'.join(io) or 'no'} buffers"] = module.io_bytes
    persistent["runtime + harness static data"] = HARNESS_STATIC
    persistent["stack (expected peak)"] = module.stack_expected
    base = sum(persistent.values())

    rows, at = [], []
    for i, c in enumerate(fn.commands):
        if c.op != "dispatch":
            continue
        at.append(i)
        live = dm.live_bytes(values, i)
        # arena bytes, not a sum: a placed input lies inside IREE bytes no command uses yet
        alive = dm.union_bytes([(a.offset, a.offset + _aligned(a.size)) for a in transient
                                if a.start <= c.time <= a.end])
        info = exports[c.export]
        rows.append(MemoryRow(len(rows), c.export, _command_layers(c, info), live, alive, base + live))

    arena = sched.arena_size - sched.persistent_size
    packed = _packed_by_function(sched)
    arena_fn = max(packed, key=packed.get) if packed else function
    notes = [_stack_note(module)]
    if placed is not None:
        # where the step's input lives: inside the transient arena (its bytes count in
        # live_bytes until its last read) or its own buffer, and why (input_overlay.py)
        notes.append(placed.describe())
    stream = sched.placements.get("input_stream")
    if stream is not None:
        # streamed (input_stream.py): each reader's copy counts in live_bytes from its read-input
        # command to the reader; or why the input could not be streamed
        notes.append(stream.describe())
    for r in sched.replans.values():
        # the layout of each function's transient tensors: ours (replan.py) or IREE's, and why
        notes.append("transient layout " + r.describe())
    for flag, why in getattr(module, "dropped_flags", {}).items():
        notes.append(f"built without {flag}: iree-compile failed with it ({why})")
    if packed.get(function, 0) < arena:
        notes.append(f"@{function}'s allocations are packed into {packed.get(function, 0):,} B; the "
                     f"arena is {arena:,} B because @{arena_fn} needs more")
    rep = MemoryReport(module.target, function, rows, persistent, arena, module.planned_sram(),
                       budget_bytes, arena_fn, notes)
    peak = rep.live_peak_row
    if peak is not None:
        rep.peak_tensors = _live_tensors(values, at[peak.index], fn.commands, exports)
    worst: dict = {}                   # block -> its worst row (the first of equals)
    for r in rows:
        key = block_of(r.layers[0]) if r.layers else None
        if key is not None and (key not in worst or r.live_bytes > worst[key].live_bytes):
            worst[key] = r
    spots = sorted(worst.items(), key=lambda kv: (-kv[1].live_bytes, kv[1].index))[:HOT_SPOTS]
    if peak is not None and all(r is not peak for _, r in spots):
        # the worst dispatch names no layer: it leads the list as its own "block"
        spots = [(peak.dispatch, peak)] + spots[:HOT_SPOTS - 1]
    rep.hot_spots = [HotSpot(key, r.index, r.dispatch, r.live_bytes,
                             rep.peak_tensors if r is peak else _live_tensors(values, at[r.index], fn.commands, exports))
                     for key, r in spots]
    return rep


def _command_layers(command, info) -> list:
    """The layers a dispatch command computes. The kernel's source names every layer of its fused
    ops, but IREE runs one kernel for all dispatches with the same code (e.g. a gradient reduction
    of blocks 9-13), and its source names the layers of one of them; the command's location (in
    the HAL program) names its own layer. The kernel's list when it holds the command's layer,
    else the command's."""
    own = list(command.layers)
    return list(info.layers) if not own or set(own) <= set(info.layers) else own


def _live_tensors(values: list, index: int, commands: list, exports: dict) -> list:
    """The values live at command `index` grouped by their writer, largest first: each byte
    counted once, for its latest writer (a value and the remainder an overwrite left of it may
    both cover a byte), so the bytes sum to `dispatch_memory.live_bytes(values, index)`."""
    from tinytrain.lowering.cortexm import dispatch_memory as dm

    def name(i):
        c = commands[i]
        return c.export if c.op == "dispatch" else c.op

    live = sorted((v for v in values if v.start <= index <= v.end), key=lambda v: (-v.start, -v.end))
    claimed: dict = {}                 # id(alloc) -> spans counted so far
    groups: dict = {}                  # (writer, last reader) -> bytes
    for v in live:
        spans = claimed.setdefault(id(v.alloc), [])
        before = dm.union_bytes(spans)
        spans.append((v.lo, v.hi))
        new = dm.union_bytes(spans) - before
        if new:
            key = (v.start, v.end)
            groups[key] = groups.get(key, 0) + new
    out = []
    for (start, end), size in groups.items():
        c = commands[start]
        layers = _command_layers(c, exports[c.export]) if c.op == "dispatch" and c.export in exports else []
        out.append(LiveTensor(size, name(start), layers, name(end), start, end))
    return sorted(out, key=lambda t: (-t.bytes, t.written_at))


def _stack_note(module) -> str:
    """How the stack was planned: the computed bound, or the fixed reserve and why."""
    if module.stack is not None:
        return module.stack.describe()
    if module.stack_error is not None:
        return f"stack: FIXED 8 KB reserve, the firmware's stack has no static bound: {module.stack_error}"
    return "stack: fixed 8 KB reserve and estimated peak (the firmware was not analysed)"


def _aligned(n: int) -> int:
    from tinytrain.lowering.cortexm.schedule_model import _align

    return _align(n)


def _packed_by_function(sched) -> dict:
    """Per function scope: the end of its transient allocations in the arena (after the
    persistent part), as `hal2c._pack` placed them."""
    out: dict = {}
    for a in sched.allocs:
        if a.kind == "arena" and not a.persistent:
            end = a.offset + _aligned(a.size) - sched.persistent_size
            out[a.scope] = max(out.get(a.scope, 0), end)
    return out


def report_for(firmware, *, function: str | None = None) -> MemoryReport:
    """The report of a program's firmware (`CompiledModel.memory_report`,
    `Int8Training.memory_report`); a clear error for the host target (no firmware)."""
    if firmware is None:
        raise ValueError("memory_report() needs a Cortex-M target: on the host IREE's runtime allocates "
                         "buffers dynamically, so there is no static plan to report; compile with "
                         "target='cortex-m4' or 'cortex-m7'")
    if firmware.module is None:
        raise ValueError(f"the firmware in {firmware.project_dir} was loaded from disk without its "
                         "compiled schedule; the memory report is made at compile time "
                         "(prog.memory_report() on the compiled program)")
    rep = memory_report(firmware.module, function=function, budget_bytes=firmware.sram_kb * 1024)
    if firmware.text:
        # the flash the program takes besides its SRAM: most of it is kernel code (one kernel per
        # dispatch that differs in anything IREE bakes in: channel groups, patches, constants)
        rep.notes.append(f"flash: {firmware.text:,} B of code and constants (.text), of which "
                         f"{firmware.kernel_code:,} B are the code of {firmware.kernels} IREE kernels")
    return rep


# ---- the plot --------------------------------------------------------------------------------

_W, _H, _L, _R, _T, _B = 960, 460, 80, 250, 40, 50
_COLORS = ["#4e79a7", "#59a14f", "#b07aa1", "#9c755f", "#bab0ac", "#76b7b2"]


def _svg(rep: MemoryReport) -> str:
    """A step chart of SRAM per dispatch: the persistent parts stacked at the bottom, the live
    transient tensors on top (area), IREE's transient allocations (dashed), the plan's peak and
    the budget (lines). Written directly as SVG (no plotting library)."""
    n = max(len(rep.rows), 1)
    top = max([rep.peak_bytes, *(rep.persistent_bytes + r.allocated_bytes for r in rep.rows)])
    # A budget far above the data would flatten the chart: then it is named, not drawn.
    budget_drawn = rep.budget_bytes is not None and rep.budget_bytes <= 2 * top
    top = max(top, rep.budget_bytes if budget_drawn else 0) * 1.08 or 1
    pw, ph = _W - _L - _R, _H - _T - _B

    def x(i):
        return _L + pw * i / n

    def y(v):
        return _T + ph * (1 - v / top)

    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
          f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="12">',
          f"<title>{escape(f'SRAM per dispatch: @{rep.function} on {rep.target}')}</title>",
          f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="white"/>',
          f'<text x="{_L}" y="22" font-size="15">{escape(f"SRAM per dispatch of @{rep.function} ({rep.target})")}</text>']
    # y grid and ticks (KB)
    step = _nice_step(top / 6 / 1024) * 1024
    v = 0
    while v <= top:
        el.append(f'<line x1="{_L}" y1="{y(v):.1f}" x2="{_L + pw}" y2="{y(v):.1f}" stroke="#e5e5e5"/>')
        el.append(f'<text x="{_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v / 1024:,.0f} KB</text>')
        v += step
    legend = []
    # persistent bands
    base = 0
    for k, (name, b) in enumerate(rep.persistent.items()):
        color = _COLORS[k % len(_COLORS)]
        el.append(f'<rect x="{_L}" y="{y(base + b):.1f}" width="{pw}" height="{y(base) - y(base + b):.2f}" '
                  f'fill="{color}" opacity="0.8"><title>{escape(f"{name}: {b:,} B")}</title></rect>')
        legend.append((name, color, "rect"))
        base += b
    # live transient: step area on top of the persistent part
    pts = [f"{x(0):.1f},{y(base):.1f}"]
    for r in rep.rows:
        pts += [f"{x(r.index):.1f},{y(r.total_bytes):.1f}", f"{x(r.index + 1):.1f},{y(r.total_bytes):.1f}"]
    pts.append(f"{x(len(rep.rows)):.1f},{y(base):.1f}")
    el.append(f'<polygon points="{" ".join(pts)}" fill="#f28e2b" opacity="0.85"/>')
    legend.append(("live transient tensors", "#f28e2b", "rect"))
    # IREE's allocations: dashed step line
    pts = []
    for r in rep.rows:
        v = base + r.allocated_bytes
        pts += [f"{x(r.index):.1f},{y(v):.1f}", f"{x(r.index + 1):.1f},{y(v):.1f}"]
    if pts:
        el.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#333" stroke-dasharray="4 3"/>')
    legend.append(("IREE transient allocations", "#333", "dash"))
    # plan peak and budget
    if rep.budget_bytes is not None and not budget_drawn:
        el.append(f'<text x="{_L + pw - 4}" y="{_T + 12}" text-anchor="end">'
                  f'{escape(f"budget {rep.budget_bytes:,} B (above the chart)")}</text>')
    for label, value, color in (("plan peak", rep.peak_bytes, "#e15759"),
                                ("budget", rep.budget_bytes if budget_drawn else None, "#000")):
        if value:
            el.append(f'<line x1="{_L}" y1="{y(value):.1f}" x2="{_L + pw}" y2="{y(value):.1f}" '
                      f'stroke="{color}" stroke-width="1.5"/>')
            el.append(f'<text x="{_L + pw - 4}" y="{y(value) - 4:.1f}" text-anchor="end" fill="{color}">'
                      f'{escape(f"{label} {value:,} B")}</text>')
            legend.append((label, color, "line"))
    # tooltips per dispatch
    for r in rep.rows:
        tip = f"#{r.index} {r.dispatch}" + (f" [{', '.join(r.layers)}]" if r.layers else "") + \
              f": live {r.total_bytes:,} B (transient {r.live_bytes:,} B, allocated {r.allocated_bytes:,} B)"
        el.append(f'<rect x="{x(r.index):.1f}" y="{_T}" width="{pw / n:.2f}" height="{ph}" fill="transparent">'
                  f"<title>{escape(tip)}</title></rect>")
    # axes
    el.append(f'<line x1="{_L}" y1="{_T + ph}" x2="{_L + pw}" y2="{_T + ph}" stroke="#000"/>')
    el.append(f'<line x1="{_L}" y1="{_T}" x2="{_L}" y2="{_T + ph}" stroke="#000"/>')
    xstep = max(1, _nice_step(n / 10))
    for i in range(0, n + 1, xstep):
        el.append(f'<text x="{x(i):.1f}" y="{_T + ph + 16}" text-anchor="middle">{i}</text>')
    el.append(f'<text x="{_L + pw / 2:.1f}" y="{_H - 10}" text-anchor="middle">dispatch (program order)</text>')
    # legend
    lx, ly = _L + pw + 16, _T + 8
    for k, (name, color, kind) in enumerate(legend):
        yy = ly + 20 * k
        if kind == "rect":
            el.append(f'<rect x="{lx}" y="{yy - 9}" width="14" height="10" fill="{color}"/>')
        else:
            dash = ' stroke-dasharray="4 3"' if kind == "dash" else ""
            el.append(f'<line x1="{lx}" y1="{yy - 4}" x2="{lx + 14}" y2="{yy - 4}" stroke="{color}"{dash}/>')
        el.append(f'<text x="{lx + 20}" y="{yy}">{escape(name)}</text>')
    el.append("</svg>")
    return "\n".join(el) + "\n"


def _nice_step(raw: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten at least `raw` (and at least 1)."""
    p = 1
    while True:
        for m in (1, 2, 5):
            if m * p >= raw:
                return m * p
        p *= 10
