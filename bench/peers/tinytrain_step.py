"""tinytrain worker of bench/host_step.py (the project's .venv python).

Loads the unfolded eval model the orchestrator saved next to the case npz (`model.pt`; tinytrain
folds BN itself), compiles it with `tinytrain.compile(model, x, trainable=..., lr=...,
gradients=True)` (the time reported as compile time: torch-mlir import, autodiff, linalg,
iree-compile; `gradients=True` adds the `@gradients` entry point the check needs, so the compile
time is a little longer than a user's, and `train_step` is the same function), checks its
gradients and logits against the orchestrator's autograd ones, then serves training rounds
(`common.serve`); one step = `prog.train_step(x, y)` (NCHW torch tensor in, loss out).

    .venv/bin/python bench/peers/tinytrain_step.py build/peers/<case>/case.npz
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import grad_check, load_case_trained, rel_err, serve  # noqa: E402

import tinytrain  # noqa: E402


def main(case_path: str) -> int:
    torch.set_num_threads(1)
    t_setup = time.perf_counter()
    c = load_case_trained(case_path)
    model = torch.load(Path(case_path).parent / "model.pt", weights_only=False).eval()
    x, y = torch.from_numpy(c["x"]), torch.from_numpy(c["y"])
    trainable = "all" if len(c["trained"]) == len(c["names"]) else list(c["trained"])
    t = time.perf_counter()
    prog = tinytrain.compile(model, x, trainable=trainable, lr=c["lr"], gradients=True)
    compile_s = time.perf_counter() - t
    if sorted(prog.trainable) != sorted(c["trained"]):
        raise RuntimeError(f"tinytrain trains {len(prog.trainable)} tensors, the case {len(c['trained'])}")
    g, _ = prog.gradients(x, y)  # before any step: the initial weights
    info = {"framework": "tinytrain", "version": tinytrain.__version__ if hasattr(tinytrain, "__version__") else "",
            "device": "IREE local-sync, caching allocator", "threads": 1, "compile_s": compile_s,
            "vmfb_bytes": len(prog.vmfb), "trainable_tensors": len(prog.trainable),
            "trainable_elements": int(sum(int(np.prod(prog._values[k].shape)) for k in prog.trainable)),
            "logits_rel_err": rel_err(prog.predict(x), c["logits"]), **grad_check(g, c["grads"])}
    info["setup_s"] = time.perf_counter() - t_setup
    return serve(lambda: prog.train_step(x, y), info)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
