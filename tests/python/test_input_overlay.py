"""The step's input inside the transient arena (lowering/cortexm/input_overlay.py).

A program whose input is read only by its first commands gets it placed in arena bytes nothing
uses before its last read: the plan, the linked firmware and QEMU's measured peak drop by the
input's bytes, and training (and predict) on the device still equal IREE's host program. Where no
window exists the input keeps its own buffer and the plan says why.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as models  # noqa: E402
import cortexm_reference as reference  # noqa: E402
from tinytrain.lowering.cortexm import firmware, input_overlay, iree_static  # noqa: E402
from tinytrain.lowering.cortexm.schedule_model import (Alloc, Buf, Command, Function, IODesc,  # noqa: E402
                                                       Schedule)
from tinytrain.memory_report import memory_report  # noqa: E402

HW, CH = 16, 3
INPUT_BYTES = HW * HW * CH * 4


def _net_mlir():
    """conv (frozen, stride 2) -> relu -> conv -> relu -> mean -> linear on 16x16x3: only the
    frozen first conv reads the input (through IREE's padded copy, made first)."""
    return models.conv_train_mlir(hw=HW, channels=CH, classes=4)


def test_early_read_input_lives_in_the_arena_and_trains_like_the_host(tmp_path):
    text, params = _net_mlir()
    # IREE's layout on both sides (replan_memory=False): the overlay's own saving, exactly.
    placed = iree_static.build_static_module(text, tmp_path / "on", target="cortex-m4", prefix="net",
                                             replan_memory=False)
    apart = iree_static.build_static_module(text, tmp_path / "off", target="cortex-m4", prefix="net",
                                            overlay_input=False, replan_memory=False)
    p = placed.input_placement
    assert p.in_arena and p.grown == 0 and set(p.offsets) == {"train_step"}, p
    # Same arena, no input buffer: the plan drops by exactly the input.
    assert placed.arena_bytes == apart.arena_bytes
    assert "input" not in placed.io_buffers and apart.io_buffers["input"] == INPUT_BYTES
    assert apart.planned_sram() - placed.planned_sram() == INPUT_BYTES
    contributors = dict(placed.sram_contributors())
    assert any(f"holds the input ({INPUT_BYTES} B) in the transient arena" in k for k in contributors)
    header = placed.h_path.read_text()
    off = placed.state_bytes + p.offsets["train_step"]
    assert "#define TT_MODEL_INPUT_IN_ARENA 1" in header and f"NET_TRAIN_INPUT_OFFSET {off}u" in header
    assert "TT_MODEL_INPUT_IN_ARENA" not in apart.h_path.read_text()
    # The report shows the input live in the arena at the first dispatch, not as a buffer.
    rep = memory_report(placed)
    assert any(n.startswith(f"input ({INPUT_BYTES} B) in the transient arena") for n in rep.notes)
    assert "label buffers" in rep.persistent and rep.rows[0].live_bytes >= INPUT_BYTES
    assert rep.peak_bytes == placed.planned_peak()

    fw_on = firmware.build_firmware(placed, tmp_path / "fw_on")
    fw_off = firmware.build_firmware(apart, tmp_path / "fw_off")
    assert fw_off.bss - fw_on.bss == INPUT_BYTES   # the linker sees the same saving
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((2, 1, HW, HW, CH)).astype(np.float32)
    ys = [1, 3]
    host = reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)
    runs = {}
    for name, fw in (("on", fw_on), ("off", fw_off)):
        res = firmware.run_qemu(fw, tmp_path / f"run_{name}", train=(xs, ys), params=params, timeout=60)
        assert res.returncode == 0 and "TT done steps=2" in res.output, res.output
        reference.assert_trace_matches(res.trace, host, "cortex-m4")   # bit-exact on the M4
        runs[name] = res
    assert runs["off"].mem["sram_peak"] - runs["on"].mem["sram_peak"] == INPUT_BYTES
    plan = placed.planned_peak()
    assert abs(runs["on"].mem["sram_peak"] - plan) <= 0.1 * plan, (runs["on"].mem, plan)


def test_predict_and_train_each_read_the_input_from_their_own_place(tmp_path):
    text = models.sgd_linear_mlir(16, 4, 0.05)
    module = iree_static.build_static_module(text, tmp_path / "m", target="cortex-m7", prefix="sgd")
    p = module.input_placement
    assert set(p.offsets) == {"train_step", "predict"}, p.describe()
    rng = np.random.default_rng(2)
    params = [rng.standard_normal((16, 4)).astype(np.float32) * 0.3, np.zeros(4, np.float32)]
    xs = rng.standard_normal((3, 1, 16)).astype(np.float32)
    ys = [0, 2, 1]
    host = reference.HostModule(reference.compile_vmfb(text))
    fw = firmware.build_firmware(module, tmp_path / "fw", board="mps2-an500")
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys), evaluate=(xs, ys), params=params)
    assert res.returncode == 0, res.output
    reference.assert_trace_matches(res.trace, host.train(params, xs, ys), "cortex-m7")
    before = np.stack([host.predict(params, x) for x in xs]).reshape(res.outputs["before"].shape)
    np.testing.assert_allclose(res.outputs["before"], before, rtol=0, atol=1e-6)


def test_input_grows_the_arena_when_that_costs_less_than_its_buffer(tmp_path):
    # A linear layer's input is read by the weight gradient at the end of the step, and the
    # transient arena is a few bytes: no window inside it, but one sticking out of its top by less
    # than the input's 4032 B costs fewer bytes than a buffer of its own.
    module = iree_static.build_static_module(models.sgd_linear_mlir(1000, 4, 0.05), tmp_path,
                                             target="cortex-m4", prefix="lin")
    p = module.input_placement
    assert p.in_arena and 0 < p.grown < 4032, p
    assert "input" not in module.io_buffers
    assert "TT_MODEL_INPUT_IN_ARENA" in module.h_path.read_text()
    assert "the arena grew by" in p.describe()


# ---- the window search on hand-made schedules (no IREE) ------------------------------------

def _schedule(read_at: int):
    """train_step(x: 256 B) with one 1024 B transient allocation: command ``read_at`` copies x
    into its first 256 B, every other command fills the allocation's bytes [256, 1024)."""
    arg = Alloc("arg", 256, "train_step", name="arg0", arg=0, persistent=True)
    tmp = Alloc("arena", 1024, "train_step", name="alloc0", start=0, end=10, offset=0)
    cmds = []
    for t in range(4):
        refs = ([Buf(arg, 0, 256), Buf(tmp, 0, 256)] if t == read_at else [Buf(tmp, 256, 768)])
        cmds.append(Command("copy" if t == read_at else "fill", t + 1, refs, length=refs[-1].length))
    fn = Function("train_step", [IODesc((64,), "f32", 256)], [], cmds)
    return Schedule("lib", [fn], b"", 1024, 0, [arg, tmp])


def test_window_avoids_bytes_used_before_the_last_read():
    s = _schedule(read_at=0)            # read first: only [0, 256) is used by then
    (p,) = input_overlay.place_inputs(s, {}, {"input": {"train_step": 0}})
    assert p.offsets == {"train_step": 256} and p.grown == 0 and s.arena_size == 1024
    ov = s.function("train_step").commands[0].refs[0].alloc
    assert ov.name == "input_overlay" and ov.offset == 256 and ov.end == 1
    assert s.function("train_step").inputs[0].buf.alloc is ov


def test_late_read_keeps_the_input_outside():
    s = _schedule(read_at=3)            # fills of [256, 1024) and the copy target come first
    (p,) = input_overlay.place_inputs(s, {}, {"input": {"train_step": 0}})
    assert not p.in_arena and "sticks out 256 B" in p.reason and s.arena_size == 1024
    assert s.function("train_step").commands[3].refs[0].alloc.kind == "arg"


def test_window_may_grow_the_arena_by_less_than_the_input():
    # grown < 256 B (the input): fewer bytes than the input's own buffer, even past half of it
    for busy, offset, grown in ((512, 768, 0), (640, 896, 128), (704, 960, 192)):
        s = _schedule(read_at=3)
        for c in s.function("train_step").commands[:3]:
            c.refs = [Buf(s.allocs[1], 256, busy)]     # [256 + busy, 1024) is free
        (p,) = input_overlay.place_inputs(s, {}, {"input": {"train_step": 0}})
        assert p.offsets == {"train_step": offset} and p.grown == grown, p
        assert s.arena_size == 1024 + grown


def test_unreadable_sources_keep_the_input_outside(tmp_path):
    s = _schedule(read_at=0)            # no executable sources (e.g. a module built elsewhere)
    p = input_overlay.place_step_input(s, tmp_path, {"train_step": 0})
    assert not p.in_arena and p.reason.startswith("the bytes the commands touch are unknown: no executable sources")
    assert s.placements == {"input": p} and s.function("train_step").commands[0].refs[0].alloc.kind == "arg"
