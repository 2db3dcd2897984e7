"""Broadcast multiply, its reduction adjoint and the per-channel affine (issue #7).

- `mul`: one `linalg.generic` over lhs's shape; rhs is first reshaped to the dims it does not
  broadcast over (dropping its size-1 broadcast dims), so its indexing map is a plain projection
  `(d0, .., dn) -> (kept dims)` (no constant-0 results);
- `sum_to`: a `linalg.generic` reducing the broadcast dims into the kept dims (zero-filled
  accumulator), reshaped to the result shape;
- `channel_affine`: `x * scale[c] + shift[c]`, scale and shift indexed by the last dim.
"""

from __future__ import annotations

from torch_mlir.dialects import arith

from tinytrain.dialects import tinytrain_layers as tl

from .builders import (PARALLEL, REDUCTION, amap, dims, empty, full, generic, identity, reshape,
                       shape_of, unsupported)

__all__ = ["convert_mul", "convert_sum_to", "convert_channel_affine", "PATTERNS"]

def _kept(op, full_shape, part_shape) -> list[int]:
    """Dims of `full_shape` along which `part_shape` is not broadcast."""
    bdims = tl.broadcast_dims(full_shape, part_shape)
    if bdims is None:  # the verifier rules this out
        raise unsupported(op, f"cannot broadcast {part_shape} to {full_shape}")
    return [d for d in range(len(full_shape)) if d not in bdims]

def convert_mul(op, adaptor, type_converter, rewriter):
    lhs, rhs = adaptor.lhs, adaptor.rhs
    shape = shape_of(lhs)
    r = len(shape)
    kept = _kept(op, shape, shape_of(rhs))
    with rewriter.ip, op.location:
        d = dims(r)
        rhs_kept = reshape(rhs, [shape[k] for k in kept])
        result = generic([lhs, rhs_kept], empty(shape),
                         [identity(r), amap(r, [d[k] for k in kept]), identity(r)], [PARALLEL] * r,
                         lambda a, b, acc: arith.MulFOp(a, b).result)
    rewriter.replace_op(op, [result])

def convert_sum_to(op, adaptor, type_converter, rewriter):
    x = adaptor.input
    shape = shape_of(x)
    r = len(shape)
    kept = _kept(op, shape, shape_of(op.result))
    with rewriter.ip, op.location:
        d = dims(r)
        iterators = [PARALLEL if i in kept else REDUCTION for i in range(r)]
        total = generic([x], full([shape[k] for k in kept]), [identity(r), amap(r, [d[k] for k in kept])],
                        iterators, lambda a, acc: arith.AddFOp(acc, a).result)
        result = reshape(total, shape_of(op.result))
    rewriter.replace_op(op, [result])

def convert_channel_affine(op, adaptor, type_converter, rewriter):
    x = adaptor.input
    shape = shape_of(x)
    r = len(shape)
    with rewriter.ip, op.location:
        last = amap(r, [dims(r)[-1]])
        result = generic([x, adaptor.scale, adaptor.shift], empty(shape),
                         [identity(r), last, last, identity(r)], [PARALLEL] * r,
                         lambda v, a, b, acc: arith.AddFOp(arith.MulFOp(v, a).result, b).result)
    rewriter.replace_op(op, [result])

PATTERNS = {
    tl.MulOp: convert_mul,
    tl.SumToOp: convert_sum_to,
    tl.ChannelAffineOp: convert_channel_affine,
}
