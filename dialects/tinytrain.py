"""The `tinytrain` dialect: forward, gradient and update ops of on-device CNN training.

Defined from Python with IRDL (`torch_mlir.dialects.ext`). Ops use the generic MLIR syntax:

```mlir
%y = "tinytrain.conv2d"(%x, %w, %b) {strides = array<i64: 2, 2>, padding = array<i64: 1, 1>,
        groups = 1 : i64} : (tensor<1x64x64x3xf32>, tensor<3x3x3x16xf32>, tensor<16xf32>)
        -> tensor<1x32x32x16xf32>
```

Conventions (paper: Lin et al. 2022, Sec. 2.3, "Tiny Training Engine"):
- activations are NHWC; conv weights are HWIO, `[KH, KW, C_in / groups, C_out]` (depthwise:
  `[KH, KW, 1, C]`); linear weights keep PyTorch's `[out, in]`;
- every op has static shapes; every verifier checks shapes, so a pass that builds a wrong op
  fails where it builds it, naming the op;
- the `*_grad*` ops are the adjoints autodiff emits; `sgd_update` applies one SGD step.
- SGD with momentum (PyTorch's rule, dampening 0, no Nesterov) is two guarded ops:
  `v' = sgd_momentum(v, g, loss) {momentum = m}` (`m * v + g`) feeds the gradient operand of the
  plain update (`sgd_update(p, v', loss)` = `p - lr * v'`, or `qsgd_update` for an integer
  parameter: `clamp(p - round_half_even(lr * v'))`). The buffer `v` is trained state (an f32
  argument of `@train_step` tied to its result like the parameters); both ops return their
  first operand unchanged when the step's loss is not finite, so a skipped step leaves `v` and
  `p` as they were.
"""

from typing import Any

from torch_mlir import ir
from torch_mlir.dialects.ext import Dialect, Operand, Pure, Result

__all__ = ["TinyTrain", "conv_output_hw"]


class TinyTrain(Dialect, name="tinytrain"):
    pass


Tensor = ir.RankedTensorType


def conv_output_hw(h: int, w: int, kh: int, kw: int, strides, padding) -> tuple[int, int]:
    """Output height/width of a convolution with symmetric zero padding (PyTorch's formula)."""
    return ((h + 2 * padding[0] - kh) // strides[0] + 1, (w + 2 * padding[1] - kw) // strides[1] + 1)


# ----------------------------------------------------------------------------------------------
# Verifier helpers. A verifier emits one error at the op's location and returns False.
# ----------------------------------------------------------------------------------------------


def _shape(v) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _fail(op, msg: str) -> bool:
    op.location.emit_error(f"'{op.OPERATION_NAME}' op {msg}")
    return False


def _i64_pair(op, name: str):
    if name not in op.attributes:
        return None
    attr = op.attributes[name]
    try:
        vals = list(ir.DenseI64ArrayAttr(attr))
    except (ValueError, TypeError):
        return None
    return vals if len(vals) == 2 and all(v >= 0 for v in vals) else None


def _typed_attr(op, name: str, cls):
    """The `.value` of attribute `name` if it is a `cls`, else None."""
    if name not in op.attributes:
        return None
    try:
        return cls(op.attributes[name]).value
    except (ValueError, TypeError):
        return None


def _all_f32(op, values) -> bool:
    f32 = ir.F32Type.get(context=op.context)
    return all(ir.RankedTensorType(v.type).element_type == f32 for v in values)


def _conv_attrs(op):
    """Returns (strides, padding, groups) or None after emitting an error."""
    strides = _i64_pair(op, "strides")
    padding = _i64_pair(op, "padding")
    if strides is None or min(strides) < 1:
        _fail(op, "requires 'strides' = array<i64: sh, sw> with positive entries")
        return None
    if padding is None:
        _fail(op, "requires 'padding' = array<i64: ph, pw> with non-negative entries")
        return None
    groups = _typed_attr(op, "groups", ir.IntegerAttr)
    if groups is None:
        _fail(op, "requires an integer 'groups' attribute")
        return None
    if groups < 1:
        _fail(op, f"requires groups >= 1, got {groups}")
        return None
    return strides, padding, groups


def _check_conv(op, x_shape, w_shape, y_shape) -> bool:
    """Shared shape rule of conv2d and its two gradients."""
    attrs = _conv_attrs(op)
    if attrs is None:
        return False
    strides, padding, groups = attrs
    if len(x_shape) != 4 or len(w_shape) != 4 or len(y_shape) != 4:
        return _fail(op, "expects rank-4 NHWC activations and a rank-4 HWIO weight")
    n, h, w, c = x_shape
    kh, kw, cg, f = w_shape
    if c % groups or f % groups or cg != c // groups:
        return _fail(
            op,
            f"weight {w_shape} does not match {c} input channels with groups={groups} "
            f"(expected [KH, KW, {c // groups if c % groups == 0 else '?'}, C_out])",
        )
    oh, ow = conv_output_hw(h, w, kh, kw, strides, padding)
    if oh < 1 or ow < 1:
        return _fail(op, f"kernel {kh}x{kw} does not fit the padded {h}x{w} input")
    if y_shape != [n, oh, ow, f]:
        return _fail(op, f"output shape {y_shape} differs from the expected {[n, oh, ow, f]}")
    return True


# ----------------------------------------------------------------------------------------------
# Forward ops
# ----------------------------------------------------------------------------------------------


class Conv2dOp(TinyTrain.Operation, name="conv2d", traits=[Pure]):
    """2-D convolution, NHWC x HWIO + bias -> NHWC. Covers dense, pointwise (1x1) and depthwise
    (`groups == C_in == C_out`) convolutions. A layer without bias gets a constant zero bias."""

    input: Operand[Tensor]
    weight: Operand[Tensor]
    bias: Operand[Tensor]
    strides: Any
    padding: Any
    groups: ir.IntegerAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if not _check_conv(self, _shape(self.input), _shape(self.weight), _shape(self.result)):
            return False
        if _shape(self.bias) != [_shape(self.weight)[3]]:
            return _fail(self, f"bias shape {_shape(self.bias)} must be [{_shape(self.weight)[3]}]")
        return True


class LinearOp(TinyTrain.Operation, name="linear", traits=[Pure]):
    """Fully connected layer: `[N, I] x [O, I]^T + [O] -> [N, O]`."""

    input: Operand[Tensor]
    weight: Operand[Tensor]
    bias: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, w, y = _shape(self.input), _shape(self.weight), _shape(self.result)
        if len(x) != 2 or len(w) != 2 or x[1] != w[1] or y != [x[0], w[0]]:
            return _fail(self, f"expects [N, I] x [O, I] -> [N, O], got {x} x {w} -> {y}")
        if _shape(self.bias) != [w[0]]:
            return _fail(self, f"bias shape {_shape(self.bias)} must be [{w[0]}]")
        return True


def _same_shape(op, *values) -> bool:
    shapes = [_shape(v) for v in values]
    if any(s != shapes[0] for s in shapes) or not _all_f32(op, values):
        return _fail(op, f"expects f32 operands and result of one shape, got {shapes}")
    return True


class AddOp(TinyTrain.Operation, name="add", traits=[Pure]):
    """Elementwise sum of two tensors of the same shape (residual connections)."""

    lhs: Operand[Tensor]
    rhs: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.lhs, self.rhs, self.result)


class ReluOp(TinyTrain.Operation, name="relu", traits=[Pure]):
    """`max(x, 0)`."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.input, self.result)


class Relu6Op(TinyTrain.Operation, name="relu6", traits=[Pure]):
    """`min(max(x, 0), 6)`."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.input, self.result)


class GlobalAvgPoolOp(TinyTrain.Operation, name="global_avg_pool", traits=[Pure]):
    """Mean over H and W: `[N, H, W, C] -> [N, C]`."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        if len(x) != 4 or y != [x[0], x[3]]:
            return _fail(self, f"expects [N, H, W, C] -> [N, C], got {x} -> {y}")
        return True


class ReshapeOp(TinyTrain.Operation, name="reshape", traits=[Pure]):
    """Row-major reshape to the result type (same number of elements)."""

    input: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        if _numel(x) != _numel(y):
            return _fail(self, f"cannot reshape {x} ({_numel(x)} elements) to {y} ({_numel(y)})")
        return True


class TransposeOp(TinyTrain.Operation, name="transpose", traits=[Pure]):
    """`result[i_p0, ..] = input[i_0, ..]`: `result.shape[k] = input.shape[permutation[k]]`."""

    input: Operand[Tensor]
    permutation: Any
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, y = _shape(self.input), _shape(self.result)
        if "permutation" not in self.attributes:
            return _fail(self, "requires 'permutation' = array<i64: ...>")
        try:
            perm = list(ir.DenseI64ArrayAttr(self.attributes["permutation"]))
        except (ValueError, TypeError):
            return _fail(self, "requires 'permutation' = array<i64: ...>")
        if sorted(perm) != list(range(len(x))) or y != [x[p] for p in perm]:
            return _fail(self, f"permutation {perm} does not map {x} to {y}")
        return True


class SoftmaxCrossEntropyOp(TinyTrain.Operation, name="softmax_cross_entropy", traits=[Pure]):
    """Mean softmax cross-entropy of logits `[N, K]` against integer labels `[N]` (i32) -> f32
    scalar. Labels must lie in `[0, K)`; the runtimes check that before a step."""

    logits: Operand[Tensor]
    labels: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _check_loss(self, rank0_result=True)


def _check_loss(op, rank0_result: bool) -> bool:
    z, lab, y = _shape(op.logits), _shape(op.labels), _shape(op.result)
    lab_t = ir.RankedTensorType(op.labels.type).element_type
    if len(z) != 2 or lab != [z[0]] or str(lab_t) not in ("i32", "i64"):
        return _fail(op, f"expects logits [N, K] and i32/i64 labels [N], got {z} and {lab}")
    if y != ([] if rank0_result else z):
        return _fail(op, f"result shape {y} must be {[] if rank0_result else z}")
    return True


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# ----------------------------------------------------------------------------------------------
# Gradient ops (emitted by the autodiff pass)
# ----------------------------------------------------------------------------------------------


class Conv2dGradInputOp(TinyTrain.Operation, name="conv2d_grad_input", traits=[Pure]):
    """Gradient of conv2d w.r.t. its input: `(dY [N,OH,OW,F], W [KH,KW,C/g,F]) -> dX [N,H,W,C]`
    (a transposed convolution). Attributes are those of the forward conv."""

    grad_output: Operand[Tensor]
    weight: Operand[Tensor]
    strides: Any
    padding: Any
    groups: ir.IntegerAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _check_conv(self, _shape(self.result), _shape(self.weight), _shape(self.grad_output))


class Conv2dGradInputAccOp(TinyTrain.Operation, name="conv2d_grad_input_acc", traits=[Pure]):
    """`accumulator + conv2d_grad_input(dY, W)`, the input gradient added to a running sum:
    `(acc [N,H,W,C], dY [N,OH,OW,F], W [KH,KW,C/g,F]) -> [N,H,W,C]`, each value summed onto its
    `acc` value in the reduction's own order (acc + t0 + t1 + ...). The sum is computed into the
    accumulator's storage when nothing else reads it (IREE ties the result to it), so a running
    sum of partial input gradients (`channel-groups`) needs one tensor, not an old and a new one.
    Attributes are those of the forward conv."""

    accumulator: Operand[Tensor]
    grad_output: Operand[Tensor]
    weight: Operand[Tensor]
    strides: Any
    padding: Any
    groups: ir.IntegerAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if _shape(self.accumulator) != _shape(self.result):
            return _fail(self, f"accumulator shape {_shape(self.accumulator)} differs from the result shape "
                               f"{_shape(self.result)}")
        return _check_conv(self, _shape(self.result), _shape(self.weight), _shape(self.grad_output))


class Conv2dGradWeightOp(TinyTrain.Operation, name="conv2d_grad_weight", traits=[Pure]):
    """Gradient of conv2d w.r.t. its weight: `(X [N,H,W,C], dY [N,OH,OW,F]) -> dW [KH,KW,C/g,F]`.
    The kernel size comes from the result type."""

    input: Operand[Tensor]
    grad_output: Operand[Tensor]
    strides: Any
    padding: Any
    groups: ir.IntegerAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _check_conv(self, _shape(self.input), _shape(self.result), _shape(self.grad_output))


class BiasGradOp(TinyTrain.Operation, name="bias_grad", traits=[Pure]):
    """Sum of `dY` over every dimension but the last (channels): `[..., C] -> [C]`."""

    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        g, y = _shape(self.grad_output), _shape(self.result)
        if len(g) < 2 or y != [g[-1]]:
            return _fail(self, f"expects [..., C] -> [C], got {g} -> {y}")
        return True


class LinearGradInputOp(TinyTrain.Operation, name="linear_grad_input", traits=[Pure]):
    """`dX = dY W`: `([N, O], [O, I]) -> [N, I]`."""

    grad_output: Operand[Tensor]
    weight: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        g, w, y = _shape(self.grad_output), _shape(self.weight), _shape(self.result)
        if len(g) != 2 or len(w) != 2 or g[1] != w[0] or y != [g[0], w[1]]:
            return _fail(self, f"expects [N, O] x [O, I] -> [N, I], got {g} x {w} -> {y}")
        return True


class LinearGradWeightOp(TinyTrain.Operation, name="linear_grad_weight", traits=[Pure]):
    """`dW = dY^T X`: `(X [N, I], dY [N, O]) -> [O, I]`."""

    input: Operand[Tensor]
    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        x, g, y = _shape(self.input), _shape(self.grad_output), _shape(self.result)
        if len(x) != 2 or len(g) != 2 or x[0] != g[0] or y != [g[1], x[1]]:
            return _fail(self, f"expects [N, I], [N, O] -> [O, I], got {x}, {g} -> {y}")
        return True


class ReluGradOp(TinyTrain.Operation, name="relu_grad", traits=[Pure]):
    """`dX = dY * (Y > 0)`, from the forward *output* Y (a 1-bit mask on device)."""

    output: Operand[Tensor]
    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.output, self.grad_output, self.result)


class Relu6GradOp(TinyTrain.Operation, name="relu6_grad", traits=[Pure]):
    """`dX = dY * (0 < Y < 6)`, from the forward output Y."""

    output: Operand[Tensor]
    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _same_shape(self, self.output, self.grad_output, self.result)


class GlobalAvgPoolGradOp(TinyTrain.Operation, name="global_avg_pool_grad", traits=[Pure]):
    """`dX[n, h, w, c] = dY[n, c] / (H W)`: `[N, C] -> [N, H, W, C]`."""

    grad_output: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        g, y = _shape(self.grad_output), _shape(self.result)
        if len(y) != 4 or g != [y[0], y[3]]:
            return _fail(self, f"expects [N, C] -> [N, H, W, C], got {g} -> {y}")
        return True


class SoftmaxCrossEntropyGradOp(TinyTrain.Operation, name="softmax_cross_entropy_grad", traits=[Pure]):
    """Gradient of the mean loss w.r.t. the logits: `(softmax(Z) - onehot(labels)) / N`."""

    logits: Operand[Tensor]
    labels: Operand[Tensor]
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _check_loss(self, rank0_result=False)


class SgdUpdateOp(TinyTrain.Operation, name="sgd_update", traits=[Pure]):
    """One plain SGD step, guarded: `param - lr * grad` when the step's `loss` (rank 0) is
    finite, else `param` unchanged, so a bad sample or an exploding step never writes NaN/Inf
    into the trained state (plain SGD, the paper's default; with momentum `grad` is the buffer
    step `sgd_momentum(v, g, loss)`)."""

    param: Operand[Tensor]
    grad: Operand[Tensor]
    loss: Operand[Tensor]
    lr: ir.FloatAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        return _check_guarded_update(self) and _same_shape(self, self.param, self.grad, self.result)


class SgdMomentumOp(TinyTrain.Operation, name="sgd_momentum", traits=[Pure]):
    """The momentum buffer's step, guarded: `momentum * buffer + grad` when the step's `loss`
    (rank 0) is finite, else `buffer` unchanged. Its result is the gradient operand of the
    parameter's `sgd_update` / `qsgd_update` (PyTorch's SGD: `v = m v + g; p = p - lr v`); the
    buffer and `grad` are f32 of the parameter's shape (for an int8 parameter: of the gradient of
    its integer value, after QAS)."""

    buffer: Operand[Tensor]
    grad: Operand[Tensor]
    loss: Operand[Tensor]
    momentum: ir.FloatAttr
    result: Result[Tensor]

    def verify_invariants(self) -> bool:
        if len(self.operation.operands) != 3:
            return _fail(self, f"expects 3 operands (buffer, grad, loss), got {len(self.operation.operands)}")
        m = _typed_attr(self, "momentum", ir.FloatAttr)
        if m is None:
            return _fail(self, "requires a float 'momentum' attribute")
        if not (0.0 < m < float("inf")):
            return _fail(self, f"requires a finite momentum > 0, got {m} (momentum 0 is plain SGD: no buffer)")
        if _shape(self.loss) != [] or not _all_f32(self, [self.loss]):
            return _fail(self, f"expects the step's loss as a rank-0 f32 tensor, got {self.loss.type}")
        return _same_shape(self, self.buffer, self.grad, self.result)


def _check_guarded_update(op) -> bool:
    """What every update op shares: operands (param, grad, loss), a float `lr`, a rank-0 f32 loss."""
    if len(op.operation.operands) != 3:
        return _fail(op, f"expects 3 operands (param, grad, loss), got {len(op.operation.operands)}")
    if _typed_attr(op, "lr", ir.FloatAttr) is None:
        return _fail(op, "requires a float 'lr' attribute")
    if _shape(op.loss) != [] or not _all_f32(op, [op.loss]):
        return _fail(op, f"expects the step's loss as a rank-0 f32 tensor, got {op.loss.type}")
    return True



