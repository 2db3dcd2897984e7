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


def run(gb, out, *inputs, frozen=()):
    """Compile and run `@forward`; the parameters named in `frozen` become constants of the
    program (`to-linalg` with their values), the others stay arguments (trained)."""
    from torch_mlir import ir

    module = gb.finish(out)
    with module.context:
        assert module.operation.verify()
        # a parameter left as an argument is a trained one (to-linalg inlines the others)
        if frozen:
            func = module.body.operations[0]
            attrs = [ir.DictAttr(a) for a in ir.ArrayAttr(func.attributes["arg_attrs"])]
            func.attributes["arg_attrs"] = ir.ArrayAttr.get([
                ir.DictAttr.get({**{a.name: a.attr for a in d},
                                 **({} if "tinytrain.param" not in d or ir.StringAttr(d["tinytrain.param"]).value in frozen
                                    else {"tinytrain.trainable": ir.UnitAttr.get()})}) for d in attrs])
        lower_to_linalg(module, {n: gb.values[n] for n in frozen} if frozen else None)
        text = str(module)
    h = HostModule(compile_host(text))
    params = [gb.values[n] for n in gb.param_names if n not in frozen]
    return h.call("forward", *params, *inputs)[0], text


def builder(shape, et="i8"):
    ctx = new_context()
    from torch_mlir import ir
    with ctx, ir.Location.unknown():
        t = ir.RankedTensorType.get(shape, ir.IntegerType.get_signless(8) if et == "i8" else ir.F32Type.get())
    return G.GraphBuilder(ctx, t)


def make_conv(rng, cin, cout, k, stride, groups, eff_range=(1e-4, 0.05), dead=True, half=False, name="c"):
    cig = cin // groups
    if half:
        # effective scale exactly 0.5 (M0 = 2^30, shift 0) and small accumulators: every odd
        # accumulator is an exact tie of step 3, which rounds it up
        w = rng.integers(-1, 2, (k, k, cig, cout)).astype(np.int8)
        bias = rng.integers(-3, 4, cout).astype(np.int32)
        return QConv(name, w, bias, np.ones(cout, np.float32), 0.25, int(rng.integers(-100, 100)), 0.5,
                     int(rng.integers(-20, 20)), stride, groups, None, None)
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
    # the shape of a 1x1 conv in MobileNetV2-w0.35's patched first stage: IREE's x86 codegen
    # stops on it for znver4 unless its large-vector check is off (`iree_host.HOST_FLAGS`)
    "pointwise_16x96": dict(cin=16, cout=96, k=1, stride=1, groups=1, hw=16),
    "depthwise_3x3": dict(cin=6, cout=6, k=3, stride=1, groups=6, hw=7),
    "depthwise_5x5_s2": dict(cin=4, cout=4, k=5, stride=2, groups=4, hw=10),
    "depthwise_7x7": dict(cin=3, cout=3, k=7, stride=1, groups=3, hw=8),
    # multipliers >= 0.5: shift > 0, the left-shift-then-saturate path of step 2
    "left_shift": dict(cin=3, cout=4, k=3, stride=1, groups=1, hw=5, eff_range=(0.4, 6.0)),
    # a narrow clamp (a ReLU6 of a different scale)
    "clamp": dict(cin=4, cout=4, k=3, stride=1, groups=1, hw=5, clamp=(-20, 40)),
    # M0 = 2^30 with odd accumulators near 0: the rounding of step 3 decides every other output
    "half": dict(cin=4, cout=3, k=1, stride=1, groups=1, hw=6, half=True),
}


@pytest.mark.parametrize("frozen", ["none", "weight", "all"])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_qconv2d_bit_exact(case, frozen):
    """The same integers whether the weight and bias are arguments (trained) or constants of the
    program (frozen: `to-linalg` inlines their values, and IREE then compiles the convolution
    with the weight known)."""
    p = dict(CONV_CASES[case])
    rng = np.random.default_rng(sorted(CONV_CASES).index(case))
    hw, clamp = p.pop("hw"), p.pop("clamp", G.FULL_CLAMP)
    conv = make_conv(rng, **p)
    gb = builder([2, hw, hw, p["cin"]])
    out = G.add_qconv(gb, gb.input, conv, clamp)
    if p.get("half"):
        x = (conv.x_zero + rng.integers(-6, 7, (2, hw, hw, p["cin"]))).astype(np.int8)
    else:
        x = rng.integers(-128, 128, (2, hw, hw, p["cin"])).astype(np.int8)
    names = {"none": (), "weight": ("c.weight",), "all": ("c.weight", "c.bias")}[frozen]
    assert set(names) <= set(gb.param_names)
    got, text = run(gb, out, x, frozen=names)
    assert all(f'"{n}"' not in text for n in names)   # inlined: no longer an argument
    want = ref.qconv2d(x, conv, "device", *clamp)
    assert got.dtype == np.int8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    acc = ref.conv2d_acc(x, conv.x_zero, conv.weight, conv.bias, conv.stride, conv.padding, conv.groups)
    if p.get("half"):
        # the case is what it says: many odd accumulators, none clamped
        assert (acc % 2 == 1).sum() >= acc.size // 4 and np.abs(acc).max() < 200
    elif p.get("eff_range") is None:
        # the saturating bias add matters: the dead channels leave int32 without it
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
    got, _ = run(gb, out, a)
    np.testing.assert_array_equal(got, ref.add(a, sa, za, gb.values["b"], sb, zb, sy, zy, "device", -100, 120))


#: (lhs, rhs, output) scales of `test_qadd_every_input_pair`, each reaching another branch of the
#: fixed-point rule (`reference.add`)
QADD_CASES = {
    "typical": (0.05, 0.03, 0.06),
    # powers of two: the lhs multiplier is 2^-21 (M0 = 2^30, right shift 20), the output one 0.5
    # (M0 = 2^30, no shift): with b at its zero point the output is the lhs' rounded half of a
    # half, so step 3 meets exact ties (+-1 * 2^30) and step 4 too
    "ties": (2.0**-20, 1.0, 2.0**-18),
    # output multiplier above 1: the left-shift-then-saturate path of step 2
    "output_left_shift": (0.001, 0.001, 0.002 / 2**20 / 1.5),
    # lhs scale below 2^-31 of the rhs: its multiplier is 0
    "input_multiplier_0": (1e-12, 1.0, 0.01),
}


@pytest.mark.parametrize("case", sorted(QADD_CASES))
def test_qadd_every_input_pair(case):
    """All 65,536 (a, b) pairs of int8 values, against the reference."""
    sa, sb, sy = QADD_CASES[case]
    za, zb, zy = 3, -7, 5
    q = np.arange(-128, 128, dtype=np.int8)
    a = np.repeat(q, 256).reshape(1, 256, 256, 1)
    b = np.tile(q, 256).reshape(1, 256, 256, 1)
    gb = builder(list(a.shape))
    bp = gb.param("b", b)
    out = G.add_qadd(gb, gb.input, bp, sa, za, sb, zb, sy, zy)
    got, _ = run(gb, out, a)
    want = ref.add(a, sa, za, b, sb, zb, sy, zy, "device")
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 2  # not everything clamped


@pytest.mark.parametrize("clamp", ["select", "minmax"])
@pytest.mark.parametrize("et", ["i8", "i32"])
def test_qsgd_update_saturates_like_the_exact_integers(et, clamp):
    """`qsgd_update` = `clamp(p - round_half_even(f32(lr) * g))` over the exact integers: steps
    of any size (beyond the width the lowering computes in), ties (of both signs, and for the i32
    bias on both sides of 2^22 and 2^23, where the rounding's f32 add changes), both saturation
    bounds; a NaN step leaves its element unchanged. Both clamp lowerings (the step is clamped
    with the target's clamp: `minmax` on the cortex-m7)."""
    from torch_mlir import ir

    lr = 0.5
    if et == "i8":
        p = np.array([-127, -127, 127, 127, 0, 5, -5, 100, -100, 3, 3, -127, 127, 0, 64, -64,
                      0, 0, 1, -1, 7, 7], np.int8)
        steps = [-250, -254, 250, 254, 300, 2.5, -2.5, 1e30, -1e30, 3.5, -3.5, -255, 255, 0, 127.5, -191,
                 0.5, -0.5, 1.5, -1.5, np.nan, -np.inf]
        lo, hi = -127, 127
    else:
        imin, imax = -(2**31), 2**31 - 1
        p = np.array([imin, imin, imax, imax, 0, 5, -5, 1000, -1000, imin, imax, 7, 0, 2**30, -(2**30), 1,
                      0, 0, 0, 0, 0, 0, 0, 0, 9, 9], np.int32)
        steps = [-4e9, -2**31, 4e9, 2**31, 3e9, 2.5, -2.5, 1e30, -1e30, 2**31, -2**31, 3.5, -8.5e9, -2**31, 2**31, -1e12,
                 2**22 - 0.5, 2**22 + 0.5, 2**22 + 1.5, -(2**22 + 1.5), 2**23 - 0.5, -(2**23 - 1.5), 2**23 + 2,
                 -(2**24 + 2), np.nan, np.inf]
        lo, hi = imin, imax
    g = (np.asarray(steps, np.float64) / lr).astype(np.float32)
    prod = np.float32(lr) * g
    exact = np.abs(np.asarray(steps)) < 2**25  # the ties and small steps are f32 values
    assert np.array_equal(prod[exact].astype(np.float64), np.asarray(steps)[exact])
    with np.errstate(invalid="ignore"):
        step = np.round(prod).astype(np.float64)  # f32 product, rounded half to even
        want = np.clip(p.astype(np.float64) - np.nan_to_num(step), lo, hi).astype(p.dtype)
    want[np.isnan(prod)] = p[np.isnan(prod)]
    n = p.size
    text = (f"func.func @step(%p: tensor<{n}x{et}>, %g: tensor<{n}xf32>, %l: tensor<f32>) -> tensor<{n}x{et}> {{\n"
            f"  %0 = \"tinytrain.qsgd_update\"(%p, %g, %l) {{lr = {lr:e} : f32}} : "
            f"(tensor<{n}x{et}>, tensor<{n}xf32>, tensor<f32>) -> tensor<{n}x{et}>\n"
            f"  return %0 : tensor<{n}x{et}>\n}}\n")
    with new_context() as ctx:
        module = ir.Module.parse(text, ctx)
        lower_to_linalg(module, None, clamp=clamp)
        h = HostModule(compile_host(str(module)))
    got = h.call("step", p, g, np.array(1.0, np.float32))[0]
    np.testing.assert_array_equal(got, want)
    # a non-finite loss leaves the parameter unchanged
    np.testing.assert_array_equal(h.call("step", p, g, np.array(np.inf, np.float32))[0], p)


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
    got, _ = run(gb, out, x)
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
    got, _ = run(gb, out, v)
    qv = ref.quantize(v, scale, zero)
    np.testing.assert_array_equal(got, ref.dequantize(qv, 0.0173, 3))
    gb = builder(list(v.shape), "f32")
    np.testing.assert_array_equal(run(gb, G.add_quantize(gb, gb.input, scale, zero), v)[0], qv)
