"""quantize: post-training int8 quantization of an imported fp32 `@forward` (issue #8, point 1).

Input: the fp32 `@forward` of the importer (`torch-to-tinytrain`: NHWC, HWIO, BatchNorm folded
into the convs), the fp32 parameter values, and activation ranges. Output: an int8 `@forward` of
the kind `tinytrain.pretrained.graph.build_forward` builds, with the quantized parameters
written back into `values` (the same dict; int8 weights, int32 biases):

    f32 image --tinytrain.quantize--> i8
    conv2d [+ relu | relu6]      -> tinytrain.qconv2d (ReLU / ReLU6 fused as its int8 clamp)
    add [+ relu | relu6]         -> tinytrain.qadd (residual add with rescaling, clamp fused)
    global_avg_pool              -> tinytrain.qavg_pool (keeps its input's scale and zero point)
    reshape / flatten            -> tinytrain.reshape of the i8 value (same scale and zero point)
    linear, not the last layer   -> reshape [N,1,1,C] -> qconv2d 1x1 -> reshape [N,K]
    the classifier (the linear whose result @forward returns):
       classifier=fp32 (default, paper App. C): dequantize -> the same fp32 linear, f32 logits
       classifier=int8: reshape -> qconv2d 1x1 (weight [1,1,C,K], layout "hwio") -> reshape
                        -> dequantize (f32 logits, so the graph still trains)

Quantization rules (those of `tinytrain.reference`, `real = scale * (q - zero)`):
- activations: asymmetric per tensor from the calibrated range [lo, hi] widened to contain 0
  (so the conv padding and ReLU's 0 are exact): `scale = (hi - lo) / 255` (1.0 for an all-zero
  range), `zero = clamp(round_half_even(-128 - lo / scale), -128, 127)`;
- conv / linear weights: symmetric per output channel, `s_W[o] = max|W[..., o]| / 127` (1.0 for
  an all-zero channel), `w = clamp(round_half_even(W / s_W), -127, 127)` (int8, the range
  `qsgd_update` keeps);
- biases: int32 `round_half_even(b / (s_x s_W[o]))`, saturated;
- requantization: the qconv2d's `multiplier`/`shift` = `quantize_multiplier(s_x s_W / s_y)`
  (TFLite fixed point, `reference.requantize_device`); a fused ReLU is the clamp
  `reference.relu_bounds(z_y)`, ReLU6 `reference.relu6_bounds(s_y, z_y)`; the range used for the
  output scale is the one observed AFTER the activation.

Ranges. Every f32 value the int8 graph needs (the input, each conv/add output after its fused
activation, each hidden linear / int8 classifier output) carries `tinytrain.range =
array<f64: lo, hi>` on its defining op (the input: as an argument attribute). With calibration
data, the pass first sets them itself: the fp32 `@forward` runs in numpy
(`tinytrain.reference_graph.evaluate`, float64) over every calibration batch and each range is
the min / max over all of them (asymmetric min/max; no percentile clipping). Without calibration
data, ranges already in the IR are used (lit tests write them by hand); a value without one is an
error saying to pass calibration data.

Anything else (max/avg pooling, hardswish, sigmoid, concat, broadcast multiply, a BatchNorm that
is not folded, explicit padding, a ReLU that cannot be fused) is an `UnsupportedModelError`
naming the op, the layer and the source line, and what to do (replace the layer, or keep the
model fp32). The pass never falls back to fp32 silently.

Options (`tinytrain-opt -p 'quantize{classifier=int8 params=w.npz calibration=x.npy}'`):
`classifier`, `params` (an `.npz` of the fp32 parameter values, name -> array in the argument
layout; `compile()` passes `values` directly) and `calibration` (an `.npy` of NHWC float
calibration images; `compile()` passes `calibration_data`, a list of NHWC batches).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

import numpy as np
from torch_mlir import ir
from torch_mlir.dialects import arith

from tinytrain import reference as R
from tinytrain.dialects import tinytrain as tt
from tinytrain.dialects import tinytrain_quant as tq
from tinytrain.errors import CompileError, UnsupportedModelError
from tinytrain.passes import ModulePass
from tinytrain.irfuncs import arg_attrs
from tinytrain.reference_graph import constant_value, evaluate, forward_func

__all__ = ["QuantizePass", "activation_qparams", "weight_scales", "CLASSIFIERS", "RANGE_ATTR", "describe"]

CLASSIFIERS = ("fp32", "int8")
RANGE_ATTR = "tinytrain.range"
_ACTS = ("tinytrain.relu", "tinytrain.relu6")
SUPPORTED = ("conv2d (dense, pointwise, depthwise) with ReLU/ReLU6 fused, residual add, global average "
             "pool, flatten/reshape and linear")
_HINTS = {
    "tinytrain.max_pool2d": "replace the max pool by a stride-2 conv",
    "tinytrain.avg_pool2d": "use a global average pool or a stride-2 conv instead",
    "tinytrain.hardswish": "replace it by ReLU or ReLU6",
    "tinytrain.hardsigmoid": "replace it by ReLU or ReLU6",
    "tinytrain.sigmoid": "replace it by ReLU or ReLU6",
    "tinytrain.leaky_relu": "replace it by ReLU",
    "tinytrain.concat": "concatenation has no int8 rescaling here; use a residual add or a wider conv",
    "tinytrain.mul": "remove the squeeze-excite (broadcast multiply)",
    "tinytrain.channel_affine": "put the BatchNorm directly after a conv so that it folds",
    "tinytrain.pad": "use the conv's own padding argument",
    "tinytrain.slice": "remove the slicing",
    "tinytrain.transpose": "remove the transpose",
}


def describe(loc: ir.Location) -> str:
    """`layer 'conv1 (Conv2d)' at model.py:12` from an importer location (its text is the only
    accessor the bindings give)."""
    text = str(loc)
    name = re.match(r'loc\("([^"]*)"(?!:\d)', text)  # a NameLoc, not a FileLineColLoc
    files = re.findall(r'"([^"]+)":(\d+):\d+', text)
    parts = [f"layer '{name.group(1)}'"] if name else []
    if files:
        f, line = files[-1]
        parts.append(f"at {f.rsplit('/', 1)[-1]}:{line}")
    return " ".join(parts) or "unknown location"


def activation_qparams(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) of an int8 activation observed in [lo, hi] (module docstring)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zero = int(np.clip(np.round(-128.0 - lo / scale), R.INT8_MIN, R.INT8_MAX))
    return scale, zero


def weight_scales(w: np.ndarray) -> np.ndarray:
    """float64 per-output-channel (last axis) symmetric scales `max|w| / 127` (1.0 where 0)."""
    amax = np.abs(np.asarray(w, np.float64)).reshape(-1, w.shape[-1]).max(axis=0)
    return np.where(amax > 0, amax / 127.0, 1.0)


def _i64(v: int) -> ir.IntegerAttr:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(v))


def _f64(v: float) -> ir.FloatAttr:
    return ir.FloatAttr.get_f64(float(v))


def _tensor(shape, elt) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), elt)


def _i8() -> ir.Type:
    return ir.IntegerType.get_signless(8)


def _shape(v) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def _fail(op, what: str, hint: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"quantize: {op.name} ({describe(op.location)}) {what}; {hint}",
                                 stage="quantize", loc=op.location)


@dataclasses.dataclass
class _Q:
    value: ir.Value  #: the int8 value
    scale: float
    zero: int


@dataclasses.dataclass(frozen=True)
class QuantizePass(ModulePass):
    argument: ClassVar[str] = "quantize"
    summary: ClassVar[str] = ("Post-training int8 quantization of an fp32 @forward: int8 per-channel weights, "
                              "int8 activations from calibrated ranges, fused ReLU/ReLU6, qadd, qavg_pool, "
                              "fp32 (or int8) classifier.")
    option_docs: ClassVar[dict[str, str]] = {
        "classifier": "'fp32' (the last linear stays fp32 on the dequantized features) or 'int8'",
        "params": ".npz of the fp32 parameter values (name -> array, argument layout)",
        "calibration": ".npy of NHWC float calibration images (sets the tinytrain.range attributes)",
    }

    classifier: str = "fp32"
    params: str = ""
    calibration: str = ""
    #: parameter name -> array (argument layout); the quantized parameters replace the fp32 ones
    #: in this dict. Set by `compile()`; `params` loads it from a file for `tinytrain-opt`.
    values: Any = dataclasses.field(default=None, compare=False)
    #: a list of NHWC float calibration batches (set by `compile()`).
    calibration_data: Any = dataclasses.field(default=None, compare=False)

    def run(self, module: ir.Operation) -> None:
        if self.classifier not in CLASSIFIERS:
            raise CompileError(f"quantize: classifier must be one of {CLASSIFIERS}, got '{self.classifier}'",
                               stage=self.argument)
        values = self._values()
        fn = forward_func(module)
        block = fn.regions[0].blocks[0]
        ops = [op.operation for op in block.operations]
        fused = _check_supported(ops)
        batches = self._batches()
        if batches is not None:
            _calibrate(module, fn, values, batches)
        with fn.context:
            _Rewriter(fn, values, fused, self.classifier).run(ops)

    def _values(self) -> dict:
        if self.values is not None:
            return self.values
        if not self.params:
            raise CompileError("quantize: no parameter values: give the fp32 parameters as params=<file.npz> "
                               "(tinytrain.compile passes them itself)", stage=self.argument)
        with np.load(self.params) as f:
            return {k: f[k] for k in f.files}

    def _batches(self):
        if self.calibration_data is not None:
            return list(self.calibration_data)
        if self.calibration:
            return [np.load(self.calibration)]
        return None


# ----------------------------------------------------------------------------- support check


def _single_user(v: ir.Value):
    uses = list(v.uses)
    return uses[0].owner if len(uses) == 1 else None


def _check_supported(ops) -> dict:
    """Refuse what has no int8 form (before any work); returns {result of a conv/add/linear: the
    ReLU or ReLU6 op fused into it} (keyed by value: an `ir.Operation`'s hash changes with its
    attributes)."""
    fused: dict = {}
    fused_acts = set()
    for op in ops[:-1]:
        name = op.name
        if name in ("tinytrain.conv2d", "tinytrain.add", "tinytrain.linear"):
            user = _single_user(op.results[0])
            if user is not None and user.name in _ACTS:
                fused[op.results[0]] = user
                fused_acts.add(user.results[0])
        elif name in _ACTS:
            if op.results[0] not in fused_acts:
                src = op.operands[0].owner
                what = getattr(src, "name", "the input")
                raise _fail(op, f"cannot be fused: its input comes from {what}, which is not a conv, linear "
                                "or residual add whose only user is this activation",
                            "an int8 ReLU exists only as the clamp of the op before it; apply the activation "
                            "right after a conv, linear or add, or keep the model fp32 (no quantize='int8' / "
                            "--quantize int8)")
        elif name == "arith.constant":
            pass  # e.g. the zero bias of a conv without bias; checked where it is used
        elif name not in ("tinytrain.global_avg_pool", "tinytrain.reshape"):
            hint = _HINTS.get(name, "replace the layer")
            raise _fail(op, f"has no int8 form (the int8 graph supports {SUPPORTED})",
                        f"{hint}, or keep the model fp32 (no quantize='int8' / --quantize int8)")
    return fused


# ----------------------------------------------------------------------------- calibration


def _calibrate(module, fn, values, batches) -> None:
    """Set `tinytrain.range` on the input and every f32 op result: min/max of the fp32 forward
    (numpy, float64) over all `batches` (each NHWC, same H, W, C as the input)."""
    block = fn.regions[0].blocks[0]
    attrs = arg_attrs(fn)
    inputs = [i for i, a in enumerate(attrs) if "tinytrain.input" in a]
    want = _shape(block.arguments[inputs[0]])[1:]
    if not batches:
        raise CompileError("quantize: the calibration set is empty: pass at least one image", stage="quantize")
    ranges: dict = {}

    def observe(v, a):
        lo, hi = float(np.min(a)), float(np.max(a))
        old = ranges.get(v)
        ranges[v] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))

    for i, b in enumerate(batches):
        b = np.asarray(b)
        if b.ndim != 4 or list(b.shape[1:]) != want or b.shape[0] == 0:
            raise CompileError(f"quantize: calibration batch {i} has shape {list(b.shape)}, expected "
                               f"[K, {', '.join(map(str, want))}] (NHWC, K >= 1)", stage="quantize")
        if not np.issubdtype(b.dtype, np.floating) or not np.isfinite(b).all():
            raise CompileError(f"quantize: calibration batch {i} must hold finite float values, got {b.dtype}",
                               stage="quantize")
        evaluate(module, values, b, observe)
    with fn.context:
        for v, (lo, hi) in ranges.items():
            attr = ir.DenseF64ArrayAttr.get([lo, hi])
            if isinstance(v.owner, ir.Block):
                _set_arg_attr(fn, ir.BlockArgument(v).arg_number, RANGE_ATTR, attr)
            else:
                v.owner.attributes[RANGE_ATTR] = attr


def _set_arg_attr(fn, index: int, key: str, attr) -> None:
    attrs = arg_attrs(fn)
    if attr is None:
        attrs[index].pop(key, None)
    else:
        attrs[index][key] = attr
    fn.attributes["arg_attrs"] = ir.ArrayAttr.get([ir.DictAttr.get(a) for a in attrs])


# ----------------------------------------------------------------------------- the rewrite


class _Rewriter:
    def __init__(self, fn, values: dict, fused: dict, classifier: str):
        self.fn = fn
        self.block = fn.regions[0].blocks[0]
        self.values = values
        self.fused = fused
        self.classifier = classifier
        self.attrs = arg_attrs(fn)
        self.q: dict = {}  # f32 value of the fp32 graph -> _Q
        self.dead: list = []

    # -- helpers ---------------------------------------------------------------------------
    def _range(self, v: ir.Value, op) -> tuple[float, float]:
        if isinstance(v.owner, ir.Block):
            attr = self.attrs[ir.BlockArgument(v).arg_number].get(RANGE_ATTR)
        else:
            attr = v.owner.attributes[RANGE_ATTR] if RANGE_ATTR in v.owner.attributes else None
        if attr is None:
            raise CompileError(f"quantize: no calibration data: the value of {op.name} ({describe(op.location)}) "
                               "has no observed range; pass calibration images (compile(..., calibration=...), "
                               "tinytrain compile --calibration FILE.npy, or quantize{calibration=FILE.npy})",
                               stage="quantize", loc=op.location)
        lo, hi = list(ir.DenseF64ArrayAttr(attr))
        return lo, hi

    def _param(self, v: ir.Value, op) -> str:
        if isinstance(v.owner, ir.Block):
            a = self.attrs[ir.BlockArgument(v).arg_number].get("tinytrain.param")
            if a is not None:
                name = ir.StringAttr(a).value
                if len(list(v.uses)) != 1:
                    raise _fail(op, f"shares parameter '{name}' with another layer",
                                "int8 parameters are quantized per layer; give each layer its own parameters")
                if name not in self.values:
                    raise CompileError(f"quantize: no value for parameter '{name}'", stage="quantize")
                return name
        raise _fail(op, "has a weight or bias that is not a model parameter",
                    "only convs and linears with parameter weights can be quantized")

    def _retype(self, v: ir.Value, name: str, arr: np.ndarray, elt: ir.Type) -> None:
        self.values[name] = arr
        ir.BlockArgument(v).set_type(_tensor(arr.shape, elt))

    def _out(self, op) -> ir.Operation:
        """The op whose result the int8 op replaces: the fused activation if there is one."""
        return self.fused.get(op.results[0], op)

    def _bias(self, b: ir.Value, op, cout: int) -> tuple[np.ndarray, str | None]:
        if isinstance(b.owner, ir.Block):
            name = self._param(b, op)
            return np.asarray(self.values[name], np.float64), name
        if b.owner.name == "arith.constant":  # the zero bias of a conv without bias
            return np.asarray(constant_value(b.owner), np.float64), None
        raise _fail(op, "has a computed bias", "only parameter or constant biases can be quantized")

    def _clamp(self, op, scale: float, zero: int) -> list[int]:
        act = self.fused.get(op.results[0])
        if act is None:
            return [R.INT8_MIN, R.INT8_MAX]
        if act.name == "tinytrain.relu":
            return list(R.relu_bounds(zero))
        return list(R.relu6_bounds(scale, zero))

    def _qconv(self, op, x: _Q, w_name: str, w_hwio: np.ndarray, b_val: np.ndarray, b_name: str | None,
               w_arg: ir.Value, b_arg: ir.Value, strides, padding, groups, out_shape, out_range) -> _Q:
        sy, zy = activation_qparams(*out_range)
        sw = weight_scales(w_hwio)
        wq = np.clip(np.round(np.asarray(w_hwio, np.float64) / sw), -127, 127).astype(np.int8)
        bq = R.saturate_int32(np.round(b_val / (np.float64(x.scale) * sw))).astype(np.int32)
        try:
            m0, sh = R.quantize_multiplier(np.float64(x.scale) * sw / np.float64(sy))
        except ValueError as e:
            raise _fail(op, f"cannot be requantized ({e})",
                        "its output range is tiny compared with its input and weights; check the calibration "
                        "data") from None
        self._retype(w_arg, w_name, wq, _i8())
        if b_name is not None:
            self._retype(b_arg, b_name, bq, ir.IntegerType.get_signless(32))
            bias = b_arg
        else:
            bias = arith.ConstantOp(_tensor([len(bq)], ir.IntegerType.get_signless(32)),
                                    ir.DenseElementsAttr.get(bq)).result
        clamp = self._clamp(op, sy, zy)
        y = tq.QConv2dOp(x.value, w_arg, bias, ir.DenseI64ArrayAttr.get(list(strides)),
                         ir.DenseI64ArrayAttr.get(list(padding)), _i64(groups), _f64(x.scale), _i64(x.zero),
                         ir.DenseF64ArrayAttr.get([float(s) for s in sw]), _f64(sy), _i64(zy),
                         ir.DenseI32ArrayAttr.get([int(v) for v in m0]),
                         ir.DenseI32ArrayAttr.get([int(v) for v in sh]), ir.DenseI64ArrayAttr.get(clamp),
                         _tensor(out_shape, _i8())).result
        return _Q(y, sy, zy)

    def _reshape_q(self, x: _Q, shape) -> _Q:
        """`x` reshaped (a reshape of a reshape reads the first one's input; none if the shape
        does not change)."""
        v = x.value
        if not isinstance(v.owner, ir.Block) and v.owner.name == "tinytrain.reshape":
            v = v.owner.operands[0]
        if _shape(v) != list(shape):
            v = tt.ReshapeOp(v, _tensor(shape, _i8())).result
        return _Q(v, x.scale, x.zero)

    def _dequantize(self, x: _Q) -> ir.Value:
        return tq.DequantizeOp(x.value, _f64(x.scale), _i64(x.zero),
                               _tensor(_shape(x.value), ir.F32Type.get())).result

    # -- ops -------------------------------------------------------------------------------
    def run(self, ops) -> None:
        index = next(i for i, at in enumerate(self.attrs) if "tinytrain.input" in at)
        inp = self.block.arguments[index]
        first = ops[0]
        s, z = activation_qparams(*self._range(inp, first))
        with ir.InsertionPoint(first), first.location:
            self.q[inp] = _Q(tq.QuantizeOp(inp, _f64(s), _i64(z), _tensor(_shape(inp), _i8())).result, s, z)
        ret = ops[-1]
        for op in ops[:-1]:
            if op.name in _ACTS or op.name == "arith.constant":
                continue
            with ir.InsertionPoint(op), op.location:
                getattr(self, "_" + op.name.split(".", 1)[1])(op, ret)
        with ir.InsertionPoint(ret), ret.location:
            out = ret.operands[0]
            if out in self.q:  # an int8 result: the graph returns its real value
                ret.operands[0] = self._dequantize(self.q[out])
        for op in reversed(self.dead):
            op.erase()
        for op in reversed(list(self.block.operations)):  # calibration marks; unused constants, reshapes
            if RANGE_ATTR in op.operation.attributes:
                del op.operation.attributes[RANGE_ATTR]
            if op.operation.name in ("arith.constant", "tinytrain.reshape") and not list(op.results[0].uses):
                op.operation.erase()
        _set_arg_attr(self.fn, index, RANGE_ATTR, None)
        ftype = ir.FunctionType(ir.TypeAttr(self.fn.attributes["function_type"]).value)
        self.fn.attributes["function_type"] = ir.TypeAttr.get(
            ir.FunctionType.get([a.type for a in self.block.arguments], list(ftype.results)))

    def _replace(self, op, q: _Q) -> None:
        out = self._out(op)
        self.q[out.results[0]] = q
        self.dead += [op] + ([out] if out is not op else [])

    def _conv2d(self, op, ret) -> None:
        x, w, b = op.operands
        wname = self._param(w, op)
        bval, bname = self._bias(b, op, _shape(w)[3])
        out = self._out(op)
        a = op.attributes
        q = self._qconv(op, self.q[x], wname, self.values[wname], bval, bname, w, b,
                        ir.DenseI64ArrayAttr(a["strides"]), ir.DenseI64ArrayAttr(a["padding"]),
                        ir.IntegerAttr(a["groups"]).value, _shape(op.results[0]),
                        self._range(out.results[0], out))
        self._replace(op, q)

    def _add(self, op, ret) -> None:
        a, b = (self.q[v] for v in op.operands)
        out = self._out(op)
        sy, zy = activation_qparams(*self._range(out.results[0], out))
        y = tq.QAddOp(a.value, b.value, _f64(a.scale), _i64(a.zero), _f64(b.scale), _i64(b.zero), _f64(sy),
                      _i64(zy), ir.DenseI64ArrayAttr.get(self._clamp(op, sy, zy)), a.value.type).result
        self._replace(op, _Q(y, sy, zy))

    def _global_avg_pool(self, op, ret) -> None:
        x = self.q[op.operands[0]]
        n, _, _, c = _shape(x.value)
        self._replace(op, _Q(tq.QAvgPoolOp(x.value, _tensor([n, c], _i8())).result, x.scale, x.zero))

    def _reshape(self, op, ret) -> None:
        self._replace(op, self._reshape_q(self.q[op.operands[0]], _shape(op.results[0])))

    def _linear(self, op, ret) -> None:
        x, w, b = op.operands
        is_classifier = ret.operands[0] == self._out(op).results[0]
        if is_classifier and self.classifier == "fp32":
            if op.results[0] in self.fused:
                raise _fail(self.fused[op.results[0]], "follows the classifier", "the logits take no activation")
            op.operands[0] = self._dequantize(self.q[x])
            return
        wname = self._param(w, op)
        bval, bname = self._bias(b, op, _shape(w)[0])
        n, c = _shape(x)
        k = _shape(w)[0]
        w_hwio = np.ascontiguousarray(np.asarray(self.values[wname]).T.reshape(1, 1, c, k))
        out = self._out(op)
        x4 = self._reshape_q(self.q[x], [n, 1, 1, c])
        y = self._qconv(op, x4, wname, w_hwio, bval, bname, w, b, [1, 1], [0, 0], 1, [n, 1, 1, k],
                        self._range(out.results[0], out))
        self._replace(op, self._reshape_q(y, [n, k]))
