"""Painters of what moves across the scene: people walking and AGVs / forklifts driving."""

from __future__ import annotations

import math

import numpy as np

from laecips_core.benchmark.props import paint_pallet
from laecips_core.benchmark.scene import Scene

_HIVIS = ((230, 206, 40), (240, 120, 30), (120, 200, 60))
_SKIN = ((224, 180, 150), (190, 140, 100), (140, 96, 66), (96, 66, 46))


def paint_person(scene: Scene, yb: float) -> None:
    """A walking worker standing on row yb, moving across the frame with t."""
    rng, u, W, c = scene.rng, scene.unit, scene.W, scene.canvas
    s = scene.persp(yb) * scene.style.object_scale
    h = float(rng.uniform(230, 290)) * u * s
    vx = float(rng.uniform(0.04, 0.12)) * W * (1 if rng.random() < 0.5 else -1)
    x = float(rng.uniform(0.05, 0.95)) * W + vx * (scene.t - 0.5) + scene.pan
    phase = float(rng.uniform(0, 2 * math.pi)) + 2 * math.pi * 1.8 * scene.t
    trousers = scene.pick(((40, 50, 80), (50, 50, 54), (70, 80, 96)), 8)
    dark = scene.mat("person", np.clip(trousers * 0.75, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
    legs = scene.mat("person", trousers, grad=(0.0, 0.0, 0.0, 0.0), fine=3.0, coarse=3.0)
    hivis = rng.random() < 0.6
    jacket_c = (
        scene.pick(_HIVIS, 10) if hivis else scene.pick(((60, 80, 130), (110, 110, 114), (150, 60, 40)), 10)
    )
    jacket = scene.mat(
        "person",
        jacket_c,
        c2=scene.colour((210, 214, 220), 6),
        wave=(0.0, 2 * math.pi / (0.12 * h), -2 * math.pi * yb / (0.12 * h), 30.0, 0.85) if hivis else None,
        fine=4.0,
        coarse=3.0,
    )
    skin = scene.mat("person", scene.pick(_SKIN, 8), fine=2.0, coarse=2.0)
    helmet = scene.mat(
        "person",
        scene.pick(((235, 235, 230), (230, 200, 40), (200, 50, 40), (40, 80, 170)), 6),
        fine=2.0,
        coarse=1.0,
    )
    shoes = scene.mat("person", scene.colour((30, 28, 28), 4), fine=2.0, coarse=1.0)
    hip = np.array([x, yb - 0.48 * h])
    shoulder = np.array([x, yb - 0.80 * h])
    swing = 0.38 * math.sin(phase)
    c.ellipse(x, yb, 0.16 * h, 0.025 * h + 1, scene.shadow, on=scene.floor_ids)

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


def paint_agv(scene: Scene, yb: float) -> None:
    """A forklift (maybe carrying a pallet) or a flat AGV standing on row yb, moving with t."""
    rng, u, W, c = scene.rng, scene.unit, scene.W, scene.canvas
    s = scene.persp(yb) * scene.style.object_scale
    w = float(rng.uniform(150, 230)) * u * s
    vx = float(rng.uniform(0.05, 0.15)) * W * (1 if rng.random() < 0.5 else -1)
    x = float(rng.uniform(0.05, 0.95)) * W + vx * (scene.t - 0.5) + scene.pan
    body_c = scene.pick(((230, 180, 30), (235, 120, 30), (150, 152, 156), (200, 50, 40)), 10)
    body = scene.mat("agv", body_c, grad=(0.0, -0.5 / w, 0.0, yb), fine=3.0, coarse=3.0)
    top = scene.mat("agv", np.clip(body_c * 1.15, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
    black = scene.mat("agv", scene.colour((26, 26, 28), 4), fine=2.0, coarse=1.0)
    hazard = scene.mat(
        "agv",
        scene.colour((226, 194, 42), 8),
        c2=scene.colour((28, 28, 30), 4),
        wave=scene.stripes(18 * u * s, math.pi / 4, 40.0),
        fine=3.0,
        coarse=2.0,
    )
    c.ellipse(x, yb, 0.6 * w, 0.05 * w, scene.shadow, on=scene.floor_ids)
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
        if scene.has("pallet") and rng.random() < 0.6:
            paint_pallet(scene, mast_x + facing * 0.25 * w - scene.pan, fy - lw)
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
