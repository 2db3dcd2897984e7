"""One peer of bench/peer_step.py: ONNX Runtime training (onnxruntime-training-cpu 1.19.2).

Runs in build/peers/ort (bash bench/peers/setup_peers.sh) as a worker of bench/host_step.py
(`common.serve`: it times one round of steps when told). Reads the case npz, rebuilds the folded
network in torch from the graph spec with the npz weights, exports it to ONNX in TRAINING mode
(an EVAL-mode export merges equal-valued initializers, e.g. all-zero folded biases, and so would tie
them during training), checks its forward logits with an InferenceSession, generates the training
artifacts (cross-entropy loss, SGD; the case's trained parameters require grad, every other one
is frozen), lowers the IR version to 10 (what ORT 1.19 reads), checks the first-step gradients,
then serves training rounds with one thread.

    build/peers/ort/bin/python bench/peers/ort_step.py build/peers/<case>/case.npz  (then JSON commands on stdin)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from onnxruntime.training import artifacts  # noqa: E402
from onnxruntime.training.api import CheckpointState, Module, Optimizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import grad_check, load_case_trained, rel_err, serve  # noqa: E402


def onnx_name(k: str) -> str:
    return k.replace(".", "__")


class _Relu6InclusiveGrad(torch.autograd.Function):
    """ReLU6 whose gradient passes at x == 0 and x == 6 (ONNX Runtime's ClipGrad mask), unlike
    PyTorch / TF / tinytrain, which zero it there. Used only to explain a gradient mismatch."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(0, 6)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ((x >= 0) & (x <= 6)).to(g.dtype)


class SpecNet(torch.nn.Module):
    """The graph spec interpreted in torch (NCHW, PyTorch weight layouts)."""

    def __init__(self, spec, params, relu6=F.relu6):
        super().__init__()
        self.spec = spec
        self.relu6 = relu6
        for k, v in params.items():
            self.register_parameter(onnx_name(k), torch.nn.Parameter(torch.from_numpy(v.copy())))

    def p(self, k):
        return None if k is None else getattr(self, onnx_name(k))

    def forward(self, x):
        env = {}
        for n in self.spec:
            op = n["op"]
            a = [env[i] for i in n.get("inputs", [])]
            if op == "input":
                env[n["name"]] = x
            elif op == "output":
                return a[0]
            elif op == "conv":
                env[n["name"]] = F.conv2d(a[0], self.p(n["weight"]), self.p(n["bias"]), n["stride"],
                                          n["pad"], 1, n["groups"])
            elif op == "relu6":
                env[n["name"]] = self.relu6(a[0])
            elif op == "relu":
                env[n["name"]] = F.relu(a[0])
            elif op == "add":
                env[n["name"]] = a[0] + a[1]
            elif op == "global_avg_pool":
                env[n["name"]] = F.adaptive_avg_pool2d(a[0], 1)
            elif op == "flatten":
                env[n["name"]] = torch.flatten(a[0], 1)
            elif op == "linear":
                env[n["name"]] = F.linear(a[0], self.p(n["weight"]), self.p(n["bias"]))
            else:
                raise ValueError(f"graph spec: unsupported op {op}")
        raise ValueError("graph spec has no output")


def lower_ir(path: Path, ir: int = 10) -> None:
    m = onnx.load(str(path))
    if m.ir_version > ir:
        m.ir_version = ir
        onnx.save(m, str(path))


def main(case_path: str) -> int:
    torch.set_num_threads(1)
    import time

    t_setup = time.perf_counter()
    c = load_case_trained(case_path)
    out = Path(case_path).resolve().parent / "ort"
    out.mkdir(parents=True, exist_ok=True)
    net = SpecNet(c["spec"], c["params"])
    with torch.no_grad():
        assert rel_err(net(torch.from_numpy(c["x"])).numpy(), c["logits"]) < 1e-5  # interpreter sanity

    fwd = out / "forward.onnx"
    torch.onnx.export(net, (torch.from_numpy(c["x"]),), str(fwd), input_names=["input"], output_names=["logits"],
                      opset_version=17, training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      dynamo=False)
    model = onnx.load(str(fwd))
    inits = {i.name for i in model.graph.initializer}
    requires_grad = [onnx_name(k) for k in c["trained"]]
    frozen = [onnx_name(k) for k in c["names"] if k not in c["trained"]]
    missing = [k for k in requires_grad + frozen if k not in inits]
    if missing:
        raise RuntimeError(f"parameters not exported as separate initializers: {missing[:5]} ...")

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    lower_ir(fwd)
    sess = ort.InferenceSession(str(fwd), so, providers=["CPUExecutionProvider"])
    logits_err = rel_err(sess.run(None, {"input": c["x"]})[0], c["logits"])
    del sess

    artifacts.generate_artifacts(model, requires_grad=requires_grad, frozen_params=frozen, loss=artifacts.LossType.CrossEntropyLoss,
                                 optimizer=artifacts.OptimType.SGD, artifact_directory=str(out))
    for f in ("training_model.onnx", "eval_model.onnx", "optimizer_model.onnx"):
        lower_ir(out / f)
    state = CheckpointState.load_checkpoint(str(out / "checkpoint"))
    module = Module(str(out / "training_model.onnx"), state, str(out / "eval_model.onnx"), device="cpu",
                    session_options=so)
    opt = Optimizer(str(out / "optimizer_model.onnx"), module)
    opt.set_learning_rate(c["lr"])
    module.train()
    n_trained = module.get_parameters_size(trainable_only=True)  # element count
    x, y = np.ascontiguousarray(c["x"]), np.ascontiguousarray(c["y"])

    # First-step gradients (no optimizer step, so the timed run starts from the same weights).
    module(x, y)
    g_ort = {k: np.array(state.parameters[onnx_name(k)].grad) for k in c["trained"]}
    module.lazy_reset_grad()
    gcheck = grad_check(g_ort, c["grads"])
    if gcheck["grad_tensors_over_1e-3"]:
        # Explain it: the same gradients with ReLU6's gradient mask inclusive at 0 and 6?
        alt = SpecNet(c["spec"], c["params"], relu6=_Relu6InclusiveGrad.apply)
        F.cross_entropy(alt(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        ref_incl = {k: alt.p(k).grad.numpy() for k in c["trained"]}
        gcheck["grad_rel_err_max_vs_inclusive_relu6_mask"] = grad_check(g_ort, ref_incl)["grad_rel_err_max"]

    def step():
        loss = module(x, y)
        opt.step()
        module.lazy_reset_grad()
        return float(np.asarray(loss))

    expected = sum(c["params"][k].size for k in c["trained"])
    if n_trained != expected:
        raise RuntimeError(f"ORT trains {n_trained} parameter elements, expected {expected}")
    return serve(step, dict(framework="onnxruntime-training-cpu", version=ort.__version__, onnx=onnx.__version__,
                            torch=torch.__version__, logits_rel_err=logits_err, trainable_tensors=len(requires_grad),
                            trainable_elements=n_trained, **gcheck, threads=1,
                            setup_s=time.perf_counter() - t_setup))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
