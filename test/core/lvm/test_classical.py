"""Tests of laecips_core.lvm.classical: Felzenszwalb and SLIC over-segmenters (label map -> masks)."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.errors import ConfigError, ImageError
from laecips_core.lvm.base import segment_purity
from laecips_core.lvm.classical import FelzenszwalbLVM, SlicLVM
from lvm_helpers import shapes_image


@pytest.mark.parametrize(
    "lvm",
    [FelzenszwalbLVM(), FelzenszwalbLVM(work_size=None), SlicLVM(n_segments=40)],
    ids=["felzenszwalb", "felzenszwalb-full-size", "slic"],
)
def test_label_map_lvms_give_disjoint_cover(lvm):
    image, _ = shapes_image(90, 120)
    masks = lvm.generate(image)
    assert masks.dtype == np.bool_ and masks.shape[1:] == (90, 120)
    assert len(masks) >= 2
    np.testing.assert_array_equal(masks.sum(0), np.ones((90, 120)))  # disjoint and covering
    assert lvm.label_map(image).shape == (90, 120)


def test_bad_image_is_image_error():
    lvm = FelzenszwalbLVM()
    with pytest.raises(ImageError, match="uint8"):
        lvm.generate(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ImageError, match="RGB"):
        lvm.generate(np.zeros((8, 8), np.uint8))


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="scale > 0"):
        FelzenszwalbLVM(scale=0)
    with pytest.raises(ConfigError, match="min_area"):
        FelzenszwalbLVM(min_area=-1)
    with pytest.raises(ConfigError, match="max_masks"):
        SlicLVM(max_masks=0)
    with pytest.raises(ConfigError, match="compactness > 0"):
        SlicLVM(compactness=0)


def test_felzenszwalb_follows_region_boundaries():
    image, gt = shapes_image(120, 160)
    for lvm in (FelzenszwalbLVM(), FelzenszwalbLVM(work_size=None)):
        masks = lvm.generate(image)
        assert segment_purity(masks, gt) > 0.97
        assert len(masks) < 150  # regions (mean >= 128 px), not pixels


def test_max_masks_caps_the_segments():
    image, _ = shapes_image(90, 120)
    masks = SlicLVM(n_segments=40, max_masks=3).generate(image)
    assert len(masks) == 3
    assert masks.sum(0).max() == 1  # still disjoint, no longer covering
    assert masks.any(0).mean() < 1.0


def test_felzenszwalb_defaults_on_benchmark_frames():
    from laecips_core.benchmark import BenchmarkConfig, generate_frame

    cfg = BenchmarkConfig(seed=0, frames_per_task=20, width=320, height=240)
    lvm = FelzenszwalbLVM()
    for index in (3, 67):  # tasks 0 and 3
        frame = generate_frame(cfg, index)
        masks = lvm.generate(frame.image)
        assert 20 <= len(masks) <= 512
        assert segment_purity(masks, frame.labels) > 0.94  # measured 0.96-0.99 at the defaults
        assert masks.any(0).mean() > 0.95
