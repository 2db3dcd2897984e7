"""`tinytrain` command line.

    tinytrain compile model.py -o out/ [--input-shape 1,3,64,64] [--trainable all|a,b | --sparse scheme.json]
                               [--lr 0.01] [--momentum 0.9] [--target host|cortex-m4|cortex-m7] [--sram-kb 256]
                               [--dump-ir DIR] [--memory-report DIR] [-v]
                               [--quantize int8 --calibration images.npy [--int8-classifier] [--no-qas]
                                [--kernels iree|ttk|ttk-f32]]
    tinytrain run-qemu out/<target>/firmware [--train train.npz] [--eval eval.npz]
                       [--checkpoint-every N] [--nvm FILE] [--restore]

`model.py` defines `model` (a `torch.nn.Module`, or a function returning one) and, unless
`--input-shape` is given, `example_input` (a tensor, or a function returning one). The output
folder gets `model.vmfb`, the MLIR of every stage under `ir/`, the trainable parameters under
`params/` and `train_step.flags`, with which `iree-run-module --flagfile=train_step.flags`
(run inside the folder, after writing `input.npy` and `labels.npy`) performs one training step
in place and prints the loss.

`--quantize int8` quantizes the model after training (post-training int8: per-channel int8
weights, int8 activations whose ranges are observed on `--calibration`, a `.npy` of NCHW float
images [K, C, H, W] like the model's input) and compiles the training step of the int8 graph
(int8 forward, fp32 backward, integer write-back, QAS unless `--no-qas`); the classifier stays
fp32 unless `--int8-classifier`. `--kernels ttk` (with `--quantize int8` and a Cortex-M target)
runs the firmware's int8 convolutions on our kernels (runtime/kernels, SMLAD; bit-identical to
IREE's, the default `iree`), `--kernels ttk-f32` also the dense 1x1 input and weight gradients
of the backward pass on our fp32 kernels (equal to IREE's to float rounding).

With `--target cortex-m4` (QEMU mps2-an386) or `cortex-m7` (mps2-an500) the folder also gets
`<target>/firmware/`: a CMake project (runtime, board support, generated schedule, IREE kernel
object, arm-none-eabi toolchain file) and its built `firmware.elf`. `tinytrain run-qemu` runs it;
the `.npz` files hold `x` (NHWC float32 images, one per leading index) and `y` (int labels), and
the firmware streams them over semihosting, printing one `STEP n loss=... ticks=...` line per
training step, `EVAL` lines (accuracy before/after) and a `MEM` line with the measured peak SRAM.
`--memory-report DIR` writes the compiler's memory report of the step (`tinytrain.memory_report`:
live SRAM per dispatch and layer as `memory_report.md`/`.json` and a plot `memory_report.svg`;
its peak is the plan the `MEM` line's `sram_peak` measures).
The sample files are checked (image size and dtype, integer labels in range, one per image)
before QEMU starts. `--checkpoint-every N` saves the trained state into the board's NVM
(power-loss-safe A/B slots, `CKPT save ...` lines) every N accepted steps, `--restore` restores
the newest checkpoint at boot and resumes on the samples not yet learned, `--nvm FILE` keeps the
NVM in FILE (default: tt_nvm.bin in the work folder); `prog.load_checkpoint(FILE)` loads what
the device learned on the host. User errors print one `tinytrain: error: ...` line (`-v` adds the traceback).
"""

from __future__ import annotations

import argparse
import json
import re
import runpy
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np

# torch and the compiler are imported by the commands that need them (`compile`): `run-qemu`
# starts without their seconds of imports
from tinytrain.entry import MODEL_META, TARGETS, check_images, check_labels
from tinytrain.errors import CompileError
from tinytrain.lowering.conversions.tinytrain_to_linalg.kernels import KERNELS


class UsageError(Exception):
    """A user error the CLI reports as one line (the traceback only with -v)."""


#: What the CLI reports as `tinytrain: error: ...` without a traceback (unless -v): every error
#: caused by the user's files, arguments or model. Anything else is an internal error.
USER_ERRORS = (UsageError, CompileError, ValueError, TypeError, KeyError, OSError, TimeoutError)


def _load_model(path: str, entry: str, input_shape: str | None):
    import torch

    if not Path(path).is_file():
        raise UsageError(f"model file {path} not found (pass a Python file that defines `{entry}`)")
    shape = _parse_shape(input_shape) if input_shape else None
    try:
        ns = runpy.run_path(path, run_name="__tinytrain__")
    except Exception as e:  # noqa: BLE001 - the user's file failed: say where, no traceback
        raise UsageError(f"running {path} failed: {type(e).__name__}: {e} (-v shows the "
                         "traceback)") from e
    if entry not in ns:
        raise UsageError(f"{path} defines no '{entry}' (a torch.nn.Module or a function returning "
                         "one); use --entry to name it")
    model = ns[entry]
    if not isinstance(model, torch.nn.Module) and callable(model):
        model = model()
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"'{entry}' in {path} is not a torch.nn.Module")
    if shape is not None:
        x = torch.randn(*shape)
    elif "example_input" in ns:
        x = ns["example_input"]
        x = x() if callable(x) and not isinstance(x, torch.Tensor) else x
    else:
        raise UsageError(f"{path} defines no 'example_input'; pass --input-shape N,C,H,W")
    return model, x


def _parse_shape(text: str) -> list[int]:
    try:
        shape = [int(d) for d in text.split(",")]
    except ValueError:
        raise UsageError(f"--input-shape must be like 1,3,64,64, got '{text}'") from None
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise UsageError(f"--input-shape must be 4 positive sizes N,C,H,W (e.g. 1,3,64,64), got "
                         f"'{text}'")
    return shape


def _prepare_output(out: Path) -> Path | None:
    """Make sure `out` is a writable folder before compiling; returns the topmost folder this
    created (removed again if the compile fails), or None."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    top = None
    for p in [out, *out.parents]:
        if p.exists():
            break
        top = p
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".tinytrain-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
        raise UsageError(f"-o {out}: cannot write there ({e.strerror or e}); choose a writable "
                         "folder") from None
    return top


def _is_ours(target_dir: Path) -> bool:
    """A `<target>/` folder written by an earlier `tinytrain compile` into the same -o folder."""
    return (target_dir / "firmware" / "firmware.json").is_file() or (target_dir / "static").is_dir()


def _quantize_args(args) -> dict:
    """`compile()`'s quantization keywords from `--quantize/--calibration/--int8-classifier/--no-qas`."""
    if args.quantize is None:
        for flag, given in (("--calibration", args.calibration is not None),
                            ("--int8-classifier", args.int8_classifier), ("--no-qas", args.no_qas)):
            if given:
                raise UsageError(f"{flag} applies to an int8 model: add --quantize int8")
        return {}
    if args.calibration is None:
        raise UsageError("--quantize int8 needs --calibration FILE.npy: NCHW float images [K, C, H, W] "
                         "whose activation ranges set the int8 scales")
    if not Path(args.calibration).is_file():
        raise UsageError(f"--calibration {args.calibration}: file not found")
    try:
        images = np.load(args.calibration, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - npy format errors of the user's file
        raise UsageError(f"--calibration {args.calibration}: not a readable .npy file ({type(e).__name__}: "
                         f"{e})") from None
    return {"quantize": args.quantize, "calibration": images, "qas": not args.no_qas,
            "int8_classifier": args.int8_classifier}


def _cmd_compile(args) -> int:
    from tinytrain.compiler import compile

    model, x = _load_model(args.model, args.entry, args.input_shape)
    quant = _quantize_args(args)
    if args.memory_report is not None and args.target == "host":
        raise UsageError("--memory-report needs --target cortex-m4 or cortex-m7: on the host IREE's "
                         "runtime allocates buffers dynamically, so there is no static plan to report")
    trainable = "all" if args.trainable == "all" else [t for t in args.trainable.split(",") if t]
    out = Path(args.output).resolve()
    created = _prepare_output(out)
    build_dir = out / args.target if args.target != "host" else None
    # An earlier firmware of this target is set aside, not mixed with the new one, and put back
    # if this compile fails.
    previous = out / f".{args.target}.previous"
    if build_dir is not None and build_dir.exists():
        shutil.rmtree(previous, ignore_errors=True)
        build_dir.rename(previous)
    try:
        prog = compile(model.eval(), x, trainable=trainable, lr=args.lr, momentum=args.momentum,
                       target=args.target,
                       dump_ir=args.dump_ir, sram_kb=args.sram_kb, build_dir=build_dir,
                       verbose=args.verbose, sparse=args.sparse, kernels=args.kernels, **quant)
    except BaseException as e:
        if build_dir is not None:
            shutil.rmtree(build_dir, ignore_errors=True)
            if previous.exists():
                previous.rename(build_dir)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(e, CompileError) and e.ir_text:
            out.mkdir(parents=True, exist_ok=True)
            repro = out / f"failed-{e.stage or 'stage'}.mlir"
            repro.write_text(e.ir_text)
            print(f"tinytrain: the IR that failed is in {repro}", file=sys.stderr)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    # Files of an earlier model in the same folder would be stale next to the new one.
    for t in TARGETS:
        if t not in ("host", args.target) and _is_ours(out / t):
            shutil.rmtree(out / t)
    for f in out.glob("failed-*.mlir"):
        f.unlink()
    prog.save(out)
    print(f"tinytrain: wrote {out}/model.vmfb ({len(prog.vmfb)} bytes), {len(prog.trainable)} "
          f"trainable tensors, input NCHW {list(prog.input_shape)}, {prog.num_classes} classes")
    print(prog.state_report().table())
    if prog.firmware is not None:
        fw = prog.firmware
        print(f"tinytrain: firmware project {fw.project_dir} ({fw.board}): {fw.elf.name} with "
              f"flash {fw.text + fw.data} B, static SRAM {fw.data + fw.bss} B of {fw.sram_kb} KB; "
              f"run it with: tinytrain run-qemu {fw.project_dir}")
    if args.memory_report is not None:
        rep = prog.memory_report()
        paths = rep.write(Path(args.memory_report).resolve())
        print(f"tinytrain: memory report {', '.join(str(p) for p in paths)}")
        for line in rep.summary():
            print(f"  {line}")
    return 0


def _firmware_io(project: Path, input_dtype: str) -> tuple[tuple[int, int, int] | None, int, int]:
    """(C, H, W) or None, elements per image, number of classes of a firmware project: from the
    `model.json` the compiler writes there, else from the sizes in its generated header."""
    meta = project / MODEL_META
    if meta.is_file():
        m = json.loads(meta.read_text())
        n, h, w, c = m["input_shape_nhwc"]
        return (c, h, w), h * w * c, int(m["num_classes"])
    for hdr in project.glob("*.h"):
        sizes = dict(re.findall(r"#define \w+?_(INPUT|OUTPUT)_SIZE (\d+)u", hdr.read_text()))
        if "INPUT" in sizes and "OUTPUT" in sizes:
            item = np.dtype(input_dtype).itemsize
            return None, int(sizes["INPUT"]) // item, int(sizes["OUTPUT"]) // 4
    raise UsageError(f"{project} has no {MODEL_META} and no generated model header; rebuild it "
                     "with `tinytrain compile --target ...`")


def _load_samples(path: str | None, flag: str, chw, elems: int, classes: int):
    """The (images, labels) of an `.npz` for run_qemu, checked like the host API checks them."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise UsageError(f"{flag} {path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - zip/npy format errors of the user's file
        raise UsageError(f"{flag} {path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    if "x" not in data or "y" not in data:
        raise UsageError(f"{flag} {path} holds {sorted(data) or 'nothing'}; it needs x (NHWC float32 "
                         "images [K, H, W, C]) and y (K integer labels), e.g. np.savez(f, x=x, y=y)")
    x, y = data["x"], data["y"]
    try:
        if chw is not None:
            xs = check_images(x, chw, what="x", layout="NHWC")
        else:
            if not np.issubdtype(x.dtype, np.floating):
                raise TypeError(f"x must be floating-point values, got {x.dtype}")
            if x.ndim < 2 or x.shape[0] == 0 or int(np.prod(x.shape[1:])) != elems:
                raise ValueError(f"x must hold K images of {elems} values each, got {list(x.shape)}")
            xs = np.ascontiguousarray(x, dtype=np.float32)
        ys = check_labels(y, len(xs), classes, what="y")
    except (ValueError, TypeError) as e:
        raise UsageError(f"{flag} {path}: {e}") from None
    return list(xs), [int(v) for v in ys]


def _float_losses(output: str) -> str:
    """The firmware prints each loss as its float32 bit pattern; show the value (9 significant
    digits: the float32 exactly)."""
    def repl(m):
        loss = float(np.uint32(int(m.group(2))).view(np.float32))
        return f"{m.group(1)}loss={loss:.9g}"
    return re.sub(r"(?m)^(STEP \d+ )loss_bits=(\d+)", repl, output)


def _checkpoint_config(args):
    """The harness's checkpointing from `--checkpoint-every/--restore/--nvm` (None: off)."""
    from tinytrain.lowering.cortexm.firmware import CheckpointConfig

    every = args.checkpoint_every
    if every is not None and every < 1:
        raise UsageError(f"--checkpoint-every {every}: must be a number of steps >= 1")
    if every is None and not args.restore:
        if args.nvm is not None:
            raise UsageError("--nvm FILE is the board's checkpoint memory: add --checkpoint-every N "
                             "(save) and/or --restore (resume from it)")
        return None
    if args.nvm is not None and Path(args.nvm).is_dir():
        raise UsageError(f"--nvm {args.nvm}: is a folder; pass the NVM image file")
    if args.restore and args.nvm is not None and not Path(args.nvm).exists():
        raise UsageError(f"--restore: the NVM image {args.nvm} does not exist (nothing to restore); "
                         "write one first with --checkpoint-every N --nvm FILE")
    return CheckpointConfig(every=every or 0, restore=bool(args.restore), page_count=0)


def _cmd_run_qemu(args) -> int:
    from tinytrain.lowering.cortexm.firmware import load_firmware, run_qemu

    project = Path(args.project).resolve()  # QEMU runs in the work folder: paths must be absolute
    if not (project / "firmware.json").is_file():
        raise UsageError(f"{args.project} is not a firmware project (no firmware.json); pass the "
                         "folder `tinytrain compile --target cortex-m4 -o OUT` printed: OUT/cortex-m4/firmware")
    fw = load_firmware(project)
    if not fw.elf.is_file():
        raise UsageError(f"{fw.elf} is missing; rebuild the project with `tinytrain compile --target ...`")
    chw, elems, classes = _firmware_io(project, fw.input_dtype)
    train = _load_samples(args.train, "--train", chw, elems, classes)
    evaluate = _load_samples(args.eval, "--eval", chw, elems, classes)
    wd = Path(args.workdir).resolve() if args.workdir else project / "run"
    ckpt = _checkpoint_config(args)
    res = run_qemu(fw, wd, train=train, evaluate=evaluate, timeout=args.timeout, checkpoint=ckpt,
                   nvm=args.nvm)
    sys.stdout.write(_float_losses(res.output))
    if res.returncode != 0:
        print(f"tinytrain: error: the firmware stopped with exit status {res.returncode} (see the "
              "TT error line above)", file=sys.stderr)
    return res.returncode


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
    c.add_argument("--sparse", metavar="SCHEME.json",
                   help="sparse-update scheme instead of --trainable: {\"parameters\": {name: ratio}}, ratio "
                        "1/8, 1/4, 1/2 or 1 of a weight's output channels (see tinytrain.sparse)")
    c.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    c.add_argument("--momentum", type=float, default=0.0,
                   help="SGD momentum (PyTorch's rule; default 0 = plain SGD); > 0 keeps one f32 "
                        "momentum buffer per trained parameter as trained state")
    c.add_argument("--target", default="host", choices=TARGETS, help="compilation target")
    c.add_argument("--sram-kb", type=int, default=256, help="SRAM budget of Cortex-M targets (default 256)")
    c.add_argument("--dump-ir", metavar="DIR", help="write each stage's MLIR to DIR")
    c.add_argument("--memory-report", metavar="DIR",
                   help="with a Cortex-M target: write the SRAM per dispatch of the training step "
                        "(memory_report.md, .json, .svg: live tensors, persistent parts, the plan's peak)")
    c.add_argument("--quantize", choices=("int8",),
                   help="post-training quantization of the model (int8), then the int8 graph's training step")
    c.add_argument("--calibration", metavar="FILE.npy",
                   help="with --quantize: NCHW float images [K, C, H, W] whose activation ranges set the int8 scales")
    c.add_argument("--int8-classifier", action="store_true",
                   help="with --quantize: quantize the classifier too (default: it stays fp32)")
    c.add_argument("--no-qas", action="store_true",
                   help="with --quantize: no quantization-aware scaling of the int8 gradients")
    c.add_argument("--kernels", default="iree", choices=KERNELS,
                   help="with --quantize int8 and a Cortex-M target: the firmware's kernels, 'iree' "
                        "(IREE's generated code, default), 'ttk' (our int8 conv kernels, "
                        "bit-identical) or 'ttk-f32' (also our fp32 kernels for the dense 1x1 input "
                        "and weight gradients: equal to float rounding)")
    c.add_argument("-v", "--verbose", action="store_true", help="print progress (and tracebacks)")
    c.set_defaults(fn=_cmd_compile)
    r = sub.add_parser("run-qemu", help="run a compiled Cortex-M firmware project in QEMU")
    r.add_argument("project", help="the firmware folder written by `tinytrain compile --target ...`")
    r.add_argument("--train", help=".npz with x (NHWC float32) and y (labels) to train on")
    r.add_argument("--eval", help=".npz with x and y to measure accuracy on, before and after")
    r.add_argument("--workdir", help="where the sample files go (default: PROJECT/run)")
    r.add_argument("--timeout", type=float, default=600.0, help="seconds before QEMU is stopped")
    r.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="save a power-loss-safe checkpoint into the board's NVM every N steps")
    r.add_argument("--restore", action="store_true",
                   help="restore the newest checkpoint at boot and resume on the samples not yet "
                        "learned")
    r.add_argument("--nvm", metavar="FILE",
                   help="the board's NVM image (default: tt_nvm.bin in the work folder)")
    r.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of errors")
    r.set_defaults(fn=_cmd_run_qemu)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"tinytrain: error: {msg}", file=sys.stderr)
        if args.verbose:
            traceback.print_exception(e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
