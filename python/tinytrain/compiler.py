"""`tinytrain.compile`: PyTorch model -> training program (host `.vmfb` or Cortex-M firmware).

Pipeline (each stage's IR is kept in `CompiledModel.stages` and written by `save`/`--dump-ir`):

    import      torch-mlir FX import -> tinytrain @forward (NHWC, BN folded)
    autodiff    @train_step / @predict (/ @gradients) on the tinytrain dialect
    linalg      linalg-on-tensors, frozen weights inlined as constants
    -> iree-compile (llvm-cpu) -> model.vmfb
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import shutil
import sys
import time
from pathlib import Path

from typing import ClassVar

import numpy as np
import torch
from torch_mlir import ir

from tinytrain.entry import MODEL_META, TARGETS, as_numpy, check_images, check_labels  # noqa: F401 (part of this module's API)
from tinytrain.entry import all_finite
from tinytrain.errors import CompileError, UnsupportedModelError
from tinytrain.irfuncs import find_func
from tinytrain.int8 import check_kernels, lower_for_device
from tinytrain.lowering.host.iree_host import LazyHostModule, to_numpy, view_dtype
from tinytrain.lowering.conversions.tinytrain_to_linalg import (CLAMP_BY_TARGET, CONVGRAD_BY_TARGET,
                                                            ConvertTinytrainToLinalgPass)
from tinytrain.lowering.conversions.torch_to_tinytrain import import_model, to_torch_layout
from tinytrain.passes import ModulePass
from tinytrain.pipeline import run_pipeline
from tinytrain.state_report import CollectStateReport, StateReport
from tinytrain.ptq import check_quantize_args, int8_layouts, int8_passes
from tinytrain.transforms.autodiff import AutodiffPass
from tinytrain.transforms.batch_stage import BatchStagePass

__all__ = ["compile", "CompiledModel", "TARGETS", "NonFiniteStepError"]


#: The `batch-stage` pass each target runs before `to-linalg` (None: not run): on the host, a
#: frozen first stage at batch > 1 is computed image by image, so its large activations stay in
#: the cache between layers (`transforms/batch_stage.py`; bench/results/host_batch_stage.md).
#: A Cortex-M program has batch 1 (nothing to split).
BATCH_STAGE_BY_TARGET: dict[str, BatchStagePass | None] = {
    "host": BatchStagePass(chunk=2, factor=4), "cortex-m4": None, "cortex-m7": None}


class NonFiniteStepError(ValueError):
    """A training step whose loss, or whose updated parameters (a gradient that overflowed
    while the loss was finite), were NaN or Inf: the trained state is left as it was before the
    step (`CompiledModel.rejected_steps` counts them)."""


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(f"[tinytrain] {msg}", file=sys.stderr, flush=True)


def compile(model: torch.nn.Module, example_input: torch.Tensor, *, trainable="all", lr: float = 0.01,
            momentum: float = 0.0, target: str = "host", gradients: bool = False,
            dump_ir: str | Path | None = None,
            sram_kb: int = 256, build_dir: str | Path | None = None,
            verbose: bool = False, quantize: str | None = None, calibration=None, qas: bool = True,
            int8_classifier: bool = False, sparse=None, kernels: str = "iree") -> "CompiledModel":
    """Compile `model` into a training program.

    Args:
      model: a `torch.nn.Module` in eval mode (BatchNorm is folded with its running statistics),
        or a `torch.export.ExportedProgram` with static shapes. It must return one logits tensor
        [N, classes] (the step's loss is softmax cross-entropy over it).
      example_input: a float32 NCHW tensor; its shape (batch included) is compiled in statically.
      trainable: "all" or a non-empty iterable of parameter names (after BN folding a conv
        followed by BN has parameters `<conv>.weight` and `<conv>.bias`). Every other parameter
        is frozen into the program as a constant.
      lr: SGD learning rate (a positive, finite real number).
      momentum: SGD momentum (PyTorch's rule: `v = momentum * v + g; p -= lr * v`, dampening 0,
        no Nesterov); 0 (the default) is plain SGD. With momentum > 0 every trained parameter
        has an f32 momentum buffer, zero at first, kept as trained state next to it (updated in
        place, in `state_dict()` as `<name>.momentum_buffer`, in checkpoints and on the device).
      target: "host" (IREE llvm-cpu `.vmfb` for this machine), or "cortex-m4" / "cortex-m7":
        a firmware project built in `build_dir` (`prog.firmware`), run with
        `prog.run_qemu(...)`, and the host `.vmfb` (a bit-exact reference on the M4), which is
        compiled on its first use (`train_step`, `predict`, `vmfb`, `save()`, ...).
      sram_kb: SRAM budget of the Cortex-M targets (256 by default; the STM32F746 has 320).
      build_dir: where the firmware project goes (default: a new temporary folder).
      gradients: also compile `@gradients` (the backward pass without the update).
      dump_ir: directory to write each stage's MLIR to.
      verbose: print progress (stage and time) to stderr.
      quantize: None (fp32) or "int8": post-training int8 quantization of the model
        (`tinytrain.ptq`), then training of the int8 graph (int8 forward, fp32 backward,
        integer write-back of the trained int8 weights / int32 biases).
      calibration: with quantize="int8", the NCHW float images whose activation ranges set the
        int8 scales: an array/tensor [K, C, H, W] or an iterable of such batches.
      qas: quantization-aware scaling of the integer parameters' gradients (paper Eq. 4), on by
        default for int8.
      int8_classifier: with quantize="int8", quantize the classifier too (default: it stays fp32
        on the dequantized features, as in the paper's App. C).
      sparse: a sparse-update scheme instead of `trainable` (`tinytrain.sparse`): a JSON file or a
        dict `{"parameters": {name: ratio}}`, ratio in {1/8, 1/4, 1/2, 1}; a conv or linear weight
        with ratio r < 1 trains only its first floor(r * C_out) output channels (the rest is a
        constant). `state_dict()` gives such a weight whole (trained slice + frozen rest);
        `gradients()`, `program_params()`, `save()` and checkpoints hold the trained slice.
      kernels: the firmware's kernels with quantize="int8" on a Cortex-M target: "iree" (IREE's
        generated code, the default), "ttk" (our int8 kernels, runtime/kernels, as IREE dispatches
        for the int8 convs inside their contract: bit-identical to "iree", several times fewer
        instructions) or "ttk-f32" ("ttk" and our fp32 kernels for the dense 1x1 input and weight
        gradients of the backward pass: equal to "iree" to float rounding, not bit for bit). The host `.vmfb`
        always runs IREE's kernels (it stays the device's reference).

    Raises:
      TypeError / ValueError: a bad argument (checked before any work is done).
      CompileError (UnsupportedModelError for the model itself): what cannot be compiled, with
        what to change. A failed Cortex-M build leaves no half-written `build_dir` behind.
    """
    trainable, lr = _validate_args(model, example_input, trainable=trainable, lr=lr, target=target,
                                   sram_kb=sram_kb)
    momentum = _check_momentum(momentum)
    calib = check_quantize_args(quantize, calibration, int8_classifier, example_input.shape[1:])
    _check_compile_kernels(kernels, target, quantize)
    if sparse is not None and trainable != "all":
        raise ValueError("give either trainable=[names] or sparse=<scheme> (which lists what is trained), "
                         "not both")
    if sparse is not None and quantize is not None:
        raise ValueError("sparse=<scheme> with quantize='int8' is not supported yet: quantize with "
                         "trainable=[names] (whole tensors), or train the paper's int8 models with a "
                         "scheme through tinytrain.int8.compile_training(graph, scheme=...)")
    t0 = time.time()
    _log(verbose, "importing the model (torch.export, torch-mlir FX importer, torch-to-tinytrain)")
    imported = import_model(model, example_input)
    stages: dict[str, str] = {"import": str(imported.module)}
    names = ("all",) if trainable == "all" else tuple(trainable)
    sparse_passes, slices = [], []
    if sparse is not None:
        names, sparse_passes, slices = _sparse_plan(sparse, imported)
    # One PassManager run: autodiff, then the conversion to linalg (the module changes in place;
    # each stage's text is kept for dumps, `save()` and the firmware build). The clamps are
    # lowered for the target's FPU, dense conv weight gradients for its memory (im2col on the
    # host, direct on a Cortex-M); the host .vmfb is built from the same linalg, so it stays the
    # device's reference.
    report: dict = {}
    lowering = {"values": imported.params, "clamp": CLAMP_BY_TARGET[target], "convgrad": CONVGRAD_BY_TARGET[target]}
    to_linalg = ConvertTinytrainToLinalgPass(**lowering)
    passes = sparse_passes[:1] + [AutodiffPass(trainable=names, lr=float(lr), gradients=bool(gradients),
                                               momentum=momentum)] + sparse_passes[1:] + [
              _Snapshot("autodiff", stages, verbose, t0), CollectStateReport(sink=report),
              *([BATCH_STAGE_BY_TARGET[target]] if BATCH_STAGE_BY_TARGET[target] else []),
              to_linalg, _Snapshot("linalg", stages, verbose, t0)]
    if calib is not None:
        passes = int8_passes(passes, imported.params, calib, qas=bool(qas), int8_classifier=bool(int8_classifier),
                             snapshot=lambda name: _Snapshot(name, stages, verbose, t0))
    _log(verbose, "pipeline: " + ",".join(p.options_text() for p in passes if p.argument))
    device, device_text = None, None
    if kernels != "iree":
        # The firmware's lowering (our kernels' dispatches) branches off before to-linalg: one run
        # up to it, a clone, the host's to-linalg, then the device lowering of the clone.
        split = passes.index(to_linalg)
        run_pipeline(imported.module, passes[:split], stage="compile")
        device = imported.module.operation.clone()
        passes = passes[split:]
    run_pipeline(imported.module, passes, stage="compile")
    if device is not None:
        stages["linalg_device"], device_text = lower_for_device(device, kernels, "compile", **lowering)
    train_names, buffer_of = _trained_state(imported.module)  # to-linalg keeps the argument attributes
    if calib is not None:
        imported.layouts = int8_layouts(imported.layouts, imported.params)
    _log(verbose, report["report"].table())
    if dump_ir is not None:
        _write_stages(Path(dump_ir), stages)
    # The host .vmfb: compiled now for target="host"; for a Cortex-M target (where it is the
    # bit-exact reference of the firmware) on its first use only (a host call, `vmfb`, `save()`).
    host = LazyHostModule(stages["linalg"])
    if target == "host":
        _log(verbose, f"iree-compile (llvm-cpu, host) ... {time.time() - t0:.1f}s so far")
        host.ensure_compiled()
    prog = CompiledModel(imported, train_names, lr, stages, host, has_gradients=bool(gradients),
                         slices=slices, momentum=momentum, buffer_of=buffer_of,
                         state_report=report["report"])
    if calib is not None:
        prog.quantized_params = dict(imported.params)
    if target != "host":
        _log(verbose, f"iree-compile ({target}, static library) + firmware build "
                      f"... {time.time() - t0:.1f}s so far")
        prog.firmware = _build_firmware(prog, target, sram_kb, build_dir,
                                        linalg_text=device_text or located_text(imported.module))
    _log(verbose, f"done in {time.time() - t0:.1f}s")
    return prog


def _sparse_plan(spec, imported):
    """(trainable names, [sparse-update, sparse-narrow, sparse-split] passes, weight slices) of a sparse scheme;
    `imported.params` is split into the trained slices and frozen rests (`split_values`)."""
    from tinytrain.sparse import resolve
    from tinytrain.transforms.sparse_update import (SparseNarrowPass, SparseSplitPass, SparseUpdatePass,
                                                    plan_slices, split_values)

    update = resolve(spec, param_names=list(imported.params))
    try:
        slices = plan_slices(imported.module, update.sliced)
    except CompileError as e:
        raise ValueError(f"{update.source}: {e}") from None
    imported.params = split_values(imported.params, slices)
    passes = [SparseUpdatePass(weights=update.pass_option()), SparseNarrowPass(), SparseSplitPass()] if slices else []
    return tuple(update.trainable), passes, slices


def _check_compile_kernels(kernels, target: str, quantize) -> None:
    """`compile(kernels=...)`: a known value (`tinytrain.int8.check_kernels`: ours need a Cortex-M
    target) and, for ours, an int8 model (they are int8 convolution kernels)."""
    check_kernels(kernels, target)
    if kernels != "iree" and quantize is None:
        raise ValueError(f"kernels={kernels!r} selects our int8 kernels: it needs quantize='int8' "
                         "(an fp32 model runs IREE's kernels); drop kernels= or add quantize='int8'")


def _check_momentum(momentum) -> float:
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or \
            not math.isfinite(float(momentum)) or float(momentum) < 0:
        raise ValueError(f"momentum must be a finite number >= 0 (0 = plain SGD, e.g. 0.9), got {momentum!r}")
    return float(momentum)


def _validate_args(model, example_input, *, trainable, lr, target: str, sram_kb):
    """Check `compile()`'s arguments on the PyTorch side, before anything is imported; returns
    the normalized `(trainable, lr)`. Bad argument types raise TypeError, bad values ValueError,
    a model tinytrain cannot train (not one logits tensor) UnsupportedModelError."""
    if not isinstance(model, (torch.nn.Module, torch.export.ExportedProgram)):
        raise TypeError(f"model must be a torch.nn.Module (in eval mode) or a "
                        f"torch.export.ExportedProgram, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a float32 torch.Tensor [N, C, H, W], got "
                        f"{type(example_input).__name__}")
    if example_input.dtype != torch.float32:
        raise TypeError(f"example_input must be float32, got {example_input.dtype}; pass "
                        "example_input.float()")
    if example_input.dim() != 4 or any(d <= 0 for d in example_input.shape):
        raise ValueError(f"example_input must be an NCHW image batch [N, C, H, W] with every "
                         f"dimension > 0, got shape {list(example_input.shape)}")
    check_target_args(target, sram_kb, example_input.shape)
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(float(lr)) \
            or float(lr) <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if isinstance(trainable, str):
        if trainable != "all":
            raise ValueError(f"trainable must be 'all' or a list of parameter names, got the string "
                             f"{trainable!r}; write trainable=[{trainable!r}] to train one tensor")
    else:
        try:
            trainable = list(trainable)
        except TypeError:
            raise TypeError(f"trainable must be 'all' or a list of parameter names, got "
                            f"{type(trainable).__name__}") from None
        bad = [t for t in trainable if not isinstance(t, str)]
        if bad:
            raise TypeError(f"trainable names must be strings, got {bad[0]!r}")
        if not trainable:
            raise ValueError("trainable=[] trains nothing: name at least one parameter (e.g. "
                             "'classifier.weight'), or pass trainable='all'")
        dups = sorted({t for t in trainable if trainable.count(t) > 1})
        if dups:
            raise ValueError(f"trainable names {dups} are given more than once")
    _check_logits_output(model, example_input)
    return trainable, float(lr)


def check_target_args(target: str, sram_kb, input_shape) -> None:
    """`target` and `sram_kb` as every compile entry point takes them (`compile`, the int8
    programs of `tinytrain.int8`); a Cortex-M target needs an input of batch 1."""
    if target not in TARGETS:
        raise ValueError(f"unknown target '{target}'; supported targets: {', '.join(TARGETS)}")
    if target != "host" and tuple(input_shape[:1]) != (1,):
        raise ValueError(f"target '{target}' trains with batch size 1 (as the paper); the example "
                         f"input has batch {input_shape[0]}")
    if isinstance(sram_kb, bool) or not isinstance(sram_kb, numbers.Integral) or sram_kb <= 0:
        raise ValueError(f"sram_kb must be a positive whole number of KB, got {sram_kb!r}")


def _check_logits_output(model, example_input: torch.Tensor) -> None:
    """The model must run on `example_input` and return one logits tensor [N, classes]: the
    training step ends in softmax cross-entropy over it."""
    if isinstance(model, torch.nn.Module) and any(m.training for m in model.modules()):
        return  # the importer refuses BatchNorm/Dropout in training mode with its own message
    fn = model.module() if isinstance(model, torch.export.ExportedProgram) else model
    try:
        with torch.no_grad():
            out = fn(example_input)
    except Exception as e:  # noqa: BLE001 - any failure here is the user's model/input mismatch
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"the model cannot run on an example input of shape "
                         f"{list(example_input.shape)}: {type(e).__name__}: {first} (check the "
                         "input shape: batch, channels, height, width)") from e
    n = example_input.shape[0]
    if not isinstance(out, torch.Tensor):
        what = f"a {type(out).__name__}"
        if isinstance(out, (tuple, list)):
            what += f" of {len(out)} elements"
        raise UnsupportedModelError(
            f"the model returns {what}; tinytrain trains a classifier and needs forward() to "
            f"return one logits tensor [N, classes] (N = {n}). Return only the logits, e.g. "
            "wrap the model in a module whose forward returns out[0]")
    if out.dim() != 2 or out.shape[0] != n or out.shape[1] < 1:
        raise UnsupportedModelError(
            f"the model returns a tensor of shape {list(out.shape)}; tinytrain needs one logits "
            f"tensor [N, classes] with N = {n} (the batch of example_input). Flatten or pool the "
            "output to [N, classes] (e.g. nn.AdaptiveAvgPool2d(1) + nn.Flatten())")
    if not out.dtype.is_floating_point:
        raise UnsupportedModelError(f"the model returns {out.dtype} values; the logits must be "
                                    "floating point")


def located_text(module: ir.Module) -> str:
    """The linalg module as text for the Cortex-M build, with its locations: each op keeps the
    layer it came from (`loc("<layer> (<Class>)"(...))`), which IREE carries into its dispatches
    and the memory report names (`tinytrain.memory_report`). The code IREE generates is the same
    as from `stages["linalg"]` (locations only)."""
    return module.operation.get_asm(enable_debug_info=True)


def _build_firmware(prog: "CompiledModel", target: str, sram_kb: int, build_dir, *,
                    linalg_text: str | None = None, stream_input: bool = False):
    """The firmware of `prog` in `build_dir`, from `linalg_text` (default
    `prog.stages["linalg_device"]` when the firmware has its own lowering, else
    `prog.stages["linalg"]`; the drivers pass `located_text` of the same module).
    `stream_input`: read the step input range by range (`lowering/cortexm/input_stream.py`)."""
    import tempfile

    from tinytrain.lowering.cortexm.firmware import FirmwareBuildError, compile_firmware
    from tinytrain.lowering.cortexm.iree_static import SramBudgetError

    if build_dir is not None:
        out = Path(build_dir).resolve()
        if out.exists() and not out.is_dir():
            raise ValueError(f"build_dir {out} exists and is not a folder")
    else:
        out = Path(tempfile.mkdtemp(prefix="tinytrain-"))
    # What this build writes into `out` (and `out` itself if it is new): removed again when the
    # build fails, so a failed compile leaves no half-written firmware behind.
    created = [p for p in (out, out / "static", out / "firmware") if not p.exists()]
    try:
        # "linalg_device": the firmware's own lowering when it differs from the host's
        # (tinytrain.int8's kernels="ttk": our int8 kernels as IREE dispatches)
        text = linalg_text or prog.stages.get("linalg_device", prog.stages["linalg"])
        fw = compile_firmware(text, out, target=target,
                              params=prog.program_params(), sram_kb=sram_kb,
                              extra_flags=getattr(prog, "cortexm_flags", ()), stream_input=stream_input,
                              optional_flags=getattr(prog, "cortexm_optional_flags", ()))
    except SramBudgetError as e:
        _remove(created)
        raise CompileError(str(e), stage="memory-plan") from None
    except FirmwareBuildError as e:
        _remove(created)
        raise CompileError(f"firmware build failed:\n{e}", stage="firmware") from None
    except BaseException:
        _remove(created)
        raise
    _write_model_meta(fw.project_dir / MODEL_META, prog)
    return fw


def _write_model_meta(path: Path, prog: "CompiledModel") -> None:
    report = prog.state_report()  # None for an inference-only program (tinytrain.int8.compile_predict)
    meta = {"trainable": prog.trainable, "input_shape_nhwc": list(prog.input_shape_nhwc),
            "num_classes": prog.num_classes, "lr": prog.lr, "momentum": prog.momentum,
            "momentum_buffers": prog.momentum_buffers,
            "trained_state_bytes": report.to_json() if report is not None else None}
    path.write_text(json.dumps(meta, indent=2) + "\n")


def _remove(paths) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()


def _trained_state(module: ir.Module) -> tuple[list[str], dict[str, str]]:
    """Names of the trained parameters in the argument order of `@train_step`, and its momentum
    buffers (`"<param>.momentum_buffer"` -> `"<param>"`, in argument order, after them)."""
    step = find_func(module, "train_step")
    if step is not None:
        out, buffers = [], {}
        for d in ir.ArrayAttr(step.attributes["arg_attrs"]):
            d = ir.DictAttr(d)
            if "tinytrain.trainable" in d:
                out.append(ir.StringAttr(d["tinytrain.param"]).value)
            elif "tinytrain.momentum_buffer" in d:
                p = ir.StringAttr(d["tinytrain.momentum_buffer"]).value
                buffers[f"{p}.momentum_buffer"] = p
        return out, buffers
    raise CompileError("autodiff produced no @train_step", stage="autodiff")


@dataclasses.dataclass(frozen=True)
class _Snapshot(ModulePass):
    """Keeps the module's text after a stage (for `--dump-ir`, `save()` and the firmware build)
    and reports progress."""

    argument: ClassVar[str] = ""
    name: str = ""
    sink: dict = dataclasses.field(default_factory=dict)
    verbose: bool = False
    t0: float = 0.0

    def run(self, module: ir.Operation) -> None:
        self.sink[self.name] = str(module)
        _log(self.verbose, f"{self.name} done ({time.time() - self.t0:.1f}s)")


def _write_stages(out: Path, stages: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, text) in enumerate(stages.items()):
        (out / f"{i}-{name}.mlir").write_text(text)


def _param_array(name: str, arr: np.ndarray, dtype) -> np.ndarray:
    """`arr` as a parameter of `dtype`: float32, or the int8 / int32 of a quantized parameter
    (integral values in its range only: no silent rounding)."""
    if not np.issubdtype(dtype, np.integer):
        return np.ascontiguousarray(arr, dtype=np.float32)
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        ok = np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) and arr.min(initial=0) >= info.min \
            and arr.max(initial=0) <= info.max
    if not ok:
        raise ValueError(f"'{name}' is a quantized {np.dtype(dtype)} parameter: its values must be integers "
                         f"in [{info.min}, {info.max}]")
    return np.ascontiguousarray(arr, dtype=dtype)


class CompiledModel:
    """A compiled training program with its trainable parameters (kept between steps)."""

    def __init__(self, imported, train_names: list[str], lr: float, stages: dict[str, str], host: LazyHostModule,
                 *, has_gradients: bool = False, slices=(), momentum: float = 0.0,
                 buffer_of: dict[str, str] | None = None, state_report: StateReport | None = None):
        self.stages = stages
        #: sparse-update weights (name -> WeightSlice): trained on a slice, the rest frozen
        self.slices = {s.name: s for s in slices}
        self._frozen = {s.name: imported.params[s.frozen_name] for s in slices}
        self.has_gradients = has_gradients
        self.rejected_steps = 0  # training steps refused because their loss was not finite
        self.lr = lr
        self.trainable = list(train_names)
        self.momentum = momentum
        #: momentum buffer names (`<param>.momentum_buffer`), after the parameters in the state
        self.momentum_buffers = list(buffer_of or {})
        #: the trained state in `@train_step` argument order: parameters, then momentum buffers
        self.state_names = self.trainable + self.momentum_buffers
        self._report = state_report
        self.layouts = dict(imported.layouts)
        self.input_shape_nhwc = imported.input_shape
        self.num_classes = imported.num_classes
        self._values = {k: imported.params[k].copy() for k in self.trainable}
        self._dtypes = {k: v.dtype for k, v in self._values.items()}  # int8 / int32 in int8 graphs
        for b, p in (buffer_of or {}).items():  # a buffer has its parameter's layout, zero at first
            self.layouts[b] = self.layouts[p]
            self._values[b] = np.zeros(self._values[p].shape, np.float32)
            self._dtypes[b] = np.dtype(np.float32)
        self._host = host
        self._in_place = False  # train_step checked that IREE updates the bound parameters in place
        self._staged: dict = {}  # entry point -> (HostFunction, input view, label view)
        # Non-finite state guard (`_state_guard`): views of the parameter buffers, state copies.
        self._guard: dict | None = None
        self.firmware = None  # set for the Cortex-M targets
        #: quantize="int8": every parameter of the quantized graph (stage "quantize") as compiled
        self.quantized_params: dict[str, np.ndarray] | None = None

    @property
    def vmfb(self) -> bytes:
        """The host program (IREE llvm-cpu `.vmfb`); for a Cortex-M target compiled on first use."""
        return self._host.vmfb

    def run_qemu(self, train=None, evaluate=None, *, workdir=None, timeout: float = 600.0,
                 from_current: bool = False, checkpoint=None, nvm=None):
        """Run the firmware in QEMU: train on `train = (images NCHW, labels)` one sample per step,
        and measure accuracy on `evaluate` before and after. Returns the QemuResult (`.steps`
        losses and SysTick ticks, `.evals`, `.mem` with the measured peak SRAM, `.trace`).
        `from_current` starts from this object's current parameters instead of the compiled ones.
        The samples are checked as `train_step` checks them (image size and dtype, integer labels
        in range, one label per image) before QEMU starts.

        `checkpoint=tinytrain.CheckpointConfig(every=N, restore=...)` checkpoints the trained
        state into the board's NVM every N accepted steps (power-loss safe, A/B slots) and, with
        `restore=True`, restores the newest checkpoint at boot and resumes on the samples it
        has not learned yet (`.checkpoints` lists the CKPT lines, `.final_state` holds the
        parameters at the end). The NVM is `workdir/tt_nvm.bin`, kept between runs, or the file
        `nvm` (copied in, and replaced atomically after the run); `prog.load_checkpoint(nvm)`
        brings what the device learned back to the host. The configuration is checked before
        QEMU starts (ValueError/TypeError).
        """
        from tinytrain.lowering.cortexm.firmware import run_qemu

        if self.firmware is None:
            raise RuntimeError("compile with target='cortex-m4' or 'cortex-m7' to get a firmware")

        def samples(pair, what):
            if pair is None:
                return None
            try:
                xs, ys = pair
            except (TypeError, ValueError):
                raise TypeError(f"{what} must be a pair (images, labels)") from None
            nhwc = check_images(xs, self.input_shape[1:], what=f"{what} images")
            ys = check_labels(ys, len(nhwc), self.num_classes, what=f"{what} labels")
            return [nhwc[i:i + 1] for i in range(len(nhwc))], [int(v) for v in ys]

        train_s, eval_s = samples(train, "train"), samples(evaluate, "evaluate")
        wd = Path(workdir).resolve() if workdir is not None else self.firmware.project_dir / "run"
        params = self.program_params() if from_current else None
        return run_qemu(self.firmware, wd, train=train_s, evaluate=eval_s, params=params,
                        timeout=timeout, checkpoint=checkpoint, nvm=nvm)

    @property
    def cortexm_flags(self) -> tuple:
        """More iree-compile flags of the firmware build (`_build_firmware`): an int8 program
        (quantize="int8") keeps f64 as f64, as its host build does (the quantize / dequantize
        lowerings compute in double, as `tinytrain.reference` defines them)."""
        from tinytrain.int8 import Int8Training

        return Int8Training.cortexm_flags if self.quantized_params is not None else ()

    @property
    def cortexm_optional_flags(self) -> tuple:
        """iree-compile flags of the firmware build dropped (with a warning) when iree-compile
        fails with them: an int8 program's `Int8Training.cortexm_optional_flags`."""
        from tinytrain.int8 import Int8Training

        return Int8Training.cortexm_optional_flags if self.quantized_params is not None else ()

    # -- data conversion -------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The NCHW input shape the program was compiled for."""
        n, h, w, c = self.input_shape_nhwc
        return (n, c, h, w)

    def _input(self, x, out: np.ndarray | None = None) -> np.ndarray:
        return check_images(x, self.input_shape[1:], what="input", batch=self.input_shape[0], out=out)

    def _labels(self, labels) -> np.ndarray:
        return check_labels(labels, self.input_shape[0], self.num_classes)

    def program_params(self) -> list[np.ndarray]:
        """The trained state (parameters, then momentum buffers if any) in program layout (HWIO
        conv weights) and argument order: what a compiled step (host `.vmfb` or Cortex-M
        firmware) takes and returns. (Copies: between steps it stays in the runtime's buffers.)"""
        return [to_numpy(self._values[k]) for k in self.state_names]

    def _device_params(self) -> list:
        """The trainable parameters as the runtime holds them (device arrays after a step)."""
        return [self._values[k] for k in self.trainable]

    # -- public API ------------------------------------------------------------------------------
    def train_step(self, x, labels) -> float:
        """One SGD step on a batch (NCHW images, integer labels); returns the loss before it."""
        f, xv, yv = self._bound_function("train_step")
        self._write_input(xv, x)
        self._write_labels(yv, labels)
        n = len(self.state_names)
        self._state_guard(f.views[:n])  # the state before the step is the rollback point
        rets = f()
        if not self._in_place:
            # The parameters are tied to the results (iree.abi.output): IREE updates the bound
            # buffers in place and returns them. Check that once; otherwise rebind every step.
            n = len(self.state_names)
            outs = [f.result(rets, i) for i in range(n)]
            self._in_place = all(o.get_buffer() == f.bound(i).get_buffer() for i, o in enumerate(outs))
            for i, (k, v) in enumerate(zip(self.state_names, outs)):
                self._values[k] = v  # stays a device array: updated in place by the next step
                f.bind(i, v)
        loss = f.scalar(rets, len(self.state_names))
        if not np.isfinite(loss):
            # The compiled step skipped its update (`sgd_update` is guarded by the loss).
            self.rejected_steps += 1
            raise NonFiniteStepError(
                f"the step's loss is {loss}: the update was skipped and the parameters are unchanged "
                f"({self.rejected_steps} step(s) rejected so far). Lower the learning rate, or check "
                "the inputs and the parameters you loaded.")
        # A finite loss with a gradient that overflowed (or an update p - lr*g beyond float32)
        # leaves NaN/Inf in the updated parameters: put the state before the step back.
        g = self._state_guard([f.views[i] for i in range(n)], keep=True)
        saved, spare = g["saved"], g["spare"]
        np.concatenate(g["views"], out=spare)  # the new state, one contiguous copy
        if not all_finite(spare):
            start = 0
            for v in g["views"]:
                np.copyto(v, saved[start:start + v.size], casting="unsafe")  # exact (see _state_guard)
                start += v.size
            self.rejected_steps += 1
            raise NonFiniteStepError(
                f"the step's loss ({loss}) is finite but a gradient or an updated parameter is "
                f"NaN/Inf (the backward pass overflowed): the parameters were restored to their "
                f"values before the step ({self.rejected_steps} step(s) rejected so far). Lower "
                "the learning rate, or check the input scale and the parameters you loaded.")
        g["saved"], g["spare"] = spare, saved  # this step's state: the next rollback point
        return loss

    def _state_guard(self, bound: list, *, keep: bool = False) -> dict:
        """The non-finite guard's record for the parameter buffer views `bound`: flat zero-copy
        numpy views of them and two contiguous state copies (`saved`: the rollback point,
        `spare`: where the next state is copied and checked). Built once per binding (the step
        updates the buffers in place); when new buffers are bound, `saved` is refilled from
        them, or, with `keep`, kept (the first step's results arrive in new buffers)."""
        g = self._guard
        if g is not None and len(g["bound"]) == len(bound) and \
                all(a is b for a, b in zip(g["bound"], bound)):
            return g
        maps = [v.map() for v in bound]
        views = [m.asarray(list(v.shape), view_dtype(v)).reshape(-1) for m, v in zip(maps, bound)]
        size = sum(v.size for v in views)
        if g is not None and keep and g["saved"].size == size:
            saved, spare = g["saved"], g["spare"]
        else:
            # float64 holds int8 / int32 parameters (int8 graphs) exactly
            dt = np.float32 if all(v.dtype == np.float32 for v in views) else np.float64
            saved, spare = np.empty(size, dt), np.empty(size, dt)
            np.concatenate(views, out=saved)
        # The mappings must outlive their numpy views.
        self._guard = {"bound": list(bound), "maps": maps, "views": views, "saved": saved,
                       "spare": spare}
        return self._guard

    def _state_args(self, name: str) -> int:
        """How many leading arguments of entry point `name` are trained state: `train_step`
        takes all of it (parameters and momentum buffers), `predict`/`gradients` the parameters."""
        return len(self.state_names) if name == "train_step" else len(self.trainable)

    def _bound_function(self, name: str):
        """(`name` on the host module, numpy view of its input staging buffer, of its label staging
        buffer or None), with the current parameters bound as its first arguments (rebound only
        where `_values` changed since the last call, e.g. by `load_state_dict`)."""
        staged = self._staged.get(name)
        if staged is None:
            f = self._host.function(name)
            n = self._state_args(name)
            xv = f.stage(n, self.input_shape_nhwc, np.float32)
            yv = f.stage(n + 1, (self.input_shape[0],), np.int32) if f.num_args > n + 1 else None
            staged = self._staged[name] = (f, xv, yv)
        f = staged[0]
        views = f.views
        values = self._values
        for i, k in enumerate(self.state_names[:self._state_args(name)]):
            v = values[k]
            if views[i] is not v:
                f.bind(i, v)
                if views[i] is not v:  # a numpy array was uploaded: keep the device copy
                    values[k] = views[i]
                    self._in_place = False
        return staged

    def _write_input(self, view: np.ndarray, x) -> None:
        """Check the NCHW batch `x` as every entry point does (`check_images`: float, shape,
        finite) and write it, as NHWC, into a staging buffer's view (one pass; a refused batch
        leaves only the staging buffer written, never the parameters)."""
        self._input(x, out=view)

    def _write_labels(self, view: np.ndarray, labels) -> None:
        """Check the labels (`check_labels`) and write them into a staging buffer's view."""
        np.copyto(view, self._labels(labels))

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
        """Current trainable parameters in PyTorch layout (BN-folded names); a sparse-update
        weight whole: its trained output channels joined with the frozen rest; with momentum
        their buffers (`<name>.momentum_buffer`, the parameter's layout; a sparse weight's buffer
        covers its trained channels only)."""
        from tinytrain.transforms.sparse_update import merge_values

        out = {}
        for k in self.state_names:
            v = to_numpy(self._values[k])
            if k in self.slices:
                v = merge_values(v, self._frozen[k], self.slices[k])
            out[k] = torch.from_numpy(to_torch_layout(v, self.layouts[k]).copy())
        return out

    def load_state_dict(self, state: dict) -> None:
        """Set trainable parameters (and momentum buffers) from PyTorch-layout tensors (e.g. from
        `state_dict()`); entries not given keep their values. Atomic: every entry is checked
        first; on any error no parameter is changed."""
        if not hasattr(state, "items"):
            raise TypeError(f"state must be a dict of name -> tensor, got {type(state).__name__}")
        staged = {}
        for k, v in state.items():
            if k not in self._values:
                raise KeyError(f"'{k}' is not a trainable parameter or momentum buffer of this program; "
                               f"trained state: {', '.join(self.state_names)}")
            arr = as_numpy(v)
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"'{k}': {arr.dtype} values; parameters are float32")
            sl = self.slices.get(k)
            expected = tuple(self._values[k].shape) if sl is None else \
                tuple(self._values[k].shape[:sl.axis]) + (sl.of,) + tuple(self._values[k].shape[sl.axis + 1:])
            if self.layouts[k] == "hwio":
                expected = (expected[3], expected[2], expected[0], expected[1])  # OIHW
            if tuple(arr.shape) != expected:
                raise ValueError(f"'{k}': shape {tuple(arr.shape)} does not match the compiled "
                                 f"parameter's {expected}")
            if self.layouts[k] == "hwio":
                arr = arr.transpose(2, 3, 1, 0)
            arr = _param_array(k, arr, self._dtypes[k])
            if sl is not None:
                arr = self._trained_slice(k, arr)
            staged[k] = arr
        self._values.update(staged)

    def _trained_slice(self, k: str, whole: np.ndarray) -> np.ndarray:
        """The trained channels of the whole sparse weight `whole` (program layout); its other
        channels must equal the frozen rest compiled into the program."""
        sl = self.slices[k]
        idx = [slice(None)] * whole.ndim
        idx[sl.axis] = slice(sl.channels, None)
        if not np.array_equal(whole[tuple(idx)], self._frozen[k]):
            raise ValueError(f"'{k}': output channels {sl.channels}..{sl.of - 1} differ from the frozen values "
                             f"compiled into the program (the sparse update trains channels 0..{sl.channels - 1} "
                             "only); recompile with these values to change them")
        idx[sl.axis] = slice(0, sl.channels)
        return np.ascontiguousarray(whole[tuple(idx)])

    def memory_report(self, function: str | None = None):
        """Per-dispatch SRAM of the compiled step on the Cortex-M target, as a table and a plot
        (`tinytrain.memory_report.MemoryReport`: `.rows`, `.peak_bytes`, `.write(dir)`); its peak
        is the compiler's plan, what the device's `MEM sram_peak` measures. `function`:
        "train_step" (default) or "predict". A ValueError for the host target (IREE allocates
        at run time there: no static plan)."""
        from tinytrain.memory_report import report_for

        return report_for(self.firmware, function=function)

    def state_report(self) -> StateReport:
        """The trained state's bytes in SRAM per parameter and update option
        (`tinytrain.state_report`); also in `save()`'s `model.json` as `trained_state_bytes`."""
        return self._report

    def save_checkpoint(self, path: str | Path, *, steps: int = 0) -> Path:
        """Write the trained parameters as a checkpoint in the device runtime's format, atomically
        (temporary file, fsync, rename); see `tinytrain.checkpoint`."""
        from tinytrain import checkpoint

        return checkpoint.save(self, path, steps=steps)

    def load_checkpoint(self, path: str | Path):
        """Load the newest intact checkpoint from a host checkpoint file or a device NVM image
        (e.g. the QEMU board's `tt_nvm.bin`); raises `tinytrain.checkpoint.CheckpointError` (a
        ValueError) for a corrupted or another model's checkpoint. Returns its `Checkpoint`."""
        from tinytrain import checkpoint

        return checkpoint.load(self, path)

    def save(self, path: str | Path) -> Path:
        """Write `model.vmfb`, each stage's MLIR, the parameters (`.npy`, NHWC/HWIO layout) and
        `train_step.flags`, a flag file with which `iree-run-module` runs one step in place."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        # `ir/` and `params/` are ours: a previous model's files there would be stale.
        _remove([out / "ir", out / "params"])
        (out / "model.vmfb").write_bytes(self.vmfb)
        _write_stages(out / "ir", self.stages)
        pdir = out / "params"
        pdir.mkdir()
        files = []
        for i, k in enumerate(self.state_names):
            f = pdir / f"{i:03d}_{k}.npy"
            np.save(f, to_numpy(self._values[k]))
            files.append(f.relative_to(out))
        flags = ["--module=model.vmfb", "--device=local-sync", "--function=train_step"]
        flags += [f"--input=@{f}" for f in files]
        flags += ["--input=@input.npy", "--input=@labels.npy"]
        flags += [f"--output=@{f}" for f in files] + ["--output=-"]
        (out / "train_step.flags").write_text("\n".join(flags) + "\n")
        _write_model_meta(out / MODEL_META, self)
        return out
