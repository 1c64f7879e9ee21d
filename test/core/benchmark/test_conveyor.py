"""Tests of the conveyor painter: the belt across the frame, parts riding its moving slots, defects."""

from __future__ import annotations

import dataclasses

import numpy as np
from laecips_core.benchmark.conveyor import paint_conveyor, paint_defect
from laecips_core.benchmark.raster import Material
from laecips_core.benchmark.tasks import CLASS_ID, TASK_STYLES

BELT = CLASS_ID["conveyor_belt"]
PARTS = [CLASS_ID[name] for name in ("metal_part", "plastic_part", "crate")]
FULL = dataclasses.replace(TASK_STYLES[0], belt_load=1.0, defect_rate=0.0)
EMPTY = dataclasses.replace(TASK_STYLES[0], belt_load=0.0)


def test_the_belt_crosses_the_whole_frame(make_scene):
    for seed in range(3):
        scene = make_scene(seed=seed, style=EMPTY)
        paint_conveyor(scene, 150.0)
        labels = scene.canvas.labels()
        assert (labels == BELT).any(axis=0).all()
        assert not np.isin(labels, PARTS).any()  # an empty belt carries nothing


def test_parts_ride_the_belt_and_move_with_it(make_scene):
    present = ("metal_part", "plastic_part")
    frames = []
    for t in (0.0, 0.5):
        scene = make_scene(seed=4, t=t, style=FULL, present=present, absent=("crate",))
        paint_conveyor(scene, 150.0)
        frames.append(scene.canvas.labels())
    parts = [np.isin(f, PARTS) for f in frames]
    assert parts[0].sum() > 500 and parts[1].sum() > 500
    assert (parts[0] != parts[1]).sum() > 200  # the parts moved
    belt_or_part = [np.isin(f, [BELT, *PARTS]) for f in frames]
    assert (belt_or_part[0] == belt_or_part[1]).mean() > 0.98  # the belt did not


def test_defects_stay_on_their_part(make_scene):
    drawn = 0
    for seed in range(12):
        scene = make_scene(seed=seed)
        part = scene.canvas.material(Material(CLASS_ID["metal_part"], np.full(3, 150, np.float32)))
        scene.canvas.disk(160.0, 150.0, 30.0, part)
        before = scene.canvas.labels()
        paint_defect(scene, np.random.default_rng(seed), 160.0, 150.0, 30.0, seed % 2, (part,))
        defect = scene.canvas.labels() == CLASS_ID["defect"]
        assert (before[defect] == CLASS_ID["metal_part"]).all()
        drawn += defect.any()
    assert drawn >= 10
