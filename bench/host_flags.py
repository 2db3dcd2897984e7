"""A/B of extra iree-compile flags on the host training step, every case of bench/host_step.py.

For each case: the program is compiled as the benchmark compiles it (`tinytrain.compile` of
`build/peers/<case>/model.pt`, rebuilt here if missing) and saved (`build/host_flags/<case>/base`);
its linalg stage is then compiled again by `iree-compile` with the host flags
(`iree_host.HOST_FLAGS`) plus each variant's extra flags (the base variant included, so every
variant's compile time and peak RSS come from the same command, `/usr/bin/time`). The variants'
steps are timed by IREE's C tool (`iree-benchmark-module`, local-sync, caching allocator, no
Python) in interleaved rounds, rotating the order each round, so they share the machine's load.

Writes `bench/results/host_flags.json` and `.md`: per case and variant the median step [min-max of
the round medians], the speed-up over the base per round (base / variant, min-max), compile s, MB.

    .venv/bin/python bench/host_flags.py [--cases mbv2_w035_176_b1_last ...] [--rounds 6] \
        [--variant 'ukernels=--iree-llvmcpu-enable-ukernels=all' ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "bench" / "peers"))
from common import load_case_trained  # noqa: E402
from host_profile import run_bench  # noqa: E402
from host_step import CASES  # noqa: E402
from peer_step import write_case  # noqa: E402

import tinytrain  # noqa: E402
from tinytrain.lowering.host.iree_host import HOST_FLAGS, iree_tool, verify_flag  # noqa: E402

VARIANTS = {
    "base": [],
    "ukernels": ["--iree-llvmcpu-enable-ukernels=all"],
    "data-tiling+ukernels": ["--iree-opt-data-tiling", "--iree-llvmcpu-enable-ukernels=all"],
}


def load_case(cid: str) -> tuple[dict, torch.nn.Module, object]:
    """The benchmark's case `cid` (`build/peers/<case>/`, written if missing): its arrays, model
    and `trainable` argument."""
    case = ROOT / "build" / "peers" / cid / "case.npz"
    if not case.exists():
        case, _ = write_case(cid, 0.01)
    c = load_case_trained(case)
    model = torch.load(case.parent / "model.pt", weights_only=False).eval()
    trainable = "all" if len(c["trained"]) == len(c["names"]) else list(c["trained"])
    return c, model, trainable


def save_program(prog, c: dict, dst: Path) -> Path:
    """`prog` saved in `dst` with the case's input, labels and `bench.flags` (the saved step
    without its --output lines)."""
    if dst.exists():
        shutil.rmtree(dst)
    d = prog.save(dst)
    np.save(d / "input.npy", np.ascontiguousarray(c["x"].transpose(0, 2, 3, 1)))
    np.save(d / "labels.npy", c["y"].astype(np.int32))
    (d / "bench.flags").write_text("".join(ln + "\n" for ln in (d / "train_step.flags").read_text().splitlines()
                                           if not ln.startswith("--output")))
    return d


def save_case(cid: str, out: Path) -> tuple[Path, str]:
    """The case's program saved under `out/base` (with input, labels, `bench.flags`); its linalg."""
    c, model, trainable = load_case(cid)
    prog = tinytrain.compile(model, torch.from_numpy(c["x"]), trainable=trainable, lr=c["lr"])
    if out.exists():
        shutil.rmtree(out)
    return save_program(prog, c, out / "base"), prog.stages["linalg"]


def compile_variant(linalg: Path, dst: Path, extra: list[str]) -> dict:
    """iree-compile with the host flags + `extra` into `dst`; wall s and peak RSS MB (/usr/bin/time)."""
    cmd = ["/usr/bin/time", "-f", "%e %M", iree_tool("iree-compile"), str(linalg), *HOST_FLAGS, verify_flag(),
           *extra, "-o", str(dst)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        first = next((ln for ln in p.stderr.splitlines() if "error:" in ln), "")
        return {"error": first[:500], "stderr_tail": p.stderr[-1500:]}
    wall, kb = p.stderr.strip().splitlines()[-1].split()
    return {"compile_s": float(wall), "compile_peak_mb": int(kb) / 1024}


def ab_case(cid: str, variants: dict, rounds: int, steps: int) -> dict:
    out = ROOT / "build" / "host_flags" / cid
    base, text = save_case(cid, out)
    linalg = out / "model.linalg.mlir"
    linalg.write_text(text)
    dirs, info = {}, {}
    for name, extra in variants.items():
        d = out / name.replace("+", "_")
        if d != base:
            shutil.copytree(base, d)
        info[name] = {"flags": extra, **compile_variant(linalg, d / "model.vmfb", extra)}
        if "error" not in info[name]:
            dirs[name] = d
    for n, stats in interleaved(dirs, rounds, steps, "base").items():
        info[n].update(stats)
    return info


def interleaved(dirs: dict, rounds: int, steps: int, base: str) -> dict:
    """Step times of the saved programs `dirs` (name -> folder with `bench.flags`), timed by
    `iree-benchmark-module` (caching allocator) in `rounds` rounds of `steps` steps each after a
    warm-up round, the order rotated every round; per name the median of the round medians, the
    rounds, and the speed-up over `base` (its median / this one's, and the min-max of the per-round
    ratios)."""
    names = list(dirs)
    times = {n: [] for n in names}
    for r in range(rounds + 1):  # round 0: warm-up, not counted
        for n in names[r % len(names):] + names[:r % len(names)]:
            b = run_bench(dirs[n] / "bench.flags", dirs[n], steps, ["--device_allocator=caching"])
            if r:
                times[n].append(b["real_ms"])
    out = {}
    for n in names:
        t = times[n]
        ratio = [b / v for b, v in zip(times[base], t)]
        out[n] = {"median_ms": statistics.median(t), "round_ms": t,
                  "speedup_median": statistics.median(times[base]) / statistics.median(t),
                  "speedup_round_min": min(ratio), "speedup_round_max": max(ratio)}
    return out


def run_cases(script: str, argv, cases, ab) -> tuple[dict, dict]:
    """`ab(case)` for every case (printed as it finishes); the results, and the run's command, date
    and load average before / after."""
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    res = {}
    for cid in cases:
        res[cid] = ab(cid)
        print(cid, json.dumps({n: {k: v for k, v in i.items() if k != "round_ms"} for n, i in res[cid].items()}),
              flush=True)
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    cmd = script + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    return res, {"command": f".venv/bin/python {cmd}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "load_before": load0, "load_after": load1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=list(CASES))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20, help="steps per round per variant")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAG[,FLAG]",
                    help="replace the default variants (base is always run)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    variants = dict(VARIANTS) if not args.variant else {"base": []} | {
        v.split("=", 1)[0]: v.split("=", 1)[1].split(",") for v in args.variant}
    res, meta = run_cases("bench/host_flags.py", argv, args.cases, lambda cid: ab_case(cid, variants, args.rounds,
                                                                                     args.steps))
    load0, load1 = meta["load_before"], meta["load_after"]
    meta.update({"rounds": args.rounds, "steps": args.steps, "variants": variants})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "host_flags.json").write_text(json.dumps({"meta": meta, "cases": res}, indent=2) + "\n")
    md = ["# Host compile flags, A/B on the training step", "",
          f"Produced by `{meta['command']}` ({meta['date']}); load average before {load0}, after {load1}. "
          f"`iree-benchmark-module` (local-sync, caching allocator) on each variant's `.vmfb`, {args.steps} "
          f"steps per round, {args.rounds} interleaved rounds (rotating order) after a warm-up round. Step: "
          "median of the round medians [min-max]; speed-up: base / variant [min-max of the per-round ratios]; "
          "compile: `iree-compile` wall s / peak RSS MB of the linalg stage (`/usr/bin/time`).", "",
          "Variants: " + "; ".join(f"`{n}`: {' '.join(f) or 'the host flags as they are'}" for n, f in variants.items()),
          "", "| case | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for cid, info in res.items():
        cells = []
        for n in variants:
            i = info[n]
            if "error" in i:
                cells.append("compile failed: " + (i["error"].split("error:", 1)[-1].strip()[:120] or "see the json"))
                continue
            cell = f"{i['median_ms']:.2f} ms [{min(i['round_ms']):.2f}-{max(i['round_ms']):.2f}]"
            if n != "base":
                cell += f", {i['speedup_median']:.2f}x [{i['speedup_round_min']:.2f}-{i['speedup_round_max']:.2f}]"
            cells.append(cell + f"; {i['compile_s']:.0f} s / {i['compile_peak_mb']:.0f} MB")
        md.append(f"| {cid} | " + " | ".join(cells) + " |")
    (args.out / "host_flags.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
