"""`tinytrain.int8.refine_patches`: when the patched stages hold a Cortex-M step's peak, the
program is compiled again with finer patches below the rest of the step's peak and kept only
when its plan is smaller; otherwise (or when the finer program's code does not fit the flash)
the first program's build folder is put back as it was.

The decision and the folder handling are checked here on stand-ins for the compiled programs
(a compile at 128x128 takes minutes; `bench/memory.py` runs the real ones and checks every
refined step on the device against the host); `forward_bound` and `_patch_stages` on real
report rows and stage attributes."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from torch_mlir import ir

from tinytrain import int8
from tinytrain.context import new_context
from tinytrain.errors import CompileError
from tinytrain.memory_report import MemoryRow

STAGES = ('func.func @train_step(%arg0: tensor<1x128x128x3xi8>) attributes {tinytrain.patch_stage = '
          '{cut = "blocks.1.pointwise2", cut_shape = array<i64: 1, 32, 32, 16>, grid = 4 : i64, macs = 1 : i64, '
          'ops = 6 : i64, patched_macs = 2 : i64}, tinytrain.patch_stage2 = {cut = "blocks.3.pointwise2", '
          'cut_shape = array<i64: 1, 16, 16, 16>, grid = 4 : i64, macs = 10 : i64, ops = 7 : i64, '
          'patched_macs = 30 : i64}} {\n  return\n}\n')


def stages(grid: int = 4) -> list[dict]:
    """`_patch_stages` of `STAGES` with `grid` patches per side."""
    with new_context():
        return int8._patch_stages(ir.Module.parse(STAGES.replace("grid = 4", f"grid = {grid}")))


def rows(*spec):
    """Report rows from (layer, live bytes) pairs, in program order."""
    return [MemoryRow(i, f"train_step_dispatch_{i}", [layer], live, 0, live) for i, (layer, live) in enumerate(spec)]


def test_patch_stages_reads_the_stages_in_order():
    assert stages() == [{"cut": "blocks.1.pointwise2", "grid": 4, "macs": 1, "patched_macs": 2},
                        {"cut": "blocks.3.pointwise2", "grid": 4, "macs": 10, "patched_macs": 30}]
    assert int8._recomputed(stages()) == 1 + 20
    with new_context():
        assert int8._patch_stages(ir.Module.parse("func.func @train_step(%arg0: tensor<4xf32>) {\n  return\n}\n")) == []


def test_forward_bound_splits_the_rows_at_the_last_cut():
    rep = SimpleNamespace(rows=rows(("first_conv", 100), ("blocks.3.pointwise2", 90), ("blocks.3.pointwise2", 80),
                                    ("blocks.4.depthwise", 70), ("blocks.9.pointwise1", 60)))
    assert int8.forward_bound(rep, stages()) == (100, 70)
    assert int8.forward_bound(rep, [{"cut": "blocks.2.residual"}]) is None  # no such dispatch
    assert int8.forward_bound(rep, []) is None  # no patched stage
    rep.rows[3].live_bytes = 100  # the rest as large: the stages do not hold the peak
    assert int8.forward_bound(rep, stages()) is None


class Program:
    """A stand-in for a compiled `Int8Training`: its firmware folders in `out`, its plan."""

    def __init__(self, out: Path, plan: int, tag: str):
        for d in ("static", "firmware"):
            (out / d).mkdir(parents=True, exist_ok=True)
            (out / d / "which").write_text(tag)
        self.firmware = SimpleNamespace(project_dir=out / "firmware",
                                        module=SimpleNamespace(planned_sram=lambda: plan))
        self.patch_plan = None


@pytest.fixture
def forward_bound_report(monkeypatch):
    """The first program's report: the patched stages' 40,000 B above the rest's 30,000 B."""
    import tinytrain.memory_report as mr

    rep = SimpleNamespace(rows=rows(("first_conv", 40_000), ("blocks.3.pointwise2", 35_000),
                                    ("blocks.7.depthwise", 30_000), ("blocks.14.pointwise2", 29_000)))
    monkeypatch.setattr(mr, "report_for", lambda fw, function=None: rep)
    return rep


def test_a_smaller_finer_plan_replaces_the_first(tmp_path, forward_bound_report):
    first = Program(tmp_path, 125_000, "coarse")
    floors = []

    def rebuild(floor):
        floors.append(floor)
        assert not (tmp_path / "firmware").exists()  # the first one's folders are set aside
        return Program(tmp_path, 118_000, "fine"), stages(8)

    got = int8.refine_patches(first, stages(), rebuild)
    assert floors == [30_000]  # the largest live bytes after the last stage's cut
    assert got.patch_plan == {"grid": [8, 8], "recomputed_macs": 21, "plan_bytes": 118_000, "refined": True,
                              "coarse_grid": [4, 4], "coarse_recomputed_macs": 21, "coarse_plan_bytes": 125_000,
                              "forward_bytes": 40_000, "floor_bytes": 30_000}
    assert (tmp_path / "firmware" / "which").read_text() == "fine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firmware", "static"]  # nothing set aside is left


@pytest.mark.parametrize("outcome", ["bigger", "flash", "other"])
def test_the_first_program_stays_when_the_finer_one_is_not_better(tmp_path, forward_bound_report, outcome):
    first = Program(tmp_path, 125_000, "coarse")

    def rebuild(floor):
        if outcome == "bigger":
            return Program(tmp_path, 126_000, "fine"), stages(8)
        (tmp_path / "firmware").mkdir()  # a failed build removes what it wrote; leave some anyway
        stage = "firmware" if outcome == "flash" else "lowering"
        raise CompileError("firmware build failed:\nthe firmware's code and constants do not fit the "
                           "board's 4096 KB of flash (over by 1,024 B)", stage=stage)

    if outcome == "other":  # not a question of size: the error is the user's
        with pytest.raises(CompileError):
            int8.refine_patches(first, stages(), rebuild)
        return
    got = int8.refine_patches(first, stages(), rebuild)
    assert got is first and got.patch_plan["refined"] is False and got.patch_plan["grid"] == [4, 4]
    assert ("not smaller" if outcome == "bigger" else "flash") in got.patch_plan["kept_because"]
    assert (tmp_path / "firmware" / "which").read_text() == "coarse"
    assert (tmp_path / "static" / "which").read_text() == "coarse"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firmware", "static"]


def test_a_step_bound_after_the_stages_is_not_compiled_again(tmp_path, monkeypatch):
    import tinytrain.memory_report as mr

    rep = SimpleNamespace(rows=rows(("first_conv", 30_000), ("blocks.3.pointwise2", 29_000),
                                    ("blocks.12.depthwise", 32_000)))
    monkeypatch.setattr(mr, "report_for", lambda fw, function=None: rep)
    first = Program(tmp_path, 110_000, "coarse")
    got = int8.refine_patches(first, stages(), lambda floor: pytest.fail("compiled again"))
    assert got is first and got.patch_plan == {"grid": [4, 4], "recomputed_macs": 21, "plan_bytes": 110_000,
                                               "refined": False}
