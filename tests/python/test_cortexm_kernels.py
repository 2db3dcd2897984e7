"""Our int8 / fp32 Cortex-M kernels (runtime/kernels) against an independent numpy oracle.

Every kernel runs on seeded random data in the runner (runtime/kernels/test/ttk_runner.c):
natively (gcc, portable C path of the DSP intrinsics, ASan/UBSan) and under QEMU on the
Cortex-M4F (mps2-an386) and the Cortex-M7 (mps2-an500) with SMLAD/SXTB16. int8 outputs must be
bit-exact; fp32 outputs within 1e-6 of a float64 reference (relative to the output's scale).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import ttk_kernels as tk  # noqa: E402
import ttk_oracle as oracle  # noqa: E402

TARGETS = ["host", "mps2-an386", "mps2-an500"]
FP32_TOL = 1e-6


def _s8_cases(rng):
    """(family, case, expected int8 output)."""
    out = []
    # pointwise: MbV2 shapes, odd pixel/channel/K tails, no bias, no clamp, eff > 1 (left shift)
    # relu6=False: full int8 clamp, so all-fast layers take the specialised epilogue; with
    # pos=True (eff > 1 on even channels) a full-range layer takes the general one
    for p, ci, co, relu6, has_bias, pos in [(64, 16, 96, True, True, False), (15, 24, 7, True, True, False),
                                            (17, 12, 10, False, True, True), (16, 20, 12, False, True, False),
                                            (9, 5, 3, False, False, False), (33, 8, 48, True, True, True),
                                            (1, 96, 16, False, True, False), (20, 112, 30, True, True, False),
                                            # q2 layers (folded ReLU6) with 1, 3, 8, 10 and 16 k-quads:
                                            # every entry of the 4-pixel routine's unrolled dot,
                                            # K tails of 1-3 (the widening's partial quad), odd C_out
                                            (13, 3, 9, "folded", True, False), (21, 11, 6, "folded", True, False),
                                            (8, 30, 5, "folded", False, False), (12, 37, 14, "folded", True, False),
                                            (4, 64, 4, "folded", True, False)]:
        q = tk.quant_params(rng, co, relu6=relu6, positive_shift=pos)
        x, w = tk.s8(rng, (p, ci)), tk.s8(rng, (ci, co))
        b = tk.bias32(rng, co) if has_bias else None
        out.append(("conv1x1", tk.case_conv1x1(x, w, b, q), oracle.conv1x1(x, w, b, q)))
    # the same kernel without scratch (register-only widening) and with scratch for only 1-3
    # channel pairs per block (several weight blocks)
    for p, ci, co, scratch in [(64, 16, 96, 0), (15, 23, 7, 0), (33, 8, 48, -4), (13, 21, 9, -3),
                               (5, 6, 5, -2)]:
        q = tk.quant_params(rng, co)
        x, w, b = tk.s8(rng, (p, ci)), tk.s8(rng, (ci, co)), tk.bias32(rng, co)
        out.append(("conv1x1", tk.case_conv1x1(x, w, b, q, scratch=scratch), oracle.conv1x1(x, w, b, q)))
    for ci, co in [(1280, 10), (37, 11), (3, 1)]:
        q = tk.quant_params(rng, co, relu6=False)
        x, w, b = tk.s8(rng, (1, ci)), tk.s8(rng, (ci, co)), tk.bias32(rng, co)
        out.append(("linear", tk.case_conv1x1(x, w, b, q, op="linear"), oracle.conv1x1(x, w, b, q)[0]))
    for k in (3, 5, 7):
        for stride in (1, 2):
            for h, wd, c in [(9, 11, 20), (6, 5, 7), (2, 3, 4)]:
                q = tk.quant_params(rng, c, relu6=(c != 7))
                x, w = tk.s8(rng, (h, wd, c)), tk.s8(rng, (k, k, 1, c))
                b = tk.bias32(rng, c) if c != 4 else None
                out.append(("dwconv", tk.case_dwconv(x, w, k, stride, b, q),
                            oracle.dwconv(x, w, k, stride, b, q)))
    # (the 35-channel case passes the kernel's 32-channel requantization cache; relu6=False
    # cases clamp to the full int8 range, which takes the SSAT path)
    for h, wd, ci, co, k, s, relu6 in [(16, 16, 3, 16, 3, 2, True), (15, 13, 3, 5, 3, 2, True),
                                       (7, 6, 2, 4, 3, 1, False), (9, 9, 1, 3, 5, 2, True),
                                       (5, 6, 3, 35, 3, 2, False), (9, 14, 3, 7, 3, 1, False),
                                       (12, 21, 2, 6, 5, 2, "folded")]:
        q = tk.quant_params(rng, co, relu6=relu6)
        x, w, b = tk.s8(rng, (h, wd, ci)), tk.s8(rng, (k, k, ci, co)), tk.bias32(rng, co)
        out.append(("conv", tk.case_conv(x, w, k, s, b, q), oracle.conv(x, w, k, s, b, q)))
    return out + _pad0_cases(np.random.default_rng(20261202)) + _dw_smlad_cases(np.random.default_rng(20261203))


def _dw_smlad_cases(rng):
    """Depthwise shapes for the SMLAD path (runtime/kernels/src/ttk_s8.c: channel groups of 4,
    a strip of input rows widened to int16 channel planes in the caller's scratch): K 3/5/7,
    stride 1/2, padding (K-1)/2 and 0, 11 channels (a tail of 3 on the one-MAC path), output
    widths with 1-3 pixels after the groups of 4 (3 for K 7 stride 2), heights over several
    strips (the rows shared by two strips are moved, not widened again); full-range clamp (the
    assembly rows on the M4/M7). Per K: a narrow clamp (the C rows with the general epilogue),
    the minimum scratch (one output row per strip), none (the one-MAC path), and a scratch for
    the whole padded input (one strip: its padding rows zeroed once for every channel group;
    stride 1: more than 8 output rows, so the pixel tail's assembly group runs in 2 calls)."""
    out = []
    for k in (3, 5, 7):
        for stride in (1, 2):
            for pad in ((k - 1) // 2, 0):
                h, wd = k + 13 + 4 * stride, k + 17 + 2 * stride + pad
                q = tk.quant_params(rng, 11, relu6="folded" if pad else False)
                x, w, b = tk.s8(rng, (h, wd, 11)), tk.s8(rng, (k, k, 1, 11)), tk.bias32(rng, 11)
                out.append(("dwconv_smlad", tk.case_dwconv(x, w, k, stride, b, q, pad=pad),
                            oracle.dwconv(x, w, k, stride, b, q, pad=pad)))
        for h, wd, stride, relu6, scratch in [(k + 9, k + 14, 1 if k == 5 else 2, True, -1),
                                              (k + 3, k + 10, 2 if k == 5 else 1, "folded", -2),
                                              (k + 2, k + 7, 1, "folded", 0)]:
            q = tk.quant_params(rng, 8, relu6=relu6)
            x, w, b = tk.s8(rng, (h, wd, 8)), tk.s8(rng, (k, k, 1, 8)), tk.bias32(rng, 8)
            out.append(("dwconv_smlad", tk.case_dwconv(x, w, k, stride, b, q, scratch=scratch),
                        oracle.dwconv(x, w, k, stride, b, q)))
        for stride in (1, 2):
            pad, h, wd = (k - 1) // 2, 11 + 2 * k, 10 + k  # 1-3 tail pixels at stride 1
            whole = 16 * k * (k - 1) + (h + 2 * pad) * ((wd + 2 * pad + 4) & ~1) * 8
            q = tk.quant_params(rng, 8, relu6="folded")
            x, w, b = tk.s8(rng, (h, wd, 8)), tk.s8(rng, (k, k, 1, 8)), tk.bias32(rng, 8)
            out.append(("dwconv_smlad", tk.case_dwconv(x, w, k, stride, b, q, scratch=whole),
                        oracle.dwconv(x, w, k, stride, b, q)))
    # the q2 layers' per-call group loop (ttk_dw_groups_q2_dsp on the M4/M7: every output row
    # the assembly's pixel groups, a pixel tail only at stride 1): small maps with one group per
    # row, output widths a multiple of the group at stride 2 (and one that is not: the general
    # loop), padding 0 and (K-1)/2, heights over several strips, 13 and 6 channels (a channel
    # tail of 1 and 2 on the one-MAC path), with and without bias
    for k in (3, 5, 7):
        na = 3 if k == 7 else 4
        for stride, oh, ow, c in [(1, 4, 4, 13), (1, 9, 5, 6), (2, 9, 2 * na, 13), (2, 3, na, 6),
                                  (2, 5, na + 1, 13)]:
            for pad in ((k - 1) // 2, 0):
                h, wd = (oh - 1) * stride + k - 2 * pad, (ow - 1) * stride + k - 2 * pad
                q = tk.quant_params(rng, c, relu6="folded")
                x, w = tk.s8(rng, (h, wd, c)), tk.s8(rng, (k, k, 1, c))
                b = tk.bias32(rng, c) if c != 6 else None
                out.append(("dwconv_smlad", tk.case_dwconv(x, w, k, stride, b, q, pad=pad),
                            oracle.dwconv(x, w, k, stride, b, q, pad=pad)))
    return out


def _pad0_cases(rng):
    """Padding 0 (a pre-padded input, as `patch-stage` gives its patches): depthwise K 3/5/7,
    stride 1/2, channel tails (C mod 4 = 1, 2, 3) and sizes whose last stride-2 window leaves
    a row / column unused; the dense conv at stride 1 and 2."""
    out = []
    for k in (3, 5, 7):
        for stride in (1, 2):
            for h, wd, c, relu6 in [(k + 6, k + 5, 20, "folded"), (k, k + 3, 7, True), (k + 2, k, 6, False),
                                    (k + 1, k + 4, 9, "folded")]:
                q = tk.quant_params(rng, c, relu6=relu6)
                x, w = tk.s8(rng, (h, wd, c)), tk.s8(rng, (k, k, 1, c))
                b = tk.bias32(rng, c) if c != 6 else None
                out.append(("dwconv_pad0", tk.case_dwconv(x, w, k, stride, b, q, pad=0),
                            oracle.dwconv(x, w, k, stride, b, q, pad=0)))
    for h, wd, ci, co, k, s, relu6 in [(17, 17, 3, 16, 3, 2, "folded"), (10, 9, 3, 5, 3, 2, True),
                                       (8, 7, 2, 4, 3, 1, False), (9, 10, 1, 3, 5, 2, True),
                                       (3, 4, 3, 35, 3, 1, "folded")]:
        q = tk.quant_params(rng, co, relu6=relu6)
        x, w, b = tk.s8(rng, (h, wd, ci)), tk.s8(rng, (k, k, ci, co)), tk.bias32(rng, co)
        out.append(("conv_pad0", tk.case_conv(x, w, k, s, b, q, pad=0), oracle.conv(x, w, k, s, b, q, pad=0)))
    return out


def _requant_case(rng):
    edges = np.array([0, 1, -1, 2, -2, 3, -3, (1 << 31) - 1, -(1 << 31), -(1 << 31) + 1,
                      1 << 30, -(1 << 30), 12345, -12345], np.int64)
    mults = np.array([1 << 30, (1 << 31) - 1, 1518500250, 0], np.int64)
    shifts = np.array([0, -1, -2, -7, -31, 1, 5, 30], np.int64)
    a, m, s = (g.ravel() for g in np.meshgrid(edges, mults, shifts, indexing="ij"))
    n_rand = 3000
    a = np.concatenate([a, rng.integers(-(1 << 31), 1 << 31, n_rand), rng.integers(-5000, 5000, n_rand)])
    m = np.concatenate([m, rng.integers(1 << 30, 1 << 31, 2 * n_rand)])
    s = np.concatenate([s, rng.integers(-31, 8, 2 * n_rand)])
    a, m, s = a.astype(np.int32), m.astype(np.int32), s.astype(np.int32)
    case = tk.Case("requant", [len(a)], [a, m, s], 4 * len(a))
    return case, oracle.requantize(a, m, s).astype(np.int32)


def _f32_cases(rng):
    """(family, case, float64 reference)."""
    out = []
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    for k in (3, 5, 7):
        for stride in (1, 2):
            # 20 and 13 channels: groups of 8 (the Cortex-M4F/M7 assembly), then 4, then 1 in C
            for h, wd, c in [(9, 11, 20), (6, 5, 7), (5, 4, 13)]:
                oh, ow = oracle.out_size(h, k, stride), oracle.out_size(wd, k, stride)
                gy, w = f(oh, ow, c), f(k, k, 1, c)
                out.append(("dw_grad_input", tk.Case("dw_grad_input", [h, wd, c, k, stride], [gy, w], h * wd * c * 4),
                            oracle.dwconv_grad_input(gy, w, h, wd, k, stride)))
                xz, xs = int(rng.integers(-128, 128)), float(rng.uniform(0.01, 0.1))
                x = tk.s8(rng, (h, wd, c))
                n_ch = max(1, c // 4) if c > 4 else c
                # dY with all C channels, and (a sparse update's slice) with only the n_ch trained ones
                for g in (gy, np.ascontiguousarray(gy[..., :n_ch])) if n_ch < c else (gy,):
                    out.append(("dw_grad_weight",
                                tk.Case("dw_grad_weight", [h, wd, c, k, stride, n_ch, xz, tk.f32_bits(xs), g.shape[-1]],
                                        [x, g], k * k * n_ch * 4),
                                oracle.dwconv_grad_weight(x, xz, xs, g, k, stride, n_ch)))
    for p, co, ci in [(64, 96, 16), (15, 7, 9), (1, 10, 1280), (8, 1, 4), (4, 3, 12), (20, 56, 112)]:
        gy, w = f(p, co), f(ci, co)
        out.append(("pw_grad_input", tk.Case("pw_grad_input", [p, co, ci], [gy, w], p * ci * 4),
                    oracle.conv1x1_grad_input(gy, w)))
    # (7, 11, 30, 21): the Cortex-M4F/M7's 2x8 blocks on rows 0-9 and columns 0-15, 4x4 blocks on
    # rows 0-7 and columns 16-20 (the last one partly stored), C for the rest of rows 8-10
    for p, ci, co, n_out in [(64, 16, 96, 12), (15, 9, 7, 7), (1, 1280, 10, 10), (33, 96, 16, 2), (20, 13, 8, 8),
                             (7, 11, 30, 21), (9, 6, 16, 16)]:
        xz, xs = int(rng.integers(-128, 128)), float(rng.uniform(0.01, 0.1))
        x, gy = tk.s8(rng, (p, ci)), f(p, co)
        out.append(("pw_grad_weight",
                    tk.Case("pw_grad_weight", [p, ci, co, n_out, xz, tk.f32_bits(xs)], [x, gy], ci * n_out * 4),
                    oracle.conv1x1_grad_weight(x, xz, xs, gy, n_out)))
    return out


def _mask_cases(rng):
    out = []
    for n, lo, hi in [(100, -20, 80), (64, -128, 127), (7, 0, 6)]:
        y = rng.integers(lo - 3, hi + 4, n).clip(-128, 127).astype(np.int8)
        g = rng.standard_normal(n).astype(np.float32)
        bits = oracle.mask_bits(y, lo, hi)
        keep = np.unpackbits(bits, bitorder="little")[:n].astype(bool)
        mbytes = (n + 7) // 8
        out.append((tk.Case("mask", [n, lo, hi], [y, g], ((mbytes + 7) & ~7) + 4 * n),
                    bits, np.where(keep, g, np.float32(0))))
    return out


@pytest.fixture(scope="module")
def host_runner(tmp_path_factory):
    """The host runner (gcc, sanitizers), built once for the module's tests."""
    return tk.build(tmp_path_factory.mktemp("host-runner"), "host")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, host_runner):
    """All cases, run once per target (cached)."""
    rng = np.random.default_rng(20261201)
    s8_cases, f32_cases, mask_cases = _s8_cases(rng), _f32_cases(rng), _mask_cases(rng)
    rq_case, rq_ref = _requant_case(rng)
    cases = [c for _, c, _ in s8_cases] + [c for _, c, _ in f32_cases] + [c for c, _, _ in mask_cases] + [rq_case]
    cache = {}

    def get(target):
        if target not in cache:
            if target != "host" and not tk.qemu_available():
                pytest.skip("qemu-system-arm / arm-none-eabi-gcc not installed")
            d = tmp_path_factory.mktemp(target)
            runner = host_runner if target == "host" else tk.build(d, target)
            cache[target] = tk.run(runner, cases, d / "run")
        res = cache[target]
        i = len(s8_cases) + len(f32_cases) + len(mask_cases)
        return {"s8": list(zip(s8_cases, res[:len(s8_cases)])),
                "f32": list(zip(f32_cases, res[len(s8_cases):len(s8_cases) + len(f32_cases)])),
                "mask": list(zip(mask_cases, res[len(s8_cases) + len(f32_cases):i])),
                "requant": (rq_ref, res[i])}
    return get


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("family", ["conv1x1", "linear", "dwconv", "conv", "dwconv_pad0", "conv_pad0",
                                    "dwconv_smlad"])
def test_int8_kernel_bit_exact(runs, target, family):
    checked = 0
    for (fam, case, ref), (raw, _) in runs(target)["s8"]:
        if fam != family:
            continue
        got = np.frombuffer(raw, np.int8)
        ref = np.asarray(ref, np.int8).ravel()
        assert got.shape == ref.shape, case.params
        bad = np.flatnonzero(got != ref)
        assert bad.size == 0, (family, case.params, bad[:8], got[bad[:8]], ref[bad[:8]])
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("target", TARGETS)
def test_requantize_bit_exact(runs, target):
    ref, (raw, _) = runs(target)["requant"]
    got = np.frombuffer(raw, np.int32)
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, (bad[:8], got[bad[:8]], ref[bad[:8]])


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("family", ["dw_grad_input", "dw_grad_weight", "pw_grad_input", "pw_grad_weight"])
def test_fp32_backward_kernel(runs, target, family):
    checked = 0
    for (fam, case, ref), (raw, _) in runs(target)["f32"]:
        if fam != family:
            continue
        got = np.frombuffer(raw, np.float32).astype(np.float64)
        ref = np.asarray(ref, np.float64).ravel()
        assert got.shape == ref.shape, case.params
        err = np.abs(got - ref).max() / max(1.0, np.abs(ref).max())
        assert err <= FP32_TOL, (family, case.params, err)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("target", TARGETS)
def test_mask_from_output_and_apply(runs, target):
    for (case, bits, g_ref), (raw, _) in runs(target)["mask"]:
        n = case.params[0]
        mbytes = (n + 7) // 8
        assert np.array_equal(np.frombuffer(raw[:mbytes], np.uint8), bits), case.params
        g = np.frombuffer(raw[(mbytes + 7) & ~7:], np.float32)
        assert np.array_equal(g, g_ref), case.params


def test_oracle_requantization_hand_values():
    """The oracle itself, on values worked out by hand from the gemmlowp definitions."""
    assert oracle.quantize_multiplier(0.5) == (1 << 30, 0)
    assert oracle.quantize_multiplier(0.75) == (3 << 29, 0)
    assert oracle.quantize_multiplier(3.0) == (3 << 29, 2)
    # SRDHM: 3 * 0.5 = 1.5 -> 2; -3 * 0.5 = -1.5 -> -1 (gemmlowp's nudge rounds half up there)
    assert oracle.srdhm(3, 1 << 30) == 2 and oracle.srdhm(-3, 1 << 30) == -1
    assert oracle.srdhm(-(1 << 31), -(1 << 31)) == (1 << 31) - 1
    # RDBPOT rounds half away from zero
    assert [int(oracle.rdbpot(v, 1)) for v in (3, -3, 1, -1)] == [2, -2, 1, -1]
    assert int(oracle.rdbpot(-5, 2)) == -1 and int(oracle.rdbpot(-6, 2)) == -2
    # left shift: acc * 2^2 then high mul by 0.75 -> 10 * 3 = 30
    assert int(oracle.requantize(10, 3 << 29, 2)) == 30


def _smmlar(a: int, b: int, c: int) -> int:
    """SMMLAR as the hardware computes it: the high word of (c << 32) + a * b + 2^31 modulo 2^64,
    signed."""
    v = (((c << 32) + a * b + (1 << 31)) & ((1 << 64) - 1)) >> 32
    return v - (1 << 32) if v >= (1 << 31) else v


def _int32(v: int) -> int:
    v &= (1 << 32) - 1
    return v - (1 << 32) if v >= (1 << 31) else v


def test_q2_epilogue_identity_equals_oracle():
    """The kernels' one-SMMLAR epilogue (src/ttk_simd.h, ttk_q2_apply2): under its preconditions
    (right shift e in [1, 22], 2^30 < mult < 2^31, |acc| < 2^30) the kernels accumulate
    acc2 = 2 acc (doubled weights and bias), and SMMLAR(acc2, mult, kc + (acc2 >> 31)) >> e, with
    kc = 2^(e-1) + y_zero 2^e, is requantize(acc) + y_zero: ADD, SMMLAR, ASR (then SSAT, STRB).
    Computed here with int32 registers and the same 64-bit wrap-around as the hardware, and
    checked not to wrap at all (the exact numerator fits int64). Random cases and the edges:
    acc = +-(2^30 - 1), 0, +-1, halves, e = 1 and 22, mult at both ends, y_zero = -128 and 127."""
    rng = np.random.default_rng(11)
    edge_acc = [(1 << 30) - 1, -(1 << 30) + 1, 0, -1, 1, (1 << 29), -(1 << 29)]
    params = [(m, e, yz) for m in ((1 << 30) + 1, (1 << 31) - 1) for e in (1, 22) for yz in (-128, 0, 127)]
    params += [(int(rng.integers((1 << 30) + 1, 1 << 31)), int(rng.integers(1, 23)), int(rng.integers(-128, 128)))
               for _ in range(300)]
    n = 0
    for m, e, yz in params:
        acc = np.concatenate([rng.integers(-(1 << 30) + 1, 1 << 30, 60), np.arange(-40, 41),
                              rng.integers(-512, 512, 40) * (1 << e) // 2, edge_acc])
        acc = acc[np.abs(acc) < (1 << 30)].astype(np.int64)
        want = oracle.requantize(acc, m, -e).astype(np.int64) + yz
        kc = _int32((1 << (e - 1)) + yz * (1 << e))
        for a, w in zip(acc.tolist(), want.tolist()):
            acc2 = _int32(2 * a)
            assert acc2 == 2 * a                            # fits int32, same sign as acc
            t = _int32(kc + (acc2 >> 31))                   # ADD t, kc, acc2, ASR #31
            assert t == kc + (acc2 >> 31)
            exact = (t << 32) + acc2 * m + (1 << 31)
            assert -(1 << 63) <= exact < (1 << 63)           # no 64-bit wrap-around
            hi = _smmlar(acc2, m, t)
            assert hi == exact >> 32
            assert hi >> e == w, (a, m, e, yz)               # ASR hi, e
            n += 1
    assert n > 50000
    # the old form (m2s = (int32)(2 mult), one more ADD) on the same edges, for comparison
    for m, e, yz in params[:12]:
        kc = (1 << (e - 1)) + yz * (1 << e)
        for a in edge_acc:
            want = int(oracle.requantize(np.array([a], np.int64), m, -e)[0]) + yz
            assert _smmlar(a, 2 * m - (1 << 32), a + (a >> 31) + kc) >> e == want


def test_kernels_reject_bad_shapes(host_runner, tmp_path):
    """Unsupported arguments are refused (the runner reports the kernel's -1)."""
    runner = host_runner
    rng = np.random.default_rng(0)
    q = tk.quant_params(rng, 4)
    x, w5 = tk.s8(rng, (5, 5, 4)), tk.s8(rng, (5, 5, 1, 4))
    bad = [tk.case_dwconv(x, tk.s8(rng, (4, 4, 1, 4)), 4, 1, None, q),
           tk.case_dwconv(x, w5, 5, 1, None, q, pad=1),           # padding neither 0 nor (K-1)/2
           tk.case_dwconv(x[:4], w5, 5, 1, None, q, pad=0),       # no output row without padding
           tk.case_conv(x[:, :4, :3], tk.s8(rng, (5, 5, 3, 2)), 5, 1, None, q, pad=0)]
    for i, case in enumerate(bad):
        with pytest.raises(RuntimeError, match="rejected"):
            tk.run(runner, [case], tmp_path / f"run{i}")
