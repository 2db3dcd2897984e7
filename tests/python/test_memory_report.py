"""The compiler's memory report (`tinytrain.memory_report`, issue #9 point 5): live SRAM per
dispatch of the compiled Cortex-M step, as a table, JSON and an SVG plot.

- the tensor lifetimes (`lowering/cortexm/dispatch_memory.live_ranges`) on hand-made commands
  whose live bytes are known;
- an fp32 model on the Cortex-M4: one row per dispatch of `@train_step`, in schedule order,
  named by IREE's export and the model's layers; the peak is the compiler's plan and the device
  measures it within 10% (QEMU, `MEM sram_peak` from stack painting);
- a small int8 program (`tinytrain.int8.compile_training`) on the Cortex-M4: the same, its layers
  named after the int8 graph's convs;
- the files (`write`): Markdown, JSON, well-formed SVG; the host target is a clear error.
The CLI flag is tested with the CLI's Cortex-M4 test (`test_cli.py`). About 45 s in all.
"""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import tinytrain
from tinytrain.lowering.cortexm import dispatch_memory as dm
from tinytrain.lowering.cortexm.schedule_model import Alloc, _align
from tinytrain.models import small_cnn


def test_live_ranges_of_hand_made_commands():
    a, b = Alloc("arena", 256, "f", name="a"), Alloc("arena", 64, "f", name="b")

    def acc(al, lo, hi, mode):
        return dm.Access(al, lo, hi, mode)

    events = [
        [acc(a, 0, 100, "w")],                              # 0: fill x = a[0, 100)
        [acc(a, 0, 100, "r"), acc(a, 100, 150, "w")],       # 1: y = f(x)
        [acc(a, 100, 150, "r"), acc(a, 0, 40, "w")],        # 2: z = g(y) over x's first bytes
        [acc(a, 0, 40, "rw"), acc(b, 0, 4, "w")],           # 3: z updated in place, loss to b
        [acc(a, 200, 256, "w")],                            # 4: w, partly over nothing live
        [acc(a, 60, 100, "r")],                             # 5: reads x's bytes that z left
    ]
    values = dm.live_ranges(events, keep_to_end=[acc(b, 0, 4, "r")])
    live = [dm.live_bytes(values, i) for i in range(len(events))]
    # x's bytes [40, 100) survive z's write and are read at 5: live from 0 to 5.
    assert live == [100, 150, 50 + 60 + 40, 60 + 40 + 4, 60 + 4 + 56, 60 + 4]


# One of our kernels' executables as IREE dumps it (`to-linalg{kernels=ttk}`, trimmed to two
# bindings): an operand IREE marks ReadOnly and a result it does not.
_OUR_KERNEL_SOURCE = """
hal.executable public @ttk_k {
  hal.executable.variant public @static target(<"llvm-cpu", "static", {cpu = "cortex-m7"}>) {
    hal.executable.export public @ttk_k ordinal(0) layout(#hal.pipeline.layout<bindings = [
        #hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">,
        #hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>)
        count(%arg0: !hal.device) -> (index, index, index) {
      %c1 = arith.constant 1 : index
      hal.return %c1, %c1, %c1 : index, index, index
    }
    builtin.module {
      func.func private @ttk_iree_k(memref<64xi8>, memref<32xi8>) attributes {hal.import.static}
      func.func @ttk_k() {
        %c0 = arith.constant 0 : index
        %0 = hal.interface.binding.subspan layout(<bindings = [
            #hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">,
            #hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>) binding(0) alignment(64) offset(%c0)
            flags("ReadOnly|Indirect") : memref<64xi8>
        %1 = hal.interface.binding.subspan layout(<bindings = [
            #hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">,
            #hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>) binding(1) alignment(64) offset(%c0)
            flags(Indirect) : memref<32xi8>
        call @ttk_iree_k(%0, %1) : (memref<64xi8>, memref<32xi8>) -> ()
        return
      }
    }
  }
}
"""


def test_our_kernels_results_are_writes(tmp_path):
    """A dispatch of our kernels writes its results (kernels.py never ties one to an operand):
    the memory analysis must not read what was in a result's bytes before (it did, as a
    read-write, which kept dead tensors alive up to every later dispatch of ours placed over them:
    MobileNetV2-w0.35 `49kb` with `kernels="ttk"` at 128x128 planned 224,448 B, now 176,448 B
    with the same scratch)."""
    (tmp_path / "module_ttk_k.mlir").write_text(_OUR_KERNEL_SOURCE)
    info = dm.read_sources(tmp_path)["ttk_k"]
    assert [(s.binding, s.length, s.mode) for s in info.subspans] == [(0, 64, "r"), (1, 32, "w")]
    # liveness: x dies at its last read (command 1) although our kernel's result reuses its bytes
    a = Alloc("arena", 128, "f", name="a")
    events = [[dm.Access(a, 0, 64, "w")], [dm.Access(a, 0, 64, "r"), dm.Access(a, 64, 96, "w")],
              [dm.Access(a, 64, 96, "r"), dm.Access(a, 0, 32, info.subspans[1].mode)],
              [dm.Access(a, 0, 32, "r")]]
    values = dm.live_ranges(events)
    assert [dm.live_bytes(values, i) for i in range(4)] == [64, 96, 64, 32]


# A copy kernel as IREE dumps it, trimmed: a 24x8 slice stored into a 1x1x24x{N} tensor at
# channel offset {OFF} (a push constant in the dispatch of a shared channel-slice kernel), the
# store's tensor {MODE}.
_SLICE_STORE_SOURCE = """
hal.executable public @k {
  hal.executable.variant public @static target(<"llvm-cpu", "static", {cpu = "cortex-m7"}>) {
    hal.executable.export public @k ordinal(0) layout(#hal.pipeline.layout<constants = 1, bindings = [
        #hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">,
        #hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>)
        count(%arg0: !hal.device) -> (index, index, index) {
      %c1 = arith.constant 1 : index
      hal.return %c1, %c1, %c1 : index, index, index
    }
    builtin.module {
      func.func @k() {
        %c0 = arith.constant 0 : index
        %0 = hal.interface.constant.load layout(<constants = 1, bindings = [
            #hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">,
            #hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>) ordinal(0) : i32
        %1 = arith.index_castui %0 : i32 to index
        %2 = hal.interface.binding.subspan layout(<constants = 1, bindings = [
            #hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">,
            #hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>) binding(0) alignment(64)
            offset(%c0) flags("ReadOnly|Indirect") : !iree_tensor_ext.dispatch.tensor<readonly:tensor<24x8xi8>>
        %3 = hal.interface.binding.subspan layout(<constants = 1, bindings = [
            #hal.pipeline.binding<storage_buffer, "ReadOnly|Indirect">,
            #hal.pipeline.binding<storage_buffer, Indirect>], flags = Indirect>) binding(1) alignment(64)
            offset(%c0) flags(Indirect) : !iree_tensor_ext.dispatch.tensor<{MODE}:tensor<1x1x24x{N}xi8>>
        %4 = iree_tensor_ext.dispatch.tensor.load %2, offsets = [0, 0], sizes = [24, 8], strides = [1, 1]
            : !iree_tensor_ext.dispatch.tensor<readonly:tensor<24x8xi8>> -> tensor<24x8xi8>
        iree_tensor_ext.dispatch.tensor.store %4, %3, offsets = [0, 0, 0, {OFF}], sizes = [1, 1, 24, 8],
            strides = [1, 1, 1, 1] : tensor<24x8xi8> -> !iree_tensor_ext.dispatch.tensor<{MODE}:tensor<1x1x24x{N}xi8>>
        return
      }
    }
  }
}
"""


@pytest.mark.parametrize("mode, n, off, expected", [
    ("writeonly", 8, "0", "w"),          # stored whole: a write, older values end
    ("writeonly", 144, "%1", "rw"),      # one slice at a push-constant offset: the rest lives on
    ("writeonly", 144, "16", "rw"),      # one static slice of a larger tensor
    ("readwrite", 144, "%1", "rw"),      # what IREE emits for such a store today
])
def test_a_write_only_tensor_stored_in_part_is_an_update(tmp_path, mode, n, off, expected):
    """A `writeonly` subspan counts as a write (its bytes' older values end there) only when its
    kernel stores every element at static offsets; stored in part, or at a push-constant offset
    (`shared_kernels` makes channel offsets push constants), its other bytes keep what was there,
    so it is an update and the layout may not place a tensor there. (IREE stores a write-only
    tensor whole today, the first case, and types a partial store `readwrite`, the last; the two
    between are what a later IREE might emit.)"""
    src = _SLICE_STORE_SOURCE.replace("{MODE}", mode).replace("{N}", str(n)).replace("{OFF}", off)
    (tmp_path / "module_k.mlir").write_text(src)
    info = dm.read_sources(tmp_path)["k"]
    assert [(s.binding, s.length, s.mode) for s in info.subspans] == [(0, 192, "r"), (1, 24 * n, expected)]


@pytest.fixture(scope="module")
def m4(tmp_path_factory):
    torch.manual_seed(0)
    model = small_cnn(num_classes=4, in_channels=1, width=4).eval()
    prog = tinytrain.compile(model, torch.randn(1, 1, 12, 12), lr=0.05, target="cortex-m4",
                             build_dir=tmp_path_factory.mktemp("m4"))
    return prog, prog.memory_report()


def _check_rows(rep, module, params):
    sched = module.schedule
    commands = [c for c in sched.function("train_step").commands if c.op == "dispatch"]
    dispatches = [c.export for c in commands]
    assert [r.dispatch for r in rep.rows] == dispatches
    # each row names its own command's layer (the HAL program's location of the dispatch), also
    # where one kernel serves the dispatches of several layers
    assert sum(bool(c.layers) for c in commands) > len(commands) // 2, [c.export for c in commands if not c.layers]
    for c, r in zip(commands, rep.rows):
        assert set(c.layers) <= set(r.layers), (c.export, c.layers, r.layers)
    assert [r.index for r in rep.rows] == list(range(len(dispatches)))
    assert rep.peak_bytes == module.planned_peak() and rep.reserved_bytes == module.planned_sram()
    state = sum(_align(p.nbytes) for p in params)
    assert rep.persistent[f"trained state ({len(params)} tensors)"] == state
    assert rep.transient_arena_bytes == sched.arena_size - sched.persistent_size > 0
    for r in rep.rows:
        assert 0 < r.live_bytes <= r.allocated_bytes <= rep.transient_arena_bytes, r
        assert r.total_bytes == rep.persistent_bytes + r.live_bytes
    assert rep.persistent_bytes < rep.live_peak_bytes <= rep.peak_bytes
    assert rep.live_peak_bytes == rep.persistent_bytes + max(r.live_bytes for r in rep.rows)
    # what is live at the worst dispatch: every byte once, by its writer, read there or later
    peak_at = [i for i, c in enumerate(sched.function("train_step").commands) if c.op == "dispatch"][
        rep.live_peak_row.index]
    assert sum(t.bytes for t in rep.peak_tensors) == rep.live_peak_row.live_bytes, rep.peak_tensors
    assert [t.bytes for t in rep.peak_tensors] == sorted((t.bytes for t in rep.peak_tensors), reverse=True)
    for t in rep.peak_tensors:
        assert t.bytes > 0 and t.written_at <= peak_at <= t.last_read_at, (t, peak_at)
        assert t.written_by in {c.export if c.op == "dispatch" else c.op
                                for c in sched.function("train_step").commands}, t
    # the worst dispatch of each of the worst blocks: the first is the worst dispatch's, every
    # block not listed holds no more than the last one listed, each table sums to its live bytes
    from tinytrain.memory_report import HOT_SPOTS, block_of

    spots = rep.hot_spots
    assert spots and spots[0].index == rep.live_peak_row.index and spots[0].tensors == rep.peak_tensors
    assert len({h.block for h in spots}) == len(spots) == min(HOT_SPOTS, len({block_of(r.layers[0])
                                                                               for r in rep.rows if r.layers}))
    assert [h.live_bytes for h in spots] == sorted((h.live_bytes for h in spots), reverse=True)
    for h in spots:
        row = rep.rows[h.index]
        assert h.dispatch == row.dispatch and h.live_bytes == row.live_bytes == sum(t.bytes for t in h.tensors)
        assert h.block == block_of(row.layers[0])
        assert all(r.live_bytes <= h.live_bytes for r in rep.rows if r.layers and block_of(r.layers[0]) == h.block)
    listed = {h.block for h in spots}
    assert all(r.live_bytes <= spots[-1].live_bytes for r in rep.rows
               if r.layers and block_of(r.layers[0]) not in listed)


def test_fp32_report_follows_the_schedule_and_names_the_layers(m4):
    prog, rep = m4
    _check_rows(rep, prog.firmware.module, prog.program_params())
    assert rep.function == "train_step" and rep.target == "cortex-m4"
    assert rep.budget_bytes == 256 * 1024
    named = {n for r in rep.rows for n in r.layers}
    assert {"0 (Conv2d)", "3 (Conv2d)", "6 (Conv2d)", "10 (Linear)"} <= named, named
    first_conv = next(r for r in rep.rows if "conv" in r.dispatch)
    assert "0 (Conv2d)" in first_conv.layers, first_conv


def test_fp32_report_peak_agrees_with_the_device(m4, tmp_path):
    prog, rep = m4
    g = torch.Generator().manual_seed(1)
    res = prog.run_qemu(train=(torch.randn(2, 1, 12, 12, generator=g), torch.tensor([0, 3])),
                        workdir=tmp_path)
    assert res.returncode == 0, res.output[-2000:]
    measured = res.mem["sram_peak"]
    assert abs(measured - rep.peak_bytes) <= 0.10 * measured, (measured, rep.peak_bytes)


def test_report_files(m4, tmp_path):
    _, rep = m4
    paths = rep.write(tmp_path / "mem")
    assert [p.name for p in paths] == ["memory_report.md", "memory_report.json", "memory_report.svg"]
    assert json.loads(paths[1].read_text()) == rep.to_json()
    md = paths[0].read_text()
    assert all(f"`{r.dispatch}`" in md for r in rep.rows) and f"{rep.peak_bytes:,} B" in md
    assert "Live at the worst dispatch" in md and all(f"`{t.written_by}`" in md for t in rep.peak_tensors)
    assert all(f"Worst dispatch of `{h.block}`: #{h.index}" in md for h in rep.hot_spots[1:])
    assert "worst dispatch per block: " + ", ".join(f"{h.block} {h.live_bytes:,} B (#{h.index})"
                                                    for h in rep.hot_spots) in md
    svg = ET.parse(paths[2]).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.tag == f"{ns}svg"
    tips = [t.text for t in svg.iter(f"{ns}title") if t.text.startswith("#")]
    assert len(tips) == len(rep.rows) and tips[0].startswith(f"#0 {rep.rows[0].dispatch}")
    area = next(p for p in svg.iter(f"{ns}polygon"))
    assert len(area.get("points").split()) == 2 * len(rep.rows) + 2
    texts = " ".join(t.text or "" for t in svg.iter(f"{ns}text"))
    assert f"plan peak {rep.peak_bytes:,} B" in texts and "budget 262,144 B" in texts


def test_host_target_has_no_memory_report():
    torch.manual_seed(0)
    prog = tinytrain.compile(small_cnn(num_classes=4, in_channels=1, width=4).eval(),
                             torch.randn(1, 1, 12, 12), trainable=["10.weight"], lr=0.05)
    with pytest.raises(ValueError, match="needs a Cortex-M target.*target='cortex-m4'"):
        prog.memory_report()


def test_int8_program_report_agrees_with_the_device(tmp_path):
    from tinytrain import reference as R
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    model = truncate(load_mcu_model("mbv2-w0.35"), 2)
    g = build_forward(model, classifier="fp32", num_classes=4, input_hw=16, seed=0)
    trainable = ["blocks.1.pointwise2.bias", "fc.weight", "fc.bias"]
    prog = compile_training(g, trainable, lr=0.05, target="cortex-m4", build_dir=tmp_path / "fw")
    rep = prog.memory_report()
    _check_rows(rep, prog.firmware.module, prog.initial_params())
    named = {n for r in rep.rows for n in r.layers}
    assert {"fc", "blocks.1.pointwise2"} <= named, named
    rng = np.random.default_rng(0)
    xs = R.preprocess(rng.integers(0, 256, (2, 16, 16, 3)).astype(np.uint8),
                      model.first_conv.x_scale, model.first_conv.x_zero)
    res = prog.run_qemu(train=(xs, [1, 2]), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    measured = res.mem["sram_peak"]
    assert abs(measured - rep.peak_bytes) <= 0.10 * measured, (measured, rep.peak_bytes)


def test_a_shared_kernel_row_names_its_own_layer():
    """IREE runs one kernel for every dispatch with the same code; its source names one of their
    layers. A row takes the kernel's layers when they hold the command's own, else the command's."""
    from tinytrain.lowering.cortexm.schedule_model import Command
    from tinytrain.memory_report import _command_layers

    fused = dm.ExportInfo("k", [], ["blocks.13.depthwise", "blocks.13.pointwise2"])
    own = Command("dispatch", 0, [], export="k", layers=("blocks.13.depthwise",))
    other = Command("dispatch", 1, [], export="k", layers=("blocks.12.depthwise",))
    bare = Command("dispatch", 2, [], export="k")
    assert _command_layers(own, fused) == ["blocks.13.depthwise", "blocks.13.pointwise2"]
    assert _command_layers(other, fused) == ["blocks.12.depthwise"]
    assert _command_layers(bare, fused) == ["blocks.13.depthwise", "blocks.13.pointwise2"]


def test_firmware_counts_its_kernels_code(m4):
    """`Firmware.kernels` / `.kernel_code`: the IREE dispatch functions linked into the ELF, part
    of its flash, and kept by the manifest."""
    from tinytrain.lowering.cortexm.firmware import load_firmware

    prog, _ = m4
    fw = prog.firmware
    used = {c.export for f in fw.module.schedule.functions for c in f.commands if c.op == "dispatch"}
    assert fw.kernels >= len(used) > 0
    assert 0 < fw.kernel_code < fw.text
    again = load_firmware(fw.project_dir)
    assert (again.kernels, again.kernel_code) == (fw.kernels, fw.kernel_code)
    # the memory report says it
    assert f"{fw.text:,} B of code and constants (.text), of which {fw.kernel_code:,} B are the code of " \
           f"{fw.kernels} IREE kernels" in "\n".join(prog.memory_report().summary())
