"""Post-training int8 quantization (`compile(quantize="int8")`) of a small residual CNN on
scikit-learn's digits: test accuracy and logits of the fp32 model vs its int8 graph (fp32 and
int8 classifier), and a few epochs of int8 + QAS training on the host.

The model is `tinytrain.models.residual_cnn` trained in PyTorch (`tinytrain.models.fit`, the
recipe of `tests/python/test_ptq.py`: 10 epochs, Adam 0.02, batch 64, seed 0) on 1437 images,
tested on 360; the calibration set is the first `--calibration` training images. Writes
`bench/results/ptq_digits.json` and `.md`.

    .venv/bin/python bench/ptq_digits.py [--calibration 200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import tinytrain
from tinytrain.datasets import digits_8x8
from tinytrain.models import fit, residual_cnn

RESULTS = Path(__file__).resolve().parent / "results"


def _logits(prog, x):
    return np.concatenate([prog.predict(x[i:i + 1]) for i in range(len(x))])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calibration", type=int, default=200, help="number of calibration images")
    args = ap.parse_args(argv)
    xtr, ytr, xte, yte = digits_8x8()
    torch.manual_seed(0)
    model = fit(residual_cnn(), xtr, ytr, epochs=10, lr=0.02, batch=64, seed=0)
    with torch.no_grad():
        ref = model(torch.from_numpy(xte)).numpy()
    rows = {"fp32": {"accuracy": float((ref.argmax(1) == yte).mean())}}
    span = float(ref.max() - ref.min())
    for name, int8_head in (("int8, fp32 classifier", False), ("int8, int8 classifier", True)):
        t0 = time.time()
        prog = tinytrain.compile(model, torch.zeros(1, 1, 8, 8), quantize="int8",
                                 calibration=xtr[:args.calibration], int8_classifier=int8_head,
                                 trainable=["head.conv.weight", "head.conv.bias", "fc.weight", "fc.bias"],
                                 lr=0.05)
        compile_s = time.time() - t0
        got = _logits(prog, xte)
        rows[name] = {"accuracy": float((got.argmax(1) == yte).mean()),
                      "same_argmax_as_fp32": float((got.argmax(1) == ref.argmax(1)).mean()),
                      "max_logit_error_over_range": float(np.abs(got - ref).max() / span),
                      "compile_s": round(compile_s, 1)}
        if not int8_head:
            # int8 + QAS fine-tuning on the host, batch 1: 1 epoch over 300 training images
            for i in range(200, 500):
                prog.train_step(xtr[i:i + 1], [int(ytr[i])])
            rows[name]["accuracy_after_1_epoch_int8_qas_on_300_images"] = float(
                (_logits(prog, xte).argmax(1) == yte).mean())
    out = {"dataset": "scikit-learn digits 8x8 (1437 train / 360 test, seed 0)",
           "model": "tinytrain.models.residual_cnn (width 8)", "calibration_images": args.calibration,
           "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ptq_digits.json").write_text(json.dumps(out, indent=2) + "\n")
    md = ["# Post-training int8 quantization: residual CNN on digits", "",
          f"`.venv/bin/python bench/ptq_digits.py --calibration {args.calibration}`: {out['model']}, "
          f"{out['dataset']}, calibration on the first {args.calibration} training images.", "",
          "| graph | test accuracy | same argmax as fp32 | max logit error / fp32 logit range |",
          "| --- | --- | --- | --- |"]
    for name, r in rows.items():
        md.append(f"| {name} | {r['accuracy']:.3f} | {r.get('same_argmax_as_fp32', 1.0):.3f} | "
                  f"{r.get('max_logit_error_over_range', 0.0):.4f} |")
    tuned = rows["int8, fp32 classifier"]["accuracy_after_1_epoch_int8_qas_on_300_images"]
    md += ["", f"int8 + QAS training (fp32 classifier; head conv int8 weights / int32 bias and fc trained, "
               f"lr 0.05, batch 1, one pass over 300 training images): test accuracy {tuned:.3f}.", ""]
    (RESULTS / "ptq_digits.md").write_text("\n".join(md))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
