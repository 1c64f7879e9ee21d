"""Tests of the painters of standing objects: machines, racks, pallets, crate stacks, tools."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
from laecips_core.benchmark.props import (
    paint_crate_stack,
    paint_machine,
    paint_pallet,
    paint_rack,
    paint_tool,
)
from laecips_core.benchmark.scene import Scene
from laecips_core.benchmark.tasks import CLASS_ID

Painter = Callable[[Scene, float, float], None]
PAINTERS: list[tuple[str, Painter]] = [
    ("machine", paint_machine),
    ("rack", paint_rack),
    ("pallet", paint_pallet),
    ("crate", functools.partial(paint_crate_stack, size=None)),
    ("tool", paint_tool),
]


def _pixels(scene: Scene, name: str) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(scene.canvas.labels() == CLASS_ID[name])
    return rows, cols


@pytest.mark.parametrize(("name", "paint"), PAINTERS)
def test_objects_stand_on_their_row_and_grow_towards_the_camera(make_scene, name, paint):
    areas = []
    for yb in (90.0, 230.0):
        scene = make_scene(seed=5, absent=("crate",) if name != "crate" else ())
        paint(scene, 120.0, yb)
        rows, _ = _pixels(scene, name)
        assert rows.size > 20, f"{name} painted nothing"
        slack = 30 if name == "tool" else 2  # a tool lies on the floor around its row
        assert rows.max() <= yb + slack and rows.min() < yb - 3
        assert np.isin(scene.canvas.labels(), [CLASS_ID["floor"], CLASS_ID[name]]).all()
        areas.append(rows.size)
    assert areas[1] > 1.5 * areas[0]


def test_same_scene_same_object(make_scene):
    a, b = make_scene(seed=8), make_scene(seed=8)
    paint_machine(a, 100.0, 150.0)
    paint_machine(b, 100.0, 150.0)
    assert np.array_equal(a.canvas.mat, b.canvas.mat)


@pytest.mark.parametrize("paint", [paint_rack, paint_pallet])
def test_racks_and_pallets_carry_crates_only_when_crates_are_present(make_scene, paint):
    loaded = 0
    for seed in range(6):
        with_crates, without = (
            make_scene(seed=seed, present=("crate",)),
            make_scene(seed=seed, absent=("crate",)),
        )
        paint(with_crates, 100.0, 200.0)
        paint(without, 100.0, 200.0)
        assert _pixels(without, "crate")[0].size == 0
        loaded += _pixels(with_crates, "crate")[0].size > 0
    assert loaded >= 3


def test_a_capped_crate_is_one_box_narrower_than_the_cap(make_scene):
    for seed in range(5):
        scene = make_scene(seed=seed)
        paint_crate_stack(scene, 150.0, 200.0, 40.0)
        _, cols = _pixels(scene, "crate")
        assert 0 < cols.max() - cols.min() + 1 <= 1.25 * 0.9 * 40.0 + 2
