"""The step input streamed into the arena (lowering/cortexm/input_stream.py).

Each kernel that reads the input gets its own copy of the bytes its loads take, brought in by a
read-input command just before it; the layout keeps only those bytes alive, from the copy to the
kernel. On the device the harness reads each range from the record file (the model's input
reader), so the input never sits whole in SRAM, and training and predict still equal IREE's host
program bit for bit. Inputs that cannot be streamed keep the whole-input placement, with a reason.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_device_equals_host, assert_device_trace_equals_host

from tinytrain import int8
from tinytrain.lowering.cortexm import input_stream, replan
from tinytrain.lowering.cortexm.dispatch_memory import ExportInfo, Subspan, command_accesses, read_sources
from tinytrain.lowering.cortexm.schedule_model import Alloc, Buf, Command, Function, IODesc, Schedule
from tinytrain.memory_report import memory_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_patch_stage import CLASSES, graph, images  # noqa: E402

IN = 1024


def _schedule(dtype="i8", touch_with_copy=False):
    """train_step(x: 1024 B): k0 loads x[0, 600) and writes t0, k1 loads x[400, 1024) and writes
    t1, k2 reads t0 and t1 into t2 (the result). IREE's layout: t0, t1, t2 side by side."""
    arg = Alloc("arg", IN, "train_step", name="arg0", arg=0, persistent=True)
    tmp = Alloc("arena", 1536, "train_step", name="alloc0", start=0, end=10, offset=0)
    t0, t1, t2 = Buf(tmp, 0, 512), Buf(tmp, 512, 512), Buf(tmp, 1024, 512)
    cmds = [Command("dispatch", 1, [Buf(arg, 0, IN), t0], export="k0"),
            Command("dispatch", 2, [Buf(arg, 0, IN), t1], export="k1"),
            Command("dispatch", 3, [t0, t1, t2], export="k2")]
    if touch_with_copy:
        cmds.insert(0, Command("copy", 0, [Buf(arg, 0, 64), Buf(tmp, 1024, 64)], length=64))
    fn = Function("train_step", [IODesc((IN,), dtype, IN)], [IODesc((512,), "i8", 512, t2)], cmds)
    sched = Schedule("lib", [fn], b"", 1536, 0, [arg, tmp])

    def load(lo, hi):
        return Subspan(0, ("const", 0), IN, "r", 64, reads=((lo, hi),))

    out = Subspan(1, ("const", 0), 512, "w", 64)
    exports = {"k0": ExportInfo("k0", [load(0, 600), out]), "k1": ExportInfo("k1", [load(400, IN), out]),
               "k2": ExportInfo("k2", [Subspan(0, ("const", 0), 512, "r", 64), Subspan(1, ("const", 0), 512, "r", 64),
                                       Subspan(2, ("const", 0), 512, "w", 64)])}
    return sched, exports


_LAYOUT = ('layout(<bindings = [#hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">, '
           '#hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>)')
_SOURCE = """hal.executable public @e {
  hal.executable.variant public @static target(<"llvm-cpu", "static", {}>) {
    hal.executable.export public @k ordinal(0) EXPORT_LAYOUT count(%arg0: !hal.device) -> (index, index, index) {
      %x, %y, %z = iree_tensor_ext.dispatch.workgroup_count_from_slice()
      hal.return %x, %y, %z : index, index, index
    }
    builtin.module {
      func.func @k() {
        %c0 = arith.constant 0 : index
        %c2 = arith.constant 2 : index
        %0 = hal.interface.binding.subspan LAYOUT binding(0) alignment(64) offset(%c0) flags("ReadOnly|Indirect") : !iree_tensor_ext.dispatch.tensor<readonly:tensor<1x8x8x3xi8>>
        %1 = hal.interface.binding.subspan LAYOUT binding(1) alignment(64) offset(%c0) flags(Indirect) : !iree_tensor_ext.dispatch.tensor<readwrite:tensor<3x8x3xi8>>
        %2 = iree_tensor_ext.dispatch.tensor.load %0, offsets = [0, 2, 1, 0], sizes = [1, 2, 4, 3], strides = [1, 1, 1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<1x8x8x3xi8>> -> tensor<2x4x3xi8>
        %3 = iree_tensor_ext.dispatch.tensor.load %0, offsets = [0, 3, 0, 0], sizes = [1, 1, 8, 3], strides = [1, 1, 1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<1x8x8x3xi8>> -> tensor<8x3xi8>
        %4 = iree_tensor_ext.dispatch.tensor.load %0, offsets = [0, 6, 0, 0], sizes = [1, 1, 4, 3], strides = [1, 1, 2, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<1x8x8x3xi8>> -> tensor<4x3xi8>
        %5 = iree_tensor_ext.dispatch.tensor.load %0, offsets = [0, %c2, 0, 0], sizes = [1, 1, 8, 3], strides = [1, 1, 1, 1] : !iree_tensor_ext.dispatch.tensor<readonly:tensor<1x8x8x3xi8>> -> tensor<8x3xi8>
        iree_tensor_ext.dispatch.tensor.store %3, %1, offsets = [0, 0, 0], sizes = [1, 8, 3], strides = [1, 1, 1] : tensor<8x3xi8> -> !iree_tensor_ext.dispatch.tensor<readwrite:tensor<3x8x3xi8>>
        return
      }
    }
  }
}
"""


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_readonly_tensor_counts_the_hulls_of_its_static_loads(tmp_path, dynamic):
    # 1x8x8x3 int8 (rows of 24 B): rows 2-3 cols 1-4 -> [51, 87); row 3 -> [72, 96), merged with
    # it; row 6 cols 0, 2, 4, 6 -> [144, 165). A load with a dynamic offset: the whole tensor.
    text = _SOURCE.replace("EXPORT_LAYOUT", _LAYOUT.replace("layout(<", "layout(#hal.pipeline.layout<")) \
        .replace("LAYOUT", _LAYOUT)
    if not dynamic:
        text = "\n".join(ln for ln in text.splitlines() if "%5 =" not in ln)
    (tmp_path / "module_k.mlir").write_text(text)
    (sub, out) = read_sources(tmp_path)["k"].subspans
    assert sub.mode == "r" and sub.length == 192 and out.mode == "rw" and out.reads == ()
    assert sub.reads == (() if dynamic else ((51, 96), (144, 165)))
    arena = Alloc("arena", 1024, "f", name="a", offset=0)
    cmd = Command("dispatch", 0, [Buf(arena, 256, 192), Buf(arena, 512, 72)], export="k")
    exports = read_sources(tmp_path)
    whole = [(a.lo, a.hi, a.mode) for a in command_accesses(cmd, exports)]
    assert whole == [(256, 448, "r"), (512, 584, "rw")]    # not precise: the whole tensor
    cmd.precise = (0,)
    got = [(a.lo, a.hi, a.mode) for a in command_accesses(cmd, exports)]
    assert got == ([(256, 448, "r")] if dynamic else [(307, 352, "r"), (400, 421, "r")]) + [(512, 584, "rw")]


def test_each_reader_gets_the_bytes_it_loads_just_before_it():
    sched, exports = _schedule()
    st = input_stream.stream_input(sched, exports, {"train_step": 0})
    assert st.streamed and st.reads == {"train_step": [(0, 600), (400, 624)]}, st.describe()
    cmds = sched.function("train_step").commands
    assert [c.op for c in cmds] == ["copy", "dispatch", "copy", "dispatch", "dispatch"]
    for copy_cmd, reader, (lo, n) in ((cmds[0], cmds[1], (0, 600)), (cmds[2], cmds[3], (400, 624))):
        src, dst = copy_cmd.refs
        assert copy_cmd.stream_read and src.alloc.kind == "arg" and (src.offset, src.length) == (lo, n)
        own = dst.alloc
        assert own.streamed and (dst.offset, dst.length) == (lo, n)
        # the reader binds its own copy where it bound the input, and counts only its loads
        assert reader.refs[0].alloc is own and (reader.refs[0].offset, reader.refs[0].length) == (0, IN)
        assert reader.precise == (0,)
    assert cmds[0].refs[1].alloc is not cmds[2].refs[1].alloc
    assert sched.placements["input_stream"] is st
    # Our layout: the two copies never live together and the input never whole. Live at most:
    # x[0,600) + t0 (k0), t0 + x[400,1024) + t1 (k1), t0 + t1 + t2 (k2): 1,664 B (+ alignment).
    (rep,) = replan.replan(sched, exports)
    assert not rep.reason and rep.iree_bytes == 1536 + IN, rep.describe()
    assert rep.bytes < 1536 + IN and rep.bytes <= 1728, rep.describe()


@pytest.mark.parametrize("case, why", [
    ({"dtype": "f32"}, "an f32 input is checked for NaN/Inf"),
    ({"touch_with_copy": True}, "command 0 (copy) touches it"),
])
def test_an_input_that_cannot_be_streamed_is_left_whole_with_the_reason(case, why):
    sched, exports = _schedule(**case)
    before = sched.describe()
    st = input_stream.stream_input(sched, exports, {"train_step": 0})
    assert not st.streamed and why in st.reason and why in st.describe()
    assert sched.describe() == before   # nothing rewritten


@pytest.mark.parametrize("kernels", ["iree", "ttk"])
def test_streamed_training_and_predict_on_cortex_m7_equal_the_host(tmp_path, kernels):
    # The patched first blocks of MobileNetV2-w0.35 at 64x64 (2 x 2 patches): the input is read
    # patch by patch from the record file during the step; two steps and predict before/after
    # equal the host program, and the plan drops by at least half the input's bytes (28,800 B
    # against 40,192 B whole). With our int8 kernels too (their dispatches read the patches'
    # copies, not the input).
    trainable = ["blocks.3.pointwise2.weight", "blocks.3.pointwise2.bias", "fc.weight", "fc.bias"]
    hw, steps = 64, 2
    prog = int8.compile_training(graph(4, hw), trainable, lr=0.05, target="cortex-m7",
                                 build_dir=tmp_path / "fw", stream_input=True, kernels=kernels)
    module = prog.firmware.module
    assert module.input_streamed, module.input_stream.describe()
    reads = module.input_stream.reads["train_step"]
    assert len(reads) == 4 and all(n < hw * hw * 3 for _, n in reads), reads   # one per patch
    header = module.h_path.read_text()
    assert "#define TT_MODEL_INPUT_STREAMED 1" in header and "TT_MODEL_INPUT_IN_ARENA" not in header
    assert "TT_CMD_READ_INPUT" in module.c_path.read_text()
    assert "input" not in module.io_buffers
    assert any("streamed: each kernel reading it gets the bytes it loads" in k for k, _ in module.sram_contributors())
    # a later patch's rows sit where the layout has room, not at their offsets in the input: its
    # reader's binding starts below the function's tensors (inside the trained state, which the
    # kernel never touches through it) and ends at its last load
    fn = module.schedule.function("train_step")
    below = [c.refs[k] for c in fn.commands if c.op == "dispatch" for k in c.precise if c.refs[k].offset < 0]
    assert below and all(r.alloc.offset + r.offset + module.state_bytes >= 0 for r in below), below
    if kernels == "iree":
        # the same network with the input whole (its patch stages may differ: `patch-stage`
        # counts a whole input in its estimate, a streamed one only where a kernel reads it)
        whole = int8.compile_training(graph(4, hw), trainable, lr=0.05, target="cortex-m7",
                                      build_dir=tmp_path / "whole", stream_input=False)
        assert not whole.firmware.module.input_streamed
        assert prog.planned_sram()["total"] <= whole.planned_sram()["total"] - hw * hw * 3 // 2, \
            (prog.planned_sram(), whole.planned_sram()["total"])

    xs = images(steps, hw, seed=1)
    ys = np.random.default_rng(2).integers(0, CLASSES, steps).astype(np.int32)
    res = prog.run_qemu(train=(xs, ys), evaluate=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0 and f"TT done steps={steps}" in res.output, res.output[-2000:]
    params = prog.initial_params()
    before = [np.asarray(prog.host.call("predict", *params, xs[i:i + 1])) for i in range(steps)]
    assert_device_trace_equals_host(prog, res, xs, ys)
    assert_device_equals_host(res.outputs["before"], np.stack(before).reshape(res.outputs["before"].shape),
                              err_msg="predict before training: device vs host")
    # the measured peak is the plan's within 10%, and the report agrees with the plan
    plan = module.planned_peak()
    assert abs(res.mem["sram_peak"] - plan) <= 0.1 * plan, (res.mem, plan)
    rep = memory_report(module)
    assert rep.peak_bytes == plan and any(n.startswith(f"input ({hw * hw * 3} B) streamed") for n in rep.notes)


def _late_reader():
    """train_step(x: 1024 B): k0 writes t0 (512 B, read last), k1 loads x[800, 1024) into t1
    (64 B), k2 reads t0 and t1 into t2 (the result): a reader of the input's last rows while
    another tensor lives (a patched stage's cut while its last patch reads its rows)."""
    arg = Alloc("arg", IN, "train_step", name="arg0", arg=0, persistent=True)
    tmp = Alloc("arena", 640, "train_step", name="alloc0", start=0, end=10, offset=0)
    t0, t1, t2 = Buf(tmp, 0, 512), Buf(tmp, 512, 64), Buf(tmp, 576, 64)
    cmds = [Command("dispatch", 1, [t0], export="k0"),
            Command("dispatch", 2, [Buf(arg, 0, IN), t1], export="k1"),
            Command("dispatch", 3, [t0, t1, t2], export="k2")]
    fn = Function("train_step", [IODesc((IN,), "i8", IN)], [IODesc((64,), "i8", 64, t2)], cmds)
    exports = {"k0": ExportInfo("k0", [Subspan(0, ("const", 0), 512, "w", 64)]),
               "k1": ExportInfo("k1", [Subspan(0, ("const", 0), IN, "r", 64, reads=((800, IN),)),
                                       Subspan(1, ("const", 0), 64, "w", 64)]),
               "k2": ExportInfo("k2", [Subspan(0, ("const", 0), 512, "r", 64), Subspan(1, ("const", 0), 64, "r", 64),
                                       Subspan(2, ("const", 0), 64, "w", 64)])}
    return Schedule("lib", [fn], b"", 640, 0, [arg, tmp]), exports


@pytest.mark.parametrize("state_bytes", [0, 1024])
def test_a_late_readers_bytes_need_not_sit_at_the_inputs_offsets(state_bytes):
    # The reader's binding keeps the input's layout (it indexes x[800, 1024) from its base), but
    # the base may lie below the function's tensors, in the trained state under them: its bytes
    # then sit beside t0 and t1 instead of above the input's first 800 B. Without arena below
    # (no state) the base stays at the plan's start: 1024 B.
    sched, exports = _late_reader()
    assert input_stream.stream_input(sched, exports, {"train_step": 0}).streamed
    (rep,) = replan.replan(sched, exports, state_bytes=state_bytes)
    assert not rep.reason, rep.describe()
    assert rep.bytes == (1024 if state_bytes == 0 else 832), rep.describe()
    k0, copy_cmd, k1, k2 = sched.function("train_step").commands
    band, binding = copy_cmd.refs[1], k1.refs[0]
    assert band.length == 224 and band.offset == binding.offset + 800
    # the binding starts inside the arena (at or above -state_bytes) and ends at its last load
    assert -state_bytes <= binding.offset and binding.offset + binding.length == band.offset + band.length
    assert (binding.offset < 0) == (state_bytes > 0)
    # nothing the kernels touch overlaps while alive: t0 (k0..k2) and t1 (k1..k2) clear of the band
    t0, t1 = k0.refs[0], k1.refs[1]
    for t in (t0, t1):
        assert t.offset + t.length <= band.offset or band.offset + band.length <= t.offset
    assert t0.offset + t0.length <= t1.offset or t1.offset + t1.length <= t0.offset
    assert all(0 <= r.offset and r.offset + r.length <= rep.bytes for r in (t0, t1, band, *k2.refs))
