"""Fixtures of the benchmark tests: a scene with its floor painted, ready for one painter."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from laecips_core.benchmark.layout import paint_floor
from laecips_core.benchmark.scene import Scene
from laecips_core.benchmark.tasks import CLASS_ID, TASK_STYLES, BenchmarkConfig, TaskStyle

MakeScene = Callable[..., Scene]


@pytest.fixture
def make_scene() -> MakeScene:
    """Factory: Scene(seed, task 0 style or ``style``, segment, t) with horizon at 25 % and the floor painted;
    ``present`` names classes forced present (all others keep the scene's own draw)."""

    def make(
        *,
        seed: int = 0,
        segment: int = 0,
        t: float = 0.0,
        width: int = 320,
        height: int = 240,
        style: TaskStyle | None = None,
        present: tuple[str, ...] = (),
        absent: tuple[str, ...] = (),
    ) -> Scene:
        cfg = BenchmarkConfig(seed=seed, width=width, height=height)
        scene = Scene(cfg, style or TASK_STYLES[0], 0, segment, t)
        for name in present:
            scene.present[CLASS_ID[name]] = True
        for name in absent:
            scene.present[CLASS_ID[name]] = False
        scene.horizon = 0.25 * height
        paint_floor(scene)
        return scene

    return make
