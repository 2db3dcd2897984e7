"""Looking up the functions of a tinytrain module and their argument attributes, the byte size of
a tensor value, and IREE's `util.optimization_barrier` (shared by the passes, the lowering, the
compiler driver and the numpy graph evaluator)."""

from __future__ import annotations

from torch_mlir import ir
from torch_mlir.dialects import func

__all__ = ["find_func", "arg_attrs", "tensor_bytes", "layer_name", "optimization_barrier"]


def find_func(module, name: str) -> func.FuncOp | None:
    """The `func.func @name` of `module` (an `ir.Module` or its operation), or None."""
    body = module.body if isinstance(module, ir.Module) else module.regions[0].blocks[0]
    for op in body.operations:
        if op.operation.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == name:
            return op.opview
    return None


def arg_attrs(fn) -> list[dict[str, ir.Attribute]]:
    """The argument attributes of `fn`, one dict (name -> attribute) per argument."""
    n = len(fn.regions[0].blocks[0].arguments)
    if "arg_attrs" not in fn.attributes:
        return [{} for _ in range(n)]
    out = []
    for d in ir.ArrayAttr(fn.attributes["arg_attrs"]):
        d = ir.DictAttr(d)
        out.append({d[j].name: d[j].attr for j in range(len(d))})
    return out


def tensor_bytes(v: ir.Value) -> int:
    """Bytes of the ranked tensor value `v` (sub-byte elements counted as one byte each)."""
    t = ir.RankedTensorType(v.type)
    n = 1
    for d in t.shape:
        n *= d
    return n * max(1, t.element_type.width // 8)


def layer_name(op) -> str:
    """The layer an op came from: the name of its location (torch-mlir's importer names each op
    after its module, e.g. `features.3 (InvertedResidual)`), looked for through call sites (the
    callee) and fused locations (the first named part); the location's text when it has none."""

    def named(loc):
        if hasattr(loc, "name_str"):
            return loc.name_str
        if hasattr(loc, "callee"):
            return named(loc.callee)
        for part in getattr(loc, "locations", ()):
            found = named(part)
            if found is not None:
                return found
        return None

    loc = op.location
    found = named(loc)
    return str(loc) if found is None else found


def optimization_barrier(values: list[ir.Value]) -> list[ir.Value]:
    """`util.optimization_barrier` (IREE) at the current insertion point: its results are its
    operands, but IREE cannot look through it, so whatever reads a result waits for every operand."""
    op = ir.Operation.create("util.optimization_barrier", results=[v.type for v in values], operands=values)
    return list(op.results)
