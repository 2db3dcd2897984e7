"""Host time of the convolution-gradient kernels of MobileNetV2-w0.35, 128x128, batch 8, alone.

Each case is one `tinytrain.conv2d_grad_weight` / `conv2d_grad_input` op (the shapes of the
model's first conv and of its stride-1/stride-2 depthwise convs), lowered by the current
`to-linalg` patterns, compiled for the host (`HOST_FLAGS`) and timed by `iree-benchmark-module`
(local-sync, caching allocator, one thread, no Python): median of `--reps` repetitions.

`--convgrad direct|im2col` picks the dense weight-gradient lowering (`to-linalg{convgrad=...}`;
default im2col, the host's). `--build DIR` writes the vmfbs (and the linalg) there. `--compare DIR` also times the vmfbs of an
earlier `--build` (e.g. made with another revision of `conv.py`), interleaved A/B per case, and
prints the ratio. The MAC count is that of the op (KH*KW*C*F*N*OH*OW, depthwise F=1).

    .venv/bin/python bench/conv_grad_kernels.py --build out/cg_new [--compare out/cg_old]
    .venv/bin/python bench/conv_grad_kernels.py --convgrad direct --build out/cg_direct --reps 1
    .venv/bin/python bench/conv_grad_kernels.py --build out/cg_im2col --compare out/cg_direct
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import tinytrain  # noqa: F401  (registers the dialect)
from tinytrain.context import new_context, parse_module
from tinytrain.lowering.conversions.tinytrain_to_linalg import CONVGRAD_BY_TARGET, CONVGRADS, lower_to_linalg
from tinytrain.lowering.host.iree_host import compile_host, iree_tool

#: name: (op, x NHWC, weight HWIO, stride, padding, groups, dY NHWC)
CASES = {
    "gw_conv0_3x3s2_c3f16": ("grad_weight", [8, 128, 128, 3], [3, 3, 3, 16], 2, 1, 1, [8, 64, 64, 16]),
    "gw_dw3x3s2_c48": ("grad_weight", [8, 64, 64, 48], [3, 3, 1, 48], 2, 1, 48, [8, 32, 32, 48]),
    "gw_dw3x3s1_c48": ("grad_weight", [8, 32, 32, 48], [3, 3, 1, 48], 1, 1, 48, [8, 32, 32, 48]),
    "gw_dw3x3s2_c96": ("grad_weight", [8, 32, 32, 96], [3, 3, 1, 96], 2, 1, 96, [8, 16, 16, 96]),
    "gi_dw3x3s2_c48": ("grad_input", [8, 64, 64, 48], [3, 3, 1, 48], 2, 1, 48, [8, 32, 32, 48]),
}


def _t(shape) -> str:
    return "tensor<" + "x".join(map(str, shape)) + "xf32>"


def case_mlir(op, x, w, s, p, g, dy) -> tuple[str, list]:
    """The single-op function and the shapes of its two arguments."""
    args, res = ([x, dy], w) if op == "grad_weight" else ([dy, w], x)
    attrs = f"{{strides = array<i64: {s}, {s}>, padding = array<i64: {p}, {p}>, groups = {g} : i64}}"
    text = (f"func.func @main(%a: {_t(args[0])}, %b: {_t(args[1])}) -> {_t(res)} {{\n"
            f'  %0 = "tinytrain.conv2d_{op}"(%a, %b) {attrs} : ({_t(args[0])}, {_t(args[1])}) -> {_t(res)}\n'
            f"  return %0 : {_t(res)}\n}}\n")
    return text, args


def macs(x, w, dy) -> int:
    kh, kw, cg, f = w
    n, oh, ow, _ = dy
    return kh * kw * cg * f * n * oh * ow


def build(out: Path, convgrad: str = "im2col") -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (op, x, w, s, p, g, dy) in CASES.items():
        text, args = case_mlir(op, x, w, s, p, g, dy)
        ctx = new_context()
        module = parse_module(text, ctx, "conv_grad_kernels")
        with ctx:
            lower_to_linalg(module, convgrad=convgrad)
            linalg = str(module)
        (out / f"{name}.linalg.mlir").write_text(linalg)
        compile_host(linalg, out / f"{name}.vmfb")
        (out / f"{name}.flags").write_text("".join(f"--input={'x'.join(map(str, a))}xf32=0.5\n" for a in args))


def time_ms(vmfb: Path, flags: Path, reps: int) -> float:
    cmd = [iree_tool("iree-benchmark-module"), f"--module={vmfb}", "--device=local-sync",
           "--device_allocator=caching", "--function=main", f"--flagfile={flags}",
           "--benchmark_min_time=0.2", "--benchmark_format=json"]
    times = []
    for _ in range(reps):
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
        b = json.loads(p.stdout[p.stdout.index("{"):])["benchmarks"][0]
        times.append(b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0}[b.get("time_unit", "ns")])
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, required=True)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--convgrad", choices=CONVGRADS, default=CONVGRAD_BY_TARGET["host"])
    args = ap.parse_args(argv)
    build(args.build, args.convgrad)
    for name, (_, x, w, _, _, _, dy) in CASES.items():
        new, old = [], []
        for _ in range(args.reps):  # interleaved A/B rounds
            new.append(time_ms(args.build / f"{name}.vmfb", args.build / f"{name}.flags", 1))
            if args.compare:
                old.append(time_ms(args.compare / f"{name}.vmfb", args.compare / f"{name}.flags", 1))
        t = statistics.median(new)
        line = f"{name:24s} {t:8.3f} ms  {2 * macs(x, w, dy) / t / 1e6:6.2f} GFLOP/s"
        if args.compare:
            o = statistics.median(old)
            line += f"   compare {o:8.3f} ms  speed-up {o / t:5.2f}x [{min(old) / max(new):.2f}-{max(old) / min(new):.2f}]"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
