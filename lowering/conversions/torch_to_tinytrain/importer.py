"""torch.nn.Module -> torch dialect (torch.export + torch-mlir's FX importer) -> tinytrain.

The model is exported with `torch.export` and imported into the `torch` dialect without
decompositions, so each PyTorch layer stays one op. Two extensions of the FX importer, both
through its public constructor arguments:

- `hooks=_ParamTagHooks`: every parameter/buffer becomes a zero-splat `torch.vtensor.literal`
  tagged `{tinytrain.param = "<name>"}`; the values stay in the state dict, no weight bytes
  travel through the IR;
- `graph_node_importer_cls=_LocatingNodeImporter`: every node's ops are located at
  `loc("<node>"("<layer> (<Class>)"(<python stack>)))`, unique per node, so the conversion finds
  the FX node (shape, layer, source line) of each op from its location (see `frontend.py`).

Then `TorchToTinytrainPass` runs through a PassManager (verifying its result) and replaces the
torch function by `func.func @forward` in place.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch_mlir import fx, ir
from torch_mlir.dialects import torch as torch_d
from torch_mlir.extras.fx_importer import ContextCache, FxImporter, FxImporterHooks, GraphNodeImporter

from tinytrain.errors import UnsupportedModelError
from tinytrain.context import new_context
from tinytrain.pipeline import run_pipeline

from .conversion import PARAM_ATTR, TorchToTinytrainPass
from .frontend import SUPPORTED_LAYERS, ModelInfo, NodeInfo, callsite_location, layer_of, source_suffix
from .ops import SUPPORTED_ATEN

__all__ = ["ImportedModel", "import_model", "to_torch_layout"]


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


# ----------------------------------------------------------------------------------------------
# Checks on the PyTorch side (before and after export): the errors users hit first.
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


def _aten_packet(target) -> str:
    """`aten.add.Tensor` -> `aten.add` (the operator without its overload)."""
    name = str(target)
    return name.rsplit(".", 1)[0] if name.startswith("aten.") else name


def _check_ops(prog: torch.export.ExportedProgram) -> None:
    for node in prog.graph.nodes:
        if node.op != "call_function":
            continue
        packet = _aten_packet(node.target)
        if packet not in SUPPORTED_ATEN:
            what = f"unsupported operator '{packet}'"
            if packet.endswith("_") and packet[:-1] in SUPPORTED_ATEN:
                what += (f" (the in-place form of '{packet[:-1]}', which is supported: use the "
                         "out-of-place form, e.g. inplace=False)")
            elif packet.endswith("_"):
                what += f" (the in-place form of '{packet[:-1]}')"
            raise UnsupportedModelError(
                f"{what}\n  layer: {layer_of(node)}{source_suffix(node)}\n"
                f"  node: {node.name} = {node.target}\n  supported: {SUPPORTED_LAYERS}")


def _check_static(prog: torch.export.ExportedProgram) -> None:
    for node in prog.graph.nodes:
        if node.op != "placeholder":
            continue
        shape = getattr(node.meta.get("val"), "shape", ())
        for i, d in enumerate(shape):
            if not isinstance(d, int):
                raise UnsupportedModelError(
                    f"dynamic shapes are not supported: dimension {i} of '{node.name}' is symbolic "
                    f"({d}). tinytrain plans memory statically; export with a static example input "
                    "(batch size is a compile-time option)."
                )


def _user_input(prog: torch.export.ExportedProgram):
    """The placeholder node of the (single) user input."""
    names = [s.arg.name for s in prog.graph_signature.input_specs
             if s.kind == torch.export.graph_signature.InputKind.USER_INPUT]
    if len(names) != 1:
        raise UnsupportedModelError(f"tinytrain compiles models with exactly one input tensor; "
                                    f"this one takes {len(names)}")
    return next(n for n in prog.graph.nodes if n.op == "placeholder" and n.name == names[0])


# ----------------------------------------------------------------------------------------------
# torch-mlir import with parameter names on literals and one location per node.
# ----------------------------------------------------------------------------------------------


class _ParamTagHooks(FxImporterHooks):
    """Emit every parameter/buffer as a zero-splat `torch.vtensor.literal` tagged with its name."""

    def __init__(self, context: ir.Context, names_by_ptr: dict[int, str]):
        self.names_by_ptr = names_by_ptr
        self.types = ContextCache(context)  # builds the literal's !torch.vtensor type

    def resolve_literal(self, gni, literal, info):
        if not isinstance(literal, torch.Tensor):
            return None
        name = info.input_spec.target if info is not None else self.names_by_ptr.get(literal.data_ptr())
        if name is None:
            return None
        is_float = literal.dtype == torch.float32
        elt = ir.F32Type.get() if is_float else ir.IntegerType.get_signless(64)
        splat = ir.DenseElementsAttr.get_splat(
            ir.RankedTensorType.get(list(literal.shape), elt),
            ir.FloatAttr.get(elt, 0.0) if is_float else ir.IntegerAttr.get(elt, 0),
        )
        return ir.Operation.create(
            "torch.vtensor.literal", results=[self.types.tensor_to_vtensor_type(literal)],
            attributes={"value": splat, PARAM_ATTR: ir.StringAttr.get(name)},
        ).result


class _NodeLocations(ContextCache):
    """A ContextCache whose node locations are the ones in `table` (see `_LocatingNodeImporter`)."""

    def __init__(self, context: ir.Context, locations: dict):
        super().__init__(context)
        self.locations = locations

    def get_node_location(self, node):
        return self.locations.get(node) or super().get_node_location(node)


def _locating_importer(locations: dict) -> type[GraphNodeImporter]:
    """A GraphNodeImporter class (FxImporter's public `graph_node_importer_cls` extension point)
    whose context cache locates each node's ops at `locations[node]`. It replaces the former
    monkeypatch of the private `FxImporter._cc`."""

    class _LocatingNodeImporter(GraphNodeImporter):
        def __init__(self, fx_importer, context, context_cache, block):
            super().__init__(fx_importer, context, _NodeLocations(context, locations), block)

    return _LocatingNodeImporter


def _node_table(prog: torch.export.ExportedProgram, ctx: ir.Context):
    """(FX node -> its unique import location, location attribute -> NodeInfo)."""
    by_node, by_loc = {}, {}
    for node in prog.graph.nodes:
        if node.op != "call_function":
            continue
        layer = layer_of(node)
        user_loc = ir.Location.name(layer, childLoc=callsite_location(node, ctx), context=ctx)
        key = ir.Location.name(node.name, childLoc=user_loc, context=ctx)
        by_node[node] = key
        by_loc[key.attr] = NodeInfo(node, layer, user_loc)
    return by_node, by_loc


def _torch_import(prog: torch.export.ExportedProgram, example_input, ctx: ir.Context):
    names_by_ptr = {}
    for k, v in list(prog.state_dict.items()) + list(prog.constants.items()):
        if isinstance(v, torch.Tensor):
            names_by_ptr[v.data_ptr()] = k
    by_node, by_loc = _node_table(prog, ctx)
    importer = FxImporter(context=ctx, hooks=_ParamTagHooks(ctx, names_by_ptr),
                          graph_node_importer_cls=_locating_importer(by_node))
    module = fx.export_and_import(prog, example_input, fx_importer=importer, output_type="raw",
                                  decomposition_table={})
    return module, by_loc


def import_model(model: torch.nn.Module, example_input: torch.Tensor, *,
                 context: ir.Context | None = None) -> ImportedModel:
    """Import `model` (called on `example_input`, NCHW float32) as a tinytrain forward function.
    `model` may also be a `torch.export.ExportedProgram` (its shapes must be static).
    `context`, if given, must have the `tinytrain` dialect loaded (`tinytrain.context.new_context()`);
    the torch dialect is registered into it for the FX import.

    Raises UnsupportedModelError for anything outside SUPPORTED_LAYERS.
    """
    if isinstance(model, torch.nn.Module):
        _check_module(model)
    elif not isinstance(model, torch.export.ExportedProgram):
        raise TypeError(f"expected a torch.nn.Module or torch.export.ExportedProgram, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dtype != torch.float32:
        raise TypeError("example_input must be a float32 torch.Tensor [N, C, H, W]")
    prog = model if isinstance(model, torch.export.ExportedProgram) else torch.export.export(model, (example_input,))
    _check_static(prog)
    _check_ops(prog)
    x = _user_input(prog)

    ctx = context or new_context()
    torch_d.register_dialect(ctx)
    module, nodes = _torch_import(prog, example_input, ctx)
    state = {k: v.detach().clone() for k, v in prog.state_dict.items()}
    state.update({k: v.detach().clone() for k, v in prog.constants.items() if isinstance(v, torch.Tensor)})
    info = ModelInfo(state=state, input_nchw=tuple(int(d) for d in x.meta["val"].shape), nodes=nodes)
    run_pipeline(module, [TorchToTinytrainPass(model=info)], stage="import")
    return ImportedModel(module, ctx, info.params, info.layouts, info.input_shape, info.num_classes)
