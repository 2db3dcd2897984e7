"""Small test programs for the Cortex-M backend (linalg-on-tensors MLIR text).

Until the front half (`tinytrain.compile`) produces training modules, the firmware tests use
programs made here, following the interface contract of issue 3:

* ``train_step(p0..pK {iree.abi.output = i}, x: 1xHxWxC f32, label: 1xi32) -> (p0'..pK', loss)``
* ``predict(p0..pK, x) -> 1xNCLASSES f32``

``sgd_linear_mlir`` is hand-written linalg; ``torch_train_mlir`` builds a PyTorch training step
(forward, cross-entropy, backward, SGD) with ``make_fx`` + ``torch.func`` and exports it with
torch-mlir. Frozen layers become constants inside the module (flash on the device).
"""

from __future__ import annotations

import re
import warnings

import numpy as np

#: the body of an SGD update `w - lr * x * g` (a linalg.generic over w, x, g; `%lr` defined before)
SGD_BODY = """  ^bb0(%wv: f32, %xv: f32, %gv: f32, %o: f32):
    %p = arith.mulf %xv, %gv : f32
    %q = arith.mulf %p, %lr : f32
    %r = arith.subf %wv, %q : f32
    linalg.yield %r : f32"""

#: `%t` = 1.0 where a linalg.generic's index 1 equals the label `%l`, else `%c0` (0.0)
ONEHOT = """    %j = linalg.index 1 : index
    %ji = arith.index_cast %j : index to i32
    %eq = arith.cmpi eq, %ji, %l : i32
    %one = arith.constant 1.0 : f32
    %t = arith.select %eq, %one, %c0 : f32"""

_SGD_TEMPLATE = """
func.func @train_step(%w: tensor<{D}x{C}xf32> {{iree.abi.output = 0 : index}}, %b: tensor<{C}xf32> {{iree.abi.output = 1 : index}}, %x: tensor<1x{D}xf32>, %label: tensor<1xi32>) -> (tensor<{D}x{C}xf32>, tensor<{C}xf32>, tensor<f32>) {{
  %c0 = arith.constant 0.0 : f32
  %lr = arith.constant {LR:.8e} : f32
  %e = tensor.empty() : tensor<1x{C}xf32>
  %z = linalg.fill ins(%c0 : f32) outs(%e : tensor<1x{C}xf32>) -> tensor<1x{C}xf32>
  %y = linalg.matmul ins(%x, %w : tensor<1x{D}xf32>, tensor<{D}x{C}xf32>) outs(%z : tensor<1x{C}xf32>) -> tensor<1x{C}xf32>
  %g = linalg.generic {{indexing_maps = [affine_map<(i,j)->(i,j)>, affine_map<(i,j)->(j)>, affine_map<(i,j)->(i)>, affine_map<(i,j)->(i,j)>], iterator_types = ["parallel","parallel"]}} ins(%y, %b, %label : tensor<1x{C}xf32>, tensor<{C}xf32>, tensor<1xi32>) outs(%e : tensor<1x{C}xf32>) {{
  ^bb0(%a: f32, %bb: f32, %l: i32, %o: f32):
{ONEHOT}
    %s = arith.addf %a, %bb : f32
    %d = arith.subf %s, %t : f32
    linalg.yield %d : f32
  }} -> tensor<1x{C}xf32>
  %ew = tensor.empty() : tensor<{D}x{C}xf32>
  %nw = linalg.generic {{indexing_maps = [affine_map<(i,j)->(i,j)>, affine_map<(i,j)->(0,i)>, affine_map<(i,j)->(0,j)>, affine_map<(i,j)->(i,j)>], iterator_types = ["parallel","parallel"]}} ins(%w, %x, %g : tensor<{D}x{C}xf32>, tensor<1x{D}xf32>, tensor<1x{C}xf32>) outs(%ew : tensor<{D}x{C}xf32>) {{
{SGD_BODY}
  }} -> tensor<{D}x{C}xf32>
  %eb = tensor.empty() : tensor<{C}xf32>
  %nb = linalg.generic {{indexing_maps = [affine_map<(j)->(j)>, affine_map<(j)->(0,j)>, affine_map<(j)->(j)>], iterator_types = ["parallel"]}} ins(%b, %g : tensor<{C}xf32>, tensor<1x{C}xf32>) outs(%eb : tensor<{C}xf32>) {{
  ^bb0(%bv: f32, %gv: f32, %o: f32):
    %q = arith.mulf %gv, %lr : f32
    %r = arith.subf %bv, %q : f32
    linalg.yield %r : f32
  }} -> tensor<{C}xf32>
  %el = tensor.empty() : tensor<f32>
  %zl = linalg.fill ins(%c0 : f32) outs(%el : tensor<f32>) -> tensor<f32>
  %loss = linalg.generic {{indexing_maps = [affine_map<(i,j)->(i,j)>, affine_map<(i,j)->()>], iterator_types = ["reduction","reduction"]}} ins(%g : tensor<1x{C}xf32>) outs(%zl : tensor<f32>) {{
  ^bb0(%gv: f32, %o: f32):
    %sq = arith.mulf %gv, %gv : f32
    %h = arith.constant 0.5 : f32
    %hs = arith.mulf %sq, %h : f32
    %r = arith.addf %o, %hs : f32
    linalg.yield %r : f32
  }} -> tensor<f32>
  return %nw, %nb, %loss : tensor<{D}x{C}xf32>, tensor<{C}xf32>, tensor<f32>
}}
func.func @predict(%w: tensor<{D}x{C}xf32>, %b: tensor<{C}xf32>, %x: tensor<1x{D}xf32>) -> tensor<1x{C}xf32> {{
  %c0 = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<1x{C}xf32>
  %z = linalg.fill ins(%c0 : f32) outs(%e : tensor<1x{C}xf32>) -> tensor<1x{C}xf32>
  %y = linalg.matmul ins(%x, %w : tensor<1x{D}xf32>, tensor<{D}x{C}xf32>) outs(%z : tensor<1x{C}xf32>) -> tensor<1x{C}xf32>
  %o = linalg.generic {{indexing_maps = [affine_map<(i,j)->(i,j)>, affine_map<(i,j)->(j)>, affine_map<(i,j)->(i,j)>], iterator_types = ["parallel","parallel"]}} ins(%y, %b : tensor<1x{C}xf32>, tensor<{C}xf32>) outs(%e : tensor<1x{C}xf32>) {{
  ^bb0(%a: f32, %bb: f32, %o2: f32):
    %s = arith.addf %a, %bb : f32
    linalg.yield %s : f32
  }} -> tensor<1x{C}xf32>
  return %o : tensor<1x{C}xf32>
}}
"""


def sgd_linear_mlir(in_features: int = 4, classes: int = 3, lr: float = 0.1) -> str:
    """Hand-written SGD step of ``y = x @ W + b`` with loss ``0.5 * ||y - onehot||^2``."""
    return _SGD_TEMPLATE.format(D=in_features, C=classes, LR=lr, SGD_BODY=SGD_BODY, ONEHOT=ONEHOT)


def tie_outputs(text: str, func_name: str, count: int) -> str:
    """Add ``{iree.abi.output = i}`` to the first ``count`` arguments of ``func_name``."""
    head = re.search(r"func\.func @%s\((.*?)\) ->" % re.escape(func_name), text, re.S)
    if head is None:
        raise ValueError(f"no func.func @{func_name} in the module")
    args = re.split(r",\s*(?=%)", head.group(1))
    for i in range(count):
        if "{" in args[i]:
            raise ValueError(f"argument {i} of @{func_name} already has attributes")
        args[i] = f"{args[i]} {{iree.abi.output = {i} : index}}"
    return text[: head.start(1)] + ", ".join(args) + text[head.end(1):]


def torch_train_mlir(model, example_x, classes: int, lr: float, trainable: list[str],
                     func_name: str = "train_step") -> tuple[str, list[np.ndarray]]:
    """Export ``model``'s SGD step over the ``trainable`` parameters as linalg MLIR.

    ``example_x`` is NHWC; the model sees NCHW. Labels are int32 (one-hot by comparison, so no
    int64 ``nll_loss`` is needed). Frozen parameters become module constants. Returns the text
    (trained parameters tied to results) and the initial values of the trained parameters.
    """
    import torch
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch_mlir import fx

    params = dict(model.named_parameters())
    frozen = {k: v.detach() for k, v in params.items() if k not in trainable}
    init = [params[k].detach().clone() for k in trainable]

    def step(*args):
        p = dict(zip(trainable, args[:-2]))
        x, label = args[-2], args[-1]

        def loss_fn(tp):
            out = torch.func.functional_call(model, {**frozen, **tp}, (x.permute(0, 3, 1, 2),))
            onehot = (torch.arange(classes, dtype=torch.int32)[None, :] == label[:, None])
            return -(torch.log_softmax(out, dim=1) * onehot.to(out.dtype)).sum()

        grads, loss = torch.func.grad_and_value(loss_fn)(p)
        return (*[p[k] - lr * grads[k] for k in trainable], loss)

    label = torch.zeros(1, dtype=torch.int32)
    with warnings.catch_warnings():
        # torch 2.13's export still calls its own deprecated LeafSpec check.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        gm = make_fx(step)(*init, example_x, label)
        module = fx.export_and_import(gm, *init, example_x, label,
                                      output_type="linalg-on-tensors", func_name=func_name)
    text = tie_outputs(str(module), func_name, len(trainable))
    return text, [t.numpy().astype(np.float32) for t in init]


def conv_train_mlir(lr: float = 0.05, hw: int = 8, channels: int = 1,
                    classes: int = 10) -> tuple[str, list]:
    """conv(frozen, flash, stride 2) -> relu -> conv -> relu -> mean -> linear on an
    ``hw``x``hw``x``channels`` input (default 8x8x1), ``classes`` classes (default 10)."""
    import torch

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(channels, 4, 3, stride=2, padding=1)
            self.c2 = torch.nn.Conv2d(4, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, classes)

        def forward(self, x):
            x = torch.relu(self.c1(x))
            x = torch.relu(self.c2(x))
            return self.fc(x.mean(dim=(2, 3)))

    x = torch.randn(1, hw, hw, channels)
    return torch_train_mlir(Net(), x, classes, lr, ["c2.weight", "c2.bias", "fc.weight", "fc.bias"])
