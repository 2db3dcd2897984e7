"""The sparse update (passes `sparse-update` + `sparse-narrow`): a sparse step equals the dense
step with the frozen parameters' gradient masked.

- fp32 (`tinytrain.compile(..., sparse=...)`): against torch.autograd + SGD with the gradient of
  the frozen output channels zeroed, 1e-5 (dense, depthwise and linear weights sliced, a bias-only
  layer); `state_dict` gives the whole weights. One compile, about 20 s; the same program on the
  Cortex-M4 (QEMU) equals the host bit for bit (about 25 s).
- int8 (`tinytrain.int8.compile_training(..., scheme=...)`, QAS on, integer write-back): the
  sparse program's updated integers equal the dense program's (whole tensors trained) on the
  trained channels, and the other channels keep their values: exact. Two compiles, about 25 s.
- the IR: every sliced weight's gradient is computed for its trained channels only.
- `models` marker: the fifteen published schemes on their whole models (all to a verified linalg
  program, about 30 s; one compiled by IREE for the host and stepped, about 90 s).
"""

import re
from fractions import Fraction

import numpy as np
import pytest
import torch

import tinytrain
from conftest import assert_device_trace_equals_host
from tinytrain.int8 import compile_training
from tinytrain.pretrained import MODEL_NAMES, load_mcu_model, sparse_scheme_names
from tinytrain.pretrained.graph import build_forward, truncate
from tinytrain.pipeline import run_pipeline
from tinytrain.sparse import resolve
from tinytrain.transforms.autodiff import AutodiffPass
from tinytrain.transforms.qas import QasPass
from tinytrain.transforms.sparse_update import (SparseNarrowPass, SparseSplitPass, SparseUpdatePass, plan_slices,
                                                split_values)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.dw = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = torch.nn.Conv2d(16, 24, 1)
        self.fc = torch.nn.Linear(24, 8)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.dw(x))
        x = torch.relu(self.pw(x))
        return self.fc(x.mean((2, 3)))


FP32_SCHEME = {"c1.bias": 1, "dw.weight": "1/8", "dw.bias": 1, "pw.weight": 0.25, "fc.weight": "1/2", "fc.bias": 1}
LR = 0.1


@pytest.fixture(scope="module")
def fp32_program():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(2, 3, 8, 8)
    prog = tinytrain.compile(model, x, sparse={"parameters": FP32_SCHEME}, lr=LR, gradients=True)
    return model, prog


def _masked_sgd_steps(model, batches, momentum=0.0):
    """PyTorch: SGD (with momentum: v = m v + g, p -= lr v) on the scheme's parameters, the
    gradient of the frozen output channels zeroed."""
    ref = Net()
    ref.load_state_dict(model.state_dict())
    bufs = {n: torch.zeros_like(p) for n, p in ref.named_parameters()}
    for x, y in batches:
        ref.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(x), y)
        loss.backward()
        with torch.no_grad():
            for n, p in ref.named_parameters():
                if n in FP32_SCHEME:
                    g = p.grad.clone()
                    g[int(Fraction(FP32_SCHEME[n]) * g.shape[0]):] = 0
                    bufs[n] = momentum * bufs[n] + g
                    p -= LR * bufs[n]
    return ref


def test_fp32_sparse_steps_equal_masked_dense_steps(fp32_program):
    model, prog = fp32_program
    torch.manual_seed(1)
    batches = [(torch.randn(2, 3, 8, 8), torch.tensor([1, 5])), (torch.randn(2, 3, 8, 8), torch.tensor([7, 0]))]
    for x, y in batches:
        prog.train_step(x, y)
    ref = dict(_masked_sgd_steps(model, batches).named_parameters())
    sd = prog.state_dict()
    assert set(sd) == set(FP32_SCHEME)
    for n, v in sd.items():
        assert tuple(v.shape) == tuple(ref[n].shape), n  # whole weights, slice + frozen rest
        np.testing.assert_allclose(v.numpy(), ref[n].detach().numpy(), rtol=0, atol=1e-5, err_msg=n)
        k = int(Fraction(FP32_SCHEME[n]) * v.shape[0])
        orig = dict(model.named_parameters())[n].detach()
        assert torch.equal(v[k:], orig[k:]), n  # the frozen channels are untouched
        assert not torch.equal(v[:k], orig[:k]), n  # and the trained ones moved


def test_fp32_sparse_steps_with_momentum_equal_masked_dense_momentum_steps():
    """Momentum buffers of sliced weights cover the trained channels; the frozen rest never moves."""
    torch.manual_seed(0)
    model = Net().eval()
    prog = tinytrain.compile(model, torch.zeros(2, 3, 8, 8), sparse={"parameters": FP32_SCHEME}, lr=LR,
                             momentum=0.9)
    torch.manual_seed(2)
    batches = [(torch.randn(2, 3, 8, 8), torch.tensor([i % 8, (3 * i + 1) % 8])) for i in range(3)]
    for x, y in batches:
        prog.train_step(x, y)
    ref = dict(_masked_sgd_steps(model, batches, momentum=0.9).named_parameters())
    sd = prog.state_dict()
    assert tuple(sd["pw.weight.momentum_buffer"].shape) == (6, 16, 1, 1)  # 1/4 of 24 channels
    for n in FP32_SCHEME:
        np.testing.assert_allclose(sd[n].numpy(), ref[n].detach().numpy(), rtol=0, atol=1e-5, err_msg=n)


def test_fp32_state_round_trip_and_frozen_channels(fp32_program):
    _, prog = fp32_program
    sd = prog.state_dict()
    prog.load_state_dict(sd)
    assert all(torch.equal(prog.state_dict()[k], v) for k, v in sd.items())
    bad = {"pw.weight": sd["pw.weight"].clone()}
    bad["pw.weight"][-1] += 1
    with pytest.raises(ValueError, match=r"'pw.weight': output channels 6..23 differ from the frozen values"):
        prog.load_state_dict(bad)
    grads, _ = prog.gradients(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    assert tuple(grads["pw.weight"].shape) == (6, 16, 1, 1)  # the trained slice's gradient
    assert [tuple(p.shape) for p in prog.program_params()][1] == (3, 3, 1, 2)  # dw: 2 of 16 channels, HWIO


def test_fp32_ir_has_no_full_size_weight_gradient(fp32_program):
    _, prog = fp32_program
    text = prog.stages["autodiff"]
    shapes = re.findall(r'"tinytrain\.(?:conv2d|linear)_grad_weight".*-> tensor<([0-9x]+)xf32>', text)
    # per function (@train_step, @gradients): pw [1x1x16x6], dw [3x3x1x2], fc [4x24]; c1 is bias-only
    assert sorted(shapes) == sorted(["1x1x16x6", "3x3x1x2", "4x24"] * 2)


def test_fp32_sparse_program_on_cortex_m4_equals_the_host(tmp_path):
    """The sparse program on the device (QEMU mps2-an386): the losses of four steps (each after
    the previous update) equal the host program's bit for bit (the M4 has no FMA)."""
    torch.manual_seed(0)
    prog = tinytrain.compile(Net().eval(), torch.randn(1, 3, 8, 8), sparse={"parameters": FP32_SCHEME}, lr=LR,
                             target="cortex-m4", build_dir=tmp_path / "m4")
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(4, 3, 8, 8, generator=g), torch.tensor([0, 5, 2, 7])
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    host = [prog.train_step(xs[i:i + 1], ys[i:i + 1]) for i in range(4)]
    assert [l for l, _ in res.steps] == host
    assert res.mem["sram_peak"] <= 256 * 1024


def test_sparse_and_trainable_together_is_an_error():
    with pytest.raises(ValueError, match="give either trainable=.* or sparse=<scheme>"):
        tinytrain.compile(Net().eval(), torch.randn(1, 3, 8, 8), trainable=["fc.weight"],
                          sparse={"parameters": {"fc.bias": 1}})


# ---------------------------------------------------------------------------------------- int8

INT8_SCHEME = {"blocks.1.pointwise2.weight": "1/2", "blocks.1.pointwise2.bias": 1,
               "blocks.2.pointwise1.weight": 0.25, "blocks.2.depthwise.weight": "1/8",
               "blocks.2.depthwise.bias": 1, "blocks.2.pointwise2.bias": 1, "fc.weight": 1, "fc.bias": 1}


def _small_graph():
    return build_forward(truncate(load_mcu_model("mbv2-w0.35"), 3), classifier="fp32", num_classes=4,
                         input_hw=32, seed=0)


def test_int8_sparse_step_equals_masked_dense_step_exactly():
    """The dense program is test_int8_training.py's `grads_program` (the same graph, trained
    tensors in the same order, lr, QAS and `@gradients`, unused here): one compile for both
    files through the run's compile cache."""
    sparse = compile_training(_small_graph(), scheme={"parameters": INT8_SCHEME}, lr=0.3)
    dense = compile_training(_small_graph(), trainable=list(INT8_SCHEME), lr=0.3, gradients=True)
    assert set(sparse.slices) == {"blocks.1.pointwise2.weight", "blocks.2.pointwise1.weight",
                                  "blocks.2.depthwise.weight"}
    rng = np.random.default_rng(0)
    ps, pd = sparse.initial_params(), dense.initial_params()
    for y in ([2], [0], [3]):
        x = rng.integers(-128, 128, (1, 32, 32, 3)).astype(np.int8)
        ps, ls = sparse.step(ps, x, y)
        pd, ld = dense.step(pd, x, y)
        assert ls == ld
        # the masked dense step: the dense update on the trained channels, the rest as it was
        for n, s in sparse.slices.items():
            i = dense.trainable.index(n)
            pd[i] = np.array(pd[i])
            pd[i][..., s.channels:] = dense.values[n][..., s.channels:]
    full = sparse.full_params(ps)
    moved = 0
    for n, d in zip(dense.trainable, pd):
        assert full[n].dtype == d.dtype and full[n].shape == d.shape, n
        np.testing.assert_array_equal(full[n], d, err_msg=n)
        s = sparse.slices.get(n)
        if s is not None:
            np.testing.assert_array_equal(full[n][..., s.channels:], dense.values[n][..., s.channels:])
            moved += int((full[n][..., :s.channels] != dense.values[n][..., :s.channels]).any())
    assert moved == 3  # every slice was updated


def test_int8_ir_weight_gradients_are_sliced_and_bias_only_layers_keep_no_input():
    """After sparse-narrow: every weight gradient has its slice's shape; a bias-only layer
    (blocks.2.pointwise2) builds no weight gradient; nothing below the earliest trained layer
    (blocks.1.pointwise2) gets a gradient."""
    g = _small_graph()
    u = resolve({"parameters": INT8_SCHEME}, param_names=list(g.param_names))
    slices = plan_slices(g.module, u.sliced)
    run_pipeline(g.module, [SparseUpdatePass(weights=u.pass_option()), AutodiffPass(trainable=tuple(u.trainable)),
                            SparseNarrowPass(), QasPass()])
    text = str(g.module)
    train = text[text.index("func.func @train_step"):text.index("func.func @predict")]
    shapes = re.findall(r'"tinytrain\.conv2d_grad_weight".*-> tensor<([0-9x]+)xf32>', train)
    assert sorted(shapes) == sorted(["1x1x48x4", "1x1x8x12", "3x3x1x6"])  # 4 of 8, 12 of 48, 6 of 48
    assert {s.name: (s.channels, s.of) for s in slices} == {"blocks.1.pointwise2.weight": (4, 8),
                                                            "blocks.2.pointwise1.weight": (12, 48),
                                                            "blocks.2.depthwise.weight": (6, 48)}
    # gradients reach blocks.1.pointwise2 (input gradient of blocks.2.pointwise1) but not below it
    assert len(re.findall(r'"tinytrain\.conv2d_grad_input"', train)) == 3  # into b2.pw2, b2.dw, b2.pw1
    # sparse-split: the two pointwise slices are two convs each (forward and input gradient); only
    # the depthwise weight keeps its join (48 channels: 3x3x1x6 + 3x3x1x42)
    run_pipeline(g.module, [SparseSplitPass()])
    text = str(g.module)
    train = text[text.index("func.func @train_step"):text.index("func.func @predict")]
    joins = re.findall(r'"tinytrain\.concat"\(%arg\d+, %arg\d+\).*-> tensor<([0-9x]+)xi8>', train)
    assert joins == ["3x3x1x48"]
    assert len(re.findall(r'"tinytrain\.conv2d_grad_input"', train)) == 4  # b2.pw1 in two parts
    assert len(re.findall(r'"tinytrain\.qconv2d"', train)) == 9 + 2  # 3 blocks of 3 convs, 2 split


def test_int8_sparse_program_on_cortex_m4_equals_the_host(tmp_path):
    """The int8 sparse program (pointwise slices computed per part by sparse-split, a depthwise
    slice joined) on the device (QEMU mps2-an386): three steps, every trained integer equals the
    host program's, the fp32 head and the loss to 1e-6. Built with IREE's padding fusion: the
    trained depthwise slice's weight gradient reads its dequantized input bounds-checked (a padded
    copy of it made iree-compile fail with the flag, which was then dropped)."""
    prog = compile_training(_small_graph(), scheme={"parameters": INT8_SCHEME}, lr=0.3, target="cortex-m4",
                            build_dir=tmp_path / "m4")
    assert prog.planned_sram()["dropped_flags"] == {}
    rng = np.random.default_rng(1)
    xs = rng.integers(-128, 128, (3, 32, 32, 3)).astype(np.int8)
    ys = np.array([2, 0, 3], np.int32)
    res = prog.run_qemu(train=(xs, ys), workdir=tmp_path / "run")
    assert res.returncode == 0, res.output[-2000:]
    assert_device_trace_equals_host(prog, res, xs, ys)


# ------------------------------------------------------------------------------- whole models


@pytest.mark.models
def test_fifteen_published_schemes_lower_to_linalg():
    """Each published scheme on its whole model (64x64 input, new 10-class head): sparse-update,
    autodiff, sparse-narrow, qas and to-linalg give a verified linalg program."""
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass

    done = 0
    for name in MODEL_NAMES:
        m = load_mcu_model(name)
        for s in sparse_scheme_names(name):
            g = build_forward(m, classifier="fp32", num_classes=10, input_hw=64)
            u = resolve(s, param_names=list(g.param_names), model=m, head=("fc.weight", "fc.bias"))
            slices = plan_slices(g.module, u.sliced)
            run_pipeline(g.module, [SparseUpdatePass(weights=u.pass_option()),
                                    AutodiffPass(trainable=tuple(u.trainable), lr=0.01), SparseNarrowPass(),
                                    QasPass(), SparseSplitPass(), ConvertTinytrainToLinalgPass(values=split_values(g.values, slices))])
            text = str(g.module)
            assert '"tinytrain.' not in text and "tinytrain.frozen" not in text, (name, s)  # no op left; rests inlined
            done += 1
    assert done == 15


@pytest.mark.models
def test_published_scheme_compiles_and_trains_on_the_host():
    """MobileNetV2-w0.35 "49kb" (five sliced weights, one of them depthwise; a bias-only
    depthwise), whole model at 32x32: compiled by IREE for the host; one step changes the trained
    channels only and the loss is finite."""
    m = load_mcu_model("mbv2-w0.35")
    g = build_forward(m, classifier="fp32", num_classes=10, input_hw=32)
    prog = compile_training(g, scheme="49kb", lr=0.05)
    assert len(prog.slices) == 5 and len(prog.trainable) == 25
    x = np.random.default_rng(0).integers(-128, 128, (1, 32, 32, 3)).astype(np.int8)
    params, loss = prog.step(prog.initial_params(), x, [3])
    assert np.isfinite(loss)
    full = prog.full_params(params)
    for n, s in prog.slices.items():
        assert full[n].shape == g.values[n].shape
        np.testing.assert_array_equal(full[n][..., s.channels:], g.values[n][..., s.channels:])
