"""Where the instructions of the measured int8 training step go: a per-command profile of
`bench/cortexm_int8_step.py`'s step with our kernels (`kernels="ttk"`, default patches) on the
emulated Cortex-M7 (not a test; a few minutes).

The firmware project the compiler generated is built a second time with the CMake option
`TT_PROFILE_COMMANDS=ON`: the runtime's interpreter (`runtime/src/model.c`, `tt_run`) then calls
the harness around every command of the schedule, which reads SysTick (QEMU `-icount shift=0`:
40 instructions per tick, so +-40 instructions per command, plus the ~20 instructions of the
timer read) and prints `PROF <command> <ticks>`. Without the option the interpreter has no hook:
the measured step of `cortexm_int8_step.py` runs the same code as the firmware built here without
it (its step total is measured too, beside the profile's sum).

Each command of `@train_step` (the generated command table, `<prefix>_model.c`) is one row: its
kernel (IREE's export name or ours), the layers IREE's executable source names (locations), its
instructions, its MACs where known (our int8 kernels from their shape constants; IREE's
contractions `matmul_like` / `matvec_like` / `conv` from the loop sizes in their names), and
grouped by kind. The patch stage (`patch-stage`) is the commands up to the last one of the
patched first stage (its padding-0 convolutions and the dispatches of its cut layer).

    .venv/bin/python bench/cortexm_step_profile.py [--hw 128] [--steps 2] [--kernels ttk] [--build-dir DIR]

`--kernels ttk-f32`: the step with our fp32 backward kernels too (writes
`cortexm_step_profile_ttk_f32.{json,md}`). `--build-dir`: keep (or, when it holds one, reuse) the compiled program there. Writes
`bench/results/cortexm_step_profile.json` and `.md`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cortexm_int8_step as step  # noqa: E402

RESULTS = step.RESULTS
INSTR_PER_TICK = step.INSTR_PER_TICK

#: kind of a command, in the order of the tables: (kind, test on (op, export name))
KINDS = (
    ("ours: first conv (int8)", lambda op, n: n.startswith("ttk_conv_s8_")),
    ("ours: pointwise (int8)", lambda op, n: n.startswith("ttk_conv1x1_s8_")),
    ("ours: depthwise (int8)", lambda op, n: n.startswith("ttk_dwconv_s8_")),
    ("ours: 1x1 input gradient (fp32)", lambda op, n: n.startswith("ttk_conv1x1_grad_input_f32_")),
    ("ours: 1x1 weight gradient (fp32)", lambda op, n: n.startswith("ttk_conv1x1_grad_weight_f32_")),
    ("ours: depthwise input gradient (fp32)", lambda op, n: n.startswith("ttk_dwconv_grad_input_f32_")),
    ("ours: depthwise weight gradient (fp32)", lambda op, n: n.startswith("ttk_dwconv_grad_weight_f32_")),
    ("IREE fp32 matmul/conv (backward)", lambda op, n: re.search(r"_(matmul_like|matvec_like|conv)_[\dx]+_f32", n)),
    ("IREE fp32 reduction (backward)", lambda op, n: re.search(r"_reduction_[\dx]+_f32", n)),
    ("IREE elementwise / requant / other generic", lambda op, n: re.search(r"_(elementwise|generic|reduction)", n)),
    ("IREE transpose (weight packing)", lambda op, n: "_transpose_" in n),
    ("copies (runtime memmove, IREE slow_memcpy)", lambda op, n: op == "copy" or n.endswith("_slow_memcpy")),
    ("fills", lambda op, n: op == "fill"),
    ("other", lambda op, n: True),
)


def kind(op: str, name: str) -> str:
    return next(k for k, test in KINDS if test(op, name))


def macs(name: str) -> int | None:
    """MACs of one command from its kernel's name, None when the name does not say."""
    m = re.match(r"ttk_conv1x1_grad_(input|weight)_f32_(\d+)_(\d+)_(\d+)(_m?\d+)?$", name)  # P F C / P C F x_zero
    if m:
        return math.prod(int(v) for v in m.groups()[1:4])
    # the input gradient: H W C K s; the weight gradient: H W C K s x_zero n_ch [c_g], n_ch channels computed
    m = re.match(r"ttk_dwconv_grad_input_f32_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)$", name) or \
        re.match(r"ttk_dwconv_grad_weight_f32_(\d+)_(\d+)_\d+_(\d+)_(\d+)_m?\d+_(\d+)(?:_\d+)?$", name)
    if m:
        if name.startswith("ttk_dwconv_grad_input"):
            h, w, c, k, s = (int(v) for v in m.groups())
        else:
            h, w, k, s, c = (int(v) for v in m.groups())
        p = (k - 1) // 2
        return ((h + 2 * p - k) // s + 1) * ((w + 2 * p - k) // s + 1) * c * k * k
    m = re.match(r"ttk_(conv1x1|dwconv|conv)_s8_((?:m?\d+_)*m?\d+)$", name)
    if m:
        v = [int(t.replace("m", "-")) for t in m.group(2).split("_")]
        if m.group(1) == "conv1x1":        # P K C_out ...
            return v[0] * v[1] * v[2]
        if m.group(1) == "dwconv":         # H W C K stride pad ...
            h, w, c, k, s, p = v[:6]
            return ((h + 2 * p - k) // s + 1) * ((w + 2 * p - k) // s + 1) * c * k * k
        h, w, ci, co, k, s, p = v[:7]      # conv: H W C_in C_out K stride pad ...
        return ((h + 2 * p - k) // s + 1) * ((w + 2 * p - k) // s + 1) * co * k * k * ci
    m = re.search(r"_(matmul_like|matvec_like|conv)_((?:\d+x)*\d+)_", name)
    return math.prod(int(d) for d in m.group(2).split("x")) if m else None


def command_table(model_c: str, function: str = "train_step") -> list:
    """[(global command index, op, export name or "", bytes of a copy/fill)] of `function`,
    read from the generated command table (schedule_c.emit's C text)."""
    fn = re.search(r'\{"' + function + r'", (\d+)u, (\d+)u,', model_c)
    first, count = int(fn.group(1)), int(fn.group(2))
    def array(ctype: str, suffix: str) -> str:
        start = re.search(rf"{ctype} \w+_{suffix}\[", model_c).start()
        return model_c[start: model_c.index("};", start)]

    table = array("tt_cmd_t", "cmds")
    refs = re.findall(r"\{TT_REGION_\w+, \d+u, \d+u, (\d+)u\}", array("tt_ref_t", "refs"))
    rows = []
    for line in table.splitlines():
        m = re.match(r"\s*\{TT_CMD_(\w+), (\d+)u, .*, (\d+)u, \d+u\},(?: /\* (\S+) \*/)?", line)
        if m:
            op, name = m.group(1).lower(), m.group(4) or ""
            nbytes = int(refs[int(m.group(3))]) if op in ("copy", "fill") else 0
            rows.append((len(rows), op, name, nbytes))
    return rows[first:first + count]


def profile_elf(fw, proj: Path) -> Path:
    """The firmware of `fw` built again with TT_PROFILE_COMMANDS=ON (another build folder)."""
    build = proj / "build-profile"
    toolchain = proj / "tt_runtime" / "toolchains" / "arm-none-eabi.cmake"
    for cmd in (["cmake", "-S", str(proj), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
                 "-DCMAKE_BUILD_TYPE=Release", "-DTT_PROFILE_COMMANDS=ON"],
                ["cmake", "--build", str(build), "-j2"]):
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return build / fw.elf.name


def per_step(output: str) -> list:
    """{command index: ticks} of each training step, from the PROF lines before each STEP line."""
    steps, cur = [], {}
    for line in output.splitlines():
        m = re.match(r"PROF (\d+) (\d+)$", line)
        if m:
            cur[int(m.group(1))] = cur.get(int(m.group(1)), 0) + int(m.group(2))
        elif line.startswith("STEP "):
            steps.append(cur)
            cur = {}
    return steps


def run(hw: int, steps: int, build_dir: Path, kernels: str = "ttk") -> dict:
    from tinytrain.lowering.cortexm import dispatch_memory
    from tinytrain.lowering.cortexm.firmware import load_firmware, run_qemu

    proj = build_dir / "firmware"
    if not (proj / "firmware.json").exists():
        t0 = time.time()
        prog = step.build(hw, kernels, None, build_dir)
        (build_dir / "linalg_device.mlir").write_text(prog.stages["linalg_device"])
        print(f"[profile] built in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    fw = load_firmware(proj)
    xs, ys = step.samples(hw, steps)
    plain = run_qemu(fw, build_dir / "run-plain", train=(xs, ys), timeout=3600)
    prof_fw = dataclasses.replace(fw, elf=profile_elf(fw, proj))
    prof = run_qemu(prof_fw, build_dir / "run-profile", train=(xs, ys), timeout=3600)
    for r in (plain, prof):
        if r.returncode != 0 or len(r.steps) != steps:
            raise RuntimeError(f"firmware failed\n{r.output[-2000:]}")
    same = all(np.array_equal(a.view(np.uint8), b.view(np.uint8)) for (pa, _), (pb, _) in zip(plain.trace, prof.trace)
               for a, b in zip(pa, pb)) and [la for la, _ in plain.steps] == [lb for lb, _ in prof.steps]
    cmds = command_table((proj / "model_model.c").read_text())
    ticks = per_step(prof.output)
    layers = {n: i.layers for n, i in dispatch_memory.read_sources(build_dir / "static" / "sources").items()}
    device = (build_dir / "linalg_device.mlir").read_text()
    cut = re.search(r'tinytrain.patch_stage = \{cut = "([^"]+)"', device)
    stage_end = -1
    for pos, (_, op, name, _) in enumerate(cmds):
        pad0 = re.match(r"ttk_(dw)?conv_s8_", name) and name.split("_")[8 if name.startswith("ttk_dw") else 9] == "0"
        if pad0 or (cut and cut.group(1) in layers.get(name, [])):
            stage_end = pos
    rows = []
    for pos, (c, op, name, nbytes) in enumerate(cmds):
        instr = [t.get(c, 0) * INSTR_PER_TICK for t in ticks]
        n = macs(name)
        rows.append({"command": c, "op": op, "kernel": name, "kind": kind(op, name),
                     "patch_stage": pos <= stage_end, "layers": layers.get(name, []),
                     "instructions": int(np.median(instr)), "macs": n, "bytes": nbytes or None})
    plain_instr = [t * INSTR_PER_TICK for _, t in plain.steps]
    return {"model": step.MODEL, "scheme": step.SCHEME, "input_hw": hw, "target": step.TARGET, "kernels": kernels,
            "steps": steps, "patch_stage_cut": cut.group(1) if cut else None,
            "step_instructions_unprofiled": int(np.median(plain_instr)),
            "step_instructions_profiled": int(np.median([t * INSTR_PER_TICK for _, t in prof.steps])),
            "profiled_state_and_loss_identical": bool(same), "commands": rows}


def groups(rows: list) -> list:
    out = defaultdict(lambda: {"commands": 0, "instructions": 0, "macs": 0, "macs_known": 0})
    for r in rows:
        g = out[(r["patch_stage"], r["kind"])]
        g["commands"] += 1
        g["instructions"] += r["instructions"]
        if r["macs"]:
            g["macs"] += r["macs"]
            g["macs_known"] += r["instructions"]
    order = [k for k, _ in KINDS]
    return [{"patch_stage": st, "kind": k, **v} for (st, k), v in
            sorted(out.items(), key=lambda kv: (not kv[0][0], order.index(kv[0][1])))]


def _rate(instr: int, n: int) -> str:
    return f"{instr / n:.2f}" if n else "-"


def write(doc: dict, cmd: str) -> str:
    rows = doc["commands"]
    total = sum(r["instructions"] for r in rows)
    grp = groups(rows)
    doc["groups"] = grp
    md = ["# Where the int8 training step's instructions go (Cortex-M7, QEMU -icount)", "",
          f"Command: `{cmd}`. {doc['model']}, {doc['input_hw']}x{doc['input_hw']}, scheme `{doc['scheme']}`, "
          f"`kernels=\"{doc['kernels']}\"`, default patches (cut at `{doc['patch_stage_cut']}`): the step of "
          "`bench/cortexm_int8_step.py` with these kernels, its firmware built again with `TT_PROFILE_COMMANDS=ON` "
          "(SysTick around each command of `@train_step`, 40 instructions per tick). Median of "
          f"{doc['steps']} steps.", "",
          f"- step without the profile hook: **{doc['step_instructions_unprofiled']:,}** instructions; "
          f"sum of the profiled commands: {total:,} ({total / doc['step_instructions_unprofiled']:.1%}; the rest "
          "is the runtime's loop, the loss/step bookkeeping and the timer reads)",
          f"- state and loss of the profiled firmware identical to the plain one: "
          f"**{doc['profiled_state_and_loss_identical']}**", "",
          "## By kind", "",
          "| stage | kind | commands | instructions | share of the step | MACs (known) | instr/MAC |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for g in grp:
        md.append(f"| {'patch-stage' if g['patch_stage'] else 'rest'} | {g['kind']} | {g['commands']} | "
                  f"{g['instructions']:,} | {g['instructions'] / doc['step_instructions_unprofiled']:.1%} | "
                  f"{g['macs']:,} | {_rate(g['macs_known'], g['macs'])} |")
    md += ["", "## The 40 most expensive commands", "",
           "| # | kind | kernel | layers (IREE's locations) | instructions | MACs | instr/MAC |",
           "|---:|---|---|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["instructions"])[:40]:
        md.append(f"| {r['command']} | {r['kind']}{' (patch)' if r['patch_stage'] else ''} | "
                  f"`{r['kernel'] or r['op']}` | {', '.join(r['layers'][:3])} | {r['instructions']:,} | "
                  f"{r['macs'] or '-'} | {_rate(r['instructions'], r['macs'] or 0)} |")
    md += ["", "Every command is in `cortexm_step_profile.json` (`commands`).", ""]
    return "\n".join(md)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--kernels", default="ttk", help="the firmware's kernels (compile_training's kernels=)")
    ap.add_argument("--build-dir", type=Path, default=None,
                    help="keep the compiled program here (reused when it holds one)")
    ap.add_argument("--rewrite", action="store_true",
                    help="no measurement: recompute the MACs and rewrite the .md of the --kernels run from its JSON")
    args = ap.parse_args(argv)
    name = "cortexm_step_profile" + ("" if args.kernels == "ttk" else "_" + args.kernels.replace("-", "_"))
    if args.rewrite:
        doc = json.loads((RESULTS / f"{name}.json").read_text())
        for r in doc["commands"]:
            r["macs"] = macs(r["kernel"])
        (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        (RESULTS / f"{name}.md").write_text(write(doc, doc["command"]))
        return 0
    with tempfile.TemporaryDirectory(prefix="tinytrain-profile-") as tmp:
        doc = run(args.hw, args.steps, (args.build_dir or Path(tmp)).resolve(), args.kernels)
    cmd = ".venv/bin/python bench/cortexm_step_profile.py" + (f" --hw {args.hw}" if args.hw != 128 else "") + \
        (f" --steps {args.steps}" if args.steps != 2 else "") + \
        (f" --kernels {args.kernels}" if args.kernels != "ttk" else "")
    doc = {"command": cmd, "date": time.strftime("%Y-%m-%d"), **doc}
    md = write(doc, cmd)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
    return 0 if doc["profiled_state_and_loss_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
