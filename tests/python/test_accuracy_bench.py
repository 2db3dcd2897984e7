"""Plumbing of `bench/accuracy_qas.py` (the fp32 / int8 / int8+QAS transfer-accuracy table) on a
few real images: a 2-block backbone at 16x16, one learning rate, 1 epoch, 2 image orders. It
checks what the full run relies on: the JSON keys and averages, the learning-rate choice on the
validation split, the test accuracy averaged over the image orders (which differ), QAS switched on
for `int8_qas` only (its int8 weights move, those of `int8_noqas` do not), the split sizes, and the
generated write-up."""

import json

import pytest
from conftest import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("accuracy_qas")


def test_tiny_run_writes_the_table(bench, tmp_path):
    argv = ["--tiny", "--tasks", "digits", "--resolution", "16", "--blocks", "2",
            "--last-blocks", "1", "--n-train", "20", "--n-val", "10", "--n-test", "1000", "--epochs", "1",
            "--lrs", "0.3", "--rounded", "--out", str(tmp_path)]
    bench.main(argv)
    out = json.loads((tmp_path / "accuracy_qas.json").read_text())
    s = out["settings"]
    # digits has 360 test images: the request of 1000 falls back to the whole split, recorded
    assert s["sizes"]["digits"] == {"train": 20, "val": 10, "test": 360}
    assert s["update_set"] == ["blocks.1.pointwise1.weight", "blocks.1.pointwise1.bias", "blocks.1.depthwise.bias",
                               "blocks.1.pointwise2.bias", "fc.weight", "fc.bias"]
    assert list(out["per_task"]) == [*bench.METHODS, bench.ROUNDED]
    assert s["orders"] == 2  # --tiny's default
    for m in out["per_task"]:
        tests = [out["per_task"][m][t]["test"] for t in s["tasks"]]
        assert out[m] == pytest.approx(sum(tests) / len(tests))
        for t in s["tasks"]:
            r = out["per_task"][m][t]
            assert r["lr"] == 0.3 and r["val_by_lr"] == {"0.3": r["val"]}
            assert len(r["test_by_order"]) == 2 and r["test"] == pytest.approx(sum(r["test_by_order"]) / 2)
            assert 0.0 <= r["test"] <= 1.0
    # the second order is a different run (one epoch of 20 images in another order), not a copy of the first
    assert any(len(set(out["per_task"][m]["digits"]["test_by_order"])) == 2 for m in out["per_task"])
    moved = {m: out["per_task"][m]["digits"]["moved"]["weight"] for m in bench.METHODS}
    assert moved["int8_noqas"] == 0.0, "int8 weights moved without QAS: is QAS applied to int8_noqas?"
    assert moved["int8_qas"] > 0.05 and moved["fp32"] > 0.05, moved
    md = (tmp_path / "accuracy_qas.md").read_text()
    assert "int8 + QAS, int8 write-back" in md and "with rounding instead of keeping fp32 master copies" in md
    assert "| digits |" in md and "| **average** |" in md and "--tiny" in md
    assert "Tiny-scale run" in md
    assert "the mean over 2 image orders +- the standard deviation over them" in md
    assert "What one image order alone would have said" in md and "paired by order" in md
    # the .md and the README block are re-generated from the JSON alone
    bench.main(["--from-json", str(tmp_path / "accuracy_qas.json"), "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / "accuracy_qas.md").read_text() == md
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{bench.README_BEGIN}\nold\n{bench.README_END}\n\n## next\n")
    bench.update_readme(out, readme, others=(out,))
    text = readme.read_text()
    assert "old" not in text and "| **average** |" in text and text.endswith(f"{bench.README_END}\n\n## next\n")
    assert f"| `{out['settings']['backbone']}` | {100 * out['fp32']:.1f} |" in text



def test_orders_below_one_is_a_usage_error(bench, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--tiny", "--orders", "0"])
    assert e.value.code == 2 and "--orders must be at least 1" in capsys.readouterr().err


def test_a_missing_run_json_is_a_usage_error(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--from-json", str(tmp_path / "nope.json"), "--out", str(tmp_path)])
    assert e.value.code == 2 and "cannot read a run's JSON at" in capsys.readouterr().err


def test_a_single_order_run_falls_back_to_the_test_split_error(bench):
    """A JSON of a one-order run (or of the runs before --orders, without `test_by_order`): the
    +- is the binomial error of the test split, the write-up says so."""
    per = {m: {"digits": {"test": a, "lr": 0.1, "val": a, "val_by_lr": {"0.1": a},
                          "moved": {"weight": 0.5, "bias": 0.5}}}
           for m, a in (("fp32", 0.9), ("int8_noqas", 0.6), ("int8_qas", 0.88))}
    out = {m: per[m]["digits"]["test"] for m in per} | {"per_task": per, "settings": {
        "tasks": ["digits"], "sizes": {"digits": {"train": 10, "val": 10, "test": 400}}, "lrs": [0.1]}}
    gap, se = bench.difference(out, "int8_qas", "fp32")
    assert gap == pytest.approx(-2.0) and se == pytest.approx(100 * (0.9 * 0.1 / 400 + 0.88 * 0.12 / 400) ** 0.5)
    assert "one binomial standard error" in bench.spread_note(out)
    assert "| digits | 90.0 +- 1.5 (lr 0.1) |" in "\n".join(bench.table(out))
    text = "\n".join(bench.comparison(out))
    assert "below fp32 by more than the paper's 0.5 point" in text and "NOT resolved from zero" in text
    assert "does NOT reproduce the paper's ordering" in text
    # int8 + QAS above fp32 by more than 0.5 point loses nothing: the paper's point holds
    out["int8_qas"] = per["int8_qas"]["digits"]["test"] = 0.92
    text = "\n".join(bench.comparison(out))
    assert "above fp32 by more than 0.5 point" in text and "agrees with the paper's Table 1 on both points" in text
