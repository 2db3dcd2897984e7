"""The device runtime + generated schedule + firmware harness, built natively with ASan/UBSan
and IREE's x86 kernels (`target="host"`): bit-exact with the host .vmfb, and any out-of-bounds
access by the schedule tables or the runtime aborts the run."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as models  # noqa: E402
import cortexm_reference as reference  # noqa: E402
from tinytrain.lowering.cortexm import firmware, iree_static  # noqa: E402


@pytest.mark.parametrize("name", ["sgd16x4", "sgd300x10", "conv"])
def test_host_build_of_the_device_runtime_matches_vmfb(tmp_path, name):
    rng = np.random.default_rng(len(name))
    if name == "conv":
        text, params = models.conv_train_mlir()
        xs = rng.standard_normal((5, 1, 8, 8, 1)).astype(np.float32)
        ys = [int(v) for v in rng.integers(0, 10, 5)]
    else:
        d, c = (16, 4) if name == "sgd16x4" else (300, 10)
        text = models.sgd_linear_mlir(d, c, 0.05)
        params = [rng.standard_normal((d, c)).astype(np.float32) * 0.1, np.zeros(c, np.float32)]
        xs = rng.standard_normal((5, 1, d)).astype(np.float32)
        ys = [int(v) for v in rng.integers(0, c, 5)]
    fw = firmware.compile_firmware(text, tmp_path, target="host", params=params, prefix="sgd")
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys),
                            evaluate=(xs, ys) if name != "conv" else None)
    assert res.returncode == 0, res.output
    ref = reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)
    for (dp, dl), (rp, rl) in zip(res.trace, ref):
        assert dl == rl
        assert all(np.array_equal(a, b) for a, b in zip(dp, rp))
    assert len(res.trace) == 5
    assert set(res.evals) == (set() if name == "conv" else {"before", "after"})


def test_host_target_reports_the_same_schedule_shape_as_the_device(tmp_path):
    text = models.sgd_linear_mlir(16, 4, 0.05)
    host = iree_static.build_static_module(text, tmp_path / "h", target="host", prefix="s")
    m4 = iree_static.build_static_module(text, tmp_path / "m", target="cortex-m4", prefix="s")
    assert host.state_bytes == m4.state_bytes and host.sizes == m4.sizes
    assert [f.name for f in host.schedule.functions] == [f.name for f in m4.schedule.functions]
