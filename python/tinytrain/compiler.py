"""`tinytrain.compile`: PyTorch model -> training program (host `.vmfb` or Cortex-M firmware).

Pipeline (each stage's IR is kept in `CompiledModel.stages` and written by `save`/`--dump-ir`):

    import      torch-mlir FX import -> tinytrain @forward (NHWC, BN folded)
    autodiff    @train_step / @predict (/ @gradients) on the tinytrain dialect
    linalg      linalg-on-tensors, frozen weights inlined as constants
    -> iree-compile (llvm-cpu) -> model.vmfb
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tinytrain.errors import CompileError
from tinytrain.lowering.host.iree_host import HostModule, compile_host, to_numpy
from tinytrain.lowering.conversions.tinytrain_to_linalg import lower_to_linalg
from tinytrain.lowering.conversions.torch_to_tinytrain import import_model, to_torch_layout
from tinytrain.pipeline import run_pipeline
from tinytrain.transforms.autodiff import AutodiffPass

__all__ = ["compile", "CompiledModel", "TARGETS"]

#: "host": an IREE llvm-cpu `.vmfb` for this machine. "cortex-m4" / "cortex-m7": additionally a
#: bare-metal firmware project for QEMU's mps2-an386 / mps2-an500 (static IREE kernels, our C
#: runtime, the SRAM budget enforced at compile time and by the linker).
TARGETS = ("host", "cortex-m4", "cortex-m7")


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(f"[tinytrain] {msg}", file=sys.stderr, flush=True)


def compile(model: torch.nn.Module, example_input: torch.Tensor, *, trainable="all", lr: float = 0.01,
            target: str = "host", gradients: bool = False, dump_ir: str | Path | None = None,
            sram_kb: int = 256, build_dir: str | Path | None = None,
            verbose: bool = False) -> "CompiledModel":
    """Compile `model` into a training program.

    Args:
      model: a `torch.nn.Module` in eval mode (BatchNorm is folded with its running statistics),
        or a `torch.export.ExportedProgram` with static shapes.
      example_input: a float32 NCHW tensor; its shape (batch included) is compiled in statically.
      trainable: "all" or an iterable of parameter names (after BN folding a conv followed by BN
        has parameters `<conv>.weight` and `<conv>.bias`). Every other parameter is frozen into
        the program as a constant.
      lr: SGD learning rate.
      target: "host" (IREE llvm-cpu `.vmfb` for this machine), or "cortex-m4" / "cortex-m7":
        the host `.vmfb` (a bit-exact reference on the M4) plus a firmware project built in
        `build_dir` (`prog.firmware`), run with `prog.run_qemu(...)`.
      sram_kb: SRAM budget of the Cortex-M targets (256 by default; the STM32F746 has 320).
      build_dir: where the firmware project goes (default: a new temporary folder).
      gradients: also compile `@gradients` (the backward pass without the update).
      dump_ir: directory to write each stage's MLIR to.
      verbose: print progress (stage and time) to stderr.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target '{target}'; supported targets: {', '.join(TARGETS)}")
    if target != "host" and tuple(example_input.shape[:1]) != (1,):
        raise ValueError(f"target '{target}' trains with batch size 1 (as the paper); the example "
                         f"input has batch {example_input.shape[0]}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    stages: dict[str, str] = {}
    t0 = time.time()
    _log(verbose, "importing the model with torch-mlir")
    imported = import_model(model, example_input)
    stages["import"] = str(imported.module)
    if trainable != "all" and not isinstance(trainable, str):
        trainable = list(trainable)
    _log(verbose, "autodiff: building train_step and predict")
    module = imported.module
    names = ("all",) if trainable == "all" else tuple(trainable)
    run_pipeline(module, [AutodiffPass(trainable=names, lr=float(lr), gradients=bool(gradients))],
                 stage="autodiff")
    stages["autodiff"] = str(module)
    train_names = _train_order(module)
    _log(verbose, "lowering to linalg")
    linalg = lower_to_linalg(module, imported.params)
    stages["linalg"] = linalg
    if dump_ir is not None:
        _write_stages(Path(dump_ir), stages)
    _log(verbose, f"iree-compile (llvm-cpu, host) ... {time.time() - t0:.1f}s so far")
    vmfb = compile_host(linalg)
    prog = CompiledModel(imported, train_names, lr, stages, vmfb, has_gradients=bool(gradients))
    if target != "host":
        _log(verbose, f"iree-compile ({target}, static library) + firmware build "
                      f"... {time.time() - t0:.1f}s so far")
        prog.firmware = _build_firmware(prog, target, sram_kb, build_dir)
    _log(verbose, f"done in {time.time() - t0:.1f}s")
    return prog


def _build_firmware(prog: "CompiledModel", target: str, sram_kb: int, build_dir):
    import tempfile

    from tinytrain.lowering.cortexm.firmware import FirmwareBuildError, compile_firmware
    from tinytrain.lowering.cortexm.iree_static import SramBudgetError

    out = Path(build_dir).resolve() if build_dir is not None else Path(tempfile.mkdtemp(prefix="tinytrain-"))
    try:
        return compile_firmware(prog.stages["linalg"], out, target=target,
                                params=prog.program_params(), sram_kb=sram_kb)
    except SramBudgetError as e:
        raise CompileError(str(e), stage="memory-plan") from None
    except FirmwareBuildError as e:
        raise CompileError(f"firmware build failed:\n{e}", stage="firmware") from None


def _train_order(module) -> list[str]:
    """Names of the trained parameters, in the argument order of `@train_step`."""
    from torch_mlir import ir

    for op in module.body.operations:
        if op.operation.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == "train_step":
            out = []
            for d in ir.ArrayAttr(op.attributes["arg_attrs"]):
                d = ir.DictAttr(d)
                if "tinytrain.trainable" in d:
                    out.append(ir.StringAttr(d["tinytrain.param"]).value)
            return out
    raise CompileError("autodiff produced no @train_step", stage="autodiff")


def _write_stages(out: Path, stages: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, text) in enumerate(stages.items()):
        (out / f"{i}-{name}.mlir").write_text(text)


def _as_numpy(value) -> np.ndarray:
    """A torch tensor or array-like as a numpy array."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class CompiledModel:
    """A compiled training program with its trainable parameters (kept between steps)."""

    def __init__(self, imported, train_names: list[str], lr: float, stages: dict[str, str], vmfb: bytes,
                 *, has_gradients: bool = False):
        self.stages = stages
        self.has_gradients = has_gradients
        self.vmfb = vmfb
        self.lr = lr
        self.trainable = list(train_names)
        self.layouts = dict(imported.layouts)
        self.input_shape_nhwc = imported.input_shape
        self.num_classes = imported.num_classes
        self._values = {k: imported.params[k].copy() for k in self.trainable}
        self._host = HostModule(vmfb)
        self._in_place = False  # train_step checked that IREE updates the bound parameters in place
        self._staged: dict = {}  # entry point -> (HostFunction, input view, label view)
        self.firmware = None  # set for the Cortex-M targets

    def run_qemu(self, train=None, evaluate=None, *, workdir=None, timeout: float = 600.0,
                 from_current: bool = False):
        """Run the firmware in QEMU: train on `train = (images NCHW, labels)` one sample per step,
        and measure accuracy on `evaluate` before and after. Returns the QemuResult (`.steps`
        losses and SysTick ticks, `.evals`, `.mem` with the measured peak SRAM, `.trace`).
        `from_current` starts from this object's current parameters instead of the compiled ones.
        """
        from tinytrain.lowering.cortexm.firmware import run_qemu

        if self.firmware is None:
            raise RuntimeError("compile with target='cortex-m4' or 'cortex-m7' to get a firmware")

        def samples(pair):
            if pair is None:
                return None
            xs, ys = pair
            xs = _as_numpy(xs)
            ys = self._labels_any(ys)
            if xs.shape[1:] != self.input_shape[1:]:
                raise ValueError(f"images must be [K, {', '.join(map(str, self.input_shape[1:]))}], "
                                 f"got {list(xs.shape)}")
            nhwc = np.ascontiguousarray(xs.astype(np.float32).transpose(0, 2, 3, 1))
            return [nhwc[i:i + 1] for i in range(len(nhwc))], [int(v) for v in ys]

        wd = Path(workdir) if workdir is not None else self.firmware.project_dir / "run"
        params = self.program_params() if from_current else None
        return run_qemu(self.firmware, wd, train=samples(train), evaluate=samples(evaluate),
                        params=params, timeout=timeout)

    def _labels_any(self, labels) -> np.ndarray:
        y = _as_numpy(labels).reshape(-1)
        bad = y[(y < 0) | (y >= self.num_classes)]
        if bad.size:
            raise ValueError(f"label {int(bad[0])} is outside the class range [0, {self.num_classes}) of "
                             "the model's output")
        return y.astype(np.int32)

    # -- data conversion -------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The NCHW input shape the program was compiled for."""
        n, h, w, c = self.input_shape_nhwc
        return (n, c, h, w)

    def _input(self, x) -> np.ndarray:
        x = _as_numpy(x)
        if tuple(x.shape) != self.input_shape:
            raise ValueError(f"input shape {tuple(x.shape)} differs from the compiled NCHW shape "
                             f"{self.input_shape}")
        return np.ascontiguousarray(x.astype(np.float32).transpose(0, 2, 3, 1))

    def _labels(self, labels) -> np.ndarray:
        y = _as_numpy(labels).reshape(-1)
        n = self.input_shape[0]
        if y.shape[0] != n or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be {n} integer class indices, got {y.dtype} {y.shape}")
        return self._labels_any(y)

    def program_params(self) -> list[np.ndarray]:
        """Trainable parameters in program layout (HWIO conv weights) and argument order: what a
        compiled step (host `.vmfb` or Cortex-M firmware) takes and returns. (Copies: between
        steps the parameters stay in the runtime's buffers.)"""
        return [to_numpy(self._values[k]) for k in self.trainable]

    def _device_params(self) -> list:
        """The trainable parameters as the runtime holds them (device arrays after a step)."""
        return [self._values[k] for k in self.trainable]

    # -- public API ------------------------------------------------------------------------------
    def train_step(self, x, labels) -> float:
        """One SGD step on a batch (NCHW images, integer labels); returns the loss before it."""
        f, xv, yv = self._bound_function("train_step")
        self._write_input(xv, x)
        self._write_labels(yv, labels)
        rets = f()
        if not self._in_place:
            # The parameters are tied to the results (iree.abi.output): IREE updates the bound
            # buffers in place and returns them. Check that once; otherwise rebind every step.
            n = len(self.trainable)
            outs = [f.result(rets, i) for i in range(n)]
            self._in_place = all(o.get_buffer() == f.bound(i).get_buffer() for i, o in enumerate(outs))
            for i, (k, v) in enumerate(zip(self.trainable, outs)):
                self._values[k] = v  # stays a device array: updated in place by the next step
                f.bind(i, v)
        return f.scalar(rets, len(self.trainable))

    def _bound_function(self, name: str):
        """(`name` on the host module, numpy view of its input staging buffer, of its label staging
        buffer or None), with the current parameters bound as its first arguments (rebound only
        where `_values` changed since the last call, e.g. by `load_state_dict`)."""
        staged = self._staged.get(name)
        if staged is None:
            f = self._host.function(name)
            n = len(self.trainable)
            xv = f.stage(n, self.input_shape_nhwc, np.float32)
            yv = f.stage(n + 1, (self.input_shape[0],), np.int32) if f.num_args > n + 1 else None
            staged = self._staged[name] = (f, xv, yv)
        f = staged[0]
        views = f.views
        values = self._values
        for i, k in enumerate(self.trainable):
            v = values[k]
            if views[i] is not v:
                f.bind(i, v)
                if views[i] is not v:  # a numpy array was uploaded: keep the device copy
                    values[k] = views[i]
                    self._in_place = False
        return staged

    def _write_input(self, view: np.ndarray, x) -> None:
        """Write the NCHW batch `x` into a staging buffer's view, transposed to NHWC."""
        x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if x.shape != self.input_shape:
            raise ValueError(f"input shape {tuple(x.shape)} differs from the compiled NCHW shape "
                             f"{self.input_shape}")
        np.copyto(view, x.transpose(0, 2, 3, 1), casting="unsafe")

    def _write_labels(self, view: np.ndarray, labels) -> None:
        """Check the labels (as `_labels`) and write them into a staging buffer's view."""
        y = (labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)).reshape(-1)
        if y.shape[0] != view.shape[0] or y.dtype.kind not in "iu" or (
                y.size and (y.min() < 0 or y.max() >= self.num_classes)):
            y = self._labels(y)  # raises the explanatory error
        np.copyto(view, y, casting="unsafe")

    def predict(self, x) -> np.ndarray:
        """Logits [N, classes] for a batch of NCHW images."""
        f, xv, _ = self._bound_function("predict")
        self._write_input(xv, x)
        return to_numpy(f.result(f(), 0))

    def gradients(self, x, labels) -> tuple[dict[str, np.ndarray], float]:
        """Gradients (PyTorch layout) of the mean loss w.r.t. every trainable parameter, and the
        loss; needs `compile(..., gradients=True)`."""
        if not self.has_gradients:
            raise RuntimeError("compile the model with gradients=True to call gradients()")
        out = self._host.call("gradients", *self._device_params(), self._input(x),
                              self._labels(labels))
        grads = {k: to_torch_layout(v, self.layouts[k]) for k, v in zip(self.trainable, out[:-1])}
        return grads, float(out[-1])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Current trainable parameters in PyTorch layout (BN-folded names)."""
        return {k: torch.from_numpy(to_torch_layout(to_numpy(self._values[k]), self.layouts[k]).copy())
                for k in self.trainable}

    def load_state_dict(self, state: dict) -> None:
        """Set trainable parameters from PyTorch-layout tensors (e.g. from `state_dict()`)."""
        for k, v in state.items():
            if k not in self._values:
                raise KeyError(f"'{k}' is not a trainable parameter; trainable: {', '.join(self.trainable)}")
            arr = _as_numpy(v)
            expected = tuple(self._values[k].shape)
            if self.layouts[k] == "hwio":
                expected = (expected[3], expected[2], expected[0], expected[1])  # OIHW
            if tuple(arr.shape) != expected:
                raise ValueError(f"'{k}': shape {tuple(arr.shape)} does not match the compiled "
                                 f"parameter's {expected}")
            if self.layouts[k] == "hwio":
                arr = arr.transpose(2, 3, 1, 0)
            self._values[k] = np.ascontiguousarray(arr, dtype=np.float32)

    def save(self, path: str | Path) -> Path:
        """Write `model.vmfb`, each stage's MLIR, the parameters (`.npy`, NHWC/HWIO layout) and
        `train_step.flags`, a flag file with which `iree-run-module` runs one step in place."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.vmfb").write_bytes(self.vmfb)
        _write_stages(out / "ir", self.stages)
        pdir = out / "params"
        pdir.mkdir(exist_ok=True)
        files = []
        for i, k in enumerate(self.trainable):
            f = pdir / f"{i:03d}_{k}.npy"
            np.save(f, to_numpy(self._values[k]))
            files.append(f.relative_to(out))
        flags = ["--module=model.vmfb", "--device=local-sync", "--function=train_step"]
        flags += [f"--input=@{f}" for f in files]
        flags += ["--input=@input.npy", "--input=@labels.npy"]
        flags += [f"--output=@{f}" for f in files] + ["--output=-"]
        (out / "train_step.flags").write_text("\n".join(flags) + "\n")
        meta = {"trainable": self.trainable, "input_shape_nhwc": list(self.input_shape_nhwc),
                "num_classes": self.num_classes, "lr": self.lr}
        (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        return out
