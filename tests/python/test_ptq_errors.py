"""Every mistake with `quantize="int8"` is a clear error (API: ValueError/TypeError or
UnsupportedModelError naming the op, the layer and what to do; CLI: one `tinytrain: error:`
line, no traceback), found before iree-compile runs."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import tinytrain
from tinytrain import cli
from tinytrain.errors import CompileError, UnsupportedModelError

X = torch.zeros(1, 1, 8, 8)
CAL = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)


class Net(nn.Module):
    """conv -> <act> -> [pool] -> global average pool -> linear; `kind` picks the layer under test."""

    def __init__(self, kind="relu"):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.other = nn.Conv2d(1, 4, 3, padding=1)
        self.act = {"sigmoid": nn.Sigmoid(), "hardswish": nn.Hardswish()}.get(kind, nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 if kind == "concat" else 4, 3)

    def forward(self, x):
        h = self.act(self.conv(x))
        if self.kind == "maxpool":
            h = self.pool(h)
        if self.kind == "concat":
            h = torch.cat([h, self.other(x)], 1)
        h = h.mean((2, 3))
        if self.kind == "relu_after_pool":
            h = F.relu(h)
        return self.fc(h)


def _compile(model, **kw):
    kw.setdefault("calibration", CAL)
    return tinytrain.compile(model.eval(), X, quantize="int8", **kw)


@pytest.fixture
def no_iree(monkeypatch):
    """These errors must come before iree-compile."""
    from tinytrain.lowering.host import iree_host

    def refuse(*a, **k):
        raise AssertionError("iree-compile ran although the model cannot be quantized")

    monkeypatch.setattr(iree_host, "compile_host", refuse)


@pytest.mark.parametrize("calibration, pattern", [
    (None, r"quantize='int8' needs calibration data"),
    ([], r"calibration set is empty"),
    (np.zeros((0, 1, 8, 8), np.float32), r"calibration must be \[K, 1, 8, 8\] .*got \[0, 1, 8, 8\]"),
    (np.zeros((2, 1, 9, 9), np.float32), r"calibration must be \[K, 1, 8, 8\] .*got \[2, 1, 9, 9\]"),
    ([CAL, np.zeros((2, 3, 8, 8), np.float32)], r"calibration batch 1 must be \[K, 1, 8, 8\]"),
    (np.zeros((2, 1, 8, 8), np.int64), r"calibration must be floating-point"),
])
def test_bad_calibration(no_iree, calibration, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        tinytrain.compile(Net().eval(), X, quantize="int8", calibration=calibration)


def test_quantize_arguments(no_iree):
    with pytest.raises(ValueError, match=r"quantize must be one of \('int8',\)"):
        tinytrain.compile(Net().eval(), X, quantize="int4", calibration=CAL)
    with pytest.raises(ValueError, match="calibration data is only used with quantize='int8'"):
        tinytrain.compile(Net().eval(), X, calibration=CAL)
    with pytest.raises(ValueError, match="int8_classifier=True needs quantize='int8'"):
        tinytrain.compile(Net().eval(), X, int8_classifier=True)


@pytest.mark.parametrize("kind, op, hint", [
    ("sigmoid", "tinytrain.sigmoid", "replace it by ReLU or ReLU6"),
    ("hardswish", "tinytrain.hardswish", "replace it by ReLU or ReLU6"),
    ("maxpool", "tinytrain.max_pool2d", "replace the max pool by a stride-2 conv"),
    ("concat", "tinytrain.concat", "concatenation has no int8 rescaling"),
])
def test_op_without_int8_form(no_iree, kind, op, hint):
    with pytest.raises(UnsupportedModelError) as e:
        _compile(Net(kind))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"quantize: {op} (layer '")
    assert "has no int8 form" in msg and hint in msg and "keep the model fp32" in msg
    assert "test_ptq_errors.py:" in msg  # the user's source line


def test_relu_that_cannot_be_fused(no_iree):
    with pytest.raises(UnsupportedModelError, match=r"quantize: tinytrain.relu \(layer '<root> \(Net\)' at "
                                                    r"test_ptq_errors.py:\d+\) cannot be fused: its input comes "
                                                    r"from tinytrain.global_avg_pool"):
        _compile(Net("relu_after_pool"))


def test_unknown_trainable_name(no_iree):
    with pytest.raises(CompileError, match=r"unknown trainable parameter\(s\) \['conv.wieght'\]"):
        _compile(Net(), trainable=["conv.wieght"])


# ----------------------------------------------------------------------------- CLI

MODEL_PY = '''
import torch, torch.nn as nn
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.{act}()
        self.fc = nn.Linear(4, 3)
    def forward(self, x):
        return self.fc(self.act(self.conv(x)).mean((2, 3)))
model = M().eval()
example_input = torch.zeros(1, 1, 8, 8)
'''


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def assert_one_line_error(rc, err, pattern):
    import re

    assert rc == 1, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("tinytrain: error: ")]
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("act, cal_shape, extra, pattern", [
    ("ReLU", None, [], r"--quantize int8 needs --calibration FILE\.npy"),
    ("ReLU", "missing", [], r"--calibration .*missing\.npy: file not found"),
    ("ReLU", (3, 1, 9, 9), [], r"calibration must be \[K, 1, 8, 8\]"),
    ("Sigmoid", (3, 1, 8, 8), [], r"quantize: tinytrain\.sigmoid \(layer 'act \(Sigmoid\)'.*no int8 form"),
    ("ReLU", (3, 1, 8, 8), ["--trainable", "fc.wieght"], r"unknown trainable parameter\(s\) \['fc\.wieght'\]"),
])
def test_cli_errors(capsys, tmp_path, no_iree, act, cal_shape, extra, pattern):
    model = tmp_path / "model.py"
    model.write_text(MODEL_PY.replace("{act}", act))
    argv = ["compile", model, "-o", tmp_path / "out", "--quantize", "int8", *extra]
    if cal_shape == "missing":
        argv += ["--calibration", tmp_path / "missing.npy"]
    elif cal_shape is not None:
        np.save(tmp_path / "cal.npy", np.zeros(cal_shape, np.float32))
        argv += ["--calibration", tmp_path / "cal.npy"]
    assert_one_line_error(*run_cli(capsys, *argv), pattern)
    assert not (tmp_path / "out").exists()


def test_cli_quantize_flags_need_quantize(capsys, tmp_path):
    model = tmp_path / "model.py"
    model.write_text(MODEL_PY.replace("{act}", "ReLU"))
    np.save(tmp_path / "cal.npy", CAL)
    for flags, name in ((["--calibration", tmp_path / "cal.npy"], "--calibration"),
                        (["--int8-classifier"], "--int8-classifier"), (["--no-qas"], "--no-qas")):
        rc, err = run_cli(capsys, "compile", model, "-o", tmp_path / "out", *flags)
        assert_one_line_error(rc, err, f"{name} applies to an int8 model: add --quantize int8")


def test_cli_compiles_an_int8_model(capsys, tmp_path):
    """The success path of the flags: the int8 program is written, its conv weight as int8, and
    `--no-qas` leaves the updates unscaled (the API's default, qas=True, is checked in test_ptq)."""
    model = tmp_path / "model.py"
    model.write_text(MODEL_PY.replace("{act}", "ReLU6"))
    np.save(tmp_path / "cal.npy", CAL)
    rc = cli.main([str(a) for a in ("compile", model, "-o", tmp_path / "out", "--quantize", "int8",
                                    "--calibration", tmp_path / "cal.npy", "--trainable", "conv.weight,fc.weight",
                                    "--no-qas")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "2 trainable tensors" in out
    assert np.load(tmp_path / "out" / "params" / "000_conv.weight.npy").dtype == np.int8
    assert "tinytrain.qconv2d" in (tmp_path / "out" / "ir" / "1-quantize.mlir").read_text()
    autodiff = (tmp_path / "out" / "ir" / "2-autodiff.mlir").read_text()
    assert "tinytrain.qsgd_update" in autodiff and "tinytrain.qas" not in autodiff
