"""What the conversion knows about the PyTorch side: the FX nodes behind the torch-dialect ops,
the parameter values, and how errors name a layer and the user's source line.

The torch-mlir bindings of our pinned wheel expose no accessors for `!torch.vtensor` types or
for the parts of a location, so nothing is read back from IR text. Instead every node the FX
importer imports gets a location that is unique to it (`loc("<node>"("<layer> (<Class>)"(...)))`,
see `importer.py`), and the conversion looks the op's location up in `ModelInfo.nodes` (keyed by
the location attribute, which MLIR uniques) to find the node: its static result shape
(`node.meta["val"]`), its layer (`nn_module_stack`) and its Python stack (`stack_trace`).
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np
import torch
from torch_mlir import ir

__all__ = ["SUPPORTED_LAYERS", "NodeInfo", "ModelInfo", "layer_of", "user_source"]

SUPPORTED_LAYERS = (
    "Conv2d (dense, pointwise, depthwise; integer, 'same' or 'valid' zero padding, dilation 1), "
    "BatchNorm2d in eval mode directly after a Conv2d (folded into it), any other eval-mode "
    "BatchNorm2d / BatchNorm1d (a per-channel affine whose parameters <bn>.weight = gamma / "
    "sqrt(var + eps) and <bn>.bias = beta - mean * <bn>.weight are trained like any other), Linear, "
    "ReLU, ReLU6 / Hardtanh(0, 6), Hardswish, Hardsigmoid, Sigmoid, LeakyReLU, residual add, "
    "multiply (equal shapes or broadcast, e.g. squeeze-excite x * s), torch.cat, zero padding "
    "(nn.ZeroPad2d, F.pad), MaxPool2d (ceil_mode too), AvgPool2d (ceil_mode only where it adds "
    "no partial window), AdaptiveAvgPool2d(1) / mean over H and W (together or one after the "
    "other), flatten / view / reshape, Dropout in eval mode; in-place forms (inplace=True, +=, "
    "*=) of ReLU, ReLU6, Hardswish, Hardsigmoid, Sigmoid, LeakyReLU, Dropout, add and mul"
)

_TORCH_DIR = str(pathlib.Path(torch.__file__).parent)


def layer_of(node) -> str:
    """`"<module path> (<class>)"` of the innermost module that called `node`'s operator."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "<model>"
    path, cls = list(stack.values())[-1]
    cls_name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
    return f"{path or '<root>'} ({cls_name})"


def _frames(node) -> list[tuple[str, int]]:
    """(file, line) pairs of the node's Python stack, outermost first. `stack_trace` is Python's
    own traceback text (not IR), the only form in which torch.export keeps it."""
    trace = node.meta.get("stack_trace") or ""
    return [(f, int(ln)) for f, ln in re.findall(r'File "([^"]+)", line (\d+)', trace)]


def user_source(node) -> tuple[str, int] | None:
    """The innermost frame outside PyTorch itself (where the user's code calls the layer), or
    None when every frame is PyTorch's (an `nn.Sequential` model: its layer path says where)."""
    user = [fr for fr in _frames(node) if not fr[0].startswith(_TORCH_DIR)]
    return user[-1] if user else None


def source_suffix(node) -> str:
    src = user_source(node)
    return f"\n  source: {src[0]}:{src[1]}" if src else ""


def callsite_location(node, context: ir.Context) -> ir.Location:
    """The node's Python stack as an MLIR call-site location (innermost frame first)."""
    frames = [ir.Location.file(f, ln, col=0, context=context) for f, ln in _frames(node)]
    if not frames:
        return ir.Location.unknown(context=context)
    if len(frames) == 1:
        return frames[0]
    return ir.Location.callsite(frames[-1], frames[-2::-1], context=context)


@dataclasses.dataclass
class NodeInfo:
    """One FX node of the exported graph, as seen by the conversion."""

    node: object                 # torch.fx.Node
    layer: str                   # "<module path> (<class>)"
    location: ir.Location        # what the tinytrain op built from it carries: layer + stack

    @property
    def shape(self) -> list[int] | None:
        """The node's static result shape (PyTorch order), None if it is not one tensor."""
        val = self.node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return None
        return [int(d) for d in val.shape]


@dataclasses.dataclass
class ModelInfo:
    """Input of the torch -> tinytrain conversion besides the IR, and its outputs.

    In: `state` (parameter and buffer values by name, PyTorch layout), `input_nchw` (the static
    shape of the model input) and `nodes` (FX node per op location). Out: `params` (values in tinytrain layout, conv weights HWIO), `layouts`
    ("hwio" or "plain" per parameter), `input_shape` (NHWC) and `num_classes`.
    """

    state: dict[str, torch.Tensor]
    input_nchw: tuple[int, ...] = ()
    nodes: dict[ir.Attribute, NodeInfo] = dataclasses.field(default_factory=dict)
    params: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    layouts: dict[str, str] = dataclasses.field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    num_classes: int = 0

    def node_at(self, location: ir.Location) -> NodeInfo | None:
        return self.nodes.get(location.attr)
