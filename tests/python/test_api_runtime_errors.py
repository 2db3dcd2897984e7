"""Run-time refusals of the host API leave the program untouched; outputs hold one model only."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import tinytrain
from tinytrain.models import small_cnn


@pytest.fixture(scope="module")
def prog():
    torch.manual_seed(0)
    return tinytrain.compile(small_cnn(num_classes=4, in_channels=1, width=4).eval(),
                             torch.randn(2, 1, 8, 8), lr=0.1)


def _snapshot(prog):
    return {k: v.clone() for k, v in prog.state_dict().items()}


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_compile_runs_the_model_without_changing_it():
    """The logits-output check runs the model once, in eval mode and without gradients."""
    m = small_cnn(num_classes=3, in_channels=1, width=4).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    tinytrain.compile(m, torch.randn(1, 1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize("images, exc, match", [
    (np.zeros((2, 1, 8, 8), np.uint8), TypeError, r"input must be floating-point values, got uint8"),
    (torch.zeros(2, 1, 8, 8, dtype=torch.int64), TypeError, r"floating-point values, got int64"),
    (torch.zeros(2, 8, 8, 1), ValueError, r"input shape \(2, 8, 8, 1\) differs .* \(2, 1, 8, 8\)"),
])
def test_bad_images_are_refused_and_train_nothing(prog, images, exc, match):
    before = _snapshot(prog)
    with pytest.raises(exc, match=match):
        prog.train_step(images, torch.tensor([0, 1]))
    assert _same(before, prog.state_dict())


@pytest.mark.parametrize("labels, match", [
    (torch.tensor([0.0, 1.0]), r"2 integer class indices .*float32"),
    (torch.tensor([1]), r"2 integer class indices .*\(1,\)"),
    (torch.tensor([True, False]), r"integer class indices .*bool"),
    (np.eye(4, dtype=np.int64)[:2], r"one-hot .*argmax"),
    (torch.tensor([0, 4]), r"label 4 is outside the class range \[0, 4\)"),
])
def test_bad_labels_are_refused_and_train_nothing(prog, labels, match):
    before = _snapshot(prog)
    with pytest.raises(ValueError, match=match):
        prog.train_step(torch.randn(2, 1, 8, 8), labels)
    assert _same(before, prog.state_dict())


def test_load_state_dict_is_atomic(prog):
    before = _snapshot(prog)
    first, second = prog.trainable[0], prog.trainable[1]
    changed = before[first] + 1.0
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([1, 2])
    loss_before = prog.predict(x)
    # an unknown key after a valid one: nothing is loaded
    with pytest.raises(KeyError, match="'1.weight' is not a trainable parameter"):
        prog.load_state_dict({first: changed, "1.weight": torch.zeros(4)})
    assert _same(before, prog.state_dict())
    # a wrong shape after a valid one: nothing is loaded
    with pytest.raises(ValueError, match=f"'{second}': shape"):
        prog.load_state_dict({first: changed, second: torch.zeros(1, 2, 3)})
    assert _same(before, prog.state_dict())
    # a model's own (unfolded) state_dict is refused as a whole
    with pytest.raises(KeyError):
        prog.load_state_dict(small_cnn(num_classes=4, in_channels=1, width=4).state_dict())
    assert _same(before, prog.state_dict())
    np.testing.assert_array_equal(prog.predict(x), loss_before)
    with pytest.raises(TypeError, match="dict of name -> tensor"):
        prog.load_state_dict([first, changed])
    # and a valid one is loaded, and used by the next step
    prog.load_state_dict({first: changed})
    assert torch.equal(prog.state_dict()[first], changed)
    prog.load_state_dict(before)
    prog.train_step(x, y)
    prog.load_state_dict(before)


def test_save_leaves_no_stale_files_of_a_previous_model(prog, tmp_path):
    out = tmp_path / "out"
    prog.save(out)
    assert len(list((out / "params").iterdir())) == len(prog.trainable) == 8
    torch.manual_seed(0)
    head = tinytrain.compile(small_cnn(num_classes=4, in_channels=1, width=4).eval(),
                             torch.randn(2, 1, 8, 8), trainable=["10.weight", "10.bias"])
    head.save(out)
    assert sorted(f.name for f in (out / "params").iterdir()) == ["000_10.weight.npy", "001_10.bias.npy"]
    flags = (out / "train_step.flags").read_text()
    assert flags.count("--input=@params/") == 2
    for i, k in enumerate(head.trainable):
        np.testing.assert_array_equal(np.load(out / "params" / f"{i:03d}_{k}.npy"), head.program_params()[i])
