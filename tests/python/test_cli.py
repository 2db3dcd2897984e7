"""The `tinytrain` CLI and the saved artifacts, run with IREE's own `iree-run-module`."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

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
    np.save(out / "input.npy", rng.randn(1, 28, 28, 1).astype(np.float32))
    np.save(out / "labels.npy", np.array([3], np.int32))
    losses = []
    for _ in range(4):
        r = run([str(BIN / "iree-run-module"), "--flagfile=train_step.flags"], cwd=out)
        assert r.returncode == 0, r.stderr
        losses.append(float(re.search(r"f32=([-0-9.e]+)", r.stdout).group(1)))
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_cli_reports_model_errors(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import torch\nmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Sigmoid())\n")
    p = run([str(BIN / "tinytrain"), "compile", str(tmp_path / "bad.py"), "-o", str(tmp_path / "o"),
             "--input-shape", "1,1,8,8"])
    assert p.returncode == 1
    assert "unsupported operator 'aten.sigmoid'" in p.stderr and "layer: 1 (Sigmoid)" in p.stderr


def test_cli_missing_model_definition(tmp_path):
    (tmp_path / "empty.py").write_text("x = 1\n")
    p = run([str(BIN / "tinytrain"), "compile", str(tmp_path / "empty.py"), "-o", str(tmp_path / "o")])
    assert p.returncode != 0 and "defines no 'model'" in p.stderr


def test_cli_cortex_m4_firmware_and_run_qemu(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_PY.replace("28, 28", "12, 12").replace(
        "small_cnn(num_classes=10, in_channels=1)", "small_cnn(num_classes=10, in_channels=1, width=4)"))
    out = tmp_path / "out"
    p = run([str(BIN / "tinytrain"), "compile", str(tmp_path / "model.py"), "-o", str(out),
             "--target", "cortex-m4"])
    assert p.returncode == 0, p.stderr
    fw = out / "cortex-m4" / "firmware"
    assert (fw / "CMakeLists.txt").exists() and "tinytrain run-qemu" in p.stdout
    rng = np.random.RandomState(0)
    np.savez(tmp_path / "train.npz", x=rng.randn(3, 1, 12, 12, 1).astype(np.float32), y=np.array([1, 2, 3]))
    r = run([str(BIN / "tinytrain"), "run-qemu", str(fw), "--train", str(tmp_path / "train.npz")])
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(re.findall(r"^STEP \d+ loss_bits=", r.stdout, re.M)) == 3
    assert re.search(r"^MEM .*sram_peak=\d+", r.stdout, re.M)


def test_readme_example_script(tmp_path):
    """examples/iree_run_module.sh, as the README shows it: three steps, the loss falling."""
    script = Path(__file__).resolve().parents[2] / "examples" / "iree_run_module.sh"
    p = run(["bash", str(script), str(tmp_path / "ex")])
    assert p.returncode == 0, p.stderr
    losses = [float(v) for v in re.findall(r"^step \d: f32=([-0-9.e]+)$", p.stdout, re.M)]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2], p.stdout
