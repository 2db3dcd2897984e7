"""qas: Quantization-Aware Scaling of the gradients of int8 parameters (paper Sec. 2.2, Eq. 4).

In the real int8 graph the gradient of an integer weight is `dL/dw_int = s_W dL/dW` while the
weight itself is `w_int = W / s_W`: the ratio ||g|| / ||w|| is `s_W^2` times the fp32 one
(Eq. 3), so SGD with an fp32 learning rate barely moves int8 weights (and int32 biases, whose
ratio is off by `(s_W s_x)^2`). QAS rescales the gradient before the update:

    g~_w[..., o] = g_w[..., o] * s_W[o]^-2          (int8 weight of a qconv2d, per output channel)
    g~_b[o]      = g_b[o]      * (s_W[o] s_x)^-2     (its int32 bias)

which makes the real-valued step the fp32 one (`s_W * lr * s_W^-2 * s_W dL/dW = lr dL/dW`).

The pass rewrites every `tinytrain.qsgd_update` (built by `autodiff` for an integer parameter)
whose parameter feeds a `tinytrain.qconv2d` as weight or bias, and every `tinytrain.sgd_update` of
an fp32 master copy of an int8 weight (a parameter feeding a qconv2d through `tinytrain.quantize`,
`build_forward(master_weights=...)`; fp32 parameters of fp32 ops are left alone): its gradient operand becomes
`tinytrain.channel_scale(g)` with the scales above (read from the conv's `weight_scales` and
`input_scale`); with momentum (the update's gradient operand is `sgd_momentum(v, g, loss)`) the
momentum op's `g` is rescaled instead, so the buffer accumulates QAS-scaled gradients. An update already rescaled carries `{tinytrain.qas}` and is left alone, so the
pass is idempotent. It is on by default for int8 graphs (`tinytrain.int8.compile_training`,
`qas=False` switches it off); `tinytrain-opt -p 'autodiff,qas'` runs it by hand.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir

from tinytrain.dialects import tinytrain_quant as tq
from tinytrain.errors import CompileError
from tinytrain.passes import ModulePass

__all__ = ["QasPass", "qas_scales"]


def qas_scales(conv, role: str) -> list[float]:
    """The per-output-channel QAS factors of a `qconv2d` op's parameter ("weight" or "bias")."""
    s_w = list(ir.DenseF64ArrayAttr(conv.attributes["weight_scales"]))
    s_x = ir.FloatAttr(conv.attributes["input_scale"]).value
    if role == "weight":
        return [s ** -2 for s in s_w]
    return [(s * s_x) ** -2 for s in s_w]


def _conv_of(param):
    """(qconv2d op, "weight" | "bias", first output channel) that `param` feeds, directly or (an
    fp32 master copy of a weight) through `tinytrain.quantize`, or (a `sparse-update` slice)
    through the `tinytrain.concat` joining it with the frozen rest; (None, None, 0) otherwise."""
    for use in param.uses:
        owner = use.owner
        if owner.name == "tinytrain.qconv2d" and use.operand_number in (1, 2):
            return owner, ("weight" if use.operand_number == 1 else "bias"), 0
        if owner.name == "tinytrain.quantize":
            for u in owner.results[0].uses:
                if u.owner.name == "tinytrain.qconv2d" and u.operand_number == 1:
                    return u.owner, "weight", 0
        if owner.name == "tinytrain.concat" and ir.IntegerAttr(owner.attributes["axis"]).value == 3:
            offset = 0 if use.operand_number == 0 else ir.RankedTensorType(owner.operands[0].type).shape[3]
            conv, role, first = _conv_of(owner.results[0])
            if role == "weight":
                return conv, role, first + offset
    return None, None, 0


@dataclasses.dataclass(frozen=True)
class QasPass(ModulePass):
    argument: ClassVar[str] = "qas"
    summary: ClassVar[str] = ("Quantization-aware scaling (paper Eq. 4): rescale the gradients of int8 "
                              "weights by s_W^-2 and of int32 biases by (s_W s_x)^-2 before their update.")

    def run(self, module: ir.Operation) -> None:
        updates = []

        def visit(op):
            name = op.operation.name
            if name in ("tinytrain.qsgd_update", "tinytrain.sgd_update") and "tinytrain.qas" not in op.operation.attributes:
                updates.append(op.operation)
            return ir.WalkResult.ADVANCE

        module.walk(visit)
        for upd in updates:
            param, grad = upd.operands[0], upd.operands[1]
            conv, role, first = _conv_of(param)
            if conv is None and upd.name == "tinytrain.sgd_update":
                continue  # an fp32 parameter (e.g. the head): no QAS
            if conv is None:
                raise CompileError(f"qas: the parameter updated at {upd.location} is not the weight or bias "
                                   "of a tinytrain.qconv2d; QAS knows no scale for it",
                                   stage=self.argument, loc=upd.location)
            # With momentum the update's gradient operand is the buffer's step
            # `sgd_momentum(v, g, loss)`: the buffer accumulates the rescaled gradient.
            target = upd
            src = grad.owner
            if isinstance(src, (ir.Operation, ir.OpView)) and src.operation.name == "tinytrain.sgd_momentum":
                target = src.operation
                grad = target.operands[1]
            with module.context, ir.InsertionPoint(target), upd.location:
                n = ir.RankedTensorType(grad.type).shape[-1]  # a sparse slice: its own channels' factors
                factors = qas_scales(conv, role)[first:first + n]
                scaled = tq.ChannelScaleOp(grad, ir.DenseF64ArrayAttr.get(factors), grad.type).result
                target.operands[1] = scaled
                upd.attributes["tinytrain.qas"] = ir.UnitAttr.get()
