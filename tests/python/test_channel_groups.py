"""`channel-groups` (`transforms/channel_groups.py`): the backward pass of a depthwise layer run in
channel groups computes the gradients of the whole-tensor program (up to the order of the fp32
sums of the partial input gradients) and the step trains like it.

Backbone: the first 4 blocks of the pretrained MobileNetV2-w0.35 at 32x32 with a new 4-class fp32
head. Trained: the biases of blocks 1-3 (per-group `bias_grad`s, each group's update inserted
into the bias in place), block 2's
depthwise weight (per-group depthwise weight gradients), block 3's pointwise1 weight (per-group
weight gradients and updates, inserted into the parameter in place) and the head; the input gradients of blocks
1-3's pointwise1 are sums of per-group partial gradients. `min_bytes=0`: every region splits.
The grouped and the whole-tensor host programs of these parameters (with gradients) are compiled
once for the file (`grouped`, `whole`): the backward test compares them, the Cortex-M4 test
compares the device with `grouped`."""

import re

import numpy as np
import pytest
from torch_mlir import ir
from conftest import assert_device_equals_host, loss_close

from tinytrain import reference as R
from tinytrain.int8 import _compile, _training_passes
from tinytrain.lowering.cortexm import dispatch_memory
from tinytrain.pipeline import run_pipeline
from tinytrain.pretrained import load_mcu_model
from tinytrain.pretrained.graph import build_forward, truncate
from tinytrain.transforms.channel_groups import ChannelGroupsPass
from tinytrain.transforms.pin_masks import PinClampMasksPass

HW, BLOCKS, CLASSES, LR, STEPS = 32, 4, 4, 0.05, 3
TRAINABLE = ["blocks.1.pointwise1.bias", "blocks.1.depthwise.bias", "blocks.1.pointwise2.bias",
             "blocks.2.pointwise1.bias", "blocks.2.depthwise.weight", "blocks.2.depthwise.bias",
             "blocks.2.pointwise2.bias", "blocks.3.pointwise1.weight", "blocks.3.pointwise1.bias",
             "blocks.3.depthwise.bias", "blocks.3.pointwise2.bias", "fc.weight", "fc.bias"]


def program(model, groups: int, target: str = "host", build_dir=None, trainable=None, masks: bool = False):
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    trainable = list(g.param_names) if trainable == "all" else trainable or TRAINABLE
    passes, order, values, _, _ = _training_passes(g, trainable, LR, True, target == "host", clamp_masks=masks)
    if groups > 1:  # after reorder-updates, as compile_training places it
        at = next(i for i, p in enumerate(passes) if p.argument == "reorder-updates")
        # (3 KB groups: the group counts the tests name; the default is 2 KB)
        passes.insert(at + 1, ChannelGroupsPass(groups=groups, min_bytes=0, group_bytes=3072, bias_updates=True))
    if masks:
        passes.append(PinClampMasksPass())
    return _compile(g, passes, order, LR, ("--iree-opt-const-eval=false",), target, 256, build_dir, values)


def same_gradients(model, grouped, whole, *, seed: int, label: int, names=None):
    """The grouped and the whole-tensor program's gradients on one random image: the same loss,
    gradients equal to fp32 sum order (each nonzero when `names` are given); returns (x, y, params)."""
    rng = np.random.default_rng(seed)
    xs = R.preprocess(rng.integers(0, 256, (1, HW, HW, 3)).astype(np.uint8), model.first_conv.x_scale,
                      model.first_conv.x_zero)
    ys = np.array([label], np.int32)
    p = grouped.initial_params()
    (g_g, loss_g), (g_w, loss_w) = grouped.gradients(p, xs, ys), whole.gradients(p, xs, ys)
    assert loss_g == loss_w
    for name, a, b in zip(names or [""] * len(g_w), g_g, g_w):
        if names:
            assert np.count_nonzero(b), f"{name}: zero gradient, the check would be empty"
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6 * np.abs(b).max(), err_msg=f"gradient {name}")
    return xs, ys, p


def train_step(text: str) -> str:
    """The text of `@train_step` in a linalg module."""
    m = re.search(r"func\.func @train_step\(.*?\n  \}", text, re.S)
    assert m, "no @train_step"
    return m.group(0)


@pytest.fixture(scope="module")
def model():
    return truncate(load_mcu_model("mbv2-w0.35"), BLOCKS)


@pytest.fixture(scope="module")
def grouped(model):
    """The host program in 4 channel groups (it also returns every gradient)."""
    return program(model, 4)


@pytest.fixture(scope="module")
def whole(model):
    """The host program without channel groups (it also returns every gradient)."""
    return program(model, 1)


def test_grouped_backward_equals_the_whole_tensor_backward(model, grouped, whole):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (STEPS, HW, HW, 3)).astype(np.uint8)
    xs = R.preprocess(rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    ys = rng.integers(0, CLASSES, STEPS).astype(np.int32)
    text = grouped.stages["linalg"]
    assert text.count("util.optimization_barrier") >= 3 * 3  # blocks 1-3, 4 groups each, chained
    assert "tinytrain.channel_groups" not in whole.stages["linalg"]
    p = grouped.initial_params()
    g_g, loss_g = grouped.gradients(p, xs[:1], ys[:1])
    g_w, loss_w = whole.gradients(p, xs[:1], ys[:1])
    assert loss_g == loss_w  # the forward pass is untouched
    for name, a, b in zip(TRAINABLE, g_g, g_w):
        assert np.count_nonzero(b), f"{name}: zero gradient, the check would be empty"
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6 * np.abs(b).max(), err_msg=f"gradient of {name}")
    p_g, p_w = p, whole.initial_params()
    for i in range(STEPS):
        p_g, loss_g = grouped.step(p_g, xs[i:i + 1], ys[i:i + 1])
        p_w, loss_w = whole.step(p_w, xs[i:i + 1], ys[i:i + 1])
        assert abs(loss_g - loss_w) <= 1e-5 * abs(loss_w), i
        for name, a, b in zip(TRAINABLE, p_g, p_w):
            # integer write-back: a few ulp of gradient may move a rounding by one step
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            assert (diff <= (1 if a.dtype.kind == "i" else 1e-5 * max(1.0, np.abs(b).max()))).all(), (i, name)
            assert np.mean(diff > 0) < 0.02, (i, name)


def test_packed_masks_are_recomputed_per_group_on_any_channel_boundary(model, grouped, whole):
    # With packed clamp masks (the Cortex-M default) the 12-channel groups of the 48-channel
    # regions would cut the masks inside a byte: the groups recompute the masked activations from
    # the forward ops instead of slicing the masks, so the regions split exactly as without masks
    # (not in 16-channel groups), the masks they no longer read are gone (the remaining ones are
    # pinned: one barrier each), and the gradients are the whole-tensor program's.
    masked = program(model, 4, masks=True)
    ts, plain = train_step(masked.stages["linalg"]), train_step(grouped.stages["linalg"])
    regions = re.compile(r'\{channels = \d+ : i64, groups = \d+ : i64, layer = "[^"]+"\}')
    assert regions.findall(ts) == regions.findall(plain) and len(regions.findall(ts)) == 3, regions.findall(ts)
    assert 'groups = 4 : i64, layer = "blocks.3.pointwise2"' in ts
    assert ts.count("util.optimization_barrier") > plain.count("util.optimization_barrier")
    same_gradients(model, masked, whole, seed=7, label=1, names=TRAINABLE)


def grouped_ops(model, masks: bool = False) -> tuple:
    """(the graph, the ops of its `@train_step` in order) after `channel-groups` (4 groups, every
    region split): the passes up to `reorder-updates`, then the pass, as `compile_training` places
    it. (The graph owns the module: keep it while using the ops.)"""
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    passes, *_ = _training_passes(g, TRAINABLE, LR, True, True, clamp_masks=masks)
    at = next(i for i, p in enumerate(passes) if p.argument == "reorder-updates")
    run_pipeline(g.module, passes[:at + 1] + [ChannelGroupsPass(groups=4, min_bytes=0, group_bytes=3072)])
    fn = next(op for op in g.module.body.operations if op.sym_name.value == "train_step")
    return g, list(fn.regions[0].blocks[0].operations)


@pytest.mark.parametrize("masks", [False, True])
def test_the_last_blocks_output_gradient_is_remade_in_each_group(model, masks):
    # blocks.3's output feeds the head's average pool: its gradient (the pool's gradient through
    # the output's clamp: `qclamp_grad` with the int8 output, or `qmask_grad` with the packed
    # mask) is remade in each of the region's groups from the pooled gradient instead of living
    # through all of them, and the groups carry the small inputs (the whole-tensor gradients
    # equal the grouped ones: the tests above)
    g, ops = grouped_ops(model, masks)
    ops = [op.operation.name for op in ops]
    clamp = "tinytrain.qmask_grad" if masks else "tinytrain.qclamp_grad"
    pools = ops.count("tinytrain.global_avg_pool_grad")
    assert pools == 1 + 4, ops  # the original (its bias gradient reads it) and one per group
    first = ops.index("tinytrain.global_avg_pool_grad")
    assert ops[first + 1] == clamp and ops.count(clamp) >= pools


def test_recomputed_activations_wait_for_their_groups_input_gradient(model):
    # each group recomputes the int8 activations its clamp gradients and its depthwise weight
    # gradient read; the dense conv that starts a recomputation reads its input through a
    # barrier with the group's input gradient (the region's first `conv2d_grad_input`), so IREE
    # cannot run it before that gradient exists and the recomputed activations are not alive
    # beside it
    g, ops = grouped_ops(model)
    first_grad = next(i for i, op in enumerate(ops) if op.operation.name == "tinytrain.conv2d_grad_input")
    waiting = 0
    for op in ops[first_grad:]:
        if op.operation.name != "tinytrain.qconv2d" or ir.IntegerAttr(op.attributes["groups"]).value != 1:
            continue
        src = op.operands[0].owner
        assert not isinstance(src, ir.Block) and src.name == "util.optimization_barrier", src
        others = [v.owner.name for v in src.operands[1:] if not isinstance(v.owner, ir.Block)]
        assert any(n.startswith("tinytrain.conv2d_grad_input") for n in others), others
        waiting += 1
    assert waiting >= 3 * 4 + 4, waiting  # blocks 1-3's expansions in each of 4 groups, block 2's weight


def test_a_masked_region_without_depthwise_gradient_splits():
    # the lowest trained layer is a depthwise bias: blocks.3's region is its projection's input
    # gradient, the packed mask of the depthwise output and the bias gradient, with no gradient
    # below (no depthwise input gradient). With packed masks it splits (IREE would keep the input
    # gradient and its masked copy whole); its gradients are the whole-tensor program's
    model = truncate(load_mcu_model("mbv2-w0.35"), BLOCKS)
    trainable = ["blocks.3.depthwise.bias", "blocks.3.pointwise2.bias", "fc.weight", "fc.bias"]
    grouped = program(model, 4, trainable=trainable, masks=True)
    whole = program(model, 1, trainable=trainable, masks=True)
    ts = train_step(grouped.stages["linalg"])
    assert 'layer = "blocks.3.pointwise2"' in ts, re.findall(r"tinytrain.channel_groups = .*", ts)
    same_gradients(model, grouped, whole, seed=3, label=2, names=trainable)


def test_grouped_step_on_cortex_m4_equals_the_host(model, grouped, tmp_path):
    """The grouped program (recomputed int8 activations, per-group weight gradients, the guard
    ordering the recomputed convs' reads of trained biases before their updates) in QEMU: every
    step's int8/int32 state equals the grouped host program's exactly, float state and losses
    within 1e-6. The host reference is `grouped`, not a host compile of the device program: its
    `train_step` is the same function, text for text (the same parameters, groups and passes; it
    only has a `gradients` function more), so one host compile serves both tests."""
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, (2, HW, HW, 3)).astype(np.uint8)
    xs = R.preprocess(rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    ys = rng.integers(0, CLASSES, 2).astype(np.int32)
    prog = program(model, 4, "cortex-m4", tmp_path / "fw")
    assert "util.optimization_barrier" in prog.stages["linalg"]
    assert train_step(prog.stages["linalg"]) == train_step(grouped.stages["linalg"])  # the host reference's
    # blocks.3.pointwise1.weight is updated group by group in place (`tinytrain.insert` into the
    # parameter): no updated copy is written back into a parameter at the end of the step
    module = prog.firmware.module
    exports = dispatch_memory.read_sources(module.sources_dir)
    fn = module.schedule.function("train_step")
    writes = [(c.op, a.hi - a.lo) for c in fn.commands for a in dispatch_memory.command_accesses(c, exports)
              if "w" in a.mode and a.alloc.kind == "arg"]
    assert writes.count(("dispatch", 8 * 48)) >= 2, writes  # the groups' updates, into the 8x48 weight
    # so are the trained int32 biases of the grouped channels, each group's channels at once:
    # blocks 2 and 3's expansion and depthwise biases (48 channels in 4 groups of 12), block 1's
    # (its larger gradients: 12 groups of 4)
    assert writes.count(("dispatch", 12 * 4)) >= 2 * 2 * 4, writes
    assert writes.count(("dispatch", 4 * 4)) >= 2 * 12, writes
    assert not [w for w in writes if w[0] == "copy"], writes
    # the groups' partial input gradients are summed in the running sum's storage (a readwrite
    # binding of the arena, `conv2d_grad_input_acc`), not each into a new block-width tensor:
    # blocks 2 and 3 (4 groups: at least 3 each)
    in_place = [c for c in fn.commands if c.op == "dispatch" and "matmul_like" in str(c.export) and
                any(a.mode == "rw" and a.alloc.kind == "arena" for a in dispatch_memory.command_accesses(c, exports))]
    assert len(in_place) >= 6, len(in_place)
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    assert grouped.trainable == prog.trainable
    p = prog.initial_params()
    moved = set()
    for i, (dev, dev_loss) in enumerate(res.trace):
        p, loss = grouped.step(p, xs[i:i + 1], ys[i:i + 1])
        assert loss_close(dev_loss, loss), (i, dev_loss, loss)
        for name, d, h, p0 in zip(TRAINABLE, dev, p, prog.initial_params()):
            assert_device_equals_host(d, h, err_msg=f"step {i} {name}")
            if not np.array_equal(d, p0):
                moved.add(name)
    assert len(res.trace) == 2 and {"blocks.2.depthwise.weight", "blocks.3.pointwise1.weight"} <= moved, moved


def test_grouped_full_update_equals_the_whole_tensor_update():
    """Every parameter trained: the first conv's weight is updated per group (each piece inserted
    into the parameter) while the groups' recomputed first conv reads it; `tied.py` orders those
    reads before every piece's update. The first conv, block 0 (depthwise and projection: the
    region whose groups recompute the first conv's output channels) and the head are all this
    needs; a block's expansion weight updated per group (blocks.3.pointwise1) is covered by the
    tests above."""
    model = truncate(load_mcu_model("mbv2-w0.35"), 1)
    grouped, whole = program(model, 4, trainable="all"), program(model, 1, trainable="all")
    text = grouped.stages["linalg"]
    assert 'layer = "blocks.0.pointwise2"' in text
    # the first conv's 3x3x3x16 int8 weight, written group by group
    assert text.count("into tensor<3x3x3x16xi8>") >= 2, text.count("into tensor<3x3x3x16xi8>")
    xs, ys, p = same_gradients(model, grouped, whole, seed=1, label=1)
    p_g, _ = grouped.step(p, xs, ys)
    p_w, _ = whole.step(p, xs, ys)
    assert sum(int(np.sum(a != b)) for a, b in zip(p_g, p_w)) <= 0.01 * sum(a.size for a in p_g)
    assert any(not np.array_equal(a, b) for a, b in zip(p_g, p))


def _scheme_program(model, scheme, groups: int):
    """(the host program of `scheme`'s sparse update with `groups` channel groups and every
    gradient, its parameter order); the scheme must slice a weight (else `sparse-split`, the
    subject of these tests, has nothing to split)."""
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    passes, order, values, slices, _ = _training_passes(g, None, LR, True, True, scheme, channel_groups=1)
    assert slices, f"the scheme slices no weight: {scheme}"
    if groups > 1:
        at = next(i for i, p in enumerate(passes) if p.argument == "reorder-updates")
        passes.insert(at + 1, ChannelGroupsPass(groups=groups, min_bytes=0))
    return _compile(g, passes, order, LR, ("--iree-opt-const-eval=false",), "host", 256, None, values), order


def _tt_ops(model, scheme, groups: int) -> list[str]:
    """The op names of `@train_step` after the training passes (`groups` channel groups)."""
    g = build_forward(model, classifier="fp32", num_classes=CLASSES, input_hw=HW, seed=0)
    passes, *_ = _training_passes(g, None, LR, True, False, scheme, channel_groups=1)
    if groups > 1:
        at = next(i for i, p in enumerate(passes) if p.argument == "reorder-updates")
        passes.insert(at + 1, ChannelGroupsPass(groups=groups, min_bytes=0))
    run_pipeline(g.module, passes, stage="test")
    fn = next(op for op in g.module.body.operations if op.attributes["sym_name"].value == "train_step")
    return [op.operation.name for op in fn.regions[0].blocks[0].operations]


def test_split_expansion_sums_share_one_accumulator(model):
    """An expansion weight trained in part (`sparse-split`: two convs) has two input gradients,
    which the backward adds, and then adds to the skip path's gradient (blocks.2 is residual; a
    bias of blocks.1 is trained, so that gradient is needed).
    Grouped, both sums and the skip gradient are one running value: every group's partial
    gradients are `conv2d_grad_input_acc`s into it, both adds are gone, and the gradients equal
    the whole-tensor program's."""
    scheme = {"parameters": {"blocks.2.pointwise1.weight": "1/2", "blocks.2.pointwise1.bias": 1,
                             "blocks.2.depthwise.bias": 1, "blocks.2.pointwise2.bias": 1,
                             "blocks.1.pointwise2.bias": 1, "fc.weight": 1, "fc.bias": 1}}
    whole_ops, grouped_ops = _tt_ops(model, scheme, 1), _tt_ops(model, scheme, 4)
    assert "tinytrain.conv2d_grad_input_acc" not in whole_ops
    # blocks.2: 4 groups' partial gradients (2 groups per part), all into the skip gradient;
    # blocks.3 (not residual): the last 3 groups' into the first's
    assert grouped_ops.count("tinytrain.conv2d_grad_input_acc") >= 7, grouped_ops.count("tinytrain.conv2d_grad_input_acc")
    assert grouped_ops.count("tinytrain.add") <= whole_ops.count("tinytrain.add") - 2, \
        (grouped_ops.count("tinytrain.add"), whole_ops.count("tinytrain.add"))

    (grouped, names), (whole, _) = _scheme_program(model, scheme, 4), _scheme_program(model, scheme, 1)
    same_gradients(model, grouped, whole, seed=3, label=1, names=names)


def test_split_projection_sum_is_grouped(model):
    """A projection whose weight is trained in part (`sparse-split`: two convs, their partial input
    gradients summed by an `add`) seeds its depthwise region from that sum: the region is split
    (before, it was left whole: MobileNetV2-w0.35 `49kb`'s `blocks.13`, a whole 8x8x192 fp32
    gradient on the M7), each group summing both parts' rows, and the gradients equal the
    whole-tensor program's."""
    scheme = {"parameters": {"blocks.3.pointwise2.weight": "1/2", "blocks.3.depthwise.bias": 1,
                             "blocks.3.pointwise1.bias": 1, "blocks.2.pointwise2.bias": 1,
                             "fc.weight": 1, "fc.bias": 1}}

    (grouped, names), (whole, _) = _scheme_program(model, scheme, 4), _scheme_program(model, scheme, 1)
    text = grouped.stages["linalg"]
    split = re.findall(r'groups = (\d+) : i64, layer = "(blocks\.\d+\.pointwise2)"', text)
    assert any(layer == "blocks.3.pointwise2" and int(n) > 1 for n, layer in split), split
    same_gradients(model, grouped, whole, seed=7, label=2, names=names)


def test_region_below_a_split_projection_with_a_kept_activation_is_grouped(model):
    """The lowest trained block trains part of its projection's weight and its depthwise bias
    (MobileNetV2-w0.35 `73kb`'s blocks.10): the projection's weight gradient keeps the depthwise
    output, so its clamp gradient reads that int8 activation (`qclamp_grad`, no packed mask), and no
    gradient goes below the depthwise bias. The region (the sum of the two partial input gradients,
    the clamp gradient, the bias gradient) is split like a masked one (both 8x8x144 fp32 partial
    gradients were whole on the M7: arena 91,200 B), and the trained slice's update waits for each
    group's read of its rows through its own link of the guard chain, each behind a barrier (IREE
    fused the chain into one dispatch reading every group's partial gradient, keeping all alive).
    Gradients equal the whole-tensor program's."""
    scheme = {"parameters": {"blocks.3.pointwise2.weight": "1/4", "blocks.3.pointwise2.bias": 1,
                             "blocks.3.depthwise.bias": 1, "fc.weight": 1, "fc.bias": 1}}
    (grouped, names), (whole, _) = _scheme_program(model, scheme, 4), _scheme_program(model, scheme, 1)
    ts = train_step(grouped.stages["linalg"])
    split = re.findall(r'groups = (\d+) : i64, layer = "(blocks\.\d+\.pointwise2)"', ts)
    assert any(layer == "blocks.3.pointwise2" and int(n) > 1 for n, layer in split), split
    links = re.findall(r'"util\.optimization_barrier"\(%[^,)]+\) : \(tensor<f32>\)', ts)
    assert len(links) >= 4, len(links)
    same_gradients(model, grouped, whole, seed=5, label=3, names=names)
