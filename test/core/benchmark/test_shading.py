"""Tests of the benchmark's shading: noise banks, material textures and the task's camera."""

from __future__ import annotations

import dataclasses

import numpy as np
from laecips_core.benchmark.raster import Canvas, Material
from laecips_core.benchmark.shading import NOISE_PAD, noise_bank, render
from laecips_core.benchmark.tasks import TASK_STYLES

CLEAN = dataclasses.replace(
    TASK_STYLES[0], gain=1.0, colour_temperature=(1.0, 1.0, 1.0), motion_blur_px=0.0, noise_std=0.0
)
"""A camera that changes nothing but the vignette."""


def test_noise_banks_are_cached_read_only_unit_variance():
    white = noise_bank(30, 40, 0.0, 3)
    assert white.shape == (3, 30 + NOISE_PAD, 40 + NOISE_PAD) and white.dtype == np.float32
    assert not white.flags.writeable and noise_bank(30, 40, 0.0, 3) is white
    smooth = noise_bank(30, 40, 4.0, 1)[0]
    for bank in (white[0], smooth):
        assert abs(float(bank.std()) - 1.0) < 0.05 and abs(float(bank.mean())) < 0.1

    def neighbour_corr(b: np.ndarray) -> float:
        return float(np.corrcoef(b[:, :-1].ravel(), b[:, 1:].ravel())[0, 1])

    assert neighbour_corr(white[0]) < 0.1 < 0.8 < neighbour_corr(smooth)


def _two_materials(top: Material, bottom: Material) -> Canvas:
    c = Canvas(40, 60)
    c.material(top)
    c.polygon(np.array([-1.0, 61, 61, -1]), np.array([20.0, 20, 41, 41]), c.material(bottom))
    return c


def test_flat_materials_render_their_colour_under_the_vignette():
    red = Material(0, np.array([200, 40, 20], np.float32), fine=0.0, coarse=0.0)
    grey = Material(5, np.array([100, 100, 100], np.float32), fine=0.0, coarse=0.0)
    image, labels = render(_two_materials(red, grey), CLEAN, np.random.default_rng(0), 1.0)
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8 and labels.dtype == np.uint8
    assert (labels[:20] == 0).all() and (labels[20:] == 5).all()
    assert image[19, 30].tolist() == [199, 39, 19]  # vignette 1 - 0.1 * 0.05**2 at the centre row above
    assert image[20, 30].tolist() == [100, 100, 100]  # exactly the centre
    corner = image[0, 0].astype(float) / np.array([200, 40, 20])
    assert np.allclose(corner, 0.8, atol=0.02)  # lens fall-off


def test_textures_and_camera_noise():
    striped = Material(
        0,
        np.array([200, 200, 200], np.float32),
        c2=np.array([20, 20, 20], np.float32),
        wave=(0.5, 0.0, 0.0, 30.0, 0.0),
    )
    noisy = Material(1, np.array([120, 120, 120], np.float32), fine=6.0, coarse=6.0)
    canvas = _two_materials(striped, noisy)
    image, _ = render(canvas, CLEAN, np.random.default_rng(0), 1.0)
    row = image[10, 20:40, 0].astype(int)
    assert row.max() > 180 and row.min() < 40  # the wave alternates the two colours
    assert 2.0 < image[25:35, 20:40].astype(float).std() < 20.0  # noise around a flat colour
    noisy_cam = dataclasses.replace(CLEAN, noise_std=10.0)
    a, _ = render(canvas, noisy_cam, np.random.default_rng(1), 1.0)
    b, _ = render(canvas, noisy_cam, np.random.default_rng(1), 1.0)
    c, _ = render(canvas, noisy_cam, np.random.default_rng(2), 1.0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_the_task_light_scales_the_channels():
    grey = Material(0, np.array([100, 100, 100], np.float32), fine=0.0, coarse=0.0)
    canvas = Canvas(16, 16)
    canvas.material(grey)
    warm = dataclasses.replace(CLEAN, gain=0.5, colour_temperature=(1.2, 1.0, 0.8))
    image, _ = render(canvas, warm, np.random.default_rng(0), 1.0)
    assert image[8, 8].tolist() == [60, 50, 40]
