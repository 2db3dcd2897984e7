"""Cortex-M backend: linalg-on-tensors text -> IREE static kernels + one C schedule module.

One ``iree-compile --compile-to=hal`` invocation per target writes both the kernel object
(``--iree-llvmcpu-link-static``) and the HAL-phase host program; the schedule is extracted from
that same program (hal2c.py), the library ABI is checked (abi_check.py) and the C tables are
emitted (schedule_c.py). The step's input is placed inside the transient arena where the
commands before its last read leave room (input_overlay.py). The SRAM plan (arena + trained
parameters + I/O buffers outside the arena + stack reserve) is checked against the budget here,
at compile time. The stack reserve is the static worst-case stack of the linked firmware
(``stack_bound.py``) plus a margin, in whole KB: a Cortex-M module checked against a budget is
first linked once with the smallest reserve (``firmware.compute_stack``, a few seconds) and the
bound computed from that ELF; the fixed :data:`STACK_RESERVE` is used only when the code has no
static bound, and the contributors say so.

Entry point: :func:`build_static_module`. Every error it raises for a program or budget problem
is a :class:`tinytrain.errors.CompileError`: :class:`hal2c.Unsupported`,
:class:`abi_check.AbiMismatch` (stage ``cortex-m``), :class:`SramBudgetError` (``memory-plan``),
and iree-compile failures (``iree-compile``; a crash is an
:class:`~tinytrain.lowering.iree_tools.InternalCompilerError` with a reproducer file).
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import shutil
import tarfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tinytrain.errors import CompileError
from tinytrain.lowering.compile_cache import cached_output
from tinytrain.lowering.iree_tools import (COMPILER_DIST, InternalCompilerError, iree_tool, run_iree_compile,
                                           verify_flag)

from . import abi_check, dispatch_memory, hal2c, input_overlay, input_stream, realign, replan, schedule_c, shared_kernels
from .schedule_model import Unsupported, _align, step_input_index

# CPU features are explicit: LLVM has no cpu->features mapping for these targets in IREE.
TARGETS = {
    "cortex-m4": {
        "flags": ["--iree-llvmcpu-target-triple=armv7em-pc-none-eabihf",
                  "--iree-llvmcpu-target-cpu=cortex-m4",
                  "--iree-llvmcpu-target-cpu-features=+armv7e-m,+dsp,+thumb-mode,+vfp4d16sp,-d32,-fp64",
                  "--iree-llvmcpu-target-float-abi=hard"],
        "board": "mps2-an386",
    },
    "cortex-m7": {
        "flags": ["--iree-llvmcpu-target-triple=armv7em-pc-none-eabihf",
                  "--iree-llvmcpu-target-cpu=cortex-m7",
                  "--iree-llvmcpu-target-cpu-features=+armv7e-m,+dsp,+thumb-mode,+fp-armv8d16,-d32",
                  "--iree-llvmcpu-target-float-abi=hard"],
        "board": "mps2-an500",
    },
    # The same runtime and schedule natively on this machine (tests under ASan/UBSan).
    "host": {
        "flags": ["--iree-llvmcpu-target-triple=x86_64-unknown-linux-gnu",
                  "--iree-llvmcpu-target-cpu=generic"],
        "board": "host",
    },
}

STACK_RESERVE = 8 * 1024          # fixed reserve when the firmware's stack has no static bound
HARNESS_STATIC = 128              # runtime + harness .data/.bss besides arena and I/O buffers
#: expected peak stack of a module whose firmware was not analysed (the peak plan); an analysed
#: one uses its deepest call chain (``StackBound.thread_depth``), which every step executes
STACK_ESTIMATE = 1536


class SramBudgetError(CompileError):
    """The planned SRAM exceeds the budget; the message names needed/available and contributors."""

    def __init__(self, needed: int, available: int, contributors: list):
        self.needed, self.available, self.contributors = needed, available, contributors
        top = "; ".join(f"{name}: {size} B" for name, size in contributors[:6])
        super().__init__(f"SRAM budget exceeded: needs {needed} bytes, {available} available "
                         f"(over by {needed - available}). Biggest contributors: {top}",
                         stage="memory-plan")


@dataclass
class StaticModule:
    """Artifacts and numbers of one compiled model for one Cortex-M target."""

    target: str
    prefix: str
    out_dir: Path
    object_path: Path
    c_path: Path
    h_path: Path
    hal_path: Path
    library: str
    arena_bytes: int
    state_bytes: int
    pool_bytes: int
    sizes: dict
    functions: dict               # name -> {"inputs": [...], "outputs": [...]} descriptors
    schedule: hal2c.Schedule = field(repr=False)
    exports: list = field(repr=False, default_factory=list)
    #: IREE's executable sources, one ``.mlir`` per dispatch (read by the memory report:
    #: ``lowering/cortexm/dispatch_memory.py``)
    sources_dir: Path | None = None
    #: the firmware's worst-case stack (``stack_bound.StackBound``), set by
    #: ``firmware.compute_stack``; None before, or when there is no static bound (``stack_error``)
    stack: object = field(repr=False, default=None)
    stack_error: str | None = None
    #: ``optional_flags`` of :func:`build_static_module` that iree-compile failed with -> why
    #: (the module was built without them)
    dropped_flags: dict = field(default_factory=dict)

    @property
    def stack_reserve(self) -> int:
        """Bytes reserved for the stack: the computed bound + margin in whole KB, else the fixed
        :data:`STACK_RESERVE` (firmware not analysed yet, or no static bound: ``stack_error``)."""
        return self.stack.reserve if self.stack is not None else STACK_RESERVE

    @property
    def stack_expected(self) -> int:
        """The stack the step is expected to use (the peak plan): the deepest call chain of the
        analysed firmware, else :data:`STACK_ESTIMATE`."""
        return self.stack.thread_depth if self.stack is not None else STACK_ESTIMATE

    def stack_contributor(self, stack: int) -> str:
        """The budget's name for the stack reserve: computed, fixed (and why) or given."""
        if self.stack is not None and stack == self.stack.reserve:
            return (f"stack reserve (computed: worst-case stack {self.stack.bound} B of the linked "
                    "firmware + margin, whole KB)")
        if self.stack_error is not None and stack == STACK_RESERVE:
            return f"stack reserve (FIXED 8 KB: the firmware's stack has no static bound: {self.stack_error})"
        if self.stack is None and stack == STACK_RESERVE:
            return "stack reserve (fixed 8 KB: the firmware was not analysed)"
        return "stack reserve (given)"

    @property
    def input_placement(self):
        """Where the step's input lives (:class:`input_overlay.Placement`), or None when the
        module was built without placing it (its own buffer)."""
        return self.schedule.placements.get("input")

    @property
    def input_stream(self):
        """How the step input is streamed (:class:`input_stream.Stream`), or None when the module
        was built without ``stream_input``."""
        return self.schedule.placements.get("input_stream")

    @property
    def input_streamed(self) -> bool:
        s = self.input_stream
        return s is not None and s.streamed

    @property
    def io_buffers(self) -> dict:
        """Harness I/O buffers outside the arena -> bytes (64-byte aligned): the input (unless
        it lives inside the transient arena, or is streamed: the harness then reads each range a
        kernel loads from the record file into the arena), one label, one predict output."""
        placed = self.input_placement
        return {k: _align(self.sizes[k]) for k in ("input", "label", "output")
                if self.sizes[k] and not (k == "input" and (self.input_streamed or
                                                            (placed is not None and placed.in_arena)))}

    @property
    def io_bytes(self) -> int:
        """Bytes of the harness I/O buffers outside the arena (:attr:`io_buffers`)."""
        return sum(self.io_buffers.values())

    def sram_contributors(self, stack: int | None = None) -> list:
        """(name, bytes) of everything the firmware keeps in SRAM, largest first; ``stack``:
        the reserve (default :attr:`stack_reserve`)."""
        stack = self.stack_reserve if stack is None else stack
        items = []
        for slot in schedule_c.plan_state(self.schedule, "train_step"):
            items.append((f"trained parameter arg{slot.index} {list(slot.shape)}", _align(slot.length)))
        for al in self.schedule.allocs:
            if al.kind == "arena" and al.persistent:
                items.append((f"persistent buffer {al.name}", _align(al.size)))
        transient = self.arena_bytes - self.state_bytes - self.schedule.persistent_size
        placed = self.input_placement
        if transient:
            biggest = sorted((a for a in self.schedule.allocs if a.kind == "arena" and not a.persistent
                              and not a.name.endswith("_overlay")), key=lambda a: -a.size)[:3]
            detail = ", ".join(f"{a.name}@{a.scope} {a.size} B" for a in biggest)
            ours = [f"@{r.function} {r.bytes} B (IREE's {r.iree_bytes} B)"
                    for r in self.schedule.replans.values() if not r.reason]
            if ours:
                detail += "; laid out by tinytrain: " + ", ".join(ours)
            if placed is not None and placed.in_arena:
                detail += f"; holds the {placed.describe()}"
            if self.input_streamed:
                detail += (f"; holds the {self.input_stream.describe()} (read from the caller's "
                           "buffer or its input reader; a caller's own buffer is not counted)")
            items.append((f"transient working set ({detail})", transient))
        for k, size in self.io_buffers.items():
            why = f" (outside the arena: {placed.reason})" if k == "input" and placed is not None else ""
            items.append((f"{k} buffer{why}", size))
        items.append((self.stack_contributor(stack), stack))
        items.append(("runtime + harness static data", HARNESS_STATIC))
        return sorted(items, key=lambda x: -x[1])

    def planned_sram(self, stack: int | None = None) -> int:
        """Bytes of SRAM the firmware needs: arena + I/O buffers outside it + harness static +
        stack reserve (default :attr:`stack_reserve`)."""
        stack = self.stack_reserve if stack is None else stack
        return self.arena_bytes + self.io_bytes + HARNESS_STATIC + stack

    def planned_peak(self) -> int:
        """Expected run-time peak (static data + expected stack), comparable to `MEM sram_peak`."""
        return self.planned_sram(self.stack_expected)

    def check_sram(self, sram_bytes: int, stack: int | None = None) -> None:
        """:class:`SramBudgetError` when :meth:`planned_sram` exceeds ``sram_bytes``."""
        need = self.planned_sram(stack)
        if need > sram_bytes:
            raise SramBudgetError(need, sram_bytes, self.sram_contributors(stack))


def _check_budget(module: StaticModule, sram_bytes: int) -> None:
    """The budget check of a fresh module, with the computed stack reserve on a Cortex-M."""
    if module.target != "host":
        from .firmware import compute_stack

        compute_stack(module)
    module.check_sram(sram_bytes)


def compile_flags(target: str, object_path: Path, dump_dir: Path, sources_dir: Path) -> list:
    """iree-compile's flags for ``target``. Besides the kernels and the HAL program, IREE dumps
    each executable's source (``sources_dir``: its bindings, sub-range offsets and the layers'
    locations, ``--mlir-print-debuginfo``) for the memory report; locations change no code."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {sorted(TARGETS)}")
    return ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
            *TARGETS[target]["flags"], "--iree-llvmcpu-link-embedded=false",
            "--iree-llvmcpu-link-static", f"--iree-llvmcpu-static-library-output-path={object_path}",
            "--iree-llvmcpu-stack-allocation-limit=4096",
            # One binding per tensor, its offset passed by the host program (our C schedule), so
            # that `replan` can lay the transient tensors out again (not baked into the kernels).
            "--iree-scheduling-optimize-bindings=false",
            f"--iree-hal-dump-executable-intermediates-to={dump_dir}",
            f"--iree-hal-dump-executable-sources-to={sources_dir}", "--mlir-print-debuginfo",
            "--compile-to=hal"]


def _files(prefix: str) -> tuple[str, ...]:
    """A module folder's iree-compile files (names relative to it): the input, then what
    iree-compile writes: the kernel object and its header, the HAL program, the dumped LLVM IR
    (``exe/``) and the executables' sources."""
    return (f"{prefix}.linalg.mlir", f"{prefix}_lib.o", f"{prefix}_lib.h", f"{prefix}.hal.mlir", "exe", "sources")


#: The archive member with the optional flags a cached compile had to drop.
_DROPPED = ".tinytrain-dropped-flags.json"


def _clear(out: Path, names) -> None:
    for n in names:
        p = out / n
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _pack(out: Path, names, dropped: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for n in names:
            if (out / n).exists():
                tar.add(out / n, arcname=n)
        meta = json.dumps({"dropped_flags": dropped}).encode()
        info = tarfile.TarInfo(_DROPPED)
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return buf.getvalue()


def _unpack(data: bytes, out: Path) -> dict:
    """Write the packed outputs into `out` (fresh files: a firmware build in the same folder sees
    them as new) and return the dropped flags. A damaged archive raises ValueError."""
    dropped = None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                rel = Path(m.name)
                if rel.is_absolute() or ".." in rel.parts:
                    raise ValueError(f"member {m.name!r} outside the module folder")
                if m.name == _DROPPED:
                    dropped = json.loads(tar.extractfile(m).read())["dropped_flags"]
                elif m.isdir():
                    (out / rel).mkdir(parents=True, exist_ok=True)
                elif m.isfile():
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    (out / rel).write_bytes(tar.extractfile(m).read())
    except (tarfile.TarError, EOFError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(str(e)) from None
    if dropped is None:
        raise ValueError(f"no {_DROPPED}")
    return dropped


def _compile_static(text: str, out: Path, prefix: str, target: str, extra_flags: tuple,
                    optional_flags: tuple) -> dict:
    """Run iree-compile for ``target`` in ``out`` on ``<prefix>.linalg.mlir`` (written there);
    returns the optional flags it had to drop, with iree-compile's reason.

    The paths in the command are relative to ``out``, so the outputs do not depend on the folder
    (byte for byte) and a compile that ran before (same text, target, prefix, flags and pinned
    iree-compile) is read from the compile cache (``compile_cache.py``, kind ``static.tar``); a
    damaged entry, like any broken cache, costs only the compile (and is replaced)."""
    src, obj, _, hal, dump, sources = map(Path, _files(prefix))
    names = _files(prefix)[1:]
    flags = [*compile_flags(target, obj, dump, sources), *extra_flags, verify_flag()]
    what = f"the {target} static library"
    built = []

    def build() -> bytes:
        _clear(out, names)
        dropped = {}
        try:
            run_iree_compile(src, [*flags, *optional_flags], hal, what=what, repro_dir=out, cwd=out)
        except CompileError as e:
            if not optional_flags or isinstance(e, InternalCompilerError):
                raise
            _clear(out, names)
            run_iree_compile(src, flags, hal, what=what, repro_dir=out, cwd=out)
            lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]   # (after the header)
            why = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else str(e))
            dropped = {f: why for f in optional_flags}
        built.append(dropped)
        return _pack(out, names, dropped)

    unpacked = []

    def accept(data: bytes) -> bool:
        _clear(out, names)
        try:
            unpacked.append(_unpack(data, out))
        except ValueError:
            return False
        return True

    cached_output("static.tar", iree_tool("iree-compile"), importlib.metadata.version(COMPILER_DIST),
                  [f"target={target}", f"source={src}", *flags, "optional:", *optional_flags], text, build,
                  accept=accept)
    return built[0] if built else unpacked[0]


def _input_args(schedule, train: str, predict: str) -> dict:
    """{function: index of its input argument}: ``train(state..., input, label)`` and
    ``predict(params..., input)``."""
    out = {}
    for fn in schedule.functions:
        index = step_input_index(fn.name, len(fn.inputs), train, predict)
        if index is not None:
            out[fn.name] = index
    return out


def build_static_module(linalg_text: str, out_dir, *, target: str = "cortex-m4",
                        prefix: str = "model", state_init: list | None = None,
                        sram_bytes: int | None = 256 * 1024, train: str = "train_step",
                        predict: str = "predict", extra_flags: tuple = (),
                        overlay_input: bool = True, replan_memory: bool = True,
                        stream_input: bool = False, optional_flags: tuple = (),
                        share_kernels: bool = True) -> StaticModule:
    """Compile ``linalg_text`` for ``target`` into kernels + one C schedule module.

    ``state_init``: initial trained parameters (numpy, argument order) stored in flash and
    copied to the arena by ``tt_model_init``. ``sram_bytes``: budget checked at compile time
    (:class:`SramBudgetError`; on a Cortex-M the firmware is linked once to compute the stack
    reserve, ``firmware.compute_stack``), None to skip. ``extra_flags``: more iree-compile flags.
    ``overlay_input``: place the step's input inside the transient arena where the commands
    before its last read leave a window (``input_overlay.py``); False keeps its own buffer.
    ``replan_memory``: lay each function's transient tensors out ourselves (``replan.py``); False
    keeps IREE's layout. ``stream_input``: each command reading the step input gets its own copy
    of the bytes its kernel loads, brought into the arena just before it and dead after it
    (``input_stream.py``; the caller passes its buffer or sets an input reader); when it cannot be
    streamed (the reason is in ``schedule.placements["input_stream"]``) the input is placed as
    ``overlay_input`` says. ``optional_flags``: iree-compile flags tried first; when iree-compile
    fails with them and succeeds without, the module is built without them, with a warning, and
    ``dropped_flags`` says why. ``share_kernels``: same-shaped channel slices taken at different
    offsets read their offsets as push constants, so IREE compiles one kernel for them
    (``shared_kernels.py``; less flash). Raises :class:`hal2c.Unsupported` when the program
    cannot be scheduled statically, :class:`abi_check.AbiMismatch` on an ABI change and
    :class:`~tinytrain.errors.CompileError` when iree-compile fails (reproducer in ``out_dir``).
    """
    if not prefix.isidentifier():
        raise ValueError(f"prefix {prefix!r} must be a C identifier")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src, obj, _, hal, dump, sources = (out / n for n in _files(prefix))
    if share_kernels:
        linalg_text, _ = shared_kernels.share_slice_kernels(linalg_text, train, predict)
    src.write_text(linalg_text)
    dropped = _compile_static(linalg_text, out, prefix, target, tuple(extra_flags), tuple(optional_flags))
    if dropped:
        warnings.warn(f"iree-compile failed with {' '.join(optional_flags)}; the {target} static library is "
                      f"built without {'it' if len(optional_flags) == 1 else 'them'} (same results, more "
                      f"SRAM). iree-compile said: {next(iter(dropped.values()))}", stacklevel=2)
    hal_text = hal.read_text()
    public = hal2c.public_functions(hal_text)
    functions = [f for f in (train, predict) if f in public]
    if not functions:
        raise Unsupported(f"the module has neither @{train} nor @{predict} (public functions: "
                          f"{', '.join('@' + f for f in public) or 'none'})")
    schedule = hal2c.extract_schedule(hal_text, functions)
    exports = abi_check.check_library(dump, schedule.library)
    uses = _input_args(schedule, train, predict)
    try:   # the kernels' sources, read once: the layout, the input overlay and the alignments
        kernel_sources = dispatch_memory.read_sources(sources)
    except Unsupported:
        kernel_sources = None   # the passes below say why they keep IREE's layout / the input buffer
    streamed = stream_input and input_stream.stream_input(schedule, kernel_sources, uses).streamed
    place = overlay_input and not streamed   # a streamed input is not placed whole
    if kernel_sources is not None:   # (without them every binding must be aligned: emit checks)
        realign.realign_bindings(schedule, kernel_sources)
    if replan_memory:
        state = schedule_c.state_bytes(schedule_c.plan_state(schedule, train))
        schedule = replan.replan_and_place(schedule, sources, uses if place else {}, kernel_sources, state)
    elif place:
        input_overlay.place_step_input(schedule, sources, uses, kernel_sources)
    # bindings IREE may pass unaligned (its kernel declares no alignment for them); unknown
    # sources: every binding must be 64-byte aligned (checked by emit)
    unaligned = dispatch_memory.unaligned_bindings(kernel_sources) if kernel_sources is not None else {}
    c_text, h_text, sizes = schedule_c.emit(schedule, exports, prefix, train=train,
                                            predict=predict, state_init=state_init, unaligned=unaligned)
    c_path, h_path = out / f"{prefix}_model.c", out / f"{prefix}_model.h"
    c_path.write_text(c_text)
    h_path.write_text(h_text)
    descr = {}
    for fn in schedule.functions:
        descr[fn.name] = {
            "inputs": [{"shape": list(d.shape), "dtype": d.dtype, "bytes": d.length} for d in fn.inputs],
            "outputs": [{"shape": list(d.shape), "dtype": d.dtype, "bytes": d.length,
                         "tied_input": d.tied_input} for d in fn.outputs]}
    module = StaticModule(target, prefix, out, obj, c_path, h_path, hal, schedule.library,
                          sizes["arena"], sizes["state"], sizes["pool"], sizes, descr, schedule,
                          exports, sources, dropped_flags=dropped)
    if sram_bytes is not None:
        _check_budget(module, sram_bytes)
    return module
