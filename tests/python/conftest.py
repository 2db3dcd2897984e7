"""Shared helpers: PyTorch references for the compiled programs."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of `model` with every Conv2d+BatchNorm2d pair of a Sequential fused (what tinytrain
    compiles), every parameter requiring grad."""

    def fold(m):
        if isinstance(m, nn.Sequential):
            kids, new, i = list(m), [], 0
            while i < len(kids):
                if isinstance(kids[i], nn.Conv2d) and i + 1 < len(kids) and isinstance(kids[i + 1], nn.BatchNorm2d):
                    # Identity keeps the module indices, hence the parameter names, unchanged.
                    new += [fuse_conv_bn_eval(kids[i], kids[i + 1]), nn.Identity()]
                    i += 2
                else:
                    new.append(fold(kids[i]))
                    i += 1
            return nn.Sequential(*new)
        for name, ch in list(m.named_children()):
            setattr(m, name, fold(ch))
        return m

    ref = fold(copy.deepcopy(model).eval())
    for p in ref.parameters():
        p.requires_grad_(True)
    return ref


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    return model.eval()


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def assert_grads_match(prog, model, x, y, tol=1e-4):
    """Compiled gradients of every trainable tensor vs torch.autograd on the BN-folded model."""
    ref = fold_bn(model)
    loss = nn.functional.cross_entropy(ref(x), y)
    loss.backward()
    grads, l = prog.gradients(x, y)
    params = dict(ref.named_parameters())
    assert set(grads) == set(prog.trainable)
    assert abs(l - loss.item()) <= tol * max(1.0, abs(loss.item()))
    for name, g in grads.items():
        assert params[name].grad is not None, name
        assert rel_err(g, params[name].grad.numpy()) <= tol, (name, rel_err(g, params[name].grad.numpy()))
    return grads


def assert_update_matches(ours_before, ours_after, ref_before, ref_after, name, tol=1e-3):
    """One SGD step's change of a parameter, ours vs the reference, measured against the size of
    the change itself, element by element, not against the parameter's size: after a few
    small-lr steps a parameter is dominated by its initial value, and a wrong gradient times lr
    hides under a relative 1e-4 of it (mutant M01 did). Allowed: `tol` of the largest reference
    change, plus 2 float32 ulps of each element (the rounding of `p - lr * g` on both sides)."""
    ours_before, ours_after, ref_before, ref_after = (np.asarray(a, np.float64) for a in
                                                      (ours_before, ours_after, ref_before, ref_after))
    d_ours, d_ref = ours_after - ours_before, ref_after - ref_before
    ulp = np.finfo(np.float32).eps * np.maximum(np.abs(ref_before), np.abs(ref_after))
    excess = np.abs(d_ours - d_ref) - 2 * ulp
    allowed = tol * np.abs(d_ref).max()
    i = np.unravel_index(np.argmax(excess), excess.shape)
    assert excess[i] <= allowed, (f"{name}: update {d_ours[i]:.4g} at {tuple(int(v) for v in i)}, "
                                  f"reference {d_ref[i]:.4g} (largest reference update "
                                  f"{np.abs(d_ref).max():.3g})")


def assert_sgd_tracks(prog, model, xs, ys, lr, tol=1e-4, update_tol=1e-3):
    """N compiled SGD steps vs N torch.optim.SGD steps on the same batches: the losses, the
    parameters, and each step's update (see assert_update_matches)."""
    ref = fold_bn(model)
    names = prog.trainable
    params = dict(ref.named_parameters())
    for n, p in params.items():
        p.requires_grad_(n in names)
    opt = torch.optim.SGD([params[n] for n in names], lr=lr)
    for step, (x, y) in enumerate(zip(xs, ys), 1):
        ours_before = {k: v.numpy().copy() for k, v in prog.state_dict().items()}
        ref_before = {n: params[n].detach().numpy().copy() for n in names}
        loss_ours = prog.train_step(x, y)
        opt.zero_grad()
        loss_ref = nn.functional.cross_entropy(ref(x), y)
        loss_ref.backward()
        opt.step()
        assert abs(loss_ours - loss_ref.item()) <= tol * max(1.0, abs(loss_ref.item()))
        ours = prog.state_dict()
        for n in names:
            now = params[n].detach().numpy()
            assert rel_err(ours[n].numpy(), now) <= tol, n
            assert_update_matches(ours_before[n], ours[n].numpy(), ref_before[n], now,
                                  f"{n} at step {step}", update_tol)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
