"""`make demo`: on-device transfer learning on Fashion-MNIST, on the host and on an emulated
Cortex-M4 (QEMU mps2-an386, 256 KB SRAM enforced by the linker).

1. "Cloud" pre-training, in PyTorch: a depthwise-separable CNN learns classes 0-4 (cached in
   build/demo/pretrained.pt, so later runs skip it).
2. The classifier is replaced by a fresh 10-class head; tinytrain compiles a training step that
   updates only the last block and the head (a sparse update, as in the paper), frozen weights
   folded into the program.
3. Host: the compiled `.vmfb` trains on new samples of all 10 classes; the loss and the test
   accuracy before/after are printed.
4. Device: the same model, compiled for Cortex-M4 (batch 1), trains in QEMU on samples streamed
   over semihosting; the demo prints the loss, accuracy before/after, and peak SRAM.
5. int8 + QAS on the device (the paper's setting): the ImageNet-pretrained int8 MobileNetV2-w0.35
   of the paper's authors (`tinytrain.pretrained`), its first INT8_BLOCKS blocks at
   INT8_HW x INT8_HW (a short demo), a new fp32 10-class head, transfer-learns Animal-MNIST
   (`tinytrain.datasets`) on the emulated Cortex-M4: int8 forward, fp32 backward, QAS, the last
   block's int8 pointwise weights written back with rounding, its int32 biases and the head.

Options: python -m tinytrain.demo [--device-steps N] [--int8-steps N] [--host-only] [--no-int8] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import tinytrain
from tinytrain.data import FASHION_MNIST_CLASSES, fashion_mnist, normalize
from tinytrain.models import ds_cnn

TRAINABLE = ["9.bias", "12.weight", "12.bias", "17.weight", "17.bias"]  # last block + head


def say(msg: str) -> None:
    print(msg, flush=True)


def pretrain(cache: Path) -> nn.Module:
    torch.manual_seed(0)
    model = ds_cnn(num_classes=10, in_channels=1, width=16)
    if cache.exists():
        model.load_state_dict(torch.load(cache, weights_only=True))
        say(f"[1/5] pre-trained weights loaded from {cache}")
        return model.eval()
    t = time.time()
    x, y = fashion_mnist("train")
    keep = y < 5
    X, Y = torch.from_numpy(normalize(x[keep][:6000])), torch.from_numpy(y[keep][:6000])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for epoch in range(2):
        perm = torch.randperm(len(Y))
        for i in range(0, len(Y), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), Y[idx]).backward()
            opt.step()
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), cache)
    say(f"[1/5] pre-trained on classes 0-4 ({', '.join(FASHION_MNIST_CLASSES[:5])}) "
        f"in PyTorch: {time.time() - t:.1f}s, cached in {cache}")
    return model.eval()


def new_head(model: nn.Module) -> nn.Module:
    model[-1] = nn.Linear(model[-1].in_features, 10)
    nn.init.zeros_(model[-1].weight)
    nn.init.zeros_(model[-1].bias)
    return model.eval()


def accuracy(prog, X, Y) -> float:
    n = prog.input_shape[0]
    hits = sum(int((prog.predict(X[i:i + n]).argmax(1) == Y[i:i + n]).sum()) for i in range(0, len(Y) - n + 1, n))
    return hits / (len(Y) // n * n)


def host(model, Xd, Yd, Xt, Yt, lr: float) -> None:
    t = time.time()
    prog = tinytrain.compile(model, torch.zeros(1, 1, 28, 28), trainable=TRAINABLE, lr=lr)
    say(f"[2/5] compiled for the host: {len(prog.trainable)} trained tensors "
        f"({sum(v.size for v in prog.program_params())} values), {time.time() - t:.1f}s")
    before = accuracy(prog, Xt, Yt)
    losses = []
    for i in range(len(Yd)):
        losses.append(prog.train_step(Xd[i:i + 1], Yd[i:i + 1]))
        if (i + 1) % 200 == 0:
            say(f"      host step {i + 1:5d}: mean loss of the last 200 = {np.mean(losses[-200:]):.4f}")
    after = accuracy(prog, Xt, Yt)
    say(f"[3/5] host: test accuracy {before:.1%} -> {after:.1%} after {len(Yd)} steps (batch 1)")
    return prog


def device(model, Xd, Yd, Xt, Yt, lr: float, out: Path, steps: int) -> int:
    t = time.time()
    try:
        prog = tinytrain.compile(model, torch.zeros(1, 1, 28, 28), trainable=TRAINABLE, lr=lr,
                                 target="cortex-m4", sram_kb=256, build_dir=out / "cortex-m4")
    except tinytrain.CompileError as e:
        say(f"error: {e}")
        return 1
    fw = prog.firmware
    say(f"[4/5] compiled for Cortex-M4 (mps2-an386, 256 KB SRAM): firmware {fw.elf} "
        f"(flash {fw.text + fw.data} B), {time.time() - t:.1f}s; training {steps} steps in QEMU ...")
    res = prog.run_qemu(train=(Xd[:steps], Yd[:steps]), evaluate=(Xt, Yt), timeout=1800)
    return report_device_run(res, "device")


def report_device_run(res, tag: str) -> int:
    """Print a QEMU run's losses (mean per 100 steps), test accuracy before/after, instructions
    per step and measured peak SRAM; 1 if the firmware failed."""
    if res.returncode != 0 or not res.steps:
        say(res.output[-2000:])
        say(f"error: the firmware failed (exit {res.returncode})")
        return 1
    losses = [l for l, _ in res.steps]
    for i in range(100, len(losses) + 1, 100):
        say(f"      {tag} step {i:5d}: mean loss of the last 100 = {np.mean(losses[i - 100:i]):.4f}")
    (cb, tb), (ca, ta) = res.evals["before"], res.evals["after"]
    mem = res.mem
    ticks = np.median([t for _, t in res.steps])
    say(f"      {tag}: test accuracy {cb / tb:.1%} -> {ca / ta:.1%} on {ta} test images; "
        f"{ticks * res.instructions_per_tick / 1e6:.2f}M instructions per step")
    say(f"      peak SRAM {mem.get('sram_peak', 0) / 1024:.1f} KB of {mem.get('ram_total', 0) / 1024:.0f} KB "
        f"(static {(mem.get('data', 0) + mem.get('bss', 0)) / 1024:.1f} KB, stack peak "
        f"{mem.get('stack_peak', 0) / 1024:.1f} KB), measured by stack painting in the firmware")
    return 0


INT8_HW, INT8_BLOCKS, INT8_LR = 48, 6, 0.1


def int8_device(out: Path, steps: int, n_test: int) -> int:
    from tinytrain import reference as R
    from tinytrain.datasets import load_dataset
    from tinytrain.int8 import compile_training
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward, truncate

    t = time.time()
    ds = load_dataset("animal-mnist", resolution=INT8_HW, n_train=steps, n_val=10, n_test=n_test, seed=0)
    model = truncate(load_mcu_model("mbv2-w0.35"), INT8_BLOCKS)
    last = model.blocks[-1]
    trainable = ([f"{c.name}.bias" for c in last.convs()] + [f"{last.pointwise2.name}.weight"]
                 + ["fc.weight", "fc.bias"])
    graph = build_forward(model, classifier="fp32", num_classes=len(ds.classes), input_hw=INT8_HW)
    try:
        prog = compile_training(graph, trainable, lr=INT8_LR, qas=True, target="cortex-m4", sram_kb=256,
                                build_dir=out / "int8-cortex-m4")
    except tinytrain.CompileError as e:
        say(f"error: {e}")
        return 1
    plan = prog.planned_sram()
    say(f"[5/5] int8 + QAS: the paper's pretrained int8 MobileNetV2-w0.35 (first {INT8_BLOCKS} blocks, "
        f"{INT8_HW}x{INT8_HW}) with a new fp32 head, compiled for Cortex-M4 (256 KB SRAM, planned "
        f"{plan['total'] / 1024:.1f} KB): int8 forward, fp32 backward, QAS, int8 write-back of "
        f"{last.pointwise2.name}.weight, int32 biases; {time.time() - t:.1f}s. Training on "
        f"{steps} Animal-MNIST images in QEMU ...")

    def int8(images):
        return R.preprocess(images, model.first_conv.x_scale, model.first_conv.x_zero)

    t = time.time()
    res = prog.run_qemu(train=(int8(ds.train.images), ds.train.labels),
                        evaluate=(int8(ds.test.images), ds.test.labels), timeout=1800)
    status = report_device_run(res, f"int8 + QAS device ({len(ds.classes)} classes)")
    say(f"      (QEMU run: {time.time() - t:.1f}s)")
    return status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinytrain.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("build/demo"), help="working folder")
    ap.add_argument("--host-steps", type=int, default=1000, help="host training samples (batch 1)")
    ap.add_argument("--device-steps", type=int, default=1000, help="training steps in QEMU")
    ap.add_argument("--test-images", type=int, default=500)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--int8-steps", type=int, default=400, help="int8 + QAS training steps in QEMU")
    ap.add_argument("--int8-test-images", type=int, default=200)
    ap.add_argument("--host-only", action="store_true", help="skip the Cortex-M part")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 + QAS part")
    ap.add_argument("--int8-only", action="store_true", help="only the int8 + QAS part")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.int8_only:
        return int8_device(args.out, args.int8_steps, args.int8_test_images)
    model = new_head(pretrain(args.out / "pretrained.pt"))
    xtr, ytr = fashion_mnist("train")
    sel = np.random.RandomState(1).permutation(len(ytr))[:max(args.host_steps, args.device_steps)]
    Xd, Yd = normalize(xtr[sel]), ytr[sel]
    xt, yt = fashion_mnist("test", args.test_images)
    Xt, Yt = normalize(xt), yt
    host(model, Xd[:args.host_steps], Yd[:args.host_steps], Xt, Yt, args.lr)
    if args.host_only:
        return 0
    status = device(model, Xd, Yd, Xt, Yt, args.lr, args.out, args.device_steps)
    if status or args.no_int8:
        return status
    return int8_device(args.out, args.int8_steps, args.int8_test_images)


if __name__ == "__main__":
    sys.exit(main())
