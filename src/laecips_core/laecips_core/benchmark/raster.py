"""Rasterisation of the benchmark's scenes: a material-id map painted with polygons, and the shapes drawn.

Every primitive writes a material id into one (H, W) map; labels and image are both derived from that
map (``shading.render``), so label boundaries are exactly the painted boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skimage import draw


@dataclass
class Material:
    """Surface appearance of one object part: colours, periodic pattern, shading and noise."""

    cls: int
    c1: np.ndarray  # (3,) float32 base colour
    c2: np.ndarray | None = None  # (3,) second colour of the pattern
    wave: tuple[float, float, float, float, float] | None = None  # fx, fy (rad/px), phase, sharpness, bias
    wave2: tuple[float, float, float, float, float] | None = None  # multiplied in (checkers)
    grad: tuple[float, float, float, float] | None = None  # gx, gy (1/px), cx, cy: linear shading
    rings: tuple[float, float, float, float] | None = None  # cx, cy, freq (rad/px), amplitude
    fine: float = 4.0  # fine noise std (intensity units)
    coarse: float = 5.0  # coarse noise std
    ox: int = 0
    oy: int = 0


class Canvas:
    """Material-id map plus the material table; painter's algorithm."""

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width)
        self.mat = np.zeros((height, width), np.uint8)
        self.materials: list[Material] = []

    def material(self, m: Material) -> int:
        """Register m and return its id (the value painted into the map)."""
        if len(self.materials) >= 255:  # table full: reuse the first material of that class
            for i, old in enumerate(self.materials):
                if old.cls == m.cls:
                    return i
            return 0
        self.materials.append(m)
        return len(self.materials) - 1

    def first_material(self, cls: int) -> int:
        """Id of the first registered material of class id cls, or -1 when there is none."""
        for i, m in enumerate(self.materials):
            if m.cls == cls:
                return i
        return -1

    def labels(self) -> np.ndarray:
        """(H, W) uint8 class ids: the class of the material painted last at each pixel."""
        lut = np.array([m.cls for m in self.materials], np.uint8)
        labels: np.ndarray = lut[self.mat]
        return labels

    def _put(self, rr: np.ndarray, cc: np.ndarray, m: int, on: tuple[int, ...] | None) -> None:
        """Paint pixels (rr, cc) with m; with on, only where the current material is one of on."""
        if on is not None and rr.size:
            allowed = np.zeros(256, bool)
            allowed[[i for i in on if 0 <= i < 256]] = True
            keep = allowed[self.mat[rr, cc]]
            rr, cc = rr[keep], cc[keep]
        self.mat[rr, cc] = m

    def polygon(self, xs: np.ndarray, ys: np.ndarray, m: int, on: tuple[int, ...] | None = None) -> None:
        """Fill the polygon with vertices (xs, ys) in px."""
        rr, cc = fill_polygon(xs, ys, self.shape)
        self._put(rr, cc, m, on)

    def disk(self, x: float, y: float, r: float, m: int, on: tuple[int, ...] | None = None) -> None:
        """Fill the disk of radius r px centred at (x, y)."""
        if r <= 0:
            return
        rr, cc = draw.disk((y, x), r, shape=self.shape)
        self._put(rr, cc, m, on)

    def ellipse(
        self,
        x: float,
        y: float,
        rx: float,
        ry: float,
        m: int,
        angle: float = 0.0,
        on: tuple[int, ...] | None = None,
    ) -> None:
        """Fill the ellipse with semi-axes rx, ry px centred at (x, y), rotated by angle rad."""
        if rx <= 0 or ry <= 0:
            return
        rr, cc = draw.ellipse(y, x, ry, rx, shape=self.shape, rotation=angle)
        self._put(rr, cc, m, on)

    def restore_disk(self, x: float, y: float, r: float, before: np.ndarray) -> None:
        """Punch a round hole: pixels go back to what was painted before the object."""
        if r <= 0:
            return
        rr, cc = draw.disk((y, x), r, shape=self.shape)
        self.mat[rr, cc] = before[rr, cc]

    def band(self, pts: np.ndarray, width: float, m: int, on: tuple[int, ...] | None = None) -> None:
        """Thick polyline through pts (N, 2) as (x, y), drawn as one outline polygon."""
        if width <= 0 or len(pts) < 2:
            return
        tangent = np.gradient(pts, axis=0)
        norm = np.hypot(tangent[:, 0], tangent[:, 1])[:, None]
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) / np.maximum(norm, 1e-9)
        left = pts + normal * (width / 2)
        right = pts - normal * (width / 2)
        outline = np.concatenate([left, right[::-1]])
        self.polygon(outline[:, 0], outline[:, 1], m, on)


def fill_polygon(xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels inside a polygon by vectorised scanline filling (even-odd rule), cost O(rows * edges + pixels).

    Pixel (r, c) is inside when a ray from its centre towards +x crosses the outline an odd number of
    times (edges are half-open in y), so polygons sharing an edge never overlap or leave gaps. Unlike
    skimage.draw.polygon it tests no pixel outside the spans, so huge or many-vertex outlines are cheap.

    Args:
        xs: (N,) vertex columns in px (any float, may lie outside the image).
        ys: (N,) vertex rows in px.
        shape: (H, W) of the image; pixels outside are dropped.

    Returns:
        (rr, cc) intp arrays of the covered pixels, row-major order.
    """
    x0 = np.asarray(xs, np.float64).ravel()
    y0 = np.asarray(ys, np.float64).ravel()
    height, width = shape
    empty = np.empty(0, np.intp)
    if x0.size < 3 or not (np.isfinite(x0).all() and np.isfinite(y0).all()):
        return empty, empty
    r_lo, r_hi = max(0, math.ceil(y0.min())), min(height - 1, math.floor(y0.max()))
    if r_lo > r_hi or x0.max() < 0 or x0.min() > width - 1:
        return empty, empty
    x1, y1 = np.concatenate([x0[1:], x0[:1]]), np.concatenate([y0[1:], y0[:1]])
    rows = np.arange(r_lo, r_hi + 1, dtype=np.float64)[:, None]
    crosses = (y0 > rows) != (y1 > rows)  # (R, E): edge e crosses the line through row centres
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = np.where(crosses, x0 + (x1 - x0) / (y1 - y0) * (rows - y0), np.inf)
    n_max = int(crosses.sum(axis=1).max())
    if n_max == 0:
        return empty, empty
    xc = np.sort(xc, axis=1)[:, :n_max]
    start = np.ceil(xc[:, 0::2])  # inside from the first crossing (inclusive) ...
    stop = np.ceil(xc[:, 1::2])  # ... to the second (exclusive)
    np.clip(start, 0, width, out=start)
    np.clip(stop, 0, width, out=stop)
    valid = np.isfinite(stop) & (stop > start)
    start_i = start[valid].astype(np.intp)
    length = stop[valid].astype(np.intp) - start_i
    row_i = np.nonzero(valid)[0] + r_lo
    rr = np.repeat(row_i, length)
    cc = np.arange(int(length.sum()), dtype=np.intp) - np.repeat(np.cumsum(length) - length - start_i, length)
    return rr, cc


def rect(cx: float, cy: float, w: float, h: float, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Corners (xs, ys) of a w x h rectangle centred at (cx, cy), rotated by angle (rad)."""
    xs = np.array([-w, w, w, -w]) / 2
    ys = np.array([-h, -h, h, h]) / 2
    ca, sa = math.cos(angle), math.sin(angle)
    return cx + ca * xs - sa * ys, cy + sa * xs + ca * ys


def rounded_rect(
    cx: float, cy: float, w: float, h: float, r: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Outline of a rectangle with round corners of radius r (5 points per corner)."""
    r = min(r, w / 2, h / 2)
    pts = []
    for (sx, sy), a0 in zip(((1, 1), (-1, 1), (-1, -1), (1, -1)), (0.0, 0.5, 1.0, 1.5), strict=True):
        ox, oy = sx * (w / 2 - r), sy * (h / 2 - r)
        for a in np.linspace(a0 * math.pi, (a0 + 0.5) * math.pi, 5):
            pts.append((ox + r * math.cos(a), oy + r * math.sin(a)))
    p = np.array(pts)
    ca, sa = math.cos(angle), math.sin(angle)
    return cx + ca * p[:, 0] - sa * p[:, 1], cy + sa * p[:, 0] + ca * p[:, 1]


def gear(cx: float, cy: float, r: float, teeth: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Outline of a spur gear: teeth trapezoids between radius 0.8 r and r."""
    a = angle + np.arange(teeth * 4) * (2 * math.pi / (teeth * 4))
    rad = np.tile([0.8 * r, r, r, 0.8 * r], teeth)
    return cx + rad * np.cos(a), cy + rad * np.sin(a)


def blob(
    rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Irregular closed outline (a spill, a dent) with smooth random radius."""
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    k = np.arange(1, 4)[:, None]
    amp = rng.uniform(0.05, 0.22, (3, 1)) / k
    ph = rng.uniform(0, 2 * math.pi, (3, 1))
    rad = 1.0 + (amp * np.sin(k * a + ph)).sum(axis=0)
    return cx + rx * rad * np.cos(a), cy + ry * rad * np.sin(a)


def bezier(p: np.ndarray, n: int) -> np.ndarray:
    """n points (n, 2) of the cubic Bezier curve with control points p (4, 2)."""
    t = np.linspace(0, 1, n)[:, None]
    curve: np.ndarray = (
        (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
    )
    return curve
