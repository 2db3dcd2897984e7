"""Architecture code as users write it (issue #7): in-place activations, dropout and `+=`, and a
mean over H then W. Compiled gradients and SGD steps against PyTorch autograd on the same model
(the importer converts the in-place ops to their out-of-place form; these tests check that the
values are still PyTorch's)."""

import pytest
import torch
import torch.nn as nn
from conftest import assert_grads_match, assert_sgd_tracks, randomize_bn

import tinytrain


class BasicBlock(nn.Module):
    """A ResNet-style block as torchvision writes it: `out += identity`, `ReLU(inplace=True)`."""

    def __init__(self, c=4, classes=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        identity = self.stem(x)
        out = self.body(identity)
        out += identity
        out = self.relu(out)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))


class MeanChain(nn.Module):
    """Global pooling written as two means, as in the MCUNet / ProxylessNAS code."""

    def __init__(self, first, second, keepdim=False, c=5, classes=3):
        super().__init__()
        self.first, self.second, self.keepdim = first, second, keepdim
        self.conv = nn.Conv2d(3, c, 3, 2, 1)
        self.act = nn.ReLU6(inplace=True)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        h = self.act(self.conv(x))
        h = h.mean(self.first, keepdim=self.keepdim).mean(self.second, keepdim=self.keepdim)
        return self.fc(h.flatten(1))


def head(*layers, c=6, classes=3):
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


CASES = {
    "relu_inplace": (head(nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU(inplace=True)), 6),
    "relu6_inplace_after_bn": (head(nn.Conv2d(3, 6, 3, 2, 1, bias=False), nn.BatchNorm2d(6),
                                    nn.ReLU6(inplace=True)), 7),
    "dropout_inplace": (nn.Sequential(nn.Conv2d(3, 6, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Dropout(0.3, inplace=True), nn.Linear(6, 3)), 5),
    "add_inplace_basic_block": (BasicBlock(), 6),
    "mean_w_then_h": (MeanChain(3, 2), 8),
    "mean_h_then_w_keepdim": (MeanChain(2, 3, keepdim=True), 8),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_in_place_and_mean_chain_gradients_and_sgd(name):
    torch.manual_seed(0)
    model, hw = CASES[name]
    model = randomize_bn(model)
    x = torch.randn(2, 3, hw, hw)
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    assert_grads_match(prog, model, x, torch.tensor([1, 2]))
    xs = [torch.randn(2, 3, hw, hw) for _ in range(3)]
    ys = [torch.randint(0, 3, (2,)) for _ in range(3)]
    assert_sgd_tracks(prog, model, xs, ys, lr=0.1)
