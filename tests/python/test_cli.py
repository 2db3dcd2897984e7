"""The `tinytrain` CLI and the saved artifacts, run with IREE's own `iree-run-module`."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli_errors import MODEL_PY as SMALL_MODEL_PY

import tinytrain

BIN = Path(sys.executable).parent

MODEL_PY = '''
import torch
from tinytrain.models import small_cnn
torch.manual_seed(0)
model = small_cnn(num_classes=10, in_channels=1)
example_input = torch.randn(1, 1, 28, 28)
'''


def run(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def host_program(model_file: Path, lr: float):
    """The same model file compiled through the public API: the reference for the CLI's numbers."""
    import runpy

    ns = runpy.run_path(str(model_file))
    return tinytrain.compile(ns["model"].eval(), ns["example_input"], lr=lr)


def test_cli_compile_then_iree_run_module_trains(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_PY)
    out = tmp_path / "out"
    p = run([str(BIN / "tinytrain"), "compile", str(tmp_path / "model.py"), "-o", str(out),
             "--lr", "0.05", "--dump-ir", str(tmp_path / "ir"), "-v"])
    assert p.returncode == 0, p.stderr
    assert "model.vmfb" in p.stdout and "[tinytrain] iree-compile" in p.stderr
    assert sorted(f.name for f in (tmp_path / "ir").iterdir()) == ["0-import.mlir", "1-autodiff.mlir", "2-linalg.mlir"]
    assert "tinytrain.conv2d_grad_weight" in (tmp_path / "ir" / "1-autodiff.mlir").read_text()
    assert "linalg.conv_2d_nhwc_hwcf" in (tmp_path / "ir" / "2-linalg.mlir").read_text()
    rng = np.random.RandomState(0)
    x_nhwc = rng.randn(1, 28, 28, 1).astype(np.float32)
    np.save(out / "input.npy", x_nhwc)
    np.save(out / "labels.npy", np.array([3], np.int32))
    losses = []
    for _ in range(4):
        r = run([str(BIN / "iree-run-module"), "--flagfile=train_step.flags"], cwd=out)
        assert r.returncode == 0, r.stderr
        losses.append(float(re.search(r"f32=([-0-9.e]+)", r.stdout).group(1)))
    # the same steps through the API: equal losses (as printed) and parameters
    prog = host_program(tmp_path / "model.py", lr=0.05)
    x, y = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()), torch.tensor([3])
    host = [prog.train_step(x, y) for _ in range(4)]
    assert np.allclose(losses, host, rtol=1e-5, atol=0), (losses, host)
    for i, (k, ref) in enumerate(zip(prog.trainable, prog.program_params())):
        saved = np.load(out / "params" / f"{i:03d}_{k}.npy")
        assert np.abs(saved - ref).max() <= 1e-6 * max(1.0, np.abs(ref).max()), k


def test_cli_reports_model_errors(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import torch\nmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(),\n"
        "    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))\n")
    p = run([str(BIN / "tinytrain"), "compile", str(tmp_path / "bad.py"), "-o", str(tmp_path / "o"),
             "--input-shape", "1,1,8,8"])
    assert p.returncode == 1
    assert "unsupported operator 'aten.tanh'" in p.stderr and "layer: 1 (Tanh)" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "o").exists()


def test_cli_missing_model_definition(tmp_path):
    (tmp_path / "empty.py").write_text("x = 1\n")
    p = run([str(BIN / "tinytrain"), "compile", str(tmp_path / "empty.py"), "-o", str(tmp_path / "o")])
    assert p.returncode != 0 and "defines no 'model'" in p.stderr


def test_cli_cortex_m4_firmware_and_run_qemu(tmp_path):
    """As the README shows it, with relative paths: compile for the M4, then run-qemu prints each
    step's loss as a float, equal to the host program's loss (default lr) for the same samples.
    The model file is test_cli_errors.py's: its `m4_out` and host compiles are this test's
    programs (the run's compile cache; ccache for the firmware's C)."""
    (tmp_path / "model.py").write_text(SMALL_MODEL_PY)
    p = run([str(BIN / "tinytrain"), "compile", "model.py", "-o", "out", "--target", "cortex-m4",
             "--memory-report", "mem"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    fw = tmp_path / "out" / "cortex-m4" / "firmware"
    assert sorted(f.name for f in (tmp_path / "mem").iterdir()) == [
        "memory_report.json", "memory_report.md", "memory_report.svg"]
    report = json.loads((tmp_path / "mem" / "memory_report.json").read_text())
    assert f"peak SRAM (plan) {report['peak_bytes']:,} B" in p.stdout and report["rows"]
    assert (fw / "CMakeLists.txt").exists() and "tinytrain run-qemu" in p.stdout
    rng = np.random.RandomState(0)
    x = rng.randn(3, 1, 12, 12, 1).astype(np.float32)
    y = np.array([1, 2, 3])
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=x[:, 0], y=y)
    r = run([str(BIN / "tinytrain"), "run-qemu", "out/cortex-m4/firmware", "--train", "train.npz",
             "--eval", "test.npz"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    losses = [float(v) for v in re.findall(r"^STEP \d+ loss=([-0-9.e]+) ticks=\d+$", r.stdout, re.M)]
    assert len(losses) == 3, r.stdout
    prog = host_program(tmp_path / "model.py", lr=0.01)
    xs = torch.from_numpy(x[:, 0].transpose(0, 3, 1, 2).copy())

    def correct():
        return sum(int(np.argmax(prog.predict(xs[i:i + 1])[0]) == y[i]) for i in range(3))

    before = correct()
    host = [prog.train_step(xs[i:i + 1], torch.tensor(y[i:i + 1])) for i in range(3)]
    assert np.allclose(losses, host, rtol=1e-6, atol=0), (losses, host)
    assert re.search(rf"^EVAL before correct={before} total=3$", r.stdout, re.M), r.stdout
    assert re.search(rf"^EVAL after correct={correct()} total=3$", r.stdout, re.M), r.stdout
    m = re.search(r"^MEM .*sram_peak=(\d+)", r.stdout, re.M)
    assert m and 0 < int(m.group(1)) <= 256 * 1024
    # The memory report's peak (the compiler's plan) is what the device measured, within 10%.
    assert abs(int(m.group(1)) - report["peak_bytes"]) <= 0.1 * int(m.group(1)), (m.group(0), report["peak_bytes"])


def test_cli_small_lr(tmp_path):
    """--lr 1e-5 (once printed as '1e-05' into the MLIR text, which failed): the program compiles
    and records the rate. Any trained tensor takes the rate; one Linear layer is the cheapest."""
    (tmp_path / "model.py").write_text("import torch\nmodel = torch.nn.Sequential(torch.nn.Flatten(), "
                                       "torch.nn.Linear(4, 2))\nexample_input = torch.randn(1, 1, 2, 2)\n")
    p = run([str(BIN / "tinytrain"), "compile", str(tmp_path / "model.py"), "-o", str(tmp_path / "o"),
             "--lr", "1e-5", "--dump-ir", str(tmp_path / "ir")])
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "o" / "model.json").read_text())["lr"] == 1e-5
    assert "tinytrain.sgd_update" in (tmp_path / "ir" / "1-autodiff.mlir").read_text()


def test_readme_example_script(tmp_path):
    """examples/iree_run_module.sh, as the README shows it: three steps whose losses (and the
    parameters left in the folder) are the API's for the same input."""
    root = Path(__file__).resolve().parents[2]
    p = run(["bash", str(root / "examples" / "iree_run_module.sh"), str(tmp_path / "ex")])
    assert p.returncode == 0, p.stderr
    losses = [float(v) for v in re.findall(r"^step \d: f32=([-0-9.e]+)$", p.stdout, re.M)]
    assert len(losses) == 3, p.stdout
    prog = host_program(root / "examples" / "model.py", lr=0.05)
    x = np.load(tmp_path / "ex" / "input.npy").transpose(0, 3, 1, 2)
    host = [prog.train_step(x, np.array([3])) for _ in range(3)]
    assert np.allclose(losses, host, rtol=1e-5, atol=0), (losses, host)
    for i, (k, ref) in enumerate(zip(prog.trainable, prog.program_params())):
        saved = np.load(tmp_path / "ex" / "params" / f"{i:03d}_{k}.npy")
        assert np.abs(saved - ref).max() <= 1e-6 * max(1.0, np.abs(ref).max()), k
