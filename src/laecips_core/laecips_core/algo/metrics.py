"""Evaluation metrics of the paper (Eq. 25-27): mIoU per frame and per stream, CUR, latency."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from laecips_core.errors import ConfigError

IGNORE_INDEX = 255
"""Ground-truth value excluded from every metric (unlabelled pixels)."""


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """Pixel confusion matrix: ``conf[g, p]`` counts pixels of true class g predicted as p.

    Args:
        pred: (H, W) (or any shape) integer labels in [0, M).
        gt: Integer ground truth of the same shape, values in [0, M) or ``ignore_index``.
        num_classes: M.
        ignore_index: Ground-truth value to skip (None: skip nothing).

    Returns:
        (M, M) int64; rows are ground truth, columns predictions.

    Raises:
        ConfigError: On a shape mismatch, a non-integer dtype or a label outside [0, M).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be an int >= 1, got {num_classes!r}")
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ConfigError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
    for name, array in (("pred", pred), ("gt", gt)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ConfigError(f"{name} has dtype {array.dtype}: pass integer label maps")
    pred, gt = pred.reshape(-1), gt.reshape(-1)
    if ignore_index is not None:
        keep = gt != ignore_index
        if not keep.all():
            pred, gt = pred[keep], gt[keep]
    for name, array in (("pred", pred), ("gt", gt)):
        if array.size and (array.min() < 0 or array.max() >= num_classes):
            raise ConfigError(
                f"{name} has labels in [{array.min()}, {array.max()}] outside [0, {num_classes}) "
                f"(ignore_index={ignore_index}): check num_classes and the label encoding"
            )
    index = gt.astype(np.int64) * num_classes + pred
    counts = np.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def iou_per_class(conf: np.ndarray) -> np.ndarray:
    """IoU of every class from a confusion matrix (Eq. 25): TP / (TP + FP + FN).

    Args:
        conf: (M, M) counts, rows ground truth, columns predictions.

    Returns:
        (M,) float64; NaN for a class absent from both the ground truth and the predictions.
    """
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ConfigError(f"conf must be a square (M, M) matrix, got shape {conf.shape}")
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def _nanmean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def frame_miou(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> float:
    """mIoU of one frame: mean IoU over the classes present in its ground truth or prediction.

    Args:
        pred: (H, W) integer labels of the output produced for the frame (f(x) or F(x)).
        gt: (H, W) ground truth (``ignore_index`` pixels skipped).
        num_classes: M.
        ignore_index: Ground-truth value to skip.

    Returns:
        The mean in [0, 1]; NaN when the frame has no labelled pixel.
    """
    return _nanmean(iou_per_class(confusion_matrix(pred, gt, num_classes, ignore_index)))


def dataset_miou(conf: np.ndarray) -> float:
    """Standard stream-level mIoU: mean IoU over classes of the summed confusion matrix (NaN if empty)."""
    return _nanmean(iou_per_class(conf))


def cur(uploaded_flags: Iterable[bool] | np.ndarray) -> float:
    """Cloud upload rate (Eq. 26): the fraction of frames uploaded, NaN for no frames."""
    flags = np.asarray(list(uploaded_flags) if not isinstance(uploaded_flags, np.ndarray) else uploaded_flags)
    if flags.size == 0:
        return float("nan")
    if flags.dtype != np.bool_ and not np.isin(flags, (0, 1)).all():
        raise ConfigError("uploaded_flags must be booleans (or 0/1), one per frame")
    return float(flags.astype(bool).mean())


@dataclass(frozen=True)
class LatencyParts:
    """The latency of one frame (Eq. 27), from frame arrival to final mask, in seconds.

    Attributes:
        edge_s: Edge compute (f and h).
        upload_s: Sending the frame to the cloud (0 for easy frames).
        cloud_s: Cloud compute (f, SAM, Algorithm 1).
        download_s: Receiving the fused labels.
    """

    edge_s: float
    upload_s: float = 0.0
    cloud_s: float = 0.0
    download_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("edge_s", "upload_s", "cloud_s", "download_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"LatencyParts.{name} must be finite seconds >= 0, got {value!r}")

    @property
    def total(self) -> float:
        """Sum of the four parts, seconds."""
        return self.edge_s + self.upload_s + self.cloud_s + self.download_s


def percentiles(values: Iterable[float] | np.ndarray, qs: Sequence[float] = (50, 95)) -> dict[str, float]:
    """Percentiles of e.g. latencies: ``{"p50": ..., "p95": ...}`` (linear interpolation; NaN if empty).

    Args:
        values: Samples (seconds or any unit).
        qs: Percentiles in [0, 100]; keys are ``f"p{q:g}"``.
    """
    data = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    for q in qs:
        if not 0 <= q <= 100:
            raise ConfigError(f"percentile {q!r} is outside [0, 100]")
    if data.size == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    return {f"p{q:g}": float(np.percentile(data.reshape(-1), q)) for q in qs}


def auroc(scores: np.ndarray | Sequence[float], positive: np.ndarray | Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for ``positive`` (Mann-Whitney U, tied ranks averaged).

    Used for the miners: how well a confidence h(f(x)) separates EASY from HARD frames (0.5 = chance).
    NaN when either class is absent.
    """
    pos = np.asarray(positive, bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
