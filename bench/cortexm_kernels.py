"""Instructions per MAC of our Cortex-M kernels (runtime/kernels) on the emulated Cortex-M4F
(mps2-an386) and Cortex-M7 (mps2-an500), beside IREE's own generated int8 kernel for the same
op where it can be built (not a test).

Method: the runner (runtime/kernels/test/ttk_runner.c) reads SysTick around each kernel call;
QEMU runs with ``-icount shift=0`` (one guest instruction = 1 ns; SysTick at 25 MHz = 40
instructions per tick, resolution +-40). IREE's kernels are compiled by ``iree-compile`` into the
static library exactly as ``lowering/cortexm/iree_static.py`` does, and run through our runtime's
``tt_predict`` in a small firmware that times that call. Shapes are MobileNetV2-w0.35 layers at
128x128 input. Outputs are checked against the numpy oracle (tests/firmware/ttk_oracle.py).
Instruction counts are not cycles (QEMU has no timing model).

    .venv/bin/python bench/cortexm_kernels.py [--out bench/results] [--no-iree]

Writes ``cortexm_kernels.json`` (``instr_per_mac[kernel][target]``, ``projected_ms[model]``) and
``cortexm_kernels.md``.

Per-image latency of the paper's three models with their sparse update (scheme "49kb", 128x128,
a 10-class fp32 head) is a *projection from kernel rates*, not a measured step (the measured step,
with IREE's int8 kernels and with ours, is `bench/cortexm_int8_step.py`; its backward runs
IREE's fp32 kernels, not ours): the step's MACs layer by layer (int8 forward of every
conv, fp32 input gradients from the classifier down to the earliest trained layer, weight
gradients of the scheme's channel slices, the fp32 head) times the instructions per MAC measured
here for the matching kernel on the Cortex-M7, at an assumed 1.0 cycle per instruction at 216 MHz
(the STM32F746 of the paper). Elementwise work (requantization outside the kernels, residual
adds, pooling, ReLU masks, the loss, the update) is not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "firmware"))

import ttk_kernels as tk  # noqa: E402
import ttk_oracle as oracle  # noqa: E402

TARGETS = ("cortex-m4", "cortex-m7")
ARENA_KB, RAM_KB = 1400, 1536   # big MbV2 layers at full resolution (QEMU maps 4 MB of RAM)


def _kernels(rng):
    """(name, family, case, MACs, reference output or None)."""
    out = []

    def pw(name, hw, ci, co, act="folded"):
        q = tk.quant_params(rng, co, relu6=act)
        x, w, b = tk.s8(rng, (hw * hw, ci)), tk.s8(rng, (ci, co)), tk.bias32(rng, co)
        out.append((name, "int8 pointwise", tk.case_conv1x1(x, w, b, q), hw * hw * ci * co,
                    oracle.conv1x1(x, w, b, q)))

    def dw(name, hw, c, k, s):
        q = tk.quant_params(rng, c, relu6="folded")
        x, w, b = tk.s8(rng, (hw, hw, c)), tk.s8(rng, (k, k, 1, c)), tk.bias32(rng, c)
        o = oracle.out_size(hw, k, s)
        out.append((name, "int8 depthwise", tk.case_dwconv(x, w, k, s, b, q), o * o * c * k * k,
                    oracle.dwconv(x, w, k, s, b, q)))

    q = tk.quant_params(rng, 16, relu6="folded")
    x, w, b = tk.s8(rng, (128, 128, 3)), tk.s8(rng, (3, 3, 3, 16)), tk.bias32(rng, 16)
    out.append(("conv3x3 s2 3->16 @128x128", "int8 first conv", tk.case_conv(x, w, 3, 2, b, q),
                64 * 64 * 16 * 27, oracle.conv(x, w, 3, 2, b, q)))
    pw("pw 16->96 @64x64", 64, 16, 96)
    pw("pw 8->48 @64x64 (features.2 expand)", 64, 8, 48)
    pw("pw 16->96 @64x64, narrow clamp [y_zero, y_zero+100]", 64, 16, 96, act=True)
    pw("pw 48->8 @32x32 (features.2 project)", 32, 48, 8, act=False)
    pw("pw 96->16 @16x16 (project)", 16, 96, 16, act=False)
    pw("pw 336->56 @8x8 (project)", 8, 336, 56, act=False)
    dw("dw3x3 s1 C16 @64x64 (features.1)", 64, 16, 3, 1)
    dw("dw3x3 s2 C48 @64x64 (features.2)", 64, 48, 3, 2)
    dw("dw3x3 s1 C96 @32x32", 32, 96, 3, 1)
    dw("dw5x5 s1 C96 @16x16", 16, 96, 5, 1)
    dw("dw7x7 s1 C96 @16x16", 16, 96, 7, 1)
    out += _pad0_kernels(np.random.default_rng(8))
    qq = tk.quant_params(rng, 10, relu6=False)
    x, w, b = tk.s8(rng, (1, 1280)), tk.s8(rng, (1280, 10)), tk.bias32(rng, 10)
    out.append(("linear 1280->10", "int8 linear", tk.case_conv1x1(x, w, b, qq, op="linear"),
                12800, oracle.conv1x1(x, w, b, qq)))
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    gy, wt = f(8, 8, 336), f(3, 3, 1, 336)
    out.append(("dw3x3 grad input C336 @8x8", "fp32 dw grad input",
                 tk.Case("dw_grad_input", [8, 8, 336, 3, 1], [gy, wt], 8 * 8 * 336 * 4),
                 8 * 8 * 336 * 9, None))
    gy, wt = f(64, 56), f(336, 56)
    out.append(("pw grad input 56->336 @8x8", "fp32 pw grad input",
                 tk.Case("pw_grad_input", [64, 56, 336], [gy, wt], 64 * 336 * 4), 64 * 56 * 336, None))
    x, gy = tk.s8(rng, (64, 336)), f(64, 56)
    out.append(("pw grad weight 336->56 @8x8, 1/8 channels", "fp32 pw grad weight",
                 tk.Case("pw_grad_weight", [64, 336, 56, 7, -3, tk.f32_bits(0.05)], [x, gy], 336 * 7 * 4),
                 64 * 336 * 7, None))
    x, gy = tk.s8(rng, (8, 8, 336)), f(8, 8, 336)
    out.append(("dw3x3 grad weight C336 @8x8, 1/8 channels", "fp32 dw grad weight",
                 tk.Case("dw_grad_weight", [8, 8, 336, 3, 1, 42, 5, tk.f32_bits(0.05), 336], [x, gy], 9 * 42 * 4),
                 8 * 8 * 42 * 9, None))
    return out


def _pad0_kernels(rng):
    """Padding 0 (the convs of `patch-stage`'s patches, padded at the image border only), on inputs
    one halo larger than the padded rows' so the outputs and MACs are the same: the first conv and
    the features.1 / features.2 depthwise convs. Named "pad-0 ..." so the projection (which matches
    names from their start) keeps the padded rows."""
    out = []
    for hw, c, s in ((66, 16, 1), (65, 48, 2), (13, 48, 1)):  # (13: a patch's block-2 depthwise, 3 tail pixels a row)
        q = tk.quant_params(rng, c, relu6="folded")
        x, w, b = tk.s8(rng, (hw, hw, c)), tk.s8(rng, (3, 3, 1, c)), tk.bias32(rng, c)
        o = oracle.out_size(hw, 3, s, pad=0)
        out.append((f"pad-0 dw3x3 s{s} C{c} @{hw}x{hw} -> {o}x{o}", "int8 depthwise",
                    tk.case_dwconv(x, w, 3, s, b, q, pad=0), o * o * c * 9, oracle.dwconv(x, w, 3, s, b, q, pad=0)))
    q = tk.quant_params(rng, 16, relu6="folded")
    x, w, b = tk.s8(rng, (129, 129, 3)), tk.s8(rng, (3, 3, 3, 16)), tk.bias32(rng, 16)
    out.append(("pad-0 conv3x3 s2 3->16 @129x129 -> 64x64", "int8 first conv", tk.case_conv(x, w, 3, 2, b, q, pad=0),
                64 * 64 * 16 * 27, oracle.conv(x, w, 3, 2, b, q, pad=0)))
    return out


def run_ours(work: Path) -> list:
    rng = np.random.default_rng(7)
    kernels = _kernels(rng)
    rows = []
    for target in TARGETS:
        board = tk.TARGET_BOARD[target]
        runner = tk.build(work / board, board, arena_kb=ARENA_KB, ram_kb=RAM_KB)
        t0 = time.time()
        res = tk.run(runner, [k[2] for k in kernels], work / board / "run", timeout=1200)
        wall = time.time() - t0
        for (name, family, case, macs, ref), (raw, ticks) in zip(kernels, res):
            ok = None
            if ref is not None:
                ok = bool(np.array_equal(np.frombuffer(raw, np.int8), np.asarray(ref, np.int8).ravel()))
            insns = ticks * runner.instructions_per_tick
            rows.append({"kernel": name, "family": family, "impl": "tinytrain", "target": target,
                         "board": board, "macs": macs, "instructions": int(insns),
                         "instr_per_mac": round(insns / macs, 3), "output_matches_oracle": ok})
        print(f"[ours] {target}: {len(kernels)} kernels in {wall:.1f} s", flush=True)
    return rows


#: Paper, Fig. 10(c): TTE kernels, sparse update, STM32F746 (Cortex-M7, 216 MHz), ms per image.
PAPER_MS = {"mbv2-w0.35": 373, "proxyless-w0.3": 443, "mcunet-5fps": 546}
SCHEME, CLASSES = "49kb", 10
CPI, F_HZ, PROJ_TARGET = 1.0, 216e6, "cortex-m7"


def _rate_table(rows: list, target: str) -> dict:
    """Our kernels' measured instr/MAC on `target`: kernel name -> rate."""
    return {r["kernel"]: r["instr_per_mac"] for r in rows if r["impl"] == "tinytrain" and r["target"] == target}


def _pick(rates: dict, pattern: str, score) -> tuple[str, float]:
    """The measured kernel whose name matches `pattern` with the lowest `score(match)`."""
    found = [(score(m), name) for name in rates for m in [re.match(pattern, name)] if m]
    if not found:
        raise KeyError(f"no measured kernel matches {pattern!r}")
    name = min(found)[1]
    return name, rates[name]


def _fwd_kernel(rates: dict, conv, index: int) -> tuple[str, float]:
    k, cin = conv.kernel_size, conv.weight.shape[2]
    if index == 0:
        return _pick(rates, r"conv3x3 s2", lambda m: 0)
    if conv.groups > 1:  # depthwise: same K, same stride if measured, then the nearest C
        return _pick(rates, r"dw(\d)x\d s(\d) C(\d+)", lambda m: (int(m[1]) != k, int(m[2]) != conv.stride,
                                                                  abs(math.log(int(m[3]) / conv.out_channels))))
    # pointwise (calibrated: ReLU6 folded, full-range clamp): the nearest C_in, in log scale
    return _pick(rates, r"pw (\d+)->(\d+) @\d+x\d+(?!,)", lambda m: abs(math.log(int(m[1]) / cin)))


def project_step(model_name: str, rates: dict) -> dict:
    """MACs and instructions of one sparse-update training step of `model_name`, layer by layer,
    from the measured kernel `rates` (see the module docstring)."""
    from tinytrain.pretrained import load_mcu_model, load_sparse_scheme

    m = load_mcu_model(model_name)
    scheme = load_sparse_scheme(m, SCHEME)
    convs = m.convs()
    index = {c.name: i for i, c in enumerate(convs)}
    trained = [index[n] for n in scheme.bias_layers] + [w.index for w in scheme.weight_updates]
    earliest = min(trained)
    wslice = {w.index: w.channels / convs[w.index].out_channels for w in scheme.weight_updates if w.channels}
    macs = {"forward": 0, "input_grad": 0, "weight_grad": 0}
    layers, instr = [], 0.0

    def add(part, what, n, kernel_rate):
        nonlocal instr
        kernel, rate = kernel_rate
        n = int(n)
        macs[part] += n
        instr += n * rate
        layers.append({"layer": what, "part": part, "macs": int(n), "kernel": kernel, "instr_per_mac": rate})

    for i, c in enumerate(convs):
        k, cin, cout = c.kernel_size, c.weight.shape[2], c.out_channels
        n = c.out_hw * c.out_hw * cout * cin * k * k
        add("forward", c.name, n, _fwd_kernel(rates, c, i))
        if i > earliest:  # the gradient flows through this layer to the trained ones below
            grad_in = _pick(rates, r"dw3x3 grad input", lambda m: 0) if c.groups > 1 else \
                _pick(rates, r"pw grad input", lambda m: 0)
            add("input_grad", c.name, n, grad_in)
        if i in wslice:
            grad_w = _pick(rates, r"dw3x3 grad weight", lambda m: 0) if c.groups > 1 else \
                _pick(rates, r"pw grad weight", lambda m: 0)
            add("weight_grad", f"{c.name} ({wslice[i]:.3g} of the channels)", n * wslice[i] // 1, grad_w)
    head = m.classifier.weight.shape[2] * CLASSES  # fp32 head: forward, input and weight gradient
    fp32_gemm = _pick(rates, r"pw grad input", lambda m: 0)
    add("forward", f"classifier (fp32, {CLASSES} classes)", head, fp32_gemm)
    add("input_grad", "classifier", head, fp32_gemm)
    add("weight_grad", "classifier", head, _pick(rates, r"pw grad weight", lambda m: 0))
    fwd = [entry for entry in layers if entry["part"] == "forward" and not entry["layer"].startswith("classifier")]

    def rate(sel):  # MAC-weighted instr/MAC of these layers
        n = sum(entry["macs"] for entry in sel)
        return round(sum(entry["macs"] * entry["instr_per_mac"] for entry in sel) / n, 3) if n else None

    int8_rates = {"all": rate(fwd), "pointwise": rate([e for e in fwd if e["kernel"].startswith("pw ")]),
                  "depthwise": rate([e for e in fwd if e["kernel"].startswith("dw")])}
    return {"model": model_name, "scheme": SCHEME, "target": PROJ_TARGET, "macs": macs,
            "int8_forward_instr_per_mac": int8_rates,
            "macs_total": int(sum(macs.values())), "instructions_per_step": int(instr),
            "cycles_per_instruction": CPI, "clock_hz": F_HZ,
            "projected_ms": round(instr * CPI / F_HZ * 1e3, 1), "paper_ms": PAPER_MS[model_name],
            "kind": "projection from measured kernel rates (not a measured step)", "layers": layers}


def projections(rows: list) -> list:
    rates = _rate_table(rows, PROJ_TARGET)
    return [project_step(name, rates) for name in PAPER_MS]


def write(rows: list, out: Path, notes: list, proj: list) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = {}
    for r in rows:
        key = r["kernel"] if r["impl"] == "tinytrain" else f"{r['kernel']} [{r['impl']}]"
        table.setdefault(key, {})[r["target"]] = r["instr_per_mac"]
    doc = {"command": "python bench/cortexm_kernels.py", "date": time.strftime("%Y-%m-%d"),
           "machine": platform.machine(), "method": "QEMU 7.2 -icount shift=0, SysTick (40 instructions/tick)",
           "instr_per_mac": table, "rows": rows, "notes": notes,
           "projected_ms": {p["model"]: p["projected_ms"] for p in proj},
           "projection": {"assumption": f"{CPI} cycle per instruction at {F_HZ / 1e6:.0f} MHz, "
                                         f"{PROJ_TARGET} kernel rates, scheme {SCHEME}, {CLASSES}-class fp32 head",
                          "steps": proj}}
    (out / "cortexm_kernels.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = ["# Cortex-M kernels: instructions per MAC (QEMU -icount)", "",
          "Command: `.venv/bin/python bench/cortexm_kernels.py`. Instruction counts, not cycles "
          "(QEMU has no timing model). MobileNetV2-w0.35 layer shapes at 128x128 input. "
          "`ok` = output bit-exact with the numpy oracle (int8 only). Quantization as calibrated "
          "models have it: ReLU6 folded into the output scale (clamp = full int8 range, one "
          "SSAT), project layers without activation; one row shows a narrower clamp.", "",
          "| kernel | impl | M4 instr/MAC | M7 instr/MAC | MACs | ok |", "|---|---|---:|---:|---:|---|"]
    seen = {}
    for r in rows:
        seen.setdefault((r["kernel"], r["impl"]), {})[r["target"]] = r
    for (name, impl), by_t in seen.items():
        m4, m7 = by_t.get("cortex-m4"), by_t.get("cortex-m7")
        oks = {str(v["output_matches_oracle"]) for v in by_t.values() if v["output_matches_oracle"] is not None}
        md.append(f"| {name} | {impl} | {m4['instr_per_mac'] if m4 else '-'} | "
                  f"{m7['instr_per_mac'] if m7 else '-'} | {next(iter(by_t.values()))['macs']:,} | "
                  f"{'/'.join(sorted(oks)) or '-'} |")
    md += ["", f"## Sparse-update training step at 128x128: projection from kernel rates (not measured)", "",
           f"Scheme `{SCHEME}` of each model (`tinytrain.pretrained.load_sparse_scheme`), a {CLASSES}-class "
           f"fp32 head. Instructions = sum over the step's layers of MACs x the measured {PROJ_TARGET} "
           f"instr/MAC of the matching kernel above (forward: our int8 kernel of the same type, pointwise "
           f"by the nearest C_in; backward: our fp32 kernels). Projected ms = instructions x {CPI} cycle per "
           f"instruction / {F_HZ / 1e6:.0f} MHz (assumption: QEMU counts instructions, not cycles). "
           "Elementwise work (requantization outside the kernels, residual adds, pooling, masks, loss, "
           "update) is not counted, so this is a lower bound of the kernels' share.", "",
           "| model | fwd MACs | int8 fwd instr/MAC (all / pointwise / depthwise) | input-grad MACs | "
           "weight-grad MACs | instructions / step | projected ms | paper ms (TTE, Fig. 10) |",
           "|---|---:|---|---:|---:|---:|---:|---:|"]
    for p in proj:
        r = p["int8_forward_instr_per_mac"]
        md.append(f"| {p['model']} | {p['macs']['forward']:,} | {r['all']} / {r['pointwise']} / {r['depthwise']} | "
                  f"{p['macs']['input_grad']:,} | {p['macs']['weight_grad']:,} | {p['instructions_per_step']:,} | "
                  f"{p['projected_ms']} | {p['paper_ms']} |")
    md += [""] + [f"- {n}" for n in notes] + [""]
    (out / "cortexm_kernels.md").write_text("\n".join(md))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--no-iree", action="store_true", help="only our kernels")
    args = ap.parse_args(argv)
    notes = []
    with tempfile.TemporaryDirectory(prefix="ttk-bench-") as tmp:
        rows = run_ours(Path(tmp))
        if not args.no_iree:
            sys.path.insert(0, str(ROOT / "bench"))
            import iree_kernels  # bench helper next to this file

            iree_rows, iree_notes = iree_kernels.run(Path(tmp) / "iree", TARGETS)
            rows += iree_rows
            notes += iree_notes
    bad = [r for r in rows if r["output_matches_oracle"] is False]
    proj = projections(rows)
    write(rows, args.out, notes, proj)
    for p in proj:
        print(f"{p['model']:15s} {p['macs_total']:>12,d} MACs {p['instructions_per_step']:>12,d} instr "
              f"projected {p['projected_ms']} ms (paper {p['paper_ms']} ms)")
    for r in rows:
        print(f"{r['target']:10s} {r['impl']:9s} {r['kernel']:45s} {r['instr_per_mac']:7.3f} instr/MAC")
    if bad:
        print("OUTPUT MISMATCH:", [(r["kernel"], r["impl"], r["target"]) for r in bad])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
