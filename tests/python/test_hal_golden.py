"""Golden tests of the IREE boundary of the Cortex-M backend, without running iree-compile.

The inputs in tests/fixtures/hal/ were captured from the pinned iree-compile (see regenerate.py
there): the HAL-phase host program and the library's LLVM IR. Schedule extraction
(``hal2c.extract_schedule``), the ABI check (``abi_check``) and C emission (``schedule_c.emit``)
run on them and must reproduce the checked-in outputs byte for byte, so a change of IREE or of
the backend shows up as a reviewable diff of those files.
"""

import difflib
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hal"
sys.path.insert(0, str(FIXTURES))

import regenerate  # noqa: E402
from tinytrain.lowering.cortexm import abi_check, hal2c, schedule_c  # noqa: E402
from tinytrain.lowering.cortexm.schedule_model import ALIGN  # noqa: E402

NAMES = sorted(regenerate.PROGRAMS)


def _schedule(name: str):
    return hal2c.extract_schedule((FIXTURES / f"{name}.hal.mlir").read_text(),
                                  list(regenerate.PROGRAMS[name]))


@pytest.mark.parametrize("name", NAMES)
def test_backend_reproduces_the_golden_outputs(name):
    produced = regenerate.expected(name)
    assert len(produced) == 3
    for fname, text in produced.items():
        want = (FIXTURES / fname).read_text()
        if text != want:
            diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                                f"expected/{fname}", f"produced/{fname}", n=2))
            pytest.fail(f"{fname} differs from the golden file; if the change is intended, run "
                        f"`.venv/bin/python tests/fixtures/hal/regenerate.py` and review the diff:\n"
                        f"{diff[:6000]}")


@pytest.mark.parametrize("name", NAMES)
def test_every_arena_and_pool_offset_is_64_byte_aligned(name):
    """IREE kernels assume 64-byte aligned buffers (runtime/include/tt/model.h): every memory
    object the packer places, and every buffer a dispatch binds, starts on a 64-byte boundary."""
    s = _schedule(name)
    placed = [a for a in s.allocs if a.kind in ("arena", "pool")]
    assert placed, "fixture without arena or pool buffers checks nothing"
    for a in placed:
        assert a.offset >= 0, f"{a.name} was never placed"
        assert a.offset % ALIGN == 0, f"{a.kind} {a.name} ({a.size} B) placed at {a.offset}"
    exports = abi_check.check_library_text((FIXTURES / f"{name}.abi.ll").read_text(), s.library)
    state = schedule_c.plan_state(s, "train_step")
    assert all(slot.offset % ALIGN == 0 for slot in state)
    state_size = sum(-(-slot.length // ALIGN) * ALIGN for slot in state)
    bound = 0
    for fn in s.functions:
        for c in fn.commands:
            if c.op != "dispatch":
                continue
            assert c.export in {e.name for e in exports}
            for r in c.refs:
                if r.alloc.kind == "arena":
                    assert (state_size + r.alloc.offset + r.offset) % ALIGN == 0, (fn.name, c.export, r)
                    bound += 1
                elif r.alloc.kind == "pool":
                    assert (r.alloc.offset + r.offset) % ALIGN == 0, (fn.name, c.export, r)
    assert bound > 0


def test_transient_buffers_with_overlapping_lifetimes_do_not_overlap_in_memory():
    """The mlp fixture: a 400-byte result is live while a 64-byte transient is; the transient
    goes after the result rounded up to 64 bytes, and the arena covers both."""
    s = _schedule("mlp")
    arena = sorted((a for a in s.allocs if a.kind == "arena"), key=lambda a: a.offset)
    assert [a.size for a in arena] == [400, 64]
    first, second = arena
    assert not (first.end < second.start or second.end < first.start), "lifetimes must overlap"
    assert second.offset >= first.offset + first.size
    assert s.arena_size >= second.offset + second.size


def test_golden_inputs_are_small_cortex_m4_static_libraries():
    for name in NAMES:
        for suffix in (".hal.mlir", ".abi.ll"):
            path = FIXTURES / f"{name}{suffix}"
            assert path.stat().st_size < 100_000, f"{path.name} is too big for a checked-in fixture"
        hal = (FIXTURES / f"{name}.hal.mlir").read_text()
        assert "cortex-m4" in hal and "static" in hal
