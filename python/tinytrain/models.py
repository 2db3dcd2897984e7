"""Reference models of the paper's family (random init; no weights are downloaded).

`mobilenet_v2(width_mult=0.35)` is the paper's MbV2-w0.35 architecture (torchvision's layout,
408,938 parameters with 10 classes); `small_cnn` is a quick model for tests and demos;
`residual_cnn` is one with a residual add (the post-training quantization tests and
`bench/ptq_digits.py`), `fit` trains any of them in PyTorch.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["mobilenet_v2", "small_cnn", "ds_cnn", "residual_cnn", "fit", "InvertedResidual", "MobileNetV2",
           "FunctionModule", "classifier_head"]


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 project; residual add
    when stride is 1 and the channel count is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hid = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        layers = [] if expand == 1 else [_conv_bn(cin, hid, 1, 1)]
        layers += [_conv_bn(hid, hid, 3, stride, groups=hid), _conv_bn(hid, cout, 1, 1, act=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_res else y


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width_mult: float = 0.35, num_classes: int = 10, in_channels: int = 3,
                 settings=None, last_channel: int = 1280):
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        feats = [_conv_bn(in_channels, cin, 3, 2)]
        for t, c, n, s in settings or self.SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult))
        feats.append(_conv_bn(cin, self.last_channel, 1, 1))
        self.features = nn.Sequential(*feats)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.last_channel, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(width_mult: float = 0.35, num_classes: int = 10, **kw) -> MobileNetV2:
    return MobileNetV2(width_mult=width_mult, num_classes=num_classes, **kw)


def small_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> nn.Sequential:
    """conv-bn-relu x2 (second strided, depthwise-separable), global pool, linear."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, 2, 1, groups=width), nn.BatchNorm2d(width), nn.ReLU6(),
        nn.Conv2d(width, 2 * width, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )


def ds_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> nn.Sequential:
    """A depthwise-separable CNN sized for a 256 KB microcontroller at 28x28 (the demo model):
    3x3 conv, then two stride-2 (depthwise 3x3, pointwise 1x1) blocks, global pool, linear."""

    def ds(cin, cout):
        return [nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6(),
        *ds(width, 2 * width), *ds(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes),
    )


class FunctionModule(nn.Module):
    """A model whose forward is a function of its layers, `fn(self, x)`: a way to write a model
    that uses functional ops (`torch.sigmoid`, `F.pad`, in-place calls) without a class of its own,
    e.g. `FunctionModule(lambda m, x: m.fc(torch.sigmoid(m.conv(x)).mean((2, 3))), conv=..., fc=...)`."""

    def __init__(self, fn, **layers):
        super().__init__()
        self.fn = fn
        for name, layer in layers.items():
            self.add_module(name, layer)

    def forward(self, x):
        return self.fn(self, x)


def classifier_head(channels: int, classes: int) -> list[nn.Module]:
    """Global average pool, flatten and a linear layer: the layers that end a small test CNN."""
    return [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]


class _ResidualBlock(nn.Module):
    """depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN, add the input, ReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.relu6(self.bn1(self.dw(x)))
        return nn.functional.relu(self.bn2(self.pw(h)) + x)


class _Head(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.relu(self.bn(self.conv(x)))


class ResidualCNN(nn.Module):
    """stem (conv+BN+ReLU) -> block (residual) -> head (stride-2 conv+BN+ReLU) -> mean -> fc."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block = _ResidualBlock(width)
        self.head = _Head(width, 2 * width)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.block(self.stem(x))).mean((2, 3)))


def residual_cnn(num_classes: int = 10, in_channels: int = 1, width: int = 8) -> ResidualCNN:
    return ResidualCNN(num_classes, in_channels, width)


def fit(model: nn.Module, x, y, *, epochs: int = 10, lr: float = 0.02, batch: int = 64, seed: int = 0) -> nn.Module:
    """Train `model` with Adam on NCHW float `x`, integer labels `y` (numpy or tensors), seeded, on
    one thread (small batches); returns it in eval mode."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), batch):
                j = perm[i:i + batch]
                opt.zero_grad()
                nn.functional.cross_entropy(model(xt[j]), yt[j]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()
