"""The trained state in SRAM, per update option (issue #8 point 2).

Read from `@train_step` after `autodiff` (tinytrain level): its trainable arguments (tagged
`tinytrain.trainable`) and momentum buffers (`tinytrain.momentum_buffer`). For each trained
parameter, the bytes it keeps in SRAM between steps under each way of updating an int8 graph:

- `writeback` (integer write-back, the paper's text): an int8 weight stays int8 (1 byte per
  value), an int32 bias int32 (4 bytes);
- `master` (fp32 master copies, the released engine): an int8 weight is an f32 master (4 bytes)
  plus the int8 view the int8 conv reads (1 byte, recomputed each step), so 5 bytes per value;
  biases stay int32;
- `momentum`: the f32 momentum buffer SGD with momentum adds (4 bytes per value, any dtype);
- fp32 parameters (an fp32 head, or a float model) take 4 bytes per value under both options.

`compiled` is what this program keeps: the option it was built with (a parameter of type i8 or
i32 = integer write-back, an f32 parameter feeding `tinytrain.quantize` = an fp32 master copy)
plus its momentum buffer when it has one. Sizes are exact element counts times element bytes,
without the runtime's 64-byte alignment of each state tensor.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir

from tinytrain.errors import CompileError
from tinytrain.irfuncs import find_func
from tinytrain.passes import ModulePass

__all__ = ["StateEntry", "StateReport", "trained_state_report", "CollectStateReport"]

_BYTES = {"i8": 1, "i32": 4, "f32": 4}


@dataclasses.dataclass(frozen=True)
class StateEntry:
    name: str
    kind: str  #: "int8 weight", "int32 bias", "fp32 master of an int8 weight", "fp32"
    shape: tuple
    elements: int
    writeback: int  #: bytes with integer write-back
    master: int  #: bytes with fp32 master copies (master + int8 view)
    momentum: int  #: bytes of its f32 momentum buffer
    compiled: int  #: bytes this program keeps for it (its option, plus its buffer if any)


@dataclasses.dataclass(frozen=True)
class StateReport:
    entries: tuple
    has_momentum: bool  #: the program was built with momentum buffers

    def totals(self) -> dict[str, int]:
        return {k: sum(getattr(e, k) for e in self.entries)
                for k in ("elements", "writeback", "master", "momentum", "compiled")}

    def to_json(self) -> dict:
        return {"has_momentum": self.has_momentum,
                "parameters": [dataclasses.asdict(e) | {"shape": list(e.shape)} for e in self.entries],
                "total": self.totals()}

    def table(self) -> str:
        """A text table: one row per trained parameter, then the totals."""
        head = ("parameter", "kind", "values", "int write-back B", "fp32 master B", "momentum B",
                "compiled B")
        rows = [(e.name, e.kind, str(e.elements), str(e.writeback), str(e.master), str(e.momentum),
                 str(e.compiled)) for e in self.entries]
        t = self.totals()
        rows.append(("total", "", str(t["elements"]), str(t["writeback"]), str(t["master"]),
                     str(t["momentum"]), str(t["compiled"])))
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(r, widths)))
        note = ("trained state in SRAM per update option (momentum buffers: "
                + ("compiled in" if self.has_momentum else "not compiled, momentum=0") + ")")
        return "\n".join([note, fmt(head), *[fmt(r) for r in rows]])


def _feeds_quantize(arg) -> bool:
    return any(use.owner.name == "tinytrain.quantize" for use in arg.uses)


def trained_state_report(module: ir.Operation) -> StateReport:
    """The report of the `@train_step` in `module` (after `autodiff`, before `to-linalg`)."""
    op = find_func(module, "train_step")
    if op is None:
        raise CompileError("state report: the module has no @train_step (run autodiff first)",
                           stage="state-report")
    args = op.regions[0].blocks[0].arguments
    attrs = [ir.DictAttr(d) for d in ir.ArrayAttr(op.attributes["arg_attrs"])]
    buffered = {ir.StringAttr(d["tinytrain.momentum_buffer"]).value for d in attrs
                if "tinytrain.momentum_buffer" in d}
    entries = []
    for a, d in zip(args, attrs):
        if "tinytrain.trainable" not in d:
            continue
        name = ir.StringAttr(d["tinytrain.param"]).value
        t = ir.RankedTensorType(a.type)
        n = 1
        for s in t.shape:
            n *= s
        elt = str(t.element_type)
        if elt == "i8" or (elt == "f32" and _feeds_quantize(a)):
            kind = "int8 weight" if elt == "i8" else "fp32 master of an int8 weight"
            writeback, master = n, 5 * n
        elif elt in _BYTES:
            kind = "int32 bias" if elt == "i32" else "fp32"
            writeback = master = _BYTES[elt] * n
        else:
            raise CompileError(f"state report: trained parameter '{name}' has unsupported type {t}",
                               stage="state-report")
        chosen = master if kind.startswith("fp32 master") else writeback
        mom = 4 * n
        entries.append(StateEntry(name, kind, tuple(t.shape), n, writeback, master, mom,
                                  chosen + (mom if name in buffered else 0)))
    return StateReport(tuple(entries), bool(buffered))


@dataclasses.dataclass(frozen=True)
class CollectStateReport(ModulePass):
    """The compile drivers' hook between `autodiff` and `to-linalg`: keeps the report in `sink`
    (not a pipeline pass: it changes nothing)."""

    argument: ClassVar[str] = ""
    sink: dict = dataclasses.field(default_factory=dict)

    def run(self, module: ir.Operation) -> None:
        self.sink["report"] = trained_state_report(module)

