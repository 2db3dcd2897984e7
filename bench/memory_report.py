"""The compiler's memory report next to the device's measurement (measured, not a test).

Cases (batch 1):

- `mbv2_w035_64_classifier_m7`: MobileNetV2-w0.35 (`tinytrain.models.mobilenet_v2`, fp32) at
  64x64, classifier trained, on the Cortex-M7 with a 512 KB budget (issue #9's first table row);
- `int8_mbv2_6blocks_48_m4`: the demo's int8 program (the pretrained int8 MobileNetV2-w0.35, first
  6 blocks at 48x48, new fp32 head; the last block's biases and last pointwise weight trained,
  QAS) on the Cortex-M4 with 256 KB.

For each: `prog.memory_report()` (written to `bench/results/memory_report/<case>/`), then one
training step in QEMU for the device's `MEM sram_peak` (stack + SRAM painting).

    .venv/bin/python bench/memory_report.py          # both cases (about 2 min each here)
    .venv/bin/python bench/memory_report.py --only int8_mbv2_6blocks_48_m4

Writes `bench/results/memory_report.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def fp32_mbv2(build_dir):
    import torch

    import tinytrain
    from tinytrain.models import mobilenet_v2

    torch.manual_seed(0)
    prog = tinytrain.compile(mobilenet_v2(0.35).eval(), torch.randn(1, 3, 64, 64),
                             trainable=["classifier.weight", "classifier.bias"], lr=0.01,
                             target="cortex-m7", sram_kb=512, build_dir=build_dir)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    return prog, lambda wd: prog.run_qemu(train=(x, [3]), workdir=wd, timeout=600)


def int8_mbv2(build_dir):
    from tinytrain import reference as R
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    model = truncate(load_mcu_model("mbv2-w0.35"), 6)
    last = model.blocks[-1]
    trainable = ([f"{c.name}.bias" for c in last.convs()] + [f"{last.pointwise2.name}.weight"]
                 + ["fc.weight", "fc.bias"])
    graph = build_forward(model, classifier="fp32", num_classes=10, input_hw=48)
    prog = compile_training(graph, trainable, lr=0.1, target="cortex-m4", sram_kb=256, build_dir=build_dir)
    rgb = np.random.default_rng(0).integers(0, 256, (1, 48, 48, 3)).astype(np.uint8)
    x = R.preprocess(rgb, model.first_conv.x_scale, model.first_conv.x_zero)
    return prog, lambda wd: prog.run_qemu(train=(x, [3]), workdir=wd, timeout=600)


CASES = {"mbv2_w035_64_classifier_m7": fp32_mbv2, "int8_mbv2_6blocks_48_m4": int8_mbv2}


def run(name: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="tinytrain-memreport-") as tmp:
        t = time.time()
        prog, step = CASES[name](Path(tmp) / "fw")
        rep = prog.memory_report()
        rep.write(RESULTS / "memory_report" / name)
        res = step(Path(tmp) / "run")
        if res.returncode != 0:
            raise SystemExit(f"{name}: the firmware failed:\n{res.output[-2000:]}")
    peak = rep.live_peak_row
    measured = int(res.mem["sram_peak"])
    row = {"case": name, "target": rep.target, "dispatches": len(rep.rows), "peak_bytes": rep.peak_bytes,
           "live_peak_bytes": rep.live_peak_bytes, "live_peak_dispatch": peak.dispatch,
           "live_peak_layers": peak.layers, "persistent_bytes": rep.persistent_bytes,
           "transient_arena_bytes": rep.transient_arena_bytes, "reserved_bytes": rep.reserved_bytes,
           "device_sram_peak_bytes": measured, "device_stack_peak_bytes": int(res.mem["stack_peak"]),
           "report_over_device": round(rep.peak_bytes / measured, 4), "seconds": round(time.time() - t, 1)}
    print(json.dumps(row), flush=True)
    return row


def write(rows: list) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory_report.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = ["# Memory report vs the device (`bench/memory_report.py`)", "",
          "| case | dispatches | report peak (plan) B | device sram_peak B | report / device | "
          "live at worst dispatch B | worst dispatch (layers) |", "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['case']} ({r['target']}) | {r['dispatches']} | {r['peak_bytes']:,} | "
                  f"{r['device_sram_peak_bytes']:,} | {r['report_over_device']:.3f} | {r['live_peak_bytes']:,} | "
                  f"`{r['live_peak_dispatch']}` ({', '.join(r['live_peak_layers'])}) |")
    md += ["", "Per-dispatch tables and plots: `bench/results/memory_report/<case>/memory_report.{md,json,svg}`."]
    (RESULTS / "memory_report.md").write_text("\n".join(md) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(CASES))
    args = ap.parse_args()
    names = [args.only] if args.only else list(CASES)
    old = {r["case"]: r for r in json.loads((RESULTS / "memory_report.json").read_text())} \
        if (RESULTS / "memory_report.json").is_file() else {}
    for n in names:
        old[n] = run(n)
    write([old[n] for n in CASES if n in old])


if __name__ == "__main__":
    main()
