"""Compile and run the training program of an int8 graph (`tinytrain.pretrained.graph`).

    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate
    from tinytrain.int8 import compile_training
    g = build_forward(truncate(load_mcu_model("mbv2-w0.35"), 4), classifier="fp32",
                      num_classes=10, input_hw=32)
    t = compile_training(g, trainable=["blocks.3.pointwise2.bias", "fc.weight", "fc.bias"], lr=0.01)
    params = t.initial_params()                       # trainable values, in argument order
    params, loss = t.step(params, x_int8, labels)     # one SGD step (int8 write-back)
    print(t.state_report().table())                   # SRAM of the trained state per update option

`momentum=m` (SGD with momentum) adds one f32 buffer per trained parameter to the trained state:
`initial_params()` then returns the parameters followed by the zero buffers (`t.state_names`),
and `step` takes and returns that whole list (`predict` and `gradients` read its parameters).

Pipeline: `autodiff{trainable lr gradients}` (int8 adjoint rules: `transforms/autodiff_int8.py`),
`qas` (on by default for int8 graphs: paper Eq. 4), `to-linalg` with the frozen parameters as
constants, IREE for the host.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Int8Training", "compile_training"]


@dataclass
class Int8Training:
    host: object  #: HostModule with @train_step, @predict (and @gradients)
    trainable: list[str]  #: trainable parameter names, in argument order
    #: every parameter in program layout; a sparse weight as its trained slice (under its name)
    #: and its frozen rest (`<name>.frozen`)
    values: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    slices: dict = field(default_factory=dict)  #: name -> WeightSlice of the sparse weights
    momentum: float = 0.0
    report: object = field(repr=False, default=None)  #: tinytrain.state_report.StateReport

    @property
    def state_names(self) -> list[str]:
        """The trained state in argument order: the parameters, then (momentum > 0) their
        momentum buffers `<name>.momentum_buffer`."""
        return self.trainable + ([f"{n}.momentum_buffer" for n in self.trainable] if self.momentum else [])

    def initial_params(self) -> list[np.ndarray]:
        """The initial trained state (`state_names`): the trainable parameters in argument order
        (a sparse weight: its trained slice), then zero momentum buffers."""
        bufs = [np.zeros(self.values[n].shape, np.float32) for n in self.trainable] if self.momentum else []
        return [self.values[n].copy() for n in self.trainable] + bufs

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
        out = self.host.call("train_step", *params, x, np.asarray(labels, np.int32))
        return out[:-1], float(out[-1])

    def gradients(self, params, x, labels):
        """(gradients of the trainable parameters, loss); needs `gradients=True` at compile time;
        `params` is the whole trained state (as for `step`).
        The gradient of an integer parameter is w.r.t. its integer value, after QAS if enabled."""
        out = self.host.call("gradients", *params[:len(self.trainable)], x, np.asarray(labels, np.int32))
        return out[:-1], float(out[-1])

    def predict(self, params, x):
        return self.host.call("predict", *params[:len(self.trainable)], x)[0]


def compile_training(graph, trainable=None, lr: float = 0.01, qas: bool = True, gradients: bool = False,
                     extra_flags=("--iree-opt-const-eval=false",), scheme=None, momentum: float = 0.0,
                     verbose: bool = False) -> Int8Training:
    """Build `@train_step` / `@predict` (and `@gradients`) of `graph` and compile them for the host.

    What is trained: `trainable` (parameter names, whole tensors) or `scheme` (a sparse-update
    scheme, `tinytrain.sparse`: a published name such as "49kb", a JSON file, a dict in the paper's
    or the explicit form, or a `SparseScheme`); the paper form always trains the fp32 head.
    `momentum`: SGD momentum (0 = plain SGD); `verbose` prints the trained-state report."""
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass
    from tinytrain.lowering.host.iree_host import HostModule, compile_host
    from tinytrain.pipeline import run_pipeline
    from tinytrain.state_report import CollectStateReport
    from tinytrain.transforms.autodiff import AutodiffPass
    from tinytrain.transforms.qas import QasPass
    from tinytrain.transforms.sparse_update import SparseNarrowPass, SparseUpdatePass, plan_slices, split_values

    if (trainable is None) == (scheme is None):
        raise ValueError("compile_training: give either trainable=[names] or scheme=... (a sparse-update scheme)")
    ratios = {}
    if scheme is not None:
        from tinytrain.sparse import resolve

        head = tuple(n for n in ("fc.weight", "fc.bias") if n in graph.values)
        update = resolve(scheme, param_names=list(graph.param_names), model=graph.model, head=head)
        trainable, ratios = update.trainable, update.sliced
    trainable = list(trainable)
    unknown = [t for t in trainable if t not in graph.values]
    if unknown:
        raise ValueError(f"unknown trainable parameter(s) {unknown}; the graph has {graph.param_names}")
    slices = plan_slices(graph.module, ratios)
    values = split_values(graph.values, slices)
    passes = []
    if slices:
        passes.append(SparseUpdatePass(weights=tuple(f"{k}:{r}" for k, r in ratios.items())))
    passes.append(AutodiffPass(trainable=tuple(trainable), lr=lr, gradients=gradients, momentum=momentum))
    if slices:
        passes.append(SparseNarrowPass())
    if qas:
        passes.append(QasPass())
    report: dict = {}
    passes += [CollectStateReport(sink=report), ConvertTinytrainToLinalgPass(values=values)]
    run_pipeline(graph.module, passes, stage="int8-training")
    host = HostModule(compile_host(str(graph.module), extra_flags=list(extra_flags)))
    order = [n for n in graph.param_names if n in trainable]
    if verbose:
        print(f"[tinytrain] {report['report'].table()}", file=sys.stderr, flush=True)
    return Int8Training(host, order, values, {s.name: s for s in slices}, float(momentum), report["report"])
