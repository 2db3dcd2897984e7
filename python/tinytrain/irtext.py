"""Small helpers shared by the importer, the passes and the lowering.

Every stage of tinytrain reads a verified `torch_mlir.ir.Module`, walks it with the MLIR Python
bindings, and writes its output as MLIR text in the generic op form, which is then parsed back
in a context where the `tinytrain` dialect is loaded. Parsing runs every op verifier, so a
stage that produces a malformed op fails at once and names it.
"""

from __future__ import annotations

import numpy as np
from torch_mlir import ir

from tinytrain.dialects import TinyTrain
from tinytrain.errors import CompileError

__all__ = [
    "new_context",
    "parse_module",
    "tensor_type",
    "shape_of",
    "Emitter",
    "func_ops",
    "attr_dict",
    "dense_i64",
    "resource_blob",
    "FuncArg",
    "func_args",
]


def new_context() -> ir.Context:
    """A context with the upstream dialects and `tinytrain` loaded."""
    ctx = ir.Context()
    with ctx, ir.Location.unknown():
        TinyTrain.load()
    return ctx


def parse_module(text: str, ctx: ir.Context, stage: str) -> ir.Module:
    """Parse (and verify) `text`; on failure raise a CompileError naming the stage."""
    with ctx:
        try:
            return ir.Module.parse(text)
        except ir.MLIRError as e:
            raise CompileError(f"{stage} produced invalid IR:\n{e}", stage=stage, ir_text=text) from None


def tensor_type(shape, elt: str = "f32") -> str:
    if len(shape) == 0:
        return f"tensor<{elt}>"
    return "tensor<" + "x".join(str(int(d)) for d in shape) + f"x{elt}>"


def shape_of(value) -> list[int]:
    return list(ir.RankedTensorType(value.type).shape)


def dense_i64(values) -> str:
    return "array<i64: " + ", ".join(str(int(v)) for v in values) + ">"


def attr_dict(op) -> dict[str, str]:
    """The op's attributes as `name -> printed attribute`."""
    attrs = op.attributes
    return {attrs[i].name: str(attrs[i].attr) for i in range(len(attrs))}


def func_ops(module: ir.Module) -> dict[str, object]:
    """`{symbol name: func.func op}` of a module."""
    out = {}
    for op in module.body.operations:
        if op.operation.name == "func.func":
            out[ir.StringAttr(op.attributes["sym_name"]).value] = op
    return out


def resource_blob(array: np.ndarray) -> str:
    """Hex body of a `dialect_resources` blob: 4-byte little-endian alignment, then the data."""
    data = np.ascontiguousarray(array).tobytes()
    return "0x" + (4).to_bytes(4, "little").hex().upper() + data.hex().upper()


class Emitter:
    """Accumulates the body of one function in generic MLIR syntax.

    Values are named `%v<N>`; `types` remembers each value's type text so callers never
    re-derive it.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.types: dict[str, str] = {}
        self._n = 0

    def fresh(self, hint: str = "v") -> str:
        self._n += 1
        return f"%{hint}{self._n}"

    def declare(self, name: str, type_text: str) -> str:
        self.types[name] = type_text
        return name

    def op(self, name: str, operands, result_type: str | None, attrs: dict[str, str] | None = None,
           loc: str | None = None, hint: str = "v") -> str | None:
        """Emit `%r = "name"(operands) {attrs} : (types) -> result_type loc`; returns `%r`."""
        operand_types = ", ".join(self.types[o] for o in operands)
        attr_text = ""
        if attrs:
            attr_text = " {" + ", ".join(f"{k} = {v}" for k, v in attrs.items()) + "}"
        res = self.fresh(hint) if result_type is not None else None
        lhs = f"{res} = " if res else ""
        rtype = result_type if result_type is not None else "()"
        line = f'{lhs}"{name}"({", ".join(operands)}){attr_text} : ({operand_types}) -> {rtype}'
        if loc:
            line += f" {loc}"
        self.lines.append(line)
        if res:
            self.types[res] = result_type
        return res

    def copy(self, op, names: dict) -> str:
        """Re-emit `op` (one result) with operands renamed through `names`; records its result."""
        operands = [names[v] for v in op.operands]
        res = self.op(op.name, operands, str(op.results[0].type), attr_dict(op) or None,
                      loc=str(op.location))
        names[op.results[0]] = res
        return res

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def function(self, name: str, args: list[tuple[str, str, str]], results: list[str],
                 visibility: str = "") -> str:
        """Render `func.func @name(args) -> results { body; return results }`.

        `args` are `(ssa name, type text, arg-attribute text or "")`.
        """
        arg_text = ", ".join(f"{n}: {t}{(' ' + a) if a else ''}" for n, t, a in args)
        res_types = [self.types[r] for r in results]
        res_text = res_types[0] if len(res_types) == 1 else "(" + ", ".join(res_types) + ")"
        vis = f"{visibility} " if visibility else ""
        body = "\n".join("    " + l for l in self.lines)
        ret = f"    func.return {', '.join(results)} : {', '.join(res_types)}"
        return f"  func.func {vis}@{name}({arg_text}) -> {res_text} {{\n{body}\n{ret}\n  }}"


class FuncArg:
    """One argument of a function: its block value, type text and attributes."""

    def __init__(self, value, type_text: str, attrs: dict[str, str]):
        self.value = value
        self.type = type_text
        self.attrs = attrs

    @property
    def param(self) -> str | None:
        """The `tinytrain.param` name, or None for a data input."""
        a = self.attrs.get("tinytrain.param")
        return a.strip('"') if a else None

    def attr_text(self, extra: dict[str, str] | None = None) -> str:
        attrs = dict(self.attrs)
        attrs.update(extra or {})
        if not attrs:
            return ""
        return "{" + ", ".join(k if v == "unit" else f"{k} = {v}" for k, v in attrs.items()) + "}"


def func_args(func) -> list[FuncArg]:
    """The arguments of a `func.func` with their attribute dictionaries."""
    block = func.regions[0].blocks[0]
    arg_attrs = func.attributes["arg_attrs"] if "arg_attrs" in func.attributes else None
    out = []
    for i, v in enumerate(block.arguments):
        attrs: dict[str, str] = {}
        if arg_attrs is not None:
            d = ir.DictAttr(ir.ArrayAttr(arg_attrs)[i])
            for j in range(len(d)):
                na = d[j]
                text = str(na.attr)
                attrs[na.name] = "unit" if text == "unit" else text
        out.append(FuncArg(v, str(v.type), attrs))
    return out
