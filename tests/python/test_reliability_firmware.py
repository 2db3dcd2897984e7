"""Learning that survives power loss and bad data, on the emulated Cortex-M4 (issue 11).

The firmware harness checkpoints the trained state into the board's NVM (a host file through
semihosting, kept between QEMU runs) and can cut the power after the k-th NVM erase/program
operation. For every k of a 3-checkpoint run, a second boot must restore exactly the last
checkpoint whose commit completed -- never a mix of old and new -- and, resuming, end with the
parameters of the host's uninterrupted replay, bit for bit (the M4 code has no FMA).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as programs  # noqa: E402
import cortexm_reference as reference  # noqa: E402
from tinytrain import checkpoint  # noqa: E402
from tinytrain.lowering.cortexm import firmware, iree_static  # noqa: E402

STEPS = 3
PAGE = 128
# state = W 16x4 f32 (256 B) + b 4 f32 (64 B aligned) = 320 B: 1 header + 3 payload pages.
SLOT_PAGES = 4
OPS_PER_SAVE = 2 * SLOT_PAGES  # erase each page, program each page
PAGES = 2 * SLOT_PAGES


@pytest.fixture(scope="module")
def sgd(tmp_path_factory):
    rng = np.random.default_rng(7)
    text = programs.sgd_linear_mlir(16, 4, 0.05)
    params = [rng.standard_normal((16, 4)).astype(np.float32) * 0.3, np.zeros(4, np.float32)]
    xs = rng.standard_normal((STEPS, 1, 16)).astype(np.float32)
    ys = [int(v) for v in rng.integers(0, 4, STEPS)]
    d = tmp_path_factory.mktemp("sgd")
    module = iree_static.build_static_module(text, d / "m", target="cortex-m4", prefix="sgd",
                                             state_init=params)
    fw = firmware.build_firmware(module, d / "fw", board="mps2-an386")
    host = reference.HostModule(reference.compile_vmfb(text))
    return fw, host, params, xs, ys


def _cfg(**kw):
    return firmware.CheckpointConfig(page_size=PAGE, page_count=PAGES, **kw)


def _equal(a, b):
    return all(np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(a, b))


def test_checkpoints_written_by_the_device_read_on_the_host(sgd, tmp_path):
    fw, host, params, xs, ys = sgd
    res = firmware.run_qemu(fw, tmp_path, train=(xs, ys), checkpoint=_cfg(every=1), timeout=60)
    assert res.returncode == 0, res.output
    assert [(c["op"], c["status"], c["slot"], c["seq"], c["steps"]) for c in res.checkpoints] == \
        [("save", "TT_OK", "AB"[i % 2], i + 1, i + 1) for i in range(STEPS)]
    ref = host.train(params, xs, ys)
    assert _equal(res.trace[-1][0], ref[-1][0]) and _equal(res.final_state, ref[-1][0])
    nvm = (tmp_path / "tt_nvm.bin").read_bytes()
    assert len(nvm) == PAGE * PAGES
    layout = checkpoint.StateLayout.from_firmware(fw)
    ck = checkpoint.read_checkpoint(nvm, model_id=layout.model_id())
    assert (ck.sequence, ck.steps, ck.slot, ck.page_size) == (STEPS, STEPS, "A", PAGE)
    assert _equal(layout.unpack(ck.payload), ref[-1][0])
    # The host computes the same model identity and record bytes as the device.
    rec = checkpoint.encode_record(layout.pack(ref[-1][0]), layout.model_id(), sequence=STEPS,
                                   steps=STEPS, page_size=PAGE)
    assert nvm[:len(rec)] == rec


@pytest.mark.parametrize("k", range(1, STEPS * OPS_PER_SAVE + 1))
def test_power_cut_after_every_nvm_operation(sgd, tmp_path, k):
    fw, host, params, xs, ys = sgd
    ref = host.train(params, xs, ys)
    tear = bool(k % 2)  # odd k: the cut also tears the next operation in half
    cut = firmware.run_qemu(fw, tmp_path, train=(xs, ys), timeout=60,
                            checkpoint=_cfg(every=1, cut_after=k, tear=tear))
    saved = k // OPS_PER_SAVE  # checkpoints whose header page (last operation) was programmed
    if k == STEPS * OPS_PER_SAVE:  # the cut never comes: the run ends normally
        assert cut.returncode == 0, cut.output
    else:
        assert cut.returncode == 99 and cut.power_cut == k, cut.output
    layout = checkpoint.StateLayout.from_firmware(fw)
    nvm = tmp_path / "tt_nvm.bin"
    if saved == 0:
        with pytest.raises(checkpoint.CheckpointError) as e:
            checkpoint.read_checkpoint(nvm, model_id=layout.model_id())
        assert e.value.status in ("TT_ERR_NO_CHECKPOINT", "TT_ERR_CKPT_CORRUPT")
    else:
        ck = checkpoint.read_checkpoint(nvm, model_id=layout.model_id())
        assert ck.steps == saved and ck.sequence == saved
        assert _equal(layout.unpack(ck.payload), ref[saved - 1][0])  # exactly, never a mix
    # Power back: restore, resume on the records not yet learned, end where the host ends.
    boot = firmware.run_qemu(fw, tmp_path, train=(xs, ys), timeout=60,
                             checkpoint=_cfg(every=1, restore=True))
    assert boot.returncode == 0, boot.output
    restore = boot.checkpoints[0]
    assert restore["op"] == "restore"
    if saved == 0:
        assert restore["status"] in ("TT_ERR_NO_CHECKPOINT", "TT_ERR_CKPT_CORRUPT")
    else:
        assert (restore["status"], restore["steps"], restore["seq"]) == ("TT_OK", saved, saved)
    assert len(boot.steps) == STEPS - saved
    assert _equal(boot.final_state, ref[-1][0]) and boot.final_steps == (STEPS, 0)


def _uncut_nvm(sgd, wd):
    fw, _, _, xs, ys = sgd
    res = firmware.run_qemu(fw, wd, train=(xs[:2], ys[:2]), checkpoint=_cfg(every=1), timeout=60)
    assert res.returncode == 0, res.output
    return res  # slot A: after step 1 (seq 1), slot B: after step 2 (seq 2)


def _restore_only(sgd, wd):
    fw = sgd[0]
    res = firmware.run_qemu(fw, wd, checkpoint=_cfg(restore=True), timeout=60)
    assert res.returncode == 0, res.output
    return res.checkpoints[0], res.final_state


@pytest.mark.parametrize("damage", ["flip_payload", "flip_header", "erase_header", "erase_payload"])
def test_damaged_newest_slot_falls_back_to_the_older(sgd, tmp_path, damage):
    first = _uncut_nvm(sgd, tmp_path)
    nvm = tmp_path / "tt_nvm.bin"
    img = bytearray(nvm.read_bytes())
    b = SLOT_PAGES * PAGE  # slot B holds the newest
    if damage == "flip_payload":
        img[b + PAGE + 77] ^= 0x04
    elif damage == "flip_header":
        img[b + 8] ^= 0x01  # the sequence number: caught by the CRC
    elif damage == "erase_header":
        img[b:b + PAGE] = b"\xff" * PAGE
    else:
        img[b + 2 * PAGE:b + 3 * PAGE] = b"\xff" * PAGE
    nvm.write_bytes(bytes(img))
    info, state = _restore_only(sgd, tmp_path)
    assert (info["status"], info["slot"], info["seq"], info["steps"]) == ("TT_OK", "A", 1, 1)
    assert info["slotB"] == ("TT_ERR_NO_CHECKPOINT" if damage == "erase_header" else "TT_ERR_CKPT_CORRUPT")
    assert _equal(state, first.trace[0][0])


def test_both_slots_damaged_or_another_model_is_refused(sgd, tmp_path):
    fw, _, params, _, _ = sgd
    _uncut_nvm(sgd, tmp_path)
    nvm = tmp_path / "tt_nvm.bin"
    good = nvm.read_bytes()
    img = bytearray(good)
    img[PAGE + 3] ^= 0x80
    img[SLOT_PAGES * PAGE + PAGE + 3] ^= 0x80
    nvm.write_bytes(bytes(img))
    info, state = _restore_only(sgd, tmp_path)
    assert (info["status"], info["slot"]) == ("TT_ERR_CKPT_CORRUPT", "-")
    assert _equal(state, params)  # the device keeps its flash parameters
    # An intact record (good CRC) of a model with another parameter layout.
    other = checkpoint.StateLayout.from_arrays([np.zeros((16, 4), np.float32),
                                                np.zeros((2, 2), np.float32)])
    assert other.state_size == checkpoint.StateLayout.from_firmware(fw).state_size
    rec = checkpoint.encode_record(other.pack([np.ones((16, 4)), np.ones((2, 2))]),
                                   other.model_id(), sequence=9, page_size=PAGE)
    img = bytearray(b"\xff" * len(good))
    img[:len(rec)] = rec
    nvm.write_bytes(bytes(img))
    info, state = _restore_only(sgd, tmp_path)
    assert (info["status"], info["slotA"], info["slotB"]) == \
        ("TT_ERR_CKPT_MODEL", "TT_ERR_CKPT_MODEL", "TT_ERR_NO_CHECKPOINT")
    assert _equal(state, params)


def test_one_nan_pixel_is_refused_on_the_device_and_training_goes_on(sgd, tmp_path):
    fw, host, params, xs, ys = sgd
    bad = xs.copy()
    bad[1, 0, 5] = np.nan
    res = firmware.run_qemu(fw, tmp_path, train=(bad, ys), checkpoint=_cfg(every=1), timeout=60)
    assert res.returncode == 0, res.output
    assert res.rejected == [(1, "TT_ERR_NONFINITE")]
    assert _equal(res.trace[1][0], res.trace[0][0])  # parameters unchanged by the bad sample
    ref = host.train(params, xs[[0, 2]], [ys[0], ys[2]])
    assert _equal(res.final_state, ref[-1][0]) and res.final_steps == (2, 1)
    assert [c["steps"] for c in res.checkpoints] == [1, 2]
    assert res.checkpoints[-1]["rejected"] == 1


@pytest.mark.parametrize("k", [3, 2 * OPS_PER_SAVE - 1])
def test_host_board_power_cut_and_resume_under_asan(sgd, tmp_path, k):
    """The same harness and NVM file layer built natively (stdio files, ASan + UBSan)."""
    _, host, params, xs, ys = sgd
    fw = firmware.compile_firmware(programs.sgd_linear_mlir(16, 4, 0.05), tmp_path / "b",
                                   target="host", params=params, prefix="sgd")
    ref = host.train(params, xs, ys)
    cut = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys),
                            checkpoint=_cfg(every=1, cut_after=k, tear=True))
    assert cut.returncode == 99 and cut.power_cut == k, cut.output
    boot = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys),
                             checkpoint=_cfg(every=1, restore=True))
    assert boot.returncode == 0, boot.output
    saved = k // OPS_PER_SAVE
    status = boot.checkpoints[0]["status"]
    assert (status, boot.checkpoints[0]["steps"]) == \
        (("TT_OK", saved) if saved else ("TT_ERR_NO_CHECKPOINT", 0)) or \
        (saved == 0 and status == "TT_ERR_CKPT_CORRUPT")
    assert _equal(boot.final_state, ref[-1][0]) and boot.final_steps == (STEPS, 0)


def test_a_step_that_overflows_is_reported_and_rolled_back_to_the_checkpoint(sgd, tmp_path):
    """A finite but huge sample makes the step itself overflow (loss and parameters Inf/NaN):
    the runtime reports TT_ERR_NONFINITE after the step, counts it, and the harness restores
    the last checkpoint, so the bad sample leaves no trace in the model."""
    fw, host, params, xs, ys = sgd
    bad = xs.copy()
    bad[1] = 3e38
    res = firmware.run_qemu(fw, tmp_path, train=(bad, ys), checkpoint=_cfg(every=1), timeout=60)
    assert res.returncode == 0, res.output
    assert res.rejected == [(1, "TT_ERR_NONFINITE")]
    rollback = [c for c in res.checkpoints if c["op"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["status"] == "TT_OK" and rollback[0]["steps"] == 1
    assert _equal(res.trace[1][0], res.trace[0][0])  # the state after the bad record: restored
    assert not np.isfinite(res.trace[1][1])  # its loss was not finite
    ref = host.train(params, xs[[0, 2]], [ys[0], ys[2]])
    assert _equal(res.final_state, ref[-1][0]) and res.final_steps == (2, 1)


def test_power_cuts_at_a_seeded_sample_of_operations_conv_model(tmp_path):
    """A conv net with four trained tensors (1.6 KB of state, 8 pages per slot): cuts at a seeded
    sample of NVM operations across three checkpoints, each restored exactly and resumed."""
    text, params = programs.conv_train_mlir()
    rng = np.random.default_rng(11)
    xs = rng.standard_normal((STEPS, 1, 8, 8, 1)).astype(np.float32)
    ys = [int(v) for v in rng.integers(0, 10, STEPS)]
    module = iree_static.build_static_module(text, tmp_path / "m", target="cortex-m4",
                                             prefix="conv", state_init=params)
    fw = firmware.build_firmware(module, tmp_path / "fw", board="mps2-an386")
    ref = reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)
    layout = checkpoint.StateLayout.from_firmware(fw)
    page, slot = 256, 1 + -(-layout.state_size // 256)
    ops = 2 * slot
    cfg = dict(page_size=page, page_count=2 * slot)
    for i, k in enumerate(sorted(rng.choice(np.arange(1, STEPS * ops), 5, replace=False))):
        wd = tmp_path / f"cut{i}"
        cut = firmware.run_qemu(fw, wd, train=(xs, ys), timeout=60,
                                checkpoint=firmware.CheckpointConfig(every=1, cut_after=int(k),
                                                                     tear=bool(k % 2), **cfg))
        assert cut.returncode == 99, cut.output
        saved = int(k) // ops
        if saved:
            ck = checkpoint.read_checkpoint(wd / "tt_nvm.bin", model_id=layout.model_id())
            assert ck.steps == saved and _equal(layout.unpack(ck.payload), ref[saved - 1][0])
        boot = firmware.run_qemu(fw, wd, train=(xs, ys), timeout=60,
                                 checkpoint=firmware.CheckpointConfig(every=1, restore=True, **cfg))
        assert boot.returncode == 0, boot.output
        assert boot.checkpoints[0]["steps"] == saved
        assert _equal(boot.final_state, ref[-1][0]), f"cut after {k} operations"
