"""`reorder-updates`: apply every parameter update as soon as its gradient exists (the paper's
operator reordering, Tiny Training Engine §2.6).

`autodiff` emits the updates after the whole backward pass, in parameter order. IREE keeps the
program order of dispatches and fuses each weight gradient with its update, so the gradient's
operands (the layer's saved input and the gradient of its output, fp32) stay live until the end of
the step: in MobileNetV2-w0.35's `49kb` scheme four 4x4x336 fp32 output gradients (86 KB) were
still live at the backward pass's peak, held for the updates of three sliced weights.

For each update op (`tinytrain.sgd_update` / `tinytrain.qsgd_update`) of each function, its chain
(the ops whose every result is used only by the chain, the update or the `return`: the weight
gradient, its `slice`, QAS `channel_scale`s, `sgd_momentum`) moves, in its own order, to just after
the last op it depends on, and never before another reader of a function argument it uses (the
parameter's other readers, such as the layer's input-gradient op, read the old value; the in-place
update must come after them). Values and results are unchanged, only the order.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir

from tinytrain.passes import ModulePass

__all__ = ["ReorderUpdatesPass"]

UPDATES = ("tinytrain.sgd_update", "tinytrain.qsgd_update")


def _is(a, b) -> bool:
    return a.operation == b.operation


def _chain(update, ret) -> list:
    """The ops feeding only `update` (and the `return`), in block order."""
    chain = [update]

    def exclusive(op) -> bool:
        for r in op.results:
            for u in r.uses:
                if not any(_is(u.owner, c) for c in chain) and not _is(u.owner, ret):
                    return False
        return True

    changed = True
    while changed:
        changed = False
        for c in list(chain):
            for v in c.operands:
                d = v.owner
                if isinstance(d, ir.Block) or any(_is(d, x) for x in chain):
                    continue
                if exclusive(d):
                    chain.append(d.opview if hasattr(d, "opview") else d)
                    changed = True
    return chain


def _reorder(block: ir.Block) -> int:
    ops = list(block.operations)
    ret = ops[-1]
    moved = 0
    for update in [o for o in ops if o.operation.name in UPDATES]:
        ops = list(block.operations)
        index = lambda op: next(i for i, o in enumerate(ops) if _is(o, op))  # noqa: E731
        chain = _chain(update, ret)
        members = sorted(chain, key=index)
        in_chain = lambda op: any(_is(op, c) for c in members)  # noqa: E731
        target = -1
        for c in members:
            for v in c.operands:
                d = v.owner
                if isinstance(d, ir.Block):
                    # every other reader of this argument reads the old value: stay after them
                    for u in v.uses:
                        if not in_chain(u.owner):
                            target = max(target, index(u.owner))
                elif not in_chain(d):
                    target = max(target, index(d))
        if target < 0:
            continue
        anchor = ops[target]
        for c in members:
            if index(c) != index(anchor) + 1:
                c.operation.move_after(anchor)
                ops = list(block.operations)
                moved += 1
            anchor = c
    return moved


@dataclasses.dataclass(frozen=True)
class ReorderUpdatesPass(ModulePass):
    argument: ClassVar[str] = "reorder-updates"
    summary: ClassVar[str] = ("Move every parameter update (with the ops computing its gradient) to just after "
                              "the last value it needs, so gradients do not wait for the end of the step.")

    def run(self, module: ir.Operation) -> None:
        with module.context, module.location:
            for op in module.regions[0].blocks[0].operations:
                if op.operation.name == "func.func":
                    _reorder(op.regions[0].blocks[0])
