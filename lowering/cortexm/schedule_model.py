"""Data model of a static schedule (see hal2c.py): memory objects, buffers, commands, I/O.

An :class:`Alloc` is one memory object: a function argument, a flash constant (``pool``) or an
arena allocation with a lifetime ``[start, end]`` on the interpreter's clock. :class:`Buf` is a
byte range of one. A :class:`Schedule` holds every function's commands (fill, copy, dispatch) in
program order, the constant pool bytes and the packed arena size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tinytrain.errors import CompileError

ALIGN = 64

# Every quoted string of a printed location; a file location's is followed by ":<line>".
_LOC_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(:\d+)?')


def loc_names(location) -> list:
    """The names in a printed MLIR location (`loc("blocks.3.depthwise")`, fused ones each once,
    in order), not file locations: the layers our passes name ops after."""
    names: list = []
    for n, line in _LOC_STRING.findall(str(location)):
        if not line and n not in names:
            names.append(n)
    return names


class Unsupported(CompileError):
    """The HAL program cannot be turned into a static schedule (stage ``cortex-m``); the message
    names the op, function or value and why."""

    def __init__(self, message: str, *, ir_text: str | None = None):
        super().__init__(message, stage="cortex-m", ir_text=ir_text)


def step_input_index(function: str, arguments: int, train: str, predict: str) -> int | None:
    """Which argument of ``function`` (of ``arguments``) is the step input: ``train(state...,
    input, label)``, ``predict(params..., input)``; None for another function."""
    if function == train and arguments >= 2:
        return arguments - 2
    if function == predict and arguments >= 1:
        return arguments - 1
    return None


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass(eq=False)
class Alloc:
    """One memory object: ``kind`` is ``arena``, ``pool`` (flash constant) or ``arg``."""

    kind: str
    size: int
    scope: str
    name: str = ""
    arg: int = -1
    data: bytes | None = None
    start: int = 0
    end: int | None = None
    persistent: bool = False
    offset: int = -1
    written_by_dispatch: bool = False
    content: bytearray | None = None
    #: the step input read in row bands (``input_stream.py``): its bytes live from the copy that
    #: brings them in to their own last read, not as one tensor
    streamed: bool = False


@dataclass(frozen=True)
class Buf:
    alloc: Alloc
    offset: int
    length: int


@dataclass
class View:
    buf: Buf
    shape: tuple
    dtype: str


@dataclass
class CommandBuffer:
    entries: list = field(default_factory=list)


@dataclass(frozen=True)
class Token:
    """Opaque host object (device, allocator, fence, executable, file)."""

    what: str
    payload: object = None


NULL = Token("null")
UNKNOWN = Token("unknown")


@dataclass
class Command:
    op: str                      # "fill" | "copy" | "dispatch"
    time: int
    refs: list                   # list[Buf]: fill target | copy src, dst | dispatch bindings
    length: int = 0
    pattern: int = 0
    pattern_length: int = 0
    export: str = ""
    workgroups: tuple = (1, 1, 1)
    constants: tuple = ()
    #: dispatch: bindings whose read-only tensors count only the bytes the kernel's loads take
    #: (``dispatch_memory``: the hull of each static ``dispatch.tensor.load``), not the whole
    #: tensor; set for the streamed input's readers (``input_stream.py``)
    precise: tuple = ()
    #: copy: brings bytes of the streamed step input in (``TT_CMD_READ_INPUT``: from the caller's
    #: buffer or its input reader)
    stream_read: bool = False
    #: dispatch: the layers this command computes, from its location in the HAL program. IREE
    #: runs one kernel for every dispatch with the same code, so the kernel's own source names
    #: only the layers of one of them (e.g. a gradient reduction shared by blocks 9-13)
    layers: tuple = ()


@dataclass
class IODesc:
    shape: tuple
    dtype: str
    length: int
    buf: Buf | None = None       # outputs: where the result lives
    tied_input: int = -1         # outputs: index of the argument it is written into


@dataclass
class Function:
    name: str
    inputs: list
    outputs: list
    commands: list


@dataclass
class Schedule:
    library: str
    functions: list              # list[Function]; "__init" first when it has commands
    pool: bytes
    arena_size: int
    persistent_size: int
    allocs: list
    #: step inputs placed inside the transient arena or not (``input_overlay.place_inputs``):
    #: name ("input", "label") -> :class:`input_overlay.Placement`
    placements: dict = field(default_factory=dict)
    #: function -> :class:`replan.Replan` (our placement of its transient tensors, or why not)
    replans: dict = field(default_factory=dict)

    def transient_top(self, name: str) -> int:
        """The end of function ``name``'s transient tensors in IREE's layout (aligned): where a
        pass that adds tensors IREE's layout has no place for puts them."""
        return max((a.offset + _align(a.size) for a in self.allocs if a.kind == "arena" and not a.persistent
                    and a.scope == name), default=self.persistent_size)

    def function(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def describe(self) -> str:
        """A line-oriented text view of the schedule (memory objects, then every function's
        commands with their byte ranges), stable for golden tests and review diffs."""
        lines = [f"library {self.library}",
                 f"arena {self.arena_size} B (persistent {self.persistent_size} B), pool {len(self.pool)} B"]
        names = {id(a): a.name or f"{a.kind}{i}" for i, a in enumerate(self.allocs)}
        for a in self.allocs:
            life = "persistent" if a.persistent else f"live [{a.start}, {a.end}]"
            lines.append(f"  {a.kind} {names[id(a)]} @{a.scope}: offset {a.offset} size {a.size} {life}")

        def ref(b: Buf) -> str:
            al = b.alloc
            where = f"arg{al.arg}" if al.kind == "arg" else f"{al.kind}:{names[id(al)]}"
            return f"{where}[{b.offset}, +{b.length})"

        def io(d: IODesc) -> str:
            tied = f" tied to arg{d.tied_input}" if d.tied_input >= 0 else ""
            at = f" at {ref(d.buf)}" if d.buf is not None else ""
            return f"{d.dtype}{list(d.shape)} {d.length} B{at}{tied}"

        for f in self.functions:
            lines.append(f"function @{f.name}")
            lines += [f"  in  {io(d)}" for d in f.inputs]
            lines += [f"  out {io(d)}" for d in f.outputs]
            for c in f.commands:
                refs = ", ".join(ref(r) for r in c.refs)
                if c.op == "dispatch":
                    lines.append(f"  t{c.time} dispatch {c.export} workgroups {list(c.workgroups)} "
                                 f"constants {list(c.constants)} bindings {refs}")
                elif c.op == "fill":
                    lines.append(f"  t{c.time} fill {refs} pattern 0x{c.pattern & 0xFFFFFFFF:x} "
                                 f"({c.pattern_length} B)")
                else:
                    kind = "read-input" if c.stream_read else "copy"
                    lines.append(f"  t{c.time} {kind} {refs} ({c.length} B)")
        return "\n".join(lines) + "\n"

    @property
    def exports(self) -> list:
        names = []
        for f in self.functions:
            for c in f.commands:
                if c.op == "dispatch" and c.export not in names:
                    names.append(c.export)
        return names


_DTYPE_SIZE = {"f32": 4, "i32": 4, "f16": 2, "bf16": 2, "i16": 2, "i8": 1, "ui8": 1, "i1": 1, "f64": 8,
               "i64": 8, "si8": 1, "si32": 4, "ui32": 4}


def _dtype_size(dtype: str) -> int:
    if dtype not in _DTYPE_SIZE:
        raise Unsupported(f"element type {dtype} not supported on the device")
    return _DTYPE_SIZE[dtype]
