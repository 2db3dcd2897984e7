"""Shared helpers: PyTorch references for the compiled programs."""

import copy
import os
import shutil
import tempfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def pytest_configure(config):
    """The run's own compile cache (`tinytrain.lowering.compile_cache`), empty at the start: tests
    that compile the same program twice share one iree-compile, and no run reads another's
    entries (a fresh clone's run times what a user's first compiles cost). Set by the controller
    before pytest-xdist starts its workers, which inherit it; removed by the controller at the end.
    An explicit TINYTRAIN_COMPILE_CACHE (a folder, or "off") is left as it is."""
    if "TINYTRAIN_COMPILE_CACHE" not in os.environ and not hasattr(config, "workerinput"):
        os.environ["TINYTRAIN_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="tinytrain-test-compile-cache-")
        config._tinytrain_compile_cache = os.environ["TINYTRAIN_COMPILE_CACHE"]


def pytest_unconfigure(config):
    folder = getattr(config, "_tinytrain_compile_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


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


class ChannelAffine(nn.Module):
    """`x * weight[c] + bias[c]` over dim 1: the reference of a BatchNorm that tinytrain keeps as
    a per-channel affine (weight = gamma / sqrt(var + eps), bias = beta - mean * weight)."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        scale = bn.weight.detach() * torch.rsqrt(bn.running_var + bn.eps)
        self.weight = nn.Parameter(scale.clone())
        self.bias = nn.Parameter((bn.bias.detach() - bn.running_mean * scale).clone())

    def forward(self, x):
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x * self.weight.reshape(shape) + self.bias.reshape(shape)


def fold_bn_graph(model: nn.Module) -> nn.Module:
    """The BN-folded reference of any model torch.fx can trace (models written by others, whose
    convs and BNs are not pairs of one Sequential): a BatchNorm2d whose input is a Conv2d with
    no other user is fused into it (the conv keeps its name and gains a bias); every other
    BatchNorm becomes a `ChannelAffine` under its own name. Every parameter requires grad."""
    gm = torch.fx.symbolic_trace(copy.deepcopy(model).eval())
    modules = dict(gm.named_modules())

    def replace(path: str, new: nn.Module) -> None:
        parent, _, name = path.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, name, new)

    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.modules.batchnorm._BatchNorm):
            continue
        src = node.args[0]
        if (isinstance(modules[node.target], nn.BatchNorm2d) and src.op == "call_module"
                and isinstance(modules.get(src.target), nn.Conv2d) and len(src.users) == 1):
            replace(src.target, fuse_conv_bn_eval(modules[src.target], modules[node.target]))
            node.replace_all_uses_with(src)
            gm.graph.erase_node(node)
        else:
            replace(node.target, ChannelAffine(modules[node.target]))
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(True)
    return gm


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    return model.eval()


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def assert_device_equals_host(device, host, err_msg: str = "") -> None:
    """A trained tensor after a device step vs the host program's: integer state exactly, fp32
    state to 1e-6 of its largest magnitude (at least 1e-6; the host's vectorized sums may round
    differently)."""
    if np.asarray(host).dtype != np.float32:
        np.testing.assert_array_equal(device, host, err_msg=err_msg)
    else:
        np.testing.assert_allclose(device, host, rtol=0, atol=1e-6 * max(1.0, float(np.abs(host).max())),
                                   err_msg=err_msg)


def loss_close(device_loss: float, host_loss: float) -> bool:
    """A device step's loss equals the host's to 1e-6 (relative, at least 1e-6 absolute)."""
    return abs(device_loss - host_loss) <= 1e-6 * max(1.0, abs(host_loss))


def assert_device_trace_equals_host(prog, res, xs, ys) -> list:
    """The device run `res` (`prog.run_qemu(train=(xs, ys))`) trained like `prog`'s host program:
    per step the loss and every trained tensor (`assert_device_equals_host`). Returns the host
    program's parameters after the steps."""
    params = prog.initial_params()
    for i in range(len(ys)):
        out = prog.host.call("train_step", *params, xs[i:i + 1], ys[i:i + 1])
        params = [np.asarray(r) for r in out[:-1]]
        dev, dev_loss = res.trace[i]
        assert loss_close(dev_loss, float(out[-1])), (i, dev_loss, float(out[-1]))
        for name, d, h in zip(prog.trainable, dev, params):
            assert_device_equals_host(d, h, err_msg=f"step {i} {name}: device vs host")
    return params


def assert_grads_match(prog, model, x, y, tol=1e-4, fold=fold_bn):
    """Compiled gradients of every trainable tensor vs torch.autograd on the BN-folded model
    (`fold`: `fold_bn`, or `fold_bn_graph` for models that are not Sequentials of layers)."""
    ref = fold(model)
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


def assert_step_is_sgd_of_gradients(prog, x, y) -> dict:
    """One `train_step` changes each trained parameter by exactly `-lr * grad` of the same
    program's `gradients(x, y)` (1e-6 relative): a read of a tied argument after its in-place
    write (IREE's hazard) breaks it. Returns the parameters before the step."""
    before = {k: v.numpy().copy() for k, v in prog.state_dict().items()}
    grads, _ = prog.gradients(x, y)
    prog.train_step(x, y)
    after = prog.state_dict()
    for k in prog.trainable:
        expected = before[k] - prog.lr * grads[k]
        assert abs(after[k].numpy() - expected).max() <= 1e-6 * max(1.0, abs(expected).max()), k
    return before


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


def assert_sgd_tracks(prog, model, xs, ys, lr, tol=1e-4, update_tol=1e-3, fold=fold_bn, momentum=0.0):
    """N compiled SGD steps vs N torch.optim.SGD steps (with `momentum`) on the same batches: the
    losses, the parameters, and each step's update (see assert_update_matches); with momentum
    also each element of the parameters and of their momentum buffers (within `tol`)."""
    ref = fold(model)
    names = prog.trainable
    params = dict(ref.named_parameters())
    for n, p in params.items():
        p.requires_grad_(n in names)
    opt = torch.optim.SGD([params[n] for n in names], lr=lr, momentum=momentum)
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
            if momentum:
                np.testing.assert_allclose(ours[n].numpy(), now, rtol=tol, atol=tol, err_msg=n)
                np.testing.assert_allclose(ours[f"{n}.momentum_buffer"].numpy(),
                                           opt.state[params[n]]["momentum_buffer"].numpy(),
                                           rtol=tol, atol=tol, err_msg=f"{n}.momentum_buffer")


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def chelsea_rgb():
    """scikit-image's `chelsea.png` (shipped in its wheel), center crop, bilinear resize to
    128x128, uint8 NHWC [1, 128, 128, 3] (`tinytrain.tools.pretrained_on_device.chelsea_rgb`)."""
    from tinytrain.tools.pretrained_on_device import chelsea_rgb as load

    return load()


def load_bench(name: str):
    """The module of `bench/<name>.py` (bench scripts are not a package), for plumbing tests."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
