"""PyTorch workers of bench/host_step.py: eager, or `torch.compile` (inductor, default mode).

Runs with the project's .venv python (torch 2.13 CPU, one thread). Loads the BN-folded model the
orchestrator saved next to the case npz (`folded.pt`, the same weights as the npz), freezes every
parameter the case does not train, and serves training rounds (`common.serve`). One step =
`zero_grad(set_to_none=True)` + forward + cross-entropy + backward + `SGD.step()` + `loss.item()`.
For `--compile` the module is wrapped in `torch.compile` (forward and backward compiled by
inductor; the optimizer step stays eager, as in the usual recipe); its compile time is the first
forward+backward, done (and checked against the reference gradients) before the rounds.

    .venv/bin/python bench/peers/torch_step.py build/peers/<case>/case.npz [--compile]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import grad_check, load_case_trained, rel_err, serve  # noqa: E402


def main(case_path: str, compiled: bool) -> int:
    torch.set_num_threads(1)
    t_setup = time.perf_counter()
    c = load_case_trained(case_path)
    ref = torch.load(Path(case_path).parent / "folded.pt", weights_only=False)
    params = dict(ref.named_parameters())
    for k, v in c["params"].items():  # the same weights as every other framework
        if not np.array_equal(params[k].detach().numpy(), v):
            raise RuntimeError(f"folded.pt and case.npz differ at {k}")
    trained = set(c["trained"])
    for k, p in params.items():
        p.requires_grad_(k in trained)
    x, y = torch.from_numpy(c["x"]), torch.from_numpy(c["y"])
    net = torch.compile(ref) if compiled else ref
    info = {"framework": "torch.compile (inductor)" if compiled else "pytorch eager",
            "version": torch.__version__, "threads": torch.get_num_threads(),
            "trainable_tensors": len(trained),
            "trainable_elements": int(sum(params[k].numel() for k in trained))}
    # First-step gradients (no update) vs the orchestrator's autograd reference; for torch.compile
    # this first call is the compilation.
    t = time.perf_counter()
    F.cross_entropy(net(x), y).backward()
    info["first_call_s"] = time.perf_counter() - t
    info.update(grad_check({k: params[k].grad.numpy() for k in trained}, c["grads"]))
    with torch.no_grad():
        info["logits_rel_err"] = rel_err(net(x).numpy(), c["logits"])
    opt = torch.optim.SGD([params[k] for k in c["trained"]], lr=c["lr"])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    info["setup_s"] = time.perf_counter() - t_setup
    return serve(step, info)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--compile" in sys.argv[2:]))
