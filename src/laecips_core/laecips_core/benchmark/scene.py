"""One scene of the benchmark: its random streams, class presence and the helpers every painter uses.

A scene (camera station and layout) is fixed by (seed, task, segment); ``layout.paint_scene`` paints
it at a time t_rel inside the segment.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from laecips_core.benchmark.raster import Canvas, Material
from laecips_core.benchmark.shading import NOISE_PAD
from laecips_core.benchmark.tasks import CLASS_ID, BenchmarkConfig, TaskStyle
from laecips_core.classes import NUM_CLASSES

SALT_FRAME, SALT_LAYOUT, SALT_PRESENCE, SALT_SLOT = 0, 1, 2, 3
"""Second seed word of each random stream: the frame's camera noise, the scene layout, the class presence
of a task's scenes and the conveyor's belt slots (one stream per slot)."""
WEYL = np.array([math.sqrt(p) % 1.0 for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53)])
"""Weyl multipliers (fractional parts of square roots of primes): one low-discrepancy sequence per class."""


class Scene:
    """One frame's scene: the layout of (seed, task, segment) at time t_rel, painted into ``canvas``.

    The painters (``layout``, ``props``, ``conveyor``, ``actors``) take a Scene and draw from its
    ``rng`` in a fixed order, so equal (seed, task, segment, t_rel) give equal material maps.
    """

    def __init__(self, cfg: BenchmarkConfig, style: TaskStyle, task: int, segment: int, t_rel: float) -> None:
        self.cfg, self.style, self.t = cfg, style, t_rel
        self.W, self.H = cfg.width, cfg.height
        self.unit = min(self.W / 640.0, self.H / 480.0)
        self.rng = np.random.default_rng([cfg.seed, SALT_LAYOUT, task, segment])
        self.slot_key = (cfg.seed, SALT_SLOT, task, segment)
        offsets = np.random.default_rng([cfg.seed, SALT_PRESENCE, task]).random(NUM_CLASSES)
        frac = (segment * WEYL + offsets) % 1.0
        self.present = frac < np.array(style.presence)
        self.canvas = Canvas(self.H, self.W)
        self.tex = style.texture_scale
        self.floor_ids: tuple[int, ...] = ()  # floor materials (set by layout.paint_floor)
        self.shadow = -1  # the shadow material (a floor material)
        self.horizon = 0.0  # image row of the wall's foot (set by layout.paint_scene)
        self.pan = 0.0  # camera pan at t_rel in px (set by layout.paint_scene)

    def has(self, name: str) -> bool:
        """Whether class name is present in this scene (low-discrepancy draw with the task's probability)."""
        return bool(self.present[CLASS_ID[name]])

    def colour(self, base: tuple[int, int, int] | np.ndarray, jitter: float = 12.0) -> np.ndarray:
        """(3,) float32 RGB: base plus Gaussian jitter of std jitter (8-bit units)."""
        c = np.asarray(base, np.float32) + self.rng.normal(0, jitter, 3).astype(np.float32)
        return np.clip(c, 4, 250).astype(np.float32)

    def pick(self, options: tuple[tuple[int, int, int], ...], jitter: float = 12.0) -> np.ndarray:
        """A jittered colour chosen uniformly from options."""
        return self.colour(options[int(self.rng.integers(len(options)))], jitter)

    def mat(self, cls: str, c1: np.ndarray, **kw: Any) -> int:
        """Register a material of class cls with random noise-bank offsets."""
        m = Material(
            CLASS_ID[cls],
            c1,
            ox=int(self.rng.integers(NOISE_PAD)),
            oy=int(self.rng.integers(NOISE_PAD)),
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
