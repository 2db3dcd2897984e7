"""One peer of bench/peer_step.py: TFLite training (tensorflow-cpu 2.18.1, Flex delegate).

Runs in build/peers/tflite (bash bench/peers/setup_peers.sh) as a worker of bench/host_step.py
(`common.serve`: it times one round of steps when told). Reads the case npz and builds the
same folded network in TF, NHWC, from the PyTorch weights (conv OIHW -> HWIO, depthwise [C,1,KH,KW]
-> [KH,KW,C,1] as a DepthwiseConv2D kernel, linear [out,in] -> [in,out]; PyTorch's symmetric zero
padding as an explicit pad, since TF's SAME pads a stride-2 conv bottom/right only). A tf.Module has
`train(x, y) -> loss` (GradientTape, then manual SGD with `assign_sub(lr * g)`) and
`infer(x) -> logits` signatures; only the case's trained parameters are variables (the frozen
ones are constants, so the tape differentiates only what is trained); it is saved, converted with
builtins + SELECT_TF_OPS and resource variables, and run by `tf.lite.Interpreter(num_threads=1)`.
The TFLite `infer` logits must match PyTorch's before anything is timed.

Only tensorflow-cpu 2.18.1 works: the 2.19+ wheels' interpreter has no Flex delegate, and the
training signature needs Flex ops (Conv2DBackpropFilter, DepthwiseConv2dNativeBackprop*, Relu6Grad).

    build/peers/tflite/bin/python bench/peers/tflite_step.py build/peers/<case>/case.npz  (then JSON commands on stdin)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _k, _v in (("TF_NUM_INTRAOP_THREADS", "1"), ("TF_NUM_INTEROP_THREADS", "1"), ("OMP_NUM_THREADS", "1"),
               ("TF_CPP_MIN_LOG_LEVEL", "2"), ("CUDA_VISIBLE_DEVICES", "")):
    os.environ.setdefault(_k, _v)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import grad_check, load_case_trained, rel_err, serve  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)


def tf_weights(spec, params):
    """PyTorch-layout parameters -> TF-layout arrays, keyed by the PyTorch name."""
    out = {}
    for n in spec:
        if n["op"] == "conv":
            w = params[n["weight"]]  # [O, I/g, KH, KW]
            if n["groups"] == 1:
                out[n["weight"]] = w.transpose(2, 3, 1, 0)  # HWIO
            elif n["groups"] == n["cin"] == n["cout"]:
                out[n["weight"]] = w.transpose(2, 3, 0, 1)  # [KH, KW, C, 1]
            else:
                raise ValueError(f"unsupported grouped conv {n['name']} (groups {n['groups']})")
        elif n["op"] == "linear":
            out[n["weight"]] = params[n["weight"]].T  # [in, out]
        else:
            continue
        if n.get("bias"):
            out[n["bias"]] = params[n["bias"]]
    assert set(out) == set(params), set(params) ^ set(out)
    return {k: np.ascontiguousarray(v, np.float32) for k, v in out.items()}


def torch_layout(spec, tf_arrays, only=None):
    """Inverse of tf_weights (for gradients; `only`: the names present)."""
    out = dict(tf_arrays)
    for n in spec:
        if only is not None and n.get("weight") not in only:
            continue
        if n["op"] == "conv":
            w = tf_arrays[n["weight"]]
            out[n["weight"]] = w.transpose(3, 2, 0, 1) if n["groups"] == 1 else w.transpose(2, 3, 0, 1)
        elif n["op"] == "linear":
            out[n["weight"]] = tf_arrays[n["weight"]].T
    return out


class Net(tf.Module):
    def __init__(self, spec, weights, lr, x_shape, n_labels, trained=None):
        super().__init__()
        self.spec = spec
        self.names = sorted(weights if trained is None else trained)
        self.vars = [tf.Variable(weights[k], name=k.replace(".", "_")) for k in self.names]
        self.by_name = {k: tf.constant(v) for k, v in weights.items() if k not in self.names}
        self.by_name.update(zip(self.names, self.vars))
        self.lr = tf.constant(lr, tf.float32)
        xs = tf.TensorSpec(x_shape, tf.float32, name="x")
        ys = tf.TensorSpec([n_labels], tf.int64, name="y")
        self.train = tf.function(self._train, input_signature=[xs, ys])
        self.infer = tf.function(self._infer, input_signature=[xs])
        self.grads = tf.function(self._grads, input_signature=[xs, ys])

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
                h, s, p = a[0], n["stride"], n["pad"]
                w = self.by_name[n["weight"]]
                k = int(w.shape[0])
                if s == 1 and 2 * p == k - 1:
                    pad = "SAME"  # identical to PyTorch's symmetric padding at stride 1
                else:
                    if p:
                        h = tf.pad(h, [[0, 0], [p, p], [p, p], [0, 0]])
                    pad = "VALID"
                if n["groups"] == 1:
                    h = tf.nn.conv2d(h, w, [1, s, s, 1], pad)
                else:
                    h = tf.nn.depthwise_conv2d(h, w, [1, s, s, 1], pad)
                if n.get("bias"):
                    h = tf.nn.bias_add(h, self.by_name[n["bias"]])
                env[n["name"]] = h
            elif op == "relu6":
                env[n["name"]] = tf.nn.relu6(a[0])
            elif op == "relu":
                env[n["name"]] = tf.nn.relu(a[0])
            elif op == "add":
                env[n["name"]] = a[0] + a[1]
            elif op == "global_avg_pool":
                env[n["name"]] = tf.reduce_mean(a[0], axis=[1, 2], keepdims=True)
            elif op == "flatten":
                h = a[0]
                if len(h.shape) == 4:  # NHWC flatten equals NCHW flatten only at 1x1
                    assert h.shape[1] == 1 and h.shape[2] == 1, f"flatten of {h.shape}"
                    h = tf.reshape(h, [-1, int(h.shape[3])])
                env[n["name"]] = h
            elif op == "linear":
                h = tf.matmul(a[0], self.by_name[n["weight"]])
                if n.get("bias"):
                    h = h + self.by_name[n["bias"]]
                env[n["name"]] = h
            else:
                raise ValueError(f"graph spec: unsupported op {op}")
        raise ValueError("graph spec has no output")

    def _loss_grads(self, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=self.forward(x)))
        return loss, tape.gradient(loss, self.vars)

    def _grads(self, x, y):  # gradients only, no update (checked against PyTorch before timing)
        loss, grads = self._loss_grads(x, y)
        return {"loss": loss, **{f"g{i}": g for i, g in enumerate(grads)}}

    def _train(self, x, y):
        loss, grads = self._loss_grads(x, y)
        for v, g in zip(self.vars, grads):
            v.assign_sub(self.lr * g)
        return {"loss": loss}

    def _infer(self, x):
        return {"logits": self.forward(x)}


def main(case_path: str) -> int:
    import time

    t_setup = time.perf_counter()
    c = load_case_trained(case_path)
    out = Path(case_path).resolve().parent / "tflite"
    out.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(c["x"].transpose(0, 2, 3, 1))  # NHWC
    y = c["y"]
    net = Net(c["spec"], tf_weights(c["spec"], c["params"]), c["lr"], list(x.shape), len(y), c["trained"])
    tf_err = rel_err(net.infer(tf.constant(x))["logits"].numpy(), c["logits"])
    if tf_err > 1e-4:
        raise RuntimeError(f"TF forward logits differ from PyTorch: rel err {tf_err:.2e}")

    saved = out / "saved_model"
    tf.saved_model.save(net, str(saved), signatures={"train": net.train.get_concrete_function(),
                                                      "infer": net.infer.get_concrete_function(),
                                                      "grads": net.grads.get_concrete_function()})
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["train", "infer", "grads"])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    conv.experimental_enable_resource_variables = True
    blob = conv.convert()
    (out / "model.tflite").write_bytes(blob)

    it = tf.lite.Interpreter(model_content=blob, num_threads=1)
    it.allocate_tensors()
    infer = it.get_signature_runner("infer")
    train = it.get_signature_runner("train")
    logits_err = rel_err(infer(x=x)["logits"], c["logits"])
    if logits_err > 1e-4:
        raise RuntimeError(f"TFLite infer logits differ from PyTorch: rel err {logits_err:.2e}")
    g = it.get_signature_runner("grads")(x=x, y=y)
    g_tf = {k: g[f"g{i}"] for i, k in enumerate(net.names)}
    gcheck = grad_check(torch_layout(c["spec"], g_tf, only=g_tf), c["grads"])

    def step():
        return train(x=x, y=y)["loss"]

    return serve(step, dict(framework="tflite (tensorflow-cpu)", version=tf.__version__, logits_rel_err=logits_err,
                            tf_eager_logits_rel_err=tf_err, trainable_tensors=len(net.vars),
                            trainable_elements=int(sum(int(np.prod(v.shape)) for v in net.vars)),
                            tflite_bytes=len(blob), **gcheck, threads=1, setup_s=time.perf_counter() - t_setup))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
