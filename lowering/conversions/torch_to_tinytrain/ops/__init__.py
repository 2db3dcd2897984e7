"""The torch-dialect op -> handler table of the conversion.

A handler is `def handler(cv: Conversion, op: ir.Operation) -> None`: it reads its operands with
`cv.tensor` / `cv.const` / `cv.param_name`, builds tinytrain ops at the current insertion point
(located at `cv.loc(op)`) and `cv.bind`s the torch result. Adding an operator = one handler in
the module of its family + one entry here (the importer's pre-export check accepts the ATen
packet of every `torch.aten.*` entry).
"""

from __future__ import annotations

from . import activations, constants, conv, elementwise, linear, pooling, shape
from .inplace import in_place

__all__ = ["HANDLERS", "CONSTANT_OPS", "SUPPORTED_ATEN"]

#: Ops without tinytrain counterpart that only provide values to other ops; converted first.
CONSTANT_HANDLERS = {
    "torch.vtensor.literal": constants.literal,
    "torch.constant.int": constants.constant_int,
    "torch.constant.float": constants.constant_float,
    "torch.constant.bool": constants.constant_bool,
    "torch.constant.none": constants.constant_none,
    "torch.constant.str": constants.constant_str,
    "torch.prim.ListConstruct": constants.list_construct,
}

HANDLERS = {
    **CONSTANT_HANDLERS,
    "torch.aten.conv2d": conv.conv2d,
    "torch.aten.conv2d.padding": conv.conv2d,
    "torch.aten.convolution": conv.convolution,
    "torch.aten.batch_norm": conv.batch_norm,
    "torch.aten.linear": linear.linear,
    "torch.aten.relu": activations.relu,
    "torch.aten.relu6": activations.relu6,
    "torch.aten.hardtanh": activations.hardtanh,
    "torch.aten.hardswish": activations.hardswish,
    "torch.aten.hardsigmoid": activations.hardsigmoid,
    "torch.aten.sigmoid": activations.sigmoid,
    "torch.aten.leaky_relu": activations.leaky_relu,
    "torch.aten.add.Tensor": elementwise.add,
    "torch.aten.mul.Tensor": elementwise.mul,
    "torch.aten.cat": shape.cat,
    "torch.aten.pad": shape.pad,
    "torch.aten.constant_pad_nd": shape.constant_pad_nd,
    "torch.aten.max_pool2d": pooling.max_pool2d,
    "torch.aten.avg_pool2d": pooling.avg_pool2d,
    "torch.aten.adaptive_avg_pool2d": pooling.adaptive_avg_pool2d,
    "torch.aten.mean.dim": pooling.mean_dim,
    "torch.aten.flatten.using_ints": shape.reshape,
    "torch.aten.view": shape.reshape,
    "torch.aten.reshape": shape.reshape,
    "torch.aten.dropout": shape.dropout,
    "torch.aten.clone": shape.identity,
    "torch.aten.contiguous": shape.identity,
    "torch.aten.detach": shape.identity,
    # In-place variants (ReLU(inplace=True), `out += identity`, ...), functionalized.
    "torch.aten.relu_": in_place(activations.relu),
    "torch.aten.hardtanh_": in_place(activations.hardtanh),
    "torch.aten.add_.Tensor": in_place(elementwise.add),
    "torch.aten.mul_.Tensor": in_place(elementwise.mul),
    "torch.aten.hardswish_": in_place(activations.hardswish),
    "torch.aten.hardsigmoid_": in_place(activations.hardsigmoid),
    "torch.aten.sigmoid_": in_place(activations.sigmoid),
    "torch.aten.leaky_relu_": in_place(activations.leaky_relu),
    "torch.aten.dropout_": in_place(shape.dropout),
}

CONSTANT_OPS = frozenset(CONSTANT_HANDLERS)

#: ATen operator packets ("aten.add") that some handler converts, for the check on the exported
#: graph before torch-mlir sees it (so even ops torch-mlir cannot import are reported by layer).
SUPPORTED_ATEN = frozenset(".".join(name.split(".")[1:3]) for name in HANDLERS
                           if name.startswith("torch.aten."))
