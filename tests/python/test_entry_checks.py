"""`tinytrain.entry.check_images`, the input check of every entry point, on its own (no compile):
the NCHW -> NHWC copy (per channel plane for few channels, one transposed copy otherwise) gives
the transposed float32 images, and the finiteness check (sum of squares first, then the exact
elementwise check) accepts every finite float32 value, huge ones included, and refuses any NaN,
Inf or value beyond float32 wherever it is."""

import numpy as np
import pytest

from tinytrain.entry import _PLANE_COPY_MAX_C, check_images


@pytest.mark.parametrize("c", [1, 3, _PLANE_COPY_MAX_C, _PLANE_COPY_MAX_C + 1, 16])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nchw_images_are_transposed_into_out(c, dtype):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 5, 7)).astype(dtype)
    out = np.full((2, 5, 7, c), np.nan, np.float32)
    got = check_images(x, (c, 5, 7), batch=2, out=out)
    assert got is out
    np.testing.assert_array_equal(out, x.astype(np.float32).transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(check_images(x, (c, 5, 7)), out)  # without `out`


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("c", [3, _PLANE_COPY_MAX_C + 1])
def test_huge_finite_values_are_accepted(layout, c):
    """Values whose squares (and their sum) overflow float32 are finite: the exact check decides."""
    x = np.full((1, c, 4, 4), 3.0e38, np.float32)
    x[0, 0, 0, 0] = -np.finfo(np.float32).max
    x[0, -1, -1, -1] = 1e20
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    got = check_images(x, (c, 4, 4), layout=layout)
    np.testing.assert_array_equal(got, x if layout == "NHWC" else x.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
@pytest.mark.parametrize("where", [0, -1])
@pytest.mark.parametrize("c", [3, _PLANE_COPY_MAX_C + 1])
def test_a_non_finite_value_anywhere_is_refused(bad, where, c):
    x = np.ones((2, c, 3, 3), np.float64)
    x.reshape(-1)[where] = bad  # 1e39: finite in float64, Inf in float32
    with pytest.raises(ValueError, match="holds 1 NaN/Inf value"):
        check_images(x, (c, 3, 3), batch=2, out=np.empty((2, 3, 3, c), np.float32))
    with pytest.raises(ValueError, match="holds 1 NaN/Inf value"):
        check_images(x.transpose(0, 2, 3, 1), (c, 3, 3), layout="NHWC")
