"""ORACLE SAM(x) for evaluation only: connected ground-truth regions as masks, an UPPER BOUND for F(x).

Never a default and never in a pipeline: it needs the ground truth.
"""

from __future__ import annotations

import numpy as np

from laecips_core.errors import ConfigError, ImageError
from laecips_core.lvm.base import _check_image, _require

__all__ = ["OracleLVM"]


class OracleLVM:
    """ORACLE "segmenter" for evaluation only: masks = connected ground-truth regions. An upper bound.

    Each connected component of each class in the ground-truth label map becomes one mask; the masks
    carry no class information (Algorithm 1 still takes the class from f), so F(x) with this LVM
    measures what perfect class-agnostic masks would give. It needs the ground truth, so it can never
    run in the pipeline and is never a default; generate() refuses without labels.

    Args:
        connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood) for the components.
        ignore_index: label value that belongs to no mask (None: every value is a class).
        min_area: drop components smaller than this many pixels.
    """

    name = "oracle"
    description = "ORACLE upper bound for evaluation only: connected ground-truth regions, never a default"
    needs_labels = True

    def __init__(self, connectivity: int = 1, ignore_index: int | None = 255, min_area: int = 0) -> None:
        if connectivity not in (1, 2):
            raise ConfigError(f"connectivity must be 1 or 2, got {connectivity!r}")
        if min_area < 0:
            raise ConfigError(f"min_area must be >= 0 pixels, got {min_area}")
        self.connectivity = int(connectivity)
        self.ignore_index = ignore_index
        self.min_area = int(min_area)
        self._measure = _require("skimage.measure", "scikit-image", "OracleLVM")

    def generate(self, image_rgb_uint8: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Connected ground-truth regions as masks.

        Args:
            image_rgb_uint8: (H, W, 3) uint8 RGB (only its size is used).
            labels: (H, W) integer ground-truth class map of this image (required).

        Returns:
            (K, H, W) bool masks, pairwise disjoint, covering every pixel not equal to ignore_index.

        Raises:
            ConfigError: labels is None (the oracle is evaluation-only).
            ImageError: labels is not an (H, W) integer map of the image's size.
        """
        if labels is None:
            raise ConfigError(
                "the oracle LVM is an upper bound for evaluation: it needs ground-truth labels "
                "(generate(image, labels=gt)); use 'hierarchy', 'felzenszwalb' or 'sam' in a pipeline"
            )
        image = _check_image(image_rgb_uint8, self.name)
        labels = np.asarray(labels)
        if labels.shape != image.shape[:2] or not np.issubdtype(labels.dtype, np.integer):
            raise ImageError(
                f"oracle: labels must be an (H, W) integer map of the image's size {image.shape[:2]}, "
                f"got {labels.shape} {labels.dtype}"
            )
        values = labels.astype(np.int64)
        background = -1 if self.ignore_index is None else int(self.ignore_index)
        components = self._measure.label(values, background=background, connectivity=self.connectivity)
        count = int(components.max())
        areas = np.bincount(components.ravel(), minlength=count + 1)
        keep = np.flatnonzero(areas >= max(self.min_area, 1))
        keep = keep[keep > 0]  # id 0: the ignored pixels, no mask
        slot = np.full(count + 1, -1, dtype=np.int64)
        slot[keep] = np.arange(len(keep))
        pixel_slot = slot[components.ravel()]
        covered = np.flatnonzero(pixel_slot >= 0)
        masks = np.zeros((len(keep), components.size), dtype=bool)
        masks[pixel_slot[covered], covered] = True
        return masks.reshape(len(keep), *components.shape)
