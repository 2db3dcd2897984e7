"""Instructions per training step on the emulated Cortex-M4F / Cortex-M7 (not a test).

Method: the firmware harness reads SysTick (CPU clock, extended to 64 bits) around every
``tt_train_step``; QEMU runs with ``-icount shift=0``, where one guest instruction takes exactly
1 ns of virtual time, so ``instructions = ticks * 1e9 / f_systick`` (QEMU clocks SysTick at 25 MHz
on mps2-an386 and mps2-an500: 40 instructions per tick, resolution +-40). These are instruction
counts, not cycles: QEMU has no timing model (see ../shared notes for cycle estimates).

Every model runs on both boards with both f32 clamp lowerings (`to-linalg{clamp=select|minmax}`,
issue #10): the row marked "target default" is what `tinytrain.compile(target=...)` emits
(`CLAMP_BY_TARGET`), the other one shows what the choice is worth on that board.

    .venv/bin/python bench/cortexm_bench.py [--steps 3] [--out bench/results] [--quick]

Writes ``cortexm_steps.json`` and ``cortexm_steps.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def _models(quick: bool):
    import torch

    from tinytrain.models import mobilenet_v2, small_cnn

    torch.manual_seed(0)
    yield ("small_cnn 16x16, all trainable", small_cnn(), (1, 1, 16, 16), "all", 256)
    yield ("small_cnn 16x16, last 2 layers", small_cnn(), (1, 1, 16, 16),
           ["6.weight", "6.bias", "10.weight", "10.bias"], 256)
    if not quick:
        # fp32 activations: the 64x64 working set needs ~500 KB (int8 is the front half's job).
        yield ("MobileNetV2-w0.35 64x64, classifier", mobilenet_v2(0.35), (1, 3, 64, 64),
               ["classifier.weight", "classifier.bias"], 512)


def _linalg(model, example, trainable, clamp: str) -> str:
    """The training program's linalg with the f32 clamps lowered as `clamp` (what `compile()`
    builds, with the clamp chosen here instead of by the target)."""
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass
    from tinytrain.lowering.conversions.torch_to_tinytrain import import_model
    from tinytrain.pipeline import run_pipeline
    from tinytrain.transforms.autodiff import AutodiffPass

    imported = import_model(model, example)
    names = ("all",) if trainable == "all" else tuple(trainable)
    run_pipeline(imported.module, [AutodiffPass(trainable=names, lr=0.01),
                                   ConvertTinytrainToLinalgPass(values=imported.params, clamp=clamp)],
                 stage="bench")
    return str(imported.module)


def run(steps: int, out: Path, quick: bool) -> list:
    import torch

    import tinytrain
    from tinytrain.lowering.conversions.tinytrain_to_linalg import CLAMP_BY_TARGET, CLAMPS
    from tinytrain.lowering.cortexm import firmware

    rows = []
    for name, model, shape, trainable, sram_kb in _models(quick):
        t0 = time.time()
        example = torch.randn(*shape)
        prog = tinytrain.compile(model.eval(), example, trainable=trainable, lr=0.01)
        params = prog.program_params()
        rng = np.random.default_rng(0)
        n, c, h, w = shape
        xs = rng.standard_normal((steps, n, h, w, c)).astype(np.float32)
        ys = [int(v) for v in rng.integers(0, prog.num_classes, steps)]
        texts = {clamp: _linalg(model, example, trainable, clamp) for clamp in CLAMPS}
        front = time.time() - t0
        for target, clamp in ((t, c) for t in ("cortex-m4", "cortex-m7") for c in CLAMPS):
            with tempfile.TemporaryDirectory(prefix="tt-bench-") as tmp:
                t1 = time.time()
                fw = firmware.compile_firmware(texts[clamp], tmp, target=target,
                                               params=params, sram_kb=sram_kb)
                build = time.time() - t1
                t2 = time.time()
                res = firmware.run_qemu(fw, Path(tmp) / "run", train=(xs, ys), timeout=600)
                wall = time.time() - t2
            if res.returncode != 0:
                raise RuntimeError(f"{name} on {fw.board} failed:\n{res.output}")
            insns = [t * res.instructions_per_tick for _, t in res.steps]
            row = {"model": name, "target": target, "board": fw.board, "sram_kb": sram_kb,
                   "clamp": clamp, "target_default": CLAMP_BY_TARGET[target] == clamp,
                   "losses": [float(v) for v, _ in res.steps],
                   "steps": len(insns), "instructions_per_step": int(statistics.median(insns)),
                   "instructions_min": int(min(insns)), "instructions_max": int(max(insns)),
                   "arena_bytes": fw.module.arena_bytes, "trained_param_bytes": fw.module.state_bytes,
                   "flash_constants_bytes": fw.module.pool_bytes, "text_bytes": fw.text,
                   "sram_peak_bytes": res.mem.get("sram_peak"), "stack_peak_bytes": res.mem.get("stack_peak"),
                   "planned_peak_bytes": fw.module.planned_peak(),
                   "frontend_s": round(front, 2), "backend_build_s": round(build, 2),
                   "qemu_wall_s": round(wall, 2)}
            rows.append(row)
            print(f"{name:40s} {fw.board:11s} {clamp:7s} {row['instructions_per_step']:>12,d} insn/step  "
                  f"sram_peak={row['sram_peak_bytes']}", flush=True)
    return rows


def write(rows: list, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    gcc = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    meta = {"method": "SysTick under qemu -icount shift=0 (1 instruction = 1 ns), 40 instructions per tick",
            "qemu": qemu, "arm_gcc": gcc, "host": platform.platform()}
    (out / "cortexm_steps.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = ["# Instructions per training step (QEMU, `-icount shift=0` + SysTick)", "",
             f"{meta['qemu']}; {meta['arm_gcc']}. Instruction counts, not cycles; +-40 per step.",
             "clamp: the f32 ReLU/ReLU6 lowering (`to-linalg{clamp=...}`); **bold** = the target's default "
             "(what `tinytrain.compile(target=...)` emits); vs other: this row's instructions relative to the "
             "other clamp lowering on the same board.", "",
             "| model | board | clamp | insn/step | vs other | arena B | trained B | flash consts B | .text B | SRAM peak B (plan) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        other = [o for o in rows if o["model"] == r["model"] and o["target"] == r["target"] and o is not r]
        vs = f"{r['instructions_per_step'] / other[0]['instructions_per_step'] - 1:+.1%}" if other else "-"
        clamp = f"**{r['clamp']}**" if r["target_default"] else r["clamp"]
        lines.append(f"| {r['model']} ({r['sram_kb']} KB) | {r['board']} | {clamp} | {r['instructions_per_step']:,} | {vs} | {r['arena_bytes']:,} | "
                     f"{r['trained_param_bytes']:,} | {r['flash_constants_bytes']:,} | {r['text_bytes']:,} | "
                     f"{r['sram_peak_bytes']:,} ({r['planned_peak_bytes']:,}) |")
    (out / "cortexm_steps.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--quick", action="store_true", help="skip MobileNetV2")
    args = ap.parse_args()
    rows = run(args.steps, args.out, args.quick)
    write(rows, args.out)
    print(f"wrote {args.out / 'cortexm_steps.json'} and {args.out / 'cortexm_steps.md'}")


if __name__ == "__main__":
    main()
