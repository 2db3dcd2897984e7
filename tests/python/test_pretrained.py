"""tinytrain.pretrained: the shipped int8 models and sparse-update schemes load, typed and
validated; malformed files fail naming the entry."""

import json
import shutil

import numpy as np
import pytest

from tinytrain.pretrained import (MODEL_NAMES, MalformedModelError, load_mcu_model, load_sparse_scheme,
                                  models_dir, sparse_scheme_names)

# (blocks, convs without classifier, classifier input channels) from mcu_models/README.md
EXPECTED = {"mbv2-w0.35": (17, 51, 112), "proxyless-w0.3": (20, 60, 96), "mcunet-5fps": (14, 42, 160)}


def test_files_ship_inside_the_package_with_their_license():
    d = models_dir()
    assert d.parent.name == "pretrained"
    assert "MIT License" in (d / "LICENSE").read_text()
    for name in MODEL_NAMES:
        assert (d / f"{name}.json").is_file() and (d / f"{name}.npz").is_file()
    assert (d / "sparse_schemes.json").is_file()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_structure_and_layouts(name):
    m = load_mcu_model(name)
    n_blocks, n_convs, cls_in = EXPECTED[name]
    assert (len(m.blocks), len(m.convs()), m.classifier.in_channels) == (n_blocks, n_convs, cls_in)
    assert m.input_hw == 128 and m.num_classes == 1000
    assert m.blocks[0].pointwise1 is None and all(b.pointwise1 is not None for b in m.blocks[1:])
    assert m.pool.channels == cls_in and m.pool.in_hw == 4
    raw = np.load(models_dir() / f"{name}.npz")
    for c in m.convs() + [m.classifier]:
        assert c.weight.dtype == np.int8 and c.bias.dtype == np.int32 and c.w_scales.dtype == np.float32
        # HWIO here, OIHW in the file
        np.testing.assert_array_equal(c.weight, raw[f"{c.name}.weight"].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(c.bias, raw[f"{c.name}.bias"])
        assert c.weight.shape[:2] == (c.kernel_size, c.kernel_size)
        assert c.padding == (c.kernel_size - 1) // 2
        eff = c.effective_scale()
        assert eff.dtype == np.float64 and np.all((eff > 0) & (eff < 1))
        m0, shift = c.multiplier_shift()
        assert np.all(shift <= 0)  # every layer: right shifts only
        approx = m0 * np.exp2(shift - 31.0)
        np.testing.assert_allclose(approx[m0 > 0], eff[m0 > 0], rtol=2.0**-30)
    for b in m.blocks:
        assert b.depthwise.depthwise and b.depthwise.weight.shape[2] == 1
        if b.residual:
            assert b.depthwise.stride == 1 and b.residual.channels == b.pointwise2.out_channels
    # ReLU6 outputs are the whole int8 range of [0, 6]
    assert m.first_conv.y_zero == -128 and m.first_conv.y_scale == pytest.approx(6 / 255)


def test_conv_lookup_by_name():
    m = load_mcu_model("mbv2-w0.35")
    assert m.conv("blocks.3.depthwise") is m.blocks[3].depthwise
    assert m.conv("classifier") is m.classifier
    with pytest.raises(KeyError, match="blocks.3.pointwise9"):
        m.conv("blocks.3.pointwise9")


def test_the_15_published_schemes():
    names = {n: sparse_scheme_names(n) for n in MODEL_NAMES}
    assert sum(len(v) for v in names.values()) == 15
    for model, schemes in names.items():
        m = load_mcu_model(model)
        convs = m.convs()
        for s in schemes:
            sc = load_sparse_scheme(m, s)
            assert sc.bias_layers == tuple(c.name for c in convs[len(convs) - sc.n_bias_update:])
            for u in sc.weight_updates:
                assert u.name == convs[u.index].name
                assert u.channels == int(u.ratio * convs[u.index].out_channels)


def test_mbv2_49kb_scheme_as_documented():
    """The README's worked example."""
    s = load_sparse_scheme("mbv2-w0.35", "49kb")
    got = [(u.name, u.ratio, u.channels) for u in s.weight_updates]
    assert got == [("blocks.12.pointwise1", 1.0, 192), ("blocks.13.pointwise1", 1.0, 192),
                   ("blocks.13.depthwise", 0.0, 0), ("blocks.13.pointwise2", 0.25, 14),
                   ("blocks.14.pointwise1", 0.125, 42), ("blocks.15.pointwise1", 0.125, 42),
                   ("blocks.16.pointwise1", 0.125, 42), ("blocks.16.depthwise", 0.125, 42)]
    assert s.n_bias_update == 16 and len(s.bias_layers) == 16 and s.bias_layers[-1] == "blocks.16.pointwise2"
    assert s.weight_select_criteria == "magnitude+"


def test_unknown_names_are_clear_errors():
    with pytest.raises(FileNotFoundError, match="available: mbv2-w0.35, mcunet-5fps, proxyless-w0.3"):
        load_mcu_model("mbv3")
    with pytest.raises(KeyError, match="schemes: 49kb, 73kb"):
        load_sparse_scheme("mbv2-w0.35", "50kb")


# ----------------------------------------------------------------------------- malformed files


@pytest.fixture
def copy_dir(tmp_path):
    for p in models_dir().iterdir():
        if p.name.startswith("mbv2") or p.name == "sparse_schemes.json":
            shutil.copy(p, tmp_path / p.name)
    return tmp_path


def _edit(path, fn):
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


@pytest.mark.parametrize("edit,message", [
    (lambda d: d["blocks"][3]["depthwise"]["params"].pop("y_zero"), r"blocks\.3\.depthwise\.params: missing key 'y_zero'"),
    (lambda d: d["blocks"][3]["depthwise"]["params"].update(y_zero=200), r"blocks\.3\.depthwise\.params\.y_zero: 200 is outside"),
    (lambda d: d["first_conv"]["params"].update(x_scale=-1.0), r"first_conv\.params\.x_scale: expected a finite positive"),
    (lambda d: d["blocks"][5]["pointwise1"]["params"].update(x_zero=5), r"blocks\.5\.pointwise1: input quantization"),
    (lambda d: d["blocks"][2]["pointwise2"].update(out_channel=9), r"blocks\.2\.pointwise2\.params\.weight: .*expected \(9, 48, 1, 1\)"),
    (lambda d: d["blocks"][2]["depthwise"].update(out_shape=31), r"blocks\.2\.depthwise: out_shape 31"),
    (lambda d: d["blocks"][1]["depthwise"].update(groups=1), r"blocks\.1\.depthwise\.params\.weight"),
    (lambda d: d["blocks"][4].update(se={"x": 1}), r"blocks\.4\.se: squeeze-excite is not supported"),
    (lambda d: d["blocks"][4]["residual"]["params"].update(x_zero=0), r"blocks\.4\.residual: input quantization"),
    (lambda d: d["classifier"]["params"]["weight"].update(array="nope"), r"classifier\.params\.weight: array 'nope' is not in"),
    (lambda d: d.update(feature_mix={}), r"feature_mix: a feature_mix conv is not supported"),
])
def test_malformed_model_files_name_the_entry(copy_dir, edit, message):
    _edit(copy_dir / "mbv2-w0.35.json", edit)
    with pytest.raises(MalformedModelError, match=message):
        load_mcu_model("mbv2-w0.35", copy_dir)


def test_malformed_arrays(copy_dir):
    z = dict(np.load(copy_dir / "mbv2-w0.35.npz"))
    z["blocks.0.depthwise.bias"] = z["blocks.0.depthwise.bias"].astype(np.int64)
    np.savez(copy_dir / "mbv2-w0.35.npz", **z)
    with pytest.raises(MalformedModelError, match=r"blocks\.0\.depthwise\.params\.bias: .* dtype int64, expected int32"):
        load_mcu_model("mbv2-w0.35", copy_dir)
    (copy_dir / "mbv2-w0.35.npz").unlink()
    with pytest.raises(MalformedModelError, match="mbv2-w0.35.npz is missing"):
        load_mcu_model("mbv2-w0.35", copy_dir)
    (copy_dir / "mbv2-w0.35.json").write_text("{not json")
    with pytest.raises(MalformedModelError, match="not valid JSON"):
        load_mcu_model("mbv2-w0.35", copy_dir)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.update(manual_weight_idx=[36, 39, 40, 41, 42, 45, 48, 51]), r"manual_weight_idx: 51 is not a conv index in \[0, 51\)"),
    (lambda s: s.update(weight_update_ratio=[1.5] * 8), r"weight_update_ratio: 1.5 is not in \[0, 1\]"),
    (lambda s: s.update(manual_weight_idx=[36]), "equal length"),
    (lambda s: s.update(n_bias_update=52), r"n_bias_update: 52 is outside \[0, 51\]"),
])
def test_malformed_schemes(copy_dir, edit, message):
    _edit(copy_dir / "sparse_schemes.json", lambda d: edit(d["mbv2-w0.35"]["49kb"]))
    with pytest.raises(MalformedModelError, match=message):
        load_sparse_scheme("mbv2-w0.35", "49kb", copy_dir)
