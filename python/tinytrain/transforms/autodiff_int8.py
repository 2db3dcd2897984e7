"""Adjoint rules of the int8 ops: training the real int8 graph (paper Sec. 2.1-2.3, issue #8).

Design. The forward pass of `@train_step` is the int8 graph itself (bit-exact with
`tinytrain.reference`, device rule). The backward pass is fp32, on real values, as the paper's
released engine does:

- the gradient of an int8 activation is the f32 gradient of its REAL value `s (q - z)`;
- the rounding of the requantization is straight-through, and its fused clamp passes the gradient
  only where the int8 output is strictly inside `[lo, hi]` (`qclamp_grad`, a 1-bit mask):
  `g_acc = qclamp_grad(g_y, y)` is the gradient of the real accumulator `s_x s_W[o] acc`;
  when a `qconv2d`'s weight gets no gradient (a bias-only layer, or one the gradient only passes
  through) and no other backward rule reads its output, the mask is packed in the forward pass
  right after the op (`qclamp_mask`, 1 bit per value, C a multiple of 8) and read back by
  `qmask_grad`, so backward keeps C / 8 bytes per pixel instead of the int8 output (paper
  Sec. 2.3), with `autodiff{clamp_masks=1}` (and `pin-clamp-masks` after the backward passes,
  so that IREE packs the mask in the forward pass); the default keeps the output and
  `qclamp_grad` (the same numbers); `tinytrain.int8` turns the masks on for Cortex-M targets;
- `qconv2d`: input gradient `conv2d_grad_input(g_acc, dequantized W)`, weight gradient
  `conv2d_grad_weight(dequantize(x), g_acc)` (padding with a real 0 = `x_zero`), bias gradient
  `bias_grad(g_acc)`; `qadd` passes `qclamp_grad(g_y, y)` to both operands (the real sum);
  `qavg_pool` spreads `g / (H W)`; `dequantize` and `quantize` are the identity (straight-through);
- the gradient of an INTEGER parameter is taken w.r.t. its integer value: `dL/dw_int =
  s_W[o] dL/dW_real`, `dL/db_int = s_x s_W[o] dL/db_real` (`channel_scale`). This is the
  gradient whose scale is wrong by `s^2` (paper Eq. 3); the `qas` pass rescales it (Eq. 4);
- the update writes back integers: `qsgd_update` = `clamp(p - round_half_even(lr * g))`, int8
  weights in [-127, 127], int32 biases saturated (the paper's text); an fp32 master copy of a
  weight (`build_forward(master_weights=...)`, the released engine's choice) is an f32
  parameter read through `quantize` and updated by `sgd_update`. With momentum (`autodiff
  {momentum=m}`) the f32 buffer `v' = m v + g` (`sgd_momentum`, g after QAS) is the step of
  either update.

An fp32 head (`tinytrain.linear` on `dequantize(qavg_pool(...))`, `build_forward(...,
classifier="fp32")`) trains with the fp32 rules; the loss needs f32 logits, so the int8
classifier variant is inference-only (autodiff says so).
"""

from __future__ import annotations

from torch_mlir import ir

from tinytrain.dialects import tinytrain as tt
from tinytrain.dialects import tinytrain_quant as tq

__all__ = ["INT8_RULES", "is_integer_param", "f32_like"]


def f32_like(v: ir.Value) -> ir.RankedTensorType:
    """The f32 tensor type of `v`'s shape (the type of its gradient)."""
    return ir.RankedTensorType.get(list(ir.RankedTensorType(v.type).shape), ir.F32Type.get())


def is_integer_param(v: ir.Value) -> bool:
    return isinstance(ir.RankedTensorType(v.type).element_type, ir.IntegerType)


def _f64s(op, name: str) -> list[float]:
    return list(ir.DenseF64ArrayAttr(op.attributes[name]))


def _qconv2d(op, g, grads) -> None:
    x, w, b = op.operands
    y = op.results[0]
    a = op.attributes
    loc = op.location
    s_w = _f64s(op, "weight_scales")
    s_x = ir.FloatAttr(a["input_scale"]).value
    if not grads.wanted(w) and grads.clamp_masks and _packable(y):
        mask = tq.QClampMaskOp(y, a["clamp"], _packed_type(y), loc=loc)
        mask.operation.move_after(op.operation)  # in the forward pass: `y` need not live until backward
        g_acc = tq.QMaskGradOp(g, mask.result, g.type, loc=loc).result
    else:
        g_acc = tq.QClampGradOp(g, y, a["clamp"], g.type, loc=loc).result
    if grads.wanted(x):
        w_real = tq.ChannelScaleOp(w, a["weight_scales"], f32_like(w), loc=loc).result
        grads.add(x, tt.Conv2dGradInputOp(g_acc, w_real, a["strides"], a["padding"], a["groups"],
                                          f32_like(x), loc=loc).result)
    if grads.wanted(w):
        x_real = tq.DequantizeOp(x, a["input_scale"], a["input_zero_point"], f32_like(x), loc=loc).result
        gw = tt.Conv2dGradWeightOp(x_real, g_acc, a["strides"], a["padding"], a["groups"], f32_like(w),
                                   loc=loc).result
        grads.add(w, tq.ChannelScaleOp(gw, a["weight_scales"], f32_like(w), loc=loc).result)
    if grads.wanted(b):
        gb = tt.BiasGradOp(g_acc, f32_like(b), loc=loc).result
        scales = ir.DenseF64ArrayAttr.get([s_x * s for s in s_w])
        grads.add(b, tq.ChannelScaleOp(gb, scales, f32_like(b), loc=loc).result)


#: forward users whose adjoint rules do not read their input (a `qconv2d` reads it only for its
#: weight gradient, and then its rule, run before this one, has added a `dequantize` of it)
_INPUT_FREE_RULES = ("tinytrain.qconv2d", "tinytrain.qadd", "tinytrain.qavg_pool")


def _packable(y: ir.Value) -> bool:
    """Whether `y` (an int8 conv output) can be replaced by its packed clamp mask in backward:
    C a multiple of 8, and every user of `y` is an op whose rule does not read it."""
    shape = ir.RankedTensorType(y.type).shape
    if not shape or shape[-1] % 8:
        return False
    return all(use.owner.operation.name in _INPUT_FREE_RULES for use in y.uses)


def _packed_type(y: ir.Value) -> ir.RankedTensorType:
    shape = list(ir.RankedTensorType(y.type).shape)
    return ir.RankedTensorType.get(shape[:-1] + [shape[-1] // 8], ir.IntegerType.get_signless(8))


def _qadd(op, g, grads) -> None:
    masked = tq.QClampGradOp(g, op.results[0], op.attributes["clamp"], g.type, loc=op.location).result
    for v in op.operands:
        grads.add(v, masked)


def _qavg_pool(op, g, grads) -> None:
    x = op.operands[0]
    if grads.wanted(x):
        grads.add(x, tt.GlobalAvgPoolGradOp(g, f32_like(x), loc=op.location).result)


def _straight_through(op, g, grads) -> None:
    grads.add(op.operands[0], g)


def _reshape(op, g, grads) -> None:
    x = op.operands[0]
    if grads.wanted(x):
        grads.add(x, tt.ReshapeOp(g, f32_like(x), loc=op.location).result)


INT8_RULES = {
    "tinytrain.qconv2d": _qconv2d,
    "tinytrain.qadd": _qadd,
    "tinytrain.qavg_pool": _qavg_pool,
    "tinytrain.dequantize": _straight_through,
    "tinytrain.quantize": _straight_through,
    # the gradient of a reshaped i8 value is f32: the rule builds the f32 type (same for f32 values)
    "tinytrain.reshape": _reshape,
}
