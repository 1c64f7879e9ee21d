"""Drifting shop-floor benchmark: a robot camera on a production line, exact labels, five drifting tasks."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage
from skimage import draw

from laecips_core.errors import ConfigError

CLASSES: tuple[str, ...] = (
    "floor",
    "wall",
    "conveyor_belt",
    "machine",
    "rack",
    "pallet",
    "crate",
    "metal_part",
    "plastic_part",
    "tool",
    "person",
    "agv",
    "cable",
    "floor_marking",
    "defect",
    "spill",
)
"""Class names; the class id of a label pixel is its index here (M = NUM_CLASSES)."""

NUM_CLASSES: int = len(CLASSES)

_ID = {name: i for i, name in enumerate(CLASSES)}

SEGMENT_SECONDS = 1.0
"""A scene (camera station and layout) lasts this long; objects drift coherently inside it."""

_MAX_SIDE = 8192
_MAX_PIXELS = 4096 * 4096
_NOISE_PAD = 128  # noise banks are larger than the frame by this much; offsets are drawn in [0, pad)
_SALT_FRAME, _SALT_LAYOUT, _SALT_PRESENCE, _SALT_SLOT = 0, 1, 2, 3
# Weyl multipliers (fractional parts of square roots of primes): one low-discrepancy sequence per class.
_WEYL = np.array([math.sqrt(p) % 1.0 for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)])


def _presence(**probs: float) -> tuple[float, ...]:
    """Per-class scene presence probabilities (M,), floor, wall and conveyor_belt always 1."""
    out = [0.0] * NUM_CLASSES
    for name in ("floor", "wall", "conveyor_belt"):
        out[_ID[name]] = 1.0
    for name, p in probs.items():
        out[_ID[name]] = p
    return tuple(out)


@dataclass(frozen=True)
class TaskStyle:
    """How one task (a stretch of the stream) looks: its class mix and its appearance shift.

    Attributes:
        name: Short name of the task.
        description: What changes compared with task 1.
        presence: (M,) probability that a scene contains class c (the class sampling probabilities).
        part_mix: Relative weights of metal_part, plastic_part and crate among parts on the belt.
        belt_load: Probability that a belt slot carries a part.
        defect_rate: Fraction of parts that carry a defect in a scene that has defects.
        crowd: Largest number of people in one scene.
        fleet: Largest number of AGVs / forklifts in one scene.
        clutter: Multiplier of the number of floor objects (pallets, crate stacks, tools, cables).
        gain: Global lighting gain (1 = task 1).
        colour_temperature: Per-channel (R, G, B) gains of the illuminant.
        texture_scale: Frequency multiplier of surface textures (stripes, slats, noise).
        object_scale: Size multiplier of objects.
        motion_blur_px: Horizontal motion blur length in pixels at 640x480 (0 = none).
        noise_std: Standard deviation of sensor noise in 8-bit intensity units.
    """

    name: str
    description: str
    presence: tuple[float, ...]
    part_mix: tuple[float, float, float]
    belt_load: float
    defect_rate: float
    crowd: int
    fleet: int
    clutter: float
    gain: float
    colour_temperature: tuple[float, float, float]
    texture_scale: float
    object_scale: float
    motion_blur_px: float
    noise_std: float


TASK_STYLES: tuple[TaskStyle, ...] = (
    TaskStyle(
        name="baseline",
        description="day shift, neutral light, metal parts, every class present (defects, spills rare)",
        presence=_presence(
            machine=0.7,
            rack=0.6,
            pallet=0.5,
            crate=0.6,
            metal_part=0.9,
            plastic_part=0.45,
            tool=0.35,
            person=0.3,
            agv=0.2,
            cable=0.5,
            floor_marking=0.7,
            defect=0.2,
            spill=0.12,
        ),
        part_mix=(0.6, 0.3, 0.1),
        belt_load=0.75,
        defect_rate=0.5,
        crowd=2,
        fleet=1,
        clutter=1.0,
        gain=1.0,
        colour_temperature=(1.0, 1.0, 1.0),
        texture_scale=1.0,
        object_scale=1.0,
        motion_blur_px=0.0,
        noise_std=3.0,
    ),
    TaskStyle(
        name="shift_change",
        description="crowded aisle (more people, more tools), dim warm light, larger objects",
        presence=_presence(
            machine=0.6,
            rack=0.5,
            pallet=0.4,
            crate=0.5,
            metal_part=0.85,
            plastic_part=0.4,
            tool=0.6,
            person=0.95,
            agv=0.15,
            cable=0.5,
            floor_marking=0.6,
            defect=0.2,
            spill=0.1,
        ),
        part_mix=(0.6, 0.3, 0.1),
        belt_load=0.6,
        defect_rate=0.5,
        crowd=4,
        fleet=1,
        clutter=1.0,
        gain=0.72,
        colour_temperature=(1.15, 0.98, 0.78),
        texture_scale=1.0,
        object_scale=1.15,
        motion_blur_px=0.0,
        noise_std=5.0,
    ),
    TaskStyle(
        name="product_change",
        description="new product: mostly plastic parts, many defects; cold bright light, fine textures, "
        "smaller objects",
        presence=_presence(
            machine=0.7,
            rack=0.6,
            pallet=0.4,
            crate=0.75,
            metal_part=0.3,
            plastic_part=0.95,
            tool=0.3,
            person=0.25,
            agv=0.15,
            cable=0.6,
            floor_marking=0.7,
            defect=0.7,
            spill=0.1,
        ),
        part_mix=(0.15, 0.7, 0.15),
        belt_load=0.85,
        defect_rate=0.6,
        crowd=2,
        fleet=1,
        clutter=1.0,
        gain=1.18,
        colour_temperature=(0.86, 0.98, 1.18),
        texture_scale=1.8,
        object_scale=0.8,
        motion_blur_px=0.0,
        noise_std=3.0,
    ),
    TaskStyle(
        name="logistics",
        description="AGVs and forklifts, pallets, frequent spills; green fluorescent light, coarse textures, "
        "motion blur",
        presence=_presence(
            machine=0.5,
            rack=0.7,
            pallet=0.9,
            crate=0.8,
            metal_part=0.7,
            plastic_part=0.4,
            tool=0.3,
            person=0.35,
            agv=0.9,
            cable=0.4,
            floor_marking=0.9,
            defect=0.15,
            spill=0.6,
        ),
        part_mix=(0.4, 0.2, 0.4),
        belt_load=0.6,
        defect_rate=0.5,
        crowd=2,
        fleet=2,
        clutter=1.2,
        gain=0.92,
        colour_temperature=(0.94, 1.1, 0.92),
        texture_scale=0.65,
        object_scale=1.1,
        motion_blur_px=7.0,
        noise_std=6.0,
    ),
    TaskStyle(
        name="night_clutter",
        description="night shift: cluttered floor (pallets, crates, tools, cables), dark bluish light, "
        "strong sensor noise",
        presence=_presence(
            machine=0.9,
            rack=0.9,
            pallet=0.9,
            crate=0.9,
            metal_part=0.8,
            plastic_part=0.6,
            tool=0.85,
            person=0.5,
            agv=0.45,
            cable=0.9,
            floor_marking=0.9,
            defect=0.3,
            spill=0.3,
        ),
        part_mix=(0.45, 0.35, 0.2),
        belt_load=0.9,
        defect_rate=0.5,
        crowd=2,
        fleet=1,
        clutter=2.2,
        gain=0.58,
        colour_temperature=(0.9, 0.97, 1.15),
        texture_scale=1.35,
        object_scale=0.9,
        motion_blur_px=2.0,
        noise_std=11.0,
    ),
)
"""One style per task (task ids 0..4 = the paper's tasks 1..5), applied in chronological order."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """The drifting benchmark stream: num_tasks tasks of frames_per_task frames each.

    Attributes:
        seed: Scene seed (int >= 0); frames with equal (seed, index) are byte-identical.
        frames_per_task: Frames per task (>= 1).
        width: Frame width in pixels (16..8192).
        height: Frame height in pixels (16..8192).
        num_tasks: Number of tasks (1..len(TASK_STYLES)); task t uses TASK_STYLES[t].
        fps: Frame rate in frames per second; frame i is stamped i / fps seconds.
    """

    seed: int = 0
    frames_per_task: int = 200
    width: int = 640
    height: int = 480
    num_tasks: int = 5
    fps: float = 10.0

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            ConfigError: When a field has the wrong type or is out of range.
        """
        for name in ("seed", "frames_per_task", "width", "height", "num_tasks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"BenchmarkConfig.{name} must be an int, got {value!r}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"BenchmarkConfig.seed must be in [0, 2**63), got {self.seed}")
        if self.frames_per_task < 1:
            raise ConfigError(f"BenchmarkConfig.frames_per_task must be >= 1, got {self.frames_per_task}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not 16 <= value <= _MAX_SIDE:
                raise ConfigError(f"BenchmarkConfig.{name} must be in [16, {_MAX_SIDE}] pixels, got {value}")
        if self.width * self.height > _MAX_PIXELS:
            raise ConfigError(
                f"BenchmarkConfig width*height = {self.width * self.height} exceeds {_MAX_PIXELS} pixels; "
                "use a smaller frame size"
            )
        if not 1 <= self.num_tasks <= len(TASK_STYLES):
            raise ConfigError(
                f"BenchmarkConfig.num_tasks must be in [1, {len(TASK_STYLES)}], got {self.num_tasks}"
            )
        if isinstance(self.fps, bool) or not isinstance(self.fps, int | float) or not 0 < self.fps <= 1000:
            raise ConfigError(f"BenchmarkConfig.fps must be a number in (0, 1000], got {self.fps!r}")

    @property
    def num_frames(self) -> int:
        """Total number of frames in the stream (num_tasks * frames_per_task)."""
        return self.num_tasks * self.frames_per_task


def task_label(task_id: int) -> str:
    """The paper's name of a 0-based task id: task id 0 is "task 1" (figures and tables number from 1)."""
    return f"task {int(task_id) + 1}"


class Frame(NamedTuple):
    """One benchmark frame with its exact ground truth.

    Attributes:
        index: Position in the stream (0-based).
        task_id: Task of the frame (0-based; the paper's task t is task_id t - 1).
        timestamp: index / fps in seconds.
        image: (H, W, 3) uint8 RGB camera image.
        labels: (H, W) uint8 class ids in [0, NUM_CLASSES), drawn with the image's own polygons.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the contract's field name
    task_id: int
    timestamp: float
    image: np.ndarray
    labels: np.ndarray


def task_of(cfg: BenchmarkConfig, index: int) -> int:
    """Task id (0-based) of frame index; tasks follow each other in chronological order.

    Raises:
        ConfigError: When index is outside [0, cfg.num_frames).
    """
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise ConfigError(f"frame index must be an int, got {index!r}")
    if not 0 <= index < cfg.num_frames:
        raise ConfigError(
            f"frame index {index} is outside the stream [0, {cfg.num_frames}); raise num_tasks or "
            "frames_per_task to make the stream longer"
        )
    return int(index) // cfg.frames_per_task


def class_frequencies(cfg: BenchmarkConfig, task_id: int) -> np.ndarray:
    """Class sampling probabilities of a task (the data drift of the paper's Fig. 5).

    Entry c is the probability that a scene of the task contains class c (before occlusion and
    objects leaving the view); over the task the share of scenes with c converges to it quickly
    because presence follows a low-discrepancy sequence.

    Returns:
        (M,) float64 probabilities in [0, 1].

    Raises:
        ConfigError: When task_id is outside [0, cfg.num_tasks).
    """
    if (
        isinstance(task_id, bool)
        or not isinstance(task_id, int | np.integer)
        or not (0 <= task_id < cfg.num_tasks)
    ):
        raise ConfigError(f"task_id must be an int in [0, {cfg.num_tasks}), got {task_id!r}")
    return np.array(TASK_STYLES[task_id].presence, dtype=np.float64)


def generate_frame(cfg: BenchmarkConfig, index: int) -> Frame:
    """Render frame index of the stream alone, deterministically from (cfg.seed, index).

    Args:
        cfg: Benchmark configuration.
        index: Frame index in [0, cfg.num_frames).

    Returns:
        The Frame; its image and labels depend only on cfg and index.

    Raises:
        ConfigError: When index is outside the stream.
    """
    task = task_of(cfg, index)
    style = TASK_STYLES[task]
    seg_len = max(1, round(cfg.fps * SEGMENT_SECONDS))
    local = int(index) - task * cfg.frames_per_task
    segment = local // seg_len
    t_rel = (local - segment * seg_len) / cfg.fps
    scene = _Scene(cfg, style, task, segment, t_rel)
    scene.build()
    frame_rng = np.random.default_rng([cfg.seed, _SALT_FRAME, int(index)])
    image, labels = _render(scene.canvas, style, frame_rng, scene.unit)
    return Frame(int(index), task, int(index) / cfg.fps, image, labels)


def generate_stream(cfg: BenchmarkConfig, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Yield frames start..stop-1 in order (stop defaults to cfg.num_frames).

    Raises:
        ConfigError: When the range is outside the stream.
    """
    stop = cfg.num_frames if stop is None else stop
    if not 0 <= start <= stop <= cfg.num_frames:
        raise ConfigError(f"stream range [{start}, {stop}) must lie within [0, {cfg.num_frames}]")
    for index in range(start, stop):
        yield generate_frame(cfg, index)


# ----------------------------------------------------------------------------------------------------
# Rasterisation: every primitive writes a material id into one (H, W) map; labels and image are both
# derived from that map, so label boundaries are exactly the painted boundaries.


@dataclass
class _Material:
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


class _Canvas:
    """Material-id map plus the material table; painter's algorithm."""

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width)
        self.mat = np.zeros((height, width), np.uint8)
        self.materials: list[_Material] = []

    def material(self, m: _Material) -> int:
        """Register m and return its id (the value painted into the map)."""
        if len(self.materials) >= 255:  # table full: reuse the first material of that class
            for i, old in enumerate(self.materials):
                if old.cls == m.cls:
                    return i
            return 0
        self.materials.append(m)
        return len(self.materials) - 1

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


def _rect(cx: float, cy: float, w: float, h: float, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Corners (xs, ys) of a w x h rectangle centred at (cx, cy), rotated by angle (rad)."""
    xs = np.array([-w, w, w, -w]) / 2
    ys = np.array([-h, -h, h, h]) / 2
    ca, sa = math.cos(angle), math.sin(angle)
    return cx + ca * xs - sa * ys, cy + sa * xs + ca * ys


def _rounded_rect(
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


def _gear(cx: float, cy: float, r: float, teeth: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Outline of a spur gear: teeth trapezoids between radius 0.8 r and r."""
    a = angle + np.arange(teeth * 4) * (2 * math.pi / (teeth * 4))
    rad = np.tile([0.8 * r, r, r, 0.8 * r], teeth)
    return cx + rad * np.cos(a), cy + rad * np.sin(a)


def _blob(
    rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Irregular closed outline (a spill, a dent) with smooth random radius."""
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    k = np.arange(1, 4)[:, None]
    amp = rng.uniform(0.05, 0.22, (3, 1)) / k
    ph = rng.uniform(0, 2 * math.pi, (3, 1))
    rad = 1.0 + (amp * np.sin(k * a + ph)).sum(axis=0)
    return cx + rx * rad * np.cos(a), cy + ry * rad * np.sin(a)


def _bezier(p: np.ndarray, n: int) -> np.ndarray:
    """n points (n, 2) of the cubic Bezier curve with control points p (4, 2)."""
    t = np.linspace(0, 1, n)[:, None]
    curve: np.ndarray = (
        (1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]
    )
    return curve


# ----------------------------------------------------------------------------------------------------
# Scene layout.

_FLOOR_COLOURS = ((128, 128, 124), (84, 112, 90), (96, 104, 118), (140, 126, 104))
_WALL_COLOURS = ((188, 188, 182), (196, 184, 152), (152, 176, 152), (160, 176, 196), (150, 150, 150))
_MACHINE_COLOURS = ((150, 156, 160), (86, 128, 100), (62, 92, 140), (200, 200, 196), (210, 120, 40))
_HIVIS = ((230, 206, 40), (240, 120, 30), (120, 200, 60))
_PLASTIC_COLOURS = (
    (200, 50, 40),
    (40, 90, 190),
    (50, 150, 70),
    (225, 225, 220),
    (230, 200, 40),
    (30, 30, 34),
)
_CABLE_COLOURS = ((24, 24, 26), (220, 110, 30), (40, 80, 170), (120, 120, 120), (200, 40, 30))
_SKIN = ((224, 180, 150), (190, 140, 100), (140, 96, 66), (96, 66, 46))


class _Scene:
    """Builds one frame's material map from the scene layout of (seed, task, segment) at time t_rel."""

    def __init__(self, cfg: BenchmarkConfig, style: TaskStyle, task: int, segment: int, t_rel: float) -> None:
        self.cfg, self.style, self.t = cfg, style, t_rel
        self.W, self.H = cfg.width, cfg.height
        self.unit = min(self.W / 640.0, self.H / 480.0)
        self.rng = np.random.default_rng([cfg.seed, _SALT_LAYOUT, task, segment])
        self.slot_key = (cfg.seed, _SALT_SLOT, task, segment)
        offsets = np.random.default_rng([cfg.seed, _SALT_PRESENCE, task]).random(NUM_CLASSES)
        frac = (segment * _WEYL + offsets) % 1.0
        self.present = frac < np.array(style.presence)
        self.canvas = _Canvas(self.H, self.W)
        self.tex = style.texture_scale
        self.floor_ids: tuple[int, ...] = ()
        self.shadow = -1

    # -- helpers ---------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether class name is present in this scene (low-discrepancy draw with the task's probability)."""
        return bool(self.present[_ID[name]])

    def colour(self, base: tuple[int, int, int] | np.ndarray, jitter: float = 12.0) -> np.ndarray:
        """(3,) float32 RGB: base plus Gaussian jitter of std jitter (8-bit units)."""
        c = np.asarray(base, np.float32) + self.rng.normal(0, jitter, 3).astype(np.float32)
        return np.clip(c, 4, 250).astype(np.float32)

    def pick(self, options: tuple[tuple[int, int, int], ...], jitter: float = 12.0) -> np.ndarray:
        """A jittered colour chosen uniformly from options."""
        return self.colour(options[int(self.rng.integers(len(options)))], jitter)

    def mat(self, cls: str, c1: np.ndarray, **kw: Any) -> int:
        """Register a material of class cls with random noise-bank offsets."""
        m = _Material(
            _ID[cls],
            c1,
            ox=int(self.rng.integers(_NOISE_PAD)),
            oy=int(self.rng.integers(_NOISE_PAD)),
            **kw,
        )
        if m.c2 is None and m.wave is not None:
            m.c2 = np.clip(c1 * 0.7, 0, 255).astype(np.float32)
        return self.canvas.material(m)

    def stripes(
        self, period: float, angle: float, sharp: float = 1.0, bias: float = 0.0, phase: float | None = None
    ) -> tuple[float, float, float, float, float]:
        """Wave parameters: period in px (before texture scaling), direction angle of the wave vector."""
        k = 2 * math.pi / max(period / self.tex, 1.5)
        ph = float(self.rng.uniform(0, 2 * math.pi)) if phase is None else phase
        return (k * math.cos(angle), k * math.sin(angle), ph, sharp, bias)

    def persp(self, y: float) -> float:
        """Apparent size factor of an object standing at image row y (1 at the bottom)."""
        return 0.4 + 0.6 * min(max((y - self.horizon) / (self.H - self.horizon), 0.0), 1.2)

    # -- the frame -------------------------------------------------------------------------------
    def build(self) -> None:
        """Paint the whole frame: floor, wall, flat floor things, then standing objects far to near."""
        W, H, rng = self.W, self.H, self.rng
        self.horizon = H * float(rng.uniform(0.15, 0.3))
        tilt = H * float(rng.uniform(-0.04, 0.04))
        self.pan = W * float(rng.uniform(-0.03, 0.03)) * self.t
        self._floor()
        self._wall(tilt)
        drawables: list[tuple[float, int, Callable[[], None]]] = []
        if self.has("floor_marking"):
            self._markings()
        if self.has("spill"):
            for _ in range(1 + int(rng.integers(0, 2))):
                self._spill()
        if self.has("cable"):
            for _ in range(1 + int(rng.integers(0, round(1 + 2 * self.style.clutter)))):
                self._cable()
        # objects standing on the floor, painted far to near
        for _ in range(int(rng.integers(1, 3)) if self.has("machine") else 0):
            x = float(rng.uniform(-0.1, 0.9)) * W
            yb = self.horizon + float(rng.uniform(0.02, 0.2)) * (H - self.horizon)
            drawables.append((yb, len(drawables), functools.partial(self._machine, x, yb)))
        for _ in range(int(rng.integers(1, 3)) if self.has("rack") else 0):
            x = float(rng.uniform(-0.05, 0.85)) * W
            yb = self.horizon + float(rng.uniform(0.03, 0.25)) * (H - self.horizon)
            drawables.append((yb, len(drawables), functools.partial(self._rack, x, yb)))
        n_pallets = 1 + int(rng.integers(0, round(1 + 1.5 * self.style.clutter))) if self.has("pallet") else 0
        for _ in range(n_pallets):
            x = float(rng.uniform(0.0, 1.0)) * W
            yb = self.horizon + float(rng.uniform(0.1, 1.0)) * (H - self.horizon)
            drawables.append((yb, len(drawables), functools.partial(self._pallet, x, yb)))
        n_stacks = int(rng.integers(1, round(2 + self.style.clutter))) if self.has("crate") else 0
        for _ in range(n_stacks):
            x = float(rng.uniform(0.0, 1.0)) * W
            yb = self.horizon + float(rng.uniform(0.08, 0.9)) * (H - self.horizon)
            drawables.append((yb, len(drawables), functools.partial(self._crate_stack, x, yb, None)))
        n_tools = 1 + int(rng.integers(0, round(1 + 1.5 * self.style.clutter))) if self.has("tool") else 0
        for _ in range(n_tools):
            x = float(rng.uniform(0.05, 0.95)) * W
            yb = self.horizon + float(rng.uniform(0.2, 1.0)) * (H - self.horizon)
            drawables.append((yb - 1e-3, len(drawables), functools.partial(self._tool, x, yb)))
        belt_y = self.horizon + float(rng.uniform(0.3, 0.7)) * (H - self.horizon)
        drawables.append((belt_y, len(drawables), functools.partial(self._conveyor, belt_y)))
        for _ in range(int(rng.integers(1, self.style.crowd + 1)) if self.has("person") else 0):
            yb = self.horizon + float(rng.uniform(0.15, 1.05)) * (H - self.horizon)
            drawables.append((yb, len(drawables), functools.partial(self._person, yb)))
        for _ in range(int(rng.integers(1, self.style.fleet + 1)) if self.has("agv") else 0):
            yb = self.horizon + float(rng.uniform(0.2, 1.0)) * (H - self.horizon)
            drawables.append((yb, len(drawables), functools.partial(self._agv, yb)))
        for _, _, paint in sorted(drawables, key=lambda d: (d[0], d[1])):
            paint()

    def _floor(self) -> None:
        rng, u = self.rng, self.unit
        c1 = self.pick(_FLOOR_COLOURS, 10)
        if rng.random() < 0.5:  # tiles: checkerboard of two close tones
            tile = float(rng.uniform(50, 90)) * u
            a = float(rng.uniform(-0.2, 0.2))
            m = self.mat(
                "floor",
                c1,
                c2=np.clip(c1 * float(rng.uniform(0.82, 0.92)), 0, 255).astype(np.float32),
                wave=self.stripes(2 * tile, a, 30.0),
                wave2=self.stripes(2 * tile, a + math.pi / 2, 30.0),
                fine=5.0,
                coarse=6.0,
            )
        else:  # epoxy / concrete with reflections
            m = self.mat(
                "floor",
                c1,
                grad=(0.0, 0.35 / self.H, 0.0, self.H * 0.6),
                fine=4.0,
                coarse=11.0,
            )
        # shadows are floor too: dark, under objects
        self.shadow = self.mat("floor", np.clip(c1 * 0.45, 0, 255).astype(np.float32), fine=3.0, coarse=3.0)
        self.floor_ids = (m, self.shadow)
        assert m == 0

    def _wall(self, tilt: float) -> None:
        rng, u, W = self.rng, self.unit, self.W
        c1 = self.pick(_WALL_COLOURS, 10)
        m = self.mat(
            "wall",
            c1,
            c2=np.clip(c1 * 0.8, 0, 255).astype(np.float32),
            wave=self.stripes(float(rng.uniform(60, 160)) * u, 0.0, 12.0, 0.85),
            grad=(0.0, -0.3 / self.H, 0.0, self.horizon),
            fine=3.0,
            coarse=7.0,
        )
        y0, y1 = self.horizon - tilt / 2, self.horizon + tilt / 2
        self.canvas.polygon(np.array([-1, W + 1, W + 1, -1.0]), np.array([-1, -1, y1, y0]), m)
        skirt = self.mat("wall", self.colour((70, 70, 72), 10), fine=2.0, coarse=2.0)
        hs = max(1.5, 8 * u)
        self.canvas.polygon(np.array([-1, W + 1, W + 1, -1.0]), np.array([y0 - hs, y1 - hs, y1, y0]), skirt)

    def _markings(self) -> None:
        rng, u, W, H, c = self.rng, self.unit, self.W, self.H, self.canvas
        yellow = self.colour((226, 194, 42), 10)
        white = self.colour((222, 222, 212), 6)
        paint = self.mat("floor_marking", yellow if rng.random() < 0.7 else white, fine=4.0, coarse=6.0)
        for _ in range(int(rng.integers(1, 3))):
            if rng.random() < 0.5:  # lane line receding towards the horizon
                xt = float(rng.uniform(0.1, 0.9)) * W + self.pan
                xb = xt + float(rng.uniform(-0.8, 0.8)) * W
                wt, wb = 3 * u, 22 * u
                c.polygon(
                    np.array([xt - wt, xt + wt, xb + wb, xb - wb]),
                    np.array([self.horizon, self.horizon, H + 1, H + 1]),
                    paint,
                    on=self.floor_ids,
                )
            else:  # cross line
                y = self.horizon + float(rng.uniform(0.1, 0.95)) * (H - self.horizon)
                hw = 14 * u * self.persp(y)
                slope = float(rng.uniform(-0.08, 0.08)) * H
                c.polygon(
                    np.array([-1, W + 1, W + 1, -1.0]),
                    np.array([y - hw, y - hw + slope, y + hw + slope, y + hw]),
                    paint,
                    on=self.floor_ids,
                )
        if rng.random() < 0.6:  # hazard zone: diagonal yellow / black stripes
            hz = self.mat(
                "floor_marking",
                yellow,
                c2=self.colour((28, 28, 30), 4),
                wave=self.stripes(
                    float(rng.uniform(30, 50)) * u, math.pi / 4 * float(rng.choice([1, 3])), 40.0
                ),
                fine=4.0,
                coarse=5.0,
            )
            y = self.horizon + float(rng.uniform(0.2, 0.9)) * (H - self.horizon)
            x = float(rng.uniform(0, 1)) * W + self.pan
            w, h = (
                float(rng.uniform(80, 200)) * u * self.persp(y),
                float(rng.uniform(25, 60)) * u * self.persp(y),
            )
            sk = w * 0.3
            c.polygon(
                np.array([x - w / 2 + sk, x + w / 2 + sk, x + w / 2, x - w / 2]),
                np.array([y - h, y - h, y, y]),
                hz,
                on=self.floor_ids,
            )

    def _spill(self) -> None:
        rng, u, W, H = self.rng, self.unit, self.W, self.H
        y = self.horizon + float(rng.uniform(0.25, 0.95)) * (H - self.horizon)
        x = float(rng.uniform(0.05, 0.95)) * W + self.pan
        r = float(rng.uniform(30, 75)) * u * self.persp(y) * self.style.object_scale
        if rng.random() < 0.6:  # oil: dark with a sheen
            m = self.mat(
                "spill",
                self.colour((38, 36, 40), 6),
                c2=self.colour((70, 58, 90), 8),
                wave=self.stripes(float(rng.uniform(40, 90)) * u, float(rng.uniform(0, math.pi))),
                fine=2.0,
                coarse=4.0,
            )
        else:  # coolant: milky, close to the floor colour
            m = self.mat(
                "spill",
                self.colour((176, 186, 196), 10),
                rings=(x, y, 2 * math.pi / (12 * u + 1), 0.06),
                fine=2.0,
                coarse=5.0,
            )
        xs, ys = _blob(rng, x, y, r * 1.4, r * 0.6, 24)
        self.canvas.polygon(xs, ys, m, on=self.floor_ids + (_find(self.canvas, "floor_marking"),))

    def _cable(self) -> None:
        rng, u, W, H = self.rng, self.unit, self.W, self.H
        y0 = self.horizon + float(rng.uniform(0.05, 0.4)) * (H - self.horizon)
        p = np.array(
            [
                [float(rng.uniform(-0.1, 1.1)) * W, y0],
                [
                    float(rng.uniform(0, 1)) * W,
                    self.horizon + float(rng.uniform(0.2, 1)) * (H - self.horizon),
                ],
                [
                    float(rng.uniform(0, 1)) * W,
                    self.horizon + float(rng.uniform(0.2, 1)) * (H - self.horizon),
                ],
                [float(rng.uniform(-0.1, 1.1)) * W, H * float(rng.uniform(0.8, 1.1))],
            ]
        )
        p[:, 0] += self.pan
        width = max(1.5, float(rng.uniform(4, 9)) * u * self.persp(float(p[:, 1].mean())))
        m = self.mat("cable", self.pick(_CABLE_COLOURS, 8), grad=(0.0, 0.0, 0.0, 0.0), fine=2.0, coarse=2.0)
        self.canvas.band(_bezier(p, 40), width, m)

    def _machine(self, x: float, yb: float) -> None:
        rng, u, c = self.rng, self.unit, self.canvas
        s = self.persp(yb) * self.style.object_scale
        w = float(rng.uniform(140, 260)) * u * s
        h = float(rng.uniform(150, 300)) * u * s
        depth = float(rng.uniform(0.1, 0.25)) * w
        x += self.pan
        body = self.pick(_MACHINE_COLOURS, 10)
        front = self.mat(
            "machine",
            body,
            c2=np.clip(body * 0.6, 0, 255).astype(np.float32),
            wave=self.stripes(w / float(rng.integers(2, 5)), 0.0, 20.0, 0.93),
            grad=(0.25 / w, 0.0, x, 0.0),
            fine=3.0,
            coarse=4.0,
        )
        top = self.mat("machine", np.clip(body * 1.2, 0, 255).astype(np.float32), fine=3.0, coarse=3.0)
        c.ellipse(x + w / 2, yb, w * 0.6, 8 * u * s, self.shadow, on=self.floor_ids)
        c.polygon(np.array([x, x + w, x + w, x]), np.array([yb - h, yb - h, yb, yb]), front)
        c.polygon(
            np.array([x, x + w, x + w + depth, x + depth]),
            np.array([yb - h, yb - h, yb - h - depth * 0.5, yb - h - depth * 0.5]),
            top,
        )
        screen = self.mat(
            "machine",
            self.colour((30, 50, 70), 10),
            grad=(0.0, 1.5 / h, 0.0, yb - h),
            fine=5.0,
            coarse=2.0,
        )
        sw, sh = w * float(rng.uniform(0.2, 0.35)), h * float(rng.uniform(0.12, 0.22))
        sx, sy = x + w * float(rng.uniform(0.1, 0.6)), yb - h * float(rng.uniform(0.55, 0.8))
        c.polygon(np.array([sx, sx + sw, sx + sw, sx]), np.array([sy, sy, sy + sh, sy + sh]), screen)
        if rng.random() < 0.6:
            band = self.mat(
                "machine",
                self.colour((226, 194, 42), 10),
                c2=self.colour((28, 28, 30), 4),
                wave=self.stripes(30 * u * s, math.pi / 4, 40.0),
                fine=3.0,
                coarse=3.0,
            )
            by = yb - h * float(rng.uniform(0.05, 0.25))
            c.polygon(
                np.array([x, x + w, x + w, x]), np.array([by - 10 * u * s, by - 10 * u * s, by, by]), band
            )

    def _rack(self, x: float, yb: float) -> None:
        rng, u, c = self.rng, self.unit, self.canvas
        s = self.persp(yb) * self.style.object_scale
        w = float(rng.uniform(150, 280)) * u * s
        h = float(rng.uniform(180, 340)) * u * s
        x += self.pan
        up_c = self.colour((40, 70, 150) if rng.random() < 0.7 else (120, 120, 124), 12)
        beam_c = self.colour((222, 112, 32) if rng.random() < 0.7 else (200, 180, 40), 12)
        upright = self.mat(
            "rack",
            up_c,
            c2=np.clip(up_c * 0.5, 0, 255).astype(np.float32),
            wave=self.stripes(14 * u * s, math.pi / 2, 8.0, 0.7),
            fine=3.0,
            coarse=3.0,
        )
        beam = self.mat("rack", beam_c, grad=(0.0, 0.0, 0.0, 0.0), fine=3.0, coarse=3.0)
        bw = max(2.0, 9 * u * s)
        n_up = int(rng.integers(2, 4))
        levels = int(rng.integers(2, 5))
        c.ellipse(x + w / 2, yb, w * 0.55, 6 * u * s, self.shadow, on=self.floor_ids)
        shelf_ys = [yb - (i + 1) * h / levels for i in range(levels)]
        # goods on shelves first (behind the beams)
        for sy in [yb] + shelf_ys[:-1]:
            if self.has("crate") and rng.random() < 0.8:
                self._crate_stack(x + w * float(rng.uniform(0.25, 0.75)), sy - bw, min(h / levels * 0.8, w))
        for i in range(n_up):
            ux = x + i * (w - bw) / (n_up - 1)
            c.polygon(
                np.array([ux, ux + bw, ux + bw, ux]), np.array([yb - h - bw, yb - h - bw, yb, yb]), upright
            )
        for sy in shelf_ys + [yb - 0.05 * h]:
            c.polygon(np.array([x, x + w, x + w, x]), np.array([sy - bw, sy - bw, sy, sy]), beam)

    def _pallet(self, x: float, yb: float) -> None:
        rng, u, c = self.rng, self.unit, self.canvas
        s = self.persp(yb) * self.style.object_scale
        w = float(rng.uniform(100, 160)) * u * s
        hf = 0.13 * w
        d = 0.3 * w
        x += self.pan
        wood = self.colour((176, 136, 86) if rng.random() < 0.75 else (52, 92, 160), 14)
        front = self.mat("pallet", wood, grad=(0.0, 0.0, 0.0, 0.0), fine=5.0, coarse=5.0)
        top = self.mat(
            "pallet",
            np.clip(wood * 1.1, 0, 255).astype(np.float32),
            c2=np.clip(wood * 0.55, 0, 255).astype(np.float32),
            wave=self.stripes(w / 6, 0.0, 10.0, -0.5, phase=0.0),
            fine=5.0,
            coarse=4.0,
        )
        c.ellipse(x, yb, w * 0.6, 5 * u * s, self.shadow, on=self.floor_ids)
        c.polygon(
            np.array([x - w / 2, x + w / 2, x + w / 2 + d * 0.5, x - w / 2 + d * 0.5]),
            np.array([yb - hf, yb - hf, yb - hf - d * 0.4, yb - hf - d * 0.4]),
            top,
        )
        c.polygon(
            np.array([x - w / 2, x + w / 2, x + w / 2, x - w / 2]),
            np.array([yb - hf, yb - hf, yb, yb]),
            front,
        )
        # openings between the three blocks show the shadowed floor underneath
        gap_w, gap_h = 0.3 * w, 0.55 * hf
        for gx in (x - w / 2 + 0.12 * w, x + 0.08 * w):
            c.polygon(
                np.array([gx, gx + gap_w, gx + gap_w, gx]),
                np.array([yb - gap_h - 0.15 * hf, yb - gap_h - 0.15 * hf, yb - 0.15 * hf, yb - 0.15 * hf]),
                self.shadow,
            )
        if self.has("crate") and rng.random() < 0.7:
            self._crate_stack(x + 0.1 * d, yb - hf - 0.1 * d, w * 0.9)

    def _crate_stack(self, x: float, yb: float, size: float | None) -> None:
        """One to three boxes standing at (x, yb); size caps the box width in px."""
        rng, u, c = self.rng, self.unit, self.canvas
        s = self.persp(yb) * self.style.object_scale
        bw = float(rng.uniform(50, 95)) * u * s if size is None else size * float(rng.uniform(0.5, 0.9))
        cardboard = rng.random() < 0.65
        base = (
            self.colour((182, 142, 92), 12)
            if cardboard
            else self.pick(((48, 84, 160), (160, 50, 45), (110, 112, 116)), 10)
        )
        front = self.mat("crate", base, grad=(0.4 / max(bw, 1.0), 0.0, x, 0.0), fine=4.0, coarse=4.0)
        top = self.mat("crate", np.clip(base * 1.18, 0, 255).astype(np.float32), fine=3.0, coarse=3.0)
        detail = self.mat(
            "crate",
            np.clip(base * (1.25 if cardboard else 0.45), 0, 255).astype(np.float32),
            fine=2.0,
            coarse=2.0,
        )
        if size is None:
            c.ellipse(x, yb, bw * 0.6, 4 * u * s, self.shadow, on=self.floor_ids)
        y = yb
        for _ in range(int(rng.integers(1, 4)) if size is None else 1):
            bh = bw * float(rng.uniform(0.55, 0.85))
            d = bw * 0.25
            c.polygon(
                np.array([x - bw / 2, x + bw / 2, x + bw / 2 + d, x - bw / 2 + d]),
                np.array([y - bh, y - bh, y - bh - d * 0.5, y - bh - d * 0.5]),
                top,
            )
            c.polygon(
                np.array([x - bw / 2, x + bw / 2, x + bw / 2, x - bw / 2]),
                np.array([y - bh, y - bh, y, y]),
                front,
            )
            if cardboard:  # tape strip
                c.polygon(
                    np.array([x - 0.08 * bw, x + 0.08 * bw, x + 0.08 * bw, x - 0.08 * bw]),
                    np.array([y - bh, y - bh, y - 0.6 * bh, y - 0.6 * bh]),
                    detail,
                )
            else:  # handle slot
                c.ellipse(x, y - 0.78 * bh, 0.18 * bw, 0.05 * bh + 1, detail)
            y -= bh
            x += float(rng.uniform(-0.08, 0.08)) * bw

    def _tool(self, x: float, yb: float) -> None:
        rng, u, c = self.rng, self.unit, self.canvas
        s = self.persp(yb) * self.style.object_scale
        x += self.pan
        length = float(rng.uniform(60, 110)) * u * s
        a = float(rng.uniform(0, math.pi))
        d = np.array([math.cos(a), math.sin(a) * 0.5])
        steel = self.mat(
            "tool",
            self.colour((168, 170, 176), 10),
            wave=self.stripes(6 * u, a + math.pi / 2, 1.0),
            c2=self.colour((110, 112, 118), 8),
            fine=3.0,
            coarse=2.0,
        )
        grip = self.mat(
            "tool",
            self.pick(((200, 40, 30), (230, 190, 30), (40, 70, 170), (30, 30, 30)), 10),
            grad=(0.0, 0.0, 0.0, 0.0),
            fine=2.0,
            coarse=2.0,
        )
        before = c.mat.copy()
        p0 = np.array([x, yb]) - d * length / 2
        p1 = np.array([x, yb]) + d * length / 2
        kind = int(rng.integers(3))
        wid = max(1.5, 8 * u * s)
        if kind == 0:  # wrench: steel shaft with ring ends
            c.band(np.stack([p0, p1]), wid, steel)
            for p in (p0, p1):
                c.disk(float(p[0]), float(p[1]), 1.6 * wid, steel)
                c.restore_disk(float(p[0]), float(p[1]), 0.8 * wid, before)
        elif kind == 1:  # screwdriver: grip + thin blade
            mid = p0 + (p1 - p0) * 0.42
            c.band(np.stack([p0, mid]), 1.8 * wid, grip)
            c.band(np.stack([mid, p1]), max(1.2, 0.6 * wid), steel)
        else:  # hammer: grip + head across it
            c.band(np.stack([p0, p1]), 1.3 * wid, grip)
            n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
            c.band(np.stack([p1 - n * 2.2 * wid, p1 + n * 2.2 * wid]), 2.2 * wid, steel)

    def _conveyor(self, belt_y: float) -> None:
        rng, u, W, c, style = self.rng, self.unit, self.W, self.canvas, self.style
        theta = float(rng.uniform(-0.33, 0.33))
        bw = float(rng.uniform(105, 150)) * u * self.persp(belt_y) * style.object_scale
        cx = W / 2 + self.pan
        d = np.array([math.cos(theta), math.sin(theta)])
        n = np.array([-math.sin(theta), math.cos(theta)])
        length = 2.0 * (W + self.H)
        centre = np.array([cx, belt_y])

        def quad(v0: float, v1: float) -> tuple[np.ndarray, np.ndarray]:
            pts = np.array(
                [centre + s_u * length * d + v * n for s_u, v in ((-1, v0), (1, v0), (1, v1), (-1, v1))]
            )
            return pts[:, 0], pts[:, 1]

        speed = float(rng.uniform(0.05, 0.14)) * W * (1 if rng.random() < 0.5 else -1)  # px/s along d
        pitch = float(rng.uniform(14, 28)) * u
        rubber = self.colour((52, 54, 56) if rng.random() < 0.7 else (70, 104, 78), 8)
        k = 2 * math.pi / max(pitch / self.tex, 1.5)
        belt = self.mat(
            "conveyor_belt",
            rubber,
            c2=np.clip(rubber * 1.45, 0, 255).astype(np.float32),
            wave=(k * d[0], k * d[1], -k * (speed * self.t + float(centre @ d)), 6.0, 0.3),
            fine=4.0,
            coarse=3.0,
        )
        frame_c = self.colour((150, 154, 160), 10)
        rail = self.mat("conveyor_belt", frame_c, grad=(0.0, 0.0, 0.0, 0.0), fine=3.0, coarse=3.0)
        side = self.mat(
            "conveyor_belt",
            np.clip(frame_c * 0.75, 0, 255).astype(np.float32),
            c2=np.clip(frame_c * 0.45, 0, 255).astype(np.float32),
            wave=self.stripes(float(rng.uniform(60, 120)) * u, theta, 20.0, 0.9),
            fine=3.0,
            coarse=3.0,
        )
        legs = self.mat("conveyor_belt", self.colour((70, 72, 76), 8), fine=2.0, coarse=2.0)
        rail_w = max(1.5, 0.08 * bw)
        side_h = 0.3 * bw
        leg_h = 0.7 * bw
        c.polygon(*quad(bw / 2, bw / 2 + side_h + leg_h), self.shadow, on=self.floor_ids)
        # legs every ~130 px under the near side
        leg_pitch = 130 * u
        for i in range(-12, 13):
            p = centre + (i * leg_pitch + self.pan % leg_pitch) * d + (bw / 2 + side_h) * n
            if -0.2 * W < p[0] < 1.2 * W:
                lw = max(1.5, 0.08 * bw)
                c.polygon(
                    np.array([p[0] - lw, p[0] + lw, p[0] + lw, p[0] - lw]),
                    np.array([p[1] - 2, p[1] - 2, p[1] + leg_h, p[1] + leg_h]),
                    legs,
                )
        c.polygon(*quad(bw / 2, bw / 2 + side_h), side)
        c.polygon(*quad(-bw / 2 - rail_w, bw / 2 + rail_w), rail)
        c.polygon(*quad(-bw / 2, bw / 2), belt)
        # parts ride in slots that move with the belt: slot j is at u_j = j * spacing + speed * t
        spacing = float(rng.uniform(0.95, 1.4)) * bw
        half = 0.5 * W / max(abs(math.cos(theta)), 0.5) + bw
        shift = speed * self.t
        j0 = math.floor((-half - shift) / spacing)
        j1 = math.ceil((half - shift) / spacing)
        for j in range(j0, j1 + 1):
            slot_rng = np.random.default_rng([*self.slot_key, j + 1_000_000])
            pos = centre + (j * spacing + shift) * d
            self._part(slot_rng, pos, d, n, bw, belt)

    def _part(
        self, rng: np.random.Generator, pos: np.ndarray, d: np.ndarray, n: np.ndarray, bw: float, belt: int
    ) -> None:
        """One belt slot: maybe a part (metal, plastic or crate), maybe with a defect."""
        style, c, u = self.style, self.canvas, self.unit
        draws = rng.random(8)
        kinds = [k for k, name in enumerate(("metal_part", "plastic_part", "crate")) if self.has(name)]
        if draws[0] >= style.belt_load or not kinds:
            return
        weights = np.array([style.part_mix[k] for k in kinds])
        kind = kinds[int(np.searchsorted(np.cumsum(weights) / weights.sum(), draws[1]))]
        r = bw * (0.26 + 0.14 * draws[2])
        lateral = (draws[3] - 0.5) * max(bw - 2 * r, 0.0)
        x, y = (pos + lateral * n).tolist()
        angle = float(draws[4] * 2 * math.pi)
        shape = int(draws[5] * 4)
        before = c.mat.copy()
        own: list[int] = []

        def m(cls: str, col: np.ndarray, **kw: Any) -> int:
            mid = _Material(
                _ID[cls], col, ox=int(rng.integers(_NOISE_PAD)), oy=int(rng.integers(_NOISE_PAD)), **kw
            )
            own.append(c.material(mid))
            return own[-1]

        def jit(base: tuple[int, int, int], s: float) -> np.ndarray:
            return np.clip(
                np.asarray(base, np.float32) + rng.normal(0, s, 3).astype(np.float32), 4, 250
            ).astype(np.float32)

        k_tex = self.tex
        if kind == 0:  # metal
            steel = jit((172, 174, 180) if rng.random() < 0.7 else (104, 108, 116), 10)
            body = m(
                "metal_part",
                steel,
                rings=(x, y, 2 * math.pi * k_tex / (4 * u + 1), 0.12),
                grad=(0.5 * math.cos(angle) / r, 0.5 * math.sin(angle) / r, x, y),
                fine=3.0,
                coarse=2.0,
            )
            if shape <= 1:  # gear or washer with a bore
                if shape == 0:
                    xs, ys = _gear(x, y, r, int(rng.integers(8, 15)), angle)
                    c.polygon(xs, ys, body)
                else:
                    c.disk(x, y, r * 0.9, body)
                hub = m("metal_part", np.clip(steel * 0.8, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
                c.disk(x, y, r * 0.45, hub)
                c.restore_disk(x, y, r * 0.25, before)
            elif shape == 2:  # bracket: L profile with two holes
                lw = 0.45 * r
                for a in (angle, angle + math.pi / 2):
                    c.band(
                        np.array([[x, y], [x + 1.6 * r * math.cos(a), y + 1.6 * r * math.sin(a)]]), lw, body
                    )
                for a in (angle, angle + math.pi / 2):
                    c.restore_disk(x + 1.1 * r * math.cos(a), y + 1.1 * r * math.sin(a), 0.14 * r, before)
            else:  # shaft: cylinder shading across its axis
                sm = m(
                    "metal_part",
                    steel,
                    c2=np.clip(steel * 0.45, 0, 255).astype(np.float32),
                    wave=(
                        math.cos(angle + math.pi / 2) * math.pi / (0.5 * r),
                        math.sin(angle + math.pi / 2) * math.pi / (0.5 * r),
                        -(math.cos(angle + math.pi / 2) * x + math.sin(angle + math.pi / 2) * y)
                        * math.pi
                        / (0.5 * r),
                        1.0,
                        0.0,
                    ),
                    fine=3.0,
                    coarse=2.0,
                )
                xs, ys = _rect(x, y, 2.4 * r, 0.5 * r, angle)
                c.polygon(xs, ys, sm)
        elif kind == 1:  # plastic
            col = jit(_PLASTIC_COLOURS[int(rng.integers(len(_PLASTIC_COLOURS)))], 12)
            body = m(
                "plastic_part",
                col,
                grad=(0.3 * math.cos(angle) / r, 0.3 * math.sin(angle) / r, x, y),
                fine=2.0,
                coarse=2.0,
            )
            if shape <= 1:  # housing with a lighter lid
                xs, ys = _rounded_rect(x, y, 1.9 * r, 1.3 * r, 0.3 * r, angle)
                c.polygon(xs, ys, body)
                lid = m(
                    "plastic_part", np.clip(col * 1.15 + 10, 0, 255).astype(np.float32), fine=2.0, coarse=2.0
                )
                xs, ys = _rounded_rect(x, y, 1.3 * r, 0.7 * r, 0.2 * r, angle)
                c.polygon(xs, ys, lid)
            elif shape == 2:  # cap
                c.disk(x, y, r * 0.85, body)
                rim = m("plastic_part", np.clip(col * 0.75, 0, 255).astype(np.float32), fine=2.0, coarse=2.0)
                c.disk(x, y, r * 0.6, rim)
            else:  # clip: rounded L
                lw = 0.55 * r
                for a in (angle, angle + 2.2):
                    c.band(
                        np.array([[x, y], [x + 1.4 * r * math.cos(a), y + 1.4 * r * math.sin(a)]]), lw, body
                    )
                c.disk(x, y, lw / 2, body)
        else:  # crate on the belt, top view
            base = jit((182, 142, 92), 12) if rng.random() < 0.6 else jit((48, 84, 160), 10)
            box = m("crate", base, fine=4.0, coarse=3.0)
            xs, ys = _rect(x, y, 2.0 * r, 1.5 * r, angle)
            c.polygon(xs, ys, box)
            flap = m("crate", np.clip(base * 0.75, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
            xs, ys = _rect(x, y, 2.0 * r, 0.12 * r + 1, angle)
            c.polygon(xs, ys, flap)
            return  # defects are drawn on parts only
        if self.has("defect") and draws[6] < style.defect_rate:
            self._defect(rng, x, y, r, kind, tuple(own))

    def _defect(
        self, rng: np.random.Generator, x: float, y: float, r: float, kind: int, on: tuple[int, ...]
    ) -> None:
        """Scratch, crack or corrosion spot painted on the part's own pixels (label defect)."""
        c, u = self.canvas, self.unit
        style = int(rng.integers(3))
        width = max(1.5, float(rng.uniform(3.0, 5.0)) * u)
        if style == 2 and kind == 0:  # rust / dent
            mat = _Material(
                _ID["defect"],
                np.array([150, 78, 38], np.float32) + rng.normal(0, 10, 3).astype(np.float32),
                fine=8.0,
                coarse=4.0,
            )
            xs, ys = _blob(
                rng,
                x + 0.35 * r * float(rng.uniform(-1, 1)),
                y + 0.35 * r * float(rng.uniform(-1, 1)),
                0.4 * r,
                0.3 * r,
                14,
            )
            c.polygon(xs, ys, c.material(mat), on=on)
            return
        bright = style == 0
        col = np.array([235, 235, 238] if bright else [22, 20, 20], np.float32)
        mat = _Material(_ID["defect"], col, fine=5.0, coarse=2.0)
        a = float(rng.uniform(0, math.pi))
        n_pts = 2 if bright else 5
        t = np.linspace(-0.85, 0.85, n_pts)[:, None] * r
        pts = np.array([x, y]) + t * np.array([math.cos(a), math.sin(a)])
        if not bright:  # jagged crack
            pts += rng.normal(0, 0.12 * r, pts.shape)
        c.band(pts, width, c.material(mat), on=on)

    def _person(self, yb: float) -> None:
        rng, u, W, c = self.rng, self.unit, self.W, self.canvas
        s = self.persp(yb) * self.style.object_scale
        h = float(rng.uniform(230, 290)) * u * s
        vx = float(rng.uniform(0.04, 0.12)) * W * (1 if rng.random() < 0.5 else -1)
        x = float(rng.uniform(0.05, 0.95)) * W + vx * (self.t - 0.5) + self.pan
        phase = float(rng.uniform(0, 2 * math.pi)) + 2 * math.pi * 1.8 * self.t
        trousers = self.pick(((40, 50, 80), (50, 50, 54), (70, 80, 96)), 8)
        dark = self.mat("person", np.clip(trousers * 0.75, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
        legs = self.mat("person", trousers, grad=(0.0, 0.0, 0.0, 0.0), fine=3.0, coarse=3.0)
        hivis = rng.random() < 0.6
        jacket_c = (
            self.pick(_HIVIS, 10) if hivis else self.pick(((60, 80, 130), (110, 110, 114), (150, 60, 40)), 10)
        )
        jacket = self.mat(
            "person",
            jacket_c,
            c2=self.colour((210, 214, 220), 6),
            wave=(0.0, 2 * math.pi / (0.12 * h), -2 * math.pi * yb / (0.12 * h), 30.0, 0.85)
            if hivis
            else None,
            fine=4.0,
            coarse=3.0,
        )
        skin = self.mat("person", self.pick(_SKIN, 8), fine=2.0, coarse=2.0)
        helmet = self.mat(
            "person",
            self.pick(((235, 235, 230), (230, 200, 40), (200, 50, 40), (40, 80, 170)), 6),
            fine=2.0,
            coarse=1.0,
        )
        shoes = self.mat("person", self.colour((30, 28, 28), 4), fine=2.0, coarse=1.0)
        hip = np.array([x, yb - 0.48 * h])
        shoulder = np.array([x, yb - 0.80 * h])
        swing = 0.38 * math.sin(phase)
        c.ellipse(x, yb, 0.16 * h, 0.025 * h + 1, self.shadow, on=self.floor_ids)

        def limb(root: np.ndarray, angle: float, length: float, width: float, m: int) -> np.ndarray:
            end = root + length * np.array([math.sin(angle), math.cos(angle)])
            c.band(np.stack([root, (root + end) / 2, end]), width, m)
            return end

        foot = limb(hip, -swing, 0.47 * h, 0.085 * h, dark)  # far leg
        c.ellipse(float(foot[0]), float(foot[1]), 0.05 * h, 0.022 * h + 1, shoes)
        limb(shoulder + [0, 0.02 * h], swing, 0.36 * h, 0.06 * h, dark)  # far arm
        c.polygon(
            np.array([x - 0.11 * h, x + 0.11 * h, x + 0.095 * h, x - 0.095 * h]),
            np.array([shoulder[1], shoulder[1], hip[1] + 0.04 * h, hip[1] + 0.04 * h]),
            jacket,
        )
        c.disk(x, shoulder[1] - 0.085 * h, 0.07 * h, skin)
        c.ellipse(x, shoulder[1] - 0.115 * h, 0.078 * h, 0.05 * h, helmet)
        foot = limb(hip, swing, 0.47 * h, 0.085 * h, legs)  # near leg
        c.ellipse(float(foot[0]), float(foot[1]), 0.05 * h, 0.022 * h + 1, shoes)
        hand = limb(shoulder + [0, 0.02 * h], -swing, 0.36 * h, 0.06 * h, jacket)  # near arm
        c.disk(float(hand[0]), float(hand[1]), 0.03 * h, skin)

    def _agv(self, yb: float) -> None:
        rng, u, W, c = self.rng, self.unit, self.W, self.canvas
        s = self.persp(yb) * self.style.object_scale
        w = float(rng.uniform(150, 230)) * u * s
        vx = float(rng.uniform(0.05, 0.15)) * W * (1 if rng.random() < 0.5 else -1)
        x = float(rng.uniform(0.05, 0.95)) * W + vx * (self.t - 0.5) + self.pan
        body_c = self.pick(((230, 180, 30), (235, 120, 30), (150, 152, 156), (200, 50, 40)), 10)
        body = self.mat("agv", body_c, grad=(0.0, -0.5 / w, 0.0, yb), fine=3.0, coarse=3.0)
        top = self.mat("agv", np.clip(body_c * 1.15, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
        black = self.mat("agv", self.colour((26, 26, 28), 4), fine=2.0, coarse=1.0)
        hazard = self.mat(
            "agv",
            self.colour((226, 194, 42), 8),
            c2=self.colour((28, 28, 30), 4),
            wave=self.stripes(18 * u * s, math.pi / 4, 40.0),
            fine=3.0,
            coarse=2.0,
        )
        c.ellipse(x, yb, 0.6 * w, 0.05 * w, self.shadow, on=self.floor_ids)
        wr = 0.09 * w
        forklift = rng.random() < 0.45
        if forklift:
            hb = 0.45 * w
            cab_top = yb - wr - hb - 0.45 * w
            facing = 1 if vx > 0 else -1
            mast_x = x + facing * 0.5 * w
            lw = max(1.5, 0.045 * w)
            c.polygon(
                np.array([x - w / 2, x + w / 2, x + w / 2, x - w / 2]),
                np.array([yb - wr - hb, yb - wr - hb, yb - wr, yb - wr]),
                body,
            )
            for px in (x - 0.35 * w, x + 0.2 * w):  # overhead guard posts
                c.polygon(
                    np.array([px, px + lw, px + lw, px]),
                    np.array([cab_top, cab_top, yb - wr - hb, yb - wr - hb]),
                    black,
                )
            c.polygon(
                np.array([x - 0.38 * w, x + 0.25 * w, x + 0.25 * w, x - 0.38 * w]),
                np.array([cab_top - lw, cab_top - lw, cab_top, cab_top]),
                black,
            )
            for off in (0.0, 0.06 * w):  # mast
                c.polygon(
                    np.array(
                        [
                            mast_x + facing * off,
                            mast_x + facing * off + lw,
                            mast_x + facing * off + lw,
                            mast_x + facing * off,
                        ]
                    ),
                    np.array([cab_top - 0.2 * w, cab_top - 0.2 * w, yb, yb]),
                    black,
                )
            fy = yb - float(rng.uniform(0.02, 0.5)) * w
            c.polygon(
                np.array([mast_x, mast_x + facing * 0.45 * w, mast_x + facing * 0.45 * w, mast_x]),
                np.array([fy - lw, fy - lw, fy, fy]),
                black,
            )
            if self.has("pallet") and rng.random() < 0.6:
                self._pallet(mast_x + facing * 0.25 * w - self.pan, fy - lw)
        else:  # flat AGV with a lidar puck
            hb = 0.2 * w
            c.polygon(
                np.array([x - w / 2, x + w / 2, x + w / 2 + 0.15 * w, x - w / 2 + 0.15 * w]),
                np.array([yb - wr - hb, yb - wr - hb, yb - wr - hb - 0.12 * w, yb - wr - hb - 0.12 * w]),
                top,
            )
            c.polygon(
                np.array([x - w / 2, x + w / 2, x + w / 2, x - w / 2]),
                np.array([yb - wr - hb, yb - wr - hb, yb - wr, yb - wr]),
                body,
            )
            c.polygon(
                np.array([x - w / 2, x + w / 2, x + w / 2, x - w / 2]),
                np.array([yb - wr - 0.35 * hb, yb - wr - 0.35 * hb, yb - wr, yb - wr]),
                hazard,
            )
            c.ellipse(x + 0.1 * w, yb - wr - hb - 0.1 * w, 0.06 * w, 0.035 * w, black)
        for wx in (x - 0.3 * w, x + 0.3 * w):
            c.disk(wx, yb - wr, wr, black)


def _find(canvas: _Canvas, cls: str) -> int:
    """First material id of class cls, or -1."""
    for i, m in enumerate(canvas.materials):
        if m.cls == _ID[cls]:
            return i
    return -1


# ----------------------------------------------------------------------------------------------------
# Shading.


@functools.lru_cache(maxsize=8)
def _noise_bank(height: int, width: int, sigma: float, channels: int) -> np.ndarray:
    """Unit-variance noise (C, H + pad, W + pad) float32, Gaussian-smoothed by sigma px (0 = white)."""
    rng = np.random.default_rng(20240607 + channels * 1000 + int(sigma * 10))
    noise = rng.standard_normal((channels, height + _NOISE_PAD, width + _NOISE_PAD), dtype=np.float32)
    if sigma > 0:
        noise = ndimage.gaussian_filter(noise, (0.0, sigma, sigma), mode="wrap")
        noise /= max(float(noise.std()), 1e-6)
    noise.setflags(write=False)
    return noise


@functools.lru_cache(maxsize=4)
def _vignette(height: int, width: int) -> np.ndarray:
    """(H, W) float32 lens fall-off, 1 at the centre, about 0.8 in the corners."""
    yy = (np.arange(height, dtype=np.float32) - height / 2) / (height / 2)
    xx = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
    v = (1.0 - 0.1 * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(np.float32)
    v.setflags(write=False)
    return v


def _wave(p: tuple[float, float, float, float, float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Periodic pattern in [-1, 1]: sin of a plane wave, shifted by bias and sharpened towards a square."""
    fx, fy, ph, sharp, bias = p
    v = x * np.float32(fx)
    v += y * np.float32(fy)
    v += np.float32(ph)
    np.sin(v, out=v)
    if bias:
        v -= np.float32(bias)
    if sharp > 1:
        v *= np.float32(sharp)
        np.clip(v, -1.0, 1.0, out=v)
    return v


def _shade_into(
    out: np.ndarray,
    m: _Material,
    xi: np.ndarray,
    yi: np.ndarray,
    bank_idx: np.ndarray,
    fine: np.ndarray,
    coarse: np.ndarray,
    bank_w: int,
) -> None:
    """Write the colour of material m at pixels (xi, yi) into out (3, n) float32 (planar, fast)."""
    idx = bank_idx + (m.oy * bank_w + m.ox)
    tex = fine.take(idx)
    tex *= np.float32(m.fine)
    tex += coarse.take(idx) * np.float32(m.coarse)
    t = lum = None
    if m.wave is not None or m.grad is not None or m.rings is not None:
        x = xi.astype(np.float32)
        y = yi.astype(np.float32)
        if m.wave is not None and m.c2 is not None:
            t = _wave(m.wave, x, y)
            if m.wave2 is not None:
                t *= _wave(m.wave2, x, y)
            t += 1.0
            t *= 0.5
        if m.grad is not None and (m.grad[0] or m.grad[1]):
            gx, gy, cx, cy = m.grad
            lum = (x - np.float32(cx)) * np.float32(gx)
            lum += (y - np.float32(cy)) * np.float32(gy)
            lum += 1.0
        if m.rings is not None:
            cx, cy, freq, amp = m.rings
            ring = np.hypot(x - np.float32(cx), y - np.float32(cy))
            ring *= np.float32(freq)
            np.sin(ring, out=ring)
            ring *= np.float32(amp)
            lum = ring + 1.0 if lum is None else lum + ring
    for ch in range(3):
        o = out[ch]
        c1 = np.float32(m.c1[ch])
        if t is not None and m.c2 is not None:
            np.multiply(t, np.float32(m.c2[ch]) - c1, out=o)
            o += c1
        else:
            o.fill(c1)
        if lum is not None:
            o *= lum
        o += tex


def _render(
    canvas: _Canvas, style: TaskStyle, rng: np.random.Generator, unit: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shade every material on its pixels, then apply the task's camera: light, blur, vignette, noise."""
    H, W = canvas.shape
    flat = canvas.mat.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=len(canvas.materials))
    yi, xi = np.divmod(order, W)
    fine = _noise_bank(H, W, 0.7, 1)[0]
    coarse = _noise_bank(H, W, round(max(1.0, 10.0 * unit / style.texture_scale), 1), 1)[0]
    bank_w = fine.shape[1]
    bank_idx = yi * bank_w + xi
    fine_flat, coarse_flat = fine.ravel(), coarse.ravel()
    shaded = np.empty((3, H * W), np.float32)
    start = 0
    for m_id, count in enumerate(counts.tolist()):
        if count:
            sl = slice(start, start + count)
            _shade_into(
                shaded[:, sl],
                canvas.materials[m_id],
                xi[sl],
                yi[sl],
                bank_idx[sl],
                fine_flat,
                coarse_flat,
                bank_w,
            )
            start += count
    img = np.empty((3, H, W), np.float32)
    planes = img.reshape(3, H * W)
    gain = np.asarray(style.colour_temperature, np.float32) * np.float32(style.gain)
    vignette = _vignette(H, W)
    blur = 0
    if style.motion_blur_px > 0:
        blur = int(round(style.motion_blur_px * unit * float(rng.uniform(0.6, 1.4))))
    sensor = _noise_bank(H, W, 0.0, 3) if style.noise_std > 0 else None
    oy, ox = (int(v) for v in rng.integers(_NOISE_PAD, size=2))
    out = np.empty((H, W, 3), np.uint8)
    for ch in range(3):
        planes[ch][order] = shaded[ch]
        plane = img[ch]
        if blur >= 2:
            plane = ndimage.uniform_filter1d(plane, blur, axis=1, mode="nearest")
        plane *= vignette * gain[ch]
        if sensor is not None:
            plane += sensor[ch, oy : oy + H, ox : ox + W] * np.float32(style.noise_std)
        np.clip(plane, 0.0, 255.0, out=plane)
        out[:, :, ch] = plane
    lut = np.array([m.cls for m in canvas.materials], np.uint8)
    return out, lut[canvas.mat]
