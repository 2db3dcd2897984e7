"""Plumbing of `bench/accuracy_qas.py` (the fp32 / int8 / int8+QAS transfer-accuracy table) on a
few real images: a 2-block backbone at 16x16, one learning rate, 1 epoch. It checks what the
full run relies on: the JSON keys and averages, the learning-rate choice on the validation split,
QAS switched on for `int8_qas` only (its int8 weights move, those of `int8_noqas` do not), the
split sizes, and the generated write-up."""

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
    for m in out["per_task"]:
        tests = [out["per_task"][m][t]["test"] for t in s["tasks"]]
        assert out[m] == pytest.approx(sum(tests) / len(tests))
        for t in s["tasks"]:
            r = out["per_task"][m][t]
            assert r["lr"] == 0.3 and r["val_by_lr"] == {"0.3": r["val"]}
            assert 0.0 <= r["test"] <= 1.0
    moved = {m: out["per_task"][m]["digits"]["moved"]["weight"] for m in bench.METHODS}
    assert moved["int8_noqas"] == 0.0, "int8 weights moved without QAS: is QAS applied to int8_noqas?"
    assert moved["int8_qas"] > 0.05 and moved["fp32"] > 0.05, moved
    md = (tmp_path / "accuracy_qas.md").read_text()
    assert "int8 + QAS, int8 write-back" in md and "with rounding instead of keeping fp32 master copies" in md
    assert "| digits |" in md and "| **average** |" in md and "--tiny" in md
    assert "Tiny-scale run" in md
    # the .md and the README block are re-generated from the JSON alone
    bench.main(["--from-json", str(tmp_path / "accuracy_qas.json"), "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / "accuracy_qas.md").read_text() == md
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{bench.README_BEGIN}\nold\n{bench.README_END}\n\n## next\n")
    bench.update_readme(out, readme, others=(out,))
    text = readme.read_text()
    assert "old" not in text and "| **average** |" in text and text.endswith(f"{bench.README_END}\n\n## next\n")
    assert f"| `{out['settings']['backbone']}` | {100 * out['fp32']:.1f} |" in text

