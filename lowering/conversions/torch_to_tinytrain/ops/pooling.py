"""Pooling: global average pooling (AdaptiveAvgPool2d(1), mean over H and W), MaxPool2d and
AvgPool2d (padding [top, left, bottom, right]; PyTorch's ceil_mode as extra bottom / right
padding)."""

from __future__ import annotations

from torch_mlir import ir

from tinytrain.dialects.tinytrain import GlobalAvgPoolOp, ReshapeOp
from tinytrain.dialects.tinytrain_layers import AvgPool2dOp, MaxPool2dOp, pool_output_hw

from ..conversion import Conversion, TVal, nhwc_shape, tensor_type


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


def _i64_array(values) -> ir.DenseI64ArrayAttr:
    return ir.DenseI64ArrayAttr.get([int(v) for v in values])


def _pair(v) -> list[int]:
    v = [v] if isinstance(v, int) else list(v)
    return v * 2 if len(v) == 1 else v


def _ceil_extra(size: int, k: int, s: int, p: int) -> int:
    """Extra bottom / right padding that PyTorch's `ceil_mode=True` adds: the output size is
    rounded up, but the last window must start inside the input or the left / top padding."""
    out = -(-(size + 2 * p - k) // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return max(0, (out - 1) * s + k - (size + 2 * p))


def _window(cv: Conversion, op, x: TVal, kernel, stride, padding, ceil_mode: bool):
    """(kernel, strides, padding [top, left, bottom, right], extra) of a PyTorch pooling window;
    `extra` is what ceil_mode adds at the bottom / right."""
    if not x.nhwc:
        cv.fail(op, "pooling of a non-image tensor is not supported; pool an [N, C, H, W] map")
    kernel = _pair(kernel)
    stride = _pair(stride) if stride else list(kernel)  # PyTorch: stride defaults to the kernel
    padding = _pair(padding)
    extra = [0, 0]
    if ceil_mode:
        extra = [_ceil_extra(x.shape[2 + i], kernel[i], stride[i], padding[i]) for i in range(2)]
    pads = [padding[0], padding[1], padding[0] + extra[0], padding[1] + extra[1]]
    if pads[2] >= kernel[0] or pads[3] >= kernel[1]:
        cv.fail(op, f"pooling with kernel {kernel}, stride {stride}, padding {padding} and "
                    f"ceil_mode={ceil_mode} pads a side by the kernel size or more; use "
                    "ceil_mode=False or a larger kernel")
    return kernel, stride, pads, extra


def _pool_result(cv: Conversion, op, x: TVal, kernel, stride, pads) -> list[int]:
    n, c, h, w = x.shape
    oh, ow = pool_output_hw(h, w, kernel, stride, pads)
    shape = cv.result_shape(op)
    if shape != [n, c, oh, ow]:  # a guard: our window arithmetic must agree with PyTorch's
        cv.fail(op, f"pooling output {shape} differs from the computed {[n, c, oh, ow]}")
    return shape


def max_pool2d(cv: Conversion, op) -> None:
    """`aten.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)`; ceil_mode becomes extra
    bottom / right padding (padded positions never win)."""
    x = cv.tensor(op, op.operands[0])
    kernel, stride, padding, dilation, ceil_mode = (cv.const(op, v) for v in list(op.operands)[1:6])
    if _pair(dilation) != [1, 1]:
        cv.fail(op, f"MaxPool2d with dilation={dilation} is not supported; use dilation=1")
    kernel, stride, pads, _ = _window(cv, op, x, kernel, stride, padding, bool(ceil_mode))
    shape = _pool_result(cv, op, x, kernel, stride, pads)
    y = MaxPool2dOp(x.value, _i64_array(kernel), _i64_array(stride), _i64_array(pads),
                    tensor_type(nhwc_shape(shape)), loc=cv.loc(op)).result
    cv.bind(op.result, TVal(y, shape, nhwc=True))


def avg_pool2d(cv: Conversion, op) -> None:
    """`aten.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad,
    divisor_override)`: count_include_pad=True divides by the window size, False by the number of
    input elements in the window."""
    x = cv.tensor(op, op.operands[0])
    kernel, stride, padding, ceil_mode, include_pad, override = (
        cv.const(op, v) for v in list(op.operands)[1:7])
    if override is not None:
        cv.fail(op, f"AvgPool2d with divisor_override={override} is not supported; leave it None")
    kernel, stride, pads, extra = _window(cv, op, x, kernel, stride, padding, bool(ceil_mode))
    if any(extra):
        cv.fail(op, "AvgPool2d with ceil_mode=True where it adds a partial window is not "
                    "supported (its divisor differs at the border); use ceil_mode=False or an "
                    "input size for which ceil_mode does not change the output")
    shape = _pool_result(cv, op, x, kernel, stride, pads)
    divisor = ir.StringAttr.get("window" if include_pad else "valid")
    y = AvgPool2dOp(x.value, _i64_array(kernel), _i64_array(stride), _i64_array(pads), divisor,
                    tensor_type(nhwc_shape(shape)), loc=cv.loc(op)).result
    cv.bind(op.result, TVal(y, shape, nhwc=True))
