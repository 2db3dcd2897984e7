"""Shared by the peer scripts (each runs in its own venv; only numpy is assumed here)."""

from __future__ import annotations

import json
import statistics
import time

import numpy as np


def load_case(path):
    """The npz written by bench/peer_step.py: folded params (PyTorch layout and names), the NCHW
    batch, int64 labels, lr, warm-up and timed step counts, PyTorch logits and the graph spec."""
    z = np.load(path, allow_pickle=False)
    names = json.loads(str(z["param_names"]))
    return {
        "params": {k: z[f"param:{k}"].astype(np.float32) for k in names},
        "names": names,
        "x": z["x"].astype(np.float32),
        "y": z["y"].astype(np.int64),
        "logits": z["logits"].astype(np.float32),
        "lr": float(z["lr"]),
        "warmup": int(z["warmup"]),
        "steps": int(z["steps"]),
        "spec": json.loads(str(z["spec"])),
        "grads": {k: z[f"grad:{k}"].astype(np.float32) for k in names},  # PyTorch, first step
    }


def grad_check(grads: dict, ref: dict) -> dict:
    """Per-tensor max|g - ref| / max|ref| of first-step gradients (PyTorch layout); worst tensor."""
    errs = {k: rel_err(grads[k], ref[k]) for k in ref}
    worst = max(errs, key=errs.get)
    return {"grad_rel_err_max": errs[worst], "grad_worst_tensor": worst,
            "grad_tensors_over_1e-3": sum(e > 1e-3 for e in errs.values())}


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def run_steps(step, warmup: int, steps: int) -> dict:
    """`step()` does one SGD step and returns its loss (before the update). Runs warmup + steps
    steps; the time is the median of the last `steps`."""
    losses, ts = [], []
    for i in range(warmup + steps):
        t = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t
        losses.append(float(loss))
        if i >= warmup:
            ts.append(dt)
    return {"median_ms": statistics.median(ts) * 1e3, "first_loss": losses[0],
            "loss_after_steps": losses[-1], "steps_run": len(losses)}


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(result: dict) -> None:
    print(json.dumps(result), flush=True)
