"""Sparse-update schemes as a compile option (`tinytrain.sparse`): the paper's form and published
schemes resolve to the right parameters and channel slices; mistakes are clear errors. No IREE
compile here (about 3 s: the three models' graphs are built once)."""

import json
from fractions import Fraction

import pytest

from tinytrain.errors import CompileError
from tinytrain.pretrained import MODEL_NAMES, load_mcu_model, load_sparse_scheme, sparse_scheme_names
from tinytrain.pretrained.graph import build_forward, truncate
from tinytrain.sparse import resolve
from tinytrain.transforms.sparse_update import plan_slices

HEAD = ("fc.weight", "fc.bias")


@pytest.fixture(scope="module")
def models():
    return {n: load_mcu_model(n) for n in MODEL_NAMES}


@pytest.fixture(scope="module")
def graphs(models):
    return {n: build_forward(m, classifier="fp32", num_classes=10, input_hw=32) for n, m in models.items()}


def _resolve(spec, model, graph):
    return resolve(spec, param_names=list(graph.param_names), model=model, head=HEAD)


def test_fifteen_published_schemes_resolve_and_slice(models, graphs):
    """Every published scheme, selected by name, trains the scheme's biases, weights (first
    floor(r C_out) channels) and the head; `sparse-update` accepts every slice on the model."""
    count = 0
    for name in MODEL_NAMES:
        m, g = models[name], graphs[name]
        convs = [c.name for c in m.convs()]
        for s in sparse_scheme_names(name):
            ref = load_sparse_scheme(m, s)
            u = _resolve(s, m, g)
            want = {f"{c}.bias" for c in ref.bias_layers} | set(HEAD)
            want |= {f"{w.name}.weight" for w in ref.weight_updates if w.ratio > 0}
            assert set(u.trainable) == want, (name, s)
            assert len(ref.bias_layers) == ref.n_bias_update and list(ref.bias_layers) == convs[len(convs) - ref.n_bias_update:]
            slices = {p.name: p for p in plan_slices(g.module, u.sliced)}
            for w in ref.weight_updates:
                if 0 < w.ratio < 1:
                    sl = slices[f"{w.name}.weight"]
                    assert (sl.channels, sl.of, sl.axis) == (w.channels, m.conv(w.name).out_channels, 3)
                else:
                    assert f"{w.name}.weight" not in slices
            count += 1
    assert count == 15


def test_depthwise_ratio_in_published_scheme(models, graphs):
    """The one depthwise conv with a ratio in the 15 schemes (MobileNetV2 49kb, index 49): 42 of
    its 336 channels (groups) are trained; block 13's depthwise (ratio 0) trains its bias only."""
    m, g = models["mbv2-w0.35"], graphs["mbv2-w0.35"]
    u = _resolve("49kb", m, g)
    assert u.parameters["blocks.16.depthwise.weight"] == Fraction(1, 8)
    assert "blocks.13.depthwise.weight" not in u.parameters and "blocks.13.depthwise.bias" in u.parameters
    (dw,) = [s for s in plan_slices(g.module, u.sliced) if s.name == "blocks.16.depthwise.weight"]
    assert (dw.channels, dw.of) == (42, 336)


def test_paper_form_file_and_dict_agree(models, graphs, tmp_path):
    m, g = models["mcunet-5fps"], graphs["mcunet-5fps"]
    d = {"n_bias_update": 22, "manual_weight_idx": [21, 24, 27, 30, 36, 39],
         "weight_update_ratio": [1, 1, 1, 1, 0.125, 0.25], "weight_select_criteria": "magnitude+"}
    f = tmp_path / "s.json"
    f.write_text(json.dumps(d))
    assert _resolve(str(f), m, g).parameters == _resolve(d, m, g).parameters == _resolve("99kb", m, g).parameters
    assert _resolve(load_sparse_scheme(m, "99kb"), m, g).parameters == _resolve(d, m, g).parameters


def test_explicit_form_ratios(models, graphs):
    m, g = models["mbv2-w0.35"], graphs["mbv2-w0.35"]
    u = _resolve({"parameters": {"blocks.16.pointwise2.weight": "1/4", "blocks.16.pointwise2.bias": 1,
                                 "fc.weight": 0.5}}, m, g)
    assert u.parameters == {"blocks.16.pointwise2.weight": Fraction(1, 4), "blocks.16.pointwise2.bias": 1,
                            "fc.weight": Fraction(1, 2)}
    assert u.pass_option() == ("blocks.16.pointwise2.weight:1/4", "fc.weight:1/2")


@pytest.mark.parametrize("spec, message", [
    ({"parameters": {"blocks.16.pointwise2.wieght": 1}},
     "unknown parameter 'blocks.16.pointwise2.wieght'. Did you mean blocks.16.pointwise2.weight"),
    ({"parameters": {"fc.weight": 0.3}}, "ratio 0.3 is not allowed; the sparse update trains 1/8, 1/4, 1/2"),
    ({"parameters": {"fc.weight": "a lot"}}, "ratio 'a lot' is not a number"),
    ({"n_bias_update": 60, "manual_weight_idx": [], "weight_update_ratio": []},
     "n_bias_update = 60 must be a whole number in [0, 51]"),
    ({"n_bias_update": 2, "manual_weight_idx": [51], "weight_update_ratio": [1]},
     "manual_weight_idx 51 is out of range: the model's convolutions are numbered 0 (first_conv) to 50"),
    ({"n_bias_update": 2, "manual_weight_idx": [49], "weight_update_ratio": [0.3]},
     "convolution 49 (blocks.16.depthwise): ratio 0.3 is not allowed"),
    ({"n_bias_update": 2, "manual_weight_idx": [49, 50], "weight_update_ratio": [1]},
     "must be lists of equal length"),
    ({"n_bias_update": 2, "manual_weight_idx": [48, 48], "weight_update_ratio": [1, 1]}, "lists convolution 48"),
    ({"n_bias_update": 2}, "missing key(s) ['manual_weight_idx', 'weight_update_ratio']"),
    ({"n_bias": 2}, "expected the keys n_bias_update, manual_weight_idx, weight_update_ratio (paper form) or 'parameters'"),
    ({"parameters": {}, "extra": 1}, "unknown key(s) ['extra']"),
    ("12kb", "no such published scheme for mbv2-w0.35; published: 49kb, 73kb, 99kb, 123kb, 138kb"),
    ("scheme.yaml", "YAML is not supported"),
    ("missing.json", "no such file"),
])
def test_scheme_errors_name_the_entry_and_fix(models, graphs, spec, message):
    with pytest.raises(ValueError) as e:
        _resolve(spec, models["mbv2-w0.35"], graphs["mbv2-w0.35"])
    assert message in str(e.value)


def test_paper_form_needs_a_paper_model():
    with pytest.raises(ValueError, match="numbers the convolutions of the paper's int8 models; for this model "
                                         "write the explicit form"):
        resolve({"n_bias_update": 1, "manual_weight_idx": [], "weight_update_ratio": []}, param_names=["a.weight"])
    with pytest.raises(ValueError, match="published schemes exist only for the paper's models"):
        resolve("49kb", param_names=["a.weight"])


def test_published_scheme_on_a_truncated_model_is_out_of_range(models):
    """Paper indices refer to the whole model: on a truncated backbone they are refused."""
    m = truncate(models["mbv2-w0.35"], 3)
    g = build_forward(m, classifier="fp32", num_classes=4, input_hw=32)
    with pytest.raises(ValueError, match=r"n_bias_update = 16 must be a whole number in \[0, 9\]"):
        _resolve("49kb", m, g)


def test_slice_errors(graphs):
    g = graphs["mbv2-w0.35"]
    with pytest.raises(CompileError, match="'blocks.16.pointwise2.bias' has ratio 1/2, but only the weight"):
        plan_slices(g.module, {"blocks.16.pointwise2.bias": Fraction(1, 2)})
    with pytest.raises(CompileError, match="unknown parameter 'nope'"):
        plan_slices(g.module, {"nope": Fraction(1, 2)})
