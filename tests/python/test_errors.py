"""Bad input gets a clear error that names the op, the layer and the fix."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import tinytrain
from tinytrain.models import small_cnn


class JustLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 8, batch_first=True)

    def forward(self, x):
        return self.rnn(x.flatten(2))[0][:, -1]


class CustomGrouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, groups=2)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def test_configuration_error_names_the_source_line():
    with pytest.raises(tinytrain.UnsupportedModelError) as e:
        tinytrain.compile(CustomGrouped().eval(), torch.randn(1, 4, 8, 8))
    assert "layer: conv (Conv2d)" in str(e.value)
    assert f"source: {__file__}:" in str(e.value)


def test_unsupported_layer_names_op_layer_and_supported_set():
    with pytest.raises(tinytrain.UnsupportedModelError) as e:
        tinytrain.compile(JustLSTM().eval(), torch.randn(1, 3, 2, 2))
    msg = str(e.value)
    assert "unsupported operator 'aten." in msg  # the first ATen op of the LSTM layer
    assert "layer: rnn (LSTM)" in msg
    assert f"source: {__file__}:" in msg  # the line of this file that calls the layer
    assert "supported: Conv2d" in msg


def test_dynamic_shapes_are_rejected():
    model = small_cnn(in_channels=1).eval()
    x = torch.randn(2, 1, 16, 16)
    prog = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=2, max=8)},))
    with pytest.raises(tinytrain.UnsupportedModelError,
                       match=r"dynamic shapes are not supported: dimension 0 of 'input' is symbolic"):
        tinytrain.compile(prog, x)


def test_batchnorm_in_training_mode():
    model = small_cnn(in_channels=1)  # still in training mode
    with pytest.raises(tinytrain.UnsupportedModelError, match=r"training mode.*model\.eval\(\)"):
        tinytrain.compile(model, torch.randn(1, 1, 16, 16))


def test_grouped_conv_is_rejected_with_the_supported_cases():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(tinytrain.UnsupportedModelError, match=r"groups=2.*depthwise") as e:
        tinytrain.compile(model.eval(), torch.randn(1, 4, 8, 8))
    assert "0 (Conv2d)" in str(e.value)


def test_unknown_trainable_name_lists_the_parameters():
    with pytest.raises(tinytrain.CompileError, match=r"unknown trainable.*\['nope'\].*10\.weight"):
        tinytrain.compile(small_cnn(in_channels=1).eval(), torch.randn(1, 1, 16, 16), trainable=["nope"])


@pytest.fixture(scope="module")
def prog():
    torch.manual_seed(0)
    return tinytrain.compile(small_cnn(num_classes=4, in_channels=1).eval(), torch.randn(2, 1, 16, 16))


def test_label_outside_class_range_at_run_time(prog):
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"label 4 is outside the class range \[0, 4\)"):
        prog.train_step(x, torch.tensor([1, 4]))
    with pytest.raises(ValueError, match=r"label -1 is outside"):
        prog.train_step(x, np.array([-1, 0]))
    # the parameters are untouched by the refused step
    before = {k: v.clone() for k, v in prog.state_dict().items()}
    with pytest.raises(ValueError):
        prog.train_step(x, torch.tensor([0, 9]))
    assert all(torch.equal(before[k], v) for k, v in prog.state_dict().items())


def test_wrong_input_shape_at_run_time(prog):
    with pytest.raises(ValueError, match=r"input shape \(1, 1, 16, 16\) differs .* \(2, 1, 16, 16\)"):
        prog.predict(torch.randn(1, 1, 16, 16))


def test_bad_lr_and_target():
    with pytest.raises(ValueError, match="lr must be a positive"):
        tinytrain.compile(small_cnn(in_channels=1).eval(), torch.randn(1, 1, 16, 16), lr=0)
    with pytest.raises(ValueError, match="unknown target 'gpu'"):
        tinytrain.compile(small_cnn(in_channels=1).eval(), torch.randn(1, 1, 16, 16), target="gpu")


def test_state_dict_roundtrip_and_load_errors(prog):
    sd = prog.state_dict()
    prog.train_step(torch.randn(2, 1, 16, 16), torch.tensor([0, 1]))
    assert not all(torch.equal(sd[k], v) for k, v in prog.state_dict().items())
    prog.load_state_dict(sd)
    assert all(torch.equal(sd[k], v) for k, v in prog.state_dict().items())
    with pytest.raises(KeyError, match="'nope' is not a trainable parameter"):
        prog.load_state_dict({"nope": torch.zeros(1)})
    name = prog.trainable[0]
    with pytest.raises(ValueError, match=f"'{name}': shape"):
        prog.load_state_dict({name: torch.zeros(1, 2, 3)})
