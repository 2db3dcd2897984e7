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
    values: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    momentum: float = 0.0
    report: object = field(repr=False, default=None)  #: tinytrain.state_report.StateReport

    @property
    def state_names(self) -> list[str]:
        """The trained state in argument order: the parameters, then (momentum > 0) their
        momentum buffers `<name>.momentum_buffer`."""
        return self.trainable + ([f"{n}.momentum_buffer" for n in self.trainable] if self.momentum else [])

    def initial_params(self) -> list[np.ndarray]:
        """The initial trained state (`state_names`): parameter values, then zero buffers."""
        bufs = [np.zeros(self.values[n].shape, np.float32) for n in self.trainable] if self.momentum else []
        return [self.values[n].copy() for n in self.trainable] + bufs

    def state_report(self):
        """Bytes of trained state in SRAM per parameter and update option (integer write-back,
        fp32 master copies, momentum buffers); see `tinytrain.state_report`."""
        return self.report

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


def compile_training(graph, trainable, lr: float, qas: bool = True, gradients: bool = False,
                     extra_flags=("--iree-opt-const-eval=false",), momentum: float = 0.0,
                     verbose: bool = False) -> Int8Training:
    """Build `@train_step` / `@predict` (and `@gradients`) of `graph` and compile them for the host.
    `momentum`: SGD momentum (0 = plain SGD); `verbose` prints the trained-state report."""
    from tinytrain.lowering.conversions.tinytrain_to_linalg import ConvertTinytrainToLinalgPass
    from tinytrain.lowering.host.iree_host import HostModule, compile_host
    from tinytrain.pipeline import run_pipeline
    from tinytrain.state_report import CollectStateReport
    from tinytrain.transforms.autodiff import AutodiffPass
    from tinytrain.transforms.qas import QasPass

    trainable = list(trainable)
    unknown = [t for t in trainable if t not in graph.values]
    if unknown:
        raise ValueError(f"unknown trainable parameter(s) {unknown}; the graph has {graph.param_names}")
    passes = [AutodiffPass(trainable=tuple(trainable), lr=lr, gradients=gradients, momentum=momentum)]
    if qas:
        passes.append(QasPass())
    report: dict = {}
    passes += [CollectStateReport(sink=report), ConvertTinytrainToLinalgPass(values=graph.values)]
    run_pipeline(graph.module, passes, stage="int8-training")
    host = HostModule(compile_host(str(graph.module), extra_flags=list(extra_flags)))
    order = [n for n in graph.param_names if n in trainable]
    if verbose:
        print(f"[tinytrain] {report['report'].table()}", file=sys.stderr, flush=True)
    return Int8Training(host, order, graph.values, float(momentum), report["report"])
