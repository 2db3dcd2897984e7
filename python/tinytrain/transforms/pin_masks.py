"""`pin-clamp-masks`: compute every packed clamp mask in the forward pass, where its activation is
made, and keep the mask, not the activation, for the backward pass.

`autodiff{clamp_masks=1}` replaces the int8 output `y` that a backward rule reads only for its
clamp mask by `m = qclamp_mask(y)` (1 bit per value) right after `y`'s op, and `qmask_grad(g, m)`
in backward. Nothing in the program says when `m` must be computed, though: IREE forms a dispatch
of the packing and may schedule it just before its backward reader, or fuse it into each
channel group's slice of `m` (a packing per group, reading `y`), so `y` (8x the mask's bytes)
stays alive from the forward pass to the backward pass and the mask saves nothing
(MobileNetV2-w0.35 `99kb` at 128x128 on the M7: 123,264 -> 238,464 B planned).

This pass ties each mask to its activation's forward readers: `(y', m') =
util.optimization_barrier(y, m)` right after the mask; every other reader of `y` reads `y'` and
every reader of `m` reads `m'`. The next forward op then waits for the packing, and the backward
pass reads the materialised mask (IREE cannot look through the barrier to fuse the packing into
`m'`'s readers). The program computes the same numbers. A mask nothing reads is erased.

Run it after the passes that rewrite the backward pass (`channel-groups`, `reorder-updates`,
`patch-stage`): they look through the forward ops' results, not through a barrier.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir

from tinytrain.irfuncs import optimization_barrier
from tinytrain.passes import ModulePass
from tinytrain.transforms.channel_groups import _op

__all__ = ["PinClampMasksPass"]


@dataclasses.dataclass(frozen=True)
class PinClampMasksPass(ModulePass):
    argument: ClassVar[str] = "pin-clamp-masks"
    summary: ClassVar[str] = ("Compute each packed clamp mask (qclamp_mask) in the forward pass, right "
                              "after its int8 activation, and keep only the mask for backward.")

    def run(self, module: ir.Operation) -> None:
        module.context.allow_unregistered_dialects = True
        with module.context, module.location:
            for fn in list(module.regions[0].blocks[0].operations):
                if fn.operation.name != "func.func":
                    continue
                for op in list(fn.regions[0].blocks[0].operations):
                    if op.operation.name == "tinytrain.qclamp_mask":
                        self._pin(op.operation)

    @staticmethod
    def _pin(op: ir.Operation) -> None:
        y, m = op.operands[0], op.results[0]
        m_readers = [(_op(u.owner), u.operand_number) for u in m.uses]
        if not m_readers:
            op.erase()
            return
        if isinstance(y.owner, ir.Block):        # before any other reader of y
            op.move_before(_op(y.owner.operations[0]))
        else:
            op.move_after(_op(y.owner))
        with op.location, ir.InsertionPoint(op):
            bar = _op(optimization_barrier([y, m])[0].owner)
        bar.move_after(op)
        y_readers = [(_op(u.owner), u.operand_number) for u in y.uses]
        for owner, i in y_readers:
            if owner != op and owner != bar:
                owner.operands[i] = bar.results[0]
        for owner, i in m_readers:
            owner.operands[i] = bar.results[1]
