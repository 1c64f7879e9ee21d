"""Tests of laecips_core.lvm.hierarchy: Ward region merging, the default SAM-like stand-in."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.benchmark import BenchmarkConfig, generate_frame
from laecips_core.errors import ConfigError, ImageError
from laecips_core.lvm.base import LVM, segment_purity
from laecips_core.lvm.hierarchy import HierarchicalLVM, _adjacent_pairs, _ward_merges
from lvm_helpers import VAL_CFG, shapes_image


def _assert_nested(masks: np.ndarray) -> None:
    """Every two masks are disjoint or one contains the other (a hierarchy)."""
    flat = masks.reshape(len(masks), -1).astype(np.int64)
    inter = flat @ flat.T
    area = np.diag(inter)
    assert ((inter == 0) | (inter == np.minimum(area[:, None], area[None, :]))).all()


def test_adjacent_pairs_are_sorted_unique_4_neighbours():
    segments = np.array([[0, 0, 1], [2, 2, 1], [2, 3, 3]])
    pairs = _adjacent_pairs(segments, 4)
    np.testing.assert_array_equal(pairs, [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]])  # no (0, 3): diagonal


def test_ward_merges_cheapest_first_and_cut_per_level():
    # three 1-pixel regions in a row with grey values 0, 0.1, 10: 0 and 1 merge first, then with 2
    area = np.ones(3)
    colour = np.array([[0.0], [0.1], [10.0]])
    pairs = np.array([[0, 1], [1, 2]])
    total_sse = float(((colour - colour.mean()) ** 2).sum())
    merges, counts = _ward_merges(area, colour, pairs, total_sse, (0.03, 2.0))
    assert merges == [(0, 1), (2, 3)]  # region 3 = 0 + 1
    assert counts == [1, 2]  # level 0.03: only the near-equal pair; level 2.0: everything
    merges, counts = _ward_merges(area, colour, pairs, total_sse, (0.001,))
    assert merges == [] and counts == [0]


def test_hierarchy_on_benchmark_frames_of_every_task():
    cfg = BenchmarkConfig(**VAL_CFG)
    lvm = HierarchicalLVM()
    assert isinstance(lvm, LVM) and lvm.needs_labels is False
    purity = []
    for task in range(5):
        frame = generate_frame(cfg, task * 20 + 11)
        masks = lvm.generate(frame.image)
        assert masks.dtype == np.bool_ and masks.shape[1:] == (240, 320)
        assert 10 <= len(masks) <= lvm.max_masks  # tens of masks, not hundreds
        assert all(m.any() for m in masks)
        _assert_nested(masks)
        assert masks.any(0).mean() > 0.99  # the coarsest level covers the frame
        purity.append(segment_purity(masks, frame.labels))
    # all levels (coarse masks straddle classes by design): measured 0.68-0.86 per frame over seeds
    # and sizes, mean 0.80-0.82; the finest level alone ~0.97 (next test)
    assert min(purity) >= 0.65 and np.mean(purity) >= 0.75


def test_hierarchy_is_deterministic_and_respects_caps():
    frame = generate_frame(BenchmarkConfig(**VAL_CFG), 64)
    a = HierarchicalLVM().generate(frame.image)
    np.testing.assert_array_equal(a, HierarchicalLVM().generate(frame.image))
    capped = HierarchicalLVM(max_masks=5, min_area=0.01).generate(frame.image)
    assert 1 <= len(capped) <= 5
    assert capped.reshape(len(capped), -1).sum(1).min() >= 0.01 * 240 * 320
    fine = HierarchicalLVM(levels=(0.03,), max_masks=1000).generate(frame.image)
    np.testing.assert_array_equal(fine.sum(0), 1)  # one level: a partition
    assert segment_purity(fine, frame.labels) > 0.9


def test_hierarchy_finds_the_regions_of_a_simple_image():
    image, gt = shapes_image(120, 160)
    masks = HierarchicalLVM().generate(image)
    assert 1 <= len(masks) <= 64
    for c in (1, 2):  # each object is one mask (IoU > 0.9)
        region = gt == c
        best = max((m & region).sum() / (m | region).sum() for m in masks)
        assert best > 0.9


def test_regions_lists_each_region_once_with_its_finest_level():
    image, _ = shapes_image(60, 80)
    lvm = HierarchicalLVM()
    base, members = lvm.regions(image)
    assert base.shape == (60, 80) and base.dtype == np.int64
    n = int(base.max()) + 1
    assert sorted(np.concatenate([ids for level, ids in members if level == 0]).tolist()) == list(range(n))
    keys = [tuple(ids.tolist()) for _, ids in members]
    assert len(keys) == len(set(keys))
    assert all(0 <= level < len(lvm.levels) for level, _ in members)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 1), (17, 5)])
def test_hierarchy_tiny_images(shape):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    masks = HierarchicalLVM(min_area=0).generate(image)
    assert masks.dtype == np.bool_ and masks.shape[1:] == shape
    assert 1 <= len(masks) <= 64
    assert masks.any(0).all()


def test_hierarchy_uniform_and_large_images():
    flat = HierarchicalLVM().generate(np.full((48, 64, 3), 97, np.uint8))
    assert flat.shape == (1, 48, 64) and flat.all()
    big = generate_frame(BenchmarkConfig(**{**VAL_CFG, "width": 640, "height": 480}), 30)
    masks = HierarchicalLVM().generate(big.image)  # segmented at 320 px, masks at full size
    assert masks.shape[1:] == (480, 640) and 10 <= len(masks) <= 64
    assert segment_purity(masks, big.labels) >= 0.7


def test_hierarchy_bad_arguments():
    with pytest.raises(ConfigError, match="levels"):
        HierarchicalLVM(levels=())
    with pytest.raises(ConfigError, match="levels"):
        HierarchicalLVM(levels=(0.1, -1.0))
    with pytest.raises(ConfigError, match="min_area"):
        HierarchicalLVM(min_area=5)
    with pytest.raises(ConfigError, match="max_masks"):
        HierarchicalLVM(max_masks=0)
    with pytest.raises(ConfigError, match="base_scale"):
        HierarchicalLVM(base_scale=0)
    with pytest.raises(ImageError, match="uint8"):
        HierarchicalLVM().generate(np.zeros((8, 8, 3), np.float32))
