"""Numpy oracle of the int8 kernels (integer only, int64) and float references of the fp32
backward kernels in runtime/kernels. Written from the requantization spec, independently of
the C code:

    eff = x_scale * w_scale[c] / y_scale = mult * 2^(shift - 31), mult in [2^30, 2^31) (frexp)
    acc = sum((x - x_zero) * w) + bias                      (int32)
    y   = clamp(RDBPOT(SRDHM(acc * 2^max(shift, 0), mult), max(-shift, 0)) + y_zero, lo, hi)

SRDHM / RDBPOT are gemmlowp's SaturatingRoundingDoublingHighMul / RoundingDivideByPOT, composed
as TFLite's MultiplyByQuantizedMultiplier.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(eff: float) -> tuple[int, int]:
    """eff > 0 -> (mult, shift) with eff = mult * 2^(shift - 31), mult in [2^30, 2^31)."""
    if eff == 0.0:
        return 0, 0
    m, e = math.frexp(eff)
    q = int(round(m * (1 << 31)))
    if q == (1 << 31):
        q //= 2
        e += 1
    if e < -31:
        return 0, 0
    return q, e


def _wrap32(v):
    v = np.asarray(v, dtype=np.int64)
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b):
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    q = np.sign(num) * (np.abs(num) >> 31)          # C division: truncation toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)


def rdbpot(x, exponent):
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def requantize(acc, mult, shift):
    acc = np.asarray(acc, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(_wrap32(acc * (np.int64(1) << left)), mult), right)


def output(acc, q: dict) -> np.ndarray:
    """Per-channel requantization of acc [..., C] + y_zero, clamped, as int8."""
    y = requantize(acc, q["mult"], q["shift"]) + q["y_zero"]
    return np.clip(y, q["act_min"], q["act_max"]).astype(np.int8)


def _bias(bias, c):
    return np.zeros(c, np.int64) if bias is None else bias.astype(np.int64)


def conv1x1(x, w_io, bias, q):
    """x [P, C_in] int8, w_io [C_in, C_out] int8 -> y [P, C_out] int8."""
    acc = (x.astype(np.int64) - q["x_zero"]) @ w_io.astype(np.int64) + _bias(bias, w_io.shape[1])
    return output(acc, q)


def out_size(n: int, k: int, stride: int, pad: int | None = None) -> int:
    """Output size with `pad` zero-point pixels on each side (default (k-1)/2, "same")."""
    pad = (k - 1) // 2 if pad is None else pad
    return (n + 2 * pad - k) // stride + 1


def _taps(xpad, k, stride, oh, ow):
    for kh in range(k):
        for kw in range(k):
            yield kh, kw, xpad[kh:kh + stride * (oh - 1) + 1:stride, kw:kw + stride * (ow - 1) + 1:stride]


def dwconv(x, w, k, stride, bias, q, pad=None):
    """x [H, W, C] int8, w [K, K, 1, C] int8 -> y [OH, OW, C]; padding `pad` (default (K-1)/2)
    with x_zero."""
    h, wd, c = x.shape
    pad = (k - 1) // 2 if pad is None else pad
    oh, ow = out_size(h, k, stride, pad), out_size(wd, k, stride, pad)
    xs = x.astype(np.int64) - q["x_zero"]
    xpad = np.pad(xs, ((pad, pad), (pad, pad), (0, 0)))
    acc = np.zeros((oh, ow, c), np.int64) + _bias(bias, c)
    for kh, kw, view in _taps(xpad, k, stride, oh, ow):
        acc += view * w[kh, kw, 0].astype(np.int64)
    return output(acc, q)


def conv(x, w, k, stride, bias, q, pad=None):
    """Dense conv: x [H, W, C_in], w [K, K, C_in, C_out] -> y [OH, OW, C_out]; padding `pad`
    (default (K-1)/2) with x_zero."""
    h, wd, _ = x.shape
    pad = (k - 1) // 2 if pad is None else pad
    oh, ow = out_size(h, k, stride, pad), out_size(wd, k, stride, pad)
    xs = x.astype(np.int64) - q["x_zero"]
    xpad = np.pad(xs, ((pad, pad), (pad, pad), (0, 0)))
    acc = np.zeros((oh, ow, w.shape[3]), np.int64) + _bias(bias, w.shape[3])
    for kh, kw, view in _taps(xpad, k, stride, oh, ow):
        acc += view @ w[kh, kw].astype(np.int64)
    return output(acc, q)


# fp32 backward references, evaluated in float64 (the kernels accumulate in float32).

def dequant(x, x_zero, x_scale):
    """The kernels' dequantization, elementwise in float32: (x - z) * s."""
    return (x.astype(np.int32) - x_zero).astype(np.float32) * np.float32(x_scale)


def dwconv_grad_input(gy, w, h, wd, k, stride):
    oh, ow, c = gy.shape
    pad = (k - 1) // 2
    gpad = np.zeros((h + 2 * pad + stride, wd + 2 * pad + stride, c), np.float64)
    for kh in range(k):
        for kw in range(k):
            gpad[kh:kh + stride * (oh - 1) + 1:stride, kw:kw + stride * (ow - 1) + 1:stride] += (
                gy.astype(np.float64) * w[kh, kw, 0].astype(np.float64))
    return gpad[pad:pad + h, pad:pad + wd]


def conv1x1_grad_input(gy, w_io):
    return gy.astype(np.float64) @ w_io.astype(np.float64).T


def conv1x1_grad_weight(x, x_zero, x_scale, gy, n_out):
    xf = dequant(x, x_zero, x_scale).astype(np.float64)
    return xf.T @ gy[:, :n_out].astype(np.float64)


def dwconv_grad_weight(x, x_zero, x_scale, gy, k, stride, n_ch):
    h, wd, c = x.shape
    pad = (k - 1) // 2
    oh, ow = gy.shape[:2]
    xf = np.pad(dequant(x, x_zero, x_scale).astype(np.float64), ((pad, pad), (pad, pad), (0, 0)))
    gw = np.zeros((k, k, n_ch), np.float64)
    for kh, kw, view in _taps(xf, k, stride, oh, ow):
        gw[kh, kw] = (view[..., :n_ch] * gy[..., :n_ch]).sum(axis=(0, 1))
    return gw


def mask_bits(y, act_min, act_max) -> np.ndarray:
    keep = (y.astype(np.int32) > act_min) & (y.astype(np.int32) < act_max)
    return np.packbits(keep, bitorder="little")
