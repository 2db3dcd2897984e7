"""`grad-storage`: keep the activation gradients of the backward pass in bfloat16 between ops, so
that every one IREE stores between two kernels takes half the bytes (issue #9).

With fp32 gradients the backward pass of a trained 8x8 inverted-residual block holds two whole
8x8x32 fp32 tensors (the projection's masked output gradient, read by every channel group, and
the accumulator of the block's input gradient), 16,384 B: more than ProxylessNAS-w0.3's `98kb`
scheme leaves for all activations under issue #9's goal. The paper's text computes the backward
pass in int8 (its released engine in fp32); this is the storage half of that: every kernel still
computes in fp32 (its inputs widened, its sums in fp32), and only what it writes is rounded to
bfloat16 (8 bits of mantissa, fp32's exponent range: no scale to compute, no overflow where fp32
has none).

What is rounded: the f32 result of every op that makes an activation gradient
(`conv2d_grad_input`, `conv2d_grad_input_acc`, `qclamp_grad`, `qmask_grad`,
`global_avg_pool_grad`, `linear_grad_input`, the ReLU gradients, and `add`, `slice`, `concat`
of gradients) when another op reads it: `arith.truncf` to bf16 right after it, `arith.extf`
back to f32 for its readers (a `util.optimization_barrier` carries the bf16 value and its result
is widened behind it). IREE fuses the rounding into the kernel that writes the value and the
widening into each kernel that reads it, so the tensor between them is bf16. Weight and bias
gradients and the updates stay fp32 (the SGD step is the one place where a gradient's low bits
decide a rounding of the int8 weight). The numbers change: every activation gradient is rounded
to 8 significant bits (round to nearest even) once per op; host and device compute the same
roundings (`arith.truncf` is exact IEEE rounding on both).

Options: `dtype` ("bf16"; "f32" leaves the program as it is).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch_mlir import ir
from torch_mlir.dialects import arith

from tinytrain.errors import CompileError
from tinytrain.irfuncs import optimization_barrier
from tinytrain.passes import ModulePass
from tinytrain.transforms.patch_stage import for_each_func

__all__ = ["GradStoragePass", "GRADIENT_OPS"]

#: ops whose f32 result is an activation gradient
GRADIENT_OPS = frozenset(f"tinytrain.{n}" for n in (
    "conv2d_grad_input", "conv2d_grad_input_acc", "qclamp_grad", "qmask_grad", "global_avg_pool_grad",
    "linear_grad_input", "relu_grad", "relu6_grad", "hardswish_grad", "hardsigmoid_grad", "sigmoid_grad",
    "leaky_relu_grad", "max_pool2d_grad", "avg_pool2d_grad"))
#: ops that make an activation gradient when one of their operands is one
_PASS_THROUGH = frozenset(("tinytrain.add", "tinytrain.slice", "tinytrain.concat", "tinytrain.reshape"))


def _f32_tensor(v: ir.Value) -> bool:
    return isinstance(v.type, ir.RankedTensorType) and isinstance(ir.RankedTensorType(v.type).element_type, ir.F32Type)


@dataclasses.dataclass(frozen=True)
class GradStoragePass(ModulePass):
    argument: ClassVar[str] = "grad-storage"
    summary: ClassVar[str] = ("Store the backward pass's activation gradients in bfloat16 between ops "
                              "(computed in fp32; half the bytes).")
    option_docs: ClassVar[dict[str, str]] = {"dtype": "the stored type: bf16, or f32 (no change)"}

    dtype: str = "bf16"

    def run(self, module: ir.Operation) -> None:
        if self.dtype not in ("bf16", "f32"):
            raise CompileError(f"grad-storage: dtype must be bf16 or f32, got {self.dtype!r}", stage=self.argument)
        if self.dtype == "bf16":
            for_each_func(module, self._run_func)

    def _run_func(self, fn) -> None:
        grads: set = set()
        todo = []
        for op in fn.regions[0].blocks[0].operations:
            name = op.operation.name
            if name in GRADIENT_OPS or (name in _PASS_THROUGH and any(
                    not isinstance(u.owner, ir.Block) and u.owner.operation in grads for u in op.operands)):
                if len(op.results) == 1 and _f32_tensor(op.results[0]):
                    grads.add(op.operation)
                    todo.append(op)
        bf16 = ir.BF16Type.get()
        for op in todo:
            v = op.results[0]
            readers = [(u.owner, u.operand_number) for u in v.uses]
            if not readers:
                continue
            shape = ir.RankedTensorType(v.type).shape
            with ir.InsertionPoint(op), op.location:
                narrow = arith.TruncFOp(ir.RankedTensorType.get(shape, bf16), v)
                wide = arith.ExtFOp(v.type, narrow.result)
            narrow.operation.move_after(op.operation)
            wide.operation.move_after(narrow.operation)
            for owner, i in readers:
                owner.operands[i] = wide.result
            _through_barriers(wide)


def _through_barriers(wide) -> None:
    """Carry the bf16 value, not its f32 widening, through every `util.optimization_barrier` that
    reads `wide` (an `arith.extf`), and widen the barrier's result for its readers instead: IREE
    cannot fuse a widening into the kernels behind a barrier, so it would store the f32 tensor
    (the channel groups' shared gradients pass through barriers)."""
    narrow = wide.operands[0]
    for use in list(wide.result.uses):
        bar = use.owner
        if bar.name != "util.optimization_barrier":
            continue
        operands = list(bar.operands)
        i = use.operand_number
        operands[i] = narrow
        with ir.InsertionPoint(bar), bar.location:
            new = optimization_barrier(operands)
            widened = arith.ExtFOp(wide.result.type, new[i])
        for j, (old, v) in enumerate(zip(bar.results, new)):
            old.replace_all_uses_with(widened.result if j == i else v)
        new_bar = new[0].owner
        widened.operation.move_after(new_bar)
        bar.erase()
        _through_barriers(widened)
    if not list(wide.result.uses):
        wide.operation.erase()
