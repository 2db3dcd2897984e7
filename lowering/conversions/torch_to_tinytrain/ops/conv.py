"""Convolutions (dense, pointwise, depthwise) with the eval-mode BatchNorm that follows folded in
(paper Sec. 3.1: "BatchNorm folded, no normalization layers"). Weights become HWIO."""

from __future__ import annotations

import numpy as np
import torch
from torch_mlir import ir

from tinytrain.dialects.tinytrain import Conv2dOp

from tinytrain.dialects.tinytrain_layers import ChannelAffineOp

from ..conversion import Conversion, TVal, nhwc_shape, tensor_type
from .shape import zero_pad


def _hwio(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().permute(2, 3, 1, 0).contiguous().numpy(), dtype=np.float32)


def _i64_array(values) -> ir.DenseI64ArrayAttr:
    return ir.DenseI64ArrayAttr.get([int(v) for v in values])


def _fold_batch_norm(cv: Conversion, conv_op, weight, bias):
    """If the conv's only user is a batch_norm, fold it: returns (weight, bias, bn op) with the
    BN applied, else (weight, bias, None)."""
    users = [u.owner.operation for u in conv_op.result.uses]
    if len(users) != 1 or users[0].name != "torch.aten.batch_norm":
        return weight, bias, None
    bn = users[0]
    ops = list(bn.operands)
    if cv.const(bn, ops[5]):
        cv.fail(bn, "BatchNorm in training mode; call model.eval() first")
    names = [cv.param_name(v) for v in ops[1:5]]
    if None in names:
        cv.fail(bn, "BatchNorm2d without affine parameters and running statistics is not supported "
                    "(use affine=True, track_running_stats=True)")
    gamma, beta, mean, var = (cv.model.state[n].float() for n in names)
    rsqrt = torch.rsqrt(var + cv.const(bn, ops[7]))
    weight = weight * (gamma * rsqrt).reshape([-1] + [1] * (weight.dim() - 1))
    base = bias if bias is not None else torch.zeros_like(mean)
    return weight, (base - mean) * rsqrt * gamma + beta, bn


def _conv(cv: Conversion, op, stride, padding, dilation, groups) -> None:
    ops = list(op.operands)
    x = cv.tensor(op, ops[0])
    w_name, b_name = cv.param_name(ops[1]), cv.param_name(ops[2])
    if w_name is None:
        cv.fail(op, "the conv weight must be a parameter of the model")
    if list(dilation) != [1, 1]:
        cv.fail(op, f"conv with dilation={list(dilation)} is not supported; use dilation=1")
    weight = cv.model.state[w_name].float()
    # padding='same' pads k - 1 in total, the odd one at the bottom / right (PyTorch's rule): the
    # conv takes the symmetric part, a tinytrain.pad before it the extra bottom / right row.
    extra = [0, 0]
    if padding == "valid":
        padding = [0, 0]
    elif padding == "same":
        if list(stride) != [1, 1]:
            cv.fail(op, "padding='same' needs stride 1 (PyTorch's rule)")
        total = [int(k) - 1 for k in weight.shape[2:]]
        padding = [t // 2 for t in total]
        extra = [t - 2 * p for t, p in zip(total, padding)]
    elif isinstance(padding, str) or len(padding) != 2:
        cv.fail(op, f"conv with padding={padding} is not supported; use an integer pair, 'same' or "
                    "'valid' (or nn.ZeroPad2d before the conv for asymmetric padding)")
    # Padding beyond k - 1 (whose windows see only zeros at the border) is a tinytrain.pad
    # before the conv: the conv's input-gradient lowering handles padding up to k - 1.
    kernel = [int(k) for k in weight.shape[2:]]
    beyond = [max(0, int(p) - (k - 1)) for p, k in zip(padding, kernel)]
    padding = [int(p) - b for p, b in zip(padding, beyond)]
    if any(extra) or any(beyond):
        x = zero_pad(cv, op, x, [0, 0, beyond[0], beyond[1]],
                     [0, 0, beyond[0] + extra[0], beyond[1] + extra[1]])
    c_out, c_in_g = weight.shape[0], weight.shape[1]
    c_in = x.shape[1]
    if groups != 1 and not (groups == c_in == c_out and c_in_g == 1):
        cv.fail(op, f"grouped conv with groups={groups} (C_in={c_in}, C_out={c_out}) is not "
                    "supported; only dense (groups=1) and depthwise (groups=C_in=C_out)")
    bias = cv.model.state[b_name].float() if b_name is not None else None
    weight, bias, bn = _fold_batch_norm(cv, op, weight, bias)
    result = op.result
    if bn is not None:
        b_name = b_name or f"{w_name.rsplit('.', 1)[0]}.bias"  # the folded conv gains a bias
        cv.folded.add(bn)
        result = bn.result
    loc = cv.loc(op)
    w_arg = cv.param(w_name, _hwio(weight), "hwio", loc)
    b_arg = cv.param(b_name, bias.detach().numpy(), "plain", loc) if bias is not None else cv.zeros([c_out], loc)
    shape = cv.result_shape(op)
    y = Conv2dOp(x.value, w_arg, b_arg, strides=_i64_array(stride), padding=_i64_array(padding),
                 groups=ir.IntegerAttr.get(ir.IntegerType.get_signless(64), groups),
                 result=tensor_type(nhwc_shape(shape)), loc=loc).result
    cv.bind(result, TVal(y, shape, nhwc=True))


def conv2d(cv: Conversion, op) -> None:
    """`aten.conv2d(x, w, b, stride, padding, dilation, groups)`."""
    stride, padding, dilation, groups = (cv.const(op, v) for v in list(op.operands)[3:7])
    _conv(cv, op, stride, padding, dilation, groups)


def convolution(cv: Conversion, op) -> None:
    """`aten.convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups)`."""
    stride, padding, dilation, transposed, _, groups = (cv.const(op, v) for v in list(op.operands)[3:9])
    if transposed:
        cv.fail(op, "transposed convolution is not supported")
    _conv(cv, op, stride, padding, dilation, groups)


def batch_norm(cv: Conversion, op) -> None:
    """A BatchNorm that no conv folded (not directly after a conv, or the conv has other users):
    a `tinytrain.channel_affine` `x * scale + shift` over the channels, with
    `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale` as the parameters
    `<bn>.weight` and `<bn>.bias` (trainable like any other parameter)."""
    ops = list(op.operands)
    x = cv.tensor(op, ops[0])
    if cv.const(op, ops[5]):
        cv.fail(op, "BatchNorm in training mode; call model.eval() first")
    names = [cv.param_name(v) for v in ops[1:5]]
    if None in names:
        cv.fail(op, "BatchNorm without affine parameters and running statistics is not supported "
                    "(use affine=True, track_running_stats=True)")
    if not (x.nhwc or len(x.shape) == 2):
        cv.fail(op, f"BatchNorm of a rank-{len(x.shape)} tensor is not supported; only of an image "
                    "[N, C, H, W] (BatchNorm2d) or features [N, C] (BatchNorm1d)")
    gamma, beta, mean, var = (cv.model.state[n].float() for n in names)
    scale = gamma * torch.rsqrt(var + cv.const(op, ops[7]))
    shift = beta - mean * scale
    loc = cv.loc(op)
    scale_arg = cv.param(names[0], scale.detach().numpy(), "plain", loc)
    shift_arg = cv.param(names[1], shift.detach().numpy(), "plain", loc)
    y = ChannelAffineOp(x.value, scale_arg, shift_arg, x.value.type, loc=loc).result
    cv.bind(op.result, TVal(y, x.shape, x.nhwc))
