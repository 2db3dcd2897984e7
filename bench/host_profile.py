"""Where tinytrain's host training step spends its time: one case of bench/host_step.py, profiled.

Compiles the case's model exactly as the benchmark does (`build/peers/<case>/model.pt` and
`case.npz`, written by bench/host_step.py; rebuilt here if missing), saves the program
(`CompiledModel.save`: vmfb + parameters + `train_step.flags`) under `build/profile/<case>/`, then
runs IREE's own C benchmark tool on it (no Python in the loop), one thread (`local-sync`):

1. `iree-benchmark-module` for a fixed number of steps with the default heap allocator and with
   `--device_allocator=caching` (what `HostModule` uses): step time, and minor page faults per
   step (getrusage of the child process);
2. with `--device_profiling_mode=host-execution`: per-dispatch host execution time
   (`iree-profile dispatch --format=jsonl`), aggregated by dispatch name and by kind (matmul-like,
   convolution, generic = the hand-lowered gradient kernels, reduction, elementwise, ...).

Writes `bench/results/host_profile_<case>.json` and `.md`.

    .venv/bin/python bench/host_profile.py mbv2_w035_128_b8_all [--steps 20]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import resource
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
from peer_step import write_case  # noqa: E402

import tinytrain  # noqa: E402
from tinytrain.lowering.host.iree_host import iree_tool  # noqa: E402

KINDS = [("matmul_like", "matmul-like (1x1 conv, linear)"), ("matmul", "matmul-like (1x1 conv, linear)"),
         ("matvec", "matvec (bias gradient ones @ dY)"),
         ("reduction", "reduction"), ("elementwise", "elementwise"), ("transpose", "transpose"),
         ("generic", "other linalg.generic"), ("pack", "pack/unpack"), ("memcpy", "copy"), ("fill", "fill")]


def kind(name: str) -> str:
    """Kind of a dispatch from IREE's name. `conv_KHxKWx...` (kernel dims first, equal, at most 7)
    are the depthwise / direct conv weight gradients that tinytrain lowers as `linalg.generic`
    contractions into the kernel (with `convgrad=im2col`: one per stride phase, 2x2 taps for a
    3x3 stride-2 kernel); `conv_Nx...` (batch first) are forward / input-gradient convolutions
    (named linalg convs). The dense im2col weight gradients are matmul-like dispatches."""
    n = name.lower()
    m = re.search(r"_conv_(\d+)x(\d+)x", n)
    if m:
        kh, kw = int(m.group(1)), int(m.group(2))
        if kh == kw and 2 <= kh <= 7:
            return "conv weight gradient (linalg.generic)"
        return "conv forward / input gradient"
    for key, label in KINDS:
        if key in n:
            return label
    return "other"


def gflops(name: str, ms_per_step: float, calls_per_step: float) -> float | None:
    """GFLOP/s of a contraction dispatch from IREE's name: its loops are the trailing
    `<d0>x<d1>x...` (the iteration space of the linalg op, batch and reduction dims included), so
    one call does 2 x their product FLOPs (a multiply-add each). None for copies, fills and
    elementwise / reduction dispatches (their dims are not multiply-adds)."""
    m = re.search(r"_(matmul_like|matmul|conv|matvec)_((?:\d+x)+\d+)", name.lower())
    if m is None or ms_per_step <= 0:
        return None
    macs = 1
    for d in m.group(2).split("x"):
        macs *= int(d)
    return 2 * macs * calls_per_step / (ms_per_step * 1e-3) / 1e9


def run_bench(flags: Path, cwd: Path, steps: int, extra: list[str]) -> dict:
    cmd = [iree_tool("iree-benchmark-module"), f"--flagfile={flags.name}", f"--benchmark_min_time={steps}x",
           "--benchmark_format=json", *extra]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    js = json.loads(p.stdout[p.stdout.index("{"):])
    b = js["benchmarks"][0]
    iters = int(b["iterations"])
    unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    # faults of the whole process (module load + the warm-up call included), per timed step
    return {"real_ms": b["real_time"] * unit, "cpu_ms": b["cpu_time"] * unit, "iterations": iters,
            "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / iters,
            "sys_share_of_cpu": (r1.ru_stime - r0.ru_stime) / max((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), 1e-9),
            "process_wall_s": wall, "command": " ".join(cmd[1:])}


def dispatch_profile(flags: Path, cwd: Path, steps: int) -> dict:
    prof = cwd / "host-execution.ireeprof"
    run_bench(flags, cwd, steps, ["--device_allocator=caching", "--device_profiling_mode=host-execution",
                                  f"--device_profiling_output={prof.name}"])
    p = subprocess.run([iree_tool("iree-profile"), "dispatch", "--format=jsonl", str(prof)],
                       capture_output=True, text=True, check=True)
    recs = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    by_name: dict = collections.defaultdict(lambda: {"ns": 0.0, "count": 0})
    sample_keys = None
    for r in recs:
        name = r.get("name") or r.get("function") or r.get("export") or r.get("key")
        ns = None
        for k in ("total_ns", "duration_ns", "total_duration_ns", "sum_ns"):
            if k in r:
                ns = float(r[k])
                break
        if name is None or ns is None:
            sample_keys = sample_keys or sorted(r)
            continue
        by_name[name]["ns"] += ns
        by_name[name]["count"] += int(r.get("count", r.get("dispatch_count", 1)))
    if not by_name:
        raise RuntimeError(f"iree-profile dispatch: unrecognised records (keys {sample_keys}); first: {recs[:2]}")
    total = sum(v["ns"] for v in by_name.values())
    kinds: dict = collections.defaultdict(float)
    for n, v in by_name.items():
        kinds[kind(n)] += v["ns"]
    top = sorted(by_name.items(), key=lambda kv: -kv[1]["ns"])[:20]
    return {"kernel_ms_per_step": total / 1e6 / steps, "dispatches": len(by_name),
            "by_kind": {k: {"ms_per_step": v / 1e6 / steps, "share": v / total} for k, v in
                        sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top": [{"name": n, "ms_per_step": v["ns"] / 1e6 / steps, "share": v["ns"] / total,
                     "calls_per_step": v["count"] / steps,
                     "gflops": gflops(n, v["ns"] / 1e6 / steps, v["count"] / steps)} for n, v in top]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--reuse", action="store_true", help="reuse build/profile/<case>/ if it was saved before")
    args = ap.parse_args(argv)
    case = ROOT / "build" / "peers" / args.case / "case.npz"
    if not case.exists():
        case, _ = write_case(args.case, 0.01)
    c = load_case_trained(case)
    model = torch.load(case.parent / "model.pt", weights_only=False).eval()
    x, y = torch.from_numpy(c["x"]), torch.from_numpy(c["y"])
    trainable = "all" if len(c["trained"]) == len(c["names"]) else list(c["trained"])
    d = ROOT / "build" / "profile" / args.case
    if not (args.reuse and (d / "train_step.flags").exists()):
        prog = tinytrain.compile(model, x, trainable=trainable, lr=c["lr"])
        d = prog.save(d)
    np.save(d / "input.npy", np.ascontiguousarray(c["x"].transpose(0, 2, 3, 1)))
    np.save(d / "labels.npy", c["y"].astype(np.int32))
    flags = d / "bench.flags"  # the saved step without its --output lines (nothing written per step)
    flags.write_text("".join(ln + "\n" for ln in (d / "train_step.flags").read_text().splitlines()
                             if not ln.startswith("--output")))
    res = {"case": args.case, "steps": args.steps,
           "heap_allocator": run_bench(flags, d, args.steps, []),
           "caching_allocator": run_bench(flags, d, args.steps, ["--device_allocator=caching"]),
           "dispatch_profile_caching": dispatch_profile(flags, d, args.steps)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"host_profile_{args.case}.json").write_text(json.dumps(res, indent=2) + "\n")
    h, cch, dp = res["heap_allocator"], res["caching_allocator"], res["dispatch_profile_caching"]
    md = [f"# Profile of tinytrain's host training step: {args.case}", "",
          f"Produced by `.venv/bin/python bench/host_profile.py {args.case} --steps {args.steps}` "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); `iree-benchmark-module` on the saved "
          "program (`build/profile/<case>/`), local-sync, one thread, no Python. The machine is shared "
          "(2 cores); absolute times are loaded, the shares are what matters.", "",
          "| allocator | step ms (real) | step ms (cpu) | minor page faults / step | sys share of CPU |",
          "|---|---|---|---|---|",
          f"| default heap | {h['real_ms']:.2f} | {h['cpu_ms']:.2f} | {h['minor_faults_per_step']:.0f} | {100 * h['sys_share_of_cpu']:.0f}% |",
          f"| caching (`--device_allocator=caching`, what `HostModule` uses) | {cch['real_ms']:.2f} | {cch['cpu_ms']:.2f} | "
          f"{cch['minor_faults_per_step']:.0f} | {100 * cch['sys_share_of_cpu']:.0f}% |", "",
          f"Dispatch host-execution time with the caching allocator: {dp['kernel_ms_per_step']:.2f} ms per step "
          f"over {dp['dispatches']} distinct dispatches.", "",
          "| kind | ms / step | share |", "|---|---|---|"]
    md += [f"| {k} | {v['ms_per_step']:.2f} | {100 * v['share']:.1f}% |" for k, v in dp["by_kind"].items()]
    md += ["", "GFLOP/s: 2 x the dispatch's loop-space product (its name's trailing dims) per call, over its "
           "measured time (contractions only: the rate each kernel reaches).", "",
           "| top dispatches | ms / step | share | calls / step | GFLOP/s |", "|---|---|---|---|---|"]
    md += [f"| `{t['name']}` | {t['ms_per_step']:.3f} | {100 * t['share']:.1f}% | {t['calls_per_step']:.1f} | "
           f"{'-' if t.get('gflops') is None else format(t['gflops'], '.1f')} |" for t in dp["top"]]
    (args.out / f"host_profile_{args.case}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
