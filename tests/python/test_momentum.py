"""SGD with momentum (`compile(..., momentum=m)`, `autodiff{momentum=m}`): PyTorch's rule
`v = m v + g; p = p - lr v` with the f32 buffers as trained state (tied like the parameters,
guarded by the loss, in `state_dict()`, in checkpoints and on the device), for fp32 and int8
graphs; and the SRAM report of the trained state per update option."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import tinytrain
from tinytrain.models import small_cnn

from conftest import assert_sgd_tracks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

M, LR = 0.9, 0.05


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = small_cnn(num_classes=4, in_channels=1, width=4).eval()
    return model, tinytrain.compile(model, torch.randn(2, 1, 12, 12), lr=LR, momentum=M)


def _batches(n, seed=1, shape=(2, 1, 12, 12), classes=4):
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(*shape, generator=g) for _ in range(n)],
            [torch.randint(0, classes, (shape[0],), generator=g) for _ in range(n)])


def test_fp32_momentum_tracks_torch_sgd(cnn):
    """5 steps vs torch.optim.SGD(momentum=0.9) on the BN-folded model: losses, every parameter
    and every momentum buffer element within 1e-5 (float32 sums in another order)."""
    model, prog = cnn
    assert prog.state_names == prog.trainable + [f"{n}.momentum_buffer" for n in prog.trainable]
    assert all(not v.any() for k, v in prog.state_dict().items() if k.endswith(".momentum_buffer"))
    xs, ys = _batches(5)
    assert_sgd_tracks(prog, model, xs, ys, LR, tol=1e-5, momentum=M)
    sd = prog.state_dict()
    assert all(sd[f"{n}.momentum_buffer"].abs().max() > 0 for n in prog.trainable)


def test_momentum_zero_is_plain_sgd_and_bad_momentum_is_refused():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    prog = tinytrain.compile(model, torch.randn(1, 1, 4, 4), lr=0.1, momentum=0)
    assert "sgd_momentum" not in prog.stages["autodiff"] and "momentum_buffer" not in prog.stages["autodiff"]
    assert prog.state_names == prog.trainable == ["1.weight", "1.bias"]
    for bad in (-0.5, float("nan"), True, "0.9"):
        with pytest.raises(ValueError, match="momentum must be a finite number >= 0"):
            tinytrain.compile(model, torch.randn(1, 1, 4, 4), momentum=bad)


def test_nonfinite_loss_leaves_parameters_and_buffers_untouched(cnn):
    _, prog = cnn
    xs, ys = _batches(1, seed=3)
    prog.train_step(xs[0], ys[0])  # buffers are non-zero from here on
    good = {k: v.clone() for k, v in prog.state_dict().items()}
    huge = dict(good)
    huge["10.weight"] = torch.full_like(good["10.weight"], 3e38)
    huge["10.weight"][0] = -3e38
    prog.load_state_dict(huge)
    before = {k: v.clone() for k, v in prog.state_dict().items()}
    assert before["10.weight.momentum_buffer"].abs().max() > 0
    with pytest.raises(tinytrain.NonFiniteStepError, match="update was skipped"):
        prog.train_step(xs[0] + 1.0, ys[0])
    after = prog.state_dict()
    for k in before:  # bit for bit, buffers included
        assert torch.equal(before[k], after[k]), k
    prog.load_state_dict(good)


def test_state_dict_and_checkpoint_round_trip_with_buffers(cnn, tmp_path):
    """The buffers are in `state_dict()` and in the checkpoint: restoring either and taking the
    same step again gives bit for bit the same state as the first time."""
    from tinytrain import checkpoint

    _, prog = cnn
    xs, ys = _batches(3, seed=7)
    prog.train_step(xs[0], ys[0])
    saved = {k: v.clone() for k, v in prog.state_dict().items()}
    layout = checkpoint.StateLayout.from_arrays(prog.program_params())
    assert len(layout.entries) == 2 * len(prog.trainable)
    path = prog.save_checkpoint(tmp_path / "ck.bin", steps=1)
    prog.train_step(xs[1], ys[1])
    once = {k: v.clone() for k, v in prog.state_dict().items()}
    prog.train_step(xs[2], ys[2])
    assert prog.load_checkpoint(path).steps == 1
    assert all(torch.equal(prog.state_dict()[k], saved[k]) for k in saved)
    prog.train_step(xs[1], ys[1])
    assert all(torch.equal(prog.state_dict()[k], once[k]) for k in once)
    prog.load_state_dict(saved)
    prog.train_step(xs[1], ys[1])
    assert all(torch.equal(prog.state_dict()[k], once[k]) for k in once)
    # a zeroed buffer gives another step: the buffers really are restored state
    prog.load_state_dict(saved | {"10.weight.momentum_buffer": torch.zeros_like(saved["10.weight.momentum_buffer"])})
    prog.train_step(xs[1], ys[1])
    assert not torch.equal(prog.state_dict()["10.weight"], once["10.weight"])


def test_save_writes_buffers_and_the_state_report(cnn, tmp_path):
    import json

    _, prog = cnn
    out = prog.save(tmp_path / "m")
    meta = json.loads((out / "model.json").read_text())
    assert meta["momentum"] == M and meta["momentum_buffers"] == prog.momentum_buffers
    rows = {r["name"]: r for r in meta["trained_state_bytes"]["parameters"]}
    sd = prog.state_dict()
    for n in prog.trainable:
        nbytes = sd[n].numel() * 4
        assert (rows[n]["kind"], rows[n]["writeback"], rows[n]["momentum"], rows[n]["compiled"]) == \
            ("fp32", nbytes, nbytes, 2 * nbytes)
    assert len(list((out / "params").glob("*.momentum_buffer.npy"))) == len(prog.trainable)


# ---------------------------------------------------------------------------------------------
# int8 graph
# ---------------------------------------------------------------------------------------------

INT8_TRAINABLE = ["blocks.1.pointwise2.weight", "blocks.1.pointwise2.bias", "blocks.2.pointwise1.weight",
                  "fc.weight", "fc.bias"]
MASTER = "blocks.2.pointwise1.weight"


@pytest.fixture(scope="module")
def int8_momentum():
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    m = truncate(load_mcu_model("mbv2-w0.35"), 3)
    g = build_forward(m, classifier="fp32", num_classes=4, input_hw=32, seed=0, master_weights=[MASTER])
    values = {n: g.values[n].copy() for n in INT8_TRAINABLE}
    return m, values, compile_training(g, INT8_TRAINABLE, lr=0.3, momentum=M, qas=True, gradients=True)


def test_int8_momentum_matches_the_numpy_rule(int8_momentum):
    """3 steps: the buffer is `m v + g_qas` in f32 (g_qas = the integer-value gradient times the
    QAS factor), the int8/int32 write-back `clamp(p - round_half_even(lr v'))` exactly, the fp32
    master and the fp32 head `p - lr v'`."""
    m, _, prog = int8_momentum
    n = len(prog.trainable)
    state = prog.initial_params()
    assert len(state) == 2 * n and all(not b.any() for b in state[n:])
    rng = np.random.default_rng(3)
    lr, mom = np.float32(0.3), np.float32(M)
    for step in range(3):
        x = rng.integers(-128, 128, (1, 32, 32, 3)).astype(np.int8)
        y = [int(rng.integers(4))]
        grads, _ = prog.gradients(state, x, y)
        new, _ = prog.step(state, x, y)
        for i, (name, p, v, g) in enumerate(zip(prog.trainable, state[:n], state[n:], grads)):
            if not name.startswith("fc."):
                c = m.conv(name.rsplit(".", 1)[0])
                s = c.w_scales.astype(np.float64) * (1.0 if name.endswith(".weight") else c.x_scale)
                g = g * (s ** -2).astype(np.float32)
            v_new = new[n + i]
            np.testing.assert_allclose(v_new, mom * v + g, rtol=1e-6, atol=1e-6 * np.abs(g).max(),
                                       err_msg=f"{name} buffer, step {step}")
            assert new[i].dtype == p.dtype
            if p.dtype == np.float32:  # fp32 head, fp32 master: the host may fuse p - lr v'
                step_ = lr * v_new         # into one rounding: 2 ulps of the larger operand
                err = np.abs(new[i] - (p - step_)) - 2 * np.finfo(np.float32).eps * np.maximum(abs(p), abs(step_))
                assert err.max() <= 0, f"{name}, step {step}: off by more than 2 ulps"
            else:
                lo, hi = (-127, 127) if p.dtype == np.int8 else (-(2**31), 2**31 - 1)
                want = np.clip(p.astype(np.int64) - np.round(lr * v_new).astype(np.int64), lo, hi).astype(p.dtype)
                np.testing.assert_array_equal(new[i], want, err_msg=f"{name}, step {step}")
        state = new
    assert not np.array_equal(state[0], prog.initial_params()[0]), "the int8 weight never moved"


def test_int8_nonfinite_loss_skips_parameters_and_buffers(int8_momentum):
    _, _, prog = int8_momentum
    n = len(prog.trainable)
    x = np.zeros((1, 32, 32, 3), np.int8)
    state, _ = prog.step(prog.initial_params(), x, [1])
    bad = list(state)
    bad[prog.trainable.index("fc.weight")] = np.full_like(state[prog.trainable.index("fc.weight")], np.inf)
    new, loss = prog.step(bad, x, [1])
    assert not np.isfinite(loss)
    for a, b in zip(new, bad):
        np.testing.assert_array_equal(a, b)
    assert any(b.any() for b in new[n:])


def test_int8_state_report_equals_the_parameter_sizes(int8_momentum):
    """Integer write-back: int8 weights 1 B, int32 biases 4 B, fp32 4 B per value; fp32 master
    copies: the f32 master + its int8 view (5 B per weight value); momentum: 4 B per value."""
    _, values, prog = int8_momentum
    rep = prog.state_report()
    assert [e.name for e in rep.entries] == prog.trainable and rep.has_momentum
    tot = dict(writeback=0, master=0, momentum=0, compiled=0)
    for e in rep.entries:
        a = values[e.name]
        weight8 = e.name.endswith(".weight") and not e.name.startswith("fc.")
        wb = a.size if weight8 else a.nbytes
        ms = a.size * 4 + a.size if weight8 else a.nbytes
        mom = a.size * np.dtype(np.float32).itemsize
        compiled = (ms if e.name == MASTER else wb) + mom
        assert (e.elements, e.writeback, e.master, e.momentum, e.compiled) == (a.size, wb, ms, mom, compiled), e
        for k, v in (("writeback", wb), ("master", ms), ("momentum", mom), ("compiled", compiled)):
            tot[k] += v
    assert {k: rep.totals()[k] for k in tot} == tot
    assert rep.entries[0].kind == "int8 weight" and rep.entries[1].kind == "int32 bias"
    assert rep.entries[2].kind == "fp32 master of an int8 weight" and rep.entries[3].kind == "fp32"
    assert "total" in rep.table().splitlines()[-1]


# ---------------------------------------------------------------------------------------------
# Cortex-M4 (QEMU)
# ---------------------------------------------------------------------------------------------


def test_cortex_m4_momentum_is_bit_exact_with_the_host_and_checkpoints_buffers(tmp_path):
    """3 steps in QEMU (mps2-an386): parameters and buffers after every step bit for bit those
    of the same linalg on a generic-x86 host (no FMA, like the M4); the device's NVM checkpoint
    holds the buffers and loads into the host program."""
    import cortexm_reference as reference

    torch.manual_seed(0)
    model = small_cnn(num_classes=4, in_channels=1, width=4).eval()
    prog = tinytrain.compile(model, torch.randn(1, 1, 8, 8), lr=LR, momentum=M, target="cortex-m4",
                             build_dir=tmp_path / "fw")
    n = len(prog.trainable)
    assert len(prog.firmware.state) == 2 * n
    start = prog.program_params()
    xs, ys = _batches(3, seed=2, shape=(1, 1, 8, 8))
    xs, ys = torch.cat(xs), torch.cat(ys)
    nvm = tmp_path / "dev.nvm"
    res = prog.run_qemu(train=(xs, ys), evaluate=(xs, ys), workdir=tmp_path / "run", nvm=nvm,
                        checkpoint=tinytrain.CheckpointConfig(every=1, page_count=0))
    assert res.returncode == 0, res.output[-2000:]
    host = reference.HostModule(reference.compile_vmfb(prog.stages["linalg"]))
    nhwc = [x.permute(1, 2, 0).numpy()[None] for x in xs]
    ref = host.train(start, nhwc, [int(y) for y in ys])
    reference.assert_trace_matches(res.trace, ref, "cortex-m4")
    # predict binds the parameters only (the leading part of the state) on the device too
    for tag, state in (("before", start), ("after", ref[-1][0])):
        correct = sum(int(np.argmax(host.predict(state[:n], x))) == int(y) for x, y in zip(nhwc, ys))
        assert res.evals[tag] == (correct, len(ys)), tag
    assert all(np.abs(b).max() > 0 for b in ref[-1][0][n:])
    prog.load_checkpoint(nvm)
    for got, want in zip(prog.program_params(), ref[-1][0]):
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_momentum_prints_the_state_report_and_refuses_a_bad_value(cnn, capsys, tmp_path, monkeypatch):
    """`--momentum` reaches compile(); the CLI prints the report and saves it (the compile
    itself is the `cnn` fixture's, to keep the test fast)."""
    import json

    import tinytrain.compiler as c
    from test_cli_errors import MODEL_PY, assert_one_line_error, run_cli
    from tinytrain import cli, compiler

    def fake_compile(model, x, **kw):
        assert kw["momentum"] == 0.9
        return cnn[1]

    (tmp_path / "model.py").write_text(MODEL_PY)
    monkeypatch.setattr(compiler, "compile", fake_compile)
    rc, out, err = run_cli(capsys, "compile", tmp_path / "model.py", "-o", tmp_path / "o", "--momentum", "0.9")
    assert rc == 0, err
    assert "trained state in SRAM per update option (momentum buffers: compiled in)" in out
    meta = json.loads((tmp_path / "o" / "model.json").read_text())
    assert meta["momentum"] == 0.9 and len(meta["momentum_buffers"]) == len(meta["trainable"])
    assert out.splitlines()[-1].split()[-1] == str(meta["trained_state_bytes"]["total"]["compiled"])
    monkeypatch.undo()
    monkeypatch.setattr(c, "import_model", lambda *a, **k: pytest.fail("imported despite a bad momentum"))
    rc, _, err = run_cli(capsys, "compile", tmp_path / "model.py", "-o", tmp_path / "bad", "--momentum=-0.5")
    assert_one_line_error(rc, err, r"momentum must be a finite number >= 0")
    assert not (tmp_path / "bad").exists()


def test_quantized_user_model_with_momentum_saves_the_state_report(tmp_path):
    """`compile(quantize="int8", momentum=...)`: int8 weight, int32 bias and fp32 head trained
    with buffers; the report in `model.json` equals the state_dict's sizes (int write-back: the
    parameters' own bytes; fp32 master: 5 B per int8 weight value; momentum: 4 B per value)."""
    import json

    from tinytrain.models import residual_cnn

    torch.manual_seed(0)
    trainable = ["block.pw.weight", "block.pw.bias", "fc.weight", "fc.bias"]
    prog = tinytrain.compile(residual_cnn().eval(), torch.zeros(1, 1, 8, 8), quantize="int8",
                             calibration=torch.randn(16, 1, 8, 8), trainable=trainable, lr=0.05, momentum=M)
    x = torch.randn(1, 1, 8, 8)
    losses = [prog.train_step(x, [3]) for _ in range(3)]
    assert losses[-1] < losses[0]
    sd = prog.state_dict()
    assert sd["block.pw.weight"].dtype == torch.int8 and sd["block.pw.weight.momentum_buffer"].abs().max() > 0
    rows = {r["name"]: r for r in json.loads((prog.save(tmp_path / "q") / "model.json").read_text())
            ["trained_state_bytes"]["parameters"]}
    for n in trainable:
        t = sd[n]
        own = t.numel() * t.element_size()
        master = 5 * t.numel() if t.dtype == torch.int8 else own
        assert (rows[n]["writeback"], rows[n]["master"], rows[n]["momentum"], rows[n]["compiled"]) == \
            (own, master, 4 * t.numel(), own + 4 * t.numel()), n
