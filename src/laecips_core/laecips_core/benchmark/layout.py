"""The layout of a scene: the background (floor, wall, markings, spills, cables) and the objects standing
on the floor, painted far to near."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from laecips_core.benchmark.actors import paint_agv, paint_person
from laecips_core.benchmark.conveyor import paint_conveyor
from laecips_core.benchmark.props import (
    paint_crate_stack,
    paint_machine,
    paint_pallet,
    paint_rack,
    paint_tool,
)
from laecips_core.benchmark.raster import bezier, blob
from laecips_core.benchmark.scene import Scene
from laecips_core.benchmark.tasks import CLASS_ID

_FLOOR_COLOURS = ((128, 128, 124), (84, 112, 90), (96, 104, 118), (140, 126, 104))
_WALL_COLOURS = ((188, 188, 182), (196, 184, 152), (152, 176, 152), (160, 176, 196), (150, 150, 150))
_CABLE_COLOURS = ((24, 24, 26), (220, 110, 30), (40, 80, 170), (120, 120, 120), (200, 40, 30))


def paint_scene(scene: Scene) -> None:
    """Paint the whole frame: floor, wall, flat floor things, then standing objects far to near."""
    W, H, rng = scene.W, scene.H, scene.rng
    scene.horizon = H * float(rng.uniform(0.15, 0.3))
    tilt = H * float(rng.uniform(-0.04, 0.04))
    scene.pan = W * float(rng.uniform(-0.03, 0.03)) * scene.t
    paint_floor(scene)
    paint_wall(scene, tilt)
    drawables: list[tuple[float, int, Callable[[], None]]] = []
    if scene.has("floor_marking"):
        paint_markings(scene)
    if scene.has("spill"):
        for _ in range(1 + int(rng.integers(0, 2))):
            paint_spill(scene)
    if scene.has("cable"):
        for _ in range(1 + int(rng.integers(0, round(1 + 2 * scene.style.clutter)))):
            paint_cable(scene)
    # objects standing on the floor, painted far to near
    for _ in range(int(rng.integers(1, 3)) if scene.has("machine") else 0):
        x = float(rng.uniform(-0.1, 0.9)) * W
        yb = scene.horizon + float(rng.uniform(0.02, 0.2)) * (H - scene.horizon)
        drawables.append((yb, len(drawables), functools.partial(paint_machine, scene, x, yb)))
    for _ in range(int(rng.integers(1, 3)) if scene.has("rack") else 0):
        x = float(rng.uniform(-0.05, 0.85)) * W
        yb = scene.horizon + float(rng.uniform(0.03, 0.25)) * (H - scene.horizon)
        drawables.append((yb, len(drawables), functools.partial(paint_rack, scene, x, yb)))
    n_pallets = 1 + int(rng.integers(0, round(1 + 1.5 * scene.style.clutter))) if scene.has("pallet") else 0
    for _ in range(n_pallets):
        x = float(rng.uniform(0.0, 1.0)) * W
        yb = scene.horizon + float(rng.uniform(0.1, 1.0)) * (H - scene.horizon)
        drawables.append((yb, len(drawables), functools.partial(paint_pallet, scene, x, yb)))
    n_stacks = int(rng.integers(1, round(2 + scene.style.clutter))) if scene.has("crate") else 0
    for _ in range(n_stacks):
        x = float(rng.uniform(0.0, 1.0)) * W
        yb = scene.horizon + float(rng.uniform(0.08, 0.9)) * (H - scene.horizon)
        drawables.append((yb, len(drawables), functools.partial(paint_crate_stack, scene, x, yb, None)))
    n_tools = 1 + int(rng.integers(0, round(1 + 1.5 * scene.style.clutter))) if scene.has("tool") else 0
    for _ in range(n_tools):
        x = float(rng.uniform(0.05, 0.95)) * W
        yb = scene.horizon + float(rng.uniform(0.2, 1.0)) * (H - scene.horizon)
        drawables.append((yb - 1e-3, len(drawables), functools.partial(paint_tool, scene, x, yb)))
    belt_y = scene.horizon + float(rng.uniform(0.3, 0.7)) * (H - scene.horizon)
    drawables.append((belt_y, len(drawables), functools.partial(paint_conveyor, scene, belt_y)))
    for _ in range(int(rng.integers(1, scene.style.crowd + 1)) if scene.has("person") else 0):
        yb = scene.horizon + float(rng.uniform(0.15, 1.05)) * (H - scene.horizon)
        drawables.append((yb, len(drawables), functools.partial(paint_person, scene, yb)))
    for _ in range(int(rng.integers(1, scene.style.fleet + 1)) if scene.has("agv") else 0):
        yb = scene.horizon + float(rng.uniform(0.2, 1.0)) * (H - scene.horizon)
        drawables.append((yb, len(drawables), functools.partial(paint_agv, scene, yb)))
    for _, _, paint in sorted(drawables, key=lambda d: (d[0], d[1])):
        paint()


def paint_floor(scene: Scene) -> None:
    """The floor (material 0: tiles or epoxy) and its shadow material; sets scene.floor_ids."""
    rng, u = scene.rng, scene.unit
    c1 = scene.pick(_FLOOR_COLOURS, 10)
    if rng.random() < 0.5:  # tiles: checkerboard of two close tones
        tile = float(rng.uniform(50, 90)) * u
        a = float(rng.uniform(-0.2, 0.2))
        m = scene.mat(
            "floor",
            c1,
            c2=np.clip(c1 * float(rng.uniform(0.82, 0.92)), 0, 255).astype(np.float32),
            wave=scene.stripes(2 * tile, a, 30.0),
            wave2=scene.stripes(2 * tile, a + math.pi / 2, 30.0),
            fine=5.0,
            coarse=6.0,
        )
    else:  # epoxy / concrete with reflections
        m = scene.mat(
            "floor",
            c1,
            grad=(0.0, 0.35 / scene.H, 0.0, scene.H * 0.6),
            fine=4.0,
            coarse=11.0,
        )
    # shadows are floor too: dark, under objects
    scene.shadow = scene.mat("floor", np.clip(c1 * 0.45, 0, 255).astype(np.float32), fine=3.0, coarse=3.0)
    scene.floor_ids = (m, scene.shadow)
    assert m == 0


def paint_wall(scene: Scene, tilt: float) -> None:
    """The back wall above the horizon (tilted by tilt px) with its skirting."""
    rng, u, W = scene.rng, scene.unit, scene.W
    c1 = scene.pick(_WALL_COLOURS, 10)
    m = scene.mat(
        "wall",
        c1,
        c2=np.clip(c1 * 0.8, 0, 255).astype(np.float32),
        wave=scene.stripes(float(rng.uniform(60, 160)) * u, 0.0, 12.0, 0.85),
        grad=(0.0, -0.3 / scene.H, 0.0, scene.horizon),
        fine=3.0,
        coarse=7.0,
    )
    y0, y1 = scene.horizon - tilt / 2, scene.horizon + tilt / 2
    scene.canvas.polygon(np.array([-1, W + 1, W + 1, -1.0]), np.array([-1, -1, y1, y0]), m)
    skirt = scene.mat("wall", scene.colour((70, 70, 72), 10), fine=2.0, coarse=2.0)
    hs = max(1.5, 8 * u)
    scene.canvas.polygon(np.array([-1, W + 1, W + 1, -1.0]), np.array([y0 - hs, y1 - hs, y1, y0]), skirt)


def paint_markings(scene: Scene) -> None:
    """Floor markings on the floor only: lane and cross lines, maybe a hazard zone."""
    rng, u, W, H, c = scene.rng, scene.unit, scene.W, scene.H, scene.canvas
    yellow = scene.colour((226, 194, 42), 10)
    white = scene.colour((222, 222, 212), 6)
    paint = scene.mat("floor_marking", yellow if rng.random() < 0.7 else white, fine=4.0, coarse=6.0)
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:  # lane line receding towards the horizon
            xt = float(rng.uniform(0.1, 0.9)) * W + scene.pan
            xb = xt + float(rng.uniform(-0.8, 0.8)) * W
            wt, wb = 3 * u, 22 * u
            c.polygon(
                np.array([xt - wt, xt + wt, xb + wb, xb - wb]),
                np.array([scene.horizon, scene.horizon, H + 1, H + 1]),
                paint,
                on=scene.floor_ids,
            )
        else:  # cross line
            y = scene.horizon + float(rng.uniform(0.1, 0.95)) * (H - scene.horizon)
            hw = 14 * u * scene.persp(y)
            slope = float(rng.uniform(-0.08, 0.08)) * H
            c.polygon(
                np.array([-1, W + 1, W + 1, -1.0]),
                np.array([y - hw, y - hw + slope, y + hw + slope, y + hw]),
                paint,
                on=scene.floor_ids,
            )
    if rng.random() < 0.6:  # hazard zone: diagonal yellow / black stripes
        hz = scene.mat(
            "floor_marking",
            yellow,
            c2=scene.colour((28, 28, 30), 4),
            wave=scene.stripes(float(rng.uniform(30, 50)) * u, math.pi / 4 * float(rng.choice([1, 3])), 40.0),
            fine=4.0,
            coarse=5.0,
        )
        y = scene.horizon + float(rng.uniform(0.2, 0.9)) * (H - scene.horizon)
        x = float(rng.uniform(0, 1)) * W + scene.pan
        w, h = (
            float(rng.uniform(80, 200)) * u * scene.persp(y),
            float(rng.uniform(25, 60)) * u * scene.persp(y),
        )
        sk = w * 0.3
        c.polygon(
            np.array([x - w / 2 + sk, x + w / 2 + sk, x + w / 2, x - w / 2]),
            np.array([y - h, y - h, y, y]),
            hz,
            on=scene.floor_ids,
        )


def paint_spill(scene: Scene) -> None:
    """One oil or coolant spill on the floor (over markings, under everything standing)."""
    rng, u, W, H = scene.rng, scene.unit, scene.W, scene.H
    y = scene.horizon + float(rng.uniform(0.25, 0.95)) * (H - scene.horizon)
    x = float(rng.uniform(0.05, 0.95)) * W + scene.pan
    r = float(rng.uniform(30, 75)) * u * scene.persp(y) * scene.style.object_scale
    if rng.random() < 0.6:  # oil: dark with a sheen
        m = scene.mat(
            "spill",
            scene.colour((38, 36, 40), 6),
            c2=scene.colour((70, 58, 90), 8),
            wave=scene.stripes(float(rng.uniform(40, 90)) * u, float(rng.uniform(0, math.pi))),
            fine=2.0,
            coarse=4.0,
        )
    else:  # coolant: milky, close to the floor colour
        m = scene.mat(
            "spill",
            scene.colour((176, 186, 196), 10),
            rings=(x, y, 2 * math.pi / (12 * u + 1), 0.06),
            fine=2.0,
            coarse=5.0,
        )
    xs, ys = blob(rng, x, y, r * 1.4, r * 0.6, 24)
    scene.canvas.polygon(
        xs, ys, m, on=scene.floor_ids + (scene.canvas.first_material(CLASS_ID["floor_marking"]),)
    )


def paint_cable(scene: Scene) -> None:
    """One cable lying on the floor, a thick Bezier curve."""
    rng, u, W, H = scene.rng, scene.unit, scene.W, scene.H
    y0 = scene.horizon + float(rng.uniform(0.05, 0.4)) * (H - scene.horizon)
    p = np.array(
        [
            [float(rng.uniform(-0.1, 1.1)) * W, y0],
            [
                float(rng.uniform(0, 1)) * W,
                scene.horizon + float(rng.uniform(0.2, 1)) * (H - scene.horizon),
            ],
            [
                float(rng.uniform(0, 1)) * W,
                scene.horizon + float(rng.uniform(0.2, 1)) * (H - scene.horizon),
            ],
            [float(rng.uniform(-0.1, 1.1)) * W, H * float(rng.uniform(0.8, 1.1))],
        ]
    )
    p[:, 0] += scene.pan
    width = max(1.5, float(rng.uniform(4, 9)) * u * scene.persp(float(p[:, 1].mean())))
    m = scene.mat("cable", scene.pick(_CABLE_COLOURS, 8), grad=(0.0, 0.0, 0.0, 0.0), fine=2.0, coarse=2.0)
    scene.canvas.band(bezier(p, 40), width, m)
