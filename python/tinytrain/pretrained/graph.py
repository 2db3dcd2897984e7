"""A pretrained int8 `McuModel` -> a `tinytrain` module `func.func @forward` of int8 ops.

    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward
    g = build_forward(load_mcu_model("mbv2-w0.35"))            # int8 classifier, int8 input
    g.module, g.values                                          # ir.Module, parameter name -> array

The graph (built with the dialect's op builders, never from text) is what
`tinytrain.reference.forward(model, x, rule="device", classifier=...)` computes, op for op:

    [tinytrain.quantize]               input="float": f32 NHWC image `v` in [-1, 1] (the
                                       `reference.preprocess` value) -> int8 with the first conv's
                                       `x_scale`, `x_zero`; input="int8": the int8 image itself
    tinytrain.qconv2d                  first_conv, then per block [pointwise1,] depthwise,
                                       pointwise2 (clamp [-128, 127]: ReLU6 is the clamp itself)
    tinytrain.qadd                     the identity residual of a block
    tinytrain.qavg_pool                -> int8 [N, C]
    classifier="int8":  tinytrain.reshape [N, 1, 1, C] -> tinytrain.qconv2d (1x1) ->
                        tinytrain.reshape -> int8 logits [N, 1000]
    classifier="fp32":  tinytrain.dequantize -> tinytrain.linear (fp32 weight [K, C], bias [K])
                        -> f32 logits [N, K] (the paper's training setting, App. C). With
                        `num_classes=None` the head is the pretrained classifier dequantized
                        (`reference.classifier_fp32` in float32); otherwise a NEW head with
                        `num_classes` outputs, weights ~ N(0, head_std^2) (seeded), bias 0.

Parameters are function arguments tagged `{tinytrain.param = "<conv name>.weight" / ".bias"}`
(int8 HWIO weights, int32 biases; the fp32 head `fc.weight`, `fc.bias`), the image is tagged
`{tinytrain.input}`; `values` holds every parameter's array in the argument layout, so
`to-linalg` (given `values`) turns the frozen ones into constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch_mlir import ir
from torch_mlir.dialects import func

from tinytrain.dialects import tinytrain as tt
from tinytrain.dialects import tinytrain_quant as tq

from . import McuModel, QConv

__all__ = ["QGraph", "GraphBuilder", "build_forward", "build_forward_fp32", "truncate", "CLASSIFIERS", "INPUTS"]

CLASSIFIERS = ("int8", "fp32")
INPUTS = ("int8", "float")
FULL_CLAMP = (-128, 127)


def _i(bits: int) -> ir.Type:
    return ir.IntegerType.get_signless(bits)


def _tensor(shape, et) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), et)


def _shape(v: ir.Value) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


@dataclass
class QGraph:
    """A built int8 graph: the module (one `func.func @forward`) and its parameter values."""

    module: ir.Module
    values: dict[str, np.ndarray]
    param_names: list[str]  #: in argument order (the input is the last argument)
    model: McuModel | None = None
    classifier: str = "int8"


class GraphBuilder:
    """Builds one `@forward` function: parameters become arguments as they are first used; ops
    are created with the dialect builders at the end of the function body.

    Call `param`/`qconv2d`/... between `__init__` and `finish`. Ops carry a name location (the
    layer name) so errors point at the layer."""

    def __init__(self, context: ir.Context, input_type: ir.RankedTensorType):
        self.context = context
        self.values: dict[str, np.ndarray] = {}
        self._params: list[tuple[str, ir.RankedTensorType]] = []
        self._input_type = input_type
        self._ops: list = []  # deferred op constructors: built once all arguments are known
        with context, ir.Location.unknown():
            self.module = ir.Module.create()
        self._input_placeholder = "__input__"

    # The function's argument list must be known before its block exists; the builder therefore
    # records the graph as a small program of closures and materialises it in `finish`.

    def param(self, name: str, array: np.ndarray) -> str:
        if name in self.values:
            raise ValueError(f"parameter {name!r} defined twice")
        kinds = {np.dtype(np.int8): lambda: _i(8), np.dtype(np.int32): lambda: _i(32),
                 np.dtype(np.float32): ir.F32Type.get}
        if array.dtype not in kinds:
            raise TypeError(f"parameter {name!r}: dtype {array.dtype} is not int8, int32 or float32")
        with self.context, ir.Location.unknown():
            self._params.append((name, _tensor(array.shape, kinds[array.dtype]())))
        self.values[name] = array
        return name

    def op(self, fn, *args) -> int:
        """Record `fn(value_of, *args) -> ir.Value`; returns a handle for later ops."""
        self._ops.append((fn, args))
        return len(self._ops) - 1

    @property
    def param_names(self) -> list[str]:
        """Parameter names in argument order (the input comes after them)."""
        return [n for n, _ in self._params]

    @property
    def input(self) -> str:
        return self._input_placeholder

    def finish(self, output: int) -> ir.Module:
        with self.context, ir.Location.unknown():
            in_types = [t for _, t in self._params] + [self._input_type]
            with ir.InsertionPoint(self.module.body):
                f = func.FuncOp("forward", ir.FunctionType.get(in_types, []))
                block = f.add_entry_block()
            attrs = [ir.DictAttr.get({"tinytrain.param": ir.StringAttr.get(n)}) for n, _ in self._params]
            attrs.append(ir.DictAttr.get({"tinytrain.input": ir.UnitAttr.get()}))
            f.attributes["arg_attrs"] = ir.ArrayAttr.get(attrs)
            env: dict = {n: block.arguments[i] for i, (n, _) in enumerate(self._params)}
            env[self._input_placeholder] = block.arguments[len(self._params)]
            results: list[ir.Value] = []

            def value_of(h):
                return env[h] if isinstance(h, str) else results[h]

            with ir.InsertionPoint(block):
                for fn, args in self._ops:
                    results.append(fn(value_of, *args))
                out = results[output]
                func.ReturnOp([out])
            f.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(in_types, [out.type]))
        return self.module


# ----------------------------------------------------------------------------- op recipes


def _qconv_op(value_of, x, w, b, conv: QConv, clamp):
    xv = value_of(x)
    n, h, wd, _ = _shape(xv)
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    oh, ow = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    m0, sh = conv.multiplier_shift()
    loc = ir.Location.name(conv.name)
    return tq.QConv2dOp(
        xv, value_of(w), value_of(b),
        ir.DenseI64ArrayAttr.get([s, s]), ir.DenseI64ArrayAttr.get([p, p]),
        ir.IntegerAttr.get(_i(64), conv.groups),
        ir.FloatAttr.get_f64(float(conv.x_scale)), ir.IntegerAttr.get(_i(64), int(conv.x_zero)),
        ir.DenseF64ArrayAttr.get([float(v) for v in conv.w_scales]),
        ir.FloatAttr.get_f64(float(conv.y_scale)), ir.IntegerAttr.get(_i(64), int(conv.y_zero)),
        ir.DenseI32ArrayAttr.get([int(v) for v in m0]), ir.DenseI32ArrayAttr.get([int(v) for v in sh]),
        ir.DenseI64ArrayAttr.get(list(clamp)),
        _tensor([n, oh, ow, conv.out_channels], _i(8)), loc=loc).result


def _qadd_op(value_of, a, b, sa, za, sb, zb, sy, zy, clamp, name):
    av = value_of(a)
    f64 = ir.FloatAttr.get_f64
    i64 = lambda v: ir.IntegerAttr.get(_i(64), int(v))  # noqa: E731
    return tq.QAddOp(av, value_of(b), f64(float(sa)), i64(za), f64(float(sb)), i64(zb),
                     f64(float(sy)), i64(zy), ir.DenseI64ArrayAttr.get(list(clamp)), av.type,
                     loc=ir.Location.name(name)).result


def _qavg_pool_op(value_of, x):
    xv = value_of(x)
    n, _, _, c = _shape(xv)
    return tq.QAvgPoolOp(xv, _tensor([n, c], _i(8)), loc=ir.Location.name("pool")).result


def _reshape_op(value_of, x, shape):
    xv = value_of(x)
    return tt.ReshapeOp(xv, _tensor(shape, ir.RankedTensorType(xv.type).element_type)).result


def _quantize_op(value_of, x, scale, zero, name="input"):
    xv = value_of(x)
    return tq.QuantizeOp(xv, ir.FloatAttr.get_f64(float(scale)), ir.IntegerAttr.get(_i(64), int(zero)),
                         _tensor(_shape(xv), _i(8)), loc=ir.Location.name(name)).result


def _dequantize_op(value_of, x, scale, zero):
    xv = value_of(x)
    return tq.DequantizeOp(xv, ir.FloatAttr.get_f64(float(scale)), ir.IntegerAttr.get(_i(64), int(zero)),
                           _tensor(_shape(xv), ir.F32Type.get())).result


def _linear_op(value_of, x, w, b):
    xv, wv = value_of(x), value_of(w)
    n = _shape(xv)[0]
    return tt.LinearOp(xv, wv, value_of(b), _tensor([n, _shape(wv)[0]], ir.F32Type.get()),
                       loc=ir.Location.name("fc")).result


# ----------------------------------------------------------------------------- public helpers


def add_qconv(gb: GraphBuilder, x, conv: QConv, clamp=FULL_CLAMP, master: bool = False):
    """Record `qconv2d` of `conv` (its weight and bias become parameters `<name>.weight/.bias`).

    `master=True`: the weight parameter is an fp32 MASTER COPY of the int8 weight (in integer
    units, initially exactly `conv.weight`); the conv reads `quantize(master, scale=1, zero=0)`
    (round half to even, clamp to int8), so training updates the fp32 copy with `sgd_update`
    (the gradient passes the rounding straight through) and small steps accumulate (the paper's
    released engine); without it the int8 weight is updated in place with rounding."""
    if master:
        wm = gb.param(f"{conv.name}.weight", conv.weight.astype(np.float32))
        w = gb.op(_quantize_op, wm, 1.0, 0, f"{conv.name}.weight")
    else:
        w = gb.param(f"{conv.name}.weight", conv.weight)
    b = gb.param(f"{conv.name}.bias", conv.bias)
    return gb.op(_qconv_op, x, w, b, conv, tuple(clamp))


def add_qadd(gb: GraphBuilder, a, b, sa, za, sb, zb, sy, zy, clamp=FULL_CLAMP, name="add"):
    return gb.op(_qadd_op, a, b, sa, za, sb, zb, sy, zy, tuple(clamp), name)


def add_qavg_pool(gb: GraphBuilder, x):
    return gb.op(_qavg_pool_op, x)


def add_reshape(gb: GraphBuilder, x, shape):
    return gb.op(_reshape_op, x, list(shape))


def add_quantize(gb: GraphBuilder, x, scale, zero):
    return gb.op(_quantize_op, x, scale, zero)


def add_dequantize(gb: GraphBuilder, x, scale, zero):
    return gb.op(_dequantize_op, x, scale, zero)


def add_linear(gb: GraphBuilder, x, weight: np.ndarray, bias: np.ndarray, name="fc"):
    w = gb.param(f"{name}.weight", np.ascontiguousarray(weight, np.float32))
    b = gb.param(f"{name}.bias", np.ascontiguousarray(bias, np.float32))
    return gb.op(_linear_op, x, w, b)


def pretrained_head(model: McuModel) -> tuple[np.ndarray, np.ndarray]:
    """The pretrained int8 classifier dequantized: fp32 weight `[K, C]` and bias `[K]` (as
    `reference.classifier_fp32` computes them, in double, rounded once to float32)."""
    c = model.classifier
    ws = c.w_scales.astype(np.float64)
    w = (c.weight.reshape(-1, c.out_channels).astype(np.float64) * ws).T
    b = c.bias.astype(np.float64) * (np.float64(c.x_scale) * ws)
    return w.astype(np.float32), b.astype(np.float32)


def truncate(model: McuModel, n_blocks: int) -> McuModel:
    """`model` with only its first `n_blocks` blocks (a small backbone for tests and quick
    experiments): the pool reads the last kept block; the int8 classifier no longer fits (its
    input scale and width are the full model's), so use `classifier="fp32"` with `num_classes`."""
    from . import QAvgPool

    if not 1 <= n_blocks <= len(model.blocks):
        raise ValueError(f"{model.name} has {len(model.blocks)} blocks, cannot keep {n_blocks}")
    blocks = model.blocks[:n_blocks]
    last = blocks[-1]
    pool = QAvgPool(last.pointwise2.out_channels, 0, last.out_scale, last.out_zero)
    return McuModel(f"{model.name}[:{n_blocks}]", model.input_hw, model.first_conv, blocks, pool,
                    model.classifier)


def build_forward(model: McuModel, classifier: str = "int8", input: str = "int8", batch: int = 1,
                  num_classes: int | None = None, head_std: float = 0.01, seed: int = 0,
                  context: ir.Context | None = None, input_hw: int | None = None,
                  master_weights=()) -> QGraph:
    """The int8 `@forward` of `model` (module docstring). `master_weights`: names of conv weights
    (`"<conv>.weight"`) kept as fp32 master copies (see `add_qconv`), the option for training them."""
    from tinytrain.context import new_context

    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
    if input not in INPUTS:
        raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
    if num_classes is not None and classifier != "fp32":
        raise ValueError("a new head (num_classes) is an fp32 linear classifier: pass classifier='fp32'")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    master = set(master_weights)
    unknown = master - {f"{c.name}.weight" for c in model.convs()}
    if unknown:
        raise ValueError(f"master_weights {sorted(unknown)} are not conv weights of {model.name}")
    ctx = context or new_context()
    hw = input_hw or model.input_hw
    with ctx, ir.Location.unknown():
        in_type = _tensor([batch, hw, hw, 3], ir.F32Type.get() if input == "float" else _i(8))
    gb = GraphBuilder(ctx, in_type)
    first = model.first_conv
    h = gb.input
    if input == "float":
        h = add_quantize(gb, h, first.x_scale, first.x_zero)
    h = add_qconv(gb, h, first, master=f"{first.name}.weight" in master)
    for blk in model.blocks:
        block_in = h
        for conv in blk.convs():
            h = add_qconv(gb, h, conv, master=f"{conv.name}.weight" in master)
        if blk.residual is not None:
            r, pw2 = blk.residual, blk.pointwise2
            h = add_qadd(gb, block_in, h, r.x_scale, r.x_zero, pw2.y_scale, pw2.y_zero, r.y_scale, r.y_zero,
                         name=f"blocks.{blk.index}.residual")
    pooled = add_qavg_pool(gb, h)
    c = model.classifier
    if classifier == "int8":
        x4 = add_reshape(gb, pooled, [batch, 1, 1, c.in_channels])
        y = add_qconv(gb, x4, c)
        out = add_reshape(gb, y, [batch, c.out_channels])
    else:
        last = model.blocks[-1] if model.blocks else None
        scale, zero = (last.out_scale, last.out_zero) if last else (model.first_conv.y_scale, model.first_conv.y_zero)
        xf = add_dequantize(gb, pooled, scale, zero)  # the pool keeps its input's scale and zero
        if num_classes is None:
            w, b = pretrained_head(model)
        else:
            rng = np.random.default_rng(seed)
            w = (rng.standard_normal((num_classes, model.pool.channels)) * head_std).astype(np.float32)
            b = np.zeros(num_classes, np.float32)
        out = add_linear(gb, xf, w, b)
    module = gb.finish(out)
    return QGraph(module, gb.values, gb.param_names, model, classifier)


# ----------------------------------------------------------------------------- fp32 twin


def _conv_fp32_op(value_of, x, w, b, conv: QConv, relu6: bool):
    xv = value_of(x)
    n, h, wd, _ = _shape(xv)
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    oh, ow = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
    ty = _tensor([n, oh, ow, conv.out_channels], ir.F32Type.get())
    loc = ir.Location.name(conv.name)
    y = tt.Conv2dOp(xv, value_of(w), value_of(b), ir.DenseI64ArrayAttr.get([s, s]),
                    ir.DenseI64ArrayAttr.get([p, p]), ir.IntegerAttr.get(_i(64), conv.groups), ty, loc=loc).result
    return tt.Relu6Op(y, ty, loc=loc).result if relu6 else y


def _is_relu6(conv: QConv) -> bool:
    """Whether the fp32 network had a ReLU6 after `conv`: the int8 output clamps at real 0
    (`y_zero = -128`). In the three shipped models these are exactly first_conv, every
    pointwise1 and every depthwise (pointwise2 is the linear bottleneck). The int8 upper bound,
    `255 y_scale`, is the calibrated range: 6 only where calibration kept the whole ReLU6 range
    (9 of 34 such convs in mbv2-w0.35), less where it clipped it; the fp32 twin uses 6."""
    return conv.y_zero == -128


def build_forward_fp32(model: McuModel, num_classes: int, batch: int = 1, head_std: float = 0.01,
                       seed: int = 0, input_hw: int | None = None) -> QGraph:
    """The fp32 twin of `build_forward(model, classifier="fp32", num_classes=...)`, for the
    paper's fp32 fine-tuning baseline: dequantized weights and biases (`W = s_W w`,
    `b = s_x s_W b_int`), fp32 activations, ReLU6 where the int8 clamp starts at real 0 (`_is_relu6`;
    other clamps are int8 saturation, left out), fp32 residual adds and pool; the input is the
    real image `v` (the dequantized int8 input); the same new head (same seed)."""
    from tinytrain.context import new_context

    ctx = new_context()
    hw = input_hw or model.input_hw
    with ctx, ir.Location.unknown():
        in_type = _tensor([batch, hw, hw, 3], ir.F32Type.get())
    gb = GraphBuilder(ctx, in_type)

    def conv(h, c):
        ws = c.w_scales.astype(np.float64)
        w = gb.param(f"{c.name}.weight", (c.weight.astype(np.float64) * ws).astype(np.float32))
        b = gb.param(f"{c.name}.bias", (c.bias.astype(np.float64) * (np.float64(c.x_scale) * ws)).astype(np.float32))
        return gb.op(_conv_fp32_op, h, w, b, c, _is_relu6(c))

    h = conv(gb.input, model.first_conv)
    for blk in model.blocks:
        block_in = h
        for c in blk.convs():
            h = conv(h, c)
        if blk.residual is not None:
            h = gb.op(lambda value_of, a, b: tt.AddOp(value_of(a), value_of(b), value_of(a).type).result, block_in, h)

    def pool(value_of, x):
        xv = value_of(x)
        n, _, _, c = _shape(xv)
        return tt.GlobalAvgPoolOp(xv, _tensor([n, c], ir.F32Type.get())).result

    pooled = gb.op(pool, h)
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((num_classes, model.pool.channels)) * head_std).astype(np.float32)
    out = add_linear(gb, pooled, w, np.zeros(num_classes, np.float32))
    module = gb.finish(out)
    return QGraph(module, gb.values, gb.param_names, model, "fp32")
