"""`batch-stage` (`tinytrain.transforms.batch_stage`, run by host compiles): the frozen first stage
of a batched float network computed image by image trains like torch.autograd and like the program
without the split, and is only applied where it is valid (a frozen stage, batch > 1).

The lit test `tests/lit/transforms/batch-stage.mlir` checks the IR (slices, the barrier chain, the
cut); this file checks the numbers on MobileNetV2-w0.35 with its last block trained (the
benchmark's `last` cases) at batch 3 (uneven chunks of 2 and 1 images). The split program (the
host's default, with gradients) is compiled once for the file (`split`); the tests that train it
start from its initial parameters.
"""

import re

import numpy as np
import pytest
import torch
from conftest import assert_grads_match, assert_sgd_tracks, assert_step_is_sgd_of_gradients, randomize_bn

import tinytrain
import tinytrain.compiler as compiler
from tinytrain.lowering.host import iree_host
from tinytrain.errors import CompileError
from tinytrain.models import mobilenet_v2
from tinytrain.transforms.batch_stage import BatchStagePass

LAST = ["features.17.conv.0.0.weight", "features.17.conv.0.0.bias", "features.17.conv.1.0.weight",
        "features.17.conv.1.0.bias", "features.17.conv.2.0.weight", "features.17.conv.2.0.bias",
        "features.18.0.weight", "features.18.0.bias", "classifier.weight", "classifier.bias"]


def stage_attr(prog, fn="train_step") -> str:
    """The `tinytrain.batch_stage` attribute of `fn` in a program's linalg stage (or that text)."""
    text = prog if isinstance(prog, str) else prog.stages["linalg"]
    m = re.search(r"func\.func @" + fn + r"\(.*", text)
    head = m.group(0) if m else ""
    a = re.search(r"tinytrain\.batch_stage = \{[^}]*\}", head)
    return a.group(0) if a else ""


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize_bn(mobilenet_v2(width_mult=0.35, num_classes=10))


def compile_with(monkeypatch, model, x, stage, **kw):
    monkeypatch.setitem(compiler.BATCH_STAGE_BY_TARGET, "host", stage)
    return tinytrain.compile(model, x, lr=0.05, **kw)


@pytest.fixture(scope="module")
def split_program(model):
    """LAST trained at batch 3 with the host's default split (`BatchStagePass(chunk=2, factor=4)`:
    the first test checks its attribute), with gradients."""
    return tinytrain.compile(model, torch.zeros(3, 3, 64, 64), trainable=LAST, lr=0.05, gradients=True)


@pytest.fixture
def split(split_program):
    """`split_program` at its initial parameters (a test's steps do not leak into the next)."""
    initial = split_program.state_dict()
    yield split_program
    split_program.load_state_dict(initial)


def test_last_block_batch3_gradients_match_torch_and_the_unsplit_program(model, split, monkeypatch):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 3, 64, 64, generator=g)
    y = torch.tensor([1, 7, 4])
    assert compiler.BATCH_STAGE_BY_TARGET["host"] == BatchStagePass(chunk=2, factor=4)
    whole = compile_with(monkeypatch, model, x, None, trainable=LAST, gradients=True)
    attr = stage_attr(split)
    # the stage runs down to 16x16 (64 / 4): features.3's output, the smallest block boundary there
    assert "chunk = 2" in attr and "array<i64: 3, 16, 16, 8>" in attr and 'cut = "features.3' in attr, attr
    assert stage_attr(split, "predict") and not stage_attr(whole)
    text = split.stages["linalg"]
    assert text.count("util.optimization_barrier") >= 2  # predict's and train_step's chunk chains
    grads = assert_grads_match(split, model, x, y)
    ref, loss_ref = whole.gradients(x, y)
    for k in LAST:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-5, atol=1e-6 * np.abs(ref[k]).max(), err_msg=k)
    out, out_ref = split.predict(x), whole.predict(x)
    np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
    assert abs(out - model(x).detach().numpy()).max() <= 1e-4 * max(1.0, abs(out_ref).max())
    assert_step_is_sgd_of_gradients(split, x, y)


def test_last_block_sgd_steps_track_torch_with_the_host_default(model, split):
    # three steps of the host's default split at batch 3 (uneven chunks of 2 and 1 images; an
    # even batch's chunks are all built like the first one here)
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(3, 3, 64, 64, generator=g) for _ in range(3)]
    ys = [torch.randint(0, 10, (3,), generator=g) for _ in range(3)]
    assert "chunk = 2" in stage_attr(split) and "array<i64: 3, 16, 16, 8>" in stage_attr(split)
    assert_sgd_tracks(split, model, xs, ys, lr=0.05)


def linalg_only(monkeypatch, build) -> str:
    """The linalg stage of the program `build()` compiles, stopped before iree-compile: these
    checks read the IR only."""
    class Stop(Exception):
        pass

    seen = {}

    def stop(text, **_):
        seen["linalg"] = text
        raise Stop

    with monkeypatch.context() as m:
        m.setattr(iree_host, "compile_host", stop)
        with pytest.raises(Stop):
            build()
    return seen["linalg"]


def test_not_applied_where_invalid(model, monkeypatch):
    x = torch.randn(3, 3, 64, 64)
    # the first conv's weight trained too (as with every layer trained, the default): no frozen
    # stage (without it, this batch is split: the tests above)
    first = linalg_only(monkeypatch, lambda: tinytrain.compile(model, x, trainable=["features.0.0.weight", *LAST],
                                                              lr=0.05))
    assert not stage_attr(first) and "util.optimization_barrier" not in first
    # a batch no larger than the chunk: nothing to split. Batch 2 in chunks of 2 is the boundary
    # (the pass does split a batch of 3 in chunks of 2: the tests above); batch 1 takes the same
    # branch (`n <= chunk`)
    two = linalg_only(monkeypatch, lambda: compile_with(monkeypatch, model, x[:2], BatchStagePass(chunk=2),
                                                        trainable=LAST))
    assert not stage_attr(two)


def test_bad_options_raise():
    with pytest.raises(CompileError, match="batch-stage: chunk must be >= 0"):
        BatchStagePass(chunk=-1).run(None)
