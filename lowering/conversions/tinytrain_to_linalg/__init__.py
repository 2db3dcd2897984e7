"""tinytrain -> linalg-on-tensors (+ tensor, arith, math): the input IREE compiles.

The conversion is a set of conversion patterns, one per `tinytrain` op, grouped by op family in
this package (`conv`, `linear`, `elementwise`, `pool`, `shape`, `loss`; the layer ops of issue #7
in `layers_shape`, `layers_pool`, `layers_activation`, `layers_broadcast`; `quant` for the int8
ops; shared op builders in `builders`). Each pattern builds linalg with the bindings' op builders
under the rewriter's insertion point and the op's location, and replaces the op. Named convolutions are used where
they exist, so IREE's tuned conv paths apply; `linalg.generic` elsewhere. The driver applies them
with `apply_partial_conversion` and a `ConversionTarget` on which the `tinytrain` dialect is
illegal: no tinytrain op survives. An op without a pattern is reported before the conversion
starts, as a `CompileError` naming the op and its location; a pattern refusing an op (e.g. a
conv gradient whose padding exceeds kernel-1) raises a `CompileError` the same way.

Function signatures are kept: trained parameters stay arguments tied to results
(`iree.abi.output`); the backward pass's reads of such an argument are ordered before its
in-place update with IREE `util.optimization_barrier`s, without a copy (`tied`). Frozen parameters: when `values` (name -> array) is given, every argument
tagged `tinytrain.param` but not `tinytrain.trainable` becomes an `arith.constant` holding a
`DenseResourceElementsAttr` built from the array (one resource per parameter, shared by every
function) and is removed from the signature; IREE then places it with the other constants (flash
on a microcontroller). Without `values` (e.g. in lit tests) they stay arguments.

Gradient lowering, in words (paper Sec. 2.3):
- conv input-gradient = stride-1 convolution of the zero-dilated, padded output gradient with the
  spatially flipped, in/out-transposed kernel (`conv_2d_nhwc_hwcf` / `depthwise_conv_2d_nhwc_hwc`;
  `convgrad=im2col`, the host's), or (`convgrad=direct`, Cortex-M) the same sum as one
  `linalg.generic` reading dY at clamped indices, out-of-range taps selecting 0 (no padded copy);
- conv weight-gradient = a contraction of the padded input with the output gradient over
  (N, OH, OW) at stride `s` (one `linalg.generic`);
- the loss and its gradient use the max-shifted log-sum-exp, as PyTorch does.

Notes on the bindings of the pinned torch-mlir wheel (checked on this machine):
- `TypeConverter.add_conversion` does not keep its callable alive: a temporary `lambda` is freed
  and the C++ side then calls whatever object reuses its memory (seen: a conversion pattern called
  with a type). The identity conversion is therefore the module-level `_keep_type`, and the
  patterns are module-level functions.
- A Python exception raised inside a pattern propagates out of `apply_partial_conversion`
  unchanged, so patterns raise `CompileError` directly.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
from torch_mlir import ir, rewrite
from torch_mlir.dialects import arith

from tinytrain.dialects import TinyTrain
from tinytrain.errors import CompileError
from tinytrain.passes import ModulePass

from . import (conv, elementwise, frozen, layers_activation, layers_broadcast, layers_pool, layers_shape,
               linear, loss, pool, quant, shape)
from .builders import CLAMPS, STAGE
from .conv import CONVGRADS
from .kernels import KERNELS
from .tied import order_tied_reads

__all__ = ["ConvertTinytrainToLinalgPass", "lower_to_linalg", "PATTERNS", "populate_patterns",
           "CLAMPS", "CLAMP_BY_TARGET", "CONVGRADS", "CONVGRAD_BY_TARGET", "KERNELS", "patterns_for"]

#: tinytrain op class -> its conversion pattern `fn(op, adaptor, type_converter, rewriter)`.
PATTERNS: dict[type, object] = {
    **conv.PATTERNS,
    **linear.PATTERNS,
    **elementwise.PATTERNS,
    **pool.PATTERNS,
    **shape.PATTERNS,
    **loss.PATTERNS,
    **layers_shape.PATTERNS,
    **layers_pool.PATTERNS,
    **layers_activation.PATTERNS,
    **layers_broadcast.PATTERNS,
    **quant.PATTERNS,
}


#: The clamp lowering each compile target uses (`builders.CLAMPS`): compare+select where the FPU
#: has no IEEE maxNum/minNum (cortex-m4's FPv4: `maxnumf` costs +69% instructions per
#: MobileNetV2 step there), VMAXNM/VMINNM on the cortex-m7's FPv5 (-9.5% against select; see
#: bench/results/cortexm_steps.md, `bench/cortexm_bench.py`).
CLAMP_BY_TARGET = {"host": "select", "cortex-m4": "select", "cortex-m7": "minmax"}

#: The conv weight/bias/input-gradient lowering each compile target uses (`conv.CONVGRADS`): im2col +
#: matmul and friends for the host .vmfb (speed), the direct contractions on the Cortex-M targets
#: (no im2col buffer in SRAM, no multiplications by one, no padded copy of dY for the input
#: gradient). A Cortex-M compile builds its host .vmfb from the same linalg, so host and
#: device keep the same numerics; so do the device-equivalence tests that build the C runtime's
#: "host" board (they lower with the default, "direct").
CONVGRAD_BY_TARGET = {"host": "im2col", "cortex-m4": "direct", "cortex-m7": "direct"}


def patterns_for(clamp: str, kernels: str = "iree", convgrad: str = "direct") -> dict[type, object]:
    """`PATTERNS` with the clamp-dependent ops lowered as `clamp` (a member of `CLAMPS`), the
    int8 convolutions as `kernels` (a member of `KERNELS`) and dense conv weight gradients as
    `convgrad` (a member of `CONVGRADS`)."""
    return {**PATTERNS, **elementwise.CLAMP_PATTERNS[clamp], **layers_activation.CLAMP_PATTERNS[clamp],
            **quant.CLAMP_PATTERNS[clamp],
            **quant.KERNEL_PATTERNS[kernels], **conv.CONVGRAD_PATTERNS[convgrad],
            **conv.GRAD_INPUT_PATTERNS[(convgrad, kernels)]}


def _keep_type(t: ir.Type) -> ir.Type:
    """Tensor types do not change in this conversion."""
    return t


def populate_patterns(patterns: rewrite.RewritePatternSet, type_converter: rewrite.TypeConverter,
                      table: Mapping[type, object] | None = None) -> None:
    for op_class, fn in (PATTERNS if table is None else table).items():
        patterns.add_conversion(op_class, fn, type_converter)


def _check_all_lowered(module: ir.Operation, table: Mapping[type, object]) -> None:
    """Every tinytrain op of `module` has a pattern, or a CompileError names the first one that
    has none (with its location)."""
    known = {cls.OPERATION_NAME for cls in table}
    missing = []

    def visit(op):
        name = op.operation.name
        if name.startswith(f"{TinyTrain.name}.") and name not in known:
            missing.append(op.operation)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    if missing:
        op = missing[0]
        raise CompileError(f"to-linalg: no lowering for '{op.name}' (at {op.location})", stage=STAGE)


# ----------------------------------------------------------------------------------------------
# Function-level preparation (before the op patterns run)
# ----------------------------------------------------------------------------------------------


def _arg_attrs(func) -> list[ir.DictAttr]:
    n = len(func.regions[0].blocks[0].arguments)
    if "arg_attrs" not in func.attributes:
        return [ir.DictAttr.get({}) for _ in range(n)]
    return [ir.DictAttr(a) for a in ir.ArrayAttr(func.attributes["arg_attrs"])]


def _resource_key(name: str) -> str:
    ok = set(string.ascii_letters + string.digits + "_")
    return "param_" + "".join(c if c in ok else "_" for c in name)


#: Element type of a parameter argument -> numpy dtype of its constant (int8 graphs: i8 weights,
#: i32 biases).
_NUMPY_DTYPES = {"f32": np.float32, "i8": np.int8, "i32": np.int32}


def _inline_frozen_params(func, values: Mapping[str, np.ndarray], constants: dict,
                          arrays: dict | None = None) -> None:
    """Replace each frozen-parameter argument of `func` by an `arith.constant` holding its value
    and remove the argument (block argument, `function_type`, `arg_attrs`).

    `constants` (parameter name -> DenseResourceElementsAttr) is shared by the functions of one
    module, so a parameter used by `@train_step` and `@predict` is stored once."""
    block = func.regions[0].blocks[0]
    attrs = _arg_attrs(func)
    first = block.operations[0]  # constants go before it, in argument order
    frozen = []
    for i, (arg, d) in enumerate(zip(block.arguments, attrs)):
        if "tinytrain.param" not in d or "tinytrain.trainable" in d:
            continue
        name = ir.StringAttr(d["tinytrain.param"]).value
        if name not in values:
            raise CompileError(f"to-linalg: no value for frozen parameter '{name}' of "
                               f"@{ir.StringAttr(func.attributes['sym_name']).value}", stage=STAGE)
        ty = ir.RankedTensorType(arg.type)
        arr = np.ascontiguousarray(values[name], dtype=_NUMPY_DTYPES[str(ty.element_type)])
        if list(arr.shape) != list(ty.shape):
            raise CompileError(f"to-linalg: value of '{name}' has shape {list(arr.shape)}, the "
                               f"function expects {list(ty.shape)}", stage=STAGE)
        if name not in constants:
            constants[name] = ir.DenseResourceElementsAttr.get_from_buffer(arr, _resource_key(name), ty)
            if arrays is not None:
                arrays[_resource_key(name)] = arr
        with ir.InsertionPoint(first), arg.location:
            c = arith.ConstantOp(ty, constants[name]).result
        arg.replace_all_uses_with(c)
        frozen.append(i)
    if not frozen:
        return
    for i in reversed(frozen):
        block.erase_argument(i)
    keep = [i for i in range(len(attrs)) if i not in frozen]
    fn_type = ir.FunctionType(ir.TypeAttr(func.attributes["function_type"]).value)
    func.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get([fn_type.inputs[i] for i in keep], list(fn_type.results)))
    func.attributes["arg_attrs"] = ir.ArrayAttr.get([attrs[i] for i in keep])


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def _convert(module: ir.Operation, values: Mapping[str, np.ndarray] | None,
             table: Mapping[type, object]) -> None:
    _check_all_lowered(module, table)
    constants: dict = {}
    arrays: dict = {}
    for op in module.regions[0].blocks[0].operations:
        if op.operation.name != "func.func" or not op.regions[0].blocks:
            continue
        if values is not None:
            _inline_frozen_params(op, values, constants, arrays)
        order_tied_reads(op)
    type_converter = rewrite.TypeConverter()
    type_converter.add_conversion(_keep_type)
    patterns = rewrite.RewritePatternSet()
    populate_patterns(patterns, type_converter, table)
    target = rewrite.ConversionTarget()
    target.add_illegal_dialect(TinyTrain)
    target.add_legal_dialect("linalg", "tensor", "arith", "math", "func")
    with frozen.values_in(arrays):
        try:
            rewrite.apply_partial_conversion(module, target, patterns.freeze())
        except ir.MLIRError as e:
            raise CompileError(f"to-linalg: {e}", stage=STAGE) from None


@dataclasses.dataclass(frozen=True, eq=False)
class ConvertTinytrainToLinalgPass(ModulePass):
    """Lower every function of a tinytrain module to linalg-on-tensors, in place."""

    argument: ClassVar[str] = "to-linalg"
    summary: ClassVar[str] = ("Convert the tinytrain dialect to linalg-on-tensors (frozen "
                              "parameters become dense_resource constants when values are given).")
    option_docs: ClassVar[dict[str, str]] = {
        "clamp": "lowering of ReLU/ReLU6/hardswish clamps: 'select' (cmpf ugt/ult + select, "
                 "NaN-propagating, = maximumf/minimumf; host, cortex-m4) or 'minmax' "
                 "(maxnumf/minnumf, NaN gives the bound; VMAXNM/VMINNM on cortex-m7)",
        "kernels": "int8 convolutions: 'iree' (IREE's generated code) or 'ttk' (our Cortex-M "
                   "kernel as an IREE dispatch where the op is inside its contract; needs "
                   "runtime/kernels in the firmware link) or 'ttk-f32' ('ttk' and our fp32 kernels "
                   "for dense 1x1 input and weight gradients: equal to IREE's to float rounding)",
        "convgrad": "conv weight, bias and input gradients: 'direct' (one contraction each, no extra "
                    "buffer; the input gradient reads dY bounds-checked, no padded copy; cortex-m4/m7) "
                    "or 'im2col' (dense 3x3/strided: im2col + matmul-like "
                    "contraction, N*OH*OW*KH*KW*C floats of transient buffer; depthwise: one "
                    "stride-1 contraction per stride phase over the stacked batch; bias: ones @ dY "
                    "as a matmul; input gradient: named conv of the padded, dilated dY; host)",
    }
    #: Parameter values (name -> array, in the layout of the function arguments); set by the
    #: Python driver, not a pipeline option. None keeps frozen parameters as arguments.
    values: Mapping[str, np.ndarray] | None = None
    clamp: str = "select"
    kernels: str = "iree"
    convgrad: str = "direct"

    def run(self, module: ir.Operation) -> None:
        for option, value, allowed in (("clamp", self.clamp, CLAMPS), ("kernels", self.kernels, KERNELS),
                                       ("convgrad", self.convgrad, CONVGRADS)):
            if value not in allowed:
                raise CompileError(f"to-linalg: option {option}={value!r} is not one of "
                                   f"{', '.join(allowed)} (e.g. to-linalg{{{option}={allowed[0]}}})",
                                   stage=STAGE)
        if self.kernels != "iree":  # the dispatches are IREE's stream/flow ops, built generically
            module.context.allow_unregistered_dialects = True
        with module.context, ir.Location.unknown():
            _convert(module, self.values, patterns_for(self.clamp, self.kernels, self.convgrad))


def lower_to_linalg(module: ir.Module, values: Mapping[str, np.ndarray] | None = None,
                    clamp: str = "select", convgrad: str = "direct") -> None:
    """Lower `module` to linalg in place (frozen parameters inlined when `values` is given; f32
    clamps lowered as `clamp`, conv gradients as `convgrad`); the module is verified
    after the conversion."""
    from tinytrain.pipeline import run_pipeline

    run_pipeline(module, [ConvertTinytrainToLinalgPass(values=values, clamp=clamp, convgrad=convgrad)],
                 stage=STAGE)
