"""torch.nn.Module -> `tinytrain` forward function (NHWC, BatchNorm folded).

The model is exported with `torch.export` and imported with torch-mlir's FX importer into the
`torch` dialect (no decompositions, so each PyTorch layer stays one op). This module then
converts that IR, op by op, into one `func.func @forward` of `tinytrain` ops:

- activations become NHWC; conv weights HWIO; the input argument is NHWC;
- every eval-mode BatchNorm is folded into the conv that feeds it (paper Sec. 3.1: "BatchNorm
  folded, no normalization layers"); the folded conv gets a bias parameter;
- parameters become function arguments tagged `{tinytrain.param = "<name>"}`; their values
  (in tinytrain layout) are returned beside the module, never embedded in it.

Anything unsupported stops the import with an `UnsupportedModelError` naming the operator, the
layer (module path and class) and the supported set; no partial module is returned.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import torch
from torch_mlir import fx, ir
from torch_mlir.dialects import torch as torch_d
from torch_mlir.extras.fx_importer import ContextCache, FxImporter, FxImporterHooks

from tinytrain.errors import UnsupportedModelError
from tinytrain.irtext import Emitter, dense_i64, new_context, parse_module, tensor_type

__all__ = ["ImportedModel", "import_model", "SUPPORTED_LAYERS", "to_torch_layout"]

SUPPORTED_LAYERS = (
    "Conv2d (dense, pointwise, depthwise; symmetric zero padding, dilation 1), "
    "BatchNorm2d in eval mode directly after a Conv2d (folded), Linear, ReLU, ReLU6 / "
    "Hardtanh(0, 6), residual add, AdaptiveAvgPool2d(1) / mean over H and W, flatten / view / "
    "reshape, Dropout in eval mode"
)

_PARAM_ATTR = "tinytrain.param"


@dataclasses.dataclass
class ImportedModel:
    """Result of the import: the forward module and the parameter values.

    `params` maps each parameter name to its value in tinytrain layout (conv weights HWIO);
    `layouts` says which layout each one has ("hwio" or "plain"); `input_shape` is NHWC.
    """

    module: ir.Module
    context: ir.Context
    params: dict[str, np.ndarray]
    layouts: dict[str, str]
    input_shape: tuple[int, ...]
    num_classes: int


def to_torch_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """Turn a tinytrain-layout parameter back into PyTorch's layout."""
    if layout == "hwio":
        return np.ascontiguousarray(array.transpose(3, 2, 0, 1))
    return array


def _hwio(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().permute(2, 3, 1, 0).contiguous().numpy(), dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Checks on the PyTorch side (before export): the errors users hit first.
# ----------------------------------------------------------------------------------------------


def _check_module(model: torch.nn.Module) -> None:
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.training:
            raise UnsupportedModelError(
                f"layer '{name or '<root>'}' ({type(mod).__name__}) is in training mode: tinytrain "
                "folds BatchNorm into the preceding conv, which needs fixed running statistics. "
                "Call model.eval() before tinytrain.compile()."
            )
        if isinstance(mod, torch.nn.Dropout) and mod.training and mod.p > 0:
            raise UnsupportedModelError(
                f"layer '{name}' (Dropout) is in training mode; call model.eval() first."
            )


# ATen operator packets the converter handles (checked on the exported graph, before torch-mlir
# sees it, so that even ops torch-mlir cannot import are reported by layer).
_SUPPORTED_ATEN = frozenset({
    "aten.conv2d", "aten.convolution", "aten.batch_norm", "aten.linear", "aten.relu",
    "aten.relu6", "aten.hardtanh", "aten.add", "aten.adaptive_avg_pool2d", "aten.mean",
    "aten.flatten", "aten.view", "aten.reshape", "aten.dropout", "aten.clone", "aten.contiguous",
    "aten.detach",
})


def _check_ops(prog: torch.export.ExportedProgram) -> None:
    for node in prog.graph.nodes:
        if node.op != "call_function":
            continue
        packet = str(node.target).rsplit(".", 1)[0] if str(node.target).startswith("aten.") else str(node.target)
        if packet not in _SUPPORTED_ATEN:
            frames = re.findall(r'File "([^"]+)", line (\d+)', node.meta.get("stack_trace") or "")
            raise UnsupportedModelError(
                f"unsupported operator '{packet}'\n  layer: {_layer_of(node)}{_user_frame(frames)}\n"
                f"  node: {node.name} = {node.target}\n  supported: {SUPPORTED_LAYERS}")


def _check_static(prog: torch.export.ExportedProgram) -> None:
    for node in prog.graph.nodes:
        if node.op != "placeholder":
            continue
        val = node.meta.get("val")
        shape = getattr(val, "shape", ())
        for i, d in enumerate(shape):
            if not isinstance(d, int):
                raise UnsupportedModelError(
                    f"dynamic shapes are not supported: dimension {i} of '{node.name}' is symbolic "
                    f"({d}). tinytrain plans memory statically; export with a static example input "
                    "(batch size is a compile-time option)."
                )


# ----------------------------------------------------------------------------------------------
# torch-mlir import with layer names in locations and parameter names on literals.
# ----------------------------------------------------------------------------------------------


class _ParamTagHooks(FxImporterHooks):
    """Emit every parameter/buffer as a zero-splat `torch.vtensor.literal` tagged with its name.
    The real values stay in the state dict; no weight bytes travel through the IR."""

    def __init__(self, names_by_ptr: dict[int, str]):
        self.names_by_ptr = names_by_ptr

    def resolve_literal(self, gni, literal, info):
        if not isinstance(literal, torch.Tensor):
            return None
        name = info.input_spec.target if info is not None else self.names_by_ptr.get(literal.data_ptr())
        if name is None:
            return None
        vtype = gni._cc.tensor_to_vtensor_type(literal)
        elt = ir.F32Type.get() if literal.dtype == torch.float32 else ir.IntegerType.get_signless(64)
        splat = ir.DenseElementsAttr.get_splat(
            ir.RankedTensorType.get(list(literal.shape), elt),
            ir.FloatAttr.get(elt, 0.0) if literal.dtype == torch.float32 else ir.IntegerAttr.get(elt, 0),
        )
        op = ir.Operation.create(
            "torch.vtensor.literal", results=[vtype],
            attributes={"value": splat, _PARAM_ATTR: ir.StringAttr.get(name)},
        )
        return op.result


def _layer_of(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "<model>"
    path, cls = list(stack.values())[-1]
    cls_name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
    return f"{path or '<root>'} ({cls_name})"


def _torch_import(model, example_input):
    if isinstance(model, torch.export.ExportedProgram):
        prog = model
    else:
        prog = torch.export.export(model, (example_input,))
    _check_static(prog)
    _check_ops(prog)
    names_by_ptr = {}
    for k, v in list(prog.state_dict.items()) + list(prog.constants.items()):
        if isinstance(v, torch.Tensor):
            names_by_ptr[v.data_ptr()] = k
    layer_by_node = {n: _layer_of(n) for n in prog.graph.nodes if n.op == "call_function"}

    ctx = ir.Context()
    torch_d.register_dialect(ctx)
    importer = FxImporter(context=ctx, hooks=_ParamTagHooks(names_by_ptr))

    class _NamedLocCache(ContextCache):
        """Locations `loc("<layer path> (<class>)"(<file:line>))`, so errors name the layer."""

        def get_node_location(self, node):
            child = super().get_node_location(node) or ir.Location.unknown(context=ctx)
            return ir.Location.name(layer_by_node.get(node, node.name), childLoc=child, context=ctx)

    importer._cc = _NamedLocCache(ctx, py_attr_tracker=importer._py_attr_tracker)
    module = fx.export_and_import(prog, example_input, fx_importer=importer, output_type="raw",
                                  decomposition_table={})
    state = {k: v.detach().clone() for k, v in prog.state_dict.items()}
    state.update({k: v.detach().clone() for k, v in prog.constants.items() if isinstance(v, torch.Tensor)})
    return module, state


# ----------------------------------------------------------------------------------------------
# torch dialect -> tinytrain
# ----------------------------------------------------------------------------------------------


def _loc_layer(loc) -> str:
    m = re.match(r'loc\("([^"]*)"', str(loc))
    return m.group(1) if m else str(loc)


_TORCH_DIR = str(__import__("pathlib").Path(torch.__file__).parent)


def _user_frame(frames) -> str:
    """`\n  source: file:line` of the innermost frame outside PyTorch itself (where the layer is
    called), from (file, line) pairs listed outermost first; empty when every frame is PyTorch's
    (an `nn.Sequential` model: its layer path says where)."""
    user = [(f, ln) for f, ln in frames if not f.startswith(_TORCH_DIR)]
    return f"\n  source: {user[-1][0]}:{user[-1][1]}" if user else ""


def _loc_source(loc) -> str:
    # MLIR callsite locations list the innermost frame first.
    frames = re.findall(r'"([^"]+)":(\d+):\d+', str(loc))[1:]
    return _user_frame(list(reversed(frames)))


def _vt_shape(value) -> list[int] | None:
    m = re.match(r"!torch\.vtensor<\[([^\]]*)\],\s*([^>]+)>", str(value.type))
    if not m:
        return None
    dims = m.group(1).strip()
    return [int(d) if d != "?" else -1 for d in dims.split(",")] if dims else []


_CONSTANT_OPS = frozenset({
    "torch.vtensor.literal", "torch.constant.int", "torch.constant.float", "torch.constant.bool",
    "torch.constant.none", "torch.constant.str", "torch.prim.ListConstruct",
})


@dataclasses.dataclass
class _Val:
    name: str              # SSA name in the output
    shape: list[int]       # torch-order shape
    nhwc: bool = False     # 4-D activation stored NHWC


class _Converter:
    def __init__(self, state: dict[str, torch.Tensor]):
        self.state = state
        self.em = Emitter()
        self.vals: dict = {}          # torch Value -> _Val | python constant | ("param", name)
        self.params: dict[str, np.ndarray] = {}
        self.layouts: dict[str, str] = {}
        self.param_args: list[tuple[str, str, str]] = []
        self.folded: set = set()      # batch_norm ops folded into their conv

    # -- helpers -------------------------------------------------------------------------------
    def fail(self, op, what: str):
        raise UnsupportedModelError(
            f"{what}\n  layer: {_loc_layer(op.location)}{_loc_source(op.location)}\n"
            f"  operator: {op.name}\n"
            f"  supported: {SUPPORTED_LAYERS}"
        )

    def const(self, op, v):
        c = self.vals.get(v, None)
        if isinstance(c, (_Val, tuple)) and not (isinstance(c, tuple) and c and c[0] == "list"):
            self.fail(op, "expected a constant operand")
        return c[1] if isinstance(c, tuple) else c

    def tensor(self, op, v) -> _Val:
        t = self.vals.get(v)
        if isinstance(t, tuple) and t[0] == "param":
            self.fail(op, f"parameter '{t[1]}' is used directly as an activation, which is not supported")
        if not isinstance(t, _Val):
            self.fail(op, "expected a tensor operand")
        return t

    def param_arg(self, name: str, value: np.ndarray, layout: str) -> str:
        arg = f"%p_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"
        if name in self.params:
            return arg
        self.params[name] = np.ascontiguousarray(value, dtype=np.float32)
        self.layouts[name] = layout
        ty = tensor_type(value.shape)
        self.em.declare(arg, ty)
        self.param_args.append((arg, ty, f'{{{_PARAM_ATTR} = "{name}"}}'))
        return arg

    def zero_const(self, shape) -> str:
        ty = tensor_type(shape)
        return self.em.op("arith.constant", [], ty, {"value": f"dense<0.000000e+00> : {ty}"})

    # -- conversion ----------------------------------------------------------------------------
    def run(self, func) -> tuple[list[tuple[str, str, str]], str, list[int], int]:
        block = func.regions[0].blocks[0]
        x = block.arguments[0]
        if len(block.arguments) != 1:
            raise UnsupportedModelError("tinytrain compiles models with exactly one input tensor")
        xs = _vt_shape(x)
        if xs is None or len(xs) != 4 or -1 in xs:
            raise UnsupportedModelError(
                f"the model input must be one static NCHW image batch [N, C, H, W], got {x.type}")
        n, c, h, w = xs
        self.em.declare("%input", tensor_type([n, h, w, c]))
        self.vals[x] = _Val("%input", xs, nhwc=True)
        out = None
        # Constants first: a BatchNorm's parameters are defined after the conv it folds into.
        for op in block.operations:
            if op.name in _CONSTANT_OPS:
                self.convert(op)
        for op in block.operations:
            if op.name in _CONSTANT_OPS:
                continue
            if op.name == "func.return":
                out = self.tensor(op, op.operands[0])
                break
            self.convert(op)
        if out is None or len(out.shape) != 2:
            raise UnsupportedModelError(
                f"the model must return logits [N, classes]; it returns shape {out and out.shape}")
        return self.param_args, out.name, [n, h, w, c], out.shape[1]

    def convert(self, op):
        name = op.name
        if op in self.folded:
            return
        if name == "torch.vtensor.literal":
            if _PARAM_ATTR not in op.attributes:
                self.fail(op, "a constant tensor inside the model is not supported")
            self.vals[op.result] = ("param", ir.StringAttr(op.attributes[_PARAM_ATTR]).value)
        elif name in ("torch.constant.int", "torch.constant.float"):
            a = op.attributes["value"]
            self.vals[op.result] = ir.IntegerAttr(a).value if name.endswith("int") else ir.FloatAttr(a).value
        elif name == "torch.constant.bool":
            self.vals[op.result] = bool(ir.IntegerAttr(op.attributes["value"]).value)
        elif name == "torch.constant.none":
            self.vals[op.result] = None
        elif name == "torch.constant.str":
            self.vals[op.result] = ir.StringAttr(op.attributes["value"]).value
        elif name == "torch.prim.ListConstruct":
            self.vals[op.result] = ("list", [self.const(op, v) for v in op.operands])
        elif name in ("torch.aten.conv2d", "torch.aten.convolution"):
            self.conv(op)
        elif name == "torch.aten.linear":
            self.linear(op)
        elif name in ("torch.aten.relu", "torch.aten.relu6"):
            x = self.tensor(op, op.operands[0])
            kind = "tinytrain.relu" if name.endswith("relu") else "tinytrain.relu6"
            self.unary(op, kind, x)
        elif name == "torch.aten.hardtanh":
            lo, hi = self.const(op, op.operands[1]), self.const(op, op.operands[2])
            if (lo, hi) != (0.0, 6.0):
                self.fail(op, f"Hardtanh({lo}, {hi}) is not supported; only ReLU6 = Hardtanh(0, 6)")
            self.unary(op, "tinytrain.relu6", self.tensor(op, op.operands[0]))
        elif name == "torch.aten.add.Tensor":
            self.add(op)
        elif name in ("torch.aten.adaptive_avg_pool2d", "torch.aten.mean.dim"):
            self.pool(op)
        elif name in ("torch.aten.flatten.using_ints", "torch.aten.view", "torch.aten.reshape"):
            self.reshape(op)
        elif name in ("torch.aten.dropout", "torch.aten.clone", "torch.aten.contiguous",
                      "torch.aten.detach"):
            if name == "torch.aten.dropout" and self.const(op, op.operands[2]):
                self.fail(op, "Dropout in training mode; call model.eval() first")
            self.vals[op.result] = self.tensor(op, op.operands[0])
        elif name == "torch.aten.batch_norm":
            self.fail(op, "BatchNorm2d must directly follow a Conv2d (whose only user it is) to be "
                          "folded; a standalone BatchNorm is not supported")
        else:
            self.fail(op, f"unsupported operator '{name.removeprefix('torch.')}'")

    def unary(self, op, kind, x: _Val):
        r = self.em.op(kind, [x.name], self.em.types[x.name], loc=str(op.location))
        self.vals[op.result] = _Val(r, x.shape, x.nhwc)

    def add(self, op):
        a, b = self.tensor(op, op.operands[0]), self.tensor(op, op.operands[1])
        alpha = self.const(op, op.operands[2])
        if alpha != 1:
            self.fail(op, f"add with alpha={alpha} is not supported (only alpha=1)")
        if a.shape != b.shape:
            self.fail(op, f"broadcasting add {a.shape} + {b.shape} is not supported")
        if a.nhwc != b.nhwc:
            self.fail(op, "add of tensors in different layouts is not supported")
        r = self.em.op("tinytrain.add", [a.name, b.name], self.em.types[a.name], loc=str(op.location))
        self.vals[op.result] = _Val(r, a.shape, a.nhwc)

    def conv(self, op):
        ops = list(op.operands)
        x = self.tensor(op, ops[0])
        w_ref, b_ref = self.vals.get(ops[1]), self.vals.get(ops[2])
        if not (isinstance(w_ref, tuple) and w_ref[0] == "param"):
            self.fail(op, "the conv weight must be a parameter of the model")
        stride = self.const(op, ops[3])
        padding = self.const(op, ops[4])
        dilation = self.const(op, ops[5])
        if op.name == "torch.aten.convolution":
            if self.const(op, ops[6]):
                self.fail(op, "transposed convolution is not supported")
            groups = self.const(op, ops[8])
        else:
            groups = self.const(op, ops[6])
        if isinstance(padding, str) or len(padding) != 2 or list(dilation) != [1, 1]:
            self.fail(op, f"conv with padding={padding}, dilation={dilation} is not supported "
                          "(symmetric integer padding and dilation 1 only)")
        weight = self.state[w_ref[1]].float()
        c_out, c_in_g = weight.shape[0], weight.shape[1]
        c_in = x.shape[1]
        if groups != 1 and not (groups == c_in == c_out and c_in_g == 1):
            self.fail(op, f"grouped conv with groups={groups} (C_in={c_in}, C_out={c_out}) is not "
                          "supported; only dense (groups=1) and depthwise (groups=C_in=C_out)")
        bias_name = None
        if isinstance(b_ref, tuple) and b_ref[0] == "param":
            bias_name = b_ref[1]
            bias = self.state[bias_name].float()
        else:
            bias = None
        # BatchNorm folding: the conv result's only user is an eval-mode batch_norm.
        users = [u.owner for u in op.result.uses]
        result_value = op.result
        if len(users) == 1 and users[0].name == "torch.aten.batch_norm":
            bn = users[0]
            bops = list(bn.operands)
            if self.const(bn, bops[5]):
                self.fail(bn, "BatchNorm in training mode; call model.eval() first")
            g, beta, mean, var = (self.state[self.vals[v][1]].float() for v in bops[1:5])
            eps = self.const(bn, bops[7])
            rsqrt = torch.rsqrt(var + eps)
            weight = weight * (g * rsqrt).reshape([-1] + [1] * (weight.dim() - 1))
            base = bias if bias is not None else torch.zeros_like(mean)
            bias = (base - mean) * rsqrt * g + beta
            layer = w_ref[1].rsplit(".", 1)[0]
            bias_name = bias_name or f"{layer}.bias"
            self.folded.add(bn)
            result_value = bn.result
        w_arg = self.param_arg(w_ref[1], _hwio(weight), "hwio")
        if bias is not None:
            b_arg = self.param_arg(bias_name, bias.detach().numpy(), "plain")
        else:
            b_arg = self.zero_const([c_out])
        n, _, h, wd = x.shape
        kh, kw = weight.shape[2], weight.shape[3]
        oh = (h + 2 * padding[0] - kh) // stride[0] + 1
        ow = (wd + 2 * padding[1] - kw) // stride[1] + 1
        r = self.em.op(
            "tinytrain.conv2d", [x.name, w_arg, b_arg], tensor_type([n, oh, ow, c_out]),
            {"strides": dense_i64(stride), "padding": dense_i64(padding), "groups": f"{groups} : i64"},
            loc=str(op.location))
        self.vals[result_value] = _Val(r, [n, c_out, oh, ow], nhwc=True)

    def linear(self, op):
        x = self.tensor(op, op.operands[0])
        w_ref, b_ref = self.vals.get(op.operands[1]), self.vals.get(op.operands[2])
        if len(x.shape) != 2:
            self.fail(op, f"Linear on a rank-{len(x.shape)} input is not supported (flatten first)")
        if not (isinstance(w_ref, tuple) and w_ref[0] == "param"):
            self.fail(op, "the Linear weight must be a parameter of the model")
        w = self.state[w_ref[1]].float()
        w_arg = self.param_arg(w_ref[1], w.numpy(), "plain")
        if isinstance(b_ref, tuple) and b_ref[0] == "param":
            b_arg = self.param_arg(b_ref[1], self.state[b_ref[1]].float().numpy(), "plain")
        else:
            b_arg = self.zero_const([w.shape[0]])
        r = self.em.op("tinytrain.linear", [x.name, w_arg, b_arg], tensor_type([x.shape[0], w.shape[0]]),
                       loc=str(op.location))
        self.vals[op.result] = _Val(r, [x.shape[0], w.shape[0]])

    def pool(self, op):
        x = self.tensor(op, op.operands[0])
        if not x.nhwc:
            self.fail(op, "average pooling of a non-image tensor is not supported")
        if op.name == "torch.aten.adaptive_avg_pool2d":
            size = self.const(op, op.operands[1])
            if list(size) != [1, 1]:
                self.fail(op, f"AdaptiveAvgPool2d({size}) is not supported; only output size 1")
            keep = True
        else:
            dims = sorted(d % 4 for d in self.const(op, op.operands[1]))
            if dims != [2, 3]:
                self.fail(op, f"mean over dims {dims} is not supported; only over H and W (2, 3)")
            keep = self.const(op, op.operands[2])
        n, c = x.shape[0], x.shape[1]
        r = self.em.op("tinytrain.global_avg_pool", [x.name], tensor_type([n, c]), loc=str(op.location))
        if keep:
            r = self.em.op("tinytrain.reshape", [r], tensor_type([n, 1, 1, c]), loc=str(op.location))
            self.vals[op.result] = _Val(r, [n, c, 1, 1], nhwc=True)
        else:
            self.vals[op.result] = _Val(r, [n, c])

    def reshape(self, op):
        x = self.tensor(op, op.operands[0])
        out_shape = _vt_shape(op.result)
        if out_shape is None or -1 in out_shape:
            self.fail(op, "reshape to a dynamic shape is not supported")
        src = x.name
        if x.nhwc and not (x.shape[2] == 1 and x.shape[3] == 1):
            # Keep PyTorch's NCHW element order: go back to NCHW before flattening.
            n, c, h, w = x.shape
            src = self.em.op("tinytrain.transpose", [src], tensor_type([n, c, h, w]),
                             {"permutation": dense_i64([0, 3, 1, 2])}, loc=str(op.location))
        elif x.nhwc:
            pass  # [N, 1, 1, C] in NHWC has the same element order as [N, C, 1, 1] in NCHW
        if len(out_shape) == 4:
            self.fail(op, "reshape to a 4-D tensor is not supported")
        r = self.em.op("tinytrain.reshape", [src], tensor_type(out_shape), loc=str(op.location))
        self.vals[op.result] = _Val(r, out_shape)


def import_model(model: torch.nn.Module, example_input: torch.Tensor, *,
                 context: ir.Context | None = None) -> ImportedModel:
    """Import `model` (called on `example_input`, NCHW float32) as a tinytrain forward function.
    `model` may also be a `torch.export.ExportedProgram` (its shapes must be static).

    Raises UnsupportedModelError for anything outside SUPPORTED_LAYERS.
    """
    if isinstance(model, torch.nn.Module):
        _check_module(model)
    elif not isinstance(model, torch.export.ExportedProgram):
        raise TypeError(f"expected a torch.nn.Module or torch.export.ExportedProgram, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dtype != torch.float32:
        raise TypeError("example_input must be a float32 torch.Tensor [N, C, H, W]")
    torch_module, state = _torch_import(model, example_input)
    func = torch_module.body.operations[0]
    conv = _Converter(state)
    param_args, out, in_shape, num_classes = conv.run(func)
    args = list(param_args) + [("%input", conv.em.types["%input"], "{tinytrain.input}")]
    text = "module {\n" + conv.em.function("forward", args, [out]) + "\n}\n"
    ctx = context or new_context()
    module = parse_module(text, ctx, stage="import")
    return ImportedModel(module, ctx, conv.params, conv.layouts, tuple(in_shape), num_classes)
