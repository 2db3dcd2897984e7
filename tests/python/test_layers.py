"""Gradients and SGD steps of the layers of real mobile CNNs (issue #7) against PyTorch: one
small model per case of `tinytrain.tools.support_table.LAYER_CASES` (the README table), compiled
with `gradients=True`; every trainable tensor's gradient vs torch.autograd on the BN-folded model
(1e-4 relative), then 3 SGD steps vs torch.optim.SGD. Also the clear refusals of what stays
unsupported."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import assert_grads_match, assert_sgd_tracks, fold_bn_graph, randomize_bn

import tinytrain
from tinytrain.errors import UnsupportedModelError
from tinytrain.models import FunctionModule as Fn
from tinytrain.models import classifier_head
from tinytrain.tools.support_table import LAYER_CASES


def head(c, classes=4):
    return classifier_head(c, classes)


def _squeeze_excite(m, x):
    x = torch.relu(m.conv(x))
    s = torch.sigmoid(m.fc(x.mean((2, 3), keepdim=True)))
    y = s * x                                   # the [N, C, 1, 1] operand first
    t = F.hardswish(m.conv2(y))
    s2 = F.hardsigmoid(m.fc2(F.adaptive_avg_pool2d(t, 1)))
    t = t * s2                                  # the full-shape operand first
    t *= t                                      # in-place, equal shapes
    return m.lin(t.mean((2, 3)))


def _concat(m, x):
    x = torch.relu(m.squeeze(x))
    return m.lin(torch.cat([torch.relu(m.e1(x)), torch.relu(m.e3(x)), x], 1).mean((2, 3)))


def _bn_unfolded(m, x):
    h = m.bn0(x)                                # BN on the input (no conv before it)
    a = m.conv(h)
    h = m.bn1(a) + a                            # the conv has another user: not folded
    h = m.bn2(torch.relu(h))                    # after an activation
    f = m.bn3(m.lin1(h.mean((2, 3))))           # BatchNorm1d after Linear
    return m.lin2(torch.relu(f))


#: case -> (model builder, input H = W). Keys equal LAYER_CASES' (checked below).
BUILDERS = {
    "conv_same_k3": (lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding="same"), nn.ReLU(), *head(6)), 7),
    "conv_same_k4": (lambda: nn.Sequential(nn.Conv2d(3, 6, 4, padding="same"), nn.BatchNorm2d(6), nn.ReLU(),
                                           nn.Conv2d(6, 6, (2, 5), padding="same", groups=6), *head(6)), 7),
    "conv_large_padding": (lambda: nn.Sequential(nn.Conv2d(3, 6, 1, padding=1), nn.ReLU(),
                                                 nn.Conv2d(6, 4, 3, 2, padding=(3, 2)),
                                                 nn.Flatten(), nn.Linear(4 * 6 * 5, 4)), 6),
    "zero_pad": (lambda: Fn(lambda m, x: m.lin(torch.relu(m.conv(m.pad(F.pad(x, (1, 0, 2, 1)))))
                                              .flatten(1)),
                            pad=nn.ZeroPad2d((0, 1, 0, 1)), conv=nn.Conv2d(3, 4, 3, 2),
                            lin=nn.Linear(4 * 5 * 4, 4)), 7),
    "max_pool": (lambda: nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1), *head(6)), 10),
    "max_pool_ceil": (lambda: nn.Sequential(nn.Conv2d(3, 6, 1), nn.MaxPool2d(3, 2, ceil_mode=True),
                                            nn.Conv2d(6, 6, 1),
                                            # 5x5 -> 3x3: PyTorch drops the window that would
                                            # start in the bottom padding
                                            nn.MaxPool2d(2, 2, padding=1, ceil_mode=True),
                                            nn.Flatten(), nn.Linear(6 * 3 * 3, 4)), 10),
    "avg_pool": (lambda: nn.Sequential(nn.Conv2d(3, 6, 1), nn.AvgPool2d(2),
                                       nn.AvgPool2d(3, 2, padding=1),
                                       nn.Conv2d(6, 6, 1), nn.AvgPool2d(3, 1, padding=1, count_include_pad=False),
                                       nn.AvgPool2d(2, ceil_mode=True),  # 2x2: ceil changes nothing
                                       nn.Flatten(), nn.Linear(6 * 2 * 2, 4)), 15),
    "hardswish_hardsigmoid": (lambda: nn.Sequential(nn.Conv2d(3, 6, 3, 1, 1), nn.Hardswish(inplace=True),
                                                    nn.Conv2d(6, 6, 1), nn.Hardsigmoid(),
                                                    nn.Conv2d(6, 6, 1), nn.Hardswish(),
                                                    nn.Conv2d(6, 6, 1), nn.Hardsigmoid(inplace=True), *head(6)), 6),
    "sigmoid_leaky_relu": (lambda: nn.Sequential(nn.Conv2d(3, 6, 3, 1, 1), nn.LeakyReLU(0.1),
                                                 nn.Conv2d(6, 6, 1), nn.Sigmoid(),
                                                 nn.Conv2d(6, 6, 1), nn.LeakyReLU(0.2, inplace=True),
                                                 *head(6)), 6),
    "squeeze_excite": (lambda: Fn(_squeeze_excite, conv=nn.Conv2d(3, 6, 3, 1, 1), fc=nn.Conv2d(6, 6, 1),
                                  conv2=nn.Conv2d(6, 6, 1), fc2=nn.Conv2d(6, 6, 1), lin=nn.Linear(6, 4)), 6),
    "concat": (lambda: Fn(_concat, squeeze=nn.Conv2d(3, 4, 1), e1=nn.Conv2d(4, 5, 1),
                          e3=nn.Conv2d(4, 3, 3, padding=1), lin=nn.Linear(12, 4)), 6),
    "batch_norm_unfolded": (lambda: Fn(_bn_unfolded, bn0=nn.BatchNorm2d(3), conv=nn.Conv2d(3, 6, 3, 1, 1),
                                       bn1=nn.BatchNorm2d(6), bn2=nn.BatchNorm2d(6), lin1=nn.Linear(6, 5),
                                       bn3=nn.BatchNorm1d(5), lin2=nn.Linear(5, 4)), 6),
}


def test_cases_are_the_declared_ones():
    assert set(BUILDERS) == {c.key for c in LAYER_CASES}


@pytest.mark.parametrize("key", [c.key for c in LAYER_CASES])
def test_layer_gradients_and_sgd(key):
    torch.manual_seed(0)
    build, hw = BUILDERS[key]
    model = randomize_bn(build())
    x = torch.randn(2, 3, hw, hw)
    y = torch.tensor([1, 2])
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    grads = assert_grads_match(prog, model, x, y, fold=fold_bn_graph)
    assert len(grads) == len(list(fold_bn_graph(model).parameters()))  # every tensor is trained
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, 3, hw, hw, generator=g) for _ in range(3)]
    ys = [torch.randint(0, 4, (2,), generator=g) for _ in range(3)]
    assert_sgd_tracks(prog, model, xs, ys, lr=0.1, fold=fold_bn_graph)


#: What stays unsupported: (model, input H = W, words the error must contain).
REFUSED = {
    "avg_pool_ceil_partial": (nn.Sequential(nn.AvgPool2d(2, ceil_mode=True), *head(3)), 5,
                              ["ceil_mode", "layer: 0 (AvgPool2d)"]),
    "reflect_pad": (Fn(lambda m, x: m.lin(F.pad(x, (1, 1, 1, 1), mode="reflect").mean((2, 3))),
                       lin=nn.Linear(3, 4)), 5, ["zero padding", "mode='reflect'"]),
    "pad_value": (Fn(lambda m, x: m.lin(F.pad(x, (1, 1), value=1.0).mean((2, 3))), lin=nn.Linear(3, 4)), 5,
                  ["zero padding", "value=1.0"]),
    "mul_scalar": (Fn(lambda m, x: m.lin((x * 2.0).mean((2, 3))), lin=nn.Linear(3, 4)), 5,
                   ["aten.mul.Scalar", "layer: <root> (FunctionModule)"]),
    "dilation": (nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2), *head(4)), 7, ["dilation=[2, 2]", "use dilation=1"]),
    "max_pool_dilation": (nn.Sequential(nn.MaxPool2d(2, dilation=2), *head(3)), 7, ["dilation", "MaxPool2d"]),
    "avg_pool_divisor": (nn.Sequential(nn.AvgPool2d(2, divisor_override=3), *head(3)), 6, ["divisor_override"]),
}


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_unsupported_says_what_to_change(key):
    model, hw, words = REFUSED[key]
    with pytest.raises(UnsupportedModelError) as e:
        tinytrain.compile(model.eval(), torch.randn(1, 3, hw, hw))
    for w in words:
        assert w in str(e.value), (w, str(e.value))
