"""Host training-step time: tinytrain vs PyTorch eager vs ONNX Runtime training vs TFLite training.

Same BN-folded model, same weights, same batch, same labels, plain SGD (same lr), all parameters
trained, one thread each. For every model this script:

1. builds it with seed 0 (the models of `bench/host_step.py`), folds BN with `conftest.fold_bn`
   (the folding the tests use), and dumps to `build/peers/<model>/case.npz`: every folded
   parameter (PyTorch layout, PyTorch names), the input batch (NCHW), the labels, lr, warm-up and
   timed step counts, the PyTorch logits, and a JSON graph spec (conv / relu6 / add / pool / linear
   nodes, traced with torch.fx) from which the peers rebuild the network;
2. times `tinytrain.compile(...).train_step` and PyTorch eager in this process;
3. runs `bench/peers/ort_step.py` and `bench/peers/tflite_step.py`, each with the python of its own
   venv (`build/peers/ort`, `build/peers/tflite`, made by `bash bench/peers/setup_peers.sh`); each
   prints one JSON line. A missing venv is reported and its column skipped, never faked;
4. checks that the four first-step losses agree (relative difference <= --loss-rtol against
   PyTorch eager) and reports any disagreement in the output;
5. writes `bench/results/peer_step.json` and `.md`.

Every framework runs `warmup + steps` SGD steps on the same batch from the same initial weights:
`first_loss` is the loss step 1 reports (initial weights), `loss_after_steps` the loss the last step
reports (after warmup + steps - 1 updates), and the time is the median of the last `steps` steps.
Not a test: timings on a shared 2-core VM vary by about +-25%.

    .venv/bin/python bench/peer_step.py [--steps 100] [--warmup 10] [--models ds_cnn_28,mbv2_w035_128]
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from host_step import MODELS, fold_bn, median_time  # noqa: E402  (same models, same BN folding)

import tinytrain  # noqa: E402

PEERS = {  # column -> (venv, script, human name)
    "ort": (ROOT / "build" / "peers" / "ort", ROOT / "bench" / "peers" / "ort_step.py",
            "ONNX Runtime training (onnxruntime-training-cpu 1.19.2)"),
    "tflite": (ROOT / "build" / "peers" / "tflite", ROOT / "bench" / "peers" / "tflite_step.py",
               "TFLite training (tensorflow-cpu 2.18.1, Flex delegate)"),
}
SETUP = "bash bench/peers/setup_peers.sh"


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


def run_peer(key: str, case: Path) -> dict:
    venv, script, _ = PEERS[key]
    py = venv / "bin" / "python"
    if not py.exists():
        msg = f"venv {venv.relative_to(ROOT)} missing: create it with `{SETUP}`"
        print(f"        {key}: SKIPPED ({msg})", flush=True)
        return {"status": "skipped", "reason": msg}
    env = {**os.environ, **ONE_THREAD, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("PYTHONPATH", None)
    p = subprocess.run([str(py), str(script), str(case)], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    log = case.parent / f"{key}.log"
    log.write_text(p.stdout + "\n--- stderr ---\n" + p.stderr)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        print(f"        {key}: FAILED (exit {p.returncode}): {tail}; full log {log.relative_to(ROOT)}",
              flush=True)
        return {"status": "failed", "reason": f"exit {p.returncode}: {tail}",
                "log": str(log.relative_to(ROOT))}
    r = json.loads(lines[-1])
    r["status"] = "ok"
    return r


def bench(name: str, warmup: int, steps: int, lr: float, peers: list[str], rtol: float) -> dict:
    make, shape = MODELS[name]
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(*shape)
    num_classes = model(x).shape[1]
    y = torch.randint(0, num_classes, (shape[0],), generator=torch.Generator().manual_seed(1))
    ref = fold_bn(model)
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
    spec = graph_spec(ref)
    case_dir = ROOT / "build" / "peers" / name
    case_dir.mkdir(parents=True, exist_ok=True)
    case = case_dir / "case.npz"
    np.savez(case, **{f"param:{k}": v for k, v in params.items()}, **{f"grad:{k}": v for k, v in grads.items()},
             x=x.numpy(), y=y.numpy().astype(np.int64), logits=logits.numpy(), lr=np.float32(lr),
             warmup=np.int64(warmup), steps=np.int64(steps), spec=np.array(json.dumps(spec)),
             param_names=np.array(json.dumps(list(params))))
    row = {"model": name, "input": list(shape), "labels": y.tolist(), "trainable_tensors": len(params),
           "case": str(case.relative_to(ROOT)), "conv_outputs_at_relu6_bounds": bounds}

    # tinytrain: compiles the unfolded eval model (it folds BN itself), all parameters trained.
    t = time.perf_counter()
    prog = tinytrain.compile(model, x, lr=lr)
    row["tinytrain_compile_s"] = time.perf_counter() - t
    assert len(prog.trainable) == len(params), (len(prog.trainable), len(params))
    losses: list[float] = []
    ms = median_time(lambda: losses.append(prog.train_step(x, y)), warmup, steps) * 1e3
    # The check uses a second program (gradients=True adds an entry point) so the timed one is the plain one.
    gprog = tinytrain.compile(model, x, lr=lr, gradients=True)
    g_ours, _ = gprog.gradients(x, y)
    t_logits = np.asarray(gprog.predict(x))
    t_lerr = float(np.abs(t_logits - logits.numpy()).max() / np.abs(logits.numpy()).max())
    errs = {k: float(np.abs(g_ours[k] - grads[k]).max() / max(np.abs(grads[k]).max(), 1e-12)) for k in grads}
    worst = max(errs, key=errs.get)
    gcheck = {"grad_rel_err_max": errs[worst], "grad_worst_tensor": worst,
              "grad_tensors_over_1e-3": sum(e > 1e-3 for e in errs.values())}
    row["tinytrain"] = {"status": "ok", "median_ms": ms, "first_loss": float(losses[0]),
                        "loss_after_steps": float(losses[-1]), "steps_run": len(losses), "logits_rel_err": t_lerr, **gcheck}

    # PyTorch eager on the folded copy.
    opt = torch.optim.SGD(ref.parameters(), lr=lr)
    losses = []

    def torch_step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(ref(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    ms = median_time(torch_step, warmup, steps) * 1e3
    row["pytorch_eager"] = {"status": "ok", "median_ms": ms, "first_loss": losses[0],
                            "loss_after_steps": losses[-1], "steps_run": len(losses),
                            "speedup_of_tinytrain": ms / row["tinytrain"]["median_ms"]}
    print(f"        tinytrain {row['tinytrain']['median_ms']:.2f} ms, PyTorch eager "
          f"{row['pytorch_eager']['median_ms']:.2f} ms", flush=True)
    for k in peers:
        row[k] = run_peer(k, case)
        if row[k]["status"] == "ok":
            print(f"        {k} {row[k]['median_ms']:.2f} ms (first loss {row[k]['first_loss']:.6f})",
                  flush=True)

    base = row["pytorch_eager"]
    agree = {}
    for k in ["tinytrain", *peers]:
        if row[k]["status"] != "ok":
            continue
        if k != "tinytrain":
            row[k]["speedup_of_tinytrain"] = row[k]["median_ms"] / row["tinytrain"]["median_ms"]
        d0 = abs(row[k]["first_loss"] - base["first_loss"]) / abs(base["first_loss"])
        dn = abs(row[k]["loss_after_steps"] - base["loss_after_steps"]) / abs(base["loss_after_steps"])
        agree[k] = {"first_loss_rel_diff": d0, "loss_after_steps_rel_diff": dn, "first_loss_ok": d0 <= rtol}
        if d0 > rtol:
            print(f"        LOSS DISAGREEMENT: {k} first loss {row[k]['first_loss']:.6f} vs PyTorch "
                  f"{base['first_loss']:.6f} (rel diff {d0:.2e} > {rtol:.0e})", flush=True)
    row["loss_agreement"] = agree
    row["losses_agree"] = all(a["first_loss_ok"] for a in agree.values())
    return row


def fmt_ms(r: dict) -> str:
    return f"{r['median_ms']:.2f}" if r["status"] == "ok" else r["status"]


def fmt_x(row: dict, k: str) -> str:
    r = row[k]
    return f"{r['median_ms'] / row['tinytrain']['median_ms']:.2f}x" if r["status"] == "ok" else "-"


def markdown(rows: list[dict], meta: dict, peers: list[str], rtol: float) -> str:
    cols = ["pytorch_eager", *peers]
    head = {"pytorch_eager": "PyTorch eager", "ort": "ORT training", "tflite": "TFLite training"}
    md = ["# Host training step: tinytrain vs PyTorch eager, ONNX Runtime training, TFLite training", "",
          f"Median of {meta['steps']} steps after {meta['warmup']} warm-up, batch 1, one thread each, "
          f"plain SGD (lr {meta['lr']}), all parameters trained, the same BN-folded weights, input and "
          "label for every framework. Produced by `bench/peer_step.py` "
          f"(peers in their own venvs: `{SETUP}`).", "",
          "| model | input | tinytrain (ms) | " + " | ".join(f"{head[c]} (ms)" for c in cols) + " | "
          + " | ".join(f"tinytrain speed-up vs {head[c]}" for c in cols) + " | first-step loss (max rel. diff vs eager) |",
          "|---|---|---|" + "---|" * (2 * len(cols)) + "---|"]
    for r in rows:
        ag = r["loss_agreement"]
        worst = max(a["first_loss_rel_diff"] for a in ag.values())
        verdict = "agree" if r["losses_agree"] else "**DISAGREE**"
        md.append(f"| {r['model']} | {'x'.join(map(str, r['input']))} | {fmt_ms(r['tinytrain'])} | "
                  + " | ".join(fmt_ms(r[c]) for c in cols) + " | "
                  + " | ".join(fmt_x(r, c) for c in cols)
                  + f" | {r['pytorch_eager']['first_loss']:.6f} ({verdict}, {worst:.1e}) |")
    md += ["", "Speed-up = that framework's median step time / tinytrain's: above 1x tinytrain is faster, "
           "below 1x it is slower.", ""]
    for r in rows:
        ok = [c for c in cols if r[c]["status"] == "ok"]
        faster = [head[c] for c in ok if r[c]["median_ms"] > r["tinytrain"]["median_ms"]]
        slower = [head[c] for c in ok if r[c]["median_ms"] <= r["tinytrain"]["median_ms"]]
        md.append(f"- {r['model']}: tinytrain is faster than {', '.join(faster) or 'none'}"
                  + (f"; **slower than (or equal to) {', '.join(slower)}**" if slower else "")
                  + (f"; not measured: {', '.join(head[c] for c in cols if c not in ok)}" if len(ok) < len(cols) else "")
                  + ".")
    md += [
           "", "## Loss agreement", "",
           f"Every framework starts from the same weights and runs {meta['warmup'] + meta['steps']} SGD steps "
           f"on the same batch. First-step losses must agree with PyTorch eager to {rtol:.0e} relative; "
           "the last-step loss (after all but one update) shows the trajectories stay together. "
           "(MobileNetV2's classifier starts with N(0, 0.01) weights and zero bias, so its first-step loss "
           "is ln(10) = 2.302585 whatever the backbone computes; there the forward-logits error and the "
           "last-step loss are the discriminating checks.)", "",
           "Gradients: every framework's first-step gradients (before any update) vs `torch.autograd` on the "
           "folded model, max |diff| / max |ref| per tensor; the worst tensor and how many tensors exceed 1e-3.", "",
           "| model | framework | first-step loss | rel. diff | last-step loss | rel. diff | forward logits rel. err "
           "| first-step grads rel. err (worst tensor) | tensors > 1e-3 |",
           "|---|---|---|---|---|---|---|---|---|"]
    names = {"tinytrain": "tinytrain", **head}
    for r in rows:
        for k in ["pytorch_eager", "tinytrain", *peers]:
            x = r[k]
            if x["status"] != "ok":
                md.append(f"| {r['model']} | {names[k]} | {x['status']}: {x['reason']} | | | | | | |")
                continue
            a = r["loss_agreement"].get(k)
            d0 = "reference" if a is None else f"{a['first_loss_rel_diff']:.1e}" + ("" if a["first_loss_ok"] else " **DISAGREES**")
            dn = "reference" if a is None else f"{a['loss_after_steps_rel_diff']:.1e}"
            le = f"{x['logits_rel_err']:.1e}" if "logits_rel_err" in x else "-"
            ge = (f"{x['grad_rel_err_max']:.1e} (`{x['grad_worst_tensor']}`) | {x['grad_tensors_over_1e-3']}"
                  if "grad_rel_err_max" in x else ("reference | -" if k == "pytorch_eager" else "- | -"))
            md.append(f"| {r['model']} | {names[k]} | {x['first_loss']:.6f} | {d0} | "
                      f"{x['loss_after_steps']:.6f} | {dn} | {le} | {ge} |")
    for r in rows:
        for k in ["tinytrain", *peers]:
            x = r[k]
            if x["status"] == "ok" and x.get("grad_tensors_over_1e-3"):
                md.append("")
                line = (f"**{r['model']}, {names[k]}: first-step gradients differ from PyTorch** in "
                        f"{x['grad_tensors_over_1e-3']} of {r['trainable_tensors']} tensors (worst "
                        f"`{x['grad_worst_tensor']}`, {x['grad_rel_err_max']:.1e}).")
                if "grad_rel_err_max_vs_inclusive_relu6_mask" in x:
                    line += (" Against PyTorch with ReLU6's gradient passed at x == 0 and x == 6 (instead of "
                             "zeroed, as PyTorch, TF and tinytrain do) they agree to "
                             f"{x['grad_rel_err_max_vs_inclusive_relu6_mask']:.1e}: ONNX Runtime's gradient "
                             "of `Clip` (the ONNX form of ReLU6) is inclusive at its bounds. The folded biases start at 0, "
                             "so a depthwise window over all-zero ReLU6 outputs is exactly 0: on this batch "
                             f"{r['conv_outputs_at_relu6_bounds']['depthwise_out_eq_0']} of "
                             f"{r['conv_outputs_at_relu6_bounds']['depthwise_out_total']} depthwise outputs are "
                             f"exactly 0 ({r['conv_outputs_at_relu6_bounds']['other_conv_out_eq_0']} other conv "
                             f"outputs are 0, {r['conv_outputs_at_relu6_bounds']['conv_out_eq_6']} are 6). Both are valid subgradients, "
                             f"but they make ORT's trajectory differ: its last-step loss is "
                             f"{r['loss_agreement'][k]['loss_after_steps_rel_diff']:.1e} from PyTorch's.")
                md.append(line)
    skipped = {k for r in rows for k in peers if r[k]["status"] != "ok"}
    if skipped:
        md += ["", "## Skipped or failed peers", ""]
        for r in rows:
            for k in peers:
                if r[k]["status"] != "ok":
                    md.append(f"- {r['model']}, {names[k]}: {r[k]['status']}: {r[k]['reason']}")
    md += ["", "## Setup", "",
           f"- Machine {meta['machine']}, Python {meta['python']}, torch {meta['torch']} (tinytrain: IREE "
           f"llvm-cpu, device {meta['iree_device']}).",
           "- ORT: `onnxruntime-training-cpu==1.19.2`; the folded network is rebuilt from the graph spec in "
           "torch, exported with `torch.onnx.export(..., training=TrainingMode.TRAINING, dynamo=False)` "
           "(keeps equal-valued initializers separate), `generate_artifacts(..., loss=CrossEntropyLoss, "
           "optimizer=SGD)`, IR version lowered to 10; `SessionOptions` intra/inter-op threads 1. Time = "
           "`module(x, y)` + `optimizer.step()` + `module.lazy_reset_grad()`.",
           "- TFLite: `tensorflow-cpu==2.18.1`; the same network in NHWC (conv HWIO, depthwise [KH,KW,C,1], "
           "linear [in,out]; explicit zero padding as in PyTorch), a `tf.Module` whose `train` signature "
           "does `GradientTape` + `assign_sub(lr * g)`, converted with builtins + SELECT_TF_OPS (Flex) and "
           "resource variables; `Interpreter(num_threads=1)`, time = one `get_signature_runner(\"train\")` call.",
           "- Forward logits rel. err: the peer's forward (ORT InferenceSession on the exported forward graph; "
           "the TFLite `infer` signature) vs PyTorch on the folded model, max |diff| / max |logit|.",
           "- One thread: OMP/MKL/TF intra- and inter-op = 1, `torch.set_num_threads(1)`, IREE local-sync."]
    return "\n".join(md) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="ds_cnn_28,mbv2_w035_128")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--loss-rtol", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    peers = [p for p in args.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r} (choose from {', '.join(PEERS)})")
        if not (PEERS[p][0] / "bin" / "python").exists():
            print(f"[peer_step] {p}: venv {PEERS[p][0].relative_to(ROOT)} missing; its column is skipped. "
                  f"Create it with: {SETUP}", flush=True)
    rows = []
    for name in args.models.split(","):
        print(f"[peer_step] {name} ...", flush=True)
        rows.append(bench(name, args.warmup, args.steps, args.lr, peers, args.loss_rtol))
    meta = {"machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__,
            "threads": 1, "steps": args.steps, "warmup": args.warmup, "lr": args.lr, "batch": 1,
            "loss_rtol": args.loss_rtol, "iree_device": "local-sync",
            "peers": {k: PEERS[k][2] for k in peers}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer_step.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    md = markdown(rows, meta, peers, args.loss_rtol)
    (args.out / "peer_step.md").write_text(md)
    print(md)
    bad = [r["model"] for r in rows if not r["losses_agree"]]
    if bad:
        print(f"[peer_step] first-step losses DISAGREE for: {', '.join(bad)} (see the table)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
