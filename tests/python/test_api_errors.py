"""The error story of the Python API: every user-caused problem is a CompileError (or subclass)
or a ValueError/TypeError for a bad argument, raised before any work is done, with a message
saying what to change; run-time refusals leave the program's state untouched."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import tinytrain
from tinytrain.models import small_cnn


def tiny(classes=4):
    return nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, classes)).eval()


X = torch.randn(2, 1, 8, 8)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = tiny()

    def forward(self, x):
        y = self.body(x)
        return y, y


class SpatialOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, 1, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.fixture(autouse=True)
def no_import(monkeypatch):
    """Argument errors must be raised before the model is imported."""
    import tinytrain.compiler as c

    def refuse(*a, **k):
        raise AssertionError("import_model ran although the arguments are invalid")

    monkeypatch.setattr(c, "import_model", refuse)


def test_empty_trainable_is_refused():
    with pytest.raises(ValueError, match=r"trainable=\[\] trains nothing.*trainable='all'"):
        tinytrain.compile(tiny(), X, trainable=[])


@pytest.mark.parametrize("bad, exc, match", [
    ("4.weight", ValueError, r"trainable must be 'all' or a list.*trainable=\['4.weight'\]"),
    ([4], TypeError, r"trainable names must be strings, got 4"),
    (5, TypeError, r"trainable must be 'all' or a list of parameter names, got int"),
    (["4.weight", "4.weight"], ValueError, r"\['4.weight'\] are given more than once"),
])
def test_bad_trainable_argument(bad, exc, match):
    with pytest.raises(exc, match=match):
        tinytrain.compile(tiny(), X, trainable=bad)


def test_model_returning_a_tuple_is_refused():
    with pytest.raises(tinytrain.UnsupportedModelError,
                       match=r"returns a tuple of 2 elements.*one logits tensor \[N, classes\]"):
        tinytrain.compile(TwoHeads().eval(), X)


def test_model_returning_a_feature_map_is_refused():
    with pytest.raises(tinytrain.CompileError, match=r"shape \[2, 4, 8, 8\].*\[N, classes\].*Flatten"):
        tinytrain.compile(SpatialOut().eval(), X)


def test_exported_program_returning_a_tuple_is_refused():
    ep = torch.export.export(TwoHeads().eval(), (X,))
    with pytest.raises(tinytrain.UnsupportedModelError, match=r"returns a tuple of 2"):
        tinytrain.compile(ep, X)


@pytest.mark.parametrize("x, exc, match", [
    (torch.randn(2, 3, 8, 8), ValueError, r"cannot run on an example input of shape \[2, 3, 8, 8\].*channels"),
    (torch.randn(2, 1, 8), ValueError, r"\[N, C, H, W\].*got shape \[2, 1, 8\]"),
    (torch.randn(0, 1, 8, 8), ValueError, r"every dimension > 0, got shape \[0, 1, 8, 8\]"),
    (torch.randn(2, 1, 8, 8, dtype=torch.float64), TypeError, r"float32, got torch.float64.*\.float\(\)"),
    (np.zeros((2, 1, 8, 8), np.float32), TypeError, r"torch.Tensor.*got ndarray"),
])
def test_bad_example_input(x, exc, match):
    with pytest.raises(exc, match=match):
        tinytrain.compile(tiny(), x)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), True, "0.1", None])
def test_bad_lr(lr):
    with pytest.raises(ValueError, match="lr must be a positive number"):
        tinytrain.compile(tiny(), X, lr=lr)


@pytest.mark.parametrize("sram_kb", [0, -1, 1.5, True])
def test_bad_sram_budget(sram_kb):
    with pytest.raises(ValueError, match="sram_kb must be a positive"):
        tinytrain.compile(tiny(), X[:1], sram_kb=sram_kb, target="cortex-m4")


def test_model_that_is_not_a_module():
    with pytest.raises(TypeError, match=r"torch.nn.Module.*got function"):
        tinytrain.compile(lambda x: x, X)
