"""`tinytrain` ops for the layers of real mobile CNNs beyond the core set (issue #7):
padding, slicing and concatenation, max / average pooling, hardswish, hardsigmoid, sigmoid,
leaky ReLU, broadcast multiply (squeeze-excite), a per-channel affine (a BatchNorm that cannot be
folded into a conv), and their adjoints.

Same conventions as `dialects/tinytrain.py`: NHWC activations, static shapes, f32, one verifier per
op that names the op and the problem. Pooling padding is `array<i64: top, left, bottom, right>`
(asymmetric, so PyTorch's `ceil_mode` is extra bottom/right padding). Array and bool attributes
are declared `Any` because the bindings' IRDL lowering cannot name `DenseI64ArrayAttr` as a
constraint (no `attr_name`); the verifiers check their kind instead. No op has a BoolAttr: the
generated builders drop a false one (they test attributes for truth).
"""

from typing import Any

from torch_mlir import ir
from torch_mlir.dialects.ext import Operand, Pure, Result

from .tinytrain import Tensor, TinyTrain, _all_f32, _fail, _same_shape, _shape, _typed_attr

__all__ = ["pool_output_hw", "broadcast_dims", "LAYER_OP_NAMES"]


def _i64s(op, name: str, n: int | None = None, minimum: int = 0):
    """The values of a `DenseI64ArrayAttr` attribute (length `n`, entries >= minimum), or None."""
    if name not in op.attributes:
        return None
    try:
        vals = list(ir.DenseI64ArrayAttr(op.attributes[name]))
    except (ValueError, TypeError):
        return None
    if (n is not None and len(vals) != n) or any(v < minimum for v in vals):
        return None
    return vals


def pool_output_hw(h: int, w: int, kernel, strides, padding) -> tuple[int, int]:
    """Output H, W of a pooling window over an input padded by (top, left, bottom, right)."""
    return ((h + padding[0] + padding[2] - kernel[0]) // strides[0] + 1,
            (w + padding[1] + padding[3] - kernel[1]) // strides[1] + 1)


def broadcast_dims(full: list[int], part: list[int]) -> list[int] | None:
    """Dims of `full` over which `part` is broadcast (numpy rules, right-aligned), or None when
    `part` does not broadcast to `full`."""
    if len(part) > len(full):
        return None
    lead = len(full) - len(part)
    dims = list(range(lead))
    for i, (f, p) in enumerate(zip(full[lead:], part)):
        if p == f:
            continue
        if p != 1:
            return None
        dims.append(lead + i)
    return dims


# ----------------------------------------------------------------------------------------------
# Padding, slicing, concatenation
# ----------------------------------------------------------------------------------------------


class PadOp(TinyTrain.Operation, name="pad", traits=[Pure]):
    """Zero padding: `result` = `input` with `low[d]` zeros before and `high[d]` after along each
    dim d (`nn.ZeroPad2d`, `F.pad`, the asymmetric part of `padding='same'`)."""

    input: Operand[Tensor]
    low: Any
    high: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        low, high = _i64s(self, "low", len(x)), _i64s(self, "high", len(x))
        if low is None or high is None:
            return _fail(self, f"requires 'low' and 'high' = array<i64: ...> of {len(x)} non-negative entries")
        if y != [d + lo + hi for d, lo, hi in zip(x, low, high)]:
            return _fail(self, f"result shape {y} is not {x} padded by low {low} and high {high}")
        return _all_f32(self, [self.input, self.result]) or _fail(self, "expects f32 tensors")


def _one_elt(op, values) -> bool:
    """All `values` f32, i8 or i32, of one element type."""
    elts = {str(ir.RankedTensorType(v.type).element_type) for v in values}
    if len(elts) != 1 or not elts <= {"f32", "i8", "i32"}:
        return _fail(op, f"expects f32, i8 or i32 tensors of one element type, got {sorted(elts)}")
    return True


class SliceOp(TinyTrain.Operation, name="slice", traits=[Pure]):
    """Static slice with unit strides: `result = input[offsets[d] : offsets[d] + shape[d]]`."""

    input: Operand[Tensor]
    offsets: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        off = _i64s(self, "offsets", len(x))
        if off is None or len(y) != len(x):
            return _fail(self, f"requires 'offsets' = array<i64: ...> of {len(x)} non-negative entries "
                               "and a result of the same rank")
        if any(o + s > d for o, s, d in zip(off, y, x)):
            return _fail(self, f"slice at {off} of shape {y} exceeds the input shape {x}")
        # f32 activations; also i8 / i32 parameters (sparse-split slices a conv's bias)
        return _one_elt(self, [self.input, self.result])


class ConcatOp(TinyTrain.Operation, name="concat", traits=[Pure]):
    """Concatenation of `lhs` and `rhs` along `axis` (`torch.cat`; channels are axis 3 in NHWC).
    More inputs are a chain of concats. (Binary, because an IRDL variadic operand binds one type
    for all its elements, and the inputs of a concat differ in the concatenated dim.)"""

    lhs: Operand[Tensor]
    rhs: Operand[Tensor]
    axis: ir.IntegerAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        axis = _typed_attr(self, "axis", ir.IntegerAttr)
        shapes = [_shape(self.lhs), _shape(self.rhs)]
        y = _shape(self.result)
        if axis is None or not 0 <= axis < len(y):
            return _fail(self, f"requires an integer 'axis' in [0, {len(y)})")
        for s in shapes:
            if len(s) != len(y) or any(a != b for i, (a, b) in enumerate(zip(s, y)) if i != axis):
                return _fail(self, f"input shapes {shapes} do not concatenate along axis {axis} into {y}")
        if sum(s[axis] for s in shapes) != y[axis]:
            return _fail(self, f"input sizes along axis {axis} sum to {sum(s[axis] for s in shapes)}, "
                               f"the result has {y[axis]}")
        # f32 activations; also i8 / i32 parameters (a sparse-update weight: trained slice + frozen rest)
        return _one_elt(self, [self.lhs, self.rhs, self.result])


class InsertOp(TinyTrain.Operation, name="insert", traits=[Pure]):
    """`result` = `dest` with `piece` written at `offsets` (unit strides; the inverse of `slice`).
    `channel-groups` builds a parameter updated group by group as a chain of inserts into the
    parameter itself, so the update is done in place, one channel group after the other."""

    dest: Operand[Tensor]
    piece: Operand[Tensor]
    offsets: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, p, y = _shape(self.dest), _shape(self.piece), _shape(self.result)
        off = _i64s(self, "offsets", len(x))
        if off is None or len(p) != len(x) or y != x:
            return _fail(self, f"requires 'offsets' = array<i64: ...> of {len(x)} non-negative entries, "
                               "a piece of the same rank and a result of the destination's shape")
        if any(o + s > d for o, s, d in zip(off, p, x)):
            return _fail(self, f"a piece of shape {p} at {off} exceeds the destination shape {x}")
        return _one_elt(self, [self.dest, self.piece, self.result])


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------


def _pool_attrs(op):
    kernel = _i64s(op, "kernel", 2, minimum=1)
    strides = _i64s(op, "strides", 2, minimum=1)
    padding = _i64s(op, "padding", 4)
    if kernel is None or strides is None or padding is None:
        _fail(op, "requires 'kernel' and 'strides' = array<i64: h, w> (positive) and "
                  "'padding' = array<i64: top, left, bottom, right> (non-negative)")
        return None
    return kernel, strides, padding


def _check_pool(op, x, y) -> bool:
    attrs = _pool_attrs(op)
    if attrs is None:
        return False
    kernel, strides, padding = attrs
    if len(x) != 4:
        return _fail(op, f"expects an NHWC input, got shape {x}")
    if padding[0] >= kernel[0] or padding[1] >= kernel[1] or padding[2] >= kernel[0] or padding[3] >= kernel[1]:
        return _fail(op, f"padding {padding} must be smaller than the kernel {kernel} on every side")
    oh, ow = pool_output_hw(x[1], x[2], kernel, strides, padding)
    if y != [x[0], oh, ow, x[3]]:
        return _fail(op, f"output shape {y} differs from the expected {[x[0], oh, ow, x[3]]}")
    return True


class MaxPool2dOp(TinyTrain.Operation, name="max_pool2d", traits=[Pure]):
    """Max over each `kernel` window at `strides`; padded positions never win (they are -inf)."""

    input: Operand[Tensor]
    kernel: Any
    strides: Any
    padding: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _check_pool(self, _shape(self.input), _shape(self.result))


class AvgPool2dOp(TinyTrain.Operation, name="avg_pool2d", traits=[Pure]):
    """Mean over each window. `divisor = "window"`: divide by the window size, padding counting
    as zeros (PyTorch's `count_include_pad=True`); `"valid"`: by the number of input elements
    inside the window (`count_include_pad=False`)."""

    input: Operand[Tensor]
    kernel: Any
    strides: Any
    padding: Any
    divisor: ir.StringAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _typed_attr(self, "divisor", ir.StringAttr) not in ("window", "valid"):
            return _fail(self, "requires 'divisor' = \"window\" or \"valid\"")
        return _check_pool(self, _shape(self.input), _shape(self.result))


class MaxPool2dGradOp(TinyTrain.Operation, name="max_pool2d_grad", traits=[Pure]):
    """Adjoint of max_pool2d: each window's output gradient goes to the position of the window's
    first maximum (row-major order, PyTorch's tie rule), recomputed from the forward input."""

    input: Operand[Tensor]
    grad_output: Operand[Tensor]
    kernel: Any
    strides: Any
    padding: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _shape(self.result) != _shape(self.input):
            return _fail(self, "result must have the input's shape")
        return _check_pool(self, _shape(self.input), _shape(self.grad_output))


class AvgPool2dGradOp(TinyTrain.Operation, name="avg_pool2d_grad", traits=[Pure]):
    """Adjoint of avg_pool2d: each output gradient, divided by its window's divisor, is added to
    every input position of the window. The input shape is the result type."""

    grad_output: Operand[Tensor]
    kernel: Any
    strides: Any
    padding: Any
    divisor: ir.StringAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _typed_attr(self, "divisor", ir.StringAttr) not in ("window", "valid"):
            return _fail(self, "requires 'divisor' = \"window\" or \"valid\"")
        return _check_pool(self, _shape(self.result), _shape(self.grad_output))


# ----------------------------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------------------------


class HardswishOp(TinyTrain.Operation, name="hardswish", traits=[Pure]):
    """`x * min(max(x + 3, 0), 6) / 6`."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.input, self.result)


class HardsigmoidOp(TinyTrain.Operation, name="hardsigmoid", traits=[Pure]):
    """`min(max(x + 3, 0), 6) / 6`."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.input, self.result)


class SigmoidOp(TinyTrain.Operation, name="sigmoid", traits=[Pure]):
    """`1 / (1 + exp(-x))`."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.input, self.result)


class LeakyReluOp(TinyTrain.Operation, name="leaky_relu", traits=[Pure]):
    """`x if x > 0 else alpha * x`."""

    input: Operand[Tensor]
    alpha: ir.FloatAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _typed_attr(self, "alpha", ir.FloatAttr) is None:
            return _fail(self, "requires a float 'alpha' attribute")
        return _same_shape(self, self.input, self.result)


class HardswishGradOp(TinyTrain.Operation, name="hardswish_grad", traits=[Pure]):
    """`dX = dY * (0 if x <= -3 else x / 3 + 1/2 if x < 3 else 1)` (PyTorch's rule: at x = -3 the
    gradient is 0 and at x = 3 it is dY, checked against torch 2.13's autograd), from the forward
    input."""

    input: Operand[Tensor]
    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.input, self.grad_output, self.result)


class HardsigmoidGradOp(TinyTrain.Operation, name="hardsigmoid_grad", traits=[Pure]):
    """`dX = dY / 6` where `-3 < x < 3`, else 0, from the forward input."""

    input: Operand[Tensor]
    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.input, self.grad_output, self.result)


class SigmoidGradOp(TinyTrain.Operation, name="sigmoid_grad", traits=[Pure]):
    """`dX = dY * y * (1 - y)`, from the forward output y."""

    output: Operand[Tensor]
    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.output, self.grad_output, self.result)


class LeakyReluGradOp(TinyTrain.Operation, name="leaky_relu_grad", traits=[Pure]):
    """`dX = dY if x > 0 else alpha * dY`, from the forward input."""

    input: Operand[Tensor]
    grad_output: Operand[Tensor]
    alpha: ir.FloatAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _typed_attr(self, "alpha", ir.FloatAttr) is None:
            return _fail(self, "requires a float 'alpha' attribute")
        return _same_shape(self, self.input, self.grad_output, self.result)


# ----------------------------------------------------------------------------------------------
# Broadcast multiply, per-channel affine, and the reduction their adjoints need
# ----------------------------------------------------------------------------------------------


class MulOp(TinyTrain.Operation, name="mul", traits=[Pure]):
    """Elementwise product; `rhs` broadcasts to `lhs`'s shape (numpy rules, right-aligned), e.g.
    squeeze-excite's `[N, H, W, C] * [N, 1, 1, C]`. The result has `lhs`'s shape."""

    lhs: Operand[Tensor]
    rhs: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, s, y = _shape(self.lhs), _shape(self.rhs), _shape(self.result)
        if y != x or broadcast_dims(x, s) is None:
            return _fail(self, f"expects rhs {s} to broadcast to lhs {x} and the result to be {x}, got {y}")
        return _all_f32(self, [self.lhs, self.rhs, self.result]) or _fail(self, "expects f32 tensors")


class SumToOp(TinyTrain.Operation, name="sum_to", traits=[Pure]):
    """Sum of `input` over the dims along which the result shape broadcasts to it (numpy rules):
    the adjoint of a broadcast."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        if broadcast_dims(x, y) is None:
            return _fail(self, f"result shape {y} does not broadcast to the input shape {x}")
        return _all_f32(self, [self.input, self.result]) or _fail(self, "expects f32 tensors")


class ChannelAffineOp(TinyTrain.Operation, name="channel_affine", traits=[Pure]):
    """`x * scale[c] + shift[c]` over the last (channel) dim: a BatchNorm in eval mode that cannot
    be folded into a conv, with `scale = gamma / sqrt(var + eps)` and
    `shift = beta - mean * scale` (trainable or frozen like any parameter)."""

    input: Operand[Tensor]
    scale: Operand[Tensor]
    shift: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, a, b, y = _shape(self.input), _shape(self.scale), _shape(self.shift), _shape(self.result)
        if y != x or a != [x[-1]] or b != [x[-1]]:
            return _fail(self, f"expects x [..., C], scale [C], shift [C] -> x's shape, got {x}, {a}, {b} -> {y}")
        return _all_f32(self, [self.input, self.scale, self.shift, self.result]) or _fail(self, "expects f32 tensors")

#: The ops this file defines.
LAYER_OP_NAMES = sorted(op.OPERATION_NAME for op in TinyTrain.operations
                        if op.__module__ == __name__)
