"""iree-compile time with and without MLIR's per-pass IR verifier (`--verify`), same outputs.

tinytrain runs iree-compile with `--verify=false` (`lowering/iree_tools.py`, `verify_flag`). This
benchmark compiles real programs, captures every iree-compile command that compile makes (input
MLIR + flags; the host `.vmfb` and the Cortex-M static library), then runs each command again
with `--verify=true` and `--verify=false` in interleaved rounds (the order alternating), and
reports the median wall and CPU seconds of each and whether the outputs are byte-identical
(`.vmfb`; the static library's object file and HAL program).

Programs:
- `mbv2_w035_64_fp32_host`: `tinytrain.models.mobilenet_v2(0.35, 10)`, 1x3x64x64, every
  parameter trained, `gradients=True`, the host `.vmfb` (as `tests/python/test_numerics.py`).
- `mbv2_int8_4blocks_32_m4`: the paper's pretrained int8 MobileNetV2-w0.35, first 4 blocks, 32x32,
  a 4-class fp32 head, biases of blocks 1-3 + two weights + the head trained
  (`tinytrain.int8.compile_training`, its default passes), for the Cortex-M4: the static library
  and the host `.vmfb`.

Writes `bench/results/compile_time.json` and `.md`.

    .venv/bin/python bench/compile_time.py [--rounds 3] [--programs NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _capture(build) -> list[dict]:
    """Run `build()` with iree_tools.run_iree_compile recording (input text, flags, what) per call."""
    from tinytrain.lowering import iree_tools
    from tinytrain.lowering.cortexm import iree_static
    from tinytrain.lowering.host import iree_host
    seen, real = [], iree_tools.run_iree_compile

    def recording(src, flags, output, *, what, repro_dir=None, cwd=None):
        proc = real(src, flags, output, what=what, repro_dir=repro_dir, cwd=cwd)
        seen.append({"text": (Path(cwd or ".") / src).read_text(), "flags": list(flags), "output": str(output),
                     "what": what, "src": str(src)})
        return proc

    old = os.environ.get("TINYTRAIN_COMPILE_CACHE")
    os.environ["TINYTRAIN_COMPILE_CACHE"] = "off"  # every compile runs iree-compile
    iree_host.run_iree_compile = iree_static.run_iree_compile = recording
    try:
        build()
    finally:
        iree_host.run_iree_compile = iree_static.run_iree_compile = real
        if old is None:
            os.environ.pop("TINYTRAIN_COMPILE_CACHE")
        else:
            os.environ["TINYTRAIN_COMPILE_CACHE"] = old
    return seen


def mbv2_w035_64_fp32_host():
    import torch
    import tinytrain
    from tinytrain.models import mobilenet_v2
    torch.manual_seed(0)
    prog = tinytrain.compile(mobilenet_v2(width_mult=0.35, num_classes=10).eval(), torch.randn(1, 3, 64, 64),
                             lr=0.05, gradients=True)
    prog.vmfb


#: `mbv2_int8_4blocks_32_m4`'s trained parameters: biases of blocks 1-3, block 2's depthwise and
#: block 3's expansion weight, the head.
INT8_TRAINED = ["blocks.1.pointwise1.bias", "blocks.1.depthwise.bias", "blocks.1.pointwise2.bias",
                "blocks.2.pointwise1.bias", "blocks.2.depthwise.weight", "blocks.2.depthwise.bias",
                "blocks.2.pointwise2.bias", "blocks.3.pointwise1.weight", "blocks.3.pointwise1.bias",
                "blocks.3.depthwise.bias", "blocks.3.pointwise2.bias", "fc.weight", "fc.bias"]


def mbv2_int8_4blocks_32_m4():
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate
    g = build_forward(truncate(load_mcu_model("mbv2-w0.35"), 4), classifier="fp32", num_classes=4, input_hw=32,
                      seed=0)
    with tempfile.TemporaryDirectory(prefix="tinytrain-bench-") as tmp:
        prog = compile_training(g, INT8_TRAINED, lr=0.05, target="cortex-m4", sram_kb=256, build_dir=Path(tmp) / "fw")
        prog.host.ensure_compiled()


PROGRAMS = {"mbv2_w035_64_fp32_host": mbv2_w035_64_fp32_host, "mbv2_int8_4blocks_32_m4": mbv2_int8_4blocks_32_m4}


def _run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + system of the child) seconds of one command; raises on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".linalg.mlir")}


def bench_command(call: dict, work: Path, rounds: int) -> dict:
    """Run one captured command with the verifier on and off, `rounds` times each, alternating."""
    from tinytrain.lowering.iree_tools import iree_tool
    flags = [f for f in call["flags"] if not f.startswith("--verify")]  # (paths: none, or relative)
    runs = {"verify": [], "no-verify": []}
    outputs = {}
    for r in range(rounds):
        order = ["verify", "no-verify"] if r % 2 == 0 else ["no-verify", "verify"]
        for variant in order:
            d = work / "run"  # one folder for both: an output that names its own path compares equal
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            src = Path(call["src"]).name  # its name is in the dumps' names
            (d / src).write_text(call["text"])
            vflag = "--verify=true" if variant == "verify" else "--verify=false"
            cmd = [iree_tool("iree-compile"), src, *flags, vflag, "-o", Path(call["output"]).name]
            runs[variant].append(_run(cmd, d))
            outputs[variant] = _outputs(d)
    same = outputs["verify"] == outputs["no-verify"]
    med = {v: {"wall_s": statistics.median(w for w, _ in rs), "cpu_s": statistics.median(c for _, c in rs),
               "wall_s_min_max": [min(w for w, _ in rs), max(w for w, _ in rs)]} for v, rs in runs.items()}
    return {"what": call["what"], "dispatch_text_bytes": len(call["text"]), **med,
            "speedup_wall": med["verify"]["wall_s"] / med["no-verify"]["wall_s"],
            "outputs_identical": same, "output_files": sorted(outputs["verify"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--programs", nargs="*", default=list(PROGRAMS), choices=list(PROGRAMS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="tinytrain-compile-time-") as tmp:
        for name in args.programs:
            print(f"[compile_time] {name}: compiling to capture its iree-compile commands", flush=True)
            calls = _capture(PROGRAMS[name])
            results[name] = []
            for i, call in enumerate(calls):
                print(f"[compile_time] {name}: {call['what']}, {args.rounds} rounds x 2 variants", flush=True)
                results[name].append(bench_command(call, Path(tmp) / name / str(i), args.rounds))
    cmd = "python bench/compile_time.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    meta = {"command": cmd.strip(), "date": started, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "rounds": args.rounds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_time.json").write_text(json.dumps({"meta": meta, "programs": results}, indent=1) + "\n")
    lines = ["# iree-compile with and without the per-pass IR verifier", "",
             f"Produced by `.venv/bin/{meta['command']}` ({started}; {meta['machine']}; load average before "
             f"{meta['load_before']}, after {meta['load_after']}). Each iree-compile command a compile makes is "
             f"captured and run again {args.rounds} times with `--verify=true` and with `--verify=false` "
             "(tinytrain's default), alternating; median wall [min-max] and median CPU seconds (user + system, "
             "all threads). Identical: every output file (`.vmfb`; static library object, HAL program, "
             "dumped sources) byte for byte the same.", "",
             "| program | iree-compile builds | verify: wall s | verify: CPU s | no verify: wall s | no verify: CPU s "
             "| speed-up (wall) | outputs identical |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for name, rows in results.items():
        for r in rows:
            v, n = r["verify"], r["no-verify"]
            lines.append(f"| {name} | {r['what']} | {v['wall_s']:.1f} [{v['wall_s_min_max'][0]:.1f}-"
                         f"{v['wall_s_min_max'][1]:.1f}] | {v['cpu_s']:.1f} | {n['wall_s']:.1f} "
                         f"[{n['wall_s_min_max'][0]:.1f}-{n['wall_s_min_max'][1]:.1f}] | {n['cpu_s']:.1f} | "
                         f"{r['speedup_wall']:.2f}x | {'yes' if r['outputs_identical'] else 'NO'} |")
    (args.out / "compile_time.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r["outputs_identical"] for rows in results.values() for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
