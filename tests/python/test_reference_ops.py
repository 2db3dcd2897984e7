"""tinytrain.reference, op by op, against direct float computations (torch float64 convolution,
Python integers for the fixed-point rule)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinytrain import reference as R

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def _rand_i8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def _torch_conv(x, x_zero, w_hwio, bias, stride, padding, groups):
    """Float64 convolution of (x - x_zero) in NCHW/OIHW, zero padding, + bias -> NHWC."""
    xt = torch.from_numpy(x.astype(np.float64) - x_zero).permute(0, 3, 1, 2)
    wt = torch.from_numpy(w_hwio.astype(np.float64)).permute(3, 2, 0, 1)
    bt = torch.from_numpy(bias.astype(np.float64))
    return F.conv2d(xt, wt, bt, stride=stride, padding=padding, groups=groups).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("cin,cout,k,stride,groups,hw", [
    (3, 16, 3, 2, 1, 17),    # first conv, odd size, stride 2
    (8, 24, 1, 1, 1, 9),     # pointwise
    (12, 12, 3, 1, 12, 10),  # depthwise 3x3
    (6, 6, 7, 2, 6, 11),     # depthwise 7x7 stride 2
    (8, 6, 3, 1, 2, 7),      # grouped (neither dense nor depthwise)
])
def test_conv2d_acc_matches_float_conv(cin, cout, k, stride, groups, hw):
    rng = np.random.default_rng(k * 100 + cin)
    x = _rand_i8(rng, (2, hw, hw, cin))
    w = _rand_i8(rng, (k, k, cin // groups, cout), -127, 127)
    bias = rng.integers(-(2**20), 2**20, size=cout).astype(np.int32)
    x_zero = -37
    acc = R.conv2d_acc(x, x_zero, w, bias, stride, (k - 1) // 2, groups)
    ref = _torch_conv(x, x_zero, w, bias, stride, (k - 1) // 2, groups)
    assert acc.dtype == np.int64 and acc.shape == ref.shape
    np.testing.assert_array_equal(acc, ref.astype(np.int64))


def test_conv2d_acc_keeps_saturated_bias_exact():
    """A 'dead' channel with bias -2^31 (as in the shipped models): the exact sum leaves int32,
    the device rule saturates it, the paper rule uses it as is."""
    x = np.full((1, 3, 3, 1), 100, np.int8)
    w = np.full((1, 1, 1, 1), -2, np.int8)
    bias = np.array([I32_MIN], np.int32)
    acc = R.conv2d_acc(x, 0, w, bias)
    assert acc.min() == I32_MIN - 200
    eff = np.array([1e-8])
    assert R.requantize_paper(acc, eff, 0)[0, 0, 0, 0] == round((I32_MIN - 200) * 1e-8)
    m0, sh = R.quantize_multiplier(eff)
    assert R.requantize_device(acc, m0, sh, 0)[0, 0, 0, 0] == round(I32_MIN * 1e-8)


def test_conv2d_acc_rejects_bad_inputs():
    x = np.zeros((1, 4, 4, 3), np.int8)
    with pytest.raises(TypeError, match="int8"):
        R.conv2d_acc(x.astype(np.float32), 0, np.zeros((1, 1, 3, 2), np.int8), None)
    with pytest.raises(ValueError, match="groups"):
        R.conv2d_acc(x, 0, np.zeros((1, 1, 2, 2), np.int8), None)
    with pytest.raises(ValueError, match="bias"):
        R.conv2d_acc(x, 0, np.zeros((1, 1, 3, 2), np.int8), np.zeros(2, np.int64))


# ----------------------------------------------------------------------------- fixed point, by Python ints


def _py_srdhm(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    p = a * b
    t = p + ((1 << 30) if p >= 0 else 1 - (1 << 30))
    return int(t / 2**31) if abs(t) < 2**52 else (abs(t) >> 31) * (1 if t >= 0 else -1)


def _py_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > threshold else 0)


def test_fixed_point_primitives_match_scalar_definition():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.integers(I32_MIN, I32_MAX, 3000, endpoint=True),
                        [I32_MIN, I32_MAX, 0, 1, -1, 2**30, -(2**30)]])
    b = np.concatenate([rng.integers(2**30, I32_MAX, 3000, endpoint=True), [I32_MIN, 2**30, 2**30, I32_MAX, I32_MAX,
                                                                            I32_MIN, 2**31 - 1]])
    got = R.saturating_rounding_doubling_high_mul(a, b)
    want = [_py_srdhm(int(x), int(y)) for x, y in zip(a, b)]
    np.testing.assert_array_equal(got, want)
    e = rng.integers(0, 32, a.size)
    np.testing.assert_array_equal(R.rounding_divide_by_pot(a, e), [_py_rdbpot(int(x), int(s)) for x, s in zip(a, e)])


@pytest.mark.parametrize("x,e,want", [(5, 1, 3), (-5, 1, -3), (3, 1, 2), (-3, 1, -2), (4, 1, 2), (6, 2, 2),
                                      (-6, 2, -2), (-7, 2, -2), (7, 2, 2), (9, 0, 9)])
def test_rounding_divide_by_pot_rounds_half_away_from_zero(x, e, want):
    assert R.rounding_divide_by_pot(x, e) == want
    assert want == math.copysign(math.floor(abs(x) / 2**e + 0.5), x)  # the float definition agrees


def test_quantize_multiplier_range_and_error():
    rng = np.random.default_rng(2)
    eff = np.concatenate([10 ** rng.uniform(-9, -0.01, 2000), [0.5, 0.25, 2**-31, 0.999999999999]])
    m0, sh = R.quantize_multiplier(eff)
    assert m0.dtype == np.int32 and sh.dtype == np.int32
    assert np.all((m0 >= 2**30) & (m0.astype(np.int64) < 2**31))
    approx = m0.astype(np.float64) * np.exp2(sh.astype(np.float64) - 31)
    assert np.all(np.abs(approx - eff) <= np.exp2(sh - 32.0) * 1.0000001)
    # q * 2^31 rounding up to 2^31 carries into the exponent
    m, s = R.quantize_multiplier(1 - 2.0**-40)
    assert (int(m), int(s)) == (2**30, 1)
    # below 2^-32 the multiplier is 0 (output = zero point)
    m, s = R.quantize_multiplier(2.0**-40)
    assert (int(m), int(s)) == (0, 0)
    with pytest.raises(ValueError, match="positive"):
        R.quantize_multiplier([0.1, 0.0])


def test_requantize_device_is_within_half_lsb_plus_fixed_point_error():
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2**24), 2**24, size=(4000, 8))
    eff = 10 ** rng.uniform(-7, -2, 8)
    exact = acc * eff
    m0, shift = R.quantize_multiplier(eff)
    y = R.requantize_device(acc, m0, shift, 0, -(2**7), 127).astype(np.float64)
    inside = np.abs(exact) < 127
    # rounding of the result, plus the high-mul's rounding (half a unit at 2^-right), plus M0's
    # relative error 2^-31
    bound = 0.5 + np.exp2(shift - 1.0) + np.abs(exact) * 2.0**-31
    assert np.all(np.abs(y - exact)[inside] <= np.broadcast_to(bound, exact.shape)[inside])
    paper = R.requantize_paper(acc, eff, 0)
    diff = np.abs(paper.astype(int) - y)
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_requantize_paper_is_round_half_even_then_zero_point_and_clamp():
    acc = np.array([3, 5, -3, -5, 7, 1000, -1000])
    got = R.requantize_paper(acc, 0.5, 10)
    want = [min(127, max(-128, round(a * 0.5) + 10)) for a in acc.tolist()]  # Python round: half even
    assert got.tolist() == want == [12, 12, 8, 8, 14, 127, -128]


def test_relu_clamps():
    assert R.relu_bounds(-20) == (-20, 127)
    assert R.relu6_bounds(6 / 255, -128) == (-128, 127)
    lo, hi = R.relu6_bounds(0.1, -10)
    assert (lo, hi) == (-10, 50)
    acc = np.arange(-3000, 3000, 7)
    y = R.requantize(acc, 0.05, -10, "device", lo, hi).astype(np.float64)
    real = 0.1 * (y - (-10))
    ref = np.clip(np.clip(np.round(acc * 0.05) - 10, -128, 127) * 0.1 + 1.0, 0, 6)
    np.testing.assert_allclose(real, ref, atol=0.1 + 1e-9)
    assert real.min() == 0 and real.max() == pytest.approx(6.0)


@pytest.mark.parametrize("rule", R.RULES)
def test_qconv2d_matches_float_conv_within_one_lsb(rule):
    rng = np.random.default_rng(4)
    c = SimpleNamespace(weight=_rand_i8(rng, (3, 3, 8, 12), -127, 127),
                        bias=rng.integers(-3000, 3000, 12).astype(np.int32),
                        w_scales=(10 ** rng.uniform(-3, -2, 12)).astype(np.float32),
                        x_scale=0.05, x_zero=-5, y_scale=0.2, y_zero=3, stride=2, padding=1, groups=1)
    c.effective_scale = lambda: c.x_scale * c.w_scales.astype(np.float64) / c.y_scale
    x = _rand_i8(rng, (1, 9, 9, 8))
    y = R.qconv2d(x, c, rule)
    # float reference: dequantize, convolve, quantize
    xr = R.dequantize(x, c.x_scale, c.x_zero).astype(np.float64)
    wr = c.weight.astype(np.float64) * c.w_scales.astype(np.float64)
    yr = F.conv2d(torch.from_numpy(xr).permute(0, 3, 1, 2), torch.from_numpy(wr).permute(3, 2, 0, 1),
                  torch.from_numpy(c.bias * c.x_scale * c.w_scales.astype(np.float64)), stride=2, padding=1)
    yq = np.clip(np.round(yr.permute(0, 2, 3, 1).numpy() / c.y_scale) + c.y_zero, -128, 127)
    assert np.abs(y.astype(int) - yq).max() <= 1


# ----------------------------------------------------------------------------- add, pool, classifier


def test_add_paper_rule_is_the_real_sum():
    rng = np.random.default_rng(5)
    a, b = _rand_i8(rng, (2, 5, 5, 7)), _rand_i8(rng, (2, 5, 5, 7))
    sa, za, sb, zb, sy, zy = 0.06, 3, 0.09, -7, 0.1, 2
    got = R.add(a, sa, za, b, sb, zb, sy, zy, "paper")
    real = (a.astype(float) - za) * sa + (b.astype(float) - zb) * sb
    np.testing.assert_array_equal(got, np.clip(np.round(real / sy) + zy, -128, 127))


def test_add_device_rule_within_one_lsb_of_paper():
    rng = np.random.default_rng(6)
    a, b = _rand_i8(rng, (50000,)), _rand_i8(rng, (50000,))
    for sa, za, sb, zb, sy, zy in [(0.0894, 23, 0.0581, -6, 0.1106, -2), (0.05, 0, 0.05, 0, 0.07, 0),
                                   (0.0312, -4, 0.0247, 13, 0.042, 0)]:
        p = R.add(a, sa, za, b, sb, zb, sy, zy, "paper").astype(int)
        d = R.add(a, sa, za, b, sb, zb, sy, zy, "device").astype(int)
        assert np.abs(p - d).max() <= 1
        assert np.mean(p != d) < 0.01


def test_add_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        R.add(np.zeros(3, np.int8), 1, 0, np.zeros(4, np.int8), 1, 0, 1, 0)


def test_global_avg_pool_rounding():
    x = np.array([1, 2, 2, 3, -2, -3, 5, 5], np.int8).reshape(4, 1, 2, 1)  # means 1.5, 2.5, -2.5, 5
    assert R.global_avg_pool(x, "paper").ravel().tolist() == [2, 2, -2, 5]   # half even
    assert R.global_avg_pool(x, "device").ravel().tolist() == [2, 3, -3, 5]  # half away from zero
    rng = np.random.default_rng(7)
    x = _rand_i8(rng, (3, 7, 7, 16))
    mean = x.astype(float).mean(axis=(1, 2), keepdims=True)
    for rule in R.RULES:
        assert np.abs(R.global_avg_pool(x, rule) - mean).max() <= 0.5


def test_classifier_fp32_is_the_dequantized_linear_layer():
    rng = np.random.default_rng(8)
    c = SimpleNamespace(weight=_rand_i8(rng, (1, 1, 16, 10), -127, 127), bias=rng.integers(-500, 500, 10).astype(np.int32),
                        w_scales=(10 ** rng.uniform(-3, -2, 10)).astype(np.float32), x_scale=0.16, x_zero=-2,
                        out_channels=10)
    x = _rand_i8(rng, (3, 1, 1, 16))
    got = R.classifier_fp32(x, c)
    lin = torch.nn.Linear(16, 10).double()
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(c.weight[0, 0].T * c.w_scales.astype(np.float64)[:, None]))
        lin.bias.copy_(torch.from_numpy(c.bias * c.x_scale * c.w_scales.astype(np.float64)))
    want = lin(torch.from_numpy((x.reshape(3, 16).astype(np.float64) - c.x_zero) * c.x_scale)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_preprocess_maps_0_255_to_the_input_grid():
    rgb = np.array([0, 1, 127, 128, 254, 255], np.uint8).reshape(1, 1, 6, 1)
    q = R.preprocess(rgb, 1 / 127.5, 0)
    assert q.dtype == np.int8
    # real value (x/255 - 0.5)/0.5 = x/127.5 - 1, on a grid of 1/127.5: q = x - 127.5 rounded
    assert np.all(np.abs(q.astype(float).ravel() - (rgb.ravel() - 127.5)) == 0.5)
    with pytest.raises(TypeError, match="uint8"):
        R.preprocess(rgb.astype(np.float32), 1 / 127.5, 0)


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="rule"):
        R.requantize(np.zeros(3, np.int64), 0.1, 0, "tflite")
