"""Logic of `bench/cortexm_step_profile.py` (issue #10's per-command profile) that its tables rely
on, without compiling: the commands of a function read from the generated command table (the
format `lowering/cortexm/schedule_c.py` emits), the PROF lines split per step, the MACs and kinds
of our kernels and of IREE's contractions from their names, and the grouping."""

from pathlib import Path

import pytest
from conftest import load_bench

#: command tables schedule_c.emit generated (tests/fixtures/hal/regenerate.py)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hal"


@pytest.fixture(scope="module")
def bench():
    return load_bench("cortexm_step_profile")


def test_command_table_is_train_steps_commands(bench):
    rows = bench.command_table((FIXTURES / "conv_model.c").read_text())
    assert len(rows) == 23 and [r[0] for r in rows] == list(range(23))
    assert rows[0] == (0, "fill", "", 400) and rows[1] == (1, "dispatch", "train_step_dispatch_0_slow_memcpy", 0)
    assert rows[3][2] == "train_step_dispatch_1_conv_4x4x4x3x3_f32"
    # a fill's and a copy's bytes, of another function
    rows = bench.command_table((FIXTURES / "copy_model.c").read_text(), "predict")
    assert rows == [(0, "fill", "", 32), (1, "copy", "", 16), (2, "dispatch", "predict_dispatch_0_matmul_1x3x4_f32", 0)]


def test_prof_lines_split_per_step(bench):
    out = "boot\nPROF 0 3\nPROF 1 10\nSTEP 0 loss_bits=1 ticks=20\nPROF 0 4\nPROF 0 1\nSTEP 1 loss_bits=1 ticks=9\nPROF 3 7\n"
    assert bench.per_step(out) == [{0: 3, 1: 10}, {0: 5}]


def test_macs_and_kinds_from_names(bench):
    # depthwise 16x16 C96 3x3 s2 pad 1 -> 8x8 outputs, 9 taps each
    assert bench.macs("ttk_dwconv_s8_16_16_96_3_2_1_m128_m128_m128_127") == 8 * 8 * 96 * 9
    assert bench.macs("ttk_conv1x1_s8_256_16_96_m2_m128_m128_127") == 256 * 16 * 96
    # first conv 129x129x3 -> 16, 3x3 s2 pad 0: 64x64 outputs
    assert bench.macs("ttk_conv_s8_129_129_3_16_3_2_0_0_m128_m128_127") == 64 * 64 * 16 * 27
    assert bench.macs("ttk_conv1x1_grad_input_f32_64_192_32") == 64 * 192 * 32
    assert bench.macs("ttk_dwconv_grad_input_f32_16_16_48_3_2") == 8 * 8 * 48 * 9
    assert bench.kind("dispatch", "ttk_dwconv_grad_input_f32_16_16_48_3_2") == "ours: depthwise input gradient (fp32)"
    # the weight gradient: H W C K s x_zero n_ch c_g, n_ch of C channels computed
    assert bench.macs("ttk_dwconv_grad_weight_f32_16_16_48_3_2_m5_12_48") == 8 * 8 * 12 * 9
    assert bench.macs("ttk_dwconv_grad_weight_f32_4_4_336_3_1_m128_42_42") == 4 * 4 * 42 * 9
    assert bench.kind("dispatch", "ttk_dwconv_grad_weight_f32_16_16_48_3_2_m5_12_48") == "ours: depthwise weight gradient (fp32)"
    assert bench.macs("ttk_conv1x1_grad_weight_f32_64_32_192_m3") == 64 * 32 * 192
    assert bench.macs("train_step_dispatch_9_matmul_like_16x56x84_f32") == 16 * 56 * 84
    assert bench.macs("train_step_dispatch_2_elementwise_4096_i8") is None
    assert bench.kind("dispatch", "ttk_conv1x1_s8_256_16_96_m2_m128_m128_127") == "ours: pointwise (int8)"
    assert bench.kind("dispatch", "train_step_dispatch_9_matmul_like_16x56x84_f32").startswith("IREE fp32 matmul")
    assert bench.kind("dispatch", "train_step_dispatch_7_reduction_64x48x3x3_f32").startswith("IREE fp32 reduction")
    assert bench.kind("dispatch", "train_step_dispatch_3_elementwise_4096_i8").startswith("IREE elementwise")
    assert bench.kind("dispatch", "train_step_dispatch_0_slow_memcpy").startswith("copies")
    assert bench.kind("copy", "").startswith("copies") and bench.kind("fill", "") == "fills"


def test_groups_sum_instructions_and_known_macs(bench):
    rows = [{"patch_stage": True, "kind": "fills", "instructions": 40, "macs": None},
            {"patch_stage": False, "kind": "ours: pointwise (int8)", "instructions": 100, "macs": 50},
            {"patch_stage": False, "kind": "ours: pointwise (int8)", "instructions": 60, "macs": 40},
            {"patch_stage": False, "kind": "fills", "instructions": 20, "macs": None}]
    g = bench.groups(rows)
    assert [(x["patch_stage"], x["kind"]) for x in g] == [(True, "fills"), (False, "ours: pointwise (int8)"),
                                                           (False, "fills")]
    assert g[1] == {"patch_stage": False, "kind": "ours: pointwise (int8)", "commands": 2, "instructions": 160,
                    "macs": 90, "macs_known": 160}
