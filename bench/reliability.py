"""Reliability figures (not a test): long fuzzing of the C runtime and a power-cut soak on QEMU.

1. **Fuzzing**: the libFuzzer targets of ``tests/runtime/fuzz/`` (checkpoint parser, step/predict
   inputs, table checks) built with Debian's clang-14 under ASan + UBSan, each run for
   ``--fuzz-seconds``; a crash is any target that stops with a finding.
2. **Soak**: a small SGD model on the emulated Cortex-M4 trains ``--steps`` samples, checkpointing
   every ``--every`` steps into the board NVM (a host file); boots are cut at a random NVM
   operation within its next 3 checkpoints (``--cut-prob``), then the next boot restores and
   resumes. After every cut the
   newest intact checkpoint (read from the NVM file on the host) must equal, byte for byte, the
   host's replay at that step; at the end the device's parameters must equal the host's replay
   of all steps (IREE llvm-cpu ``.vmfb``, bit for bit on the M4).

    .venv/bin/python bench/reliability.py [--fuzz-seconds 60] [--steps 2000] [--seed 0]

Writes ``bench/results/reliability.json`` and ``reliability.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "firmware"))

FUZZ_TARGETS = ("checkpoint", "step", "tables")


def build_fuzzers(out: Path) -> dict:
    clang = shutil.which("clang-14") or shutil.which("clang")
    if clang is None:
        raise SystemExit("clang-14 not found: `make setup` installs clang-14 and libclang-rt-14-dev")
    t = ROOT / "tests" / "runtime"
    common = [t / "fake_model.c", t / "fake_library.c", t / "mem_nvm.c",
              *sorted((ROOT / "runtime" / "src").glob("*.c"))]
    exes = {}
    for name in FUZZ_TARGETS:
        exe = out / f"fuzz_{name}"
        subprocess.run([clang, "-g", "-O1", "-std=c99", "-fsanitize=fuzzer,address,undefined",
                        "-fno-sanitize-recover=all", f"-I{ROOT / 'runtime' / 'include'}", f"-I{t}",
                        str(t / "fuzz" / f"fuzz_{name}.c"), *map(str, common), "-lm", "-o", str(exe)],
                       check=True)
        exes[name] = exe
    return exes


def run_fuzzers(seconds: int, seed: int, work: Path) -> dict:
    exes = build_fuzzers(work)
    out = {}
    for name, exe in exes.items():
        corpus = work / f"corpus_{name}"
        corpus.mkdir(exist_ok=True)
        t0 = time.time()
        proc = subprocess.run([str(exe), f"-seed={seed}", f"-max_total_time={seconds}",
                               "-print_final_stats=1", f"-artifact_prefix={work}/{name}-",
                               str(corpus)], capture_output=True, text=True)
        m = re.search(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
        crashes = len(list(work.glob(f"{name}-*")))
        out[name] = {"execs": int(m.group(1)) if m else 0, "seconds": round(time.time() - t0, 1),
                     "crashes": crashes + (1 if proc.returncode != 0 and crashes == 0 else 0),
                     "corpus": len(list(corpus.iterdir()))}
        print(f"[fuzz] {name}: {out[name]}", flush=True)
    return out


def soak(steps: int, every: int, cut_prob: float, seed: int, work: Path) -> dict:
    import cortexm_programs as programs
    import cortexm_reference as reference

    from tinytrain import checkpoint
    from tinytrain.lowering.cortexm import firmware, iree_static

    rng = np.random.default_rng(seed)
    text = programs.sgd_linear_mlir(16, 4, 0.01)
    params = [rng.standard_normal((16, 4)).astype(np.float32) * 0.3, np.zeros(4, np.float32)]
    xs = rng.standard_normal((steps, 1, 16)).astype(np.float32)
    ys = [int(v) for v in rng.integers(0, 4, steps)]
    module = iree_static.build_static_module(text, work / "m", target="cortex-m4", prefix="soak",
                                             state_init=params)
    fw = firmware.build_firmware(module, work / "fw", board="mps2-an386")
    ref = [p for p, _ in reference.HostModule(reference.compile_vmfb(text)).train(params, xs, ys)]
    layout = checkpoint.StateLayout.from_firmware(fw)
    page = 128
    slot_pages = 1 + -(-layout.state_size // page)
    ops_per_save = 2 * slot_pages
    run = work / "run"
    run.mkdir()
    stats = {"steps": steps, "checkpoint_every": every, "boots": 0, "power_cuts": 0,
             "cuts_survived": 0, "checkpoints_written": 0, "steps_executed": 0,
             "steps_redone": 0, "bytes_lost": 0, "nvm_ops_per_checkpoint": ops_per_save}
    done = 0
    while True:
        saves_left = max(1, (steps - done) // every)
        # A cut somewhere within the next few checkpoints (any erase/program of them), while
        # more than 3 remain; the last boot runs to the end.
        window = ops_per_save * 3
        cut = int(rng.integers(1, window + 1)) if saves_left > 3 and rng.random() < cut_prob else 0
        cfg = firmware.CheckpointConfig(every=every, restore=True, cut_after=cut,
                                        tear=bool(rng.integers(0, 2)), page_size=page,
                                        page_count=2 * slot_pages)
        res = firmware.run_qemu(fw, run, train=(xs, ys), checkpoint=cfg, timeout=3600)
        stats["boots"] += 1
        restored = res.checkpoints[0]["steps"] if res.checkpoints and \
            res.checkpoints[0]["status"] == "TT_OK" else 0
        stats["steps_executed"] += len(res.steps)
        saved = [c for c in res.checkpoints if c["op"] == "save" and c["status"] == "TT_OK"]
        stats["checkpoints_written"] += len(saved)
        if res.returncode == firmware_cut_status():
            stats["power_cuts"] += 1
            expect = saved[-1]["steps"] if saved else restored
            try:
                ck = checkpoint.read_checkpoint(run / "tt_nvm.bin", model_id=layout.model_id())
            except checkpoint.CheckpointError:
                ck = None
            ok = (ck is None and expect == 0) or (ck is not None and ck.steps == expect)
            if ck is not None and expect > 0:
                want = layout.pack(ref[expect - 1])
                lost = sum(a != b for a, b in zip(ck.payload, want))
                stats["bytes_lost"] += lost
                ok = ok and lost == 0
            stats["cuts_survived"] += int(ok)
            stats["steps_redone"] += restored + len(res.steps) - expect  # trained after the last save
            done = expect
            continue
        if res.returncode != 0:
            raise RuntimeError(f"soak boot failed ({res.returncode}):\n{res.output[-2000:]}")
        stats["final_equal_host"] = bool(all(
            np.array_equal(a.view(np.uint32), b.view(np.uint32))
            for a, b in zip(res.final_state, ref[-1])))
        stats["final_steps"] = res.final_steps[0]
        break
    print(f"[soak] {stats}", flush=True)
    return stats


def firmware_cut_status() -> int:
    return 99  # TT_BOARD_EXIT_POWER_CUT (runtime/boards/common/board.h)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fuzz-seconds", type=int, default=60, help="per fuzz target")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--cut-prob", type=float, default=1.0,
                    help="probability that a boot is cut (while more than 3 checkpoints remain)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tt-reliability-") as tmp:
        work = Path(tmp)
        t0 = time.time()
        fuzz = run_fuzzers(args.fuzz_seconds, args.seed, work)
        s = soak(args.steps, args.every, args.cut_prob, args.seed, work)
    result = {
        "power_cuts": s["power_cuts"], "cuts_survived": s["cuts_survived"],
        "fuzz_execs": sum(f["execs"] for f in fuzz.values()),
        "crashes": sum(f["crashes"] for f in fuzz.values()),
        "soak": s, "fuzz": fuzz, "seed": args.seed, "fuzz_seconds_per_target": args.fuzz_seconds,
        "seconds": round(time.time() - t0, 1), "machine": platform.platform(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reliability.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["# Reliability: fuzzing and power-cut soak", "",
          "Generated by `bench/reliability.py` (seed %d). Fuzzers: libFuzzer (clang-14) with ASan + "
          "UBSan, %d s per target. Soak: `sgd_linear` 16x4 on QEMU mps2-an386 (Cortex-M4F), "
          "checkpoint every %d steps, random power cuts at an NVM erase/program (half of them torn)."
          % (args.seed, args.fuzz_seconds, args.every), "",
          "| fuzz target | executions | crashes | corpus |", "| --- | ---: | ---: | ---: |"]
    md += [f"| {k} | {v['execs']} | {v['crashes']} | {v['corpus']} |" for k, v in fuzz.items()]
    md += ["", "| soak | value |", "| --- | ---: |"]
    md += [f"| {k} | {v} |" for k, v in s.items()]
    md += ["", f"power cuts: {s['power_cuts']}, survived: {s['cuts_survived']}, bytes lost: "
           f"{s['bytes_lost']}, final parameters equal the host replay: {s.get('final_equal_host')}", ""]
    (args.out / "reliability.md").write_text("\n".join(md))
    print(json.dumps({k: result[k] for k in ("power_cuts", "cuts_survived", "fuzz_execs", "crashes")}))
    return 0 if result["crashes"] == 0 and s["cuts_survived"] == s["power_cuts"] and \
        s.get("final_equal_host") else 1


if __name__ == "__main__":
    sys.exit(main())
