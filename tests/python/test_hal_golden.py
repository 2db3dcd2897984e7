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

import numpy as np
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


# ---- a hand-written HAL program: queue-level copy, buffer.length, buffer.assert --------------

def hal_predict(body: str) -> str:
    """A hand-written static-library HAL program: `@predict(%arg0)` (an f32 [1, 4] input view) with
    the usual constants, device, element type and encoding defined, then `body` (which returns)."""
    return """
module {
  hal.executable private @x_linked {
    hal.executable.binary public @static <format = "static", data = dense<[120, 0]> : vector<2xi8>>
  }
  util.func public @predict(%arg0: !hal.buffer_view) -> !hal.buffer_view {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c16 = arith.constant 16 : index
    %c64 = arith.constant 64 : index
    %c0_i64 = arith.constant 0 : i64
    %c-1_i64 = arith.constant -1 : i64
    %device = hal.devices.get %c0 : !hal.device
    %f32 = hal.element_type<f32> : i32
    %enc = hal.encoding_type<dense_row_major> : i32
    hal.buffer_view.assert<%arg0 : !hal.buffer_view> message("input0") shape([%c1, %c4]) type(%f32) encoding(%enc)
""" + body + """  }
}
"""


# a queue-level copy of the input into a transient buffer
QUEUE_COPY_HAL = hal_predict("""\
    %src = hal.buffer_view.buffer<%arg0 : !hal.buffer_view> : !hal.buffer
    %allocator = hal.device.allocator<%device : !hal.device> : !hal.allocator
    hal.buffer.assert<%src : !hal.buffer> message("input0 storage") allocator(%allocator : !hal.allocator) minimum_length(%c16) type(DeviceVisible) usage("Transfer")
    %none = util.null : !hal.fence
    %fence = hal.fence.create device(%device : !hal.device) flags("None") : !hal.fence
    %mt = hal.memory_type<"DeviceVisible|DeviceLocal"> : i32
    %bu = hal.buffer_usage<"Transfer"> : i32
    %dst = hal.device.queue.alloca<%device : !hal.device> affinity(%c-1_i64) wait(%none) signal(%fence) pool(%c0_i64) type(%mt) usage(%bu) flags("None") : !hal.buffer{%c64}
    %len = hal.buffer.length<%src : !hal.buffer> : index
    %n = util.optimization_barrier %len : index
    %fence2 = hal.fence.create device(%device : !hal.device) flags("None") : !hal.fence
    hal.device.queue.copy<%device : !hal.device> affinity(%c-1_i64) wait(%fence) signal(%fence2) source(%src : !hal.buffer)[%c0] target(%dst : !hal.buffer)[%c16] length(%n) flags("None")
    %view = hal.buffer_view.create buffer(%dst : !hal.buffer)[%c16, %n] shape([%c1, %c4]) type(%f32) encoding(%enc) : !hal.buffer_view
    util.return %view : !hal.buffer_view
""")


def test_queue_copy_reads_source_and_target_by_name():
    s = hal2c.extract_schedule(QUEUE_COPY_HAL, ["predict"])
    fn = s.function("predict")
    (cmd,) = fn.commands
    assert cmd.op == "copy" and cmd.length == 16
    src, dst = cmd.refs
    assert (src.alloc.kind, src.alloc.arg, src.offset, src.length) == ("arg", 0, 0, 16)
    assert (dst.alloc.kind, dst.offset, dst.length) == ("arena", 16, 16)
    (out,) = fn.outputs
    assert out.buf.alloc is dst.alloc and out.buf.offset == 16 and out.shape == (1, 4)


def test_buffer_assert_checks_the_minimum_length():
    text = QUEUE_COPY_HAL.replace("minimum_length(%c16)", "minimum_length(%c64)")
    assert text != QUEUE_COPY_HAL
    with pytest.raises(hal2c.Unsupported,
                       match="input0 storage: buffer of 16 B, the host program requires at least 64 B"):
        hal2c.extract_schedule(text, ["predict"])


UPDATE_BUFFER_HAL = hal_predict("""\
    %host = util.buffer.constant <alignment = 64> : !util.buffer = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]> : tensor<6xf32>
    %host_size = util.buffer.size %host : !util.buffer
    %none = util.null : !hal.fence
    %fence = hal.fence.create device(%device : !hal.device) flags("None") : !hal.fence
    %mt = hal.memory_type<"DeviceVisible|DeviceLocal"> : i32
    %bu = hal.buffer_usage<"Transfer"> : i32
    %dst = hal.device.queue.alloca<%device : !hal.device> affinity(%c-1_i64) wait(%none) signal(%fence) pool(%c0_i64) type(%mt) usage(%bu) flags("None") : !hal.buffer{%c64}
    %cmd = hal.command_buffer.create device(%device : !hal.device) mode("None") categories("Transfer") affinity(%c-1_i64) bindings(%c0) : !hal.command_buffer
    hal.command_buffer.update_buffer<%cmd : !hal.command_buffer> source(%host : !util.buffer{%host_size})[%c8] target(%dst : !hal.buffer)[%c16] length(%c16) flags("None")
    hal.command_buffer.finalize<%cmd : !hal.command_buffer>
    %fence2 = hal.fence.create device(%device : !hal.device) flags("None") : !hal.fence
    hal.device.queue.execute<%device : !hal.device> affinity(%c-1_i64) wait(%fence) signal(%fence2) commands(%cmd) flags("None")
    %view = hal.buffer_view.create buffer(%dst : !hal.buffer)[%c16, %c16] shape([%c1, %c4]) type(%f32) encoding(%enc) : !hal.buffer_view
    util.return %view : !hal.buffer_view
""")


def test_command_buffer_update_buffer_copies_from_the_host_buffer_at_its_source_offset():
    """update_buffer has a source_size operand before source_offset (unlike copy_buffer): the
    copy starts at the offset (8), not at the size (24), of the constant host buffer."""
    s = hal2c.extract_schedule(UPDATE_BUFFER_HAL, ["predict"])
    (cmd,) = s.function("predict").commands
    src, dst = cmd.refs
    assert cmd.op == "copy" and cmd.length == 16
    assert (src.alloc.kind, src.offset, src.length) == ("pool", 8, 16)
    assert src.alloc.data[8:24] == np.array([3, 4, 5, 6], np.float32).tobytes()
    assert (dst.alloc.kind, dst.offset, dst.length) == ("arena", 16, 16)
