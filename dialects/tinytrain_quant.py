"""Quantized (int8) forward ops of the `tinytrain` dialect (registered on the same `TinyTrain`
dialect class as `tinytrain.py`; `dialects/__init__.py` imports both).

Numerics: exactly `tinytrain.reference` with `rule="device"` (its module docstring is the
specification: int8 x int8 -> exact int32 dot, saturating int32 bias add, TFLite/gemmlowp
fixed-point requantization, round-half-away-from-zero shifts). Quantized values mean
`real = scale * (q - zero_point)`; weights are symmetric per output channel.

```mlir
%y = "tinytrain.qconv2d"(%x, %w, %b) {strides = array<i64: 1, 1>, padding = array<i64: 1, 1>,
        groups = 16 : i64, input_scale = 0.0235 : f64, input_zero_point = -128 : i64,
        weight_scales = array<f64: ...>, output_scale = 0.0235 : f64, output_zero_point = -128 : i64,
        multiplier = array<i32: ...>, shift = array<i32: ...>, clamp = array<i64: -128, 127>}
        : (tensor<1x64x64x16xi8>, tensor<3x3x1x16xi8>, tensor<16xi32>) -> tensor<1x64x64x16xi8>
```

- `tinytrain.quantize` / `tinytrain.dequantize`: f32 <-> i8 with one `scale`, `zero_point`.
- `tinytrain.qconv2d`: NHWC i8 x HWIO i8 + i32 bias -> NHWC i8, per-output-channel fixed-point
  `multiplier`/`shift` (what the kernels use) AND the real scales they come from (what autodiff
  and QAS need: `s_W = weight_scales`, `s_x = input_scale`); the verifier checks that the
  multipliers are `quantize_multiplier(input_scale * weight_scales / output_scale)`, so a pass
  cannot change one without the other. `clamp` is the fused activation (ReLU / ReLU6 / none as
  int8 bounds).
- `tinytrain.qadd`: i8 + i8 -> i8 with rescaling (TFLite's int8 ADD, left shift 20).
- `tinytrain.qavg_pool`: global average pool i8 `[N, H, W, C] -> [N, C]`, same scale and zero
  point, rounded half away from zero.
"""

from typing import Any

import numpy as np
from torch_mlir import ir
from torch_mlir.dialects.ext import Operand, Pure, Result

from .tinytrain import TinyTrain, _check_conv, _check_guarded_update, _fail, _shape, _typed_attr

__all__ = ["QUANT_OP_NAMES"]

Tensor = ir.RankedTensorType

INT8_MIN, INT8_MAX = -128, 127


def _elt(v) -> str:
    return str(ir.RankedTensorType(v.type).element_type)


def _elts(op, expected: dict) -> bool:
    """`expected`: role name -> (value, element type string)."""
    for role, (v, want) in expected.items():
        if _elt(v) != want:
            return _fail(op, f"{role} must have element type {want}, got {_elt(v)}")
    return True


def _scale(op, name: str):
    v = _typed_attr(op, name, ir.FloatAttr)
    if v is None or not np.isfinite(v) or v <= 0:
        _fail(op, f"requires a positive float '{name}' attribute")
        return None
    return v


def _zero_point(op, name: str):
    v = _typed_attr(op, name, ir.IntegerAttr)
    if v is None or not INT8_MIN <= v <= INT8_MAX:
        _fail(op, f"requires an integer '{name}' attribute in [-128, 127]")
        return None
    return v


def _array(op, name: str, cls, length: int | None = None):
    if name not in op.attributes:
        _fail(op, f"requires '{name}' = {cls.__name__}")
        return None
    try:
        vals = list(cls(op.attributes[name]))
    except (ValueError, TypeError):
        _fail(op, f"requires '{name}' to be a {cls.__name__}")
        return None
    if length is not None and len(vals) != length:
        _fail(op, f"'{name}' has {len(vals)} entries, expected {length}")
        return None
    return vals


def _clamp(op) -> bool:
    c = _array(op, "clamp", ir.DenseI64ArrayAttr, 2)
    if c is None:
        return False
    if not INT8_MIN <= c[0] <= c[1] <= INT8_MAX:
        return _fail(op, f"clamp {c} must be [lo, hi] with -128 <= lo <= hi <= 127")
    return True


class QuantizeOp(TinyTrain.Operation, name="quantize", traits=[Pure]):
    """f32 -> i8: `clamp(round_half_even(x / scale) + zero_point, -128, 127)`."""

    input: Operand[Tensor]
    scale: ir.FloatAttr
    zero_point: ir.IntegerAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _scale(self, "scale") is None or _zero_point(self, "zero_point") is None:
            return False
        if _shape(self.input) != _shape(self.result):
            return _fail(self, f"input {_shape(self.input)} and result {_shape(self.result)} differ in shape")
        return _elts(self, {"input": (self.input, "f32"), "result": (self.result, "i8")})


class DequantizeOp(TinyTrain.Operation, name="dequantize", traits=[Pure]):
    """i8 -> f32: `scale * (q - zero_point)`."""

    input: Operand[Tensor]
    scale: ir.FloatAttr
    zero_point: ir.IntegerAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _scale(self, "scale") is None or _zero_point(self, "zero_point") is None:
            return False
        if _shape(self.input) != _shape(self.result):
            return _fail(self, f"input {_shape(self.input)} and result {_shape(self.result)} differ in shape")
        return _elts(self, {"input": (self.input, "i8"), "result": (self.result, "f32")})


class QConv2dOp(TinyTrain.Operation, name="qconv2d", traits=[Pure]):
    """int8 2-D convolution (dense, pointwise, depthwise), NHWC i8 x HWIO i8 + i32 bias -> NHWC
    i8, requantized per output channel by `multiplier`/`shift` (`tinytrain.reference`, device
    rule) then clamped to `clamp`. Padding is with `input_zero_point` (a real zero)."""

    input: Operand[Tensor]
    weight: Operand[Tensor]
    bias: Operand[Tensor]
    strides: Any
    padding: Any
    groups: ir.IntegerAttr
    input_scale: ir.FloatAttr
    input_zero_point: ir.IntegerAttr
    weight_scales: Any
    output_scale: ir.FloatAttr
    output_zero_point: ir.IntegerAttr
    multiplier: Any
    shift: Any
    clamp: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        from tinytrain.reference import quantize_multiplier

        w = _shape(self.weight)
        if not _check_conv(self, _shape(self.input), w, _shape(self.result)):
            return False
        if not _elts(self, {"input": (self.input, "i8"), "weight": (self.weight, "i8"),
                            "bias": (self.bias, "i32"), "result": (self.result, "i8")}):
            return False
        cout = w[3]
        if _shape(self.bias) != [cout]:
            return _fail(self, f"bias shape {_shape(self.bias)} must be [{cout}]")
        sx, sy = _scale(self, "input_scale"), _scale(self, "output_scale")
        if sx is None or sy is None:
            return False
        if _zero_point(self, "input_zero_point") is None or _zero_point(self, "output_zero_point") is None:
            return False
        ws = _array(self, "weight_scales", ir.DenseF64ArrayAttr, cout)
        m0 = _array(self, "multiplier", ir.DenseI32ArrayAttr, cout)
        sh = _array(self, "shift", ir.DenseI32ArrayAttr, cout)
        if ws is None or m0 is None or sh is None or not _clamp(self):
            return False
        ws = np.asarray(ws, np.float64)
        if not np.all(np.isfinite(ws) & (ws > 0)):
            return _fail(self, "weight_scales must be finite and positive")
        want_m, want_s = quantize_multiplier(np.float64(sx) * ws / np.float64(sy))
        bad = np.flatnonzero((want_m != np.asarray(m0)) | (want_s != np.asarray(sh)))
        if bad.size:
            o = int(bad[0])
            return _fail(self, f"multiplier/shift of channel {o} are ({m0[o]}, {sh[o]}), the scales give "
                               f"({int(want_m[o])}, {int(want_s[o])}) = quantize_multiplier(input_scale * "
                               "weight_scales / output_scale)")
        return True


class QAddOp(TinyTrain.Operation, name="qadd", traits=[Pure]):
    """int8 + int8 -> int8 with rescaling (residual connections): `tinytrain.reference.add`,
    device rule, then `clamp`."""

    lhs: Operand[Tensor]
    rhs: Operand[Tensor]
    lhs_scale: ir.FloatAttr
    lhs_zero_point: ir.IntegerAttr
    rhs_scale: ir.FloatAttr
    rhs_zero_point: ir.IntegerAttr
    output_scale: ir.FloatAttr
    output_zero_point: ir.IntegerAttr
    clamp: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        shapes = [_shape(v) for v in (self.lhs, self.rhs, self.result)]
        if any(s != shapes[0] for s in shapes):
            return _fail(self, f"expects operands and result of one shape, got {shapes}")
        if not _elts(self, {"lhs": (self.lhs, "i8"), "rhs": (self.rhs, "i8"), "result": (self.result, "i8")}):
            return False
        for side in ("lhs", "rhs", "output"):
            if _scale(self, f"{side}_scale") is None or _zero_point(self, f"{side}_zero_point") is None:
                return False
        return _clamp(self)


class QAvgPoolOp(TinyTrain.Operation, name="qavg_pool", traits=[Pure]):
    """Global average pool of int8 `[N, H, W, C] -> [N, C]`: `(sum + sign(sum) * (HW / 2)) / HW`
    truncated (round half away from zero); scale and zero point unchanged."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        if len(x) != 4 or y != [x[0], x[3]]:
            return _fail(self, f"expects [N, H, W, C] -> [N, C], got {x} -> {y}")
        return _elts(self, {"input": (self.input, "i8"), "result": (self.result, "i8")})


# ----------------------------------------------------------------------------- training the int8 graph
# (built by `autodiff` and `qas`; see python/tinytrain/transforms/autodiff_int8.py)


def _positive_array(op, name: str, length: int):
    vals = _array(op, name, ir.DenseF64ArrayAttr, length)
    if vals is None:
        return None
    if not all(np.isfinite(v) and v > 0 for v in vals):
        _fail(op, f"'{name}' must be finite and positive")
        return None
    return vals


class ChannelScaleOp(TinyTrain.Operation, name="channel_scale", traits=[Pure]):
    """`result[..., c] = f32(input[..., c]) * f32(scales[c])` over the last axis; `input` i8, i32
    or f32, result f32. Dequantizes per-channel weights (`scales = weight_scales`), turns the
    gradient of a real weight / bias into the gradient of its integer value, and is the `qas`
    rescaling (paper Eq. 4)."""

    input: Operand[Tensor]
    scales: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        if x != y or not x:
            return _fail(self, f"expects input and result of one shape of rank >= 1, got {x} -> {y}")
        if _elt(self.input) not in ("i8", "i32", "f32") or _elt(self.result) != "f32":
            return _fail(self, f"expects i8, i32 or f32 input and f32 result, got {_elt(self.input)} -> "
                               f"{_elt(self.result)}")
        return _positive_array(self, "scales", x[-1]) is not None


class QClampGradOp(TinyTrain.Operation, name="qclamp_grad", traits=[Pure]):
    """Straight-through gradient of an int8 op's fused clamp: `grad` where the op's int8 `output`
    is strictly inside `clamp` = [lo, hi], else 0 (the 1-bit mask of the paper's engine)."""

    grad: Operand[Tensor]
    output: Operand[Tensor]
    clamp: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        shapes = [_shape(v) for v in (self.grad, self.output, self.result)]
        if any(s != shapes[0] for s in shapes):
            return _fail(self, f"expects grad, output and result of one shape, got {shapes}")
        if not _elts(self, {"grad": (self.grad, "f32"), "output": (self.output, "i8"),
                            "result": (self.result, "f32")}):
            return False
        return _clamp(self)


def _packed_pair(op, full, packed, full_role: str, full_elt: str) -> bool:
    """`full` [..., C] of `full_elt`, `packed` i8 [..., C / 8] (C a positive multiple of 8)."""
    f, p = _shape(full), _shape(packed)
    if not f or f[-1] <= 0 or f[-1] % 8 or p != f[:-1] + [f[-1] // 8]:
        return _fail(op, f"expects {full_role} [..., C] with C a positive multiple of 8 and a mask "
                         f"[..., C / 8], got {f} and {p}")
    return _elts(op, {full_role: (full, full_elt), "mask": (packed, "i8")})


class QClampMaskOp(TinyTrain.Operation, name="qclamp_mask", traits=[Pure]):
    """`qclamp_grad`'s test as a packed 1-bit mask, 8 channels per byte: bit k of `result[..., j]`
    is 1 where `output[..., 8 j + k]` is strictly inside `clamp` = [lo, hi]. Autodiff builds it
    in the forward pass, right after the op, for a layer whose backward needs nothing else of its
    int8 output (a bias-only layer, paper Sec. 2.3), so that backward keeps C / 8 bytes per pixel
    instead of C. `output` i8 [..., C], C a multiple of 8; result i8 [..., C / 8]."""

    output: Operand[Tensor]
    clamp: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _packed_pair(self, self.output, self.result, "output", "i8") and _clamp(self)


class QMaskGradOp(TinyTrain.Operation, name="qmask_grad", traits=[Pure]):
    """`qclamp_grad` read from a `qclamp_mask`: `grad[..., c]` where bit `c % 8` of
    `mask[..., c / 8]` is 1, else 0. `grad` f32 [..., C], `mask` i8 [..., C / 8], result f32."""

    grad: Operand[Tensor]
    mask: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _shape(self.result) != _shape(self.grad):
            return _fail(self, f"expects a result of grad's shape, got {_shape(self.grad)} -> {_shape(self.result)}")
        return _packed_pair(self, self.grad, self.mask, "grad", "f32") and _elts(self, {"result": (self.result, "f32")})


class QSgdUpdateOp(TinyTrain.Operation, name="qsgd_update", traits=[Pure]):
    """SGD step of an integer parameter with write-back: `clamp(param - round_half_even(lr * grad))`
    (`grad` is the f32 gradient of the integer value); i8 weights are clamped to [-127, 127]
    (symmetric), i32 biases saturate to int32. Guarded like `sgd_update`: when the step's `loss`
    (rank-0 f32) is not finite, `param` is returned unchanged."""

    param: Operand[Tensor]
    grad: Operand[Tensor]
    loss: Operand[Tensor]
    lr: ir.FloatAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if not _check_guarded_update(self):
            return False
        shapes = [_shape(v) for v in (self.param, self.grad, self.result)]
        if any(s != shapes[0] for s in shapes):
            return _fail(self, f"expects param, grad and result of one shape, got {shapes}")
        if _elt(self.param) not in ("i8", "i32") or _elt(self.result) != _elt(self.param):
            return _fail(self, f"expects an i8 or i32 param and result of its type, got {_elt(self.param)} "
                               f"-> {_elt(self.result)}")
        return _elts(self, {"grad": (self.grad, "f32")})


QUANT_OP_NAMES = sorted(op.OPERATION_NAME for op in (QuantizeOp, DequantizeOp, QConv2dOp, QAddOp, QAvgPoolOp,
                                                     ChannelScaleOp, QClampGradOp, QClampMaskOp, QMaskGradOp,
                                                     QSgdUpdateOp))
