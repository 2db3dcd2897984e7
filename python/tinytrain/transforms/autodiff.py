"""autodiff: forward function + loss -> one training function (paper Sec. 2.3, compile-time AD).

Precondition: the module has `func.func @forward(params..., input) -> logits [N, K]` made of
`tinytrain` forward ops; parameters are arguments tagged `{tinytrain.param = "<name>"}` and the
image is the argument tagged `{tinytrain.input}`.

Postcondition: `@forward` is replaced by
- `@train_step(trainable..., frozen..., input, labels: tensor<Nxi32>) -> (trainable'..., loss)`:
  forward, `softmax_cross_entropy`, reverse-mode backward, one `sgd_update` per trainable
  parameter (guarded by the loss: a step whose loss is not finite leaves every parameter as it
  was). Each trainable argument carries `{iree.abi.output = i : index}` tying it to result
  `i`, so the runtime updates it in place;
- `@predict(trainable..., frozen..., input) -> logits`;
- with `gradients=true`, `@gradients(...) -> (grads..., loss)`: the same backward pass without
  the update (for checking against another framework).

With `momentum=m > 0` (SGD with momentum, PyTorch's rule: `v = m v + g; p = p - lr v`, dampening
0, no Nesterov) every trainable parameter `p` gets a momentum buffer: an f32 argument of its shape
placed right after the trainable ones, `{tinytrain.momentum_buffer = "<p's name>"}`, tied to its
result like the parameters (`@train_step(trainable..., buffers..., frozen..., input, labels) ->
(trainable'..., buffers'..., loss)`); its update is `v' = sgd_momentum(v, g, loss)`, whose result
is the gradient operand of `p`'s `sgd_update` / `qsgd_update` (both guarded by the loss).
`@predict` and `@gradients` take the parameters only (the leading part of the state, which is
what the device runtime binds for them). `momentum=0` (the default) builds plain SGD, without
buffers.

Only values that depend on a trainable parameter get a gradient: the backward pass stops at the
earliest layer that needs one, and no gradient is computed that nothing uses (a frozen layer's
weight gradient, or the input gradient of the first trainable layer, never appear).

The pass builds IR with the dialect's op builders: each new function takes the forward ops over
from a clone of `@forward` (so they keep their attributes and locations), then the loss, the
adjoint ops (one rule per forward op in `_RULES`) and the updates are created after them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar

from torch_mlir import ir
from torch_mlir.dialects import arith, func

from tinytrain.dialects import tinytrain as tt
from tinytrain.dialects import tinytrain_layers as tl
from tinytrain.dialects import tinytrain_quant as tq
from tinytrain.errors import CompileError
from tinytrain.irfuncs import arg_attrs
from tinytrain.passes import ModulePass

__all__ = ["AutodiffPass"]


def _funcs(module: ir.Operation) -> dict[str, func.FuncOp]:
    out = {}
    for op in module.regions[0].blocks[0].operations:
        if op.operation.name == "func.func":
            out[ir.StringAttr(op.attributes["sym_name"]).value] = op.opview
    return out


@dataclasses.dataclass
class _Arg:
    index: int                    # position in @forward
    type: ir.Type
    attrs: dict[str, ir.Attribute]

    @property
    def param(self) -> str | None:
        a = self.attrs.get("tinytrain.param")
        return ir.StringAttr(a).value if a is not None else None


@dataclasses.dataclass(frozen=True)
class AutodiffPass(ModulePass):
    argument: ClassVar[str] = "autodiff"
    summary: ClassVar[str] = ("Build @train_step (forward, loss, backward, SGD update), @predict "
                              "and optionally @gradients from @forward.")
    option_docs: ClassVar[dict[str, str]] = {
        "trainable": "'all' or a comma-separated list of parameter names to train",
        "lr": "SGD learning rate",
        "gradients": "also emit @gradients (the backward pass without the update)",
        "momentum": "SGD momentum m (v = m v + g; p -= lr v, as torch.optim.SGD); 0 = plain SGD, "
                    "> 0 adds one f32 momentum buffer per trainable parameter as trained state",
        "clamp_masks": "int8 graphs: keep a packed 1-bit clamp mask instead of the int8 output of a conv "
                       "whose weight is not trained (qclamp_mask / qmask_grad); follow it with "
                       "pin-clamp-masks, or IREE may pack each mask in backward and keep the output "
                       "anyway (tinytrain.int8 turns both on for Cortex-M targets)",
    }

    trainable: tuple[str, ...] = ("all",)
    lr: float = 0.01
    gradients: bool = False
    momentum: float = 0.0
    clamp_masks: bool = False

    def run(self, module: ir.Operation) -> None:
        if not (0.0 <= self.momentum < float("inf")):
            raise CompileError(f"autodiff: momentum must be a finite number >= 0, got {self.momentum}",
                               stage=self.argument, loc=module.location)
        funcs = _funcs(module)
        if "forward" not in funcs:
            raise CompileError("autodiff: the module has no @forward function", stage=self.argument,
                               loc=module.location)
        fwd = funcs["forward"]
        body = fwd.regions[0].blocks[0]
        args = [_Arg(i, a.type, attrs) for i, (a, attrs) in enumerate(zip(body.arguments, arg_attrs(fwd)))]
        trainable = self._trainable_set(args)
        inputs = [a for a in args if "tinytrain.input" in a.attrs]
        if len(inputs) != 1:
            raise CompileError("autodiff: @forward needs exactly one {tinytrain.input} argument",
                               stage=self.argument, loc=fwd.location)
        ops = list(body.operations)
        for op in ops[:-1]:
            if op.operation.name not in _RULES and op.operation.name != "arith.constant":
                raise CompileError(f"autodiff: no gradient rule for '{op.operation.name}' at {op.location}",
                                   stage=self.argument, loc=op.location)
        logits_t = ir.RankedTensorType(ops[-1].operands[0].type)
        if str(logits_t.element_type) != "f32":
            raise CompileError(f"autodiff: @forward must return f32 logits for the loss, got {logits_t}; an int8 "
                               "graph trains with its fp32 classifier head (build_forward(..., classifier='fp32'))",
                               stage=self.argument, loc=fwd.location)
        if logits_t.rank != 2:
            raise CompileError(f"autodiff: @forward must return logits [N, classes], got {logits_t}",
                               stage=self.argument, loc=fwd.location)
        train_args = [a for a in args if a.param in trainable]
        frozen_args = [a for a in args if a.param and a.param not in trainable]
        ordered = train_args + frozen_args + inputs
        with ir.InsertionPoint(module.regions[0].blocks[0]), fwd.location:
            self._build(fwd, "train_step", ordered, len(train_args), update=True)
            self._build(fwd, "predict", ordered, len(train_args), update=None)
            if self.gradients:
                self._build(fwd, "gradients", ordered, len(train_args), update=False)
        fwd.operation.erase()

    # ------------------------------------------------------------------------------------------
    def _trainable_set(self, args: list[_Arg]) -> set[str]:
        # `{tinytrain.frozen}`: the frozen rest of a sparse-update weight, never trained
        names = [a.param for a in args if a.param and "tinytrain.frozen" not in a.attrs]
        wanted = [w.strip() for w in self.trainable if w.strip()]
        if wanted in ([], ["all"]):
            return set(names)
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise CompileError(
                f"autodiff: unknown trainable parameter(s) {unknown}; the model's parameters are: "
                + ", ".join(names), stage=self.argument)
        return set(wanted)

    def _build(self, fwd: func.FuncOp, name: str, ordered: list[_Arg], n_train: int, update) -> None:
        """Create `@name`. `update`: True = train_step, False = gradients, None = predict."""
        f32 = ir.F32Type.get()
        logits_t = ir.RankedTensorType(fwd.regions[0].blocks[0].operations[len(fwd.regions[0].blocks[0].operations) - 1].operands[0].type)
        labels_t = ir.RankedTensorType.get([logits_t.shape[0]], ir.IntegerType.get_signless(32))
        loss_t = ir.RankedTensorType.get([], f32)
        # Momentum buffers (f32, one per trainable parameter) follow the trainable arguments.
        buf_types = [_grad_type(a.type) for a in ordered[:n_train]] if self.momentum and update else []
        n_buf = len(buf_types)
        in_types = [a.type for a in ordered[:n_train]] + buf_types + [a.type for a in ordered[n_train:]]
        if update is None:
            res_types = [logits_t]
        else:
            in_types.append(labels_t)
            # @gradients returns the f32 gradient of an integer (int8 graph) parameter
            res_types = [a.type if update else _grad_type(a.type) for a in ordered[:n_train]]
            res_types += buf_types + [loss_t]
        new = func.FuncOp(name, ir.FunctionType.get(in_types, res_types))
        index_t = ir.IndexType.get()
        attrs = []
        for i, a in enumerate(ordered):
            d = dict(a.attrs)
            if i < n_train:
                d["tinytrain.trainable"] = ir.UnitAttr.get()
                if update:
                    d["iree.abi.output"] = ir.IntegerAttr.get(index_t, i)
            attrs.append(ir.DictAttr.get(d))
        for j in range(n_buf):
            attrs.insert(n_train + j, ir.DictAttr.get({
                "tinytrain.momentum_buffer": ir.StringAttr.get(ordered[j].param),
                "iree.abi.output": ir.IntegerAttr.get(index_t, n_train + j)}))
        if update is not None:
            attrs.append(ir.DictAttr.get({"tinytrain.labels": ir.UnitAttr.get()}))
        new.arg_attrs = ir.ArrayAttr.get(attrs)
        entry = new.add_entry_block()

        # Take the forward ops over from a clone of @forward, then rebind its arguments.
        clone = fwd.operation.clone(ip=False)
        cbody = clone.regions[0].blocks[0]
        for op in list(cbody.operations):
            entry.append(op.detach_from_parent())
        for pos, a in enumerate(ordered):
            cbody.arguments[a.index].replace_all_uses_with(entry.arguments[pos if pos < n_train else pos + n_buf])
        clone.erase()
        ops = list(entry.operations)
        ret = ops[-1]
        logits = ret.operands[0]
        with ir.InsertionPoint(ret):
            if update is None:
                func.ReturnOp([logits], loc=ret.location)
            else:
                results, loss = self._backward(ops[:-1], entry, n_train, n_buf, logits, update)
                func.ReturnOp(results + [loss], loc=ret.location)
        ret.erase()

    def _backward(self, ops, entry, n_train, n_buf, logits, update: bool):
        params = [entry.arguments[i] for i in range(n_train)]
        buffers = [entry.arguments[n_train + j] for j in range(n_buf)]
        labels = entry.arguments[len(entry.arguments) - 1]
        loc = ops[-1].location if ops else ir.Location.unknown()
        # Forward values that depend on a trainable parameter need a gradient.
        needs = set(params)
        for op in ops:
            if any(v in needs for v in op.operands):
                needs.update(op.results)
        loss_t = ir.RankedTensorType.get([], ir.F32Type.get())
        loss = tt.SoftmaxCrossEntropyOp(logits, labels, loss_t, loc=loc).result
        grads = _Grads(needs, clamp_masks=self.clamp_masks)
        if logits in needs:
            grads.add(logits, tt.SoftmaxCrossEntropyGradOp(logits, labels, logits.type, loc=loc).result)
        for op in reversed(ops):
            if op.operation.name == "arith.constant":
                continue
            g = grads.pop(op.results[0])
            if g is not None:
                _RULES[op.operation.name](op, g, grads)
        results, new_buffers = [], list(buffers)
        lr = ir.FloatAttr.get(ir.F32Type.get(), self.lr)
        m = ir.FloatAttr.get(ir.F32Type.get(), self.momentum)
        for i, p in enumerate(params):
            g = grads.pop(p)
            if not update:
                results.append(g if g is not None else _zeros(_grad_type(p.type)))
            elif g is None:
                results.append(p)  # the loss does not depend on it: returned unchanged (and its buffer)
            else:
                if buffers:  # v' = m v + g is the step's direction (PyTorch's SGD momentum)
                    g = new_buffers[i] = tt.SgdMomentumOp(buffers[i], g, loss, m, g.type, loc=loc).result
                upd = tq.QSgdUpdateOp if is_integer_param(p) else tt.SgdUpdateOp
                results.append(upd(p, g, loss, lr, p.type, loc=loc).result)
        return results + new_buffers, loss


def _grad_type(ty: ir.Type) -> ir.Type:
    """The type of a parameter's gradient: f32 of its shape (integer parameters included)."""
    return ir.RankedTensorType.get(list(ir.RankedTensorType(ty).shape), ir.F32Type.get())


def _zeros(ty: ir.Type) -> ir.Value:
    t = ir.RankedTensorType(ty)
    return arith.ConstantOp(t, ir.DenseElementsAttr.get_splat(t, ir.FloatAttr.get(t.element_type, 0.0))).result


class _Grads:
    """Gradient of each value that needs one; fan-out contributions are summed with `add`."""

    def __init__(self, needs: set, clamp_masks: bool = False):
        self.needs, self.grads = needs, {}
        self.clamp_masks = clamp_masks  #: int8 rules: pack clamp masks (`autodiff_int8._qconv2d`)

    def wanted(self, value) -> bool:
        return value in self.needs

    def add(self, value, g: ir.Value) -> None:
        if value not in self.needs:
            return
        if value in self.grads:
            g = tt.AddOp(self.grads[value], g, g.type, loc=g.owner.location).result
        self.grads[value] = g

    def pop(self, value) -> ir.Value | None:
        return self.grads.pop(value, None)


# ----------------------------------------------------------------------------------------------
# Adjoint rules: (forward op, gradient of its result, gradients) -> adds its operands' gradients.
# Built at the current insertion point (after the loss), at the forward op's location.
# ----------------------------------------------------------------------------------------------


def _conv2d(op, g, grads: _Grads) -> None:
    x, w, b = op.operands
    a = op.attributes
    loc = op.location
    if grads.wanted(x):
        grads.add(x, tt.Conv2dGradInputOp(g, w, a["strides"], a["padding"], a["groups"], x.type, loc=loc).result)
    if grads.wanted(w):
        grads.add(w, tt.Conv2dGradWeightOp(x, g, a["strides"], a["padding"], a["groups"], w.type, loc=loc).result)
    if grads.wanted(b):
        grads.add(b, tt.BiasGradOp(g, b.type, loc=loc).result)


def _linear(op, g, grads: _Grads) -> None:
    x, w, b = op.operands
    loc = op.location
    if grads.wanted(x):
        grads.add(x, tt.LinearGradInputOp(g, w, x.type, loc=loc).result)
    if grads.wanted(w):
        grads.add(w, tt.LinearGradWeightOp(x, g, w.type, loc=loc).result)
    if grads.wanted(b):
        grads.add(b, tt.BiasGradOp(g, b.type, loc=loc).result)


def _add(op, g, grads: _Grads) -> None:
    for v in op.operands:
        grads.add(v, g)


def _unary(make: Callable) -> Callable:
    """A rule for a one-operand op: skipped when its input needs no gradient."""

    def rule(op, g, grads: _Grads) -> None:
        x = op.operands[0]
        if grads.wanted(x):
            grads.add(x, make(op, x, g).result)

    return rule


def _transpose_grad(op, x, g):
    perm = list(ir.DenseI64ArrayAttr(op.attributes["permutation"]))
    inv = [perm.index(i) for i in range(len(perm))]
    return tt.TransposeOp(g, ir.DenseI64ArrayAttr.get(inv), x.type, loc=op.location)


def _dense(values) -> ir.DenseI64ArrayAttr:
    return ir.DenseI64ArrayAttr.get([int(v) for v in values])


def _shape_of(v) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _pad_grad(op, x, g):
    low = list(ir.DenseI64ArrayAttr(op.attributes["low"]))
    return tl.SliceOp(g, _dense(low), x.type, loc=op.location)


def _slice_grad(op, x, g):
    off = list(ir.DenseI64ArrayAttr(op.attributes["offsets"]))
    high = [d - o - s for d, o, s in zip(_shape_of(x), off, _shape_of(op.results[0]))]
    return tl.PadOp(g, _dense(off), _dense(high), x.type, loc=op.location)


def _concat(op, g, grads: _Grads) -> None:
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    start = 0
    for v in op.operands:
        shape = _shape_of(v)
        if grads.wanted(v):
            off = [start if d == axis else 0 for d in range(len(shape))]
            grads.add(v, tl.SliceOp(g, _dense(off), _grad_type(v.type), loc=op.location).result)  # f32 for i8 too
        start += shape[axis]


def _pool_grad(kind):
    def make(op, x, g):
        a = op.attributes
        if kind == "max":
            return tl.MaxPool2dGradOp(x, g, a["kernel"], a["strides"], a["padding"], x.type, loc=op.location)
        return tl.AvgPool2dGradOp(g, a["kernel"], a["strides"], a["padding"], a["divisor"], x.type,
                                  loc=op.location)
    return make


def _mul(op, g, grads: _Grads) -> None:
    lhs, rhs = op.operands
    if grads.wanted(lhs):
        grads.add(lhs, tl.MulOp(g, rhs, lhs.type, loc=op.location).result)
    if grads.wanted(rhs):
        prod = tl.MulOp(g, lhs, lhs.type, loc=op.location).result
        grads.add(rhs, tl.SumToOp(prod, rhs.type, loc=op.location).result)


def _channel_affine(op, g, grads: _Grads) -> None:
    x, scale, shift = op.operands
    loc = op.location
    if grads.wanted(x):
        grads.add(x, tl.MulOp(g, scale, x.type, loc=loc).result)
    if grads.wanted(scale):
        prod = tl.MulOp(g, x, x.type, loc=loc).result
        grads.add(scale, tt.BiasGradOp(prod, scale.type, loc=loc).result)
    if grads.wanted(shift):
        grads.add(shift, tt.BiasGradOp(g, shift.type, loc=loc).result)


_RULES: dict[str, Callable] = {
    "tinytrain.conv2d": _conv2d,
    "tinytrain.linear": _linear,
    "tinytrain.add": _add,
    "tinytrain.relu": _unary(lambda op, x, g: tt.ReluGradOp(op.results[0], g, g.type, loc=op.location)),
    "tinytrain.relu6": _unary(lambda op, x, g: tt.Relu6GradOp(op.results[0], g, g.type, loc=op.location)),
    "tinytrain.global_avg_pool": _unary(lambda op, x, g: tt.GlobalAvgPoolGradOp(g, x.type, loc=op.location)),
    "tinytrain.reshape": _unary(lambda op, x, g: tt.ReshapeOp(g, x.type, loc=op.location)),
    "tinytrain.transpose": _unary(_transpose_grad),
    "tinytrain.pad": _unary(_pad_grad),
    "tinytrain.slice": _unary(_slice_grad),
    "tinytrain.concat": _concat,
    "tinytrain.max_pool2d": _unary(_pool_grad("max")),
    "tinytrain.avg_pool2d": _unary(_pool_grad("avg")),
    "tinytrain.hardswish": _unary(lambda op, x, g: tl.HardswishGradOp(x, g, g.type, loc=op.location)),
    "tinytrain.hardsigmoid": _unary(lambda op, x, g: tl.HardsigmoidGradOp(x, g, g.type, loc=op.location)),
    "tinytrain.sigmoid": _unary(lambda op, x, g: tl.SigmoidGradOp(op.results[0], g, g.type, loc=op.location)),
    "tinytrain.leaky_relu": _unary(
        lambda op, x, g: tl.LeakyReluGradOp(x, g, op.attributes["alpha"], g.type, loc=op.location)),
    "tinytrain.mul": _mul,
    "tinytrain.channel_affine": _channel_affine,
}

# int8 ops (the training of the real int8 graph; design in autodiff_int8's docstring).
from .autodiff_int8 import INT8_RULES, f32_like, is_integer_param  # noqa: E402

_RULES.update(INT8_RULES)
