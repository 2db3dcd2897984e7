"""Checkpoints through the public API: what a device learned comes back to the host (`prog`
and a PyTorch state_dict), host checkpoints are atomic, bad checkpoints are refused."""

import os

import numpy as np
import pytest
import torch
import torch.nn as nn

import tinytrain
from tinytrain import checkpoint
from tinytrain.lowering.cortexm import firmware


def _net(seed=0, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, classes)).eval()


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    x = torch.randn(1, 1, 8, 8)
    m4 = tinytrain.compile(_net(), x, lr=0.05, target="cortex-m4",
                           build_dir=tmp_path_factory.mktemp("m4"))
    host = tinytrain.compile(_net(), x, lr=0.05)
    return m4, host


def _params_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_device_checkpoint_loads_into_prog_and_a_torch_state_dict(progs, tmp_path):
    m4, host = progs
    g = torch.Generator().manual_seed(3)
    xs = torch.randn(4, 1, 8, 8, generator=g)
    ys = [0, 2, 1, 2]
    nhwc = [xs[i:i + 1].permute(0, 2, 3, 1).numpy() for i in range(4)]
    res = firmware.run_qemu(m4.firmware, tmp_path, train=(nhwc, ys), timeout=120,
                            checkpoint=firmware.CheckpointConfig(every=2, page_size=256,
                                                                 page_count=16))
    assert res.returncode == 0, res.output
    assert [c["steps"] for c in res.checkpoints] == [2, 4]
    nvm = tmp_path / "tt_nvm.bin"
    before = host.program_params()
    ck = host.load_checkpoint(nvm)  # a host-compiled prog of the same model
    assert (ck.steps, ck.sequence, ck.slot) == (4, 2, "B")
    assert _params_equal(host.program_params(), res.final_state)
    assert not _params_equal(before, res.final_state)
    # Training on the host from the device's state continues the device's run: one more
    # step on both sides.
    sd = checkpoint.state_dict_from_checkpoint(m4, nvm)
    model = _net()
    model.load_state_dict(sd)  # names and layout of the original PyTorch model
    for k, v in host.state_dict().items():
        assert torch.equal(v, sd[k]), k
    with torch.no_grad():
        ref = model(xs).numpy()
    got = np.concatenate([host.predict(xs[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_host_checkpoint_round_trip_and_atomic_write(progs, tmp_path, monkeypatch):
    _, host = progs
    path = tmp_path / "ckpt.bin"
    host.save_checkpoint(path, steps=5)
    saved = host.program_params()
    assert checkpoint.read_checkpoint(path).sequence == 1
    host.train_step(torch.randn(1, 1, 8, 8), [1])
    assert not _params_equal(host.program_params(), saved)
    ck = host.load_checkpoint(path)
    assert ck.steps == 5 and _params_equal(host.program_params(), saved)
    host.save_checkpoint(path)
    assert checkpoint.read_checkpoint(path).sequence == 2
    good = path.read_bytes()
    # A crash before the rename leaves the previous file, and no temporary file behind.
    host.train_step(torch.randn(1, 1, 8, 8), [0])

    def crash(*a, **k):
        raise OSError("power lost")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power lost"):
        host.save_checkpoint(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.bin"]


def test_bad_checkpoints_are_refused_and_leave_prog_unchanged(progs, tmp_path):
    _, host = progs
    path = tmp_path / "c.bin"
    host.save_checkpoint(path)
    now = host.program_params()
    raw = bytearray(path.read_bytes())
    for pos in (0, 8, 30, 61, 64, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 0x20
        (tmp_path / "bad.bin").write_bytes(bytes(bad))
        with pytest.raises(checkpoint.CheckpointError) as e:
            host.load_checkpoint(tmp_path / "bad.bin")
        assert e.value.status == "TT_ERR_CKPT_CORRUPT", pos
    (tmp_path / "erased.bin").write_bytes(b"\xff" * 512)
    with pytest.raises(checkpoint.CheckpointError) as e:
        host.load_checkpoint(tmp_path / "erased.bin")
    assert e.value.status == "TT_ERR_NO_CHECKPOINT"
    other = tinytrain.compile(_net(classes=4), torch.randn(1, 1, 8, 8))
    other.save_checkpoint(tmp_path / "other.bin")
    with pytest.raises(checkpoint.CheckpointError, match="another parameter layout") as e:
        host.load_checkpoint(tmp_path / "other.bin")
    assert e.value.status == "TT_ERR_CKPT_MODEL"
    assert _params_equal(host.program_params(), now)


def test_non_finite_input_is_refused_before_the_step(progs):
    _, host = progs
    now = host.program_params()
    x = torch.randn(1, 1, 8, 8)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x2 = x.clone()
        x2[0, 0, 3, 4] = bad
        with pytest.raises(ValueError, match="NaN/Inf"):
            host.train_step(x2, [1])
    with pytest.raises(ValueError, match="NaN/Inf"):
        host.train_step(np.full((1, 1, 8, 8), 1e300), [1])  # beyond float32
    with pytest.raises(TypeError, match="real numbers"):
        host.train_step(np.zeros((1, 1, 8, 8), np.complex64), [1])
    assert _params_equal(host.program_params(), now)
    # A non-finite state is never written as a checkpoint.
    good = host.state_dict()
    name = host.trainable[0]
    host.load_state_dict({name: torch.full_like(good[name], float("nan"))})
    with pytest.raises(checkpoint.CheckpointError) as e:
        host.save_checkpoint("/nonexistent-dir/never.bin")
    assert e.value.status == "TT_ERR_NONFINITE"
    host.load_state_dict(good)
    assert _params_equal(host.program_params(), now)


def _samples(n=4, seed=5):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n, 1, 8, 8, generator=g)
    return xs, [int(v) for v in torch.randint(0, 3, (n,), generator=g)]


def test_run_qemu_checkpoints_and_resumes_through_the_api(progs, tmp_path):
    """`prog.run_qemu(checkpoint=..., nvm=...)`: a first boot learns 2 samples and checkpoints
    them into an NVM file; a second boot restores them and learns the other 2; the result is
    bit for bit the uninterrupted run's, and the NVM file loads on the host."""
    m4, host = progs
    xs, ys = _samples()
    whole = m4.run_qemu((xs, ys), workdir=tmp_path / "whole")
    assert whole.returncode == 0, whole.output
    nvm = tmp_path / "device.nvm"
    first = m4.run_qemu((xs[:2], ys[:2]), workdir=tmp_path / "a", nvm=nvm,
                        checkpoint=tinytrain.CheckpointConfig(every=1, page_count=0))
    assert first.returncode == 0, first.output
    assert [(c["op"], c["status"], c["steps"]) for c in first.checkpoints] == \
        [("save", "TT_OK", 1), ("save", "TT_OK", 2)]
    assert nvm.is_file() and not (tmp_path / "device.nvm.tmp").exists()
    # Another work folder: only the NVM file carries the state over.
    second = m4.run_qemu((xs, ys), workdir=tmp_path / "b", nvm=nvm,
                         checkpoint=tinytrain.CheckpointConfig(every=1, restore=True, page_count=0))
    assert second.returncode == 0, second.output
    assert (second.checkpoints[0]["op"], second.checkpoints[0]["status"],
            second.checkpoints[0]["steps"]) == ("restore", "TT_OK", 2)
    assert len(second.steps) == 2 and second.final_steps == (4, 0)
    assert _params_equal(second.final_state, whole.trace[-1][0])
    ck = host.load_checkpoint(nvm)
    assert (ck.steps, ck.sequence) == (4, 4)
    assert _params_equal(host.program_params(), whole.trace[-1][0])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(checkpoint="every=1"), TypeError, "must be a CheckpointConfig"),
    (dict(checkpoint=firmware.CheckpointConfig(every=-1)), ValueError, r"every=-1"),
    (dict(checkpoint=firmware.CheckpointConfig(every=1.5)), TypeError, "every must be a whole"),
    (dict(checkpoint=firmware.CheckpointConfig(restore=1)), TypeError, "restore must be True"),
    (dict(checkpoint=firmware.CheckpointConfig(page_size=32)), ValueError, "at least 64 bytes"),
    (dict(checkpoint=firmware.CheckpointConfig(page_size=64, page_count=4)), ValueError,
     "cannot hold two checkpoint slots"),
    (dict(nvm="x.nvm"), ValueError, "pass checkpoint="),
    (dict(nvm="missing.nvm", checkpoint=firmware.CheckpointConfig(restore=True)), ValueError,
     "nothing to restore"),
    (dict(nvm="short.nvm", checkpoint=firmware.CheckpointConfig(every=1)), ValueError,
     "does not fit 256-byte pages"),
])
def test_run_qemu_checkpoint_arguments_are_checked_before_qemu(progs, tmp_path, monkeypatch,
                                                               kwargs, error, match):
    m4, _ = progs
    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.nvm").write_bytes(b"\xff" * 300)
    xs, ys = _samples(1)
    with pytest.raises(error, match=match):
        m4.run_qemu((xs, ys), workdir=tmp_path / "wd", **kwargs)
    assert not (tmp_path / "wd" / "tt_trace.bin").exists()  # QEMU never ran


def test_cli_run_qemu_checkpoint_every_nvm_restore(progs, tmp_path, capsys):
    from tinytrain import cli

    m4, host = progs
    xs, ys = _samples()
    nhwc = xs.permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "a.npz", x=nhwc[:3], y=np.array(ys[:3]))
    np.savez(tmp_path / "all.npz", x=nhwc, y=np.array(ys))
    project = str(m4.firmware.project_dir)
    nvm = str(tmp_path / "dev.nvm")
    assert cli.main(["run-qemu", project, "--train", str(tmp_path / "a.npz"),
                     "--workdir", str(tmp_path / "w1"), "--checkpoint-every", "2",
                     "--nvm", nvm]) == 0
    out = capsys.readouterr().out
    assert out.count("CKPT save status=TT_OK") == 1 and "steps=2" in out
    assert cli.main(["run-qemu", project, "--train", str(tmp_path / "all.npz"),
                     "--workdir", str(tmp_path / "w2"), "--restore", "--nvm", nvm,
                     "--checkpoint-every", "1"]) == 0
    out = capsys.readouterr().out
    assert "CKPT restore status=TT_OK" in out and out.count("\nSTEP ") + out.startswith("STEP") == 2
    ck = checkpoint.read_checkpoint(nvm)
    assert ck.steps == 4
    whole = m4.run_qemu((xs, ys), workdir=tmp_path / "whole")
    assert _params_equal(checkpoint.StateLayout.from_firmware(m4.firmware).unpack(ck.payload),
                         whole.trace[-1][0])


@pytest.mark.parametrize("argv, match", [
    (["--checkpoint-every", "0"], "--checkpoint-every 0: must be"),
    (["--nvm", "x.nvm"], "--nvm FILE is the board's checkpoint memory"),
    (["--restore", "--nvm", "missing.nvm"], "does not exist (nothing to restore)"),
])
def test_cli_run_qemu_checkpoint_errors(progs, tmp_path, capsys, monkeypatch, argv, match):
    from tinytrain import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["run-qemu", str(progs[0].firmware.project_dir), "--workdir",
                     str(tmp_path / "w"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinytrain: error: ") and match in err
