"""Global average pooling: AdaptiveAvgPool2d(1) and mean over H and W."""

from __future__ import annotations

from tinytrain.dialects.tinytrain import GlobalAvgPoolOp, ReshapeOp

from ..conversion import Conversion, TVal, tensor_type


def _global_avg_pool(cv: Conversion, op, keepdim: bool, result=None) -> None:
    """Mean of `op`'s input over H and W, bound to `result` (default: `op`'s result)."""
    result = op.result if result is None else result
    x = cv.tensor(op, op.operands[0])
    if not x.nhwc:
        cv.fail(op, "average pooling of a non-image tensor is not supported")
    n, c = x.shape[0], x.shape[1]
    loc = cv.loc(op)
    y = GlobalAvgPoolOp(x.value, tensor_type([n, c]), loc=loc).result
    if keepdim:
        # [N, 1, 1, C] NHWC: the same element order as PyTorch's [N, C, 1, 1].
        y = ReshapeOp(y, tensor_type([n, 1, 1, c]), loc=loc).result
        cv.bind(result, TVal(y, [n, c, 1, 1], nhwc=True))
    else:
        cv.bind(result, TVal(y, [n, c]))


def adaptive_avg_pool2d(cv: Conversion, op) -> None:
    size = cv.const(op, op.operands[1])
    if list(size) != [1, 1]:
        cv.fail(op, f"AdaptiveAvgPool2d({size}) is not supported; only output size 1")
    _global_avg_pool(cv, op, keepdim=True)


def _mean_args(cv: Conversion, op, rank: int) -> tuple[list[int], bool]:
    """(reduced dims in [0, rank), keepdim) of an `aten.mean.dim`."""
    dims = cv.const(op, op.operands[1])
    if dims is None:
        cv.fail(op, "mean over all dimensions is not supported; only over H and W (2, 3)")
    return sorted(d % rank for d in dims), bool(cv.const(op, op.operands[2]))


def mean_dim(cv: Conversion, op) -> None:
    """`aten.mean.dim(x, dims, keepdim, dtype)` over H and W: together (`x.mean((2, 3))`), or
    one after the other in either order (`x.mean(3).mean(2)`: the second mean is folded in)."""
    x = cv.tensor(op, op.operands[0])
    dims, keepdim = _mean_args(cv, op, len(x.shape))
    if dims == [2, 3]:
        _global_avg_pool(cv, op, keepdim)
        return
    users = [u.owner.operation for u in op.result.uses]
    if not (x.nhwc and len(dims) == 1 and dims[0] in (2, 3) and len(users) == 1
            and users[0].name == "torch.aten.mean.dim"):
        cv.fail(op, f"mean over dims {dims} is not supported; only over H and W (2, 3), together "
                    "or one right after the other (x.mean(3).mean(2))")
    second = users[0]
    # Dimensions of the intermediate result, as dimensions of x.
    kept = [0, 1, 2, 3] if keepdim else [d for d in range(4) if d != dims[0]]
    dims2, keepdim2 = _mean_args(cv, second, len(kept))
    out_shape = cv.result_shape(second)
    n, c = x.shape[0], x.shape[1]
    if sorted(dims + [kept[d] for d in dims2]) != [2, 3] or out_shape not in ([n, c], [n, c, 1, 1]):
        cv.fail(second, f"mean over dims {dims2} after a mean over dim {dims[0]} is not supported; "
                        "reduce H and W to [N, C] or [N, C, 1, 1] (e.g. x.mean(3).mean(2))")
    cv.folded.add(second)
    _global_avg_pool(cv, op, keepdim=len(out_shape) == 4, result=second.result)
