"""Compiled gradients and SGD steps against PyTorch autograd, per op family and end to end.

End to end: the project's own `tinytrain.models.MobileNetV2` (width 0.35) shortened to its stem,
three inverted residual blocks and its last 1x1 conv and classifier, at 64x64: every op kind of
the whole network (stem conv 3x3 stride 2; an expand-1 block, depthwise stride 1, no expansion;
a stride-2 expanding block; a block with the residual add; the 1x1 conv to 1280 channels,
global pool, linear; all convs BN-folded, ReLU6) with every tensor trained. The whole
MobileNetV2-w0.35 (torchvision's, the same layout) is `test_zoo.py::mobilenet_v2_w035`: every
gradient vs autograd, `predict` vs eager, a step equal to SGD of the gradients, 3 SGD steps."""

import re

import pytest
import torch
import torch.nn as nn
from conftest import assert_grads_match, assert_sgd_tracks, assert_step_is_sgd_of_gradients, randomize_bn

import tinytrain
from tinytrain.models import InvertedResidual, MobileNetV2


class Flat(nn.Module):
    """Flatten of a spatial map (exercises the NHWC -> NCHW order fix-up) into a Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 2, 1)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 1)
        self.b = nn.Conv2d(6, 6, 3, 1, 1, groups=6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = h + nn.functional.relu6(self.b(h))
        return self.fc(torch.mean(h, dim=(2, 3)))


def head(*layers, c=6, classes=4):
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


OP_FAMILIES = {
    "conv3x3_s1_p1": (head(nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU()), 8),
    "conv3x3_s2_p1": (head(nn.Conv2d(3, 6, 3, 2, 1), nn.ReLU()), 9),
    "conv5x5_s2_p0_nobias": (head(nn.Conv2d(3, 6, 5, 2, 0, bias=False), nn.ReLU6()), 11),
    "pointwise": (head(nn.Conv2d(3, 6, 1), nn.ReLU6()), 6),
    "depthwise_s1": (head(nn.Conv2d(3, 6, 1), nn.ReLU(), nn.Conv2d(6, 6, 3, 1, 1, groups=6), nn.ReLU6()), 8),
    "depthwise_s2": (head(nn.Conv2d(3, 6, 1), nn.ReLU(), nn.Conv2d(6, 6, 3, 2, 1, groups=6), nn.ReLU6()), 9),
    "conv_bn_folded": (head(nn.Conv2d(3, 6, 3, 2, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU6()), 8),
    "linear_only": (nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 7), nn.ReLU(), nn.Linear(7, 3)), 4),
    "flatten_spatial": (Flat(), 8),
    "residual_add_mean": (Residual(), 6),
}


@pytest.mark.parametrize("name", sorted(OP_FAMILIES))
def test_op_family_gradients_and_sgd(name):
    torch.manual_seed(0)
    model, hw = OP_FAMILIES[name]
    model = randomize_bn(model)
    x = torch.randn(2, 3, hw, hw)
    y = torch.tensor([1, 2])
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    assert_grads_match(prog, model, x, y)
    xs = [torch.randn(2, 3, hw, hw) for _ in range(5)]
    ys = [torch.randint(0, 3, (2,)) for _ in range(5)]
    assert_sgd_tracks(prog, model, xs, ys, lr=0.1)


def test_pointwise_conv_over_padded_rows():
    """A 1x1 conv whose rows M = N*H*W have no divisor from 4 to 8 (2*11*11 = 242) is lowered
    for the host as a matmul over rows zero-padded to 248 (`conv.ROW_MULTIPLE`, IREE's vector
    tile): the padded rows must not leak into the output, the gradients or the update."""
    torch.manual_seed(0)
    model = head(nn.Conv2d(3, 6, 1), nn.ReLU6(), nn.Conv2d(6, 6, 1), nn.ReLU())
    x, y = torch.randn(2, 3, 11, 11), torch.tensor([1, 2])
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    text = prog.stages["linalg"]
    for c in (3, 6):  # both convs, in every entry point's forward pass
        assert re.search(rf"linalg\.matmul ins\([^)]*: tensor<248x{c}xf32>, tensor<{c}x6xf32>\)", text)
    assert_grads_match(prog, model, x, y)
    xs = [torch.randn(2, 3, 11, 11) for _ in range(5)]
    ys = [torch.randint(0, 3, (2,)) for _ in range(5)]
    assert_sgd_tracks(prog, model, xs, ys, lr=0.1)


#: MobileNetV2's (expand, channels, blocks, stride) rows, shortened: an expand-1 block, then a
#: stride-2 block and a residual one (its first two rows; the whole network has 17 blocks).
SHORT_SETTINGS = MobileNetV2.SETTINGS[:2]


@pytest.fixture(scope="module")
def mbv2():
    torch.manual_seed(0)
    model = randomize_bn(MobileNetV2(width_mult=0.35, num_classes=10, settings=SHORT_SETTINGS))
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert SHORT_SETTINGS == [(1, 16, 1, 1), (6, 24, 2, 2)] and len(blocks) == 3
    assert [b.use_res for b in blocks] == [False, False, True] and len(blocks[0].conv) == 2  # expand-1: no 1x1 expand
    assert sorted({(c.kernel_size[0], c.stride[0], c.groups > 1) for c in convs}) == [
        (1, 1, False), (3, 1, True), (3, 2, False), (3, 2, True)]  # 1x1, depthwise s1/s2, stem
    x = torch.randn(1, 3, 64, 64)
    prog = tinytrain.compile(model, x, lr=0.05, gradients=True)
    initial = prog.state_dict()
    yield model, x, prog
    prog.load_state_dict(initial)


@pytest.fixture
def fresh(mbv2):
    """The module-scoped program with its initial parameters restored after each test."""
    model, x, prog = mbv2
    initial = prog.state_dict()
    yield model, x, prog
    prog.load_state_dict(initial)


def test_mobilenetv2_blocks_gradients(fresh):
    model, x, prog = fresh
    grads = assert_grads_match(prog, model, x, torch.tensor([3]))
    assert len(grads) == 22  # 10 convs (weight + folded bias) + classifier


def test_mobilenetv2_blocks_five_sgd_steps(fresh):
    model, _, prog = fresh
    g = torch.Generator().manual_seed(7)
    xs = [torch.randn(1, 3, 64, 64, generator=g) for _ in range(5)]
    ys = [torch.randint(0, 10, (1,), generator=g) for _ in range(5)]
    assert_sgd_tracks(prog, model, xs, ys, lr=0.05)


def test_predict_matches_eager(fresh):
    model, x, prog = fresh
    ref = model(x).detach().numpy()
    out = prog.predict(x)
    assert abs(out - ref).max() <= 1e-4 * max(1.0, abs(ref).max())


def test_update_equals_sgd_on_gradients(fresh):
    """train_step's in-place update is exactly `p - lr * grad` of the same program's gradients:
    guards against IREE reading a tied argument after its in-place write."""
    model, x, prog = fresh
    assert_step_is_sgd_of_gradients(prog, x, torch.tensor([5]))
