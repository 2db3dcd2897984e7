"""Our layout of the transient tensors (lowering/cortexm/replan.py).

Hand-made schedules (fills and copies: their byte ranges are known without IREE) check the
rules: tensors alive at the same command never share a byte, tensors written in parts and read
whole keep their layout, a partly overwritten tensor's surviving bytes keep their place, a hole
is kept for the step input, and IREE's layout stays when ours is not smaller. A real program
checks that the device still trains exactly like IREE's host program with the new layout.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as models  # noqa: E402
import cortexm_reference as reference  # noqa: E402
from tinytrain.lowering.cortexm import dispatch_memory as dm, firmware, iree_static, replan  # noqa: E402
from tinytrain.lowering.cortexm.schedule_model import Alloc, Buf, Command, Function, IODesc, Schedule  # noqa: E402


def _fill(t, alloc, lo, n):
    return Command("fill", t, [Buf(alloc, lo, n)], length=n, pattern=t, pattern_length=1)


def _copy(t, src, s_lo, dst, d_lo, n):
    return Command("copy", t, [Buf(src, s_lo, n), Buf(dst, d_lo, n)], length=n)


def _schedule(cmds_of, size=1024, outputs=()):
    """train_step over one IREE allocation of ``size`` bytes (and a 64 B argument ``out``):
    ``cmds_of(tmp, out)`` gives the commands."""
    out = Alloc("arg", 64, "train_step", name="arg0", arg=0, persistent=True)
    tmp = Alloc("arena", size, "train_step", name="alloc0", start=0, end=100, offset=0)
    fn = Function("train_step", [IODesc((16,), "f32", 64)], list(outputs), cmds_of(tmp, out))
    return Schedule("lib", [fn], b"", size, 0, [out, tmp]), tmp


def _dispatch(t, export, *refs):
    return Command("dispatch", t, list(refs), export=export)


def _kernel(name, *modes):
    """A kernel touching each of its bindings whole, in ``modes`` ("r", "w", "rw": our own
    kernels' writable buffers, whose sources do not say whether they are read)."""
    return name, modes


def _exports(schedule, kernels):
    """The ExportInfo of each kernel of ``kernels`` (name -> modes), its subspans the lengths
    of the bindings of its first dispatch in ``schedule``."""
    fn = schedule.function("train_step")
    out = {}
    for name, modes in kernels.items():
        c = next(c for c in fn.commands if c.op == "dispatch" and c.export == name)
        out[name] = dm.ExportInfo(name, [dm.Subspan(b, ("const", 0), r.length, m)
                                         for b, (r, m) in enumerate(zip(c.refs, modes))])
    return out


def _contents(schedule, kernels=None):
    """Run the schedule's fills, copies and dispatches on a byte array: what each copy into the
    argument delivers (the observable result). A dispatch of ``kernels`` (name -> binding modes)
    fills each buffer it writes ("w", "rw") with its time plus the sum of the bytes it reads
    ("r", "rw"), mod 256."""
    fn = schedule.function("train_step")
    arena = bytearray(schedule.arena_size)
    got = []

    def span(r):
        return slice(r.alloc.offset + r.offset, r.alloc.offset + r.offset + r.length)

    for c in fn.commands:
        if c.op == "dispatch":
            modes = kernels[c.export]
            v = (c.time + sum(sum(arena[span(r)]) for r, m in zip(c.refs, modes) if "r" in m)) % 256
            for r, m in zip(c.refs, modes):
                if "w" in m:
                    arena[span(r)] = bytes([v]) * r.length
        elif c.op == "fill":
            r = c.refs[0]
            arena[r.alloc.offset + r.offset:r.alloc.offset + r.offset + r.length] = bytes([c.pattern]) * r.length
        else:
            src, dst = c.refs
            data = bytes(arena[src.alloc.offset + src.offset:src.alloc.offset + src.offset + src.length]) \
                if src.alloc.kind == "arena" else bytes(src.length)
            if dst.alloc.kind == "arena":
                arena[dst.alloc.offset + dst.offset:dst.alloc.offset + dst.offset + dst.length] = data
            else:
                got.append(data)
    return got


def _apart(tmp, out):
    # A [0,256) t1..t2, B [256,512) t2..t3, C [512,768) t3..t4: IREE keeps all three apart.
    return [_fill(1, tmp, 0, 256), _copy(2, tmp, 0, tmp, 256, 256), _copy(3, tmp, 256, tmp, 512, 256),
            _copy(4, tmp, 512, out, 0, 64)]


def test_tensors_that_die_reuse_bytes_and_results_stay_the_same():
    before, _ = _schedule(_apart)
    expected = _contents(before)
    s, tmp = _schedule(_apart)
    (r,) = replan.replan(s, {})
    assert not r.reason and r.iree_bytes == 1024 and r.bytes == 512, r.describe()
    assert s.arena_size == 512 and tmp not in s.allocs
    plan = s.function("train_step").commands[0].refs[0].alloc
    assert plan.name == "plan@train_step" and plan.size == 512
    assert _contents(s) == expected
    # A and C share bytes (never alive together), B is apart from both
    a, b, c = (s.function("train_step").commands[i].refs[-1].offset for i in range(3))
    assert a == c and abs(a - b) >= 256


def test_a_tensor_written_in_parts_and_read_whole_stays_whole():
    def cmds(tmp, out):
        # the halves of T [512, 768) written by two commands, then T read whole
        return [_fill(1, tmp, 0, 128), _copy(2, tmp, 0, tmp, 512, 128), _fill(3, tmp, 640, 128),
                _copy(4, tmp, 512, out, 0, 256)]
    before, _ = _schedule(cmds)
    s, _ = _schedule(cmds)
    replan.replan(s, {})
    c = s.function("train_step").commands
    assert c[2].refs[0].offset == c[1].refs[1].offset + 128 == c[3].refs[0].offset + 128
    assert _contents(s) == _contents(before)


def test_the_surviving_bytes_of_a_partly_overwritten_tensor_keep_their_place():
    def cmds(tmp, out):
        # T [0, 512) written, read whole; its first half overwritten by U; its second half read last
        return [_fill(1, tmp, 0, 512), _copy(2, tmp, 0, out, 0, 512), _fill(3, tmp, 0, 256),
                _copy(4, tmp, 0, out, 0, 256), _copy(5, tmp, 256, out, 0, 256)]
    before, _ = _schedule(cmds)
    s, _ = _schedule(cmds)
    replan.replan(s, {})
    c = s.function("train_step").commands
    assert c[4].refs[0].offset == c[0].refs[0].offset + 256
    assert _contents(s) == _contents(before)


def test_a_hole_is_kept_for_the_input_until_its_last_read():
    s, _ = _schedule(_apart)
    (r,) = replan.replan(s, {}, reserve={"train_step": [(300, 1)]})
    assert r.bytes == 832, r.describe()          # 320 B hole (aligned) below/above the tensors
    spans = [(x.offset, x.offset + x.length) for c in s.function("train_step").commands[:2]
             for x in c.refs if x.alloc.kind == "arena"]
    free = [lo for lo in range(0, r.bytes - 320 + 1, 64) if all(hi <= lo or lo + 320 <= a for a, hi in spans)]
    assert free, spans


def test_iree_layout_stays_when_ours_is_not_smaller():
    def cmds(tmp, out):              # two tensors alive together, already packed
        return [_fill(1, tmp, 0, 256), _fill(2, tmp, 256, 256), _copy(3, tmp, 0, out, 0, 64),
                _copy(4, tmp, 256, out, 0, 64)]
    s, tmp = _schedule(cmds, size=512)
    (r,) = replan.replan(s, {})
    assert r.reason.startswith("our first-fit layout (512 B) is not smaller"), r.describe()
    assert tmp in s.allocs and s.function("train_step").commands[0].refs[0].alloc is tmp


def test_iree_layout_charged_for_the_input_it_has_no_room_for():
    def cmds(tmp, out):              # packed: 512 B, nothing to gain without an input
        return [_fill(1, tmp, 0, 256), _fill(2, tmp, 256, 256), _copy(3, tmp, 0, out, 0, 64),
                _copy(4, tmp, 256, out, 0, 64)]
    hole = {"train_step": [(300, 0)]}  # a 300 B input read by the first command only
    s, tmp = _schedule(cmds, size=512)
    (r,) = replan.replan(s, {}, reserve=hole)
    assert r.reason.startswith("our first-fit layout (576 B) is not smaller"), r.describe()
    assert tmp in s.allocs
    s, tmp = _schedule(cmds, size=512)
    (r,) = replan.replan(s, {}, reserve=hole, hole_cost=True)   # 576 B < 512 B + the 320 B input
    assert not r.reason and r.bytes == 576 and tmp not in s.allocs, r.describe()


def test_results_in_the_arena_stay_alive_to_the_end():
    def cmds(tmp, out):
        return [_fill(1, tmp, 0, 64), _fill(2, tmp, 512, 256), _copy(3, tmp, 512, out, 0, 64),
                _fill(4, tmp, 256, 256), _copy(5, tmp, 256, out, 0, 64)]
    out_desc = IODesc((16,), "f32", 64)
    s, tmp = _schedule(cmds, outputs=[out_desc])
    out_desc.buf = Buf(tmp, 0, 64)   # the function's result: written first, read after the call
    replan.replan(s, {})
    res = s.function("train_step").outputs[0].buf
    later = [r for c in s.function("train_step").commands[1:] for r in c.refs if r.alloc is res.alloc]
    assert all(r.offset + r.length <= res.offset or res.offset + res.length <= r.offset for r in later)


def test_a_kernel_output_over_stale_bytes_stays_alive_in_all_its_bytes():
    """One of our kernels writes its output through a binding its source marks read-write; the
    output covers a dead tensor's bytes in part ([0, 64) of [0, 256)). All 256 bytes are live
    to the output's last read, so the tensor written in between (C) cannot take bytes [64, 256)
    (a trial of the depthwise fp32 input gradient as a dispatch: the int8 output of a pointwise
    dispatch overwritten before its last read)."""
    kernels = {"k": ("r", "rw")}

    def cmds(tmp, out):
        # A [0, 64) read by copy 2 (into B [512, 576)); k reads B, writes its output [0, 256)
        # over A's dead bytes; C [256, 512) lives while the output waits for its read at 6
        return [_fill(1, tmp, 0, 64), _copy(2, tmp, 0, tmp, 512, 64),
                _dispatch(3, "k", Buf(tmp, 512, 64), Buf(tmp, 0, 256)),
                _fill(4, tmp, 256, 256), _copy(5, tmp, 256, out, 0, 64), _copy(6, tmp, 0, out, 0, 256)]
    before, _ = _schedule(cmds)
    expected = _contents(before, kernels)
    s, _ = _schedule(cmds)
    (r,) = replan.replan(s, _exports(s, kernels))
    assert not r.reason, r.describe()
    c = s.function("train_step").commands
    k_out, c_buf = c[2].refs[1], c[3].refs[0]
    assert k_out.offset + k_out.length <= c_buf.offset or c_buf.offset + c_buf.length <= k_out.offset, \
        (k_out, c_buf)
    assert _contents(s, kernels) == expected


def _no_overlap(items, offsets, size):
    placed = [(offsets[k] + lo, offsets[k] + hi, a, b) for k, ps in items for lo, hi, a, b in ps]
    assert max(hi for _, hi, _, _ in placed) <= size
    for n, (lo, hi, a, b) in enumerate(placed):
        for lo2, hi2, a2, b2 in placed[n + 1:]:
            assert b < a2 or b2 < a or hi <= lo2 or hi2 <= lo, (placed[n], (lo2, hi2, a2, b2))


def test_a_block_at_the_layout_end_placed_first_closes_the_gap_every_order_leaves():
    # six tensors (key, [(lo, hi, first command, last command)]) whose worst command (6) holds
    # 640 B live; first fit in each of the eight orders leaves a hole and ends at 704 B, the
    # search from the best of them (the block at the end placed first) reaches 640 B
    items = [("t0", [(0, 192, 1, 4)]), ("t1", [(0, 128, 2, 5)]), ("t2", [(0, 128, 5, 8)]),
             ("t3", [(0, 128, 4, 7)]), ("t4", [(0, 256, 6, 6)]), ("t5", [(0, 128, 0, 7)])]
    assert min(replan._place(items, order)[1] for order in replan._ORDERS) == 704
    offsets, size = replan._best_layout(items, 0)
    assert size == 640
    _no_overlap(items, offsets, size)


def test_the_climb_closes_a_gap_that_every_order_and_its_promotions_leave():
    # seven tensors whose worst commands (4, 6) hold 704 B live; first fit in each of the eight
    # orders ends at 768 B or more, and so do the promotions from the best of them (the search
    # before the climb); the climb on the order reaches 704 B
    items = [("t0", [(0, 64, 4, 7)]), ("t1", [(0, 256, 4, 4)]), ("t2", [(0, 256, 0, 2)]),
             ("t3", [(0, 256, 4, 7)]), ("t4", [(0, 64, 3, 8)]), ("t5", [(0, 192, 6, 6)]),
             ("t6", [(0, 128, 5, 9)])]
    orders = [sorted(items, key=order) for order in replan._ORDERS]
    assert min(replan._place(seq, None, 0)[1] for seq in orders) == 768
    assert replan._promote(min(orders, key=lambda seq: replan._place(seq, None, 0)[1]), 0)[2] == 768
    offsets, size = replan._best_layout(items, 0)
    assert size == 704
    _no_overlap(items, offsets, size)
    assert replan._best_layout(items, 0) == (offsets, size)      # seeded: the same layout again


def _first_fit_reference(blocks, floor):
    """First fit spelled out: each block at the lowest aligned offset from its ``_lowest`` up
    where no piece meets a placed piece alive at the same time."""
    placed, offsets, top = [], {}, 0
    for key, pieces in blocks:
        x = replan._lowest(pieces, floor)
        while any(q[2] != replan._NOWHERE and p[2] <= q[3] and q[2] <= p[3] and q[0] + x < p[1] and p[0] < q[1] + x
                  for q in pieces for p in placed):
            x += replan.ALIGN
        offsets[key] = x
        placed += [(q[0] + x, q[1] + x, q[2], q[3]) for q in pieces if q[2] != replan._NOWHERE]
        top = max([top] + [q[1] + x for q in pieces if q[2] != replan._NOWHERE])
    return offsets, replan._align(top)


def test_first_fit_places_each_block_at_its_lowest_free_offset():
    # random rigid blocks: several pieces at unaligned relative offsets, some occupying no memory
    # (a streamed input's binding), a floor below 0; the vectorized sweep equals the spelled-out rule
    import random

    rng = random.Random(3)
    for _ in range(150):
        blocks = []
        for i in range(rng.randint(1, 12)):
            pieces = []
            for _ in range(rng.randint(1, 3)):
                lo = rng.randrange(0, 300)
                a = rng.randint(0, 9)
                nowhere = rng.random() < 0.15
                pieces.append((lo, lo + rng.randint(1, 300), replan._NOWHERE if nowhere else a,
                               replan._NOWHERE if nowhere else rng.randint(a, 10)))
            blocks.append((i, pieces))
        floor = -rng.choice([0, 100, 1000])
        assert replan._place(blocks, None, floor) == _first_fit_reference(blocks, floor), blocks


def test_the_layout_check_refuses_a_tensor_overwritten_before_its_last_read(monkeypatch):
    """With the liveness error above put back (a read meeting a value in part leaves the rest of
    its range unlive), replan's check of its own layout (both layouts run, every read's bytes from
    the same writer) raises a CompileError naming the command and the bytes instead of returning
    the wrong layout."""
    from tinytrain.errors import CompileError

    kernels = {"k": ("r", "rw")}

    def cmds(tmp, out):
        return [_fill(1, tmp, 0, 64), _copy(2, tmp, 0, tmp, 512, 64),
                _dispatch(3, "k", Buf(tmp, 512, 64), Buf(tmp, 0, 256)),
                _fill(4, tmp, 256, 256), _copy(5, tmp, 256, out, 0, 64), _copy(6, tmp, 0, out, 0, 256)]
    monkeypatch.setattr(dm, "_gaps", lambda lo, hi, spans: [] if spans else [(lo, hi)])
    s, tmp = _schedule(cmds)
    with pytest.raises(CompileError, match=r"@train_step: command 5 \(copy\) reads bytes \[0, 256\) of "
                       r"plan@train_step \(alloc0 \[0, 256\) in IREE's layout\), 192 of them last written "
                       r"by another command than in IREE's layout \(byte 64: command 3 \(fill\) instead of "
                       r"command 2 \(k\)\)"):
        replan.replan(s, _exports(s, kernels))
    assert tmp in s.allocs and s.function("train_step").commands[2].refs[1].alloc is tmp


@pytest.mark.parametrize("target", ["cortex-m4"])
def test_replanned_program_trains_on_the_device_like_the_host(tmp_path, target):
    text, params = models.conv_train_mlir(hw=16, channels=3, classes=4)
    ours = iree_static.build_static_module(text, tmp_path / "ours", target=target, prefix="net")
    iree = iree_static.build_static_module(text, tmp_path / "iree", target=target, prefix="net",
                                           replan_memory=False)
    rep = ours.schedule.replans["train_step"]
    assert ours.arena_bytes <= iree.arena_bytes, rep.describe()
    assert not iree.schedule.replans
    fw = firmware.build_firmware(ours, tmp_path / "fw")
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((2, 1, 16, 16, 3)).astype(np.float32)
    ys = [1, 3]
    host = reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys), params=params, timeout=60)
    assert res.returncode == 0 and "TT done steps=2" in res.output, res.output
    reference.assert_trace_matches(res.trace, host, target)     # bit-exact on the M4
    plan = ours.planned_peak()
    assert abs(res.mem["sram_peak"] - plan) <= 0.1 * plan, (res.mem, plan)


def test_a_binding_iree_passes_misaligned_gets_an_aligned_copy_in_both_layouts():
    """IREE binds a kernel that declares 64-byte aligned bindings at byte 48 (one channel group's
    gradient written in place into the concatenation of the groups): `realign_bindings` gives the
    binding its own buffer, copied in before and (written) back after; the results stay the same
    in IREE's layout and in ours, and every binding of a kernel that declares alignment is
    aligned in both."""
    from tinytrain.lowering.cortexm import realign
    from tinytrain.lowering.cortexm.schedule_model import ALIGN

    kernels = {"g": ("r", "w"), "h": ("r", "w")}

    def cmds(tmp, out):
        # groups [0, 48) and [48, 96) of one tensor; g reads group 0 and writes group 1 in place,
        # h reads group 1 at its misaligned offset and writes [128, 192)
        return [_fill(1, tmp, 0, 96), _dispatch(2, "g", Buf(tmp, 0, 48), Buf(tmp, 48, 48)),
                _dispatch(3, "h", Buf(tmp, 48, 48), Buf(tmp, 128, 64)),
                _copy(4, tmp, 32, out, 0, 64), _copy(5, tmp, 128, out, 0, 64)]

    def exports(s):
        return {name: dm.ExportInfo(name, [dm.Subspan(b, ("const", 0), r.length, m, alignment=64)
                                           for b, (r, m) in enumerate(zip(c.refs, kernels[name]))])
                for name in kernels
                for c in [next(c for c in s.function("train_step").commands if c.export == name)]}

    def aligned(s):
        return all((r.alloc.offset + r.offset) % ALIGN == 0 for c in s.function("train_step").commands
                   if c.op == "dispatch" for r in c.refs if r.alloc.kind == "arena")

    before, _ = _schedule(cmds)
    expected = _contents(before, kernels)
    assert not aligned(before)
    s, _ = _schedule(cmds)
    ex = exports(s)
    assert realign.realign_bindings(s, ex) == 2
    ops = [(c.op, c.export) for c in s.function("train_step").commands]
    # g's output: copied in and back; h's input (read only): copied in
    assert ops == [("fill", ""), ("copy", ""), ("dispatch", "g"), ("copy", ""), ("copy", ""),
                   ("dispatch", "h"), ("copy", ""), ("copy", "")], ops
    assert aligned(s) and _contents(s, kernels) == expected
    (r,) = replan.replan(s, ex)
    assert not r.reason, r.describe()
    assert aligned(s) and _contents(s, kernels) == expected
    # a kernel whose source declares no alignment keeps IREE's binding
    t, _ = _schedule(cmds)
    plain = {name: dm.ExportInfo(name, [dm.Subspan(b, ("const", 0), s_.length, s_.mode) for b, s_ in
                                        enumerate(info.subspans)]) for name, info in exports(t).items()}
    assert realign.realign_bindings(t, plain) == 0
