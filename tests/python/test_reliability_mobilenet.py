"""Power cuts while MobileNetV2 saves its checkpoint, on the emulated Cortex-M4 (issue 11).

MobileNetV2-w0.35 at 64x64 (classifier trained: 1280x10 + 10 parameters, 51 KB of state; the
1.5 MB of frozen weights in flash), compiled as the device tests compile it (fp32 activations
do not fit 256/320 KB, so a 512 KB budget: see test_cortexm_frontend.py). One firmware is
built for the module; the power is cut after a seeded sample of NVM operations of the
checkpoints written after step 1 and step 2. A second boot restores exactly the old or the new
checkpoint (bit for bit, never a mix) and, resuming, ends with the parameters of the host's
uninterrupted replay (bit-exact: the M4 code has no FMA).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_reference as reference  # noqa: E402
from tinytrain import checkpoint  # noqa: E402
from tinytrain.lowering.cortexm import firmware, iree_static  # noqa: E402

STEPS = 2
PAGE = 2048  # 1 header page + 26 payload pages per slot: 54 erase/program operations per save


@pytest.fixture(scope="module")
def mbv2(tmp_path_factory):
    import torch

    import tinytrain
    from tinytrain.models import mobilenet_v2

    torch.manual_seed(0)
    prog = tinytrain.compile(mobilenet_v2(0.35).eval(), torch.randn(1, 3, 64, 64),
                             trainable=["classifier.weight", "classifier.bias"], lr=0.01)
    params = [p.copy() for p in prog.program_params()]
    rng = np.random.default_rng(23)
    xs = rng.standard_normal((STEPS, 1, 64, 64, 3)).astype(np.float32)
    ys = [int(v) for v in rng.integers(0, 10, STEPS)]
    text = prog.stages["linalg"]
    d = tmp_path_factory.mktemp("mbv2")
    module = iree_static.build_static_module(text, d / "m", target="cortex-m4", prefix="mbv2",
                                             state_init=params, sram_bytes=None)
    fw = firmware.build_firmware(module, d / "fw", board="mps2-an386", sram_kb=512)
    ref = reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)
    return fw, params, xs, ys, ref


def _equal(a, b):
    return len(a) == len(b) and all(np.array_equal(np.asarray(x).view(np.uint32),
                                                   np.asarray(y).view(np.uint32))
                                    for x, y in zip(a, b))


def test_power_cuts_during_mobilenet_v2_checkpoints(mbv2, tmp_path):
    fw, params, xs, ys, ref = mbv2
    layout = checkpoint.StateLayout.from_firmware(fw)
    slot = 1 + -(-layout.state_size // PAGE)
    ops = 2 * slot  # erase + program of every page of the slot
    cfg = dict(page_size=PAGE, page_count=2 * slot)
    rng = np.random.default_rng(2026)
    # The commit of checkpoint 1 (the new one must come back) and two seeded operations inside
    # checkpoint 2 (slot B half written: the old one, checkpoint 1, must come back).
    cuts = [ops] + sorted(int(k) for k in rng.choice(np.arange(ops + 1, 2 * ops), 2, replace=False))
    for i, k in enumerate(cuts):
        wd = tmp_path / f"cut{k}"
        cut = firmware.run_qemu(fw, wd, train=(xs, ys), timeout=120,
                                checkpoint=firmware.CheckpointConfig(every=1, cut_after=k,
                                                                     tear=bool(i % 2), **cfg))
        assert cut.returncode == 99 and cut.power_cut == k, cut.output
        ck = checkpoint.read_checkpoint(wd / "tt_nvm.bin", model_id=layout.model_id())
        assert (ck.steps, ck.sequence, ck.slot) == (1, 1, "A"), f"cut after {k} operations"
        assert _equal(layout.unpack(ck.payload), ref[0][0]), f"cut after {k}: not checkpoint 1"
        assert not _equal(ref[0][0], ref[1][0]) and not _equal(ref[0][0], params)
        boot = firmware.run_qemu(fw, wd, train=(xs, ys), timeout=120,
                                 checkpoint=firmware.CheckpointConfig(every=1, restore=True, **cfg))
        assert boot.returncode == 0, boot.output
        restore = boot.checkpoints[0]
        assert (restore["op"], restore["status"], restore["slot"], restore["steps"]) == \
            ("restore", "TT_OK", "A", 1)
        assert len(boot.steps) == STEPS - 1  # resumes on the record not yet learned
        assert _equal(boot.trace[0][0], ref[1][0]) and boot.trace[0][1] == ref[1][1]
        assert _equal(boot.final_state, ref[-1][0]) and boot.final_steps == (STEPS, 0)
