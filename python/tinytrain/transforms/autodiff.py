"""autodiff: forward function + loss -> one training function (paper Sec. 2.3, compile-time AD).

Precondition: the module has `func.func @forward(params..., input) -> logits [N, K]` made of
`tinytrain` forward ops; parameters are arguments tagged `{tinytrain.param = "<name>"}` and the
image is the argument tagged `{tinytrain.input}`.

Postcondition: the module holds
- `@train_step(trainable..., frozen..., input, labels: tensor<Nxi32>) -> (trainable'..., loss)`:
  forward, `softmax_cross_entropy`, reverse-mode backward, one `sgd_update` per trainable
  parameter. Each trainable argument carries `{iree.abi.output = i : index}` tying it to result
  `i`, so the runtime updates it in place;
- `@predict(trainable..., frozen..., input) -> logits`.

Only values that depend on a trainable parameter get a gradient: the backward pass stops at the
earliest layer that needs one, and no gradient is computed that nothing uses (a frozen layer's
weight gradient, or the input gradient of the first trainable layer, never appear).

Options:
- `trainable`: "all" (default) or a comma-separated list of parameter names; an unknown name is
  an error that lists the valid ones;
- `lr`: SGD learning rate (default 0.01);
- `gradients`: also emit `@gradients(...) -> (grads..., loss)`, the same backward pass without
  the update (for checking against another framework; default false).
"""

from __future__ import annotations

from torch_mlir import ir

from tinytrain.errors import CompileError
from tinytrain.irtext import (Emitter, dense_i64, func_args, func_ops, parse_module, shape_of,
                              tensor_type)

__all__ = ["AutodiffPass"]

_FORWARD_OPS = {
    "tinytrain.conv2d", "tinytrain.linear", "tinytrain.add", "tinytrain.relu", "tinytrain.relu6",
    "tinytrain.global_avg_pool", "tinytrain.reshape", "tinytrain.transpose", "arith.constant",
}


class AutodiffPass:
    name = "autodiff"

    def __init__(self, trainable: str | list[str] = "all", lr: float | str = 0.01,
                 gradients: bool | str = False):
        self.trainable = trainable
        self.lr = float(lr)
        self.gradients = str(gradients).lower() in ("1", "true")

    def _trainable_set(self, args) -> set[str]:
        names = [a.param for a in args if a.param]
        if self.trainable in ("all", "", None):
            return set(names)
        wanted = self.trainable.split(",") if isinstance(self.trainable, str) else list(self.trainable)
        wanted = [w.strip() for w in wanted if w.strip()]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise CompileError(
                f"autodiff: unknown trainable parameter(s) {unknown}; the model's parameters are: "
                + ", ".join(names), stage=self.name)
        return set(wanted)

    def run(self, module, ctx):
        funcs = func_ops(module)
        if "forward" not in funcs:
            raise CompileError("autodiff: the module has no @forward function", stage=self.name)
        fwd = funcs["forward"]
        args = func_args(fwd)
        trainable = self._trainable_set(args)
        inputs = [a for a in args if "tinytrain.input" in a.attrs]
        if len(inputs) != 1:
            raise CompileError("autodiff: @forward needs exactly one {tinytrain.input} argument",
                               stage=self.name)
        train_args = [a for a in args if a.param in trainable]
        frozen_args = [a for a in args if a.param and a.param not in trainable]
        ordered = train_args + frozen_args + inputs
        ops = list(fwd.regions[0].blocks[0].operations)
        for op in ops[:-1]:
            if op.name not in _FORWARD_OPS:
                raise CompileError(f"autodiff: no gradient rule for '{op.name}' at {op.location}",
                                   stage=self.name)
        text = "module {\n" + self._train_step(ordered, len(train_args), ops) + "\n"
        text += self._predict(ordered, len(train_args), ops) + "\n"
        if self.gradients:
            text += self._train_step(ordered, len(train_args), ops, update=False) + "\n"
        text += "}\n"
        return parse_module(text, ctx, stage=self.name)

    # ------------------------------------------------------------------------------------------
    def _bind_args(self, em: Emitter, ordered, n_train: int) -> tuple[dict, list]:
        """Declare the arguments; trained parameters get the `tinytrain.trainable` marker."""
        names, sig = {}, []
        for i, a in enumerate(ordered):
            n = em.declare(f"%arg{i}", a.type)
            names[a.value] = n
            sig.append([n, a.type, a, {"tinytrain.trainable": "unit"} if i < n_train else {}])
        return names, sig

    def _predict(self, ordered, n_train: int, ops) -> str:
        em = Emitter()
        names, sig = self._bind_args(em, ordered, n_train)
        for op in ops[:-1]:
            em.copy(op, names)
        out = names[ops[-1].operands[0]]
        return em.function("predict", [(n, t, a.attr_text(m)) for n, t, a, m in sig], [out])

    def _train_step(self, ordered, n_train: int, ops, update: bool = True) -> str:
        """`@train_step`, or with `update=False` `@gradients(...) -> (grads..., loss)`."""
        em = Emitter()
        names, sig = self._bind_args(em, ordered, n_train)
        logits_v = ops[-1].operands[0]
        batch = shape_of(logits_v)[0]
        labels = em.declare("%labels", tensor_type([batch], "i32"))

        # Forward; `needs` = values that depend on a trainable parameter.
        needs = {a.value for a in ordered[:n_train]}
        for op in ops[:-1]:
            em.copy(op, names)
            if any(v in needs for v in op.operands):
                needs.add(op.results[0])
        logits = names[logits_v]
        loc = str(ops[-1].location)
        loss = em.op("tinytrain.softmax_cross_entropy", [logits, labels], "tensor<f32>", loc=loc)

        grads = _Grads(em, needs)
        if logits_v in needs:
            grads.add(logits_v, em.op("tinytrain.softmax_cross_entropy_grad", [logits, labels],
                                      em.types[logits], loc=loc))
        for op in reversed(ops[:-1]):
            g = grads.pop(op.results[0])
            if g is not None:
                self._backward(em, op, names, g, grads)

        results = []
        for a in ordered[:n_train]:
            g = grads.pop(a.value)
            if not update:
                results.append(g if g is not None else em.op(
                    "arith.constant", [], a.type, {"value": f"dense<0.000000e+00> : {a.type}"}))
            elif g is None:
                results.append(names[a.value])  # unused parameter: returned unchanged
            else:
                results.append(em.op("tinytrain.sgd_update", [names[a.value], g], a.type,
                                     {"lr": f"{self.lr!r} : f32"}))
        args = []
        for i, (n, t, a, marks) in enumerate(sig):
            if i < n_train and update:
                marks = dict(marks, **{"iree.abi.output": f"{i} : index"})
            args.append((n, t, a.attr_text(marks)))
        args.append((labels, em.types[labels], "{tinytrain.labels}"))
        return em.function("train_step" if update else "gradients", args, results + [loss])

    def _backward(self, em: Emitter, op, names, g: str, grads: "_Grads") -> None:
        """Emit the adjoint of one forward op given its result gradient `g`."""
        loc = str(op.location)
        kind = op.name
        operands = list(op.operands)
        attrs = {k: str(op.attributes[k]) for k in ("strides", "padding", "groups")
                 if k in op.attributes}
        if kind == "tinytrain.conv2d":
            x, w, b = operands
            if grads.wanted(x):
                grads.add(x, em.op("tinytrain.conv2d_grad_input", [g, names[w]], str(x.type), attrs, loc))
            if grads.wanted(w):
                grads.add(w, em.op("tinytrain.conv2d_grad_weight", [names[x], g], str(w.type), attrs, loc))
            if grads.wanted(b):
                grads.add(b, em.op("tinytrain.bias_grad", [g], str(b.type), loc=loc))
        elif kind == "tinytrain.linear":
            x, w, b = operands
            if grads.wanted(x):
                grads.add(x, em.op("tinytrain.linear_grad_input", [g, names[w]], str(x.type), loc=loc))
            if grads.wanted(w):
                grads.add(w, em.op("tinytrain.linear_grad_weight", [names[x], g], str(w.type), loc=loc))
            if grads.wanted(b):
                grads.add(b, em.op("tinytrain.bias_grad", [g], str(b.type), loc=loc))
        elif kind == "tinytrain.add":
            for v in operands:
                grads.add(v, g)
        elif not grads.wanted(operands[0]):
            return  # unary op whose input needs no gradient
        elif kind in ("tinytrain.relu", "tinytrain.relu6"):
            y = names[op.results[0]]
            grads.add(operands[0], em.op(kind + "_grad", [y, g], em.types[g], loc=loc))
        elif kind == "tinytrain.global_avg_pool":
            grads.add(operands[0], em.op("tinytrain.global_avg_pool_grad", [g], str(operands[0].type), loc=loc))
        elif kind == "tinytrain.reshape":
            grads.add(operands[0], em.op("tinytrain.reshape", [g], str(operands[0].type), loc=loc))
        elif kind == "tinytrain.transpose":
            perm = list(ir.DenseI64ArrayAttr(op.attributes["permutation"]))
            inv = [perm.index(i) for i in range(len(perm))]
            grads.add(operands[0], em.op("tinytrain.transpose", [g], str(operands[0].type),
                                         {"permutation": dense_i64(inv)}, loc))


class _Grads:
    """Gradient of each value that needs one; fan-out contributions are summed with `add`."""

    def __init__(self, em: Emitter, needs: set):
        self.em, self.needs, self.grads = em, needs, {}

    def wanted(self, value) -> bool:
        return value in self.needs

    def add(self, value, g: str) -> None:
        if value not in self.needs:
            return
        if value in self.grads:
            g = self.em.op("tinytrain.add", [self.grads[value], g], self.em.types[g])
        self.grads[value] = g

    def pop(self, value) -> str | None:
        return self.grads.pop(value, None)
