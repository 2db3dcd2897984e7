"""The tinytrain -> linalg conversion as a pass: frozen parameters become `dense_resource`
constants built from the arrays, the signature shrinks accordingly, and every refusal is a
CompileError naming the op and its location. (Per-op IR: tests/lit/conversions/.)"""

import numpy as np
import pytest
from torch_mlir import ir

from tinytrain.errors import CompileError
from tinytrain.context import new_context, parse_module
from tinytrain.lowering.conversions import tinytrain_to_linalg as t2l
from tinytrain.lowering.host.iree_host import HostModule, compile_host
from tinytrain.pipeline import pass_class, run_pipeline

# @train_step updates fc.bias (trained, tied to result 0); fc.weight is frozen and also read by
# @predict, so both functions must share one constant.
MODULE = """
func.func @train_step(%w: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                      %b: tensor<3xf32> {iree.abi.output = 0 : index, tinytrain.param = "fc.bias", tinytrain.trainable},
                      %x: tensor<2x4xf32> {tinytrain.input}, %g: tensor<3xf32> {tinytrain.labels}) -> (tensor<3xf32>, tensor<2x3xf32>) {
  %y = "tinytrain.linear"(%x, %w, %b) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %l = arith.constant dense<1.0> : tensor<f32>
  %nb = "tinytrain.sgd_update"(%b, %g, %l) {lr = 5.000000e-01 : f32} : (tensor<3xf32>, tensor<3xf32>, tensor<f32>) -> tensor<3xf32>
  return %nb, %y : tensor<3xf32>, tensor<2x3xf32>
}
func.func @predict(%w: tensor<3x4xf32> {tinytrain.param = "fc.weight"},
                   %b: tensor<3xf32> {tinytrain.param = "fc.bias", tinytrain.trainable},
                   %x: tensor<2x4xf32> {tinytrain.input}) -> tensor<2x3xf32> {
  %y = "tinytrain.linear"(%x, %w, %b) : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32> loc("fc")
  return %y : tensor<2x3xf32>
}
"""

W = np.arange(12, dtype=np.float32).reshape(3, 4) / 7 - 0.5


def _module():
    return parse_module(MODULE, new_context(), stage="test")


def _funcs(module):
    return {ir.StringAttr(op.attributes["sym_name"]).value: op for op in module.body.operations}


def _is_resource(attr) -> bool:
    try:
        ir.DenseResourceElementsAttr(attr)
        return True
    except ValueError:
        return False


def _arg_params(func):
    return [ir.StringAttr(ir.DictAttr(d)["tinytrain.param"]).value if "tinytrain.param" in ir.DictAttr(d)
            else None for d in ir.ArrayAttr(func.attributes["arg_attrs"])]


def test_frozen_parameter_becomes_a_shared_dense_resource_constant():
    module = _module()
    t2l.lower_to_linalg(module, {"fc.weight": W, "fc.bias": np.zeros(3, np.float32)})
    funcs = _funcs(module)
    constants = []
    for name, func in funcs.items():
        block = func.regions[0].blocks[0]
        inputs = ir.FunctionType(ir.TypeAttr(func.attributes["function_type"]).value).inputs
        # fc.weight left the signature: block arguments, function_type and arg_attrs agree.
        assert len(block.arguments) == len(inputs) == len(ir.ArrayAttr(func.attributes["arg_attrs"]))
        assert [str(t) for t in inputs][:1] == ["tensor<3xf32>"]
        assert _arg_params(func)[0] == "fc.bias"
        consts = [op for op in block.operations if op.operation.name == "arith.constant"
                  and _is_resource(op.attributes["value"])]
        assert len(consts) == 1, name
        constants.append(consts[0].attributes["value"])
        assert not any(op.operation.name.startswith("tinytrain.") for op in block.operations)
    # one resource for the two functions (the weights are stored once)
    assert constants[0] == constants[1]
    assert str(constants[0]) == "dense_resource<param_fc_weight> : tensor<3x4xf32>"
    # the tied trained argument keeps its attributes
    d = ir.DictAttr(ir.ArrayAttr(funcs["train_step"].attributes["arg_attrs"])[0])
    assert "iree.abi.output" in d and "tinytrain.trainable" in d


def test_the_inlined_weight_is_the_array():
    """The resource's bytes are the array's (layout and values), checked by running @predict."""
    module = _module()
    t2l.lower_to_linalg(module, {"fc.weight": W})
    host = HostModule(compile_host(str(module)))
    b = np.array([0.25, -1.0, 2.0], np.float32)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    (y,) = host.call("predict", b, x)
    np.testing.assert_allclose(y, x @ W.T + b, rtol=1e-6, atol=1e-6)


def test_without_values_frozen_parameters_stay_arguments():
    module = _module()
    run_pipeline(module, "to-linalg")
    assert _arg_params(_funcs(module)["predict"]) == ["fc.weight", "fc.bias", None]
    assert "dense_resource" not in str(module)


def test_registered_pass_and_value_errors():
    assert pass_class("to-linalg") is t2l.ConvertTinytrainToLinalgPass
    # values is not a CLI option; clamp is (set from the target by compile())
    assert t2l.ConvertTinytrainToLinalgPass.option_types() == {"clamp": str, "convgrad": str, "kernels": str}
    with pytest.raises(CompileError, match=r"no value for frozen parameter 'fc.weight' of @train_step"):
        t2l.lower_to_linalg(_module(), {})
    with pytest.raises(CompileError, match=r"value of 'fc.weight' has shape \[4, 3\], the function expects \[3, 4\]"):
        t2l.lower_to_linalg(_module(), {"fc.weight": W.T})


def test_op_without_a_pattern_is_a_compile_error_naming_it(monkeypatch):
    from tinytrain.dialects import tinytrain as tt

    monkeypatch.delitem(t2l.PATTERNS, tt.LinearOp)
    module = _module()
    with pytest.raises(CompileError, match=r"no lowering for 'tinytrain.linear' \(at loc\(") as e:
        t2l.lower_to_linalg(module)
    assert e.value.stage == "to-linalg"
    # nothing was rewritten: the check runs before the conversion
    assert "tinytrain.sgd_update" in str(module)
