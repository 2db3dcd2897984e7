"""`tinytrain` command line.

    tinytrain compile model.py -o out/ [--input-shape 1,3,64,64] [--trainable all|a,b]
                               [--lr 0.01] [--target host|cortex-m4|cortex-m7] [--sram-kb 256]
                               [--dump-ir DIR] [-v]
    tinytrain run-qemu out/<target>/firmware [--train train.npz] [--eval eval.npz]

`model.py` defines `model` (a `torch.nn.Module`, or a function returning one) and, unless
`--input-shape` is given, `example_input` (a tensor, or a function returning one). The output
folder gets `model.vmfb`, the MLIR of every stage under `ir/`, the trainable parameters under
`params/` and `train_step.flags`, with which `iree-run-module --flagfile=train_step.flags`
(run inside the folder, after writing `input.npy` and `labels.npy`) performs one training step
in place and prints the loss.

With `--target cortex-m4` (QEMU mps2-an386) or `cortex-m7` (mps2-an500) the folder also gets
`<target>/firmware/`: a CMake project (runtime, board support, generated schedule, IREE kernel
object, arm-none-eabi toolchain file) and its built `firmware.elf`. `tinytrain run-qemu` runs it;
the `.npz` files hold `x` (NHWC float32 images, one per leading index) and `y` (int labels), and
the firmware streams them over semihosting, printing one `STEP` line per training step, `EVAL`
lines (accuracy before/after) and a `MEM` line with the measured peak SRAM.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import torch

from tinytrain.compiler import TARGETS, compile
from tinytrain.errors import CompileError


def _load_model(path: str, entry: str, input_shape: str | None):
    ns = runpy.run_path(path, run_name="__tinytrain__")
    if entry not in ns:
        raise SystemExit(f"tinytrain: {path} defines no '{entry}' (a torch.nn.Module or a function "
                         "returning one); use --entry to name it")
    model = ns[entry]
    if not isinstance(model, torch.nn.Module) and callable(model):
        model = model()
    if not isinstance(model, torch.nn.Module):
        raise SystemExit(f"tinytrain: '{entry}' in {path} is not a torch.nn.Module")
    if input_shape:
        try:
            shape = [int(d) for d in input_shape.split(",")]
        except ValueError:
            raise SystemExit(f"tinytrain: --input-shape must be like 1,3,64,64, got '{input_shape}'") from None
        x = torch.randn(*shape)
    elif "example_input" in ns:
        x = ns["example_input"]
        x = x() if callable(x) and not isinstance(x, torch.Tensor) else x
    else:
        raise SystemExit(f"tinytrain: {path} defines no 'example_input'; pass --input-shape N,C,H,W")
    return model, x


def _cmd_compile(args) -> int:
    model, x = _load_model(args.model, args.entry, args.input_shape)
    trainable = "all" if args.trainable == "all" else [t for t in args.trainable.split(",") if t]
    try:
        build_dir = Path(args.output) / args.target if args.target != "host" else None
        prog = compile(model.eval(), x, trainable=trainable, lr=args.lr, target=args.target,
                       dump_ir=args.dump_ir, sram_kb=args.sram_kb, build_dir=build_dir,
                       verbose=args.verbose)
    except CompileError as e:
        print(f"tinytrain: error: {e}", file=sys.stderr)
        if e.ir_text and args.output:
            Path(args.output).mkdir(parents=True, exist_ok=True)
            repro = Path(args.output) / f"failed-{e.stage or 'stage'}.mlir"
            repro.write_text(e.ir_text)
            print(f"tinytrain: the IR that failed is in {repro}", file=sys.stderr)
        return 1
    out = prog.save(args.output)
    print(f"tinytrain: wrote {out}/model.vmfb ({len(prog.vmfb)} bytes), {len(prog.trainable)} "
          f"trainable tensors, input NCHW {list(prog.input_shape)}, {prog.num_classes} classes")
    if prog.firmware is not None:
        fw = prog.firmware
        print(f"tinytrain: firmware project {fw.project_dir} ({fw.board}): {fw.elf.name} with "
              f"flash {fw.text + fw.data} B, static SRAM {fw.data + fw.bss} B of {fw.sram_kb} KB; "
              f"run it with: tinytrain run-qemu {fw.project_dir}")
    return 0


def _cmd_run_qemu(args) -> int:
    from tinytrain.lowering.cortexm.firmware import main as firmware_main

    argv = ["run-qemu", args.project, "--timeout", str(args.timeout)]
    for flag in ("train", "eval", "workdir"):
        if getattr(args, flag):
            argv += [f"--{flag}", str(getattr(args, flag))]
    return firmware_main(argv)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tinytrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="compile a model's training step")
    c.add_argument("model", help="Python file defining `model` (and `example_input`)")
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.add_argument("--entry", default="model", help="name of the model in the file (default: model)")
    c.add_argument("--input-shape", help="static NCHW input shape, e.g. 1,3,64,64")
    c.add_argument("--trainable", default="all", help="'all' or comma-separated parameter names")
    c.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    c.add_argument("--target", default="host", choices=TARGETS, help="compilation target")
    c.add_argument("--sram-kb", type=int, default=256, help="SRAM budget of Cortex-M targets (default 256)")
    c.add_argument("--dump-ir", metavar="DIR", help="write each stage's MLIR to DIR")
    c.add_argument("-v", "--verbose", action="store_true", help="print progress")
    c.set_defaults(fn=_cmd_compile)
    r = sub.add_parser("run-qemu", help="run a compiled Cortex-M firmware project in QEMU")
    r.add_argument("project", help="the firmware folder written by `tinytrain compile --target ...`")
    r.add_argument("--train", help=".npz with x (NHWC float32) and y (labels) to train on")
    r.add_argument("--eval", help=".npz with x and y to measure accuracy on, before and after")
    r.add_argument("--workdir", help="where the sample files go (default: PROJECT/run)")
    r.add_argument("--timeout", type=float, default=600.0, help="seconds before QEMU is stopped")
    r.set_defaults(fn=_cmd_run_qemu)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
