"""Offline data sets (nothing is downloaded at run time).

Fashion-MNIST comes from the Debian package `dataset-fashion-mnist` (Expat license; installed by
`make setup`): 60,000 training and 10,000 test images, 28x28 grayscale, 10 classes.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "fashion_mnist", "normalize"]

FASHION_MNIST_DIR = Path(os.environ.get("TINYTRAIN_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def fashion_mnist(split: str = "train", limit: int | None = None, seed: int | None = 0):
    """`(images uint8 [N, 28, 28], labels int64 [N])` of the given split ("train" or "test").

    With `limit`, a class-balanced random subset of that size (deterministic for a seed)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    prefix = "train" if split == "train" else "t10k"
    img = FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"
    lab = FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not img.exists() or not lab.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: install the Debian package "
            "'dataset-fashion-mnist' (`make setup` does), or point TINYTRAIN_FASHION_MNIST at a folder "
            "with the four IDX .gz files")
    x = _idx(img, 16).reshape(-1, 28, 28)
    y = _idx(lab, 8).astype(np.int64)
    if limit is not None and limit < len(y):
        rng = np.random.RandomState(seed)
        per = [rng.permutation(np.flatnonzero(y == c)) for c in range(10)]
        take = np.concatenate([p[: limit // 10 + (c < limit % 10)] for c, p in enumerate(per)])
        take = rng.permutation(take)
        x, y = x[take], y[take]
    return x, y


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] -> float32 NCHW [N, 1, H, W] in [-1, 1]."""
    return ((images.astype(np.float32) / 255.0 - 0.5) / 0.5)[:, None, :, :]
