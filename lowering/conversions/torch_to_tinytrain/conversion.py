"""The torch-dialect -> tinytrain conversion pass and the state its op handlers share.

The pass replaces the FX importer's `func.func @main` (torch dialect) by
`func.func @forward(params..., input) -> logits` of `tinytrain` ops, built with the dialect's
generated builders. Each torch op is converted by the handler registered for its name in
`ops.HANDLERS`; a handler reads its operands through `Conversion` (`tensor`, `const`,
`param_name`), creates tinytrain ops at the conversion's insertion point and `bind`s the torch
result to what it built. Adding an operator is one handler and one entry in `ops.HANDLERS`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NoReturn

import numpy as np
from torch_mlir import ir
from torch_mlir.dialects import arith, func

from tinytrain.errors import CompileError, UnsupportedModelError
from tinytrain.passes import ModulePass

from .frontend import SUPPORTED_LAYERS, ModelInfo, NodeInfo, source_suffix

__all__ = ["TorchToTinytrainPass", "Conversion", "TVal", "ParamRef", "TensorList", "PARAM_ATTR", "INPUT_ATTR"]

PARAM_ATTR = "tinytrain.param"
INPUT_ATTR = "tinytrain.input"


@dataclasses.dataclass
class TVal:
    """A converted tensor: its tinytrain value, its PyTorch-order shape, and whether it is a 4-D
    activation stored NHWC (the tinytrain value's own type then has the NHWC shape)."""

    value: ir.Value
    shape: list[int]
    nhwc: bool = False


@dataclasses.dataclass(frozen=True)
class ParamRef:
    """A torch operand that is a model parameter or buffer (a tagged `torch.vtensor.literal`)."""

    name: str


@dataclasses.dataclass(frozen=True)
class TensorList:
    """A `torch.prim.ListConstruct` of tensors (the operand of `torch.cat`), as torch values."""

    items: list


def tensor_type(shape) -> ir.RankedTensorType:
    return ir.RankedTensorType.get([int(d) for d in shape], ir.F32Type.get())


def nhwc_shape(shape) -> list[int]:
    n, c, h, w = shape
    return [n, h, w, c]


class Conversion:
    """State of one conversion: torch values -> converted values, and the @forward being built."""

    def __init__(self, model: ModelInfo, forward: func.FuncOp):
        self.model = model
        self.forward = forward
        self.block = forward.entry_block
        self.vals: dict = {}                # torch ir.Value -> TVal | ParamRef | Python constant
        self.param_args: dict[str, ir.Value] = {}
        self.folded: set = set()            # torch ops already converted by another handler

    # -- errors and locations ----------------------------------------------------------------------
    def info(self, op) -> NodeInfo | None:
        return self.model.node_at(op.location)

    def fail(self, op, what: str) -> NoReturn:
        """Stop with an error naming the operator, the layer, the user's source line, and the
        supported set (`what` says what to change)."""
        info = self.info(op)
        where = (f"  layer: {info.layer}{source_suffix(info.node)}" if info is not None
                 else f"  location: {op.location}")
        raise UnsupportedModelError(f"{what}\n{where}\n  operator: {op.name}\n"
                                    f"  supported: {SUPPORTED_LAYERS}")

    def loc(self, op) -> ir.Location:
        """Location of the tinytrain ops built for `op`: the layer and the user's stack."""
        info = self.info(op)
        return info.location if info is not None else op.location

    def result_shape(self, op) -> list[int]:
        """Static PyTorch-order shape of `op`'s (single tensor) result, from the exported graph."""
        info = self.info(op)
        shape = info.shape if info is not None else None
        if shape is None:
            self.fail(op, "the result shape of this operator is unknown (not from torch.export)")
        return shape

    # -- operands ----------------------------------------------------------------------------------
    def bind(self, result: ir.Value, converted) -> None:
        self.vals[result] = converted

    def const(self, op, value):
        """The Python value of a constant operand (int, float, bool, str, None or list)."""
        if value not in self.vals:
            self.fail(op, "expected a constant operand")
        c = self.vals[value]
        if isinstance(c, (TVal, ParamRef)):
            self.fail(op, "expected a constant operand, got a tensor")
        if isinstance(c, TensorList):
            self.fail(op, "expected a constant operand, got a list of computed values (tensors or "
                          "sizes read at run time); use constant Python values here")
        return c

    def tensor(self, op, value) -> TVal:
        t = self.vals.get(value)
        if isinstance(t, ParamRef):
            self.fail(op, f"parameter '{t.name}' is used directly as an activation, which is not supported")
        if not isinstance(t, TVal):
            self.fail(op, "expected a tensor operand")
        return t

    def tensors(self, op, value) -> list[TVal]:
        """The converted tensors of a list operand (`torch.cat`'s)."""
        items = self.vals.get(value)
        if not isinstance(items, TensorList):
            self.fail(op, "expected a list of tensors")
        return [self.tensor(op, v) for v in items.items]

    def param_name(self, value) -> str | None:
        """The parameter name if `value` is a model parameter or buffer, else None."""
        p = self.vals.get(value)
        return p.name if isinstance(p, ParamRef) else None

    # -- building ----------------------------------------------------------------------------------
    def param(self, name: str, value: np.ndarray, layout: str, loc: ir.Location) -> ir.Value:
        """The @forward argument of parameter `name` (added on first use, located at the layer
        that uses it) with its value."""
        if name not in self.param_args:
            value = np.ascontiguousarray(value, dtype=np.float32)
            self.model.params[name] = value
            self.model.layouts[name] = layout
            self.param_args[name] = self.block.add_argument(tensor_type(value.shape), loc)
        return self.param_args[name]

    def zeros(self, shape, loc: ir.Location) -> ir.Value:
        ty = tensor_type(shape)
        zero = ir.DenseElementsAttr.get_splat(ty, ir.FloatAttr.get(ir.F32Type.get(), 0.0))
        return arith.ConstantOp(ty, zero, loc=loc).result


_RETURN_LOGITS = "the model must return logits [N, classes]"


@dataclasses.dataclass(frozen=True)
class TorchToTinytrainPass(ModulePass):
    argument: ClassVar[str] = "torch-to-tinytrain"
    summary: ClassVar[str] = ("Convert the torch-dialect function of an FX-imported model into "
                              "func.func @forward of tinytrain ops (NHWC, HWIO, BatchNorm folded).")
    #: Parameter values in and out and the FX nodes behind the ops (not a command-line option:
    #: `import_model` sets it; the pass needs the values to fold BatchNorm).
    model: ModelInfo | None = None

    def run(self, module: ir.Operation) -> None:
        # The default location is for type construction only; every op gets its own `loc`.
        with module.context, ir.Location.unknown():
            self._run(module)

    def _run(self, module: ir.Operation) -> None:
        if self.model is None:
            raise CompileError("torch-to-tinytrain needs the model's parameter values and its FX graph; "
                               "it runs inside tinytrain.compile() / import_model(), not from a file",
                               stage=self.argument)
        funcs = [op.operation for op in module.regions[0].blocks[0].operations
                 if op.operation.name == "func.func"]
        if len(funcs) != 1:
            raise CompileError(f"torch-to-tinytrain expects one torch-dialect function, found {len(funcs)}",
                               stage=self.argument)
        torch_func = funcs[0]
        body = torch_func.regions[0].blocks[0]
        if len(body.arguments) != 1:
            raise UnsupportedModelError("tinytrain compiles models with exactly one input tensor; "
                                        f"this one takes {len(body.arguments)}")
        in_shape = self._input_shape(body.arguments[0])

        with ir.InsertionPoint(torch_func), torch_func.location:
            forward = func.FuncOp("forward", ir.FunctionType.get([tensor_type(nhwc_shape(in_shape))], []))
            forward.add_entry_block()
        cv = Conversion(self.model, forward)
        cv.bind(body.arguments[0], TVal(forward.entry_block.arguments[0], in_shape, nhwc=True))

        try:
            out = self._convert_body(cv, body)
        except BaseException:
            forward.operation.erase()  # leave the module as it was
            raise
        self._finish_signature(cv, out)
        torch_func.erase()
        self.model.input_shape = tuple(nhwc_shape(in_shape))
        self.model.num_classes = out.shape[1]

    @staticmethod
    def _convert_body(cv: Conversion, body: ir.Block) -> TVal:
        """Convert every op of the torch function with its handler; returns the logits."""
        from .ops import CONSTANT_OPS, HANDLERS

        ops = [op.operation for op in body.operations]
        with ir.InsertionPoint(cv.block):
            # Constants first: a BatchNorm's parameters are defined after the conv it folds into.
            for op in ops:
                if op.name in CONSTANT_OPS:
                    HANDLERS[op.name](cv, op)
            for op in ops:
                if op.name in CONSTANT_OPS or op in cv.folded:
                    continue
                if op.name == "func.return":
                    out = TorchToTinytrainPass._output(cv, op)
                    break
                handler = HANDLERS.get(op.name)
                if handler is None:
                    cv.fail(op, f"unsupported operator '{op.name.removeprefix('torch.')}'")
                handler(cv, op)
            func.ReturnOp([out.value], loc=cv.loc(op))
        return out

    def _input_shape(self, arg: ir.Value) -> list[int]:
        """The input's static NCHW shape, from the exported graph's placeholder."""
        shape = self.model.input_nchw
        if len(shape) != 4:
            raise UnsupportedModelError(
                f"the model input must be one static NCHW image batch [N, C, H, W], got {arg.type}")
        return list(shape)

    @staticmethod
    def _output(cv: Conversion, ret) -> TVal:
        if len(ret.operands) != 1:
            cv.fail(ret, f"{_RETURN_LOGITS}; it returns {len(ret.operands)} values")
        out = cv.tensor(ret, ret.operands[0])
        if len(out.shape) != 2:
            cv.fail(ret, f"{_RETURN_LOGITS}; it returns shape {out.shape}")
        return out

    @staticmethod
    def _finish_signature(cv: Conversion, out: TVal) -> None:
        """Move the input to the last argument, then set the type and the argument attributes."""
        block = cv.block
        placeholder = block.arguments[0]
        x = block.add_argument(placeholder.type, placeholder.location)
        placeholder.replace_all_uses_with(x)
        block.erase_argument(0)
        args = list(block.arguments)
        cv.forward.attributes["function_type"] = ir.TypeAttr.get(
            ir.FunctionType.get([a.type for a in args], [out.value.type]))
        attrs = [ir.DictAttr.get({PARAM_ATTR: ir.StringAttr.get(name)}) for name in cv.param_args]
        attrs.append(ir.DictAttr.get({INPUT_ATTR: ir.UnitAttr.get()}))
        cv.forward.attributes["arg_attrs"] = ir.ArrayAttr.get(attrs)
