"""Planned SRAM of int8 programs on the Cortex-M targets (measured, not optimised; not a test).

Cases (128x128 input, batch 1):

- `train_49kb_m7`: the training step of MobileNetV2-w0.35 with the paper's `49kb` sparse update
  scheme (`tinytrain.pretrained.load_sparse_scheme`: its bias layers and weight layers, and a new
  10-class fp32 head), int8 forward, fp32 backward, QAS, int8 write-back, on the Cortex-M7,
  every listed weight trained whole;
- `train_49kb_ratios_m7`: the same with the scheme's channel ratios (`scheme="49kb"`, the
  `sparse-update` pass: a weight with ratio r trains its first r * C_out output channels).
- `predict_<model>_m4`: int8 inference of each pretrained model (int8 classifier) on the M4; the
  budgets of `tests/python/test_int8_device_models.py` come from these.

Each number is `tinytrain.int8.plan_sram` (the compiler's plan from the static schedule: trained
state + IREE's arena + I/O buffers + harness static data + stack reserve, the linked firmware's
worst-case stack + 256 B in whole KB), with its biggest contributors.

    .venv/bin/python bench/int8_sram.py            # all cases (about 3 min each on this machine)
    .venv/bin/python bench/int8_sram.py --only train_49kb_ratios_m7

Writes `bench/results/int8_sram.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def cases():
    from tinytrain.pretrained import MODEL_NAMES, load_mcu_model, load_sparse_scheme
    from tinytrain.pretrained.graph import build_forward

    def train_49kb():
        model = load_mcu_model("mbv2-w0.35")
        scheme = load_sparse_scheme(model, "49kb")
        trainable = ([f"{n}.bias" for n in scheme.bias_layers]
                     + [f"{w.name}.weight" for w in scheme.weight_updates] + ["fc.weight", "fc.bias"])
        return build_forward(model, classifier="fp32", num_classes=10), {"trainable": trainable}, "cortex-m7"

    def train_49kb_ratios():
        graph = build_forward(load_mcu_model("mbv2-w0.35"), classifier="fp32", num_classes=10)
        return graph, {"scheme": "49kb"}, "cortex-m7"

    out = {"train_49kb_m7": train_49kb, "train_49kb_ratios_m7": train_49kb_ratios}
    for name in MODEL_NAMES:
        out[f"predict_{name}_m4"] = (lambda n: lambda: (build_forward(load_mcu_model(n)), {}, "cortex-m4"))(name)
    return out


def main() -> None:
    from tinytrain.int8 import plan_sram

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="case names (default: all)")
    args = ap.parse_args()
    todo = cases()
    names = args.only or list(todo)
    path = RESULTS / "int8_sram.json"
    results = json.loads(path.read_text()) if path.exists() and args.only else {}
    for name in names:
        graph, what, target = todo[name]()
        t0 = time.time()
        plan = plan_sram(graph, target=target, **what)
        results[name] = {"target": target, **{k: list(v) if k == "trainable" else v for k, v in what.items()},
                         "planned_bytes": plan["total"],
                         "planned_peak_bytes": plan["peak"],
                         "trained_state_bytes": sum(size for what, size in plan["contributors"]
                                                    if what.startswith("trained parameter")),
                         "contributors": [[what, size] for what, size in plan["contributors"]]}
        print(f"{name}: {plan['total']} B planned ({time.time() - t0:.0f} s)", flush=True)
        for what, size in plan["contributors"][:5]:
            print(f"    {size:>8} B  {what}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Planned SRAM of int8 programs (128x128, batch 1)", "",
             "`.venv/bin/python bench/int8_sram.py` (`tinytrain.int8.plan_sram`; not optimised).", "",
             "| case | target | planned SRAM | trained state | biggest contributors |",
             "| --- | --- | ---: | ---: | --- |"]
    for name, r in results.items():
        top = "; ".join(f"{what}: {size} B" for what, size in r["contributors"][:4])
        lines.append(f"| `{name}` | {r['target']} | {r['planned_bytes']} B ({r['planned_bytes'] / 1024:.0f} KB) "
                     f"| {r.get('trained_state_bytes', 0)} B | {top} |")
    (RESULTS / "int8_sram.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
