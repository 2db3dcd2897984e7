"""The CLI's error story: every user error is one `tinytrain: error: ...` line on stderr, exit
status 1, no Python traceback (unless -v), and it is found before any compiling or QEMU run;
output folders hold one model, never a half-written one."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinytrain import cli, compiler

MODEL_PY = '''
import torch
from tinytrain.models import small_cnn
torch.manual_seed(0)
model = small_cnn(num_classes=4, in_channels=1, width=4)
example_input = torch.randn(1, 1, 12, 12)
'''


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, pattern):
    import re

    assert rc == 1, err
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.startswith("tinytrain: error: ")]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def model_py(tmp_path):
    p = tmp_path / "model.py"
    p.write_text(MODEL_PY)
    return p


@pytest.fixture
def no_compile(monkeypatch):
    """These errors must be found before compiling."""
    def refuse(*a, **k):
        raise AssertionError("compile() ran although the command line is invalid")

    monkeypatch.setattr(compiler, "compile", refuse)


def test_missing_model_file(capsys, tmp_path, no_compile):
    rc, _, err = run_cli(capsys, "compile", tmp_path / "missing.py", "-o", tmp_path / "o")
    assert_one_line_error(rc, err, r"model file .*missing\.py not found")
    assert not (tmp_path / "o").exists()


def test_model_file_that_raises_is_one_line_and_traceback_with_v(capsys, tmp_path, no_compile):
    bad = tmp_path / "boom.py"
    bad.write_text("import torch\nraise RuntimeError('boom in user code')\n")
    rc, _, err = run_cli(capsys, "compile", bad, "-o", tmp_path / "o")
    assert_one_line_error(rc, err, r"running .*boom\.py failed: RuntimeError: boom in user code")
    rc, _, err = run_cli(capsys, "compile", bad, "-o", tmp_path / "o", "-v")
    assert rc == 1 and "Traceback" in err and "boom in user code" in err


def test_model_file_with_a_syntax_error(capsys, tmp_path, no_compile):
    bad = tmp_path / "syn.py"
    bad.write_text("model = (\n")
    rc, _, err = run_cli(capsys, "compile", bad, "-o", tmp_path / "o")
    assert_one_line_error(rc, err, r"syn\.py failed: SyntaxError")


@pytest.mark.parametrize("shape, pattern", [
    ("1,1,28", r"--input-shape must be 4 positive sizes N,C,H,W .* got '1,1,28'"),
    ("1,1,28,28,1", r"4 positive sizes"),
    ("0,1,28,28", r"4 positive sizes"),
    ("1,-1,28,28", r"4 positive sizes"),
    ("1x1x28x28", r"--input-shape must be like 1,3,64,64"),
])
def test_bad_input_shape(capsys, model_py, tmp_path, shape, pattern, no_compile):
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", "--input-shape", shape)
    assert_one_line_error(rc, err, pattern)


def test_input_shape_with_wrong_channels(capsys, model_py, tmp_path, monkeypatch):
    import tinytrain.compiler as c

    monkeypatch.setattr(c, "import_model", lambda *a, **k: pytest.fail("imported a model that cannot run"))
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", "--input-shape", "1,3,12,12")
    assert_one_line_error(rc, err, r"cannot run on an example input of shape \[1, 3, 12, 12\].*channels")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("lr", ["0", "-0.1", "nan", "inf"])
def test_bad_lr(capsys, model_py, tmp_path, lr, monkeypatch):
    import tinytrain.compiler as c

    monkeypatch.setattr(c, "import_model", lambda *a, **k: pytest.fail("imported despite a bad lr"))
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", f"--lr={lr}")
    assert_one_line_error(rc, err, r"lr must be a positive number")
    assert not (tmp_path / "o").exists()


def test_lr_that_is_not_a_number(capsys, model_py, tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["compile", str(model_py), "-o", str(tmp_path / "o"), "--lr", "fast"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--lr: invalid float value: 'fast'" in err and "Traceback" not in err


def test_empty_trainable_list(capsys, model_py, tmp_path):
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", "--trainable", ",")
    assert_one_line_error(rc, err, r"trainable=\[\] trains nothing")


def test_model_returning_a_tuple(capsys, tmp_path):
    p = tmp_path / "two.py"
    p.write_text(MODEL_PY + "class Two(torch.nn.Module):\n    def __init__(self, m):\n"
                 "        super().__init__(); self.m = m\n    def forward(self, x):\n"
                 "        y = self.m(x); return y, y\nmodel = Two(model)\n")
    rc, _, err = run_cli(capsys, "compile", p, "-o", tmp_path / "o")
    assert_one_line_error(rc, err, r"returns a tuple of 2 elements.*one logits tensor")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("sub, pattern", [
    ("afile/sub", r"cannot write there"),  # a file where a parent folder should be
    ("afile", r"exists and is not a folder"),
])
def test_unwritable_output_is_refused_before_compiling(capsys, model_py, tmp_path, sub, pattern,
                                                       no_compile):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / sub
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", out)
    assert_one_line_error(rc, err, pattern)


def test_read_only_output_parent(capsys, model_py, tmp_path, no_compile):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that can write read-only folders (root)")
        rc, _, err = run_cli(capsys, "compile", model_py, "-o", ro / "out")
        assert_one_line_error(rc, err, r"cannot write there")
    finally:
        ro.chmod(0o700)


def test_bad_sram_budget(capsys, model_py, tmp_path, monkeypatch):
    import tinytrain.compiler as c

    monkeypatch.setattr(c, "import_model", lambda *a, **k: pytest.fail("imported despite a bad budget"))
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", "--target", "cortex-m4",
                         "--sram-kb", "0")
    assert_one_line_error(rc, err, r"sram_kb must be a positive whole number of KB, got 0")
    assert not (tmp_path / "o").exists()


def test_memory_report_needs_a_cortex_m_target(capsys, model_py, tmp_path, no_compile):
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", "--memory-report", tmp_path / "m")
    assert_one_line_error(rc, err, r"--memory-report needs --target cortex-m4 or cortex-m7: on the host")
    assert not (tmp_path / "o").exists() and not (tmp_path / "m").exists()


def test_unsupported_model_leaves_no_output_folder(capsys, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(),"
                   " torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))\n")
    out = tmp_path / "new" / "out"
    rc, _, err = run_cli(capsys, "compile", bad, "-o", out, "--input-shape", "1,1,8,8")
    assert_one_line_error(rc, err, r"unsupported operator 'aten.tanh'")
    assert not (tmp_path / "new").exists()


def test_reused_output_folder_holds_only_the_new_model(capsys, model_py, tmp_path):
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", out)
    assert rc == 0, err
    assert len(list((out / "params").iterdir())) == 8
    (out / "failed-linalg.mlir").write_text("stale reproducer of an earlier failure")
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", out, "--trainable", "10.weight,10.bias")
    assert rc == 0, err
    assert sorted(f.name for f in (out / "params").iterdir()) == ["000_10.weight.npy", "001_10.bias.npy"]
    assert json.loads((out / "model.json").read_text())["trainable"] == ["10.weight", "10.bias"]
    assert not list(out.glob("failed-*.mlir"))


# ---- run-qemu ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def m4_out(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_m4")
    (d / "model.py").write_text(MODEL_PY)
    rc = cli.main(["compile", str(d / "model.py"), "-o", str(d / "out"), "--target", "cortex-m4"])
    assert rc == 0
    return d / "out"


@pytest.fixture
def no_qemu(monkeypatch):
    import tinytrain.lowering.cortexm.firmware as fwmod

    monkeypatch.setattr(fwmod, "run_qemu", lambda *a, **k: pytest.fail("QEMU started with invalid samples"))


def test_run_qemu_not_a_project(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "run-qemu", tmp_path / "nonexistent")
    assert_one_line_error(rc, err, r"nonexistent is not a firmware project \(no firmware.json\)")


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


RNG = np.random.RandomState(0)
GOOD_X = RNG.randn(2, 12, 12, 1).astype(np.float32)


@pytest.mark.parametrize("arrays, pattern", [
    (dict(x=GOOD_X), r"holds \['x'\]; it needs x .* and y"),
    (dict(images=GOOD_X, y=np.array([1, 2])), r"needs x"),
    (dict(x=RNG.randn(2, 14, 14, 1).astype(np.float32), y=np.array([1, 2])), r"x must be \[K, 12, 12, 1\] .*\[2, 14, 14, 1\]"),
    (dict(x=RNG.randn(2, 28, 28, 1).astype(np.float32), y=np.array([1, 2])), r"x must be \[K, 12, 12, 1\]"),
    (dict(x=RNG.randn(2, 1, 12, 12).astype(np.float32), y=np.array([1, 2])), r"x must be \[K, 12, 12, 1\] \(NHWC"),
    (dict(x=(GOOD_X * 100).astype(np.uint8), y=np.array([1, 2])), r"x must be floating-point values, got uint8"),
    (dict(x=GOOD_X, y=np.array([1.7, 2.2])), r"y must be 2 integer class indices .*float64"),
    (dict(x=GOOD_X, y=np.array([1])), r"y must be 2 integer class indices .*\(1,\)"),
    (dict(x=GOOD_X, y=np.array([1, 2, 3])), r"y must be 2 integer"),
    (dict(x=GOOD_X, y=np.array([1, 4])), r"label 4 is outside the class range \[0, 4\)"),
    (dict(x=GOOD_X, y=np.array([-1, 0])), r"label -1 is outside"),
])
@pytest.mark.parametrize("flag", ["--train", "--eval"])
def test_run_qemu_bad_npz_is_refused_before_qemu(capsys, m4_out, tmp_path, arrays, pattern, flag, no_qemu):
    f = _npz(tmp_path / "s.npz", **arrays)
    rc, _, err = run_cli(capsys, "run-qemu", m4_out / "cortex-m4" / "firmware", flag, f)
    assert_one_line_error(rc, err, rf"{flag} \S*s\.npz.*{pattern}")


def test_run_qemu_missing_or_unreadable_npz(capsys, m4_out, tmp_path, no_qemu):
    fw = m4_out / "cortex-m4" / "firmware"
    rc, _, err = run_cli(capsys, "run-qemu", fw, "--train", tmp_path / "nope.npz")
    assert_one_line_error(rc, err, r"--train .*nope\.npz: file not found")
    (tmp_path / "text.npz").write_text("not a zip")
    rc, _, err = run_cli(capsys, "run-qemu", fw, "--train", tmp_path / "text.npz")
    assert_one_line_error(rc, err, r"text\.npz: not a readable \.npz file")


def test_run_qemu_checks_sizes_from_the_header_without_model_json(capsys, m4_out, tmp_path, no_qemu):
    """A project without the compiler's model.json (e.g. built by an older tinytrain) is still
    checked, with the sizes of its generated header."""
    proj = tmp_path / "fw"
    shutil.copytree(m4_out / "cortex-m4" / "firmware", proj, ignore=shutil.ignore_patterns("CMakeFiles"))
    (proj / "model.json").unlink()
    f = _npz(tmp_path / "s.npz", x=RNG.randn(2, 14, 14, 1).astype(np.float32), y=np.array([1, 2]))
    rc, _, err = run_cli(capsys, "run-qemu", proj, "--train", f)
    assert_one_line_error(rc, err, r"x must hold K images of 144 values each")
    f = _npz(tmp_path / "s.npz", x=GOOD_X, y=np.array([1, 4]))
    rc, _, err = run_cli(capsys, "run-qemu", proj, "--train", f)
    assert_one_line_error(rc, err, r"label 4 is outside")


def test_failed_recompile_keeps_the_previous_firmware(capsys, m4_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(m4_out, out)
    manifest = (out / "cortex-m4" / "firmware" / "firmware.json").read_text()
    rc, _, err = run_cli(capsys, "compile", m4_out.parent / "model.py", "-o", out, "--target", "cortex-m4",
                         "--sram-kb", "1")
    assert_one_line_error(rc, err, r"needs .*1024")
    assert (out / "cortex-m4" / "firmware" / "firmware.json").read_text() == manifest
    assert (out / "cortex-m4" / "firmware" / "build" / "firmware.elf").is_file()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_host_recompile_removes_the_stale_firmware(capsys, m4_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(m4_out, out)
    rc, _, err = run_cli(capsys, "compile", m4_out.parent / "model.py", "-o", out)
    assert rc == 0, err
    assert not (out / "cortex-m4").exists()
    assert (out / "model.vmfb").is_file()


@pytest.mark.parametrize("scheme, pattern", [
    ({"parameters": {"6.weight": 0.3}}, r"sparse scheme .*: '6.weight': ratio 0.3 is not allowed; the sparse update "
                                        r"trains 1/8, 1/4, 1/2"),
    ({"parameters": {"6.wieght": 1}}, r"unknown parameter '6.wieght'. Did you mean 6.weight"),
    ({"n_bias_update": 2, "manual_weight_idx": [], "weight_update_ratio": []}, r"write the explicit form"),
])
def test_bad_sparse_scheme(capsys, model_py, tmp_path, scheme, pattern):
    f = tmp_path / "scheme.json"
    f.write_text(json.dumps(scheme))
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", "--sparse", f)
    assert_one_line_error(rc, err, pattern)
    assert not (tmp_path / "o").exists()


def test_kernels_flag(capsys, model_py, tmp_path):
    """`--kernels` (our Cortex-M kernels): in --help, refused without --quantize int8 (one line, no
    traceback, nothing written), an unknown value an argparse error."""
    with pytest.raises(SystemExit):
        cli.main(["compile", "--help"])
    out = capsys.readouterr().out
    assert "--kernels {iree,ttk,ttk-f32}" in out and "our int8 conv kernels" in out
    rc, _, err = run_cli(capsys, "compile", model_py, "-o", tmp_path / "o", "--target", "cortex-m7",
                         "--kernels", "ttk")
    assert_one_line_error(rc, err, r"kernels='ttk' selects our int8 kernels: it needs quantize='int8'")
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as e:
        cli.main(["compile", str(model_py), "-o", str(tmp_path / "o"), "--kernels", "cmsis"])
    assert e.value.code == 2 and "invalid choice: 'cmsis'" in capsys.readouterr().err


def test_run_qemu_starts_without_torch(tmp_path):
    """`tinytrain run-qemu` starts without importing torch or the compiler (seconds of imports
    before QEMU starts): the CLI imports them in `compile` only. Checked on a run that stops at
    its first check (a folder that is no firmware project: a user error, exit code 1)."""
    import subprocess
    import sys

    code = ("import sys\nfrom tinytrain import cli\nrc = cli.main(['run-qemu', sys.argv[1]])\n"
            "heavy = sorted(m for m in ('torch', 'tinytrain.compiler') if m in sys.modules)\n"
            "print('RC', rc, 'HEAVY', heavy)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert "RC 1 HEAVY []" in p.stdout, (p.stdout, p.stderr[-2000:])
    assert "tinytrain: error:" in p.stderr
