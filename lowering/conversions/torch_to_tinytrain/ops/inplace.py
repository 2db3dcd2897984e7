"""In-place variants (`relu_`, `hardtanh_`, `dropout_`, `add_`, ...): converted as their
out-of-place form, which computes the same values when nothing reads the modified tensor again
except through the op's result (`ReLU(inplace=True)`, `out += identity`). The FX graph says
whether that holds; when it does not, the import stops and says so.
"""

from __future__ import annotations

from collections.abc import Callable

from ..conversion import Conversion

#: ATen operators whose result is the input tensor itself or a view of it (aliases): an in-place
#: change of one is seen through the others.
_ALIASING = frozenset({
    "aten.view", "aten.reshape", "aten.flatten", "aten.detach", "aten.contiguous", "aten.dropout",
    "aten.alias", "aten.squeeze", "aten.unsqueeze", "aten.permute", "aten.transpose", "aten.t",
})


def _packet(node) -> str:
    return str(node.target).rsplit(".", 1)[0] if node.op == "call_function" else ""


def _is_alias_edge(node) -> bool:
    packet = _packet(node)
    return packet in _ALIASING or packet.endswith("_")  # an in-place op returns its input


def _aliases(start, mutating_node) -> list:
    """FX nodes that share storage with `start` (through view / identity / in-place ops), not
    counting `mutating_node` and what is computed from its result."""
    seen, todo = {start}, [start]
    while todo:
        n = todo.pop()
        linked = [u for u in n.users if _is_alias_edge(u) and u.args and u.args[0] is n]
        if _is_alias_edge(n) and n.args and hasattr(n.args[0], "users"):
            linked.append(n.args[0])
        for m in linked:
            if m is not mutating_node and m not in seen:
                seen.add(m)
                todo.append(m)
    return list(seen)


def check_in_place(cv: Conversion, op) -> None:
    """Refuse `op` (an in-place ATen op) if the tensor it modifies is read after it other than
    through its result, or is the model input or a parameter."""
    info = cv.info(op)
    if info is None:
        cv.fail(op, f"in-place '{op.name}' needs the FX graph to check that it can be converted")
    node = info.node
    order = {n: i for i, n in enumerate(node.graph.nodes)}
    fix = ("use the out-of-place form instead (e.g. `x = torch.relu(x)`, `x = x + y`, or "
           "`inplace=False`)")
    for alias in _aliases(node.args[0], node):
        if alias.op == "placeholder":
            cv.fail(op, f"in-place '{node.target}' modifies the model input or a parameter "
                        f"('{alias.name}'), which tinytrain does not support; {fix}")
        later = sorted((u for u in alias.users if u is not node and order[u] > order[node]), key=order.get)
        if later:
            cv.fail(op, f"in-place '{node.target}' modifies a tensor that '{later[0].name}' reads "
                        "afterwards; tinytrain converts in-place ops to their out-of-place form, "
                        f"which differs when the modified tensor is read again; {fix}")


def in_place(functional: Callable[[Conversion, object], None]) -> Callable[[Conversion, object], None]:
    """The handler of the in-place variant of `functional`'s operator (same operands)."""

    def handler(cv: Conversion, op) -> None:
        check_in_place(cv, op)
        functional(cv, op)

    handler.__name__ = f"{functional.__name__}_"
    handler.__doc__ = f"In-place variant of `{functional.__name__}` (checked, then converted as it)."
    return handler
