"""Classical over-segmenters as SAM(x) stand-ins (NOT SAM): Felzenszwalb-Huttenlocher and SLIC superpixels.

Each turns an (optionally downscaled) segment-id map into disjoint class-agnostic masks for Algorithm 1.
"""

from __future__ import annotations

import numpy as np

from laecips_core.errors import ConfigError
from laecips_core.lvm.base import (
    _check_image,
    _check_positive_int,
    _require,
    _resize_to_long_side,
    _upsample_nearest,
    masks_from_label_map,
)

__all__ = ["FelzenszwalbLVM", "SlicLVM"]


class _LabelMapLVM:
    """Shared body of the classical over-segmenters: label map (optionally at a lower size) -> masks."""

    name = "label_map"
    needs_labels = False

    def __init__(self, *, max_masks: int | None, min_area: int, work_size: int | None) -> None:
        self.max_masks = None if max_masks is None else _check_positive_int("max_masks", max_masks)
        if min_area < 0:
            raise ConfigError(f"min_area must be >= 0 pixels, got {min_area}")
        self.min_area = int(min_area)
        self.work_size = None if work_size is None else _check_positive_int("work_size", work_size)

    def _segment(self, image01: np.ndarray) -> np.ndarray:
        """(h, w, 3) float64 in [0, 1] -> (h, w) integer segment ids."""
        raise NotImplementedError

    def label_map(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """Segment ids at full size: (H, W, 3) uint8 -> (H, W) int64 (computed at work_size if set)."""
        image = _check_image(image_rgb_uint8, self.name)
        height, width = image.shape[:2]
        if self.work_size is None:
            small = image.astype(np.float64) / 255.0
        else:
            small = _resize_to_long_side(image, self.work_size)
        return _upsample_nearest(self._segment(small).astype(np.int64), height, width)

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (K, H, W) bool disjoint masks, one per segment."""
        return masks_from_label_map(
            self.label_map(image_rgb_uint8), max_masks=self.max_masks, min_area=self.min_area
        )


class FelzenszwalbLVM(_LabelMapLVM):
    """Classical graph-based segmentation (Felzenszwalb-Huttenlocher 2004), NOT SAM: the CPU default.

    Stands in for SAM(x) when no SAM checkpoint or GPU is available: an over-segmentation whose segments
    follow colour edges, so Algorithm 1 can still snap f's labels to region boundaries. Uses
    skimage.segmentation.felzenszwalb, optionally on an image downscaled to work_size (long side) and
    upsampled back with nearest neighbour.

    Args:
        scale: larger -> larger segments (the paper's k; skimage's scale on [0, 1] images).
        sigma: Gaussian pre-smoothing (pixels at work size).
        min_size: minimum segment size in pixels at work size (smaller components are merged).
        max_masks: keep at most this many segments (the largest); None keeps all.
        min_area: drop segments smaller than this many full-size pixels.
        work_size: long side (pixels) to segment at; None segments at full size.
    """

    name = "felzenszwalb"
    description = "classical graph-based segmentation (Felzenszwalb-Huttenlocher), not SAM"

    def __init__(
        self,
        scale: float = 50.0,
        sigma: float = 0.3,
        min_size: int = 20,
        max_masks: int | None = 512,
        min_area: int = 0,
        work_size: int | None = 320,
    ) -> None:
        super().__init__(max_masks=max_masks, min_area=min_area, work_size=work_size)
        if scale <= 0 or sigma < 0:
            raise ConfigError(f"felzenszwalb needs scale > 0 and sigma >= 0, got scale={scale} sigma={sigma}")
        self.scale = float(scale)
        self.sigma = float(sigma)
        self.min_size = _check_positive_int("min_size", min_size)
        self._segmentation = _require("skimage.segmentation", "scikit-image", "FelzenszwalbLVM")

    def _segment(self, image01: np.ndarray) -> np.ndarray:
        segments: np.ndarray = self._segmentation.felzenszwalb(
            image01, scale=self.scale, sigma=self.sigma, min_size=self.min_size, channel_axis=-1
        )
        return segments


class SlicLVM(_LabelMapLVM):
    """SLIC superpixels (k-means in Lab + xy), NOT SAM: compact, roughly equal-size segments.

    Args:
        n_segments: approximate number of superpixels.
        compactness: larger -> squarer superpixels, smaller -> follow colour more.
        sigma: Gaussian pre-smoothing (pixels at work size).
        max_masks: keep at most this many segments (the largest); None keeps all.
        min_area: drop segments smaller than this many full-size pixels.
        work_size: long side (pixels) to segment at; None segments at full size.
    """

    name = "slic"
    description = "SLIC superpixels (classical), not SAM"

    def __init__(
        self,
        n_segments: int = 400,
        compactness: float = 20.0,
        sigma: float = 1.0,
        max_masks: int | None = 512,
        min_area: int = 0,
        work_size: int | None = 320,
    ) -> None:
        super().__init__(max_masks=max_masks, min_area=min_area, work_size=work_size)
        self.n_segments = _check_positive_int("n_segments", n_segments)
        if compactness <= 0 or sigma < 0:
            raise ConfigError(f"slic needs compactness > 0 and sigma >= 0, got {compactness}, {sigma}")
        self.compactness = float(compactness)
        self.sigma = float(sigma)
        self._segmentation = _require("skimage.segmentation", "scikit-image", "SlicLVM")

    def _segment(self, image01: np.ndarray) -> np.ndarray:
        segments: np.ndarray = self._segmentation.slic(
            image01,
            n_segments=self.n_segments,
            compactness=self.compactness,
            sigma=self.sigma,
            start_label=0,
            channel_axis=-1,
        )
        return segments
