"""Frozen parameters as compile-time values: what the patterns may compute from them in numpy.

`_inline_frozen_params` turns each frozen parameter into an `arith.constant` holding a
`DenseResourceElementsAttr` (its bytes, not readable back through the bindings). While a module
is converted, `values_in(arrays)` makes those arrays known by resource key, so that
`constant_value(v)` gives the numpy value of a tensor that is such a constant, or a static
unit-stride `tensor.extract_slice` of one (a channel group, a sparse weight's frozen rest), or
None. `quant.convert_qconv2d` uses it to compute a frozen weight's per-channel sums at compile
time (the input zero point's share of the dot product).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

import numpy as np
from torch_mlir import ir

__all__ = ["values_in", "constant_value"]

#: resource key -> array, for the module being converted (`values_in`)
_VALUES: dict[str, np.ndarray] = {}
_KEY = re.compile(r"dense_resource<([^>]+)>")


@contextlib.contextmanager
def values_in(values: Mapping[str, np.ndarray]):
    """Make `values` (resource key -> array) known to `constant_value` while the block runs."""
    saved = dict(_VALUES)
    _VALUES.clear()
    _VALUES.update(values)
    try:
        yield
    finally:
        _VALUES.clear()
        _VALUES.update(saved)


def _resource_key(op) -> str | None:
    if op.name != "arith.constant":
        return None
    value = op.attributes["value"]
    if isinstance(value, ir.DenseElementsAttr):   # a literal (printing it could be long), not a resource
        return None
    m = _KEY.match(str(value))
    return m.group(1) if m and m.group(1) in _VALUES else None


def _static_slice(op) -> tuple[list[int], list[int]] | None:
    """(offsets, sizes) of a `tensor.extract_slice` with static offsets, sizes and unit strides
    that does not drop dimensions; None otherwise."""
    if op.name != "tensor.extract_slice" or len(op.operands) != 1:
        return None
    offsets = list(ir.DenseI64ArrayAttr(op.attributes["static_offsets"]))
    sizes = list(ir.DenseI64ArrayAttr(op.attributes["static_sizes"]))
    strides = list(ir.DenseI64ArrayAttr(op.attributes["static_strides"]))
    if any(s != 1 for s in strides) or list(ir.RankedTensorType(op.results[0].type).shape) != sizes:
        return None
    return offsets, sizes


def _slice_value(arr: np.ndarray, offsets, sizes) -> np.ndarray:
    return arr[tuple(slice(o, o + s) for o, s in zip(offsets, sizes))]


def constant_value(v: ir.Value) -> np.ndarray | None:
    """The value of `v` when it is a frozen constant or a static slice of one, else None."""
    owner = v.owner
    if not isinstance(owner, ir.Operation) and not isinstance(owner, ir.OpView):
        return None  # a block argument
    op = owner.operation if isinstance(owner, ir.OpView) else owner
    key = _resource_key(op)
    if key is not None:
        return _VALUES[key]
    cut = _static_slice(op)
    if cut is None:
        return None
    whole = constant_value(op.operands[0])
    return None if whole is None else _slice_value(whole, *cut)
