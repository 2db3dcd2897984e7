"""Programs the Cortex-M backend cannot schedule statically, and ABI changes, fail loudly."""

import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as models  # noqa: E402
from iree.compiler.dialects import arith, hal, util  # noqa: E402
from tinytrain.errors import CompileError  # noqa: E402
from tinytrain.lowering.cortexm import abi_check, firmware, hal2c, iree_static  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hal"

DYNAMIC = """
func.func @train_step(%x: tensor<?xf32>) -> tensor<?xf32> {
  %0 = arith.addf %x, %x : tensor<?xf32>
  return %0 : tensor<?xf32>
}
"""

MUTABLE_GLOBAL = """
util.global private mutable @w = dense<0.0> : tensor<4xf32>
func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
  %w = util.global.load @w : tensor<4xf32>
  %n = arith.addf %w, %x : tensor<4xf32>
  util.global.store %n, @w : tensor<4xf32>
  return %n : tensor<4xf32>
}
"""

UNKNOWN_OP_HAL = """
module {
  hal.executable private @x_linked {
    hal.executable.binary public @static <format = "static", data = dense<[120, 0]> : vector<2xi8>>
  }
  util.func public @train_step(%arg0: !hal.buffer_view) -> i32 {
    %0 = hal.buffer_view.element_type<%arg0 : !hal.buffer_view> : i32
    util.return %0 : i32
  }
}
"""


def test_dynamic_shapes_are_rejected(tmp_path):
    with pytest.raises(hal2c.Unsupported, match="dynamic shapes") as e:
        iree_static.build_static_module(DYNAMIC, tmp_path)
    assert isinstance(e.value, CompileError) and e.value.stage == "cortex-m"


def test_mutable_global_state_is_rejected(tmp_path):
    with pytest.raises(hal2c.Unsupported, match="mutable global @w.*tied to results"):
        iree_static.build_static_module(MUTABLE_GLOBAL, tmp_path)


def test_a_hal_op_without_an_expected_accessor_is_named(monkeypatch):
    """An IREE release that renames or drops an operand fails loudly, naming op and accessor,
    instead of shifting positional reads (simulated by removing the accessor from the bindings)."""
    text = (FIXTURES / "sgd.hal.mlir").read_text()
    monkeypatch.delattr(hal.DeviceQueueAllocaOp, "result_size")
    with pytest.raises(hal2c.Unsupported,
                       match="'hal.device.queue.alloca' has no accessor 'result_size'.*must be updated"):
        hal2c.extract_schedule(text, ["train_step", "predict"])


def test_every_handled_or_ignored_op_exists_in_the_pinned_bindings():
    """The handler table and the allow-list name real ops of IREE's bindings (a renamed op
    after an IREE bump fails here, not on a device), and the allow-list says why for each."""
    known = {getattr(m, n).OPERATION_NAME for m in (arith, hal, util) for n in dir(m)
             if isinstance(getattr(m, n), type) and hasattr(getattr(m, n), "OPERATION_NAME")}
    assert set(hal2c._HANDLERS) - known == set()
    assert set(hal2c.IGNORED_OPS) - known == set()
    assert not set(hal2c.IGNORED_OPS) & set(hal2c._HANDLERS)
    for name, reason in hal2c.IGNORED_OPS.items():
        assert len(reason.split()) >= 5, f"{name}: give the reason it is safe to ignore"


def test_unknown_hal_op_is_rejected():
    with pytest.raises(hal2c.Unsupported, match="'hal.buffer_view.element_type' is not supported"):
        hal2c.extract_schedule(UNKNOWN_OP_HAL, ["train_step"])


def test_unknown_target_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown target 'cortex-m0'"):
        iree_static.build_static_module(models.sgd_linear_mlir(), tmp_path, target="cortex-m0")


@pytest.fixture(scope="module")
def sgd_module(tmp_path_factory):
    out = tmp_path_factory.mktemp("abi")
    return iree_static.build_static_module(models.sgd_linear_mlir(), out, prefix="sgd")


@pytest.fixture(scope="module")
def sgd_dump(sgd_module):
    return sgd_module.out_dir / "exe", sgd_module.library


def test_sram_over_budget_is_a_memory_plan_compile_error(sgd_module):
    need = sgd_module.planned_sram()
    with pytest.raises(iree_static.SramBudgetError,
                       match=rf"needs {need} bytes, {need - 1} available \(over by 1\)") as e:
        sgd_module.check_sram(need - 1)
    assert isinstance(e.value, CompileError) and e.value.stage == "memory-plan"
    sgd_module.check_sram(need)


def test_the_stack_reserve_is_computed_from_the_linked_firmware(sgd_module):
    """build_static_module's budget check linked the firmware once and bounded its stack: the
    reserve is that bound + margin in whole KB, named so in the contributors; without a static
    bound the fixed 8 KB is used and the contributor says why."""
    from dataclasses import replace

    from tinytrain.lowering.cortexm import stack_bound

    bound = sgd_module.stack.bound
    reserve = stack_bound.reserve_for(bound)
    assert sgd_module.stack_reserve == reserve < iree_static.STACK_RESERVE
    rest = sgd_module.arena_bytes + sgd_module.io_bytes + iree_static.HARNESS_STATIC
    assert sgd_module.planned_sram() == rest + reserve
    assert sgd_module.planned_peak() == rest + sgd_module.stack.thread_depth
    assert (f"stack reserve (computed: worst-case stack {bound} B of the linked firmware + margin, "
            "whole KB)", reserve) in sgd_module.sram_contributors()
    unbounded = replace(sgd_module, stack=None, stack_error="f moves the stack pointer by a register")
    assert unbounded.planned_sram() == rest + iree_static.STACK_RESERVE
    assert ("stack reserve (FIXED 8 KB: the firmware's stack has no static bound: f moves the stack "
            "pointer by a register)", iree_static.STACK_RESERVE) in unbounded.sram_contributors()


def test_firmware_build_errors_are_compile_errors():
    err = firmware.FirmwareBuildError("cmake failed: region RAM overflowed")
    assert isinstance(err, CompileError) and err.stage == "firmware"
    assert str(err) == "cmake failed: region RAM overflowed"


def _mutated(src: Path, dst: Path, old: str, new: str) -> Path:
    shutil.copytree(src, dst)
    ll = next(dst.glob("*.linked.ll"))
    text = ll.read_text()
    assert old in text
    ll.write_text(text.replace(old, new))
    return dst


def test_abi_check_accepts_the_pinned_compiler(sgd_dump):
    exe, lib = sgd_dump
    exports = abi_check.check_library(exe, lib)
    assert [e.ordinal for e in exports] == list(range(len(exports)))
    assert any(e.name.startswith("train_step_dispatch_") and e.binding_count > 0 for e in exports)


def test_abi_check_rejects_a_changed_struct_layout(sgd_dump, tmp_path):
    exe, lib = sgd_dump
    bad = _mutated(exe, tmp_path / "exe", "%iree_hal_executable_library_header_t = type { i32, ptr, i32, i32 }",
                   "%iree_hal_executable_library_header_t = type { i32, ptr, i32, i32, i32 }")
    with pytest.raises(abi_check.AbiMismatch, match="iree_hal_executable_library_header_t") as e:
        abi_check.check_library(bad, lib)
    assert isinstance(e.value, CompileError) and e.value.stage == "cortex-m"


def test_abi_check_rejects_another_version(sgd_dump, tmp_path):
    exe, lib = sgd_dump
    bad = _mutated(exe, tmp_path / "exe", "icmp eq i32 %0, 6", "icmp eq i32 %0, 8")
    with pytest.raises(abi_check.AbiMismatch, match="exactly version 6"):
        abi_check.check_library(bad, lib)


def test_abi_check_rejects_a_library_with_imports(sgd_dump, tmp_path):
    exe, lib = sgd_dump
    bad = _mutated(exe, tmp_path / "exe", "%iree_hal_executable_import_table_v0_t zeroinitializer",
                   "%iree_hal_executable_import_table_v0_t { i32 1, ptr null }")
    with pytest.raises(abi_check.AbiMismatch, match="imports host functions"):
        abi_check.check_library(bad, lib)


# ---- abi_check on the checked-in library IR (tests/fixtures/hal), no iree-compile -----------

def _fixture_ll() -> tuple:
    text = (FIXTURES / "sgd.abi.ll").read_text()
    return text, "sgd_linalg_linked"


def test_abi_check_does_not_depend_on_llvm_value_numbering():
    text, lib = _fixture_ll()
    want = abi_check.check_library_text(text, lib)
    assert len(want) == 5
    renamed = re.sub(r"@(\d+)\b", r"@.str.\1", text)           # numbered -> named string globals
    for old, new in (("%0", "%max_version"), ("%1", "%environment"), ("%2", "%ok"), ("%3", "%lib")):
        renamed = renamed.replace(old, new)
    renamed = renamed.replace("icmp eq i32 %max_version, 6", "icmp eq i32 6, %max_version")
    assert "@.str.1 " in renamed and "icmp eq i32 6, %max_version" in renamed and "%2" not in renamed
    assert abi_check.check_library_text(renamed, lib) == want


@pytest.mark.parametrize("old, new, error", [
    ("icmp eq i32 %0, 6", "icmp eq i32 %9, 6", "does not accept exactly version 6"),
    ("select i1 %2, ptr", "select i1 true, ptr", "does not return @sgd_linalg_linked_library_query_v0"),
    ("%iree_hal_executable_export_table_v0_t { i32 5,", "%iree_hal_executable_export_table_v0_t { i32 4,",
     "declares 4 exports, its names table has 5"),
    ("@sgd_linalg_linked_library_query_v0_names = private constant [5 x ptr] [ptr @1,",
     "@sgd_linalg_linked_library_query_v0_names = private constant [5 x ptr] [ptr @missing,",
     "points at @missing"),
])
def test_abi_check_rejects_a_changed_library(old, new, error):
    text, lib = _fixture_ll()
    assert text.count(old) == 1
    with pytest.raises(abi_check.AbiMismatch, match=re.escape(error)):
        abi_check.check_library_text(text.replace(old, new), lib)
