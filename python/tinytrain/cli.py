"""`tinytrain` command line.

    tinytrain compile model.py -o out/ [--input-shape 1,3,64,64] [--trainable all|a,b]
                               [--lr 0.01] [--target host] [--dump-ir DIR] [-v]

`model.py` defines `model` (a `torch.nn.Module`, or a function returning one) and, unless
`--input-shape` is given, `example_input` (a tensor, or a function returning one). The output
folder gets `model.vmfb`, the MLIR of every stage under `ir/`, the trainable parameters under
`params/` and `train_step.flags`, with which `iree-run-module --flagfile=train_step.flags`
(run inside the folder, after writing `input.npy` and `labels.npy`) performs one training step
in place and prints the loss.
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
        prog = compile(model.eval(), x, trainable=trainable, lr=args.lr, target=args.target,
                       dump_ir=args.dump_ir, verbose=args.verbose)
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
    return 0


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
    c.add_argument("--dump-ir", metavar="DIR", help="write each stage's MLIR to DIR")
    c.add_argument("-v", "--verbose", action="store_true", help="print progress")
    c.set_defaults(fn=_cmd_compile)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
