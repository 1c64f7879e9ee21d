"""Tests of laecips_core.lvm.base: the LVM Protocol, input checks, label map -> masks, segment purity."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.errors import ConfigError, ImageError
from laecips_core.lvm.base import (
    LVM,
    _check_image,
    _check_positive_int,
    _check_unit,
    _empty_masks,
    _require,
    _resize_to_long_side,
    _torch_device,
    _upsample_nearest,
    masks_from_label_map,
    segment_purity,
)


class _Blank:
    name = "blank"

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        return _empty_masks(*image_rgb_uint8.shape[:2])


def test_protocol_accepts_any_object_with_name_and_generate():
    assert isinstance(_Blank(), LVM)
    assert not isinstance(object(), LVM)
    masks = _Blank().generate(np.zeros((3, 5, 3), np.uint8))
    assert masks.shape == (0, 3, 5) and masks.dtype == np.bool_


def test_check_image_says_what_is_wrong():
    with pytest.raises(ImageError, match="numpy array"):
        _check_image([[1, 2, 3]], "who")  # type: ignore[arg-type]
    with pytest.raises(ImageError, match=r"who: expected shape \(H, W, 3\) RGB, got \(8, 8\)"):
        _check_image(np.zeros((8, 8), np.uint8), "who")
    with pytest.raises(ImageError, match="RGBA"):
        _check_image(np.zeros((8, 8, 4), np.uint8), "who")
    with pytest.raises(ImageError, match="uint8"):
        _check_image(np.zeros((8, 8, 3), np.float32), "who")
    strided = np.zeros((8, 16, 3), np.uint8)[:, ::2]
    checked = _check_image(strided, "who")
    assert checked.flags.c_contiguous and checked.shape == (8, 8, 3)


def test_require_names_the_package_and_the_alternative():
    assert _require("math", "math", "x").sqrt(4.0) == 2.0
    with pytest.raises(ConfigError, match=r"pip install no-such-pkg.*use lvm 'felzenszwalb'"):
        _require("no_such_module_xyz", "no-such-pkg", "Testing")
    with pytest.raises(ConfigError, match="or set it off"):
        _require("no_such_module_xyz", "no-such-pkg", "Testing", "set it off")


def test_torch_device_and_number_checks():
    assert _torch_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="not a torch device"):
        _torch_device("gpu0")
    assert _check_unit("t", 1) == 1.0
    with pytest.raises(ConfigError, match=r"t must lie in \[0, 1\]"):
        _check_unit("t", 1.5)
    assert _check_positive_int("n", np.int64(3)) == 3
    for bad in (0, True, 2.0):
        with pytest.raises(ConfigError, match="n must be an integer >= 1"):
            _check_positive_int("n", bad)  # type: ignore[arg-type]


def test_resize_and_upsample_label_maps():
    image = np.full((40, 80, 3), 255, np.uint8)
    small = _resize_to_long_side(image, 20)
    assert small.shape == (10, 20, 3) and small.dtype == np.float64
    np.testing.assert_allclose(small, 1.0)
    same = _resize_to_long_side(image, 100)  # never upscales, only rescales to [0, 1]
    assert same.shape == (40, 80, 3) and same.max() == 1.0
    labels = np.array([[0, 1], [2, 3]])
    up = _upsample_nearest(labels, 4, 6)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(labels, 2, 0), 3, 1))
    assert _upsample_nearest(labels, 2, 2) is labels


def test_max_masks_keeps_the_largest():
    labels = np.array([[0, 0, 0, 1], [2, 2, 0, 1], [3, 2, 0, 1]])
    masks = masks_from_label_map(labels, max_masks=2)
    assert masks.shape == (2, 3, 4)
    np.testing.assert_array_equal(masks[0], labels == 0)
    np.testing.assert_array_equal(masks[1], labels == 1)  # areas 5, 3, 3, 1: tie 1 vs 2 -> lower id
    assert masks_from_label_map(labels, min_area=2).shape[0] == 3
    with pytest.raises(ImageError, match=r"\(H, W\)"):
        masks_from_label_map(labels[None])


def test_segment_purity_known_value():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    one = np.ones((1, 2, 4), bool)
    assert segment_purity(one, gt) == pytest.approx(4 / 7)  # majority 0 (4 of 7 valid pixels)
    assert segment_purity(one, gt, ignore_index=None) == pytest.approx(4 / 8)
    halves = np.stack([gt == 0, gt != 0])
    assert segment_purity(halves, gt) == pytest.approx(1.0)  # the 255 pixel is ignored
    assert np.isnan(segment_purity(np.zeros((0, 2, 4), bool), gt))
    with pytest.raises(ImageError, match="masks"):
        segment_purity(np.ones((1, 3, 4), bool), gt)
