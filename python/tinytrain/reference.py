"""The numpy reference of the int8 forward: the numerics host and device must match bit for bit.

Conventions: activations NHWC int8 with a per-tensor `(scale, zero)`, `real = scale * (q - zero)`;
conv weights HWIO int8 `[KH, KW, C_in / groups, C_out]`, symmetric per output channel
(`w_scales[o]`, zero point 0); biases int32 with scale `x_scale * w_scales[o]`.
`tinytrain.pretrained` loads models in exactly this form.

Integer convolution (`conv2d_acc`)
    `dot[n, y, x, o] = sum_{kh, kw, i} (xp[n, y*s + kh, x*s + kw, i] - x_zero) * w[kh, kw, i, o]`
    where `xp` is `x` padded by `padding` on each side with `x_zero` (a real 0), and
    `acc = bias[o] + dot`, both exact (int64 result). `dot` always fits int32: `conv2d_acc`
    checks `255 * sum|w[..., o]| < 2^31` (the numpy code sums in float64, exact for integers
    below 2^53). `acc` may NOT fit int32: the shipped ProxylessNAS and MCUNet models have "dead"
    channels (all-zero or tiny weights) whose bias saturated at -2^31 or 2^31 - 1 when the authors
    quantized them, so `bias + dot` can leave int32 by a few hundred.

Requantization: `acc`, per output channel `eff = (x_scale * w_scales[o]) / y_scale`
(evaluated in this order in IEEE double), output `y_zero`, clamp `[lo, hi]` (default
[-128, 127]; ReLU / ReLU6 are clamps, see `relu_bounds` / `relu6_bounds`). Two rules:

(a) `rule="paper"`, the paper's simulation (mcu_models/README.md), on the exact `acc`:
    `y = clamp(round_half_even(double(acc) * eff) + y_zero, lo, hi)`.

(b) `rule="device"`, what the Cortex-M kernels compute (TFLite / gemmlowp fixed point), integer
    only once the multiplier exists:

    0. `acc32 = saturate_int32(bias + dot)`: the kernel accumulates `dot` in int32 (SMLAD
       wrap-around cannot happen, see above) and adds the bias with a SATURATING add (QADD),
       not by starting the accumulator at `bias` (that would wrap on the dead channels).
    1. Multiplier (host side, once per channel), `quantize_multiplier(eff)`:
       `(q, e) = frexp(eff)` so `eff = q * 2^e`, `q` in [0.5, 1);
       `M0 = round_half_away_from_zero(q * 2^31)`; if `M0 == 2^31`: `M0 = 2^30`, `e += 1`;
       `shift = e`. Requires `eff > 0` and `shift <= 30` (error otherwise); if `shift < -31`
       (eff < 2^-32) then `M0 = 0`, `shift = 0` (the output is `y_zero`).
       So `M0` is an int32 in [2^30, 2^31) (or 0) and `eff ~= M0 * 2^(shift - 31)`.
    2. `left = max(shift, 0)`, `right = max(-shift, 0)`;
       `a = saturate_int32(acc32 * 2^left)` (no-op for `shift <= 0`, the case of every layer of
       the shipped models: all their `eff` are < 0.1).
    3. `h = SaturatingRoundingDoublingHighMul(a, M0)`:
       if `a == M0 == INT32_MIN`: `INT32_MAX`; otherwise with `p = int64(a) * int64(M0)`,
       `nudge = 2^30 if p >= 0 else 1 - 2^30`, `h = trunc_toward_zero((p + nudge) / 2^31)`
       (as int32; C's `/` on int64).
    4. `r = RoundingDivideByPOT(h, right)`: `mask = 2^right - 1`, `rem = h & mask`,
       `threshold = (mask >> 1) + (1 if h < 0 else 0)`,
       `r = (h >> right) + (1 if rem > threshold else 0)` (arithmetic shift; rounds to nearest,
       ties away from zero).
    5. `y = clamp(r + y_zero, lo, hi)` as int8.

    `requantize_device` is steps 0 and 2-5, in int64 numpy arithmetic, vectorised.

Residual add (`add`): inputs `(a, sa, za)`, `(b, sb, zb)`, output `(sy, zy)`.
(a) paper: `v = (a - za) * sa + (b - zb) * sb` in double, `y = clamp(round_half_even(v / sy) + zy)`.
(b) device (TFLite int8 ADD): `left_shift = 20`, `twice_max = 2 * max(sa, sb)`,
    `(Ma, sha) = quantize_multiplier(sa / twice_max)`, `(Mb, shb) = quantize_multiplier(sb / twice_max)`,
    `(My, shy) = quantize_multiplier(twice_max / (2^20 * sy))` (all computed in double);
    `ra = mul(int32((a - za) * 2^20), Ma, sha)`, `rb = mul(int32((b - zb) * 2^20), Mb, shb)`,
    `y = clamp(mul(ra + rb, My, shy) + zy)` where `mul(x, M, s)` is steps 2-4 above.

Global average pool (`global_avg_pool`) over H, W of int8 `x` (no zero-point shift; the output
keeps the input's scale and zero point), `count = H * W`, `s = sum(x)` (int32):
(a) paper: `round_half_even(s / count)`; (b) device: `trunc_toward_zero((s + sign(s) * (count // 2)) / count)`
(TFLite's rounding; ties away from zero). The two differ only on exact ties.

Input (`preprocess`): RGB uint8 in [0, 255] -> `v = (x / 255 - 0.5) / 0.5` -> int8
`clamp(round_half_even(v / x_scale) + x_zero)`, in double. With the shipped models'
`x_scale = 1/127.5` every pixel is an exact tie in real arithmetic (`v / x_scale = x - 127.5`),
so double rounding noise picks `x - 128` or `x - 127` (129 and 127 of the 256 values); the
paper's float32 code is just as arbitrary. Host and device share the int8 input, so this never
affects bit-exactness between them.

`forward(model, x, rule=..., classifier="int8" | "fp32")` runs a whole `McuModel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "INT8_MIN",
    "INT8_MAX",
    "RULES",
    "relu_bounds",
    "relu6_bounds",
    "quantize",
    "dequantize",
    "preprocess",
    "conv2d_float",
    "conv2d_acc",
    "quantize_multiplier",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier",
    "saturate_int32",
    "requantize_paper",
    "requantize_device",
    "requantize",
    "qconv2d",
    "add",
    "global_avg_pool",
    "classifier_fp32",
    "ForwardTrace",
    "forward",
]

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
RULES = ("paper", "device")


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def _check_int8(x: np.ndarray, what: str) -> None:
    if x.dtype != np.int8:
        raise TypeError(f"{what} must be int8, got {x.dtype}")


# ----------------------------------------------------------------------------- clamps


def relu_bounds(zero: int) -> tuple[int, int]:
    """int8 clamp bounds of a ReLU on an output with zero point `zero`: [zero, 127]."""
    return max(INT8_MIN, int(zero)), INT8_MAX


def relu6_bounds(scale: float, zero: int) -> tuple[int, int]:
    """int8 clamp bounds of a ReLU6: [zero, zero + round(6 / scale)] within [-128, 127]
    (with `scale = 6/255`, `zero = -128`, the whole int8 range, as in the shipped models)."""
    hi = int(zero) + int(np.round(6.0 / float(scale)))
    return max(INT8_MIN, int(zero)), min(INT8_MAX, hi)


def _clamp8(y: np.ndarray, lo: int, hi: int) -> np.ndarray:
    if not INT8_MIN <= lo <= hi <= INT8_MAX:
        raise ValueError(f"clamp bounds [{lo}, {hi}] are not an int8 sub-range")
    return np.clip(y, lo, hi).astype(np.int8)


# ----------------------------------------------------------------------------- (de)quantization


def quantize(x: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """float -> int8: `clamp(round_half_even(x / scale) + zero)` in double."""
    q = np.round(np.asarray(x, np.float64) / np.float64(scale)) + zero
    return _clamp8(q, INT8_MIN, INT8_MAX)


def dequantize(q: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """int8 -> float32 `scale * (q - zero)`."""
    return (np.float64(scale) * (q.astype(np.float64) - zero)).astype(np.float32)


def preprocess(rgb: np.ndarray, x_scale: float, x_zero: int) -> np.ndarray:
    """uint8 RGB `[N, H, W, 3]` in [0, 255] -> int8 model input (see the module docstring)."""
    if rgb.dtype != np.uint8:
        raise TypeError(f"preprocess expects uint8 RGB in [0, 255], got {rgb.dtype}")
    v = (rgb.astype(np.float64) / 255.0 - 0.5) / 0.5
    return quantize(v, x_scale, x_zero)


# ----------------------------------------------------------------------------- convolution


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv2d_float(x: np.ndarray, w: np.ndarray, stride=1, padding=0, groups: int = 1) -> np.ndarray:
    """Float64 NHWC x HWIO convolution `[N, OH, OW, C_out]`, zero padding (`stride`, `padding`:
    an int or an (H, W) pair); exact for integer-valued inputs below 2^53 (used by `conv2d_acc`
    on `x - x_zero`, and by `tinytrain.reference_graph` for the fp32 ops)."""
    n, _, _, cin = x.shape
    kh, kw, cig, cout = w.shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    xs = np.asarray(x, np.float64)
    if ph or pw:
        xs = np.pad(xs, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xs, (kh, kw), axis=(1, 2))  # [N, H', W', C, KH, KW]
    win = win[:, ::sh, ::sw]
    oh, ow = win.shape[1], win.shape[2]
    wf = np.asarray(w, np.float64)
    if groups == 1:
        cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * cin)
        acc = cols @ wf.reshape(kh * kw * cin, cout)
    elif groups == cin == cout:
        acc = np.einsum("nyxckl,klc->nyxc", win, wf[:, :, 0, :], optimize=True).reshape(n * oh * ow, cout)
    else:
        cog = cout // groups
        acc = np.empty((n * oh * ow, cout))
        for g in range(groups):
            cols = win[..., g * cig:(g + 1) * cig, :, :].transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, -1)
            acc[:, g * cog:(g + 1) * cog] = cols @ wf[..., g * cog:(g + 1) * cog].reshape(-1, cog)
    return acc.reshape(n, oh, ow, cout)


def conv2d_acc(x: np.ndarray, x_zero: int, w: np.ndarray, bias: np.ndarray | None,
               stride=1, padding=0, groups: int = 1) -> np.ndarray:
    """Exact accumulator `bias + dot`, int64 `[N, OH, OW, C_out]`, of an int8 NHWC x HWIO
    convolution (see the module docstring); `groups == C_in == C_out` is depthwise; `stride`,
    `padding`: an int or an (H, W) pair."""
    _check_int8(x, "conv input")
    _check_int8(w, "conv weight")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_acc expects NHWC input and HWIO weight, got ranks {x.ndim} and {w.ndim}")
    cin = x.shape[3]
    cig, cout = w.shape[2], w.shape[3]
    if cin != cig * groups or cout % groups:
        raise ValueError(f"weight {w.shape} with groups={groups} does not fit {cin} input channels")
    if bias is not None and (bias.dtype != np.int32 or bias.shape != (cout,)):
        raise ValueError(f"bias must be int32 [{cout}], got {bias.dtype} {bias.shape}")
    # |x - x_zero| <= 255, so |dot| <= 255 * sum|w|: int32 on the device, exact in float64 here.
    bound = 255.0 * np.abs(w.astype(np.float64)).reshape(-1, cout).sum(0).max(initial=0.0)
    if bound >= 2.0**31:
        raise OverflowError(f"conv dot product may leave int32 (bound {bound:.3g})")
    acc = conv2d_float(x.astype(np.float64) - float(x_zero), w.astype(np.float64), stride, padding, groups)
    acc = acc.astype(np.int64)
    if bias is not None:
        acc += bias.astype(np.int64)
    return acc


# ----------------------------------------------------------------------------- requantization


def quantize_multiplier(eff) -> tuple[np.ndarray, np.ndarray]:
    """Real multipliers `eff > 0` -> `(M0 int32, shift int32)` with `eff ~= M0 * 2^(shift - 31)`,
    `M0` in [2^30, 2^31) (rule (b), step 1 of the module docstring)."""
    e_arr = np.asarray(eff, np.float64)
    if not np.all(np.isfinite(e_arr)) or np.any(e_arr <= 0):
        raise ValueError("requantization multipliers must be finite and positive")
    q, e = np.frexp(e_arr)
    m = np.floor(q * 2.0**31 + 0.5).astype(np.int64)  # q > 0: half away from zero
    carry = m == 2**31
    m = np.where(carry, m // 2, m)
    e = np.where(carry, e + 1, e).astype(np.int64)
    tiny = e < -31
    m = np.where(tiny, 0, m)
    e = np.where(tiny, 0, e)
    if np.any(e > 30):
        raise ValueError(f"requantization multiplier too large: {e_arr.max()} (shift > 30)")
    return m.astype(np.int32), e.astype(np.int32)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp `SaturatingRoundingDoublingHighMul` on int32 values (int64 in and out)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    p = a * b
    t = p + np.where(p >= 0, 1 << 30, 1 - (1 << 30))
    h = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division truncates toward zero
    return np.where(overflow, INT32_MAX, h)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    if np.any((exponent < 0) | (exponent > 31)):
        raise ValueError("RoundingDivideByPOT exponent must be in [0, 31]")
    mask = (np.int64(1) << exponent) - 1
    rem = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (rem > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, m0: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Steps 2-4 of rule (b): int32 `x` times `M0 * 2^(shift - 31)`, rounded (int64 result)."""
    x = np.asarray(x, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    a = np.clip(x << left, INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(a, m0), right)


def requantize_paper(acc: np.ndarray, eff, y_zero: int, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """Rule (a): `clamp(round_half_even(double(acc) * eff) + y_zero, lo, hi)`; `eff` broadcasts
    over the last (channel) axis."""
    y = np.round(acc.astype(np.float64) * np.asarray(eff, np.float64)) + y_zero
    return _clamp8(y, lo, hi)


def saturate_int32(x: np.ndarray) -> np.ndarray:
    """Clamp integers to [-2^31, 2^31 - 1] (int64 result)."""
    return np.clip(np.asarray(x, np.int64), INT32_MIN, INT32_MAX)


def requantize_device(acc: np.ndarray, m0, shift, y_zero: int, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """Rule (b) with a precomputed `(M0, shift)` (from `quantize_multiplier`), integer only.
    `acc` is the exact `bias + dot` (any integer dtype); step 0 saturates it to int32."""
    if not np.issubdtype(acc.dtype, np.integer):
        raise TypeError(f"requantize_device expects an integer accumulator, got {acc.dtype}")
    return _clamp8(multiply_by_quantized_multiplier(saturate_int32(acc), m0, shift) + y_zero, lo, hi)


def requantize(acc: np.ndarray, eff, y_zero: int, rule: str, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """int32 accumulator -> int8 with rule "paper" (a) or "device" (b)."""
    _check_rule(rule)
    if rule == "paper":
        return requantize_paper(acc, eff, y_zero, lo, hi)
    m0, shift = quantize_multiplier(eff)
    return requantize_device(acc, m0, shift, y_zero, lo, hi)


def qconv2d(x: np.ndarray, conv, rule: str = "device", lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """int8 conv + requantization of a `tinytrain.pretrained.QConv` (or anything with its fields)."""
    acc = conv2d_acc(x, conv.x_zero, conv.weight, conv.bias, conv.stride, conv.padding, conv.groups)
    return requantize(acc, conv.effective_scale(), conv.y_zero, rule, lo, hi)


# ----------------------------------------------------------------------------- add, pool, classifier


def add(a: np.ndarray, sa: float, za: int, b: np.ndarray, sb: float, zb: int, sy: float, zy: int,
        rule: str = "device", lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """int8 + int8 -> int8 with rescaling (module docstring, "Residual add")."""
    _check_rule(rule)
    _check_int8(a, "add operand")
    _check_int8(b, "add operand")
    if a.shape != b.shape:
        raise ValueError(f"add operands differ in shape: {a.shape} vs {b.shape}")
    if rule == "paper":
        v = (a.astype(np.float64) - za) * np.float64(sa) + (b.astype(np.float64) - zb) * np.float64(sb)
        return _clamp8(np.round(v / np.float64(sy)) + zy, lo, hi)
    left_shift = 20
    twice_max = 2.0 * max(float(sa), float(sb))
    ma, sha = quantize_multiplier(float(sa) / twice_max)
    mb, shb = quantize_multiplier(float(sb) / twice_max)
    my, shy = quantize_multiplier(twice_max / ((1 << left_shift) * float(sy)))
    ra = multiply_by_quantized_multiplier((a.astype(np.int64) - za) << left_shift, ma, sha)
    rb = multiply_by_quantized_multiplier((b.astype(np.int64) - zb) << left_shift, mb, shb)
    return _clamp8(multiply_by_quantized_multiplier(ra + rb, my, shy) + zy, lo, hi)


def global_avg_pool(x: np.ndarray, rule: str = "device") -> np.ndarray:
    """int8 NHWC -> int8 `[N, 1, 1, C]`, the rounded mean over H and W (same scale and zero)."""
    _check_rule(rule)
    _check_int8(x, "pool input")
    count = x.shape[1] * x.shape[2]
    s = x.astype(np.int64).sum(axis=(1, 2), keepdims=True)
    if rule == "paper":
        y = np.round(s / count)
    else:
        t = s + np.where(s >= 0, count // 2, -(count // 2))
        y = np.where(t >= 0, t // count, -((-t) // count))
    return _clamp8(y, INT8_MIN, INT8_MAX)


def classifier_fp32(x: np.ndarray, conv) -> np.ndarray:
    """The classifier in fp32 (the training setting of the paper): the pooled int8 input
    `[N, 1, 1, C]` dequantized, times the dequantized weights, plus the dequantized bias ->
    float32 logits `[N, C_out]` (real values, no output quantization)."""
    _check_int8(x, "classifier input")
    xf = dequantize(x.reshape(x.shape[0], -1), conv.x_scale, conv.x_zero).astype(np.float64)
    w = conv.weight.reshape(-1, conv.out_channels).astype(np.float64) * conv.w_scales.astype(np.float64)
    b = conv.bias.astype(np.float64) * (np.float64(conv.x_scale) * conv.w_scales.astype(np.float64))
    return (xf @ w + b).astype(np.float32)


# ----------------------------------------------------------------------------- whole model


@dataclass
class ForwardTrace:
    """Result of `forward`: the logits, and with `keep=True` every int8 activation by layer name
    (the output of each conv, of each residual add as `blocks.i.residual`, and `pool`)."""

    logits: np.ndarray  #: int8 `[N, classes]` (classifier="int8") or float32 (classifier="fp32")
    activations: dict[str, np.ndarray] = field(default_factory=dict)


def forward(model, x: np.ndarray, rule: str = "device", classifier: str = "int8",
            keep: bool = False) -> ForwardTrace:
    """Run a `tinytrain.pretrained.McuModel` on int8 NHWC input `x` (see `preprocess`)."""
    _check_rule(rule)
    if classifier not in ("int8", "fp32"):
        raise ValueError(f"classifier must be 'int8' or 'fp32', got {classifier!r}")
    _check_int8(x, "model input")
    hw = model.input_hw
    if x.ndim != 4 or x.shape[1:] != (hw, hw, 3):
        raise ValueError(f"{model.name} expects int8 NHWC input [N, {hw}, {hw}, 3], got {x.shape}")
    acts: dict[str, np.ndarray] = {}

    def run(conv, v):
        y = qconv2d(v, conv, rule)
        if keep:
            acts[conv.name] = y
        return y

    h = run(model.first_conv, x)
    for blk in model.blocks:
        block_in = h
        for conv in blk.convs():
            h = run(conv, h)
        if blk.residual is not None:
            r, pw2 = blk.residual, blk.pointwise2
            h = add(block_in, r.x_scale, r.x_zero, h, pw2.y_scale, pw2.y_zero, r.y_scale, r.y_zero, rule)
            if keep:
                acts[f"blocks.{blk.index}.residual"] = h
    pooled = global_avg_pool(h, rule)
    if keep:
        acts["pool"] = pooled
    if classifier == "fp32":
        logits = classifier_fp32(pooled, model.classifier)
    else:
        logits = qconv2d(pooled, model.classifier, rule).reshape(x.shape[0], -1)
    return ForwardTrace(logits, acts)
