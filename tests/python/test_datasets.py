"""tinytrain.datasets: each offline loader gives seeded, disjoint, class-balanced uint8 RGB
splits at the asked resolution."""

import numpy as np
import pytest

from tinytrain.datasets import DATASETS, load_dataset, resize_gray_to_rgb


def _check(ds, res, sizes, k):
    for split, n in zip((ds.train, ds.val, ds.test), sizes):
        assert split.images.dtype == np.uint8 and split.images.shape == (n, res, res, 3)
        assert split.labels.dtype == np.int64 and split.labels.shape == (n,)
        counts = np.bincount(split.labels, minlength=k)
        assert len(counts) == k and counts.max() - counts.min() <= 1  # class-balanced
        # grayscale repeated over RGB, and real pictures (not constant)
        assert np.array_equal(split.images[..., 0], split.images[..., 2])
        assert split.images.std() > 10
    # no image appears in two splits
    flat = [s.images[..., 0].reshape(len(s), -1) for s in (ds.train, ds.val, ds.test)]
    seen = {row.tobytes() for row in flat[0]}
    dup = sum(row.tobytes() in seen for f in flat[1:] for row in f)
    # splits are disjoint by index; equal pictures across splits can only be true duplicates in the data
    assert dup <= 1


@pytest.mark.parametrize("name", ["animal-mnist", "fashion-mnist", "digits", "mnist"])
def test_loader_small_subset(name):
    ds = load_dataset(name, resolution=32, n_train=40, n_val=20, n_test=30, seed=1)
    assert ds.name == name and ds.classes == DATASETS[name] and ds.resolution == 32
    _check(ds, 32, (40, 20, 30), 10)
    again = load_dataset(name, resolution=32, n_train=40, n_val=20, n_test=30, seed=1)
    np.testing.assert_array_equal(ds.train.images, again.train.images)
    np.testing.assert_array_equal(ds.test.labels, again.test.labels)
    other = load_dataset(name, resolution=32, n_train=40, n_val=20, n_test=30, seed=2)
    assert not np.array_equal(ds.train.images, other.train.images)


def test_class_subset_is_relabelled_in_the_given_order():
    ds = load_dataset("animal-mnist", resolution=16, classes=("dog", "cat", 9), n_train=30, n_val=6, n_test=9)
    assert ds.classes == ("dog", "cat", "zebra")
    _check(ds, 16, (30, 6, 9), 3)
    # label 1 is really 'cat': the same images as class 'cat' alone at the same seed
    full = load_dataset("animal-mnist", resolution=16, n_val=0, n_test=0, seed=0)
    cats = {im.tobytes() for im, lab in zip(full.train.images, full.train.labels) if lab == 2}
    assert all(im.tobytes() in cats for im, lab in zip(ds.train.images, ds.train.labels) if lab == 1)


def test_full_split_sizes():
    ds = load_dataset("digits", resolution=8, seed=0)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1797
    assert abs(len(ds.train) - 0.6 * 1797) < 10 and abs(len(ds.test) - 0.2 * 1797) < 10
    # at its own resolution the resize is the identity: 0..16 scaled to 0..255
    assert set(np.unique(ds.train.images)) <= {int(round(v * 255 / 16)) for v in range(17)}
    a = load_dataset("animal-mnist", resolution=28, seed=0)
    assert (len(a.train), len(a.val), len(a.test)) == (7000, 1000, 2000)


def test_resize_is_bilinear():
    img = np.array([[0, 255], [255, 0]], np.uint8)[None]
    out = resize_gray_to_rgb(img, 4)
    assert out.shape == (1, 4, 4, 3)
    # align_corners=False: the outer pixels repeat the corners, the inner ones interpolate
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 3, 0] == 255 and out[0, 1, 1, 0] == round(255 * 0.375)
    with pytest.raises(ValueError, match="uint8"):
        resize_gray_to_rgb(img.astype(np.float32), 4)


def test_errors_are_clear():
    with pytest.raises(ValueError, match="available: animal-mnist, fashion-mnist, mnist, digits"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="no class 'unicorn'"):
        load_dataset("animal-mnist", classes=("cat", "unicorn"))
    with pytest.raises(ValueError, match="only"):
        load_dataset("digits", resolution=8, n_test=5000)
