"""The importer as a pass: per-op handlers, verification of what they build, and the errors that
need the FX graph (layer and source line of an op found after the torch-mlir import)."""

import inspect

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import tinytrain
from tinytrain.dialects.tinytrain import ReluOp
from tinytrain.errors import CompileError
from tinytrain.lowering.conversions.torch_to_tinytrain import TorchToTinytrainPass, import_model, ops
from tinytrain.lowering.conversions.torch_to_tinytrain.conversion import TVal, tensor_type
from tinytrain.pipeline import parse_pipeline


class Clamp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        x = F.hardtanh(x, -1.0, 1.0)  # not ReLU6: refused by the hardtanh handler
        return self.fc(x.mean(dim=(2, 3)))


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        y = self.fc(x.mean(dim=(2, 3)))
        return y, y


def test_handler_error_names_layer_and_source_line():
    with pytest.raises(tinytrain.UnsupportedModelError) as e:
        import_model(Clamp().eval(), torch.randn(1, 3, 4, 4))
    msg = str(e.value)
    assert "Hardtanh(-1.0, 1.0) is not supported; only ReLU6" in msg
    assert "layer: <root> (Clamp)" in msg
    hardtanh_line = inspect.getsourcelines(Clamp.forward)[1] + 1
    assert f"source: {__file__}:{hardtanh_line}\n" in msg
    assert "operator: torch.aten.hardtanh" in msg


def test_model_returning_a_tuple_is_refused():
    with pytest.raises(tinytrain.UnsupportedModelError, match=r"must return logits \[N, classes\]; it returns 2 values"):
        import_model(TwoOutputs().eval(), torch.randn(1, 3, 4, 4))


def test_invalid_op_from_a_handler_is_a_verifier_error(monkeypatch):
    """The PassManager verifies the converted module: a handler that builds a wrong op fails the
    import with MLIR's diagnostic naming the op, not later in autodiff."""

    def bad_relu(cv, op):
        x = cv.tensor(op, op.operands[0])
        wrong = tensor_type([s + 1 for s in ir_shape(x.value)])
        cv.bind(op.result, TVal(ReluOp(x.value, wrong, loc=cv.loc(op)).result, x.shape, x.nhwc))

    monkeypatch.setitem(ops.HANDLERS, "torch.aten.relu", bad_relu)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(CompileError) as e:
        import_model(model.eval(), torch.randn(1, 3, 4, 4))
    assert e.value.stage == "import"
    assert "'tinytrain.relu' op expects f32 operands and result of one shape" in str(e.value)
    assert "1 (ReLU)" in str(e.value)  # the diagnostic's location names the layer


def ir_shape(value):
    from torch_mlir import ir

    return list(ir.RankedTensorType(value.type).shape)


def test_pass_is_registered_and_needs_the_model():
    (p,) = parse_pipeline("builtin.module(torch-to-tinytrain)")
    assert isinstance(p, TorchToTinytrainPass)
    assert p.options_text() == "torch-to-tinytrain"
    from torch_mlir import ir

    with ir.Context(), ir.Location.unknown():
        module = ir.Module.create()
        with pytest.raises(CompileError, match="needs the model's parameter values"):
            p.run(module.operation)


def test_every_handled_aten_op_passes_the_pre_export_check():
    """The check on the exported graph accepts exactly the ATen packets of the handler table."""
    assert {"aten.conv2d", "aten.add", "aten.mean", "aten.flatten", "aten.batch_norm"} <= ops.SUPPORTED_ATEN
    assert all(name.startswith("aten.") and name.count(".") == 1 for name in ops.SUPPORTED_ATEN)


class ReadAfterInPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.fc = nn.Linear(48, 2)

    def forward(self, x):
        y = self.conv(x)
        v = y.view(1, -1)  # a view of y: sees the in-place change below
        torch.relu_(y)
        return self.fc(v)


class InPlaceOnInput(nn.Module):
    def forward(self, x):
        x.relu_()
        return x.mean((2, 3))


def test_in_place_op_whose_tensor_is_read_again_is_refused():
    """Converting relu_ as relu would give `v` the value before the ReLU, not PyTorch's."""
    with pytest.raises(tinytrain.UnsupportedModelError) as e:
        import_model(ReadAfterInPlace().eval(), torch.randn(1, 3, 4, 4))
    msg = str(e.value)
    assert "in-place 'aten.relu_.default' modifies a tensor that 'linear' reads afterwards" in msg
    assert "use the out-of-place form" in msg
    assert "layer: <root> (ReadAfterInPlace)" in msg and f"source: {__file__}:" in msg


def test_in_place_op_on_the_model_input_is_refused():
    with pytest.raises(tinytrain.UnsupportedModelError, match=r"in-place 'aten.relu_.default' modifies the model input"):
        import_model(InPlaceOnInput().eval(), torch.randn(1, 3, 4, 4))


class MeanOverWThenC(nn.Module):
    def forward(self, x):
        return x.mean(3).mean(1)


def test_mean_chain_that_is_not_h_and_w_is_refused():
    with pytest.raises(tinytrain.UnsupportedModelError, match=r"mean over dims \[1\] after a mean over dim 3"):
        import_model(MeanOverWThenC().eval(), torch.randn(1, 3, 4, 4))


class TanhInPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x.mean((2, 3)).relu().tanh_())


def test_unsupported_in_place_op_says_in_place():
    with pytest.raises(tinytrain.UnsupportedModelError, match=r"'aten.tanh_' \(the in-place form of 'aten.tanh'\)"):
        import_model(TanhInPlace().eval(), torch.randn(1, 3, 4, 4))
