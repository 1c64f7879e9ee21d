"""What every LVM (the paper's SAM(x)) shares: the Protocol, input checks, label map -> masks, purity.

Small helpers only (no model); the implementations (classical, hierarchy, oracle, sam, medsam) import
from here, never the other way.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from laecips_core.errors import ConfigError, ImageError

__all__ = ["LVM", "masks_from_label_map", "segment_purity"]


@runtime_checkable
class LVM(Protocol):
    """A large vision model SAM(x): one image in, a set of class-agnostic binary masks out.

    Attributes:
        name: short identifier used in logs, reports and the wire reply (e.g. "sam_vit_h").
        needs_labels: False for every real LVM (``needs_labels = False`` on each class here). True only
            for the evaluation-only OracleLVM, whose ``generate(image, labels=gt)`` needs the ground
            truth; callers read it with ``getattr(lvm, "needs_labels", False)``, so an LVM without the
            attribute counts as False.
    """

    name: str

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """Segment everything in one image.

        Args:
            image_rgb_uint8: (H, W, 3) uint8 RGB image.

        Returns:
            (K, H, W) bool masks, K >= 0, in no particular order (fusion, Algorithm 1, orders them).
        """
        ...


# --------------------------------------------------------------------------------------------------
# small shared helpers


def _check_image(image: np.ndarray, who: str) -> np.ndarray:
    """Return image as a C-contiguous (H, W, 3) uint8 array or raise ImageError saying what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{who}: expected a numpy array (H, W, 3) uint8 RGB, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"{who}: expected shape (H, W, 3) RGB, got {image.shape}; convert grey/RGBA first")
    if image.dtype != np.uint8:
        raise ImageError(f"{who}: expected dtype uint8 (0..255), got {image.dtype}; scale and cast first")
    return np.ascontiguousarray(image)


def _require(module: str, pip_name: str, purpose: str, instead: str = "use lvm 'felzenszwalb'") -> Any:
    """Import an optional dependency or raise ConfigError naming the package to install, or the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ConfigError(
            f"{purpose} needs the Python package '{pip_name}' (import {module} failed: {err}); "
            f"install it with `pip install {pip_name}`, or {instead}"
        ) from err


def _torch_device(device: str | torch.device) -> torch.device:
    """Parse a device string ("cpu", "cuda", "cuda:1") and check that it exists on this host."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda[:N]'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU here; use device='cpu'")
    return dev


def _check_unit(name: str, value: float) -> float:
    """Check a threshold lies in [0, 1]."""
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must lie in [0, 1], got {value}")
    return float(value)


def _check_positive_int(name: str, value: int) -> int:
    """Check a count is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _empty_masks(height: int, width: int) -> np.ndarray:
    """(0, H, W) bool: the result when an LVM finds nothing."""
    return np.zeros((0, height, width), dtype=bool)


# --------------------------------------------------------------------------------------------------
# label maps -> masks, purity


def masks_from_label_map(
    labels: np.ndarray, *, max_masks: int | None = None, min_area: int = 0
) -> np.ndarray:
    """Turn an over-segmentation (one segment id per pixel) into one bool mask per segment.

    Args:
        labels: (H, W) integer segment ids (any values, need not be contiguous).
        max_masks: keep at most this many segments, the largest by area (ties: lower id first);
            None keeps all. Pixels of dropped segments are covered by no mask (in F they keep f's label).
        min_area: drop segments with fewer pixels than this.

    Returns:
        (K, H, W) bool masks, pairwise disjoint, in increasing segment-id order.
    """
    if labels.ndim != 2:
        raise ImageError(f"label map must be (H, W), got shape {labels.shape}")
    height, width = labels.shape
    ids, inverse = np.unique(labels.ravel(), return_inverse=True)
    areas = np.bincount(inverse, minlength=len(ids))
    keep = np.flatnonzero(areas >= max(int(min_area), 1))
    if max_masks is not None and len(keep) > max_masks:
        order = np.argsort(-areas[keep], kind="stable")[:max_masks]
        keep = np.sort(keep[order])
    slot = np.full(len(ids), -1, dtype=np.int64)
    slot[keep] = np.arange(len(keep))
    pixel_slot = slot[inverse]
    covered = np.flatnonzero(pixel_slot >= 0)
    masks = np.zeros((len(keep), height * width), dtype=bool)
    masks[pixel_slot[covered], covered] = True
    return masks.reshape(len(keep), height, width)


def segment_purity(masks: np.ndarray, gt_labels: np.ndarray, *, ignore_index: int | None = 255) -> float:
    """Segment purity: how rarely masks straddle two ground-truth classes.

    For each mask k let c_k be the majority ground-truth class of its pixels. Purity is
    sum_k |{p in k : gt(p) = c_k}| / sum_k |{p in k : gt(p) valid}|. For disjoint masks that cover the
    image this is the fraction of pixels whose segment's majority class equals their own class: the pixel
    accuracy Algorithm 1 (F) would reach if every mask were given its majority class.

    Args:
        masks: (K, H, W) bool masks.
        gt_labels: (H, W) integer ground-truth class map.
        ignore_index: class value excluded from the count (None: none excluded).

    Returns:
        purity in [0, 1]; nan when no mask covers a valid pixel.
    """
    if masks.ndim != 3 or masks.shape[1:] != gt_labels.shape:
        raise ImageError(f"masks {masks.shape} must be (K, H, W) with (H, W) = gt_labels {gt_labels.shape}")
    gt = gt_labels.ravel().astype(np.int64)
    valid = np.ones_like(gt, dtype=bool) if ignore_index is None else gt != ignore_index
    num_classes = int(gt[valid].max()) + 1 if valid.any() else 1
    flat = masks.reshape(len(masks), gt.size)
    pure = 0
    total = 0
    for mask in flat:
        counts = np.bincount(gt[mask & valid], minlength=num_classes)
        pure += int(counts.max())
        total += int(counts.sum())
    return pure / total if total else float("nan")


def _resize_to_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Downscale (H, W, 3) uint8 so max(H, W) <= long_side; returns float64 in [0, 1] (skimage scale)."""
    transform = _require("skimage.transform", "scikit-image", "work_size downscaling")
    height, width = image.shape[:2]
    factor = long_side / max(height, width)
    if factor >= 1.0:
        return image.astype(np.float64) / 255.0
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    resized: np.ndarray = transform.resize(image, size, order=1, anti_aliasing=True, preserve_range=False)
    return resized


def _upsample_nearest(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour upsampling of an (h, w) label map to (height, width)."""
    small_h, small_w = labels.shape
    if (small_h, small_w) == (height, width):
        return labels
    rows = ((np.arange(height) + 0.5) * small_h / height).astype(np.int64).clip(0, small_h - 1)
    cols = ((np.arange(width) + 0.5) * small_w / width).astype(np.int64).clip(0, small_w - 1)
    upsampled: np.ndarray = labels[rows[:, None], cols[None, :]]
    return upsampled
