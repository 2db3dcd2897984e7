"""Numerics at the edges the random-input tests never reach: saturated ReLU6, BatchNorm whose
variance makes `eps` matter, and learning rates of every magnitude (float options).

Each test compares against torch.autograd / the SGD rule through the public API only."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import assert_grads_match, assert_sgd_tracks, fold_bn, randomize_bn

import tinytrain


def _relu6_head():
    return nn.Sequential(nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 4))


def test_relu6_saturated_region_gradient():
    """Inputs scaled so that many pre-activations are above 6 (and below 0): there, ReLU6's
    gradient is zero (PyTorch's rule; the gradient must not pass where y == 6)."""
    torch.manual_seed(0)
    model = _relu6_head().eval()
    x = torch.randn(2, 3, 8, 8) * 10
    with torch.no_grad():
        pre = model[0](x)
    frac_hi, frac_lo = (pre > 6).float().mean().item(), (pre < 0).float().mean().item()
    assert frac_hi > 0.05 and frac_lo > 0.2, (frac_hi, frac_lo)  # the test really saturates
    y = torch.tensor([1, 3])
    prog = tinytrain.compile(model, x, lr=0.05, gradients=True)
    assert_grads_match(prog, model, x, y)
    g = torch.Generator().manual_seed(5)
    assert_sgd_tracks(prog, model, [torch.randn(2, 3, 8, 8, generator=g) * 10 for _ in range(3)],
                      [torch.randint(0, 4, (2,), generator=g) for _ in range(3)], lr=0.05)


def test_relu6_upper_clamp_in_mobilenet_style_block():
    """ReLU6 after a folded conv+BN and a depthwise conv, both driven into saturation."""
    torch.manual_seed(1)
    model = randomize_bn(nn.Sequential(
        nn.Conv2d(3, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)))
    x = torch.randn(1, 3, 6, 6) * 8
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    assert_grads_match(prog, model, x, torch.tensor([4]))


def _small_var_bn_model(var: float):
    m = nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
    g = torch.Generator().manual_seed(3)
    bn = m[1]
    with torch.no_grad():
        bn.running_mean.copy_(torch.rand(6, generator=g) * 0.02 - 0.01)
        # variances of the order of eps (1e-5): 1/sqrt(var + eps) and 1/sqrt(var) differ by up
        # to ~40%, so a fold that drops eps cannot pass
        bn.running_var.copy_(torch.full((6,), var) * (torch.rand(6, generator=g) + 0.5))
        bn.weight.copy_(torch.rand(6, generator=g) + 0.5)
        bn.bias.copy_(torch.rand(6, generator=g) * 0.2 - 0.1)
        m[0].weight.mul_(0.01)  # keep the normalized activations O(1)
    return m.eval()


@pytest.mark.parametrize("var", [1e-5, 1e-4])
def test_bn_fold_with_small_running_var(var):
    torch.manual_seed(0)
    model = _small_var_bn_model(var)
    x = torch.randn(2, 3, 8, 8)
    prog = tinytrain.compile(model, x, lr=0.1, gradients=True)
    ref = model(x).detach().numpy()
    out = prog.predict(x)
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), np.abs(out - ref).max()
    grads = assert_grads_match(prog, model, x, torch.tensor([0, 3]))
    assert set(grads) == {"0.weight", "0.bias", "5.weight", "5.bias"}
    # the folded parameters themselves (what the program starts from) are PyTorch's fold
    folded = dict(fold_bn(model).named_parameters())
    for k, v in prog.state_dict().items():
        ref_v = folded[k].detach().numpy()
        assert np.abs(v.numpy() - ref_v).max() <= 1e-5 * np.abs(ref_v).max(), k


def _lr_param(lr):
    return pytest.param(lr, id=f"lr={lr!r}")


@pytest.mark.parametrize("lr", [
    _lr_param(1e-5),   # once failed: repr(1e-05) printed into MLIR text is no MLIR float
    _lr_param(1e-10),
    _lr_param(3),
    _lr_param(0.5),
    _lr_param(np.float32(0.25)),
])
def test_lr_of_any_magnitude_compiles_and_updates_by_lr_times_grad(lr):
    """Regression for float options: the step is `p - lr * g` for the lr given, whatever its
    printed form (1e-05, 1e-10, an int, a numpy float)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    x = torch.randn(2, 3, 6, 6)
    y = torch.tensor([0, 2])
    prog = tinytrain.compile(model, x, lr=lr, gradients=True)
    assert prog.lr == float(lr)
    before = {k: v.numpy().copy() for k, v in prog.state_dict().items()}
    grads, _ = prog.gradients(x, y)
    prog.train_step(x, y)
    after = prog.state_dict()
    lr32 = np.float32(lr)
    for k in prog.trainable:
        g = grads[k].astype(np.float32)
        expected = before[k] - lr32 * g
        ulp = np.finfo(np.float32).eps * max(np.abs(before[k]).max(), np.abs(expected).max())
        # the new value is p - lr*g up to float32 rounding of p ...
        assert np.abs(after[k].numpy() - expected).max() <= 2 * ulp + 1e-6 * np.abs(lr32 * g).max(), k
        # ... and the step itself is lr*g (checked where it is larger than the rounding of p)
        step = before[k].astype(np.float64) - after[k].numpy()
        assert np.abs(step - float(lr32) * g).max() <= 2 * ulp + 1e-4 * float(lr32) * np.abs(g).max(), k
