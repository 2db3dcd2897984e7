"""The paper's three pretrained int8 models on both emulated boards (not a test: about 2-3 min per
case): whole networks at 128x128, `predict` in QEMU compared bit for bit with the numpy reference
(device rule) and the host `.vmfb`, chelsea.png -> cat, planned and measured SRAM
(`tinytrain.tools.pretrained_on_device.run_case`).

    .venv/bin/python bench/int8_device_predict.py

Writes `bench/results/int8_device_predict.json` and `.md`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    from tinytrain.pretrained import MODEL_NAMES
    from tinytrain.tools.pretrained_on_device import run_case

    rows = []
    for target in ("cortex-m4", "cortex-m7"):
        for name in MODEL_NAMES:
            t0 = time.time()
            print(f"[bench] {name} on {target} ...", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(prefix="tinytrain-bench-") as d:
                r = run_case(name, target, d)
            print(f"[bench]   done in {time.time() - t0:.0f}s: device==reference "
                  f"{r.get('device_equals_reference')}, cat {r.get('is_cat')}", file=sys.stderr, flush=True)
            rows.append(r)
    RESULTS.mkdir(exist_ok=True)
    cmd = ".venv/bin/python bench/int8_device_predict.py"
    (RESULTS / "int8_device_predict.json").write_text(json.dumps({"command": cmd, "cases": rows}, indent=2) + "\n")
    lines = ["# The paper's pretrained int8 models on the emulated Cortex-M boards", "",
             f"Command: `{cmd}`. Whole networks, 128x128, int8 classifier; two inputs (chelsea.png and a "
             "seeded random int8 image); logits compared bit for bit.", "",
             "| model | board | device = reference | host = reference | chelsea.png top class | "
             "SRAM budget | planned SRAM | measured peak |",
             "| --- | --- | --- | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['target']} | {r.get('device_equals_reference')} | "
                     f"{r.get('host_equals_reference')} | {r.get('top_classes')} (cat: {r.get('is_cat')}) | "
                     f"{r['sram_kb']} KB | {r['planned_sram_bytes']:,} B | {r.get('sram_peak_bytes', 0):,} B |")
    ok = all(r.get("device_equals_reference") and r.get("host_equals_reference") and r.get("is_cat") for r in rows)
    fits = [f"{r['model']} on {r['target']}" for r in rows if r["sram_kb"] <= 256 and r.get("returncode") == 0]
    lines += ["", f"All cases bit-exact and cat: {ok}. Built and run inside 256 KB of SRAM (linker-enforced): "
              f"{len(fits)} of {len(rows)} cases."]
    (RESULTS / "int8_device_predict.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
