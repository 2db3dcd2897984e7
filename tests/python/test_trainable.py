"""Choosing the trained parameters: the backward graph keeps only what the update needs."""

import pytest
import torch
from conftest import assert_grads_match, assert_sgd_tracks, randomize_bn

import tinytrain
from tinytrain.models import mobilenet_v2


@pytest.fixture(scope="module")
def partial():
    torch.manual_seed(0)
    model = randomize_bn(mobilenet_v2(width_mult=0.35, num_classes=10))
    x = torch.randn(1, 3, 32, 32)
    names = ["features.16.conv.2.0.weight", "features.17.conv.0.0.bias", "features.18.0.bias",
             "classifier.weight", "classifier.bias"]
    return model, x, names, tinytrain.compile(model, x, trainable=names, lr=0.1, gradients=True)


def test_only_named_parameters_are_trained(partial):
    model, x, names, prog = partial
    assert prog.trainable == names
    assert_grads_match(prog, model, x, torch.tensor([2]))
    g = torch.Generator().manual_seed(3)
    assert_sgd_tracks(prog, model, [torch.randn(1, 3, 32, 32, generator=g) for _ in range(3)],
                      [torch.tensor([i]) for i in range(3)], lr=0.1)


def test_backward_stops_at_the_earliest_trained_layer(partial):
    _, _, _, prog = partial
    ir = prog.stages["autodiff"]
    train = ir[ir.index("@train_step"):ir.index("@predict")]
    # Only layer 16's projection weight gets a weight gradient; nothing flows into layer 16's
    # input: no input-gradient op exists for its conv, and none for any earlier layer.
    assert train.count("tinytrain.conv2d_grad_weight") == 1
    assert train.count("tinytrain.sgd_update") == len(prog.trainable)
    # Input gradients flow through features.18 and the three convs of block 17 only: block 16's
    # projection needs dY for its weight gradient but no dX, and nothing earlier is touched.
    assert train.count("tinytrain.conv2d_grad_input") == 4
    assert train.count("tinytrain.bias_grad") == 3
    assert train.count("tinytrain.relu6_grad") == 3  # 18, 17.conv.1, 17.conv.0 (17.conv.2 has none)
    # frozen parameters are constants in the lowered program, trained ones arguments
    linalg = prog.stages["linalg"]
    assert "dense_resource<param_features_0_0_weight>" in linalg
    assert "dense_resource<param_classifier_weight>" not in linalg
