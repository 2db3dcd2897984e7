"""Host training-step time: tinytrain (IREE llvm-cpu, local-sync, 1 thread) vs PyTorch eager.

Same model (BN folded), same batch, plain SGD, all parameters trained, one thread each. Reports
the median of `--steps` timed steps after `--warmup` steps. Writes `bench/results/host_step.json`
and `.md`. Not a test: timings on a shared 2-core VM vary by about +-25%.

    .venv/bin/python bench/host_step.py [--steps 30] [--models mbv2_w035_128,ds_cnn_28]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from conftest import fold_bn  # noqa: E402  (the same BN folding the tests use)

import tinytrain  # noqa: E402
from tinytrain.models import ds_cnn, mobilenet_v2  # noqa: E402

MODELS = {
    "mbv2_w035_128": (lambda: mobilenet_v2(0.35, 10), (1, 3, 128, 128)),
    "mbv2_w035_64": (lambda: mobilenet_v2(0.35, 10), (1, 3, 64, 64)),
    "ds_cnn_28": (lambda: ds_cnn(10, 1, 16), (1, 1, 28, 28)),
}


def median_time(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench(name: str, warmup: int, steps: int) -> dict:
    make, shape = MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(*shape)
    y = torch.zeros(shape[0], dtype=torch.long)
    t = time.perf_counter()
    prog = tinytrain.compile(model, x, lr=0.01)
    compile_s = time.perf_counter() - t
    ours = median_time(lambda: prog.train_step(x, y), warmup, steps)

    ref = fold_bn(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.01)

    def torch_step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(ref(x), y).backward()
        opt.step()

    eager = median_time(torch_step, warmup, steps)
    return {"model": name, "input": list(shape), "trainable_tensors": len(prog.trainable),
            "tinytrain_ms": ours * 1e3, "pytorch_eager_ms": eager * 1e3,
            "speedup_vs_eager": eager / ours, "tinytrain_compile_s": compile_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.models.split(","):
        print(f"[bench] {name} ...", flush=True)
        rows.append(bench(name, args.warmup, args.steps))
        print(f"        tinytrain {rows[-1]['tinytrain_ms']:.2f} ms, PyTorch eager "
              f"{rows[-1]['pytorch_eager_ms']:.2f} ms", flush=True)
    meta = {"machine": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": 1, "steps": args.steps, "warmup": args.warmup,
            "iree_device": "local-sync"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "host_step.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    md = ["# Host training step: tinytrain vs PyTorch eager", "",
          f"Median of {args.steps} steps after {args.warmup} warm-up, batch 1, one thread, plain SGD, "
          "all parameters trained. Produced by `bench/host_step.py`.", "",
          "| model | input | tinytrain (ms) | PyTorch eager (ms) | speed-up |", "|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['tinytrain_ms']:.2f} | "
                  f"{r['pytorch_eager_ms']:.2f} | {r['speedup_vs_eager']:.2f}x |")
    (args.out / "host_step.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
