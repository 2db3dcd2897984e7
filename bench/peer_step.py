"""Interleaved host training-step benchmark: tinytrain vs PyTorch eager, torch.compile, ONNX Runtime
training and TFLite training (the harness of bench/host_step.py, and a CLI for the small models).

Same BN-folded model, same weights, same batch, same labels, plain SGD (same lr), the same trained
parameters, one thread each. For every case this harness:

1. builds the model with seed 0, folds BN with `conftest.fold_bn` (the folding the tests use), and
   writes `build/peers/<case>/`: `case.npz` (every folded parameter in PyTorch layout and names,
   the trained subset, the NCHW batch, labels, lr, the PyTorch logits and first-step gradients of
   the trained parameters, and a JSON graph spec from which the ORT / TFLite peers rebuild the
   network), `model.pt` (the unfolded eval model tinytrain compiles) and `folded.pt`;
2. starts one long-lived worker process per framework (`bench/peers/<fw>_step.py`; tinytrain and
   PyTorch with this venv, ORT and TFLite with their own venvs made by
   `bash bench/peers/setup_peers.sh`). Each builds/compiles/converts its model, checks its
   first-step gradients and forward logits against PyTorch's, and reports ready. A missing venv or
   a failing worker is reported and its column left empty, never faked;
3. sends every worker a warm-up round, then `--rounds` timed rounds of the same number of steps,
   one worker at a time in a rotating order (ABCD, BCDA, ...), so that every framework is timed
   under the same machine load and a load spike hits all of them, not one;
4. reports per framework the median step time over all timed steps with its spread (per-round
   medians: min / quartiles / max), CPU and page faults per step, RSS, compile/setup time; per
   peer the speed-up of tinytrain (peer median / tinytrain median) with the range of the per-round
   ratios (each round's peer median / the same round's tinytrain median); and checks that every
   framework's first-step loss agrees with PyTorch eager (`--loss-rtol`), that the trajectories
   stay together (last-step loss), and the first-step gradients.

Every framework runs the same number of SGD steps on the same batch from the same weights.

    .venv/bin/python bench/peer_step.py [--cases ds_cnn_28_b1_all,mbv2_w035_128_b1_all] [--quick]
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "THREADS": "1"}
os.environ.update(ONE_THREAD)  # before torch is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.fx  # noqa: E402
import torch.nn as nn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from conftest import fold_bn  # noqa: E402  (the same BN folding the tests use)

from tinytrain.models import ds_cnn, mobilenet_v2  # noqa: E402

VENV_PY = Path(sys.executable)
PEERS_DIR = ROOT / "bench" / "peers"
FRAMEWORKS = {  # key -> (python, worker script, extra args, human name)
    "tinytrain": (VENV_PY, PEERS_DIR / "tinytrain_step.py", [], "tinytrain (IREE llvm-cpu, local-sync)"),
    "pytorch": (VENV_PY, PEERS_DIR / "torch_step.py", [], "PyTorch eager"),
    "torch_compile": (VENV_PY, PEERS_DIR / "torch_step.py", ["--compile"], "torch.compile (inductor)"),
    "ort": (ROOT / "build" / "peers" / "ort" / "bin" / "python", PEERS_DIR / "ort_step.py", [],
            "ONNX Runtime training (onnxruntime-training-cpu 1.19.2)"),
    "tflite": (ROOT / "build" / "peers" / "tflite" / "bin" / "python", PEERS_DIR / "tflite_step.py", [],
               "TFLite training (tensorflow-cpu 2.18.1, Flex delegate)"),
}
SHORT = {"tinytrain": "tinytrain", "pytorch": "PyTorch eager", "torch_compile": "torch.compile",
         "ort": "ORT training", "tflite": "TFLite training"}
SETUP = "bash bench/peers/setup_peers.sh"

MODELS = {
    "mbv2_w035": lambda: mobilenet_v2(0.35, 10),
    "ds_cnn": lambda: ds_cnn(10, 1, 16),
}
CHANNELS = {"mbv2_w035": 3, "ds_cnn": 1}
#: "last": the last inverted residual block, the 1x1 conv to 1280 and the classifier of MbV2
#: (10 tensors after BN folding); for ds_cnn the last conv block and the classifier.
LAST_PREFIXES = {"mbv2_w035": ("features.17.", "features.18.", "classifier."), "ds_cnn": None}


def case_id(model: str, res: int, batch: int, trained: str) -> str:
    return f"{model}_{res}_b{batch}_{trained}"


def parse_case(cid: str) -> tuple[str, int, int, str]:
    parts = cid.split("_")
    trained, batch, res = parts[-1], int(parts[-2][1:]), int(parts[-3])
    return "_".join(parts[:-3]), res, batch, trained


def graph_spec(model: nn.Module) -> list[dict]:
    """The folded network as a list of nodes the peers can rebuild (NCHW semantics, PyTorch
    parameter names). Raises on anything the peers do not implement."""
    gm = torch.fx.symbolic_trace(model)
    mods = dict(gm.named_modules())
    alias: dict[str, str] = {}
    nodes: list[dict] = []

    def src(a) -> str:
        return alias.get(a.name, a.name)

    for n in gm.graph.nodes:
        if n.op == "placeholder":
            nodes.append({"name": n.name, "op": "input"})
        elif n.op == "output":
            nodes.append({"name": "output", "op": "output", "inputs": [src(n.args[0])]})
        elif n.op == "call_module":
            m = mods[n.target]
            node = {"name": n.name, "inputs": [src(n.args[0])]}
            if isinstance(m, nn.Identity):
                alias[n.name] = src(n.args[0])
                continue
            if isinstance(m, nn.Conv2d):
                assert m.dilation == (1, 1) and m.padding_mode == "zeros", n.target
                assert m.padding[0] == m.padding[1] and m.stride[0] == m.stride[1], n.target
                node.update(op="conv", weight=f"{n.target}.weight",
                            bias=f"{n.target}.bias" if m.bias is not None else None,
                            stride=m.stride[0], pad=m.padding[0], groups=m.groups,
                            cin=m.in_channels, cout=m.out_channels)
            elif isinstance(m, nn.ReLU6):
                node["op"] = "relu6"
            elif isinstance(m, nn.ReLU):
                node["op"] = "relu"
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                assert m.output_size in (1, (1, 1)), n.target
                node["op"] = "global_avg_pool"
            elif isinstance(m, nn.Flatten):
                assert m.start_dim == 1 and m.end_dim == -1, n.target
                node["op"] = "flatten"
            elif isinstance(m, nn.Linear):
                node.update(op="linear", weight=f"{n.target}.weight",
                            bias=f"{n.target}.bias" if m.bias is not None else None)
            else:
                raise ValueError(f"peer graph spec: unsupported module {type(m).__name__} ({n.target})")
            nodes.append(node)
        elif n.op == "call_function" and n.target in (operator.add, torch.add):
            nodes.append({"name": n.name, "op": "add", "inputs": [src(a) for a in n.args]})
        elif n.op == "call_function" and n.target is torch.flatten:
            assert n.args[1:] in ((1,), ()) or n.args[1] == 1, n.args
            nodes.append({"name": n.name, "op": "flatten", "inputs": [src(n.args[0])]})
        else:
            raise ValueError(f"peer graph spec: unsupported {n.op} {n.target}")
    return nodes


def last_block(model_key: str, names: list[str]) -> list[str]:
    pre = LAST_PREFIXES[model_key]
    if pre is None:  # ds_cnn: the last two parameterised modules
        mods = sorted({n.rsplit(".", 1)[0] for n in names}, key=lambda m: [int(p) if p.isdigit() else p for p in m.split(".")])
        keep = set(mods[-2:])
        return [n for n in names if n.rsplit(".", 1)[0] in keep]
    return [n for n in names if n.startswith(pre)]


def write_case(cid: str, lr: float) -> tuple[Path, dict]:
    """Build the case's model, batch and references; write build/peers/<case>/."""
    model_key, res, batch, trained = parse_case(cid)
    torch.manual_seed(0)
    model = MODELS[model_key]().eval()
    x = torch.randn(batch, CHANNELS[model_key], res, res, generator=torch.Generator().manual_seed(2))
    num_classes = model(x).shape[1]
    y = torch.randint(0, num_classes, (batch,), generator=torch.Generator().manual_seed(1))
    ref = fold_bn(model)
    names = [k for k, _ in ref.named_parameters()]
    train = names if trained == "all" else last_block(model_key, names)
    bounds = {"depthwise_out_eq_0": 0, "depthwise_out_total": 0, "other_conv_out_eq_0": 0, "conv_out_eq_6": 0}

    def count(mod, inp, out):  # conv outputs exactly at ReLU6's bounds (where gradient conventions differ)
        dw = mod.groups > 1
        bounds["depthwise_out_eq_0" if dw else "other_conv_out_eq_0"] += int((out == 0).sum())
        bounds["depthwise_out_total"] += out.numel() if dw else 0
        bounds["conv_out_eq_6"] += int((out == 6).sum())

    hooks = [m.register_forward_hook(count) for m in ref.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        logits = ref(x)
    for h in hooks:
        h.remove()
    params = {k: v.detach().numpy().copy() for k, v in ref.named_parameters()}
    gref = fold_bn(model)  # first-step gradients, the reference every framework is checked against
    nn.functional.cross_entropy(gref(x), y).backward()
    grads = {k: v.grad.numpy().copy() for k, v in gref.named_parameters()}
    case_dir = ROOT / "build" / "peers" / cid
    case_dir.mkdir(parents=True, exist_ok=True)
    case = case_dir / "case.npz"
    np.savez(case, **{f"param:{k}": v for k, v in params.items()}, **{f"grad:{k}": v for k, v in grads.items()},
             x=x.numpy(), y=y.numpy().astype(np.int64), logits=logits.numpy(), lr=np.float32(lr),
             warmup=np.int64(0), steps=np.int64(0), spec=np.array(json.dumps(graph_spec(ref))),
             param_names=np.array(json.dumps(names)), trained=np.array(json.dumps(train)))
    torch.save(model, case_dir / "model.pt")
    torch.save(ref, case_dir / "folded.pt")
    info = {"model": model_key, "input": [batch, CHANNELS[model_key], res, res], "batch": batch, "trained": trained,
            "labels": y.tolist(), "trainable_tensors": len(train), "parameter_tensors": len(names),
            "trainable_elements": int(sum(params[k].size for k in train)),
            "case": str(case.relative_to(ROOT)), "conv_outputs_at_relu6_bounds": bounds}
    return case, info


class Worker:
    """One framework's worker process (see bench/peers/common.py `serve`)."""

    def __init__(self, key: str, case: Path):
        py, script, extra, _ = FRAMEWORKS[key]
        self.key, self.case = key, case
        self.log = case.parent / f"{key}.log"
        self.proc = None
        self.ready: dict = {}
        self.error: str | None = None
        if not Path(py).exists():
            self.error = f"venv python {Path(py).relative_to(ROOT)} missing: create it with `{SETUP}`"
            return
        env = {**os.environ, **ONE_THREAD, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        if key in ("ort", "tflite"):
            env.pop("PYTHONPATH", None)
        self._err = open(self.log, "w")
        self.proc = subprocess.Popen([str(py), str(script), str(case), *extra], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, env=env, cwd=ROOT,
                                     bufsize=1)

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                self._err.flush()
                tail = (self.log.read_text().strip().splitlines() or ["(no stderr)"])[-1]
                raise RuntimeError(f"exit {self.proc.returncode}: {tail[-300:]}")
            if line.startswith("{"):
                return json.loads(line)

    def wait_ready(self) -> None:
        if self.error:
            return
        try:
            self.ready = self._read()
            assert self.ready.get("event") == "ready", self.ready
        except Exception as e:  # noqa: BLE001  (reported in the results, never faked)
            self.error = str(e)

    def cmd(self, **c) -> dict | None:
        if self.error:
            return None
        try:
            self.proc.stdin.write(json.dumps(c) + "\n")
            self.proc.stdin.flush()
            return self._read()
        except Exception as e:  # noqa: BLE001
            self.error = str(e)
            return None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _q(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_case(cid: str, frameworks: list[str], *, rounds: int, warmup: int, round_s: float, lr: float,
             rtol: float, log=print, not_run: dict | None = None) -> dict:
    """Time one case, frameworks interleaved round by round. Returns its result dict. `not_run`:
    frameworks left out of this case, with the reason (reported as such)."""
    not_run = not_run or {}
    case, row = write_case(cid, lr)
    frameworks = [k for k in frameworks if k not in not_run]
    row["load_before"] = loadavg()
    log(f"[bench] {cid}: starting {', '.join(frameworks)} (load {row['load_before']})")
    t0 = time.perf_counter()
    workers = {k: Worker(k, case) for k in frameworks}
    for w in workers.values():
        w.wait_ready()
    row["setup_wall_s"] = time.perf_counter() - t0
    live = [k for k in frameworks if not workers[k].error]
    for k in frameworks:
        if workers[k].error:
            log(f"        {k}: FAILED/SKIPPED: {workers[k].error}")
    try:
        # warm-up (also untimed: first calls, lazy initialisation)
        wt = {}
        for k in live:
            r = workers[k].cmd(cmd="round", steps=warmup)
            if r is not None:
                wt[k] = statistics.median(r["times"][len(r["times"]) // 2:])
        live = [k for k in live if not workers[k].error]
        slowest = max(wt.values()) if wt else 1.0
        steps = max(2, min(50, int(round_s / max(slowest, 1e-6))))
        row["steps_per_round"] = steps
        per = {k: [] for k in live}
        for r_i in range(rounds):
            order = live[r_i % len(live):] + live[:r_i % len(live)]
            for k in order:
                r = workers[k].cmd(cmd="round", steps=steps)
                if r is not None:
                    per[k].append(r)
        fin = {k: workers[k].cmd(cmd="finish") for k in live}
    finally:
        for w in workers.values():
            w.close()
    row["load_after"] = loadavg()
    row["wall_s"] = time.perf_counter() - t0
    res = {}
    for k in frameworks:
        w = workers[k]
        if w.error or not per.get(k) or len(per[k]) < rounds or fin.get(k) is None:
            res[k] = {"status": "failed" if Path(FRAMEWORKS[k][0]).exists() else "skipped",
                      "reason": w.error or "incomplete rounds", "log": str(w.log.relative_to(ROOT))}
            continue
        times = [t for r in per[k] for t in r["times"]]
        rmed = [statistics.median(r["times"]) for r in per[k]]
        nsteps = len(times)
        wall = sum(r["wall"] for r in per[k])
        res[k] = {"status": "ok", **{kk: v for kk, v in w.ready.items() if kk != "event"},
                  "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
                  "round_median_ms": [m * 1e3 for m in rmed],
                  "round_spread_ms": {"min": min(rmed) * 1e3, "p25": _q(rmed, .25) * 1e3,
                                      "p75": _q(rmed, .75) * 1e3, "max": max(rmed) * 1e3},
                  "cpu_per_wall": sum(r["user"] + r["sys"] for r in per[k]) / wall,
                  "sys_share_of_cpu": sum(r["sys"] for r in per[k]) / max(sum(r["user"] + r["sys"] for r in per[k]), 1e-9),
                  "minor_faults_per_step": sum(r["minflt"] for r in per[k]) / nsteps,
                  "setup_rss_mb": w.ready.get("rss_mb"),
                  **{kk: fin[k][kk] for kk in ("first_loss", "loss_after_steps", "steps_run", "losses_head")},
                  "rss_mb_after_training": fin[k]["rss_mb"], "peak_rss_mb": fin[k]["peak_rss_mb"]}
    for k, why in not_run.items():
        res[k] = {"status": "not run", "reason": why}
    row["frameworks"] = res
    tt = res.get("tinytrain", {})
    row["speedup"], row["speedup_round_range"] = {}, {}
    for k in frameworks:
        if k == "tinytrain" or res[k]["status"] != "ok" or tt.get("status") != "ok":
            continue
        row["speedup"][k] = res[k]["median_ms"] / tt["median_ms"]
        ratios = [p / q for p, q in zip(res[k]["round_median_ms"], tt["round_median_ms"])]
        row["speedup_round_range"][k] = {"min": min(ratios), "p25": _q(ratios, .25), "median": statistics.median(ratios),
                                         "p75": _q(ratios, .75), "max": max(ratios)}
    # numerics: first-step loss agreement with PyTorch eager, trajectories, gradients
    base = res.get("pytorch", {})
    agree = {}
    if base.get("status") == "ok":
        for k in frameworks:
            if k == "pytorch" or res[k]["status"] != "ok":
                continue
            d0 = abs(res[k]["first_loss"] - base["first_loss"]) / abs(base["first_loss"])
            dn = abs(res[k]["loss_after_steps"] - base["loss_after_steps"]) / abs(base["loss_after_steps"])
            agree[k] = {"first_loss_rel_diff": d0, "loss_after_steps_rel_diff": dn, "first_loss_ok": d0 <= rtol,
                        "same_steps": res[k]["steps_run"] == base["steps_run"]}
            if d0 > rtol:
                log(f"        LOSS DISAGREEMENT: {k} first loss {res[k]['first_loss']:.6f} vs PyTorch "
                    f"{base['first_loss']:.6f} (rel diff {d0:.2e} > {rtol:.0e})")
    row["loss_agreement"] = agree
    row["losses_agree"] = bool(agree) and all(a["first_loss_ok"] and a["same_steps"] for a in agree.values())
    msg = ", ".join(f"{k} {res[k]['median_ms']:.2f} ms" for k in frameworks if res[k]["status"] == "ok")
    log(f"        {msg}; speed-up " + ", ".join(f"{k} {v:.2f}x" for k, v in row["speedup"].items()))
    return row


def verdict(row: dict, k: str) -> str:
    rr = row["speedup_round_range"].get(k)
    if rr is None:
        return "not measured"
    if rr["min"] > 1.0:
        return "faster (every round)"
    if rr["p25"] > 1.0:
        return "faster (beyond the interquartile range, not every round)"
    if row["speedup"][k] > 1.0:
        return "faster by the median, within the spread"
    if rr["p75"] < 1.0:
        return "SLOWER (beyond the interquartile range)"
    return "slower by the median, within the spread"


def fmt_ratio(row: dict, k: str) -> str:
    if k not in row["speedup"]:
        st = row["frameworks"][k]
        return st["status"]
    rr = row["speedup_round_range"][k]
    s = f"{row['speedup'][k]:.2f}x [{rr['min']:.2f}-{rr['max']:.2f}]"
    return f"**{s}**" if rr["min"] > 1.0 else s


def fmt_ms(row: dict, k: str) -> str:
    r = row["frameworks"][k]
    if r["status"] != "ok":
        return r["status"]
    s = r["round_spread_ms"]
    return f"{r['median_ms']:.2f} [{s['p25']:.2f}-{s['p75']:.2f}]"


def profile_summary(cid: str, p: dict, row: dict | None = None) -> str:
    """One paragraph from a bench/host_profile.py result (and the sweep row, for the Python share)."""
    h, c, d = p["heap_allocator"], p["caching_allocator"], p["dispatch_profile_caching"]
    kinds = list(d["by_kind"].items())
    kind_txt = ", ".join(f"{k} {100 * v['share']:.0f}%" for k, v in kinds[:4])
    top = "; ".join(f"`{t['name']}` {100 * t['share']:.0f}%"
                    + (f" ({t['gflops']:.0f} GFLOP/s)" if t.get("gflops") is not None else "") for t in d["top"][:3])
    txt = (f"Profile of tinytrain's step (`bench/results/host_profile_{cid}.md`, IREE's C benchmark tool on the saved "
           f"program, {p['steps']} steps): minor page faults per step (whole process, start-up included) "
           f"{h['minor_faults_per_step']:.0f} with IREE's default heap allocator, {c['minor_faults_per_step']:.0f} with the "
           f"caching allocator tinytrain uses; CPU per step {h['cpu_ms']:.1f} -> {c['cpu_ms']:.1f} ms. "
           f"Kernel time by kind: {kind_txt}. Top dispatches: {top}.")
    tt = (row or {}).get("frameworks", {}).get("tinytrain", {})
    if tt.get("status") == "ok":
        txt += (f" In the sweep tinytrain's worker had {tt['minor_faults_per_step']:.0f} page faults per step and "
                f"{100 * tt['sys_share_of_cpu']:.0f}% system time, so what remains is kernel time")
        txt += (": mostly the conv weight-gradient `linalg.generic`s (depthwise: one stride-1 contraction "
                "per stride phase with `to-linalg{convgrad=im2col}`)."
                if kinds and kinds[0][0].startswith("conv weight gradient") else
                f": mostly {kinds[0][0]} kernels as IREE generates them." if kinds else ".")
        # the least-loaded steps of the sweep, and what the Python call adds to the C tool's step
        fws = row["frameworks"]
        slower = [k for k in row.get("speedup", {}) if row["speedup_round_range"][k]["min"] <= 1.0]
        fastest = ", ".join(f"{SHORT[k]} {fws[k]['min_ms']:.2f} ms" for k in slower if "min_ms" in fws[k])
        if fastest and "min_ms" in tt:
            python = (f"the Python call adds at most {tt['min_ms'] - c['real_ms']:.2f} ms"
                      if tt["min_ms"] > c["real_ms"] else
                      "tinytrain's fastest step through Python is faster than the C tool's step measured at "
                      "another moment of the shared machine, so the Python call's cost is below the load noise")
            txt += (f" Fastest step of the sweep (least load): tinytrain {tt['min_ms']:.2f} ms, {fastest}; "
                    f"IREE's C tool, no Python: {c['real_ms']:.2f} ms wall / {c['cpu_ms']:.2f} ms CPU per step: "
                    f"{python}.")
    return txt


def markdown(title: str, cmd: str, rows: dict, meta: dict, rtol: float, intro: list[str] = (),
             profile_dir: Path | None = None) -> str:
    fws = meta["frameworks"]
    peers = [k for k in fws if k != "tinytrain"]
    md = [f"# {title}", "", f"Produced by `{cmd}` ({meta['date']}). Machine: {meta['machine']}; "
          f"load average (1/5/15 min) before the run {meta['load_before']}, after {meta['load_after']} "
          f"(`uptime` before: `{meta['uptime_before']}`; after: `{meta['uptime_after']}`).", "", *intro,
          "Each framework runs in its own long-lived process, one thread; after a warm-up round, "
          f"{meta['rounds']} timed rounds of the same number of SGD steps are run one framework at a time in "
          "a rotating order (ABCD, BCDA, ...), so the frameworks alternate under the same load. Step time: "
          "median over all timed steps [interquartile range of the per-round medians]. Speed-up: the peer's "
          "median / tinytrain's (above 1x tinytrain is faster) [min-max of the per-round ratios, each round's "
          "peer median / the same round's tinytrain median]; **bold**: faster in every round.", "",
          "| case | " + " | ".join(f"{SHORT[k]} ms" for k in fws) + " | "
          + " | ".join(f"speed-up vs {SHORT[k]}" for k in peers) + " | losses |",
          "|---|" + "---|" * (len(fws) + len(peers)) + "---|"]
    for cid, r in rows.items():
        md.append(f"| {cid} | " + " | ".join(fmt_ms(r, k) for k in fws) + " | "
                  + " | ".join(fmt_ratio(r, k) for k in peers) + " | "
                  + ("agree" if r["losses_agree"] else "**DISAGREE**") + " |")
    md += ["", "## Memory and compile time", "",
           "Peak RSS: the process's VmHWM at the end (includes model building, compilation/conversion: "
           "torch-mlir + IREE for tinytrain, ONNX export + artifact generation for ORT, SavedModel + converter "
           "for TFLite, inductor for torch.compile); RSS: VmRSS after the timed rounds. Setup: the worker's "
           "start-up to ready (model building, compile or conversion, the numerics checks); compile: "
           "`tinytrain.compile(..., gradients=True)` of the timed program (the extra `@gradients` entry point is what "
           "the gradient check calls) / torch.compile's first forward+backward.", "",
           "| case | " + " | ".join(f"{SHORT[k]} peak / RSS MB" for k in fws) + " | tinytrain compile s | "
           "torch.compile first call s | " + " | ".join(f"{SHORT[k]} setup s" for k in fws) + " |",
           "|---|" + "---|" * (2 * len(fws) + 2)]
    for cid, r in rows.items():
        f = r["frameworks"]
        cells = []
        for k in fws:
            cells.append(f"{f[k]['peak_rss_mb']:.0f} / {f[k]['rss_mb_after_training']:.0f}" if f[k]["status"] == "ok" else "-")
        tc = f"{f['tinytrain']['compile_s']:.1f}" if f.get("tinytrain", {}).get("status") == "ok" else "-"
        ic = (f"{f['torch_compile']['first_call_s']:.1f}" if f.get("torch_compile", {}).get("status") == "ok" else "-")
        setups = [f"{f[k]['setup_s']:.1f}" if f[k]["status"] == "ok" and "setup_s" in f[k] else "-" for k in fws]
        md.append(f"| {cid} | " + " | ".join(cells) + f" | {tc} | {ic} | " + " | ".join(setups) + " |")
    md += ["", "## Where the time goes (per step, timed rounds)", "",
           "CPU/wall: the worker's user+system CPU time over its rounds' wall time (below 1: it waited for a "
           "core, i.e. machine load); sys: system share of that CPU time; faults: minor page faults per step.", "",
           "| case | " + " | ".join(f"{SHORT[k]} cpu/wall, sys, faults" for k in fws) + " |",
           "|---|" + "---|" * len(fws)]
    for cid, r in rows.items():
        f = r["frameworks"]
        md.append(f"| {cid} | " + " | ".join(
            f"{f[k]['cpu_per_wall']:.2f}, {100 * f[k]['sys_share_of_cpu']:.0f}%, {f[k]['minor_faults_per_step']:.0f}"
            if f[k]["status"] == "ok" else "-" for k in fws) + " |")
    md += ["", "## Verdict per case", "",
           "Where tinytrain is not faster in every round, the profile of its step (if "
           "`bench/host_profile.py <case>` was run: `bench/results/host_profile_<case>.md`) says where its time goes.", ""]
    for cid, r in rows.items():
        parts = [f"{SHORT[k]}: {verdict(r, k)}" for k in peers if k in r["speedup"]]
        missing = [f"{SHORT[k]} {r['frameworks'][k]['status']} ({r['frameworks'][k]['reason'][:160]})"
                   for k in peers if r["frameworks"][k]["status"] not in ("ok", "not run")]
        md.append(f"- {cid}: " + "; ".join(parts) + (f"; not measured: {'; '.join(missing)}" if missing else "")
                  + f". Load {r['load_before']} -> {r['load_after']}.")
        loses = [k for k in peers if k in r["speedup"] and r["speedup_round_range"][k]["min"] <= 1.0]
        prof = (profile_dir or Path()) / f"host_profile_{cid}.json"
        if loses and profile_dir is not None and prof.exists():
            md.append("  " + profile_summary(cid, json.loads(prof.read_text()), r))
    md += loss_section(rows, fws, rtol)
    return "\n".join(md) + "\n"


def loss_section(rows: dict, fws: list[str], rtol: float) -> list[str]:
    md = ["", "## Numerics: every framework trains the same weights", "",
          f"First-step losses must agree with PyTorch eager to {rtol:.0e} relative; the last-step loss (after "
          "the same number of SGD steps in every framework) shows the trajectories stay together. Gradients: "
          "each framework's first-step gradients of the trained tensors (before any update) vs `torch.autograd` on "
          "the folded model, max |diff| / max |ref| per tensor: the worst tensor and how many exceed 1e-3. "
          "Logits: forward vs PyTorch, max |diff| / max |logit|. (MobileNetV2's classifier starts with zero "
          "bias and N(0, 0.01) weights, so its first-step loss is about ln(10) whatever the backbone computes; "
          "the logits, gradients and last-step loss are the discriminating checks.)", "",
          "| case | framework | trained tensors / elements | first-step loss | rel. diff | last-step loss | rel. diff "
          "| logits rel. err | grads rel. err (worst tensor) | tensors > 1e-3 |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for cid, r in rows.items():
        for k in fws:
            x = r["frameworks"][k]
            if x["status"] == "not run":
                continue
            if x["status"] != "ok":
                md.append(f"| {cid} | {SHORT[k]} | {x['status']}: {x['reason'][:120]} | | | | | | | |")
                continue
            a = r["loss_agreement"].get(k)
            d0 = "reference" if a is None else f"{a['first_loss_rel_diff']:.1e}" + ("" if a["first_loss_ok"] else " **DISAGREES**")
            dn = "reference" if a is None else f"{a['loss_after_steps_rel_diff']:.1e}"
            le = f"{x['logits_rel_err']:.1e}" if "logits_rel_err" in x else "-"
            ge = (f"{x['grad_rel_err_max']:.1e} (`{x['grad_worst_tensor']}`) | {x['grad_tensors_over_1e-3']}"
                  if "grad_rel_err_max" in x else "- | -")
            md.append(f"| {cid} | {SHORT[k]} | {x.get('trainable_tensors', '-')} / {x.get('trainable_elements', '-')} "
                      f"| {x['first_loss']:.6f} | {d0} | {x['loss_after_steps']:.6f} | {dn} | {le} | {ge} |")
            if x.get("grad_tensors_over_1e-3"):
                line = (f"**{cid}, {SHORT[k]}: first-step gradients differ from PyTorch** in "
                        f"{x['grad_tensors_over_1e-3']} of {x.get('trainable_tensors')} tensors (worst "
                        f"`{x['grad_worst_tensor']}`, {x['grad_rel_err_max']:.1e}).")
                if "grad_rel_err_max_vs_inclusive_relu6_mask" in x:
                    b = r["conv_outputs_at_relu6_bounds"]
                    line += (" Against PyTorch with ReLU6's gradient passed at x == 0 and x == 6 (instead of zeroed, "
                             "as PyTorch, TF and tinytrain do) they agree to "
                             f"{x['grad_rel_err_max_vs_inclusive_relu6_mask']:.1e}: ONNX Runtime's gradient of `Clip` "
                             "(the ONNX form of ReLU6) is inclusive at its bounds. The folded biases start at 0, so a "
                             "depthwise window over all-zero ReLU6 outputs is exactly 0: on this batch "
                             f"{b['depthwise_out_eq_0']} of {b['depthwise_out_total']} depthwise outputs are exactly 0 "
                             f"({b['other_conv_out_eq_0']} other conv outputs are 0, {b['conv_out_eq_6']} are 6). Both "
                             "are valid subgradients, but they make ORT's trajectory differ.")
                notes.append(line)
    for n in notes:
        md += ["", n]
    return md


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def sweep(cases: list[str], frameworks: list[str], args, out_json: Path, out_md: Path, title: str, cmd: str,
          intro: list[str] = ()) -> dict:
    """Run `cases`, writing the JSON and Markdown after each case (a partial run is still a result)."""
    torch.set_num_threads(1)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{platform.machine()}, "
            f"{os.cpu_count()} CPUs", "python": platform.python_version(), "torch": torch.__version__,
            "threads": 1, "rounds": args.rounds, "warmup_steps": args.warmup, "round_s": args.round_s,
            "lr": args.lr, "loss_rtol": args.loss_rtol, "frameworks": frameworks,
            "framework_names": {k: FRAMEWORKS[k][3] for k in frameworks},
            "uptime_before": uptime(), "load_before": loadavg(), "command": cmd}
    rows: dict = {}
    only = {k: set(v) for k, v in (getattr(args, "only_cases", None) or {}).items()}
    for cid in cases:
        skip = {k: f"run only in {', '.join(sorted(only[k]))} (time budget of the shared machine)"
                for k in frameworks if k in only and cid not in only[k]}
        rows[cid] = run_case(cid, frameworks, rounds=args.rounds, warmup=args.warmup, round_s=args.round_s,
                             lr=args.lr, rtol=args.loss_rtol, not_run=skip)
        meta.update(uptime_after=uptime(), load_after=loadavg(), complete=len(rows) == len(cases))
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"meta": meta, **rows}, indent=2) + "\n")
        out_md.write_text(markdown(title, cmd, rows, meta, args.loss_rtol, intro, out_md.parent))
    print(out_md.read_text())
    return rows


def add_common_args(ap: argparse.ArgumentParser, default_fw: str) -> None:
    ap.add_argument("--frameworks", default=default_fw, help=f"subset of {','.join(FRAMEWORKS)}")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5, help="steps of the untimed warm-up round")
    ap.add_argument("--round-s", type=float, default=0.6,
                    help="target seconds per round of the slowest framework (sets the steps per round, 2..50)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--loss-rtol", type=float, default=1e-3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 2 warm-up steps, short rounds")


def frameworks_arg(ap, args) -> list[str]:
    fws = [f for f in args.frameworks.split(",") if f]
    for f in fws:
        if f not in FRAMEWORKS:
            ap.error(f"unknown framework {f!r} (choose from {', '.join(FRAMEWORKS)})")
    if "tinytrain" not in fws:
        ap.error("tinytrain must be one of the frameworks (speed-ups are relative to it)")
    if args.quick:
        args.rounds, args.warmup, args.round_s = 2, 2, 0.2
    for f in fws:
        if not Path(FRAMEWORKS[f][0]).exists():
            print(f"[bench] {f}: {Path(FRAMEWORKS[f][0]).relative_to(ROOT)} missing; its column is skipped. "
                  f"Create it with: {SETUP}", flush=True)
    return fws


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="ds_cnn_28_b1_all,mbv2_w035_128_b1_all")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    add_common_args(ap, "tinytrain,pytorch,ort,tflite")
    args = ap.parse_args(argv)
    fws = frameworks_arg(ap, args)
    cmd = ".venv/bin/python bench/peer_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = sweep([c for c in args.cases.split(",") if c], fws, args, args.out / "peer_step.json",
                 args.out / "peer_step.md", "Host training step, interleaved: tinytrain vs peers (small models)",
                 cmd.strip())
    bad = [c for c, r in rows.items() if not r["losses_agree"]]
    if bad:
        print(f"[peer_step] first-step losses DISAGREE for: {', '.join(bad)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
