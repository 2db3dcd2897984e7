"""numpy evaluation of a `tinytrain` `@forward`, op by op: the fp32 ops that post-training
quantization supports (used to calibrate activation ranges) and the int8 ops, computed by
`tinytrain.reference` with the device rule (the numerics the compiled int8 program must match bit
for bit).

    from tinytrain.reference_graph import evaluate
    logits = evaluate(module, values, x_nhwc)                  # f32 or int8 graph
    evaluate(module, values, x_nhwc, observe=lambda v, a: ...)  # every f32 value as it is computed

`values` maps parameter names (`{tinytrain.param}` arguments) to arrays in the argument layout
(HWIO conv weights); `x_nhwc` is the `{tinytrain.input}` argument. Ops (static attributes read
from the IR):

- `arith.constant` (e.g. the zero bias of a conv without bias);
- fp32, in float64: `conv2d` (zero padding), `relu`, `relu6`, `add`, `global_avg_pool`,
  `linear` (`x @ W.T + b`), `reshape` (the leading batch dimension follows the input, so a
  calibration batch may have any size);
- int8: `quantize` / `dequantize` (`reference.quantize` / `dequantize`), `qconv2d`
  (`reference.conv2d_acc` padded with the input zero point, then `reference.requantize_device`
  with the op's own `multiplier` / `shift` and `clamp`), `qadd` (`reference.add`, device rule,
  the op's `clamp`), `qavg_pool` (`reference.global_avg_pool`, device rule).

Anything else is a ValueError naming the op.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from torch_mlir import ir

from tinytrain import reference as R
from tinytrain.irfuncs import arg_attrs, find_func

__all__ = ["forward_func", "arg_attrs", "apply_op", "constant_value", "evaluate"]


def forward_func(module) -> ir.Operation:
    """The `func.func @forward` of `module` (an `ir.Module` or its operation)."""
    fn = find_func(module, "forward")
    if fn is None:
        raise ValueError("the module has no func.func @forward")
    return fn.operation


def _i64s(op, name):
    return [int(v) for v in ir.DenseI64ArrayAttr(op.attributes[name])]


def _f(op, name) -> float:
    return float(ir.FloatAttr(op.attributes[name]).value)


def _i(op, name) -> int:
    return int(ir.IntegerAttr(op.attributes[name]).value)


def _shape(v) -> list[int]:
    return list(ir.RankedTensorType(v.type).shape)


def constant_value(op) -> np.ndarray:
    """The array of an `arith.constant` (a splat expanded to its tensor shape)."""
    a = np.array(ir.DenseElementsAttr(op.attributes["value"]))
    return np.broadcast_to(a, _shape(op.results[0])) if a.size == 1 else a.reshape(_shape(op.results[0]))


def _conv(op, x, w, b):
    y = R.conv2d_float(x, w, _i64s(op, "strides"), _i64s(op, "padding"), _i(op, "groups"))
    return y + np.asarray(b, np.float64)


def _qconv(op, x, w, b):
    acc = R.conv2d_acc(x, _i(op, "input_zero_point"), w, b, _i64s(op, "strides"), _i64s(op, "padding"),
                       _i(op, "groups"))
    m0 = np.asarray(list(ir.DenseI32ArrayAttr(op.attributes["multiplier"])), np.int64)
    shift = np.asarray(list(ir.DenseI32ArrayAttr(op.attributes["shift"])), np.int64)
    lo, hi = _i64s(op, "clamp")
    return R.requantize_device(acc, m0, shift, _i(op, "output_zero_point"), lo, hi)


def _qadd(op, a, b):
    lo, hi = _i64s(op, "clamp")
    return R.add(a, _f(op, "lhs_scale"), _i(op, "lhs_zero_point"), b, _f(op, "rhs_scale"),
                 _i(op, "rhs_zero_point"), _f(op, "output_scale"), _i(op, "output_zero_point"), "device", lo, hi)


def _reshape(op, x):
    return np.reshape(x, [x.shape[0]] + _shape(op.results[0])[1:])


_OPS: dict[str, Callable] = {
    "arith.constant": constant_value,
    "tinytrain.conv2d": _conv,
    "tinytrain.relu": lambda op, x: np.maximum(x, 0.0),
    "tinytrain.relu6": lambda op, x: np.clip(x, 0.0, 6.0),
    "tinytrain.add": lambda op, a, b: a + b,
    "tinytrain.global_avg_pool": lambda op, x: x.mean(axis=(1, 2)),
    "tinytrain.linear": lambda op, x, w, b: np.asarray(x, np.float64) @ np.asarray(w, np.float64).T + b,
    "tinytrain.reshape": _reshape,
    "tinytrain.quantize": lambda op, x: R.quantize(x, _f(op, "scale"), _i(op, "zero_point")),
    "tinytrain.dequantize": lambda op, x: R.dequantize(x, _f(op, "scale"), _i(op, "zero_point")),
    "tinytrain.qconv2d": _qconv,
    "tinytrain.qadd": _qadd,
    "tinytrain.qavg_pool": lambda op, x: R.global_avg_pool(x, "device").reshape(x.shape[0], x.shape[3]),
}


def apply_op(op, *args: np.ndarray) -> np.ndarray:
    """The numpy result of one forward op (an `ir.Operation` of a rule above) on its operands."""
    rule = _OPS.get(op.name)
    if rule is None:
        raise ValueError(f"reference_graph: no numpy rule for '{op.name}' at {op.location}")
    return rule(op, *args)


def evaluate(module, values, x: np.ndarray, observe: Callable | None = None) -> np.ndarray:
    """Run `@forward` on `x` (NHWC) with parameters `values`; returns its result (float32 logits,
    or the int8 result of an int8-returning graph). `observe(value, array)` is called for the
    input and every f32 op result."""
    fn = forward_func(module)
    block = fn.regions[0].blocks[0]
    env: dict = {}
    for arg, attrs in zip(block.arguments, arg_attrs(fn)):
        if "tinytrain.input" in attrs:
            env[arg] = np.asarray(x, np.float64) if str(ir.RankedTensorType(arg.type).element_type) == "f32" else x
            if observe is not None:
                observe(arg, env[arg])
        elif "tinytrain.param" in attrs:
            name = ir.StringAttr(attrs["tinytrain.param"]).value
            if name not in values:
                raise ValueError(f"no value for parameter '{name}'")
            env[arg] = np.asarray(values[name])
    for op in block.operations:
        name = op.operation.name
        if name == "func.return":
            out = env[op.operands[0]]
            return out.astype(np.float32) if np.issubdtype(out.dtype, np.floating) else out
        y = apply_op(op.operation, *[env[v] for v in op.operands])
        env[op.results[0]] = y
        if observe is not None and str(ir.RankedTensorType(op.results[0].type).element_type) == "f32":
            observe(op.results[0], y)
    raise ValueError("@forward has no func.return")
