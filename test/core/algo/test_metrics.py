"""Metrics (Eq. 25-27) against hand-computed confusion matrices and values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from laecips_core.algo.metrics import (
    LatencyParts,
    confusion_matrix,
    cur,
    dataset_miou,
    frame_miou,
    iou_per_class,
    percentiles,
)
from laecips_core.errors import ConfigError


def test_confusion_matrix_hand_built() -> None:
    gt = np.array([[0, 1, 2], [2, 255, 0]], dtype=np.uint8)
    pred = np.array([[0, 2, 2], [1, 1, 0]], dtype=np.uint8)
    expected = np.array(
        [
            [2, 0, 0, 0],  # gt 0: both right
            [0, 0, 1, 0],  # gt 1 predicted 2
            [0, 1, 1, 0],  # gt 2: one as 1, one right
            [0, 0, 0, 0],
        ]
    )
    conf = confusion_matrix(pred, gt, 4)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, expected)  # the 255 pixel is ignored
    with pytest.raises(ConfigError, match="ignore_index=None"):  # 255 is a label when nothing is ignored
        confusion_matrix(pred, gt, 4, ignore_index=None)
    assert confusion_matrix(pred, gt, 256, ignore_index=None)[255, 1] == 1


def test_confusion_matrix_equals_pixel_loop_on_random_maps() -> None:
    rng = np.random.default_rng(0)
    m = 7
    gt = rng.integers(0, m, size=(13, 17)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, m, size=(13, 17)).astype(np.uint8)
    expected = np.zeros((m, m), dtype=np.int64)
    for g, p in zip(gt.ravel(), pred.ravel()):
        if g != 255:
            expected[g, p] += 1
    np.testing.assert_array_equal(confusion_matrix(pred, gt, m), expected)


def test_iou_frame_and_dataset_miou() -> None:
    conf = np.array([[2, 0, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    iou = iou_per_class(conf)
    # class 0: 2 / 2; class 1: 0 / (1 + 1); class 2: 1 / (2 + 2 - 1); class 3 absent: nan
    np.testing.assert_allclose(iou[:3], [1.0, 0.0, 1 / 3])
    assert math.isnan(iou[3])
    assert dataset_miou(conf) == pytest.approx((1 + 0 + 1 / 3) / 3)
    gt = np.array([[0, 1, 2], [2, 255, 0]], dtype=np.uint8)
    pred = np.array([[0, 2, 2], [1, 1, 0]], dtype=np.uint8)
    assert frame_miou(pred, gt, 4) == pytest.approx((1 + 0 + 1 / 3) / 3)
    # a class only in the prediction counts (IoU 0); one in neither does not
    assert frame_miou(np.array([[0, 1]]), np.array([[0, 0]]), 5) == pytest.approx((0.5 + 0.0) / 2)
    assert math.isnan(frame_miou(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8), 3))


def test_dataset_miou_differs_from_mean_of_frames() -> None:
    a_gt, a_pred = np.array([[0, 0, 0, 1]]), np.array([[0, 0, 0, 0]])  # IoU0 = 3/4, IoU1 = 0
    b_gt, b_pred = np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]])  # IoU1 = 1
    conf = confusion_matrix(a_pred, a_gt, 2) + confusion_matrix(b_pred, b_gt, 2)
    assert dataset_miou(conf) == pytest.approx((3 / 4 + 4 / 5) / 2)
    frames = [frame_miou(a_pred, a_gt, 2), frame_miou(b_pred, b_gt, 2)]
    assert np.mean(frames) == pytest.approx(((3 / 4 + 0) / 2 + 1) / 2)


def test_bad_label_maps_raise() -> None:
    with pytest.raises(ConfigError, match="same shape"):
        confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), 3)
    with pytest.raises(ConfigError, match=r"pred has labels in \[0, 3\] outside \[0, 3\)"):
        confusion_matrix(np.array([[0, 3]]), np.array([[0, 1]]), 3)
    with pytest.raises(ConfigError, match="gt has labels"):
        confusion_matrix(np.array([[0, 1]]), np.array([[0, 7]]), 3)
    with pytest.raises(ConfigError, match="integer label maps"):
        confusion_matrix(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.uint8), 3)
    with pytest.raises(ConfigError, match="square"):
        iou_per_class(np.zeros((2, 3)))


def test_cur_latency_and_percentiles() -> None:
    assert cur([True, False, False, True]) == 0.5
    assert cur(np.array([1, 0, 0, 0])) == 0.25
    assert math.isnan(cur([]))
    with pytest.raises(ConfigError, match="booleans"):
        cur([0.5, 1.0])
    parts = LatencyParts(edge_s=0.05, upload_s=0.2, cloud_s=1.5, download_s=0.1)
    assert parts.total == pytest.approx(1.85)
    assert LatencyParts(0.04).total == pytest.approx(0.04)
    with pytest.raises(ConfigError, match="upload_s"):
        LatencyParts(0.1, upload_s=-1.0)
    stats = percentiles(np.arange(1, 101, dtype=float))
    assert set(stats) == {"p50", "p95"}
    assert stats["p50"] == pytest.approx(50.5) and stats["p95"] == pytest.approx(95.05)
    assert percentiles([3.0], qs=(99.9,)) == {"p99.9": 3.0}
    assert math.isnan(percentiles([])["p50"])
    with pytest.raises(ConfigError, match="outside"):
        percentiles([1.0], qs=(101,))
