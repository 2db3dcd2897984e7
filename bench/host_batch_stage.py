"""A/B of the `batch-stage` pass on the host training step (`python/tinytrain/transforms/batch_stage.py`).

For each case of bench/host_step.py (default: the `last` cases, where the frozen first stage is
inference only): the program is compiled as the benchmark compiles it (`tinytrain.compile` of
`build/peers/<case>/model.pt`) once per variant of the host's `batch-stage` pass
(`compiler.BATCH_STAGE_BY_TARGET["host"]`: off, and chunks of 1 / 2 images by default) and saved
(`build/host_batch_stage/<case>/<variant>`). The variants' steps are timed by IREE's C tool
(`iree-benchmark-module`, local-sync, caching allocator, no Python) in interleaved rounds, rotating
the order each round, so they share the machine's load. Numerics: each variant's first step (loss and
updated parameters) through Python against the `off` program's, max relative difference.

Writes `bench/results/host_batch_stage.json` and `.md`: per case and variant the median step [min-max
of the round medians], the speed-up over `off` per round (off / variant, min-max), the stage that
was split (cut layer and shape), compile s.

    .venv/bin/python bench/host_batch_stage.py [--cases mbv2_w035_176_b8_last ...] [--rounds 8] \
        [--variant off=0,4 --variant chunk2=2,4 ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from host_flags import interleaved, load_case, run_cases, save_program  # noqa: E402
from host_step import CASES  # noqa: E402

import tinytrain  # noqa: E402
import tinytrain.compiler as compiler  # noqa: E402
from tinytrain.transforms.batch_stage import BatchStagePass  # noqa: E402

#: name -> (chunk, factor); chunk 0: the pass off
VARIANTS = {"off": (0, 4), "chunk1": (1, 4), "chunk2": (2, 4)}
LAST_CASES = [c for c in CASES if c.endswith("_last")]


def first_step(prog, c: dict) -> tuple[float, dict]:
    loss = float(prog.train_step(torch.from_numpy(c["x"]), torch.from_numpy(c["y"])))
    return loss, {k: v.numpy().copy() for k, v in prog.state_dict().items()}


def rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-30))


def ab_case(cid: str, variants: dict, rounds: int, steps: int) -> dict:
    c, model, trainable = load_case(cid)
    out = ROOT / "build" / "host_batch_stage" / cid
    dirs, info, ref = {}, {}, None
    default = compiler.BATCH_STAGE_BY_TARGET["host"]
    try:
        for name, (chunk, factor) in variants.items():
            compiler.BATCH_STAGE_BY_TARGET["host"] = BatchStagePass(chunk=chunk, factor=factor) if chunk else None
            t = time.perf_counter()
            prog = tinytrain.compile(model, torch.from_numpy(c["x"]), trainable=trainable, lr=c["lr"])
            compile_s = time.perf_counter() - t
            m = re.search(r"func\.func @train_step\(.*?tinytrain\.batch_stage = \{([^}]*)\}", prog.stages["linalg"])
            split = m.group(1) if m else ""
            cut = re.search(r'cut = "([^"]*)"', split)
            shape = re.search(r"cut_shape = array<i64: ([^>]*)>", split)
            dirs[name] = save_program(prog, c, out / name)
            loss, params = first_step(prog, c)
            ref = ref or (loss, params)
            info[name] = {"chunk": chunk, "factor": factor, "compile_s": compile_s,
                          "cut": cut.group(1) if cut else None,
                          "cut_shape": [int(v) for v in shape.group(1).split(",")] if shape else None,
                          "first_loss": loss, "loss_rel_diff": abs(loss - ref[0]) / abs(ref[0]),
                          "params_rel_diff": max(rel(params[k], ref[1][k]) for k in params)}
            del prog
    finally:
        compiler.BATCH_STAGE_BY_TARGET["host"] = default
    for n, stats in interleaved(dirs, rounds, steps, next(iter(variants))).items():
        info[n].update(stats)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=LAST_CASES)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20, help="steps per round per variant")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=CHUNK,FACTOR",
                    help="replace the default variants (the first is the baseline)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the .json in --out")
    args = ap.parse_args(argv)
    if args.render:
        render(args.out)
        return 0
    variants = dict(VARIANTS) if not args.variant else {
        v.split("=", 1)[0]: tuple(int(x) for x in v.split("=", 1)[1].split(",")) for v in args.variant}
    res, meta = run_cases("bench/host_batch_stage.py", argv, args.cases,
                          lambda cid: ab_case(cid, variants, args.rounds, args.steps))
    default = compiler.BATCH_STAGE_BY_TARGET["host"]
    meta.update({"rounds": args.rounds, "steps": args.steps, "variants": variants,
                 "host_default": default.options_text() if default else None})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "host_batch_stage.json").write_text(json.dumps({"meta": meta, "cases": res}, indent=2) + "\n")
    render(args.out)
    return 0


def render(out: Path) -> None:
    """`host_batch_stage.md` from `host_batch_stage.json` in `out`."""
    data = json.loads((out / "host_batch_stage.json").read_text())
    meta, res = data["meta"], data["cases"]
    variants, load0, load1 = meta["variants"], meta["load_before"], meta["load_after"]
    base = next(iter(variants))
    md = ["# Host training step: the frozen first stage batched vs chunk by chunk (`batch-stage`)", "",
          f"Produced by `{meta['command']}` ({meta['date']}); load average before {load0}, after {load1} "
          "(2 cores, shared). `iree-benchmark-module` (local-sync, caching allocator, no Python) on each "
          f"variant's `.vmfb`, {meta['steps']} steps per round, {meta['rounds']} interleaved rounds (rotating order) "
          "after a warm-up round. Step: median of the round medians [min-max]; speed-up: "
          f"`{base}` / variant [min-max of the per-round ratios]; numerics: the first step through Python, "
          f"loss and updated parameters, max relative difference to `{base}`.", "",
          "Variants (`batch-stage{chunk=C factor=F}` before `to-linalg`; chunk 0: not run): " +
          "; ".join(f"`{n}`: chunk {ch}, factor {f}" for n, (ch, f) in variants.items()) +
          f". The host's default: `{meta['host_default']}`.", "",
          "| case | " + " | ".join(variants) + " | stage split (cut, shape) | numerics vs " + base + " |",
          "|---|" + "---|" * (len(variants) + 2)]
    for cid, info in res.items():
        cells = []
        for n in variants:
            i = info[n]
            cell = f"{i['median_ms']:.2f} ms [{min(i['round_ms']):.2f}-{max(i['round_ms']):.2f}]"
            if n != base:
                bold = i["speedup_round_min"] > 1.0
                sp = f"{i['speedup_median']:.2f}x [{i['speedup_round_min']:.2f}-{i['speedup_round_max']:.2f}]"
                cell += ", " + (f"**{sp}**" if bold else sp)
            cells.append(cell)
        cuts = {n: f"{i['cut']}, {'x'.join(map(str, i['cut_shape']))}" for n, i in info.items() if i["cut"]}
        stage = "none (batch 1)" if not cuts else next(iter(cuts.values())) if len(set(cuts.values())) == 1 \
            else "; ".join(f"{n}: {c}" for n, c in cuts.items())
        num = max(max(i["loss_rel_diff"], i["params_rel_diff"]) for i in info.values())
        md.append(f"| {cid} | " + " | ".join(cells) + f" | {stage} | {num:.1e} |")
    md += ["", "**Bold**: faster than the baseline in every round."]
    (out / "host_batch_stage.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
