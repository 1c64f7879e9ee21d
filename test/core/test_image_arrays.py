"""Tests of image_arrays: checks of RGB images and label maps, the pixel limit, fitting and resizing."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.errors import ImageError

from laecips_core import image_arrays


def _ramp(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 whose channels grow smoothly along x, y and both."""
    x = np.linspace(0, 240, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 200, height)[:, None].repeat(width, 1)
    return np.rint(np.stack([x, y, (x + y) / 2], axis=2)).astype(np.uint8)


def test_resize_rgb_and_labels():
    img = _ramp(40, 60)
    small = image_arrays.resize_rgb(img, (20, 30))
    assert small.shape == (20, 30, 3) and small.dtype == np.uint8
    assert np.abs(small.astype(int) - img[::2, ::2]).max() <= 6  # smooth ramp stays a ramp
    flat = np.full((9, 13, 3), 77, np.uint8)
    assert (image_arrays.resize_rgb(flat, (31, 5)) == 77).all()
    labels = np.array([[1, 2], [3, 4]], np.uint8)
    up = image_arrays.resize_labels(labels, (4, 4))
    assert np.array_equal(up, np.repeat(np.repeat(labels, 2, 0), 2, 1))
    odd = image_arrays.resize_labels(
        np.random.default_rng(3).integers(0, 5, (17, 23)).astype(np.uint16), (7, 40)
    )
    assert odd.shape == (7, 40) and odd.dtype == np.uint16 and set(np.unique(odd)) <= set(range(5))
    with pytest.raises(ImageError, match="height"):
        image_arrays.resize_labels(labels, (0, 3))


def test_checks_name_what_is_wrong():
    rgb = np.zeros((2, 3, 3), np.uint8)
    assert image_arrays.check_rgb(rgb) is rgb
    for bad, match in (
        (rgb.astype(np.float32), "uint8"),
        (rgb[:, :, :2], "H, W, 3"),
        (np.zeros((0, 3, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "uint8"),
    ):
        with pytest.raises(ImageError, match=match):
            image_arrays.check_rgb(bad)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="frame must be"):
        image_arrays.check_rgb(rgb[0], "frame")
    labels = np.zeros((2, 3), np.int64)
    assert image_arrays.check_labels(labels) is labels
    for bad, match in ((labels.astype(np.float32), "integer"), (np.zeros((2, 0), np.uint8), "empty")):
        with pytest.raises(ImageError, match=match):
            image_arrays.check_labels(bad)
    image_arrays.check_size(4, 5, 20)
    for args, match in (
        ((4, 5, 19), "exceeds max_pixels = 19"),
        ((0, 5, 20), "height must be > 0"),
        ((4, True, 20), "width must be an int"),
    ):
        with pytest.raises(ImageError, match=match):
            image_arrays.check_size(*args)  # type: ignore[arg-type]
    assert image_arrays.MAX_IMAGE_PIXELS == 4096 * 4096


@pytest.mark.parametrize(
    ("height", "width", "budget"), [(480, 640, 10_000), (7, 3000, 100), (1, 1, 1), (5, 5, 24)]
)
def test_fit_size_keeps_the_aspect_ratio_within_the_budget(height, width, budget):
    h, w = image_arrays.fit_size(height, width, budget)
    assert 1 <= h <= height and 1 <= w <= width and h * w <= budget
    assert abs(h / w - height / width) <= max(1 / w, 1 / h) * height / width + 1e-9 or min(h, w) == 1
    assert (h + 1) * (w + 1) > budget  # not needlessly small
    assert image_arrays.fit_size(height, width, height * width) == (height, width)


def test_bilinear_taps_are_align_corners_false_sampling():
    from laecips_core.image_arrays import bilinear_taps

    low, high, frac = bilinear_taps(4, 8)  # upsampling x2: centres -0.25, 0.25, ... clipped to [0, 3]
    np.testing.assert_array_equal(low, [0, 0, 0, 1, 1, 2, 2, 3])
    np.testing.assert_array_equal(high, [1, 1, 1, 2, 2, 3, 3, 3])
    np.testing.assert_allclose(frac, [0.0, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.0])
    low, high, frac = bilinear_taps(8, 4)  # downsampling x2: between pixel pairs
    np.testing.assert_array_equal(low, [0, 2, 4, 6])
    np.testing.assert_allclose(frac, 0.5)
    assert frac.dtype == np.float32
