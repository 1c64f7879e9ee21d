"""Tests of laecips_core.lvm.oracle: connected ground-truth regions, the evaluation-only upper bound."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.benchmark import BenchmarkConfig, generate_frame
from laecips_core.errors import ConfigError, ImageError
from laecips_core.lvm.base import segment_purity
from laecips_core.lvm.oracle import OracleLVM
from lvm_helpers import VAL_CFG


def test_oracle_refuses_without_labels():
    lvm = OracleLVM()
    assert lvm.needs_labels is True
    assert "upper bound" in lvm.description
    with pytest.raises(ConfigError, match="upper bound for evaluation: it needs ground-truth labels"):
        lvm.generate(np.zeros((4, 4, 3), np.uint8))


def test_oracle_bad_arguments():
    with pytest.raises(ConfigError, match="connectivity"):
        OracleLVM(connectivity=3)
    with pytest.raises(ConfigError, match="min_area"):
        OracleLVM(min_area=-1)


def test_oracle_masks_are_connected_ground_truth_regions():
    gt = np.zeros((6, 8), np.uint8)
    gt[1:3, 1:3] = 2  # two separate blobs of class 2
    gt[4:6, 5:8] = 2
    gt[0, 7] = 255  # ignored
    masks = OracleLVM().generate(np.zeros((6, 8, 3), np.uint8), labels=gt)
    assert masks.dtype == np.bool_ and masks.shape == (3, 6, 8)  # background 0, blob, blob
    np.testing.assert_array_equal(masks.sum(0), (gt != 255).astype(int))  # disjoint, cover valid
    blobs = [m for m in masks if (gt[m] == 2).all()]
    assert len(blobs) == 2 and sorted(int(m.sum()) for m in blobs) == [4, 6]
    assert all(len(np.unique(gt[m])) == 1 for m in masks)  # one class each, but no class given out
    assert OracleLVM(min_area=5).generate(np.zeros((6, 8, 3), np.uint8), labels=gt).shape[0] == 2
    assert OracleLVM(ignore_index=None).generate(np.zeros((6, 8, 3), np.uint8), labels=gt).shape[0] == 4
    diagonal = np.array([[1, 0], [0, 1]], np.uint8)
    image = np.zeros((2, 2, 3), np.uint8)
    assert OracleLVM().generate(image, labels=diagonal).shape[0] == 4  # 4-connectivity
    assert OracleLVM(connectivity=2).generate(image, labels=diagonal).shape[0] == 2


def test_oracle_on_a_benchmark_frame_is_pure_and_checks_shapes():
    frame = generate_frame(BenchmarkConfig(**VAL_CFG), 5)
    masks = OracleLVM().generate(frame.image, labels=frame.labels)
    assert segment_purity(masks, frame.labels) == 1.0
    np.testing.assert_array_equal(masks.sum(0), 1)
    with pytest.raises(ImageError, match="labels"):
        OracleLVM().generate(frame.image, labels=frame.labels[:10])
    with pytest.raises(ImageError, match="labels"):
        OracleLVM().generate(frame.image, labels=frame.labels.astype(np.float32))
