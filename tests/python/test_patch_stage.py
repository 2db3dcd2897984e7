"""`patch-stage` (`tinytrain.transforms.patch_stage`): the frozen first stage of an int8 network
computed in spatial patches is bit-identical to the whole-tensor program, for inference and for
training, on the host and on the emulated Cortex-M7, and needs less SRAM.

Backbone: the first blocks of the pretrained MobileNetV2-w0.35 (`truncate`) with a new fp32 head.
The lit test `tests/lit/transforms/patch-stage.mlir` checks the IR (slices, border-only padding,
the barrier chain); this file checks the numbers.
"""

import numpy as np
import pytest
from conftest import assert_device_equals_host, loss_close

from tinytrain import int8
from tinytrain.errors import CompileError
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate
from tinytrain.transforms.patch_stage import PatchStagePass, find_stage

CLASSES = 4


def graph(blocks, hw):
    return build_forward(truncate(load_mcu_model("mbv2-w0.35"), blocks), classifier="fp32",
                         num_classes=CLASSES, input_hw=hw, seed=0)


def images(n, hw, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, (n, hw, hw, 3)).astype(np.int8)


def stage_attr(prog) -> str:
    lines = [ln for ln in prog.stages["linalg"].splitlines() if "tinytrain.patch_stage" in ln]
    return lines[0][lines[0].index("tinytrain.patch_stage"):] if lines else ""


@pytest.fixture(scope="module")
def predict40():
    """The inference programs of the first 4 blocks at 40x40: whole, and in 3 x 3 patches."""
    return int8.compile_predict(graph(4, 40)), int8.compile_predict(graph(4, 40), patches=3)


def test_patched_inference_is_bit_identical_with_uneven_patches(predict40):
    # 40x40 input, 3x3 patches (host: the input whole, padding materialised): the chain with the
    # smallest estimated peak (test below) has three stages: the first conv and blocks.0 (20x20x8,
    # uneven rows/columns [0, 7), [7, 13), [13, 20)), blocks.1 (10x10x8 in 3x3: [0, 3), [3, 7),
    # [7, 10)), then blocks.2 with its residual add and blocks.3's expansion (a cut inside a block:
    # 10x10x48, in 2x2 patches) so borders, interior patches, a residual add and every stage input
    # being the previous stage's assembled cut are all covered.
    x = images(3, 40)
    whole, patched = predict40
    assert "tinytrain.patch_stage" not in whole.stages["linalg"]
    attr = stage_attr(patched)
    stages = attr.split("tinytrain.patch_stage")[1:]
    assert len(stages) == 3, attr
    for part, (cut, shape, grid) in zip(stages, [("blocks.0.pointwise2", "1, 20, 20, 8", 3),
                                                 ("blocks.1.pointwise2", "1, 10, 10, 8", 3),
                                                 ("blocks.3.pointwise1", "1, 10, 10, 48", 2)]):
        assert f'cut = "{cut}"' in part and f"array<i64: {shape}>" in part and f"grid = {grid}" in part, part
    for i in range(len(x)):
        a, b = whole.predict([], x[i:i + 1]), patched.predict([], x[i:i + 1])
        np.testing.assert_array_equal(a, b)


def test_stage_stops_before_a_trained_layer():
    # Training blocks.1's depthwise weight needs its input (blocks.1.pointwise1's output, saved
    # whole for the backward pass): the stage ends there or before; the smallest valid cut is
    # blocks.0's output (16x16x8; blocks.1.pointwise1's is 16x16x48). The forward peak of both
    # functions is that trained depthwise conv (its 16x16x48 input and output, 29 KB estimated),
    # which no patch can reach: patching the blocks before it would only add halo work, so the
    # pass leaves both functions whole.
    g = graph(3, 32)
    passes, *_ = int8._training_passes(g, ["blocks.1.depthwise.weight", "fc.weight", "fc.bias"], 0.01, True,
                                       False)
    from tinytrain.irfuncs import find_func, layer_name
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.patch_stage import _Liveness, choose_stages, stage_cuts, _accept

    run_pipeline(g.module, passes, stage="test")
    fn = find_func(g.module, "train_step")
    stage = find_stage(fn, factor=8)
    assert stage is not None and stage.cut_layer == "blocks.0.pointwise2", stage and stage.cut_layer
    assert "blocks.1.depthwise" not in [s.cut_layer for s in stage_cuts(fn, 4, _accept)]
    for name in ("train_step", "predict"):
        fn = find_func(g.module, name)
        live = _Liveness(fn, False, False)
        worst = max(range(live.end), key=lambda i: live.bytes[i])
        assert layer_name(live.ops[worst]) == "blocks.1.depthwise" and choose_stages(fn, 2, 4, 4) == [], name
    run_pipeline(g.module, [PatchStagePass(grid=2)], stage="test")
    assert "tinytrain.patch_stage" not in str(g.module)


def test_first_layer_trained_leaves_the_function_whole():
    g = graph(2, 32)
    passes, *_ = int8._training_passes(g, ["first_conv.bias", "fc.weight", "fc.bias"], 0.01, True, False)
    from tinytrain.irfuncs import find_func
    from tinytrain.pipeline import run_pipeline

    run_pipeline(g.module, passes, stage="test")
    assert find_stage(find_func(g.module, "train_step"), factor=8) is None


def test_bad_grid_is_a_clear_error():
    with pytest.raises(ValueError, match="patches must be >= 1"):
        int8.compile_predict(graph(2, 32), patches=0)
    from tinytrain.pipeline import run_pipeline

    with pytest.raises(CompileError, match="grid, factor and stages must be >= 1"):
        run_pipeline(graph(2, 32).module, [PatchStagePass(grid=2, factor=0)], stage="test")


def test_patched_training_on_cortex_m7_equals_the_whole_program(tmp_path):
    # 64x64 on the M7: the default is 2 x 2 patches (`int8.patch_grid`). Three steps: the device's
    # integer state equals its host program's and the unpatched program's exactly.
    trainable = ["blocks.3.pointwise2.weight", "blocks.3.pointwise2.bias", "fc.weight", "fc.bias"]
    hw, steps = 64, 3
    assert int8.patch_grid("cortex-m7", hw) == 2 and int8.patch_grid("host", hw) == 1
    prog = int8.compile_training(graph(4, hw), trainable, lr=0.05, target="cortex-m7", build_dir=tmp_path / "fw")
    assert "grid = 2" in stage_attr(prog)
    whole = int8.compile_training(graph(4, hw), trainable, lr=0.05)
    assert "tinytrain.patch_stage" not in whole.stages["linalg"]
    xs = images(steps, hw, seed=1)
    ys = np.random.default_rng(2).integers(0, CLASSES, steps).astype(np.int32)
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    p_host, p_whole = prog.initial_params(), whole.initial_params()
    for i in range(steps):
        r1 = prog.host.call("train_step", *p_host, xs[i:i + 1], ys[i:i + 1])
        r2 = whole.host.call("train_step", *p_whole, xs[i:i + 1], ys[i:i + 1])
        p_host, p_whole = [np.asarray(r) for r in r1[:-1]], [np.asarray(r) for r in r2[:-1]]
        assert float(r1[-1]) == float(r2[-1])
        dev, dev_loss = res.trace[i]
        assert loss_close(dev_loss, float(r1[-1]))
        for name, d, a, b in zip(prog.trainable, dev, p_host, p_whole):
            np.testing.assert_array_equal(a, b, err_msg=f"step {i} {name}: patched vs whole host program")
            assert_device_equals_host(d, a, err_msg=f"step {i} {name}: device vs host")
    # The patched plan is smaller than the whole-tensor plan of the same step.
    plan = int8.plan_sram(graph(4, hw), trainable, target="cortex-m7", patches=1)
    assert prog.planned_sram()["total"] < plan["total"], (prog.planned_sram()["total"], plan["total"])
    # The pass's estimate of @predict's peak (input streamed, padding fused, as on the M7) is what
    # the memory report finds live at the worst dispatch, but for scalars (at most 64 B).
    from tinytrain.irfuncs import find_func
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.patch_stage import _Liveness

    g = graph(4, hw)
    passes, *_ = int8._training_passes(g, trainable, 0.05, True, False,
                                       channel_groups=int8.channel_group_count("cortex-m7"))
    run_pipeline(g.module, passes, stage="test")
    fn = find_func(g.module, "predict")
    live = _Liveness(fn, True, True)
    best = min(_all_chains(fn, live, 2, 4, 4, streamed=True), key=lambda c: c[:4])
    assert best[4] and best[0] < live.suffix[0], best
    worst = max(r.live_bytes for r in prog.memory_report(function="predict").rows)
    assert best[0] <= worst <= best[0] + 64, (best[0], worst)


def _all_chains(fn, live, grid, factor, stages, start=None, at=-1, k=1, streamed=False, floor=0):
    """Every chain `choose_stages` may take (brute force): [(peak, extra MACs, stages, -end, chain)];
    `live`: the function's `_Liveness` (`streamed`: with the input streamed, fused padding);
    `floor`: peaks below it count as it, and the first stage takes any grid up to `grid`."""
    from torch_mlir import ir

    from tinytrain.transforms.patch_stage import _accept, _patched_cost, _shape, stage_cuts

    out = [(max(floor, live.suffix[at + 1]), 0, 0, -at, [])]
    if k > stages:
        return out
    for st in stage_cuts(fn, factor << (k - 1), _accept, start=start):
        first, last = live.span(st)
        for g in [grid] if k == 1 and not floor else range(2, grid + 1):
            if min(_shape(st.cut)[1:3]) < g:
                continue
            est, extra = _patched_cost(st, g, streamed and isinstance(st.input.owner, ir.Block), streamed)
            here = max(floor, live.between(at, first), live.patched(st, est))
            out += [(max(here, p), extra + m, n + 1, end, [(st, g)] + rest)
                    for p, m, n, end, rest in _all_chains(fn, live, grid, factor, stages, st.cut, last, k + 1,
                                                          streamed, floor)]
    return out


def test_stage_chain_has_the_smallest_estimated_forward_peak():
    # The pass's search (best completions per cut) against all chains: the same choice. More
    # stages lower the estimated forward peak of the 40x40 network (the peak moves from the
    # first stage's patches to blocks.3's 10x10x48 expansion, then into a third stage); the pass
    # reaches it with `stages` >= 2, and leaves it at one stage with `stages=1`.
    from tinytrain.irfuncs import find_func
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.patch_stage import _Liveness, choose_stages

    g = graph(4, 40)
    run_pipeline(g.module, [int8._ForwardAsPredict()], stage="test")
    fn = find_func(g.module, "predict")
    live = _Liveness(fn, False, False)
    peaks = []
    for stages in (1, 2, 3):
        chains = _all_chains(fn, live, 3, 4, stages)
        best = min(chains, key=lambda c: c[:4])
        got = [(s.cut_layer, gr) for s, gr in choose_stages(fn, 3, 4, stages)]
        mine = [c for c in chains if [(s.cut_layer, gr) for s, gr in c[4]] == got]
        assert len(mine) == 1 and mine[0][:3] == best[:3], (stages, got, best[:4])
        assert best[0] < live.suffix[0]  # patching pays
        peaks.append(best[0])
    assert peaks[0] > peaks[1] > peaks[2], peaks
    assert [s.cut_layer for s, _ in choose_stages(fn, 3, 4, 1)] == ["blocks.1.pointwise2"]


def test_floor_takes_the_cheapest_chain_below_it():
    # `floor` (the step's peak outside the patched stages, `int8.refine_patches`): estimated peaks
    # below it tie, so the chain with the fewest recomputed MACs below it wins, its first stage on
    # any grid up to `grid`; the search agrees with the brute force; no floor is the plain choice;
    # a floor above the unpatched function's peak leaves it unpatched.
    from tinytrain.irfuncs import find_func
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.patch_stage import _Liveness, choose_stages

    g = graph(4, 40)
    run_pipeline(g.module, [int8._ForwardAsPredict()], stage="test")
    fn = find_func(g.module, "predict")
    live = _Liveness(fn, False, False)
    plain = min(_all_chains(fn, live, 4, 4, 3), key=lambda c: c[:4])
    assert choose_stages(fn, 4, 4, 3, floor=0) == choose_stages(fn, 4, 4, 3)
    macs = []
    for floor in (plain[0] + 1, (plain[0] + live.suffix[0]) // 2, live.suffix[0]):
        best = min(_all_chains(fn, live, 4, 4, 3, floor=floor), key=lambda c: c[:4])
        peak, got = choose_stages(fn, 4, 4, 3, floor=floor, with_peak=True)
        assert (peak, [(s.cut_layer, gr) for s, gr in got]) == \
            (best[0], [(s.cut_layer, gr) for s, gr in best[4]]), floor
        assert best[0] == floor  # a chain below the floor exists (the plain one)
        macs.append(best[1])
    assert macs[0] <= plain[1] and macs[0] >= macs[1] >= macs[2] == 0, (plain[1], macs)
    assert macs[1] < plain[1], macs  # a higher floor buys fewer recomputed MACs
    assert choose_stages(fn, 4, 4, 3, floor=live.suffix[0]) == []


def test_layer_name_reads_named_locations():
    # the one helper the stage passes report layers with (patch-stage, batch-stage,
    # channel-groups): a NameLoc's name, also inside a call site or a fused location
    from torch_mlir import ir

    from tinytrain.irfuncs import layer_name

    class Op:
        def __init__(self, location):
            self.location = location

    with ir.Context():
        named = ir.Location.name("features.3 (InvertedResidual)", childLoc=ir.Location.file("m.py", 3, 4))
        assert layer_name(Op(named)) == "features.3 (InvertedResidual)"
        assert layer_name(Op(ir.Location.callsite(ir.Location.name("blocks.1"), [ir.Location.file("m", 1, 1)]))) \
            == "blocks.1"
        assert layer_name(Op(ir.Location.fused([ir.Location.file("m", 1, 1), ir.Location.name("fc")]))) == "fc"
        assert layer_name(Op(ir.Location.file("m.mlir", 1, 1))) == 'loc("m.mlir":1:1)'
