"""Tests of one benchmark scene: its seeded random streams, class presence and painter helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from laecips_core.benchmark.scene import SALT_FRAME, SALT_LAYOUT, SALT_PRESENCE, SALT_SLOT, Scene
from laecips_core.benchmark.shading import NOISE_PAD
from laecips_core.benchmark.tasks import CLASS_ID, TASK_STYLES, BenchmarkConfig

from laecips_core import classes

CFG = BenchmarkConfig(seed=3, width=320, height=240)


def test_salts_are_distinct():
    assert len({SALT_FRAME, SALT_LAYOUT, SALT_PRESENCE, SALT_SLOT}) == 4


@pytest.mark.parametrize("task", [0, 3])
def test_presence_follows_the_task_probabilities_closely(task):
    style = TASK_STYLES[task]
    shares = np.mean([Scene(CFG, style, task, segment, 0.0).present for segment in range(200)], axis=0)
    assert shares.shape == (classes.NUM_CLASSES,)
    assert np.abs(shares - np.array(style.presence)).max() <= 0.02  # low-discrepancy, not i.i.d.
    scene = Scene(CFG, style, task, 7, 0.0)
    assert [scene.has(name) for name in classes.CLASSES] == scene.present.tolist()


def test_equal_keys_give_equal_streams():
    a, b = (Scene(CFG, TASK_STYLES[1], 1, 4, 0.3) for _ in range(2))
    assert a.rng.random() == b.rng.random()
    other = Scene(CFG, TASK_STYLES[1], 1, 5, 0.3)
    assert other.rng.random() != Scene(CFG, TASK_STYLES[1], 1, 4, 0.3).rng.random()
    assert a.slot_key != other.slot_key
    assert (a.W, a.H, a.unit) == (320, 240, 0.5)


def test_materials_get_the_class_id_and_noise_offsets():
    scene = Scene(CFG, TASK_STYLES[0], 0, 0, 0.0)
    c1 = np.array([100, 150, 200], np.float32)
    ids = [scene.mat("crate", c1, wave=scene.stripes(20.0, 0.0)) for _ in range(20)]
    assert ids == list(range(20))
    mats = scene.canvas.materials
    assert {m.cls for m in mats} == {CLASS_ID["crate"]}
    assert all(0 <= m.ox < NOISE_PAD and 0 <= m.oy < NOISE_PAD for m in mats)
    assert len({(m.ox, m.oy) for m in mats}) > 15
    assert mats[0].c2 is not None and np.allclose(mats[0].c2, c1 * 0.7)  # a pattern's default second colour


def test_colours_and_stripes():
    scene = Scene(CFG, TASK_STYLES[0], 0, 0, 0.0)
    colours = np.array([scene.colour((2, 128, 254), 20.0) for _ in range(200)])
    assert colours.dtype == np.float32 and colours.min() >= 4 and colours.max() <= 250
    picks = np.array([scene.pick(((10, 10, 10), (200, 200, 200)), 0.0) for _ in range(50)])
    assert set(picks[:, 0].tolist()) == {10.0, 200.0}
    fx, fy, phase, sharp, bias = scene.stripes(40.0, math.pi / 2, 3.0, 0.5, phase=1.0)
    period = 40.0 / TASK_STYLES[0].texture_scale
    assert math.isclose(math.hypot(fx, fy), 2 * math.pi / period) and abs(fx) < 1e-12
    assert (phase, sharp, bias) == (1.0, 3.0, 0.5)


def test_perspective_grows_towards_the_camera():
    scene = Scene(CFG, TASK_STYLES[0], 0, 0, 0.0)
    scene.horizon = 60.0
    sizes = [scene.persp(y) for y in (0.0, 60.0, 150.0, 240.0, 300.0, 400.0)]
    assert sizes[0] == sizes[1] == pytest.approx(0.4) and sizes[3] == pytest.approx(1.0)
    assert sizes == sorted(sizes) and sizes[-1] == pytest.approx(0.4 + 0.6 * 1.2)
