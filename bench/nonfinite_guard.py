"""Cost of the host API's non-finite state guard (issue 11), on MobileNetV2-w0.35.

After a step with a finite loss, `CompiledModel.train_step` copies the updated parameters
(zero-copy views of their IREE buffers) into one contiguous array with one `np.concatenate`
and checks it with one BLAS dot product (finite iff every value is); the copy of the previous
accepted step is the rollback point (two buffers, swapped). This script times the whole step
and the guard alone on the same buffers, and writes `bench/results/nonfinite_guard.json`/`.md`.

    .venv/bin/python bench/nonfinite_guard.py [--size 64] [--trainable all] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import tinytrain
from tinytrain.models import mobilenet_v2

RESULTS = Path(__file__).resolve().parent / "results"


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--trainable", default="all", choices=["all", "last"])
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = mobilenet_v2(0.35).eval()
    trainable = "all" if args.trainable == "all" else ["classifier.weight", "classifier.bias"]
    prog = tinytrain.compile(model, torch.randn(1, 3, args.size, args.size), trainable=trainable,
                             lr=0.001)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    for _ in range(3):  # warm-up; the first step binds the parameters in place
        prog.train_step(x, [1])
    step = _median_ms(lambda: prog.train_step(x, [1]), args.steps)
    n = len(prog.trainable)
    f = prog._staged["train_step"][0]
    g = prog._state_guard(f.views[:n])
    assert g["bound"] == f.views[:n] or all(a is b for a, b in zip(g["bound"], f.views[:n]))
    views, spare = g["views"], g["spare"]

    def guard():
        np.concatenate(views, out=spare)
        return np.dot(spare, spare)

    guard_ms = _median_ms(guard, 10 * args.steps)
    nbytes = sum(v.nbytes for v in views)
    out = {"model": f"mobilenet_v2 w0.35 {args.size}x{args.size} b1 trainable={args.trainable}",
           "tensors": n, "state_bytes": nbytes, "step_ms_with_guard": round(step, 3),
           "guard_ms": round(guard_ms, 4),
           "guard_percent_of_step": round(100 * guard_ms / (step - guard_ms), 2),
           "machine": platform.processor() or platform.machine(), "steps_timed": args.steps}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nonfinite_guard.json").write_text(json.dumps(out, indent=2) + "\n")
    md = ["# Host non-finite state guard: cost per step", "",
          "| " + " | ".join(out) + " |", "|" + " --- |" * len(out),
          "| " + " | ".join(str(v) for v in out.values()) + " |", ""]
    (RESULTS / "nonfinite_guard.md").write_text("\n".join(md))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
