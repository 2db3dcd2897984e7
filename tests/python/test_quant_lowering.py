"""The int8 ops compiled for the host equal `tinytrain.reference` (device rule) bit for bit.

Each case builds a one-op (or few-op) `@forward` with `tinytrain.pretrained.graph`'s builders,
lowers it with `to-linalg`, compiles it with IREE for the host and compares every output element
with the numpy reference. The inputs cover the corner cases of the fixed-point rule: dead
channels whose int32 bias is +-2^31 (saturating bias add), left shifts (multipliers >= 0.5),
large right shifts, narrow clamps, exact ties of the average pool.
"""

import numpy as np
import pytest

from tinytrain import reference as ref
from tinytrain.context import new_context
from tinytrain.lowering.conversions.tinytrain_to_linalg import lower_to_linalg
from tinytrain.lowering.host.iree_host import HostModule, compile_host
from tinytrain.pretrained import QConv
from tinytrain.pretrained import graph as G


def run(gb, out, *inputs):
    module = gb.finish(out)
    with module.context:
        assert module.operation.verify()
        lower_to_linalg(module, None)
    h = HostModule(compile_host(str(module)))
    params = [gb.values[n] for n in gb.param_names]
    return h.call("forward", *params, *inputs)[0]


def builder(shape, et="i8"):
    ctx = new_context()
    from torch_mlir import ir
    with ctx, ir.Location.unknown():
        t = ir.RankedTensorType.get(shape, ir.IntegerType.get_signless(8) if et == "i8" else ir.F32Type.get())
    return G.GraphBuilder(ctx, t)


def make_conv(rng, cin, cout, k, stride, groups, eff_range=(1e-4, 0.05), dead=True, name="c"):
    cig = cin // groups
    w = rng.integers(-127, 128, (k, k, cig, cout)).astype(np.int8)
    bias = rng.integers(-20000, 20000, cout).astype(np.int32)
    if dead:
        # "dead" channels: tiny weights, bias saturated at +-2^31 (as in ProxylessNAS / MCUNet)
        w[..., :2] = rng.integers(-2, 3, w[..., :2].shape)
        bias[0] = 2**31 - 1
        if cout > 1:
            bias[1] = -(2**31)
    x_scale, y_scale = 0.02, 0.05
    eff = np.exp(rng.uniform(np.log(eff_range[0]), np.log(eff_range[1]), cout))
    w_scales = (eff * y_scale / x_scale).astype(np.float32)
    return QConv(name, w, bias, w_scales, x_scale, int(rng.integers(-128, 100)), y_scale,
                 int(rng.integers(-128, 128)), stride, groups, None, None)


CONV_CASES = {
    "dense_3x3_s2": dict(cin=5, cout=6, k=3, stride=2, groups=1, hw=9),
    "pointwise": dict(cin=8, cout=4, k=1, stride=1, groups=1, hw=5),
    "depthwise_3x3": dict(cin=6, cout=6, k=3, stride=1, groups=6, hw=7),
    "depthwise_5x5_s2": dict(cin=4, cout=4, k=5, stride=2, groups=4, hw=10),
    "depthwise_7x7": dict(cin=3, cout=3, k=7, stride=1, groups=3, hw=8),
    # multipliers >= 0.5: shift > 0, the left-shift-then-saturate path of step 2
    "left_shift": dict(cin=3, cout=4, k=3, stride=1, groups=1, hw=5, eff_range=(0.4, 6.0)),
    # a narrow clamp (a ReLU6 of a different scale)
    "clamp": dict(cin=4, cout=4, k=3, stride=1, groups=1, hw=5, clamp=(-20, 40)),
}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_qconv2d_bit_exact(case):
    p = dict(CONV_CASES[case])
    rng = np.random.default_rng(sorted(CONV_CASES).index(case))
    hw, clamp = p.pop("hw"), p.pop("clamp", G.FULL_CLAMP)
    conv = make_conv(rng, **p)
    gb = builder([2, hw, hw, p["cin"]])
    out = G.add_qconv(gb, gb.input, conv, clamp)
    x = rng.integers(-128, 128, (2, hw, hw, p["cin"])).astype(np.int8)
    got = run(gb, out, x)
    want = ref.qconv2d(x, conv, "device", *clamp)
    assert got.dtype == np.int8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # the saturating bias add matters: the dead channels leave int32 without it
    acc = ref.conv2d_acc(x, conv.x_zero, conv.weight, conv.bias, conv.stride, conv.padding, conv.groups)
    if p.get("eff_range") is None:
        assert acc.max() > 2**31 - 1 or acc.min() < -(2**31)


@pytest.mark.parametrize("scales", [(0.05, 0.03, 0.06), (0.01, 0.2, 0.15), (0.1, 0.1, 0.02)])
def test_qadd_bit_exact(scales):
    sa, sb, sy = scales
    rng = np.random.default_rng(int(sa * 1000))
    za, zb, zy = (int(v) for v in rng.integers(-128, 128, 3))
    shape = [1, 6, 6, 8]
    gb = builder(shape)
    b = gb.param("b", rng.integers(-128, 128, shape).astype(np.int8))
    out = G.add_qadd(gb, gb.input, b, sa, za, sb, zb, sy, zy, (-100, 120))
    a = rng.integers(-128, 128, shape).astype(np.int8)
    got = run(gb, out, a)
    np.testing.assert_array_equal(got, ref.add(a, sa, za, gb.values["b"], sb, zb, sy, zy, "device", -100, 120))


def test_qavg_pool_bit_exact_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2, 4, 4, 40)).astype(np.int8)
    # exact ties (sum = k * 16 + 8) of both signs, where round-half-even would differ
    x[0, :, :, 0] = 0
    x[0, 0, 0, 0] = 8
    x[0, :, :, 1] = 0
    x[0, 0, 0, 1] = -24
    gb = builder(list(x.shape))
    out = G.add_qavg_pool(gb, gb.input)
    got = run(gb, out, x)
    want = ref.global_avg_pool(x, "device").reshape(2, 40)
    np.testing.assert_array_equal(got, want)
    assert got[0, 0] == 1 and got[0, 1] == -2  # ties away from zero


def test_quantize_dequantize_bit_exact():
    rng = np.random.default_rng(4)
    scale, zero = 1 / 127.5, -1
    v = rng.uniform(-1.2, 1.2, (1, 8, 8, 3)).astype(np.float32)
    v.flat[:4] = [-5.0, 5.0, 0.0, np.float32(3.5 * scale)]
    gb = builder(list(v.shape), "f32")
    q = G.add_quantize(gb, gb.input, scale, zero)
    out = G.add_dequantize(gb, q, 0.0173, 3)
    got = run(gb, out, v)
    qv = ref.quantize(v, scale, zero)
    np.testing.assert_array_equal(got, ref.dequantize(qv, 0.0173, 3))
    gb = builder(list(v.shape), "f32")
    np.testing.assert_array_equal(run(gb, G.add_quantize(gb, gb.input, scale, zero), v), qv)
