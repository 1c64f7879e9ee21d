"""Tests of the painters of moving things: walking people and driving AGVs / forklifts."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.benchmark.actors import paint_agv, paint_person
from laecips_core.benchmark.tasks import CLASS_ID


@pytest.mark.parametrize(("name", "paint"), [("person", paint_person), ("agv", paint_agv)])
def test_actors_stand_on_their_row_and_move_with_time(make_scene, name, paint):
    moved = 0
    for seed in range(4):
        centres = []
        for t in (0.0, 0.9):
            scene = make_scene(seed=seed, t=t, absent=("pallet",))
            paint(scene, 200.0)
            rows, cols = np.nonzero(scene.canvas.labels() == CLASS_ID[name])
            assert rows.size > 100
            assert 185 <= rows.max() <= 210  # feet or wheels on row 200
            centres.append(cols.mean())
        moved += abs(centres[1] - centres[0]) > 0.02 * 320
    assert moved == 4


def test_people_are_taller_than_wide_and_agvs_wider_than_tall(make_scene):
    for name, paint in (("person", paint_person), ("agv", paint_agv)):
        scene = make_scene(seed=1, absent=("pallet",))
        paint(scene, 230.0)
        rows, cols = np.nonzero(scene.canvas.labels() == CLASS_ID[name])
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert (height > 1.5 * width) if name == "person" else (width > height * 0.8)
