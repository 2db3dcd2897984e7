"""Compile and run the training (or inference) program of an int8 graph (`tinytrain.pretrained.graph`).

    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate
    from tinytrain.int8 import compile_training, compile_predict
    g = build_forward(truncate(load_mcu_model("mbv2-w0.35"), 4), classifier="fp32",
                      num_classes=10, input_hw=32)
    t = compile_training(g, trainable=["blocks.3.pointwise2.bias", "fc.weight", "fc.bias"], lr=0.01,
                         target="cortex-m4", sram_kb=256, build_dir="build/int8-m4")
    params = t.initial_params()                       # trainable values, in argument order
    params, loss = t.step(params, x_int8, labels)     # one SGD step on the host (int8 write-back)
    res = t.run_qemu(train=(xs, ys), evaluate=(ex, ey))   # the same steps on the emulated board
    res.trace, res.evals, res.mem                     # as `CompiledModel.run_qemu`
    print(t.state_report().table())                   # SRAM of the trained state per update option

    p = compile_predict(build_forward(load_mcu_model("mcunet-5fps")), target="cortex-m7",
                        sram_kb=512)                  # int8 inference only: @predict
    p.predict([], x_int8); p.run_qemu(evaluate=(xs, ys)).outputs["before"]

`momentum=m` (SGD with momentum) adds one f32 buffer per trained parameter to the trained state:
`initial_params()` then returns the parameters followed by the zero buffers (`t.state_names`),
and `step` takes and returns that whole list (`predict` and `gradients` read its parameters);
on the device the buffers are trained state in SRAM like the parameters.

Pipeline: `autodiff{trainable lr gradients}` (int8 adjoint rules: `transforms/autodiff_int8.py`),
`qas` (on by default for int8 graphs: paper Eq. 4), `to-linalg` with the frozen parameters as
constants, IREE for the host; for `target="cortex-m4"|"cortex-m7"` also the firmware, built by
the same code as `tinytrain.compile`'s (`compiler._build_firmware`: SRAM plan checked against
`sram_kb`, a `CompileError` naming the biggest contributors when it does not fit).

Samples are NHWC, like the graph: int8 images (`reference.preprocess`) for `input="int8"`
graphs, float32 images in [-1, 1] for `input="float"` ones.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from torch_mlir import ir

from tinytrain.irfuncs import find_func
from tinytrain.passes import ModulePass

__all__ = ["Int8Training", "compile_training", "compile_predict", "plan_sram"]

_NP = {"i8": np.dtype(np.int8), "i32": np.dtype(np.int32), "f32": np.dtype(np.float32)}


@dataclass
class Int8Training:
    """A compiled int8 program: `@train_step`/`@predict` (and `@gradients`) on the host, and
    with a Cortex-M target its firmware (`firmware`, run with `run_qemu`)."""

    #: LazyHostModule with @train_step, @predict (and @gradients): compiled already for the host
    #: target, on its first call for a Cortex-M target
    host: object
    trainable: list[str]  #: trainable parameter names, in argument order
    #: every parameter in program layout; a sparse weight as its trained slice (under its name)
    #: and its frozen rest (`<name>.frozen`)
    values: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    slices: dict = field(default_factory=dict)  #: name -> WeightSlice of the sparse weights
    momentum: float = 0.0
    report: object = field(repr=False, default=None)  #: tinytrain.state_report.StateReport
    #: what `compile_training` decided about the patched stages' grid (`refine_patches`), or None
    patch_plan: dict | None = None
    lr: float = 0.0
    stages: dict = field(repr=False, default_factory=dict)  #: "linalg": the program's MLIR text
    input_shape_nhwc: tuple = ()
    input_dtype: np.dtype = np.dtype(np.int8)
    output_shape: tuple = ()
    target: str = "host"
    firmware: object = None  #: `lowering.cortexm.firmware.Firmware` for the Cortex-M targets

    #: iree-compile flags of the firmware build (`compiler._build_firmware`): keep f64 as f64, as
    #: the host build does (`iree_host.HOST_FLAGS`): the quantize/dequantize lowerings compute
    #: in double, as `tinytrain.reference` defines them. (Not set for fp32 programs: the switch
    #: changes their float code, which is bit-exact to a generic-x86 host build without it.)
    #:
    #: Small constants (requantization multipliers and shifts, QAS scales, frozen weights) stay
    #: buffers of the program instead of being inlined into each kernel
    #: (`--iree-flow-inline-constants-max-byte-length=0`): IREE then compiles one kernel for the
    #: dispatches that differed only in those values, e.g. the channel groups of a layer, and no
    #: constant expression is hoisted into an initializer (`--iree-opt-const-expr-hoisting=false`:
    #: its results would be RAM). MobileNetV2-w0.35 `99kb` at 128x128 on the M7: 846 -> 693
    #: kernels, firmware .text 3,289,392 -> 2,930,512 B, instructions per step +0.27%, the same
    #: plan, device peak +8 B (`to-linalg` folds frozen weights' sums into the bias, otherwise each
    #: convolution's would be a dispatch of its own; `realign` copies the 6 bindings IREE then
    #: passes misaligned).
    cortexm_flags: ClassVar[tuple] = ("--iree-input-demote-f64-to-f32=false",
                                      "--iree-flow-inline-constants-max-byte-length=0",
                                      "--iree-opt-const-expr-hoisting=false")
    #: Tried first, dropped with a warning when iree-compile fails with them
    #: (`build_static_module(optional_flags=)`): a convolution's zero padding read inside the
    #: convolution's kernel instead of a padded copy filled before it (same results). At 128x128
    #: the 7x7 depthwise convolutions' padded copies were the peak of ProxylessNAS-w0.3 `98kb` (a
    #: 37x37x48 copy of a 32x32x48 tensor; 10x10x384 of 4x4x384 in the last stage): -14.5 KB of
    #: its plan. The Cortex-M weight gradients read their input bounds-checked, without a padded
    #: copy (`conv._padfree_grad_weight`): with a padded dequantized activation there, IREE failed
    #: with the flag on MobileNetV2-w0.35 `49kb` ("all stack allocations need to be hoisted": an
    #: fp32 pad tile of dynamic size). A program it still fails on keeps the padded copies.
    cortexm_optional_flags: ClassVar[tuple] = ("--iree-dispatch-creation-enable-fuse-padding-into-linalg-consumer-ops",)

    @property
    def num_classes(self) -> int:
        return int(self.output_shape[-1])

    @property
    def state_names(self) -> list[str]:
        """The trained state in argument order: the parameters, then (momentum > 0) their
        momentum buffers `<name>.momentum_buffer`."""
        return self.trainable + ([f"{n}.momentum_buffer" for n in self.trainable] if self.momentum else [])

    @property
    def momentum_buffers(self) -> list[str]:
        return self.state_names[len(self.trainable):]

    def initial_params(self) -> list[np.ndarray]:
        """The initial trained state (`state_names`): the trainable parameters in argument order
        (a sparse weight: its trained slice), then zero momentum buffers."""
        bufs = [np.zeros(self.values[n].shape, np.float32) for n in self.trainable] if self.momentum else []
        return [self.values[n].copy() for n in self.trainable] + bufs

    def program_params(self) -> list[np.ndarray]:
        """The initial trained state in argument order (what the firmware keeps in flash)."""
        return self.initial_params()

    def state_report(self):
        """Bytes of trained state in SRAM per parameter and update option (integer write-back,
        fp32 master copies, momentum buffers); see `tinytrain.state_report`."""
        return self.report

    def full_params(self, params) -> dict[str, np.ndarray]:
        """`params` (as `step` returns them) by name, each sparse weight whole: its trained slice
        joined with the frozen rest (program layout, HWIO)."""
        from tinytrain.transforms.sparse_update import merge_values

        out = {}
        for n, p in zip(self.trainable, params):
            s = self.slices.get(n)
            out[n] = merge_values(p, self.values[s.frozen_name], s) if s else np.asarray(p)
        return out

    def step(self, params, x, labels):
        """One training step: returns (updated params, loss)."""
        out = self.host.call("train_step", *params, self._input(x), self._labels(labels))
        return out[:-1], float(out[-1])

    def gradients(self, params, x, labels):
        """(gradients of the trainable parameters, loss); needs `gradients=True` at compile time;
        `params` is the whole trained state (as for `step`).
        The gradient of an integer parameter is w.r.t. its integer value, after QAS if enabled."""
        out = self.host.call("gradients", *params[:len(self.trainable)], self._input(x), self._labels(labels))
        return out[:-1], float(out[-1])

    def predict(self, params, x):
        return self.host.call("predict", *params[:len(self.trainable)], self._input(x))[0]

    # -- the device --------------------------------------------------------------------------
    def planned_sram(self) -> dict:
        """The firmware's SRAM plan: `total` bytes (checked against `sram_kb`), `peak` (the
        expected run-time peak, comparable to `run_qemu(...).mem["sram_peak"]`) and
        `contributors` [(what, bytes)], largest first, and `dropped_flags` (optional iree-compile
        flags it failed with: `cortexm_optional_flags`)."""
        return _plan(self._firmware().module)

    def memory_report(self, function: str | None = None):
        """Per-dispatch SRAM of the firmware's step (`tinytrain.memory_report.MemoryReport`), as
        `CompiledModel.memory_report`; `predict` for an inference-only program. A ValueError for
        the host target."""
        from tinytrain.memory_report import report_for

        return report_for(self.firmware, function=function)

    def run_qemu(self, train=None, evaluate=None, *, params=None, workdir=None,
                 timeout: float = 600.0, checkpoint=None, nvm=None):
        """Run the firmware in QEMU, as `CompiledModel.run_qemu`: train on `train = (images,
        labels)` one sample per step, evaluate on `evaluate` before and after. Images are NHWC
        ([K, H, W, C], int8 or float32 as the graph's input). `params`: start from these
        trainable values instead of the compiled ones. Returns the `QemuResult` (`.trace`
        parameters and loss after each step, `.evals`, `.outputs` the raw predict outputs of the
        evaluation records, `.mem` the measured peak SRAM)."""
        from tinytrain.lowering.cortexm.firmware import run_qemu

        fw = self._firmware()
        train_s = self._samples(train, "train") if train is not None else None
        if train_s is not None and not self.trainable:
            raise ValueError("this program has no training step (compile_predict): pass evaluate= only")
        eval_s = self._samples(evaluate, "evaluate") if evaluate is not None else None
        wd = Path(workdir).resolve() if workdir is not None else fw.project_dir / "run"
        if params is not None:
            params = [np.asarray(p) for p in params]
        return run_qemu(fw, wd, train=train_s, evaluate=eval_s, params=params, timeout=timeout,
                        checkpoint=checkpoint, nvm=nvm)

    def _firmware(self):
        if self.firmware is None:
            raise RuntimeError("compile with target='cortex-m4' or 'cortex-m7' to get a firmware")
        return self.firmware

    # -- sample checks (the same for the host calls and the device) ----------------------------
    def _input(self, x, what: str = "input", batch: bool = True) -> np.ndarray:
        """`x` as the program takes it: NHWC int8 (values checked to be in [-128, 127]) or
        float32 (finite), [batch, H, W, C] (or [K, H, W, C] with `batch=False`)."""
        from tinytrain.entry import as_numpy, check_images

        n, h, w, c = self.input_shape_nhwc
        want = (n, h, w, c) if batch else (h, w, c)
        if self.input_dtype != np.int8:
            x = check_images(x, (c, h, w), what=what, layout="NHWC")
            if batch and tuple(x.shape) != want:
                raise ValueError(f"{what} must be {list(want)} (NHWC float32), got {list(x.shape)}")
            return x
        x = as_numpy(x)
        if not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"{what} must be int8 images (NHWC, the int8 graph's input; make them with "
                            f"tinytrain.reference.preprocess), got {x.dtype}")
        shape = tuple(x.shape) if batch else tuple(x.shape[1:])
        if shape != want or x.shape[0] == 0:
            raise ValueError(f"{what} must be {'[' if batch else '[K, '}{', '.join(map(str, want))}] "
                             f"(NHWC int8), got {list(x.shape)}")
        if x.size and (x.min() < -128 or x.max() > 127):
            raise ValueError(f"{what} values must be int8 ([-128, 127]), got [{x.min()}, {x.max()}]")
        return np.ascontiguousarray(x, dtype=np.int8)

    def _labels(self, labels, count: int | None = None, what: str = "labels") -> np.ndarray:
        from tinytrain.entry import check_labels

        return check_labels(labels, self.input_shape_nhwc[0] if count is None else count,
                            self.num_classes, what=what)

    def _samples(self, pair, what: str):
        try:
            xs, ys = pair
        except (TypeError, ValueError):
            raise TypeError(f"{what} must be a pair (images, labels)") from None
        if self.input_shape_nhwc[0] != 1:
            raise ValueError(f"the device runs one sample per step: compile a graph of batch 1 "
                             f"(build_forward(..., batch=1)), this one has batch {self.input_shape_nhwc[0]}")
        x = self._input(xs, what=f"{what} images", batch=False)
        if len(self.output_shape) == 2:
            y = self._labels(ys, len(x), what=f"{what} labels")
        else:  # not a classifier (e.g. one op): the label only feeds the harness' accuracy count
            y = np.asarray(ys, np.int32).reshape(len(x))
        return [x[i:i + 1] for i in range(len(x))], [int(v) for v in y]


@dataclasses.dataclass(frozen=True)
class _ForwardAsPredict(ModulePass):
    """Renames `@forward` to `@predict` (an inference-only program: every parameter frozen)."""

    argument: ClassVar[str] = ""

    def run(self, module: ir.Operation) -> None:
        from tinytrain.errors import CompileError

        fwd = find_func(module, "forward")
        if fwd is None:
            raise CompileError("the module has no @forward function", stage="predict")
        fwd.attributes["sym_name"] = ir.StringAttr.get("predict", context=module.context)


def compile_training(graph, trainable=None, lr: float = 0.01, qas: bool = True, gradients: bool = False,
                     extra_flags=("--iree-opt-const-eval=false",), scheme=None, momentum: float = 0.0,
                     verbose: bool = False, *, target: str = "host", sram_kb: int = 256,
                     build_dir=None, patches: int | None = None, reorder: bool = True,
                     kernels: str = "iree", channel_groups: int | None = None,
                     stream_input: bool = True, clamp_masks: bool | None = None,
                     bands: int | None = None, grad_dtype: str = "f32") -> Int8Training:
    """Build `@train_step` / `@predict` (and `@gradients`) of `graph` and compile them for the
    host, and with `target="cortex-m4"|"cortex-m7"` the firmware too (in `build_dir`, planned
    against `sram_kb`: a `CompileError` when it does not fit).

    What is trained: `trainable` (parameter names, whole tensors) or `scheme` (a sparse-update
    scheme, `tinytrain.sparse`: a published name such as "49kb", a JSON file, a dict in the paper's
    or the explicit form, or a `SparseScheme`); the paper form always trains the fp32 head.
    `momentum`: SGD momentum (0 = plain SGD); `verbose` prints the trained-state report.
    `patches`: the frozen first stage computed in `patches` x `patches` spatial patches (the
    `patch-stage` pass; bit-identical, less SRAM, some recomputed halo); default `patch_grid()`,
    and on a Cortex-M target, when the patched stages then hold the step's peak, the program is
    compiled a second time with finer patches up to `PATCH_GRID_FINE` where they are below the
    rest of the step's peak (`refine_patches`; `.patch_plan` says which was kept).
    `reorder`: each update applied as soon as its gradient exists (the `reorder-updates` pass;
    False keeps autodiff's order, all updates at the end, for comparison).
    `kernels`: the firmware's int8 convolutions, "iree" (IREE's generated kernels, the default) or
    "ttk" (our Cortex-M kernels, runtime/kernels, as IREE dispatches wherever a conv is inside
    their contract; bit-identical; Cortex-M targets only), or "ttk-f32" ("ttk" and our fp32
    kernels for the dense 1x1 input and weight gradients of the backward pass: equal to IREE's to float
    rounding, not bit for bit). The host program always uses IREE's kernels.
    `channel_groups`: the backward pass of each depthwise layer in that many channel groups (the
    `channel-groups` pass: less SRAM, sums in another order); default `channel_group_count()`.
    `clamp_masks`: where a backward rule reads an int8 activation only for its clamp mask, keep
    the mask packed (1 bit per value, computed in the forward pass: `autodiff{clamp_masks=1}` and
    `pin-clamp-masks`) instead of the activation; the same numbers; default on for a Cortex-M
    target, off on the host.
    `stream_input`: on a Cortex-M target, each kernel that reads the step input gets only the bytes
    it loads, copied into the arena just before it runs, from the caller's buffer or the input
    reader the caller sets (`tt_model_set_input_reader`; the firmware harness reads them from the
    record file), so the input is never whole in SRAM (`lowering/cortexm/input_stream.py`; with
    the patched first stage: one patch's rows at a time; the default). False: the input is placed
    whole. An f32 input is never streamed (it is checked for NaN/Inf first).
    `bands`: a block's chain of convolutions whose inner tensors only it reads (but for packed
    clamp masks) computed in up to that many bands of rows (the `row-bands` pass; bit-identical,
    less SRAM, the halo rows recomputed); default `row_band_count()`.
    `grad_dtype`: how the backward pass stores its activation gradients between ops: "f32" (the
    default, the paper's released engine) or "bf16" (the `grad-storage` pass: computed in fp32,
    rounded to bfloat16 where written, half the bytes; the numbers change)."""
    check_kernels(kernels, target)
    masks = _clamp_masks(clamp_masks, target)
    pristine = _clone_graph(graph) if _refinable(graph, patches, target) else None

    def build(g, floor: int = 0):
        passes, order, values, slices, report = _training_passes(g, trainable, lr, qas, gradients, scheme,
                                                                 momentum, reorder,
                                                                 _channel_groups(channel_groups, target), masks)
        passes += _patch_passes(g, patches, target, stream_input, bands, floor) + _mask_passes(masks) + \
            _grad_passes(grad_dtype)
        prog = _compile(g, passes, order, lr, extra_flags, target, sram_kb, build_dir, values, kernels,
                        stream_input)
        prog.slices, prog.momentum, prog.report = {s.name: s for s in slices}, float(momentum), report["report"]
        return prog, _patch_stages(g.module)

    prog, stages = build(graph)
    if pristine is not None:
        prog = refine_patches(prog, stages, lambda floor: build(pristine, floor), verbose)
    if verbose:
        print(f"[tinytrain] {prog.report.table()}", file=sys.stderr, flush=True)
    return prog


#: The finest grid `refine_patches` lets the patched stages take (each patch shape is code of its
#: own: ProxylessNAS-w0.3 `98kb` at 128x128 on the M7, 4x4 / 6x6 / 8x8 first-stage patches: 2.72 /
#: 3.20 / 3.47 MB of the board's 4 MB of flash).
PATCH_GRID_FINE = 8
#: `refine_patches` runs where the default grid is at least this (128x128 inputs and up on a
#: Cortex-M target; at 64x64 the default 2x2 stages end at a 16x16 cut).
REFINE_FROM_GRID = 4


def _refinable(graph, patches, target: str) -> bool:
    """Whether `refine_patches` runs for `graph` on `target`: default `patches` on a Cortex-M
    target whose default grid is at least `REFINE_FROM_GRID`."""
    return patches is None and target != "host" and \
        patch_grid(target, _forward_types(graph.module)[0][1]) >= REFINE_FROM_GRID


def forward_bound(rep, stages: list[dict]) -> tuple[int, int] | None:
    """(the largest live bytes of the dispatches up to the last one of the last patched stage's
    cut layer, the largest of the dispatches after it) in the memory report `rep` of a step with
    the patched `stages` (`_patch_stages`) when the first is larger: the patched stages hold the
    step's peak; else (or without such a dispatch) None."""
    cut = stages[-1]["cut"] if stages else None
    last = max((r.index for r in rep.rows if cut in r.layers), default=None) if cut else None
    if last is None:
        return None
    rows = rep.rows
    fwd, rest = (max(r.live_bytes for r in rows[:last + 1]),
                 max((r.live_bytes for r in rows[last + 1:]), default=0))
    return (fwd, rest) if fwd > rest else None


def refine_patches(prog: "Int8Training", stages: list[dict], rebuild, verbose: bool = False) -> "Int8Training":
    """`prog` (compiled with the default patches, into the patched `stages`: `_patch_stages`), or
    the program `rebuild(floor)` compiles (with its stages) when the
    patched stages hold the step's peak: the stage choice estimates the forward pass only, and
    finer patches lower it at the cost of recomputed halo and code. `floor`: the live bytes of the
    step's worst dispatch after the patched stages (in `prog`'s memory report); the rebuild lets
    the stages take up to `PATCH_GRID_FINE` x `PATCH_GRID_FINE` patches and, among the chains
    whose estimated forward peak is below the floor, the one with the fewest recomputed MACs.
    The rebuild replaces `prog`'s firmware in its build folder; it is kept when its plan is
    smaller, else (or when its code does not fit the flash) `prog`'s is put back. Either way
    `.patch_plan` says what happened, with the MACs the stages' halos add to a forward pass
    (`recomputed_macs`: the price of finer patches is time; ProxylessNAS-w0.3 `98kb`, whose
    forward is 18.6 M MACs: 5.2 M with 4x4 + 4x4 patches, 15.0 M with 8x8 + 8x8)."""
    import shutil

    from tinytrain.errors import CompileError
    from tinytrain.memory_report import report_for

    bound = forward_bound(report_for(prog.firmware, function="train_step"), stages)
    first = prog.firmware.module.planned_sram()
    prog.patch_plan = {"grid": [st["grid"] for st in stages], "recomputed_macs": _recomputed(stages),
                       "plan_bytes": first, "refined": False}
    if bound is None:
        return prog
    fwd, floor = bound
    prog.patch_plan.update(forward_bytes=fwd, floor_bytes=floor)
    if verbose:
        print(f"[tinytrain] patch-stage: the patched stages hold the step's peak ({fwd:,} B live, the rest "
              f"{floor:,} B): compiling again with up to {PATCH_GRID_FINE}x{PATCH_GRID_FINE} patches",
              file=sys.stderr, flush=True)
    out = prog.firmware.project_dir.parent
    aside = [(out / d, out / f".{d}.coarse") for d in ("static", "firmware") if (out / d).exists()]
    for a, b in aside:
        shutil.rmtree(b, ignore_errors=True)
        a.rename(b)
    why = None
    try:
        fine, fine_stages = rebuild(floor)
        plan = fine.firmware.module.planned_sram()
        if plan < first:
            for _, b in aside:
                shutil.rmtree(b, ignore_errors=True)
            fine.patch_plan = {"grid": [st["grid"] for st in fine_stages], "recomputed_macs": _recomputed(fine_stages),
                               "plan_bytes": plan, "refined": True, "coarse_grid": prog.patch_plan["grid"],
                               "coarse_recomputed_macs": prog.patch_plan["recomputed_macs"],
                               "coarse_plan_bytes": first, "forward_bytes": fwd, "floor_bytes": floor}
            return fine
        why = f"its plan is {plan:,} B, not smaller"
    except CompileError as e:
        if e.stage not in ("firmware", "memory-plan"):  # its code does not fit, or its plan
            raise
        why = " ".join(str(e).split())[:300]
    for a, b in aside:
        shutil.rmtree(a, ignore_errors=True)
        b.rename(a)
    prog.patch_plan["kept_because"] = why
    if verbose:
        print(f"[tinytrain] patch-stage: kept the first program ({why})", file=sys.stderr, flush=True)
    return prog


def _patch_stages(module) -> list[dict]:
    """The patched stages of `@train_step` in `module` (the `tinytrain.patch_stage`,
    `tinytrain.patch_stage2`, ... attributes `patch-stage` sets), in order: [{"cut", "grid",
    "macs", "patched_macs"}]."""
    fn = find_func(module, "train_step")
    stages = []
    while fn is not None:
        key = "tinytrain.patch_stage" + (str(len(stages) + 1) if stages else "")
        if key not in fn.attributes:
            break
        info = ir.DictAttr(fn.attributes[key])
        stages.append({"cut": ir.StringAttr(info["cut"]).value,
                       **{k: ir.IntegerAttr(info[k]).value for k in ("grid", "macs", "patched_macs")}})
    return stages


def _recomputed(stages: list[dict]) -> int:
    """The multiply-accumulates the patched stages' halos add to one forward pass."""
    return sum(st["patched_macs"] - st["macs"] for st in stages)


def _clone_graph(graph):
    """A copy of `graph` whose module is a clone (the passes change a graph's module in place)."""
    module = ir.Module.create(graph.module.operation.location)
    for attr in graph.module.operation.attributes:
        module.operation.attributes[attr.name] = attr.attr
    for op in graph.module.body.operations:
        module.body.append(op.clone())
    clone = copy.copy(graph)
    clone.module = module
    return clone


def plan_sram(graph, trainable=(), *, lr: float = 0.01, qas: bool = True, target: str = "cortex-m7",
              work_dir=None, scheme=None, momentum: float = 0.0, patches: int | None = None,
              reorder: bool = True, sram_kb: int | None = None, channel_groups: int | None = None,
              stream_input: bool = True, clamp_masks: bool | None = None, bands: int | None = None,
              grad_dtype: str = "f32") -> dict:
    """The SRAM plan of `graph`'s training program (inference program with no `trainable`) on
    `target`, from its static schedule, without running it:
    `{"total", "peak", "contributors"}` as `Int8Training.planned_sram()`, with the stack reserve
    computed from the firmware linked once (`firmware.compute_stack`). `work_dir` keeps the
    static module (default: a temporary folder). `sram_kb`: also check the plan against this
    budget as the firmware build does (`SramBudgetError`, a `CompileError` with `needed`,
    `available` and `contributors`); None: no check. `stream_input`, `clamp_masks`, `bands`,
    `grad_dtype`: as in `compile_training`; so is the second plan with finer patches when the
    patched stages hold the training step's peak (`refine_patches`), but for one check: whether
    the finer program's code fits the board's flash (compile_training then keeps the first)."""
    import tempfile

    from tinytrain.compiler import located_text
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass
    from tinytrain.lowering.cortexm.firmware import compute_stack
    from tinytrain.lowering.cortexm.iree_static import build_static_module
    from tinytrain.pipeline import run_pipeline

    training = bool(trainable) or scheme is not None
    pristine = _clone_graph(graph) if training and _refinable(graph, patches, target) else None

    def plan_once(g, floor: int, where: Path):
        masks = False
        if training:
            masks = _clamp_masks(clamp_masks, target)
            passes, _, values, _, _ = _training_passes(g, list(trainable) or None, lr, qas, False, scheme,
                                                       momentum, reorder, _channel_groups(channel_groups, target),
                                                       masks)
        else:
            passes, values = [_ForwardAsPredict()], g.values
        passes = [*passes, *_patch_passes(g, patches, target, stream_input, bands, floor), *_mask_passes(masks),
                  *(_grad_passes(grad_dtype) if training else [])]
        run_pipeline(g.module, [*passes, ConvertTinytrainToLinalgPass(values=values)], stage="int8-plan")
        # located text, as the firmware build compiles: the same iree-compile input, so the run's
        # compile cache serves a later compile_training of the same program (and the contributors
        # name their layers)
        module = build_static_module(located_text(g.module), where, target=target, sram_bytes=None,
                                     extra_flags=Int8Training.cortexm_flags, stream_input=stream_input,
                                     optional_flags=Int8Training.cortexm_optional_flags)
        if target != "host":  # the stack reserve of the linked firmware, with or without a budget
            compute_stack(module)
        return module, _patch_stages(g.module)

    with tempfile.TemporaryDirectory(prefix="tinytrain-plan-") as tmp:
        where = Path(work_dir or tmp)
        module, stages = plan_once(graph, 0, where)
        if pristine is not None:  # as compile_training (`refine_patches`)
            from tinytrain.memory_report import memory_report

            bound = forward_bound(memory_report(module, function="train_step"), stages)
            if bound is not None:
                fine, _ = plan_once(pristine, bound[1], where / "refined")
                if fine.planned_sram() < module.planned_sram():
                    module = fine
        if sram_kb is not None:
            module.check_sram(int(sram_kb) * 1024)
        return _plan(module)


def _plan(module) -> dict:
    return {"total": module.planned_sram(), "peak": module.planned_peak(),
            "contributors": module.sram_contributors(), "dropped_flags": dict(module.dropped_flags)}


def _training_passes(graph, trainable, lr, qas, gradients, scheme=None, momentum=0.0, reorder=True,
                     channel_groups: int = 1, clamp_masks: bool = False):
    """(passes up to `to-linalg`, trained names in argument order, parameter values in program
    layout, weight slices, state-report sink) of the training program. `channel_groups` > 1: the
    `channel-groups` pass (depthwise backward in that many channel groups)."""
    from tinytrain.state_report import CollectStateReport
    from tinytrain.transforms.autodiff import AutodiffPass
    from tinytrain.transforms.qas import QasPass
    from tinytrain.transforms.reorder_updates import ReorderUpdatesPass
    from tinytrain.transforms.sparse_update import (SparseNarrowPass, SparseSplitPass, SparseUpdatePass, plan_slices,
                                                    split_values)

    if (trainable is None) == (scheme is None):
        raise ValueError("compile_training: give either trainable=[names] or scheme=... (a sparse-update scheme)")
    ratios = {}
    if scheme is not None:
        from tinytrain.sparse import resolve

        head = tuple(n for n in ("fc.weight", "fc.bias") if n in graph.values)
        update = resolve(scheme, param_names=list(graph.param_names), model=graph.model, head=head)
        trainable, ratios = update.trainable, update.sliced
    trainable = list(trainable)
    if not trainable:
        raise ValueError("trainable=[] trains nothing: name at least one parameter (e.g. 'fc.bias'), "
                         "or use compile_predict for inference only")
    unknown = [t for t in trainable if t not in graph.values]
    if unknown:
        raise ValueError(f"unknown trainable parameter(s) {unknown}; the graph has {graph.param_names}")
    slices = plan_slices(graph.module, ratios)
    values = split_values(graph.values, slices)
    passes = []
    if slices:
        passes.append(SparseUpdatePass(weights=tuple(f"{k}:{r}" for k, r in ratios.items())))
    passes.append(AutodiffPass(trainable=tuple(trainable), lr=lr, gradients=gradients, momentum=momentum,
                               clamp_masks=clamp_masks))
    if slices:
        passes.append(SparseNarrowPass())
    if qas:
        passes.append(QasPass())
    if slices:
        passes.append(SparseSplitPass())
    if reorder:
        passes.append(ReorderUpdatesPass())
    if channel_groups > 1:  # after the reordering: each group's weight update stays in its group
        from tinytrain.transforms.channel_groups import ChannelGroupsPass

        passes.append(ChannelGroupsPass(groups=int(channel_groups)))
    report: dict = {}
    passes.append(CollectStateReport(sink=report))
    return passes, [n for n in graph.param_names if n in trainable], values, slices, report


def compile_predict(graph, extra_flags=("--iree-opt-const-eval=false",), *, target: str = "host",
                    sram_kb: int = 256, build_dir=None, patches: int | None = None,
                    kernels: str = "iree", stream_input: bool = True, bands: int | None = None) -> Int8Training:
    """The inference program of `graph` (`@predict(input)`, every parameter a constant) for the
    host and, with a Cortex-M target, its firmware. Call `predict([], x)` / `run_qemu(evaluate=...)`.
    `patches`, `kernels`, `stream_input`, `bands`: as in `compile_training`."""
    check_kernels(kernels, target)
    return _compile(graph, [_ForwardAsPredict(), *_patch_passes(graph, patches, target, stream_input, bands)],
                    [], 0.0,
                    extra_flags, target, sram_kb, build_dir, kernels=kernels, stream_input=stream_input)


def patch_grid(target: str, input_hw: int) -> int:
    """The default number of patches per side of the `patch-stage` pass's first stage (down to 1/4
    of the input; each later stage takes 2 up to that many). On a Cortex-M target: 4x4 from
    128x128 up, 2x2 from 64x64 up, none below; on the host none (it has the memory; patches only
    add the recomputed halo). Training plans at 128x128 on the M7 (whole pipeline: later stages,
    4 KB channel groups, our layout), 3x3 / 4x4 / 5x5 first-stage patches: MobileNetV2-w0.35
    `99kb` 120,064 / 115,712 / 115,392 B, ProxylessNAS-w0.3 `98kb` 133,760 / 127,360 / 124,224 B,
    MCUNet-5FPS `99kb` 129,536 B each (bound by its backward). 5x5 is not the default: the
    firmware's code grows with every distinct patch shape, and with 3 KB channel groups
    (`channel_groups.ChannelGroupsPass.group_bytes`) ProxylessNAS-w0.3 `148kb` with 5x5 patches
    no longer fits the board's 4 MB of flash (by 34 KB; 4x4: 3.96 MB). Earlier, with the first
    stage alone: 2x2 +15% of the stage's MACs (+6% of MobileNetV2-w0.35's forward), 3x3 +32%
    (+13%), 4x4 +50% (+20%)."""
    if target == "host" or input_hw < 64:
        return 1
    return 4 if input_hw >= 128 else 2


def channel_group_count(target: str) -> int:
    """The default number of channel groups of the `channel-groups` pass: 4 on a Cortex-M target
    (the depthwise backward's fp32 gradients at a quarter of their size), 1 (off) on the host,
    which has the memory and runs whole tensors faster."""
    return 1 if target == "host" else 4


def _clamp_masks(masks, target: str) -> bool:
    """Packed clamp masks (`autodiff{clamp_masks=1}` + `pin-clamp-masks`): on a Cortex-M target by
    default (backward keeps 1 bit per value instead of the int8 activation: MCUNet-5FPS `99kb` at
    128x128 plans 139,648 -> 129,536 B), off on the host (one more pass over each masked
    activation in the forward pass, and the host has the memory)."""
    return target != "host" if masks is None else bool(masks)


def _mask_passes(masks: bool) -> list:
    """`pin-clamp-masks` when the masks are on: after every pass that rewrites the backward pass."""
    if not masks:
        return []
    from tinytrain.transforms.pin_masks import PinClampMasksPass

    return [PinClampMasksPass()]


def _grad_passes(grad_dtype: str) -> list:
    """`grad-storage` for bf16 activation gradients; nothing for f32."""
    if grad_dtype not in ("f32", "bf16"):
        raise ValueError(f"grad_dtype must be 'f32' or 'bf16', got {grad_dtype!r}")
    if grad_dtype == "f32":
        return []
    from tinytrain.transforms.grad_storage import GradStoragePass

    return [GradStoragePass(dtype=grad_dtype)]


def _channel_groups(groups, target: str) -> int:
    n = channel_group_count(target) if groups is None else int(groups)
    if n < 1:
        raise ValueError(f"channel_groups must be >= 1 (1: whole tensors), got {groups}")
    return n


def row_band_count(target: str) -> int:
    """The default most bands of rows of the `row-bands` pass: 4 on a Cortex-M target (the inner
    tensors of a block's chain at 8 KB or less: MobileNetV2-w0.35's 8x8x192 expansion in 2 bands),
    1 (off) on the host, which has the memory and runs whole tensors without recomputed halos."""
    return 1 if target == "host" else 4


def _patch_passes(graph, patches, target, stream_input: bool, bands=None, floor: int = 0) -> list:
    """The `patch-stage` pass of `graph` on `target` with `bands` (its stage choice leaves the
    input out of its SRAM estimate when the firmware streams it, `stream_input`, and counts the
    chains it then splits in bands of rows at their bands' size); with 1 patch the `row-bands`
    pass alone; nothing with 1 patch and 1 band. `floor` > 0 (`refine_patches`): up to
    `PATCH_GRID_FINE` patches per side, the stage choice's `floor`."""
    from tinytrain.transforms.patch_stage import PatchStagePass
    from tinytrain.transforms.row_bands import RowBandsPass

    n = row_band_count(target) if bands is None else int(bands)
    if n < 1:
        raise ValueError(f"bands must be >= 1 (1: no bands), got {bands}")
    grid = patch_grid(target, _forward_types(graph.module)[0][1]) if patches is None else int(patches)
    if grid < 1:
        raise ValueError(f"patches must be >= 1 (1: no patches), got {patches}")
    if grid == 1:
        return [RowBandsPass(bands=n)] if n > 1 else []
    if floor:
        grid = max(grid, PATCH_GRID_FINE)
    return [PatchStagePass(grid=grid, streamed_input=bool(stream_input) and target != "host",
                           fused_padding=target != "host", bands=n, floor=int(floor))]


def lower_for_device(device, kernels: str, stage: str, **lowering) -> tuple[str, str]:
    """The firmware's own `to-linalg{kernels=...}` lowering (our kernels' dispatches, not runnable
    on the host) of `device`, a clone of the module before to-linalg (`module.operation.clone()`),
    which this erases: (its text, its located text). `lowering`: the other options of
    `ConvertTinytrainToLinalgPass` (values, clamp, convgrad).

    The callers lower the host module first and this clone after it: the parameters' constants
    are resources whose names the context makes unique, so the module lowered first gets the
    plain names (`param_<name>`), and the host program's text (the compile cache's key) is then
    the same as with `kernels="iree"`: one host compile serves both."""
    from tinytrain.compiler import located_text
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass
    from tinytrain.pipeline import run_pipeline

    try:
        run_pipeline(device, [ConvertTinytrainToLinalgPass(kernels=kernels, **lowering)], stage=stage)
        return str(device), located_text(device)
    finally:
        device.erase()


def check_kernels(kernels, target: str) -> None:
    from tinytrain.lowering.conversions.tinytrain_to_linalg.kernels import KERNELS

    if kernels not in KERNELS:
        raise ValueError(f"kernels={kernels!r} is not supported: use 'iree' (IREE's generated kernels, "
                         f"the default), 'ttk' (our Cortex-M int8 kernels) or 'ttk-f32' (ours for the "
                         f"int8 convs and the dense 1x1 / depthwise fp32 input and weight gradients)")
    if kernels != "iree" and target == "host":
        raise ValueError(f"kernels={kernels!r} (our Cortex-M kernels) needs target='cortex-m4' or "
                         "'cortex-m7'; the host program always runs IREE's kernels: drop kernels= "
                         "or pass a Cortex-M target")


def _compile(graph, passes, order, lr, extra_flags, target, sram_kb, build_dir, values=None,
             kernels: str = "iree", stream_input: bool = True) -> Int8Training:
    from tinytrain.compiler import _build_firmware, check_target_args, located_text
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass
    from tinytrain.lowering.host.iree_host import LazyHostModule
    from tinytrain.pipeline import run_pipeline

    fwd = _forward_types(graph.module)
    check_target_args(target, sram_kb, fwd[0])
    values = graph.values if values is None else values
    stage = "int8-training" if order else "int8-predict"
    run_pipeline(graph.module, passes, stage=stage)
    stages, device_text = {}, None
    # the firmware's program (our kernels' dispatches, not runnable on the host) from a clone,
    # lowered after the host's (`lower_for_device`)
    device = graph.module.operation.clone() if kernels != "iree" else None
    run_pipeline(graph.module, [ConvertTinytrainToLinalgPass(values=values)], stage=stage)
    text = str(graph.module)
    stages = {"linalg": text}
    if device is not None:
        stages["linalg_device"], device_text = lower_for_device(device, kernels, stage, values=values)
    # For a Cortex-M target the host program (the reference the tests compare the device with) is
    # compiled on its first call only.
    host = LazyHostModule(text, extra_flags)
    if target == "host":
        host.ensure_compiled()
    prog = Int8Training(host, order, values, lr=lr, stages=stages, input_shape_nhwc=fwd[0],
                        input_dtype=fwd[1], output_shape=fwd[2], target=target)
    if target != "host":
        prog.firmware = _build_firmware(prog, target, sram_kb, build_dir,
                                        linalg_text=device_text or located_text(graph.module),
                                        stream_input=stream_input)
    return prog


def _forward_types(module: ir.Module) -> tuple[tuple, np.dtype, tuple]:
    """(input shape, input dtype, output shape) of `@forward` (the input is its last argument)."""
    fwd = find_func(module, "forward")
    if fwd is not None:
        ft = ir.FunctionType(ir.TypeAttr(fwd.attributes["function_type"]).value)
        x, y = ir.RankedTensorType(ft.inputs[-1]), ir.RankedTensorType(ft.results[0])
        return tuple(x.shape), _NP[str(x.element_type)], tuple(y.shape)
    raise ValueError("the graph has no @forward function (was it compiled already? build it again)")
