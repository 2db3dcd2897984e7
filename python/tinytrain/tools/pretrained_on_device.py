"""Run one of the paper's pretrained int8 models on an emulated Cortex-M board and compare it with
the numpy reference: the check behind `tests/python/test_int8_device_models.py` and
`bench/int8_device_predict.py`.

The whole network (int8 classifier) is compiled for the host and the board with
`tinytrain.int8.compile_predict`; two inputs run in QEMU: scikit-image's `chelsea.png` sample
photo (center crop, 128x128, the model's input quantization) and a seeded random int8 image. The
device logits, the host `.vmfb`'s and `tinytrain.reference.forward` (device rule) must agree bit
for bit; the photo must come out as a cat (ImageNet classes 281-285).

    .venv/bin/python -m tinytrain.tools.pretrained_on_device mcunet-5fps cortex-m7
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["CAT_CLASSES", "SRAM_KB", "chelsea_rgb", "run_case"]

CAT_CLASSES = range(281, 286)

#: The SRAM budget each model's inference firmware is built with (linker-enforced): the paper's
#: 256 KB. With the default 2x2 patch stage and the input inside the transient arena the three
#: whole networks plan 166-187 KB at 128x128 (`bench/results/int8_device_predict.md`).
SRAM_KB = {"mbv2-w0.35": 256, "proxyless-w0.3": 256, "mcunet-5fps": 256}


def chelsea_rgb(size: int = 128) -> np.ndarray:
    """scikit-image's chelsea.png, center-cropped and resized to [1, size, size, 3] uint8."""
    from skimage import data, transform

    img = data.chelsea()
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    r = transform.resize(img[top:top + s, left:left + s], (size, size), order=1, anti_aliasing=False,
                         preserve_range=True)
    return np.clip(np.round(r), 0, 255).astype(np.uint8)[None]


def run_case(name: str, target: str, workdir, sram_kb: int | None = None, check_host: bool = True) -> dict:
    """Compile and run `name` on `target`; the comparison as a dict (`device_equals_reference`,
    `host_equals_reference`, `top_classes` of the photo, `is_cat`, SRAM plan and measured peak).
    `check_host=False`: no host `.vmfb` of the firmware's program is compiled (a whole network's
    host compile is as long as the board's) and `host_equals_reference` is left out."""
    from tinytrain import reference as R
    from tinytrain.int8 import compile_predict
    from tinytrain.pretrained import load_mcu_model
    from tinytrain.pretrained.graph import build_forward

    workdir = Path(workdir)
    model = load_mcu_model(name)
    kb = sram_kb or SRAM_KB[name]
    t0 = time.time()
    prog = compile_predict(build_forward(model, classifier="int8", input="int8"), target=target, sram_kb=kb,
                           build_dir=workdir / "fw")
    compile_s = time.time() - t0
    x_cat = R.preprocess(chelsea_rgb(), model.first_conv.x_scale, model.first_conv.x_zero)
    x_rand = np.random.default_rng(0).integers(-128, 128, x_cat.shape).astype(np.int8)
    xs = np.concatenate([x_cat, x_rand])
    want = [R.forward(model, x[None], rule="device").logits[0] for x in xs]
    labels = [int(np.argmax(w)) for w in want]
    t0 = time.time()
    res = prog.run_qemu(evaluate=(xs, labels), workdir=workdir / "run")
    qemu_s = time.time() - t0
    out = {"model": name, "target": target, "sram_kb": kb, "returncode": res.returncode,
           "compile_s": round(compile_s, 1), "qemu_s": round(qemu_s, 1),
           "planned_sram_bytes": int(prog.planned_sram()["total"])}
    if res.returncode != 0:
        out["output_tail"] = res.output[-2000:]
        return out
    got = res.outputs["before"]
    out["output_dtype"], out["output_shape"] = str(got.dtype), list(got.shape)
    out["device_equals_reference"] = bool(got.shape == (2, 1, 1000) and
                                          all(np.array_equal(got[i, 0], want[i]) for i in range(2)))
    if check_host:
        out["host_equals_reference"] = bool(all(np.array_equal(prog.predict([], x[None])[0], want[i])
                                                for i, x in enumerate(xs)))
    top = [int(c) for c in np.flatnonzero(got[0, 0] == got[0, 0].max())]
    out["top_classes"], out["is_cat"] = top, bool(top) and set(top) <= set(CAT_CLASSES)
    out["device_accuracy_vs_reference_argmax"] = list(res.evals["before"])
    out["sram_peak_bytes"] = int(res.mem["sram_peak"])
    return out


def main(argv=None) -> int:
    from tinytrain.pretrained import MODEL_NAMES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=MODEL_NAMES)
    ap.add_argument("target", choices=["cortex-m4", "cortex-m7"])
    ap.add_argument("--sram-kb", type=int, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tinytrain-") as d:
        r = run_case(args.model, args.target, d, args.sram_kb)
    for k, v in r.items():
        print(f"{k}: {v}")
    ok = r.get("device_equals_reference") and r.get("host_equals_reference") and r.get("is_cat")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
