"""`compile(..., quantize="int8", calibration=...)`: post-training int8 quantization of a user's
fp32 model, then the training program of the int8 graph.

    prog = tinytrain.compile(model, x, quantize="int8", calibration=images_nchw, trainable=[...],
                             lr=0.05)            # qas=True, int8_classifier=False by default

Pipeline (one PassManager run, as for fp32): `quantize` (calibration of the fp32 forward in
numpy, then the int8 rewrite: `transforms/quantize.py`), `autodiff` (int8 forward, fp32
backward, integer write-back: `transforms/autodiff_int8.py`), `qas` (paper Eq. 4; off with
`qas=False`), `to-linalg`. Parameters keep their PyTorch names; after quantization a conv's
weight is int8 and its bias int32 (`state_dict()` returns them as such, `load_state_dict` takes
integers for them), the fp32 classifier stays float32.

`calibration`: NCHW float images like the example input, as one array / tensor `[K, C, H, W]`,
or an iterable of such batches (a `DataLoader` yielding `(images, labels)` works: the first
element of a tuple is taken). Every image is used; the activation ranges are min/max over all.
"""

from __future__ import annotations

import torch

from tinytrain.transforms.qas import QasPass
from tinytrain.transforms.quantize import QuantizePass

__all__ = ["QUANTIZE_MODES", "check_quantize_args", "int8_passes", "int8_layouts"]

QUANTIZE_MODES = ("int8",)


def check_quantize_args(quantize, calibration, int8_classifier, sample_chw):
    """Check the quantization arguments of `compile()` before any work; returns the calibration
    images as a list of NHWC float32 batches (None without quantization)."""
    from tinytrain.entry import check_images

    if quantize is None:
        if calibration is not None:
            raise ValueError("calibration data is only used with quantize='int8'; pass quantize='int8' "
                             "or drop calibration")
        if int8_classifier:
            raise ValueError("int8_classifier=True needs quantize='int8'")
        return None
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES} or None, got {quantize!r}")
    if calibration is None:
        raise ValueError("quantize='int8' needs calibration data to observe the activation ranges: pass "
                         "calibration=<NCHW float images [K, C, H, W], or an iterable of such batches> "
                         "(a few hundred training images are typical)")
    if isinstance(calibration, torch.Tensor) or hasattr(calibration, "__array__"):
        items = [calibration]
    else:
        try:
            items = list(calibration)
        except TypeError:
            raise TypeError(f"calibration must be an array/tensor of NCHW images or an iterable of batches, "
                            f"got {type(calibration).__name__}") from None
    batches = []
    for i, b in enumerate(items):
        if isinstance(b, (tuple, list)) and b and not isinstance(b[0], (int, float)):
            b = b[0]  # (images, labels) from a DataLoader
        what = "calibration" if len(items) == 1 else f"calibration batch {i}"
        batches.append(check_images(b, sample_chw, what=what))
    if not batches:
        raise ValueError("the calibration set is empty: pass at least one NCHW image")
    return batches


def int8_passes(passes: list, values: dict, batches, *, qas: bool, int8_classifier: bool, snapshot) -> list:
    """`compile()`'s fp32 pipeline `[autodiff, ...]` with `quantize` (and its stage snapshot)
    in front and `qas` right after `autodiff`."""
    quantize = QuantizePass(classifier="int8" if int8_classifier else "fp32", values=values,
                            calibration_data=batches)
    extra = [QasPass()] if qas else []
    return [quantize, snapshot("quantize"), passes[0], *extra, *passes[1:]]


def int8_layouts(layouts: dict, values: dict) -> dict:
    """Parameter layouts after quantization: an int8 linear weight became a 1x1 conv (HWIO)."""
    return {k: ("hwio" if getattr(values.get(k), "ndim", 0) == 4 else lay) for k, lay in layouts.items()}
