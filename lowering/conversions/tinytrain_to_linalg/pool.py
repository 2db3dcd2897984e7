"""Global average pooling (NHWC -> NC) and its gradient (NC -> NHWC, `dy / (H*W)` broadcast)."""

from __future__ import annotations

from torch_mlir.dialects import arith

from tinytrain.dialects import tinytrain as tt

from .builders import (PARALLEL, REDUCTION, amap, const_f32, dims, elementwise, empty, full, generic,
                       identity, shape_of)

__all__ = ["convert_global_avg_pool", "convert_global_avg_pool_grad", "PATTERNS"]


def convert_global_avg_pool(op, adaptor, type_converter, rewriter):
    """Sum over H, W into `[N, C]`, then divide by `H * W`."""
    x = adaptor.input
    n, h, w, c = shape_of(x)
    with rewriter.ip, op.location:
        d = dims(4)
        total = generic([x], full([n, c]), [identity(4), amap(4, [d[0], d[3]])],
                        [PARALLEL, REDUCTION, REDUCTION, PARALLEL],
                        lambda a, acc: arith.AddFOp(acc, a).result)
        hw = const_f32(float(h * w))
        result = elementwise([total], lambda s, acc: arith.DivFOp(s, hw).result)
    rewriter.replace_op(op, [result])


def convert_global_avg_pool_grad(op, adaptor, type_converter, rewriter):
    g = adaptor.grad_output
    n, h, w, c = shape_of(op.result)
    with rewriter.ip, op.location:
        hw = const_f32(float(h * w))
        d = dims(4)
        result = generic([g], empty([n, h, w, c]), [amap(4, [d[0], d[3]]), identity(4)],
                         [PARALLEL] * 4, lambda a, acc: arith.DivFOp(a, hw).result)
    rewriter.replace_op(op, [result])


PATTERNS = {
    tt.GlobalAvgPoolOp: convert_global_avg_pool,
    tt.GlobalAvgPoolGradOp: convert_global_avg_pool_grad,
}
