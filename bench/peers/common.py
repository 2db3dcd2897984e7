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


# -- long-lived worker mode (bench/host_step.py interleaves frameworks round by round) -----------

def proc_status_mb() -> dict:
    """Current (VmRSS) and peak (VmHWM) resident set size of this process, in MB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out["rss_mb" if k == "VmRSS" else "peak_rss_mb"] = int(v.split()[0]) / 1024.0
    return out


def trained_names(case: dict) -> list:
    """The parameters this case trains (all of them unless the npz lists a subset)."""
    return case.get("trained") or case["names"]


def load_case_trained(path) -> dict:
    """`load_case` plus `trained` (list of trained parameter names) when the npz has one."""
    c = load_case(path)
    z = np.load(path, allow_pickle=False)
    c["trained"] = json.loads(str(z["trained"])) if "trained" in z.files else list(c["names"])
    c["grads"] = {k: v for k, v in c["grads"].items() if k in c["trained"]}
    return c


def serve(step, ready: dict) -> int:
    """Worker loop. Prints `{"event": "ready", ...ready}`, then obeys one JSON command per stdin
    line: `{"cmd": "round", "steps": k}` runs `step()` k times (each returns its loss) and prints
    the per-step wall times with the round's CPU time and minor page faults; `{"cmd": "finish"}`
    prints the loss trajectory ends and the RSS, then returns. The orchestrator sends rounds to
    one worker at a time, so the frameworks alternate (ABAB...) under the same machine load."""
    import resource
    import sys

    emit({"event": "ready", **ready, **proc_status_mb()})
    losses = []
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "round":
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            w0 = time.perf_counter()
            ts = []
            for _ in range(int(cmd["steps"])):
                t = time.perf_counter()
                loss = step()
                ts.append(time.perf_counter() - t)
                losses.append(float(loss))
            wall = time.perf_counter() - w0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            emit({"event": "round", "times": ts, "wall": wall, "user": r1.ru_utime - r0.ru_utime,
                  "sys": r1.ru_stime - r0.ru_stime, "minflt": r1.ru_minflt - r0.ru_minflt})
        elif cmd["cmd"] == "finish":
            emit({"event": "finish", "first_loss": losses[0] if losses else None,
                  "loss_after_steps": losses[-1] if losses else None, "steps_run": len(losses),
                  "losses_head": losses[:3], **proc_status_mb()})
            return 0
        else:
            raise ValueError(f"unknown command {cmd!r}")
    return 0
