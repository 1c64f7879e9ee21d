"""Tests of a scene's layout: the background (floor, wall, markings, spills, cables) and the paint order."""

from __future__ import annotations

import numpy as np
from laecips_core.benchmark.layout import (
    paint_cable,
    paint_markings,
    paint_scene,
    paint_spill,
    paint_wall,
)
from laecips_core.benchmark.scene import Scene
from laecips_core.benchmark.tasks import CLASS_ID, TASK_STYLES, BenchmarkConfig

FLOOR, WALL = CLASS_ID["floor"], CLASS_ID["wall"]


def test_the_floor_is_material_zero_with_a_shadow(make_scene):
    scene = make_scene()
    mats = scene.canvas.materials
    assert scene.floor_ids == (0, scene.shadow) and scene.shadow == 1
    assert mats[0].cls == mats[1].cls == FLOOR
    assert float(mats[1].c1.mean()) < float(mats[0].c1.mean())  # the shadow is darker


def test_the_wall_covers_the_image_above_the_horizon(make_scene):
    scene = make_scene()
    paint_wall(scene, 0.0)
    labels = scene.canvas.labels()
    assert (labels[: int(scene.horizon) - 1] == WALL).all() and (
        labels[int(scene.horizon) + 1 :] == FLOOR
    ).all()


def test_floor_things_lie_on_the_floor(make_scene):
    for seed in range(4):
        scene = make_scene(seed=seed)
        paint_wall(scene, 0.0)
        before = scene.canvas.labels()
        paint_markings(scene)
        paint_spill(scene)
        after = scene.canvas.labels()
        changed = after != before
        assert changed.any()
        assert (before[changed] == FLOOR).all()  # markings and spills only cover the floor
        assert set(np.unique(after[changed]).tolist()) <= {CLASS_ID["floor_marking"], CLASS_ID["spill"]}
        paint_cable(scene)
        assert (scene.canvas.labels() == CLASS_ID["cable"]).any()


def test_a_scene_paints_background_then_objects():
    cfg = BenchmarkConfig(seed=1, width=320, height=240)
    for segment in range(6):
        scene = Scene(cfg, TASK_STYLES[0], 0, segment, 0.0)
        paint_scene(scene)
        assert 0.15 * 240 <= scene.horizon <= 0.3 * 240
        labels = scene.canvas.labels()
        assert labels[0].tolist().count(WALL) > 0  # the top row shows the wall (or machines before it)
        present = set(np.unique(labels).tolist())
        assert {FLOOR, CLASS_ID["conveyor_belt"]} <= present
        absent = {CLASS_ID[name] for name in ("person", "agv") if not scene.has(name)}
        assert not present & absent


def test_the_camera_pans_inside_a_scene():
    cfg = BenchmarkConfig(seed=2, width=160, height=120)
    scenes = [Scene(cfg, TASK_STYLES[0], 0, 3, t) for t in (0.0, 0.0, 0.9)]
    for scene in scenes:
        paint_scene(scene)
    a, b, c = (s.canvas.labels() for s in scenes)
    assert np.array_equal(a, b) and scenes[0].pan == 0.0
    assert not np.array_equal(a, c) and (a == c).mean() > 0.7
