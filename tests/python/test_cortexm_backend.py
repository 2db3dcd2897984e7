"""Cortex-M backend: static schedule + C runtime + firmware under QEMU vs the host .vmfb.

Training steps run on mps2-an386 (Cortex-M4F) and mps2-an500 (Cortex-M7); after every step the
parameters and the loss must equal IREE's host llvm-cpu results to 1e-6 (and bit for bit where
noted). The SRAM budget is checked on both sides (compiler plan, linker ASSERT) and the peak
SRAM measured by the firmware is compared with the compiler's plan.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

import cortexm_programs as models  # noqa: E402
import cortexm_reference as reference  # noqa: E402
from tinytrain.lowering.cortexm import firmware, iree_static  # noqa: E402

BOARDS = {"cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500"}
STEPS = 4


@pytest.fixture(scope="module")
def programs():
    """name -> (linalg text, initial params, train xs, labels)."""
    rng = np.random.default_rng(1)
    sgd = models.sgd_linear_mlir(16, 4, 0.05)
    sgd_params = [rng.standard_normal((16, 4)).astype(np.float32) * 0.3, np.zeros(4, np.float32)]
    sgd_xs = rng.standard_normal((STEPS, 1, 16)).astype(np.float32)
    conv, conv_params = models.conv_train_mlir()
    conv_xs = rng.standard_normal((STEPS, 1, 8, 8, 1)).astype(np.float32)
    return {"sgd": (sgd, sgd_params, sgd_xs, list(rng.integers(0, 4, STEPS))),
            "conv": (conv, conv_params, conv_xs, list(rng.integers(0, 10, STEPS)))}


@pytest.fixture(scope="module")
def host_results(programs):
    out = {}
    for name, (text, params, xs, ys) in programs.items():
        out[name] = reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)
    return out


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
@pytest.mark.parametrize("name", ["sgd", "conv"])
def test_training_steps_match_host_vmfb(programs, host_results, tmp_path, target, name):
    text, params, xs, ys = programs[name]
    module = iree_static.build_static_module(text, tmp_path / "m", target=target, prefix=name)
    fw = firmware.build_firmware(module, tmp_path / "fw", board=BOARDS[target])
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys), params=params, timeout=60)
    assert res.returncode == 0, res.output
    assert f"TT done steps={STEPS}" in res.output
    assert len(res.trace) == STEPS
    reference.assert_trace_matches(res.trace, host_results[name], target)
    assert [loss for loss, _ in res.steps] == [loss for _, loss in res.trace]
    assert all(t > 0 for _, t in res.steps)  # SysTick under -icount counts instructions


def test_flash_initial_params_and_missing_predict(programs, tmp_path):
    text, params, xs, ys = programs["conv"]
    host = reference.HostModule(reference.compile_vmfb(text))
    rng = np.random.default_rng(7)
    ex = rng.standard_normal((6, 1, 8, 8, 1)).astype(np.float32)
    ey = list(rng.integers(0, 10, 6))
    # The conv program has no @predict: the harness must skip evaluation and still train.
    module = iree_static.build_static_module(text, tmp_path / "m", target="cortex-m4",
                                             prefix="conv", state_init=params)
    fw = firmware.build_firmware(module, tmp_path / "fw")
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs[:1], ys[:1]), evaluate=(ex, ey))
    assert res.returncode == 0, res.output
    assert res.evals == {}
    # Initial parameters come from flash (state_init) when no tt_params.bin is given.
    ref_params, _ = host.train(params, xs[:1], ys[:1])[0]
    for d, r in zip(res.trace[0][0], ref_params):
        np.testing.assert_allclose(d, r, rtol=0, atol=1e-6)


def test_predict_accuracy_counts_match_host(programs, tmp_path):
    text, params, xs, ys = programs["sgd"]
    host = reference.HostModule(reference.compile_vmfb(text))
    rng = np.random.default_rng(3)
    ex = rng.standard_normal((8, 1, 16)).astype(np.float32)
    ey = [int(np.argmax(host.predict(params, x))) if i % 2 else 0 for i, x in enumerate(ex)]
    module = iree_static.build_static_module(text, tmp_path / "m", target="cortex-m7", prefix="sgd")
    fw = firmware.build_firmware(module, tmp_path / "fw", board="mps2-an500")
    res = firmware.run_qemu(fw, tmp_path / "run", evaluate=(ex, ey), params=params)
    assert res.returncode == 0, res.output
    expect = sum(int(np.argmax(host.predict(params, x))) == y for x, y in zip(ex, ey))
    assert res.evals["before"] == (expect, 8)
    assert res.evals["after"] == (expect, 8)


def test_init_program_dispatches_run_at_model_init(programs, host_results, tmp_path):
    """Without IREE's const-eval, constants are computed by init dispatches into a persistent
    arena buffer; tt_model_init runs them once and the training steps still match the host."""
    text, params, xs, ys = programs["conv"]
    module = iree_static.build_static_module(text, tmp_path / "m", prefix="conv",
                                             extra_flags=("--iree-opt-const-eval=false",))
    init = module.schedule.function("__init")
    assert any(c.op == "dispatch" for c in init.commands)
    assert module.schedule.persistent_size > 0
    fw = firmware.build_firmware(module, tmp_path / "fw")
    res = firmware.run_qemu(fw, tmp_path / "run", train=(xs, ys), params=params)
    assert res.returncode == 0, res.output
    for (dp, dl), (rp, rl) in zip(res.trace, host_results["conv"]):
        assert dl == rl
        for d, r in zip(dp, rp):
            assert np.array_equal(d, r)


def test_run_qemu_command_line_on_a_saved_project(programs, tmp_path):
    import subprocess

    text, params, xs, ys = programs["sgd"]
    fw = firmware.compile_firmware(text, tmp_path / "b", target="cortex-m4", params=params,
                                   prefix="sgd")
    np.savez(tmp_path / "train.npz", x=xs[:2], y=np.array(ys[:2]))
    proc = subprocess.run([sys.executable, "-m", "tinytrain.lowering.cortexm.firmware", "run-qemu",
                           str(fw.project_dir), "--train", str(tmp_path / "train.npz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TT done steps=2" in proc.stdout and "MEM ram_total=262144" in proc.stdout
    loaded = firmware.load_firmware(fw.project_dir)
    assert loaded.state == fw.state and loaded.elf == fw.elf


def test_direct_and_memoized_command_buffers_give_the_same_schedule(programs, tmp_path):
    """hal2c executes IREE's host program rather than pattern-matching it: with memoized,
    indirect command buffers (default) or direct ones, the emitted tables are identical."""
    text = programs["conv"][0]
    default = iree_static.build_static_module(text, tmp_path / "a", prefix="conv")
    direct = iree_static.build_static_module(
        text, tmp_path / "b", prefix="conv",
        extra_flags=("--iree-hal-indirect-command-buffers=false", "--iree-hal-memoization=false"))
    hal_a, hal_b = default.hal_path.read_text(), direct.hal_path.read_text()
    assert "execute.indirect" in hal_a and "execute.indirect" not in hal_b
    assert default.c_path.read_text() == direct.c_path.read_text()


def test_firmware_project_is_self_contained(programs, tmp_path):
    """The generated project (sources, kernel object, vendored runtime, toolchain file) builds
    after being moved away from the repository."""
    import shutil
    import subprocess

    text, params, _, _ = programs["sgd"]
    fw = firmware.compile_firmware(text, tmp_path / "b", target="cortex-m7", params=params,
                                   prefix="sgd")
    moved = tmp_path / "moved"
    shutil.copytree(fw.project_dir, moved, ignore=shutil.ignore_patterns("build", "run"))
    shutil.rmtree(fw.project_dir)
    for cmd in (["cmake", "-S", str(moved), "-B", str(moved / "build"),
                 "-DCMAKE_TOOLCHAIN_FILE=tt_runtime/toolchains/arm-none-eabi.cmake"],
                ["cmake", "--build", str(moved / "build")]):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=moved)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (moved / "build" / "firmware.elf").exists()
    assert "cortex-m7" in (moved / "tt_runtime" / "boards" / "mps2_an500" / "board.cmake").read_text()
