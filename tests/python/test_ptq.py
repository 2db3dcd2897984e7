"""Post-training int8 quantization of a user's fp32 model: `compile(quantize="int8", ...)`.

The model is `tinytrain.models.residual_cnn` (conv+BN+ReLU, depthwise+BN+ReLU6, pointwise+BN,
residual add + ReLU, stride-2 conv+BN+ReLU, global average pool, linear) trained in PyTorch
(`tinytrain.models.fit`, seeded, a few seconds) on scikit-learn's digits (8x8, 10 classes; 1437
train, 360 test: `tinytrain.datasets.digits_8x8`); calibration: 200 training images. Two
compiles per module: fp32 classifier (gradients, training) and int8 classifier (bit-exactness).

- bit-exact: the compiled `predict` of the int8-classifier graph (f32 logits = the dequantized int8
  logits) equals `tinytrain.reference_graph.evaluate` (numpy, `tinytrain.reference` device rule)
  on the quantized graph and parameters, bit for bit; with the fp32 classifier the int8 part is
  the same and the head is one float32 dot product of 16 terms vs float64: 1e-5 relative.
- accuracy: int8 test accuracy within 3 points of the fp32 model's (360 test images), and the
  logits within 10 % of the fp32 logits' range: every activation carries one int8 rounding error
  (half a step, range/510), ~6 layers add them up, and the calibration ranges come from 200
  images only. Measured by `bench/ptq_digits.py` (same model, recipe and calibration): fp32
  0.892, int8 0.897, the same argmax on 99.4 % of the images, largest logit error 1.5 % of the
  range.
- gradients: `@gradients` equals torch.autograd on the dequantized graph with straight-through
  clamps (the construction of test_int8_training.py, generalised to any quantized graph), within
  1e-4 of each tensor's largest entry (float32 vs float64 backward over <= 1k terms).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tinytrain
from tinytrain import reference as R
from tinytrain.datasets import digits_8x8
from tinytrain.models import fit, residual_cnn
from tinytrain.context import new_context
from tinytrain.irfuncs import arg_attrs
from tinytrain.reference_graph import apply_op, evaluate, forward_func
from torch_mlir import ir

TRAINABLE = ["block.pw.weight", "block.pw.bias", "head.conv.weight", "head.conv.bias", "fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def trained():
    xtr, ytr, xte, yte = digits_8x8()
    torch.manual_seed(0)
    return fit(residual_cnn(), xtr, ytr, epochs=10, lr=0.02, batch=64, seed=0), (xtr, ytr, xte, yte)


@pytest.fixture(scope="module")
def fp32_head(trained):
    model, (xtr, _, _, _) = trained
    return tinytrain.compile(model, torch.zeros(1, 1, 8, 8), quantize="int8", calibration=xtr[:200],
                             trainable=TRAINABLE, lr=0.05, gradients=True)


@pytest.fixture(scope="module")
def int8_head(trained):
    model, (xtr, _, _, _) = trained
    batches = [torch.from_numpy(xtr[i:i + 50]) for i in range(0, 200, 50)]  # an iterable of batches
    return tinytrain.compile(model, torch.zeros(1, 1, 8, 8), quantize="int8", calibration=batches,
                             int8_classifier=True, trainable=["fc.weight"], lr=0.05)


def quantized_module(prog):
    ctx = new_context()
    with ctx:
        return ir.Module.parse(prog.stages["quantize"]), ctx


def current_params(prog):
    """Every parameter of the quantized graph, the trained ones at their current values."""
    return {**prog.quantized_params, **dict(zip(prog.trainable, prog.program_params()))}


def _nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def test_int8_classifier_predict_is_bit_exact(int8_head, trained):
    _, (_, _, xte, _) = trained
    module, ctx = quantized_module(int8_head)
    with ctx:
        for i in range(40):
            want = evaluate(module, current_params(int8_head), _nhwc(xte[i:i + 1]))
            got = int8_head.predict(xte[i:i + 1])
            assert got.dtype == np.float32 and np.array_equal(got, want), i
    sd = int8_head.state_dict()
    assert sd["fc.weight"].dtype == torch.int8 and tuple(sd["fc.weight"].shape) == (10, 16, 1, 1)


def test_fp32_classifier_predict_matches_reference_and_fp32_accuracy(fp32_head, trained):
    model, (_, _, xte, yte) = trained
    prog = fp32_head
    module, ctx = quantized_module(prog)
    ops = [op.operation.name for op in forward_func(module).regions[0].blocks[0].operations]
    assert ops == ["tinytrain.quantize", "tinytrain.qconv2d", "tinytrain.qconv2d", "tinytrain.qconv2d",
                   "tinytrain.qadd", "tinytrain.qconv2d", "tinytrain.qavg_pool", "tinytrain.dequantize",
                   "tinytrain.linear", "func.return"]
    with torch.no_grad():
        ref32 = model(torch.from_numpy(xte)).numpy()
    got = np.concatenate([prog.predict(xte[i:i + 1]) for i in range(len(xte))])
    with ctx:
        want = evaluate(module, current_params(prog), _nhwc(xte))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    acc32 = float((ref32.argmax(1) == yte).mean())
    acc8 = float((got.argmax(1) == yte).mean())
    assert acc32 > 0.85, acc32
    assert acc8 >= acc32 - 0.03, (acc32, acc8)
    assert np.abs(got - ref32).max() <= 0.1 * (ref32.max() - ref32.min())


def torch_ste_gradients(module, values, x_nhwc, label, trainable):
    """(loss, {name: gradient}) of the quantized graph by torch.autograd on real values: each int8
    op's value is its int8 result dequantized, its gradient that of the real op (conv of the
    dequantized weights + real bias, real sum, mean) masked by `lo < y_q < hi` (straight-through
    rounding and clamp; the pool has no clamp). The leaves are the parameters' own values, so the
    gradient of an integer parameter is that of its integer value (`s_W dL/dW`, `s_x s_W dL/db`
    for the real W = s_W w, b = s_x s_W b_int)."""
    fn = forward_func(module)
    block = fn.regions[0].blocks[0]
    q, real, leaves = {}, {}, {}
    for arg, attrs in zip(block.arguments, arg_attrs(fn)):
        if "tinytrain.input" in attrs:
            q[arg] = x_nhwc
        else:
            q[arg] = values[ir.StringAttr(attrs["tinytrain.param"]).value]
            name = ir.StringAttr(attrs["tinytrain.param"]).value
            real[arg] = torch.tensor(q[arg].astype(np.float64), requires_grad=name in trainable)
            leaves[name] = real[arg]

    def ste(y_q, scale, zero, pre, lo=-128, hi=127):
        val = torch.tensor(R.dequantize(y_q, scale, zero).astype(np.float64))
        mask = torch.tensor(((y_q > lo) & (y_q < hi)).astype(np.float64))
        return val + (pre - pre.detach()) * mask

    for op in block.operations:
        op = op.operation
        name = op.name
        a = op.attributes
        if name == "func.return":
            logits = real[op.operands[0]]
            break
        ins = list(op.operands)
        y_q = apply_op(op, *[q[v] for v in ins]) if name != "tinytrain.linear" else None
        out = op.results[0]
        if name == "tinytrain.quantize":
            real[out] = torch.tensor(R.dequantize(y_q, ir.FloatAttr(a["scale"]).value,
                                                  ir.IntegerAttr(a["zero_point"]).value).astype(np.float64))
        elif name == "tinytrain.qconv2d":
            s_x = ir.FloatAttr(a["input_scale"]).value
            s_w = np.asarray(list(ir.DenseF64ArrayAttr(a["weight_scales"])))
            w = real[ins[1]] * torch.tensor(s_w)
            b = real[ins[2]] * torch.tensor(s_x * s_w)
            pre = F.conv2d(real[ins[0]].permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b,
                           stride=list(ir.DenseI64ArrayAttr(a["strides"])),
                           padding=list(ir.DenseI64ArrayAttr(a["padding"])),
                           groups=ir.IntegerAttr(a["groups"]).value).permute(0, 2, 3, 1)
            lo, hi = list(ir.DenseI64ArrayAttr(a["clamp"]))
            real[out] = ste(y_q, ir.FloatAttr(a["output_scale"]).value,
                            ir.IntegerAttr(a["output_zero_point"]).value, pre, lo, hi)
        elif name == "tinytrain.qadd":
            lo, hi = list(ir.DenseI64ArrayAttr(a["clamp"]))
            real[out] = ste(y_q, ir.FloatAttr(a["output_scale"]).value,
                            ir.IntegerAttr(a["output_zero_point"]).value, real[ins[0]] + real[ins[1]], lo, hi)
        elif name == "tinytrain.qavg_pool":
            src = ins[0].owner
            sc = ir.FloatAttr(src.attributes["output_scale"]).value
            zp = ir.IntegerAttr(src.attributes["output_zero_point"]).value
            real[out] = ste(y_q, sc, zp, real[ins[0]].mean(dim=(1, 2)), -129, 128)
        elif name == "tinytrain.dequantize":
            real[out] = real[ins[0]]
        elif name == "tinytrain.linear":
            real[out] = real[ins[0]] @ real[ins[1]].T + real[ins[2]]
        else:
            raise AssertionError(name)
        if y_q is not None:
            q[out] = y_q
    loss = F.cross_entropy(logits, torch.tensor([label]))
    loss.backward()
    return float(loss.detach()), {n: leaves[n].grad.numpy() for n in trainable}


@pytest.mark.parametrize("i", [0, 7])
def test_gradients_match_torch_ste(fp32_head, trained, i):
    _, (_, _, xte, yte) = trained
    prog = fp32_head
    module, ctx = quantized_module(prog)
    x, label = xte[i:i + 1], int(yte[i] + 1) % 10  # a wrong label: a loss and gradients of size 1
    got, loss = prog.gradients(x, [label])
    with ctx:
        want_loss, want = torch_ste_gradients(module, current_params(prog), _nhwc(x), label, TRAINABLE)
    assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-6)
    for name in TRAINABLE:
        w = want[name]
        g = got[name]
        if w.ndim == 4:  # HWIO -> the OIHW of the state dict
            w = w.transpose(3, 2, 0, 1)
        scale = np.abs(w).max()
        assert scale > 0, f"{name}: zero reference gradient, the comparison would be vacuous"
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4 * scale, err_msg=name)


def test_int8_training_with_qas_lowers_the_loss(fp32_head, trained):
    """2 epochs of batch-1 SGD (lr 0.05, QAS on) on 60 training images with labels permuted
    (a new task: the pretrained logits are wrong for it): the mean loss over them must fall by
    at least 30 % (`pytest -s -k lowers_the_loss` prints it; 11.96 -> 1.87 when written), and the
    trained int8 weights must move (integer write-back)."""
    _, (xtr, ytr, _, _) = trained
    prog = fp32_head
    xs, ys = xtr[200:260], (ytr[200:260] + 1) % 10
    w0 = prog.state_dict()["block.pw.weight"].clone()

    def mean_loss():
        logits = np.concatenate([prog.predict(xs[i:i + 1]) for i in range(len(xs))]).astype(np.float64)
        m = logits.max(1, keepdims=True)
        lse = np.log(np.exp(logits - m).sum(1)) + m[:, 0]
        return float((lse - logits[np.arange(len(ys)), ys]).mean())

    before = mean_loss()
    for _ in range(2):
        for i in range(len(xs)):
            prog.train_step(xs[i:i + 1], [int(ys[i])])
    after = mean_loss()
    w1 = prog.state_dict()["block.pw.weight"]
    print(f"mean loss {before:.4f} -> {after:.4f}")
    assert w1.dtype == torch.int8 and not torch.equal(w0, w1)
    assert after < 0.7 * before, (before, after)
    assert "tinytrain.qas" in prog.stages["autodiff"]


def test_state_dict_round_trip_keeps_integer_parameters(fp32_head):
    prog = fp32_head
    sd = prog.state_dict()
    assert sd["head.conv.weight"].dtype == torch.int8 and sd["head.conv.bias"].dtype == torch.int32
    assert sd["fc.weight"].dtype == torch.float32
    bumped = {**sd, "head.conv.bias": sd["head.conv.bias"] + 1}
    prog.load_state_dict(bumped)
    assert torch.equal(prog.state_dict()["head.conv.bias"], bumped["head.conv.bias"])
    with pytest.raises(ValueError, match=r"'head.conv.weight' is a quantized int8 parameter: its values must be "
                                         r"integers in \[-128, 127\]"):
        prog.load_state_dict({"head.conv.weight": sd["head.conv.weight"].float() + 0.5})
    prog.load_state_dict(sd)
    assert torch.equal(prog.state_dict()["head.conv.bias"], sd["head.conv.bias"])


def test_pass_reads_params_and_calibration_files(tmp_path):
    """`quantize{params=... calibration=...}` (tinytrain-opt's way) builds the same int8 graph as
    the values and batches `compile()` passes; a calibration file of the wrong shape is refused."""
    from tinytrain.errors import CompileError
    from tinytrain.lowering.conversions.torch_to_tinytrain import import_model
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.quantize import QuantizePass

    torch.manual_seed(0)
    model = residual_cnn().eval()
    cal = np.random.default_rng(1).standard_normal((6, 8, 8, 1)).astype(np.float32)
    a, b = import_model(model, torch.zeros(1, 1, 8, 8)), import_model(model, torch.zeros(1, 1, 8, 8))
    np.savez(tmp_path / "p.npz", **a.params)
    np.save(tmp_path / "cal.npy", cal)
    run_pipeline(a.module, [QuantizePass(values=a.params, calibration_data=[cal[:4], cal[4:]])])
    run_pipeline(b.module, f"quantize{{params={tmp_path / 'p.npz'} calibration={tmp_path / 'cal.npy'}}}")
    assert str(a.module) == str(b.module)
    np.save(tmp_path / "bad.npy", cal[:, :4])
    c = import_model(model, torch.zeros(1, 1, 8, 8))
    with pytest.raises(CompileError, match=r"calibration batch 0 has shape \[6, 4, 8, 1\], expected \[K, 8, 8, 1\]"):
        run_pipeline(c.module, f"quantize{{params={tmp_path / 'p.npz'} calibration={tmp_path / 'bad.npy'}}}")


def test_hidden_linear_and_conv_without_bias():
    """A conv without bias (a constant zero bias, int32 after quantization), flatten, a hidden
    linear + ReLU (an int8 1x1 qconv2d) and the fp32 classifier; the int8 graph (numpy reference)
    stays within 5 % of the fp32 logits' range on its calibration images."""
    from tinytrain.lowering.conversions.torch_to_tinytrain import import_model
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.quantize import QuantizePass

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 6),
                                torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
    cal = torch.randn(16, 1, 6, 6)
    imp = import_model(model, torch.zeros(1, 1, 6, 6))
    run_pipeline(imp.module, [QuantizePass(values=imp.params, calibration_data=[_nhwc(cal.numpy())])])
    ops = [op.operation.name for op in forward_func(imp.module).regions[0].blocks[0].operations]
    assert ops == ["tinytrain.quantize", "arith.constant", "tinytrain.qconv2d", "tinytrain.qavg_pool",
                   "tinytrain.reshape", "tinytrain.qconv2d", "tinytrain.reshape", "tinytrain.dequantize",
                   "tinytrain.linear", "func.return"]
    assert imp.params["4.weight"].dtype == np.int8 and imp.params["6.weight"].dtype == np.float32
    with torch.no_grad():
        want = model(cal).numpy()
    got = evaluate(imp.module, imp.params, _nhwc(cal.numpy()))
    assert np.abs(got - want).max() <= 0.05 * (want.max() - want.min())
