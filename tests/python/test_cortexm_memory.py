"""SRAM budget of the Cortex-M backend: compiler plan, linker ASSERT and measured peak agree.

The model trains a 15000x4 f32 weight (240 KB) on a 60 KB input: it needs ~309 KB of SRAM,
so it is over the default 256 KB budget and fits the 320 KB option.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as models  # noqa: E402
from tinytrain.lowering.cortexm import firmware, iree_static  # noqa: E402

D, C = 15000, 4


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    out = tmp_path_factory.mktemp("big")
    module = iree_static.build_static_module(models.sgd_linear_mlir(D, C, 0.01), out / "m",
                                             target="cortex-m4", prefix="big", sram_bytes=None)
    return module, out


def test_compiler_rejects_over_budget_model(tmp_path):
    with pytest.raises(iree_static.SramBudgetError) as err:
        iree_static.build_static_module(models.sgd_linear_mlir(D, C, 0.01), tmp_path,
                                        target="cortex-m4", prefix="big", sram_bytes=256 * 1024)
    e = err.value
    assert e.available == 262144 and e.needed > e.available
    msg = str(e)
    assert f"needs {e.needed} bytes, 262144 available" in msg
    # The biggest contributor is the trained 15000x4 weight, then the transient arena holding the
    # 60 KB input: the 64 B arena grows for it by less than a buffer of its own would take
    # (input_overlay.py), and the plan says so.
    assert e.contributors[0] == (f"trained parameter arg0 [{D}, {C}]", D * C * 4)
    what, size = e.contributors[1]
    assert what.startswith("transient working set") and "holds the input (60000 B)" in what, what
    assert "the arena grew by" in what and 60000 <= size < 60032 + 128, e.contributors[1]
    assert f"trained parameter arg0 [{D}, {C}]: {D * C * 4} B" in msg


def test_linker_agrees_with_compiler_plan(big, tmp_path):
    module, _ = big
    # Over budget at 256 KB: the compiler says so, and so does the linker's ASSERT.
    with pytest.raises(iree_static.SramBudgetError):
        firmware.build_firmware(module, tmp_path / "fw256", sram_kb=256)
    with pytest.raises(firmware.FirmwareBuildError, match="SRAM budget exceeded"):
        firmware.build_firmware(module, tmp_path / "fw256", sram_kb=256, check_budget=False)
    # Fits at 320 KB on both sides; the linked static SRAM matches the plan to 1%.
    module.check_sram(320 * 1024)
    fw = firmware.build_firmware(module, tmp_path / "fw320", sram_kb=320)
    linked = fw.data + fw.bss + fw.stack_bytes
    # The plan is an upper bound of what the linker checks, tight to a few hundred bytes: no
    # model the compiler accepts fails to link, and the compiler rejects at most ~0.1% early.
    assert linked <= module.planned_sram() < linked + 256, (linked, module.planned_sram())


def test_measured_peak_sram_matches_plan(big, tmp_path):
    module, _ = big
    fw = firmware.build_firmware(module, tmp_path / "fw", sram_kb=320)
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((D, C)).astype(np.float32) * 0.01, np.zeros(C, np.float32)]
    xs = rng.standard_normal((1, 1, D)).astype(np.float32)
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, [2]), params=params, timeout=60)
    assert res.returncode == 0, res.output
    mem = res.mem
    assert mem["ram_total"] == 320 * 1024
    assert mem["sram_peak"] == mem["data"] + mem["bss"] + mem["stack_peak"]
    assert mem["stack_peak"] < mem["stack_reserved"]
    plan = module.planned_peak()
    assert abs(mem["sram_peak"] - plan) <= 0.05 * plan, (mem, plan)
    # The trained weight really changed in place (state at the arena start).
    w = res.trace[0][0][0]
    expect = params[0] - 0.01 * xs[0, 0][:, None] * (xs[0, 0] @ params[0] - np.eye(C)[2])[None, :]
    np.testing.assert_allclose(w, expect, rtol=0, atol=1e-5)


def test_optional_flag_iree_fails_with_is_dropped_with_a_warning(tmp_path):
    # An optional iree-compile flag (int8's padding fusion) that iree-compile rejects: the module
    # is built without it, a warning says so and `dropped_flags` keeps iree-compile's reason; the
    # same module without optional flags drops nothing. A required flag is not retried.
    text = models.sgd_linear_mlir(8, C, 0.01)
    with pytest.warns(UserWarning, match="iree-compile failed with --tinytrain-no-such-flag"):
        m = iree_static.build_static_module(text, tmp_path / "a", target="cortex-m4", sram_bytes=None,
                                            optional_flags=("--tinytrain-no-such-flag",))
    assert list(m.dropped_flags) == ["--tinytrain-no-such-flag"], m.dropped_flags
    assert "no-such-flag" in m.dropped_flags["--tinytrain-no-such-flag"], m.dropped_flags
    plain = iree_static.build_static_module(text, tmp_path / "b", target="cortex-m4", sram_bytes=None)
    assert plain.dropped_flags == {} and plain.arena_bytes == m.arena_bytes
    from tinytrain.errors import CompileError

    with pytest.raises(CompileError, match="iree-compile failed"):
        iree_static.build_static_module(text, tmp_path / "c", target="cortex-m4", sram_bytes=None,
                                        extra_flags=("--tinytrain-no-such-flag",))


def test_flash_overflow_is_a_clear_error_and_the_stack_probe_still_links(tmp_path, monkeypatch):
    """Code that does not fit the board's flash: the firmware build says by how much (not the
    linker's log), while the stack probe, which links with more flash and never runs, still
    gives the plan its stack bound (a full-update plan's code exceeds the boards' 4 MB)."""
    module = iree_static.build_static_module(models.sgd_linear_mlir(16, C, 0.01), tmp_path / "m",
                                             target="cortex-m4", prefix="small", sram_bytes=None)
    monkeypatch.setattr(firmware, "BOARD_FLASH_KB", 8)  # this firmware's code is tens of KB
    assert firmware.compute_stack(module) is not None and module.stack_error is None
    with pytest.raises(firmware.FirmwareBuildError,
                       match=r"do not fit the board's 8 KB of flash \(over by [\d,]+ B\)") as err:
        firmware.build_firmware(module, tmp_path / "fw", sram_kb=256)
    assert "cmake" not in str(err.value)
