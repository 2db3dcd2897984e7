"""The int8 ops of the dialect describe the paper's real layers: every convolution of the three
pretrained models becomes a `tinytrain.qconv2d` that verifies, with the fixed-point multipliers
of `tinytrain.reference` (the numerics the lowering must implement)."""

import numpy as np
import pytest

from tinytrain.errors import CompileError
from tinytrain.context import new_context, parse_module
from tinytrain.pretrained import MODEL_NAMES, load_mcu_model
from tinytrain.reference import quantize_multiplier


def _arr(kind, vals):
    return f"array<{kind}: {', '.join(repr(float(v)) if kind == 'f64' else str(int(v)) for v in vals)}>"


def _qconv_text(c, m0=None, shift=None):
    hw = c.in_hw or 1
    ohw = c.out_hw or 1
    eff_m0, eff_sh = c.multiplier_shift()
    m0 = eff_m0 if m0 is None else m0
    shift = eff_sh if shift is None else shift
    kh, kw, cig, co = c.weight.shape
    x_t = f"tensor<1x{hw}x{hw}x{c.in_channels}xi8>"
    w_t = f"tensor<{kh}x{kw}x{cig}x{co}xi8>"
    y_t = f"tensor<1x{ohw}x{ohw}x{co}xi8>"
    return (f'func.func @f(%x: {x_t}, %w: {w_t}, %b: tensor<{co}xi32>) -> {y_t} {{\n'
            f'  %0 = "tinytrain.qconv2d"(%x, %w, %b) {{strides = array<i64: {c.stride}, {c.stride}>, '
            f'padding = array<i64: {c.padding}, {c.padding}>, groups = {c.groups} : i64, '
            f'input_scale = {c.x_scale!r} : f64, input_zero_point = {c.x_zero} : i64, '
            f'weight_scales = {_arr("f64", c.w_scales.astype(np.float64))}, '
            f'output_scale = {c.y_scale!r} : f64, output_zero_point = {c.y_zero} : i64, '
            f'multiplier = {_arr("i32", m0)}, shift = {_arr("i32", shift)}, clamp = array<i64: -128, 127>}}'
            f' : ({x_t}, {w_t}, tensor<{co}xi32>) -> {y_t}\n  return %0 : {y_t}\n}}')


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_layer_of_the_pretrained_models_is_a_valid_qconv2d(name):
    m = load_mcu_model(name)
    ctx = new_context()
    for c in m.convs() + [m.classifier]:
        parse_module(_qconv_text(c), ctx, stage=c.name)


def test_a_multiplier_off_by_one_is_rejected():
    c = load_mcu_model("mbv2-w0.35").blocks[3].depthwise
    m0, sh = quantize_multiplier(c.effective_scale())
    m0 = m0.copy()
    m0[5] += 1
    with pytest.raises(CompileError, match=r"'tinytrain.qconv2d' op multiplier/shift of channel 5"):
        parse_module(_qconv_text(c, m0, sh), new_context(), stage="test")
