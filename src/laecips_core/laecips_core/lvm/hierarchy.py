"""The default SAM(x) stand-in on CPU (NOT SAM): hierarchical Ward merging of regions at three levels.

Class-agnostic, nested masks at SAM-like granularities (subpart / part / whole) for Algorithm 1.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np

from laecips_core.errors import ConfigError
from laecips_core.lvm.base import (
    _check_image,
    _check_positive_int,
    _require,
    _resize_to_long_side,
    _upsample_nearest,
)

__all__ = ["HierarchicalLVM"]


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
