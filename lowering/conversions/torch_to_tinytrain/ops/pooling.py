"""Global average pooling: AdaptiveAvgPool2d(1) and mean over H and W."""

from __future__ import annotations

from tinytrain.dialects.tinytrain import GlobalAvgPoolOp, ReshapeOp

from ..conversion import Conversion, TVal, tensor_type


def _global_avg_pool(cv: Conversion, op, keepdim: bool) -> None:
    x = cv.tensor(op, op.operands[0])
    if not x.nhwc:
        cv.fail(op, "average pooling of a non-image tensor is not supported")
    n, c = x.shape[0], x.shape[1]
    loc = cv.loc(op)
    y = GlobalAvgPoolOp(x.value, tensor_type([n, c]), loc=loc).result
    if keepdim:
        # [N, 1, 1, C] NHWC: the same element order as PyTorch's [N, C, 1, 1].
        y = ReshapeOp(y, tensor_type([n, 1, 1, c]), loc=loc).result
        cv.bind(op.result, TVal(y, [n, c, 1, 1], nhwc=True))
    else:
        cv.bind(op.result, TVal(y, [n, c]))


def adaptive_avg_pool2d(cv: Conversion, op) -> None:
    size = cv.const(op, op.operands[1])
    if list(size) != [1, 1]:
        cv.fail(op, f"AdaptiveAvgPool2d({size}) is not supported; only output size 1")
    _global_avg_pool(cv, op, keepdim=True)


def mean_dim(cv: Conversion, op) -> None:
    """`aten.mean.dim(x, dims, keepdim, dtype)` over H and W together."""
    dims = cv.const(op, op.operands[1])
    if dims is None or sorted(d % 4 for d in dims) != [2, 3]:
        cv.fail(op, f"mean over dims {dims} is not supported; only over H and W (2, 3)")
    _global_avg_pool(cv, op, keepdim=bool(cv.const(op, op.operands[2])))
