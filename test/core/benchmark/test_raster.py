"""Tests of the benchmark's rasteriser: scanline polygon filling, the material map and the shapes."""

from __future__ import annotations

import math

import numpy as np
from laecips_core.benchmark.raster import (
    Canvas,
    Material,
    bezier,
    blob,
    fill_polygon,
    gear,
    rect,
    rounded_rect,
)


def _material(cls: int) -> Material:
    return Material(cls, np.zeros(3, np.float32))


def test_fill_polygon_matches_even_odd_rule():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:40, 0:50].astype(np.float64)
    for _ in range(30):
        n = int(rng.integers(3, 12))
        xs, ys = rng.uniform(-10, 60, n), rng.uniform(-10, 50, n)
        inside = np.zeros((40, 50), bool)
        for xa, ya, xb, yb in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1), strict=True):
            crosses = (ya > rows) != (yb > rows)
            with np.errstate(divide="ignore", invalid="ignore"):
                inside ^= crosses & (cols < xa + (xb - xa) / (yb - ya) * (rows - ya))
        got = np.zeros((40, 50), bool)
        rr, cc = fill_polygon(xs, ys, (40, 50))
        got[rr, cc] = True
        assert np.array_equal(got, inside)


def test_polygons_sharing_an_edge_neither_overlap_nor_leave_gaps():
    count = np.zeros((30, 30), int)
    for xs, ys in (([2.3, 27.1, 2.3], [1.7, 1.7, 26.4]), ([27.1, 27.1, 2.3], [1.7, 26.4, 26.4])):
        rr, cc = fill_polygon(np.array(xs), np.array(ys), (30, 30))
        count[rr, cc] += 1
    whole = np.zeros((30, 30), int)
    rr, cc = fill_polygon(np.array([2.3, 27.1, 27.1, 2.3]), np.array([1.7, 1.7, 26.4, 26.4]), (30, 30))
    whole[rr, cc] = 1
    assert count.max() == 1 and np.array_equal(count, whole)


def test_degenerate_polygons_cover_nothing():
    for xs, ys in (
        ([1.0, 5.0], [1.0, 5.0]),
        ([1.0, np.nan, 4.0], [1.0, 2.0, 6.0]),
        ([-9.0, -5, -7], [1, 1, 9]),
    ):
        rr, cc = fill_polygon(np.array(xs), np.array(ys), (10, 10))
        assert rr.size == cc.size == 0


def test_canvas_paints_in_order_and_gives_class_labels():
    c = Canvas(20, 30)
    floor, box, spot = c.material(_material(0)), c.material(_material(3)), c.material(_material(7))
    assert (floor, box, spot) == (0, 1, 2)
    xs, ys = rect(15, 10, 10, 6)
    c.polygon(xs, ys, box)
    c.disk(5, 5, 3, spot, on=(box,))  # outside the box: nothing
    assert not (c.mat == spot).any()
    c.disk(12, 10, 3, spot, on=(box,))  # only on the box
    painted = c.mat == spot
    assert painted.any() and painted[:, :10].sum() == 0
    assert c.labels().dtype == np.uint8 and set(np.unique(c.labels()).tolist()) == {0, 3, 7}
    assert c.first_material(3) == box and c.first_material(9) == -1


def test_restore_disk_punches_back_to_the_saved_map():
    c = Canvas(20, 20)
    under = c.material(_material(0))
    c.ellipse(10, 10, 6, 4, c.material(_material(1)), angle=0.3)
    before = c.mat.copy()
    c.disk(10, 10, 8, c.material(_material(2)))
    c.restore_disk(10, 10, 3, before)
    assert c.mat[10, 10] == before[10, 10] == 1 and c.mat[10, 17] == 2 and c.mat[0, 0] == under


def test_a_full_material_table_reuses_a_material_of_the_class():
    c = Canvas(4, 4)
    for i in range(255):
        c.material(_material(i % 5))
    assert c.material(_material(3)) == 3 and c.material(_material(11)) == 0
    assert len(c.materials) == 255


def test_band_draws_a_thick_polyline():
    c = Canvas(40, 40)
    c.material(_material(0))
    c.band(np.array([[5.0, 20.0], [35.0, 20.0]]), 6.0, c.material(_material(1)))
    rows = np.nonzero((c.mat == 1).any(axis=1))[0]
    assert rows.min() >= 16 and rows.max() <= 23 and (c.mat[20, 6:34] == 1).all()


def test_shapes():
    xs, ys = rect(10, 20, 4, 2, math.pi / 2)
    assert np.allclose(sorted(xs), [9, 9, 11, 11]) and np.allclose(sorted(ys), [18, 18, 22, 22])
    xs, ys = gear(0, 0, 10, 9, 0.3)
    radius = np.hypot(xs, ys)
    assert len(xs) == 36 and np.allclose(sorted(set(np.round(radius, 6))), [8, 10])
    xs, ys = rounded_rect(0, 0, 10, 6, 2, 0.0)
    assert len(xs) == 20 and np.abs(xs).max() <= 5 + 1e-9 and np.abs(ys).max() <= 3 + 1e-9
    xs, ys = blob(np.random.default_rng(1), 0, 0, 10, 5, 24)
    r = np.hypot(xs / 10, ys / 5)
    assert len(xs) == 24 and 0.5 < r.min() <= r.max() < 1.5
    curve = bezier(np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 2.0], [4.0, 0.0]]), 11)
    assert curve.shape == (11, 2) and np.allclose(curve[[0, -1]], [[0, 0], [4, 0]])
    assert np.allclose(curve[5], [2.0, 1.5])
