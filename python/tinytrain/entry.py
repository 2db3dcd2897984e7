"""What every entry point shares without importing torch or the compiler (so that `tinytrain
run-qemu` starts in a fraction of a second of imports, not torch's seconds): the targets, the
name of the compiled folder's metadata file, and the checks of images and labels that
`train_step`/`predict`, `run_qemu` and `tinytrain run-qemu` all apply."""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["MODEL_META", "TARGETS", "all_finite", "as_numpy", "check_images", "check_labels"]

#: "host": an IREE llvm-cpu `.vmfb` for this machine. "cortex-m4" / "cortex-m7": additionally a
#: bare-metal firmware project for QEMU's mps2-an386 / mps2-an500 (static IREE kernels, our C
#: runtime, the SRAM budget enforced at compile time and by the linker).
TARGETS = ("host", "cortex-m4", "cortex-m7")

#: Written next to every output (the `save()` folder and the firmware project): what the program
#: expects, so that `tinytrain run-qemu` can check sample files before QEMU starts.
MODEL_META = "model.json"


def as_numpy(value) -> np.ndarray:
    """A torch tensor or array-like as a numpy array (a torch tensor can exist only once torch is
    imported, so this module never imports it)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def check_images(images, sample_chw, *, what: str = "images", batch: int | None = None,
                 layout: str = "NCHW", out: np.ndarray | None = None) -> np.ndarray:
    """Images as the compiled program takes them (NHWC float32, contiguous), after checking them
    as every entry point does (`train_step`/`predict`, `run_qemu`, `tinytrain run-qemu`):
    floating-point values, and [batch or K, C, H, W] (NCHW) or [K, H, W, C] (NHWC, the `.npz`
    files of `tinytrain run-qemu`, where a sample may also be [1, H, W, C]). NCHW images are
    converted in one pass, into `out` (e.g. a program's input staging buffer) when given."""
    x = as_numpy(images)
    c, h, w = (int(d) for d in sample_chw)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{what} must be floating-point values, got {x.dtype} (real numbers only); convert them with "
                        "the normalization the model was trained with (e.g. x.astype(np.float32) "
                        "/ 255 for 8-bit pixels)")
    if layout == "NHWC":
        if x.ndim == 5 and x.shape[1] == 1:
            x = x.reshape(x.shape[0], *x.shape[2:])  # one [1, H, W, C] sample per leading index
        if x.ndim != 4 or tuple(x.shape[1:]) != (h, w, c) or x.shape[0] == 0:
            raise ValueError(f"{what} must be [K, {h}, {w}, {c}] (NHWC float32, K >= 1), got "
                             f"{list(x.shape)}")
        with np.errstate(over="ignore", invalid="ignore"):
            return _finite(np.ascontiguousarray(x, dtype=np.float32), what)
    if batch is not None:
        if tuple(x.shape) != (batch, c, h, w):
            raise ValueError(f"{what} shape {tuple(x.shape)} differs from the compiled NCHW shape "
                             f"{(batch, c, h, w)}")
    elif x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w) or x.shape[0] == 0:
        raise ValueError(f"{what} must be [K, {c}, {h}, {w}] (NCHW, K >= 1), got {list(x.shape)}")
    if out is None:
        out = np.empty((x.shape[0], h, w, c), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: Inf, refused by _finite
        if c <= _PLANE_COPY_MAX_C:
            for i in range(c):
                out[..., i] = x[:, i]
        else:
            np.copyto(out, x.transpose(0, 2, 3, 1), casting="unsafe")
        return _finite(out, what)


#: NCHW -> NHWC with at most this many channels is copied one channel plane at a time (a
#: contiguous read, a strided write): for 3 channels 4x faster than one `np.copyto` of the
#: transposed view, which walks the source with stride H*W (1x3x176x176: 111 -> 28 us, 8x3x128x128:
#: 472 -> 113 us); with 16 channels and more the single copy is as fast or faster (numpy 2, x86).
_PLANE_COPY_MAX_C = 4


def all_finite(x: np.ndarray) -> bool:
    """Whether every value of the float array `x` is finite. A contiguous `x` is checked by its sum
    of squares first (finite iff every value is, unless a magnitude beyond ~1.8e19 in float32
    overflows it: then the exact elementwise check decides), half the time of
    `isfinite(x).all()`: the input check and the training step's state guard run it every step."""
    with np.errstate(over="ignore", invalid="ignore"):
        if x.flags.c_contiguous:
            flat = x.reshape(-1)
            if np.isfinite(np.dot(flat, flat)):
                return True
        return bool(np.isfinite(x).all())


def _finite(x32: np.ndarray, what: str) -> np.ndarray:
    """`x32` if every value is finite in float32; else a ValueError (a bad sample never reaches
    the training step)."""
    if not all_finite(x32):
        raise ValueError(f"{what} holds {int((~np.isfinite(x32)).sum())} NaN/Inf value(s) (or values "
                         "beyond float32's range): refused, the parameters are unchanged")
    return x32


def check_labels(labels, count: int, num_classes: int, *, what: str = "labels") -> np.ndarray:
    """`count` integer class indices in [0, num_classes), as int32; the same check for every entry
    point, so the device never sees a label the host would refuse."""
    y = as_numpy(labels)
    hint = ""
    if y.ndim == 2 and y.shape[1] > 1:
        hint = " (one-hot or per-class scores? pass the class indices, e.g. labels.argmax(1))"
    elif y.ndim > 1 and y.size == count:
        y = y.reshape(-1)
    if y.ndim != 1 or y.shape[0] != count or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} must be {count} integer class indices (one per image), got "
                         f"{y.dtype} {y.shape}{hint}")
    bad = [int(v) for v in y if v < 0 or v >= num_classes]
    if bad:
        raise ValueError(f"label {bad[0]} is outside the class range [0, {num_classes}) of "
                         "the model's output")
    return y.astype(np.int32)
