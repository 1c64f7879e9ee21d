"""Painter of the conveyor belt and the parts riding on it (metal, plastic, crates), with their defects."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from laecips_core.benchmark.raster import Material, blob, gear, rect, rounded_rect
from laecips_core.benchmark.scene import Scene
from laecips_core.benchmark.shading import NOISE_PAD
from laecips_core.benchmark.tasks import CLASS_ID

_PLASTIC_COLOURS = (
    (200, 50, 40),
    (40, 90, 190),
    (50, 150, 70),
    (225, 225, 220),
    (230, 200, 40),
    (30, 30, 34),
)


def paint_conveyor(scene: Scene, belt_y: float) -> None:
    """The conveyor across the frame at row belt_y, with the parts in its moving slots."""
    rng, u, W, c, style = scene.rng, scene.unit, scene.W, scene.canvas, scene.style
    theta = float(rng.uniform(-0.33, 0.33))
    bw = float(rng.uniform(105, 150)) * u * scene.persp(belt_y) * style.object_scale
    cx = W / 2 + scene.pan
    d = np.array([math.cos(theta), math.sin(theta)])
    n = np.array([-math.sin(theta), math.cos(theta)])
    length = 2.0 * (W + scene.H)
    centre = np.array([cx, belt_y])

    def quad(v0: float, v1: float) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array(
            [centre + s_u * length * d + v * n for s_u, v in ((-1, v0), (1, v0), (1, v1), (-1, v1))]
        )
        return pts[:, 0], pts[:, 1]

    speed = float(rng.uniform(0.05, 0.14)) * W * (1 if rng.random() < 0.5 else -1)  # px/s along d
    pitch = float(rng.uniform(14, 28)) * u
    rubber = scene.colour((52, 54, 56) if rng.random() < 0.7 else (70, 104, 78), 8)
    k = 2 * math.pi / max(pitch / scene.tex, 1.5)
    belt = scene.mat(
        "conveyor_belt",
        rubber,
        c2=np.clip(rubber * 1.45, 0, 255).astype(np.float32),
        wave=(k * d[0], k * d[1], -k * (speed * scene.t + float(centre @ d)), 6.0, 0.3),
        fine=4.0,
        coarse=3.0,
    )
    frame_c = scene.colour((150, 154, 160), 10)
    rail = scene.mat("conveyor_belt", frame_c, grad=(0.0, 0.0, 0.0, 0.0), fine=3.0, coarse=3.0)
    side = scene.mat(
        "conveyor_belt",
        np.clip(frame_c * 0.75, 0, 255).astype(np.float32),
        c2=np.clip(frame_c * 0.45, 0, 255).astype(np.float32),
        wave=scene.stripes(float(rng.uniform(60, 120)) * u, theta, 20.0, 0.9),
        fine=3.0,
        coarse=3.0,
    )
    legs = scene.mat("conveyor_belt", scene.colour((70, 72, 76), 8), fine=2.0, coarse=2.0)
    rail_w = max(1.5, 0.08 * bw)
    side_h = 0.3 * bw
    leg_h = 0.7 * bw
    c.polygon(*quad(bw / 2, bw / 2 + side_h + leg_h), scene.shadow, on=scene.floor_ids)
    # legs every ~130 px under the near side
    leg_pitch = 130 * u
    for i in range(-12, 13):
        p = centre + (i * leg_pitch + scene.pan % leg_pitch) * d + (bw / 2 + side_h) * n
        if -0.2 * W < p[0] < 1.2 * W:
            lw = max(1.5, 0.08 * bw)
            c.polygon(
                np.array([p[0] - lw, p[0] + lw, p[0] + lw, p[0] - lw]),
                np.array([p[1] - 2, p[1] - 2, p[1] + leg_h, p[1] + leg_h]),
                legs,
            )
    c.polygon(*quad(bw / 2, bw / 2 + side_h), side)
    c.polygon(*quad(-bw / 2 - rail_w, bw / 2 + rail_w), rail)
    c.polygon(*quad(-bw / 2, bw / 2), belt)
    # parts ride in slots that move with the belt: slot j is at u_j = j * spacing + speed * t
    spacing = float(rng.uniform(0.95, 1.4)) * bw
    half = 0.5 * W / max(abs(math.cos(theta)), 0.5) + bw
    shift = speed * scene.t
    j0 = math.floor((-half - shift) / spacing)
    j1 = math.ceil((half - shift) / spacing)
    for j in range(j0, j1 + 1):
        slot_rng = np.random.default_rng([*scene.slot_key, j + 1_000_000])
        pos = centre + (j * spacing + shift) * d
        paint_part(scene, slot_rng, pos, d, n, bw, belt)


def paint_part(
    scene: Scene,
    rng: np.random.Generator,
    pos: np.ndarray,
    d: np.ndarray,
    n: np.ndarray,
    bw: float,
    belt: int,
) -> None:
    """One belt slot: maybe a part (metal, plastic or crate), maybe with a defect."""
    style, c, u = scene.style, scene.canvas, scene.unit
    draws = rng.random(8)
    kinds = [k for k, name in enumerate(("metal_part", "plastic_part", "crate")) if scene.has(name)]
    if draws[0] >= style.belt_load or not kinds:
        return
    weights = np.array([style.part_mix[k] for k in kinds])
    kind = kinds[int(np.searchsorted(np.cumsum(weights) / weights.sum(), draws[1]))]
    r = bw * (0.26 + 0.14 * draws[2])
    lateral = (draws[3] - 0.5) * max(bw - 2 * r, 0.0)
    x, y = (pos + lateral * n).tolist()
    angle = float(draws[4] * 2 * math.pi)
    shape = int(draws[5] * 4)
    before = c.mat.copy()
    own: list[int] = []

    def m(cls: str, col: np.ndarray, **kw: Any) -> int:
        mid = Material(
            CLASS_ID[cls], col, ox=int(rng.integers(NOISE_PAD)), oy=int(rng.integers(NOISE_PAD)), **kw
        )
        own.append(c.material(mid))
        return own[-1]

    def jit(base: tuple[int, int, int], s: float) -> np.ndarray:
        return np.clip(np.asarray(base, np.float32) + rng.normal(0, s, 3).astype(np.float32), 4, 250).astype(
            np.float32
        )

    k_tex = scene.tex
    if kind == 0:  # metal
        steel = jit((172, 174, 180) if rng.random() < 0.7 else (104, 108, 116), 10)
        body = m(
            "metal_part",
            steel,
            rings=(x, y, 2 * math.pi * k_tex / (4 * u + 1), 0.12),
            grad=(0.5 * math.cos(angle) / r, 0.5 * math.sin(angle) / r, x, y),
            fine=3.0,
            coarse=2.0,
        )
        if shape <= 1:  # gear or washer with a bore
            if shape == 0:
                xs, ys = gear(x, y, r, int(rng.integers(8, 15)), angle)
                c.polygon(xs, ys, body)
            else:
                c.disk(x, y, r * 0.9, body)
            hub = m("metal_part", np.clip(steel * 0.8, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
            c.disk(x, y, r * 0.45, hub)
            c.restore_disk(x, y, r * 0.25, before)
        elif shape == 2:  # bracket: L profile with two holes
            lw = 0.45 * r
            for a in (angle, angle + math.pi / 2):
                c.band(np.array([[x, y], [x + 1.6 * r * math.cos(a), y + 1.6 * r * math.sin(a)]]), lw, body)
            for a in (angle, angle + math.pi / 2):
                c.restore_disk(x + 1.1 * r * math.cos(a), y + 1.1 * r * math.sin(a), 0.14 * r, before)
        else:  # shaft: cylinder shading across its axis
            sm = m(
                "metal_part",
                steel,
                c2=np.clip(steel * 0.45, 0, 255).astype(np.float32),
                wave=(
                    math.cos(angle + math.pi / 2) * math.pi / (0.5 * r),
                    math.sin(angle + math.pi / 2) * math.pi / (0.5 * r),
                    -(math.cos(angle + math.pi / 2) * x + math.sin(angle + math.pi / 2) * y)
                    * math.pi
                    / (0.5 * r),
                    1.0,
                    0.0,
                ),
                fine=3.0,
                coarse=2.0,
            )
            xs, ys = rect(x, y, 2.4 * r, 0.5 * r, angle)
            c.polygon(xs, ys, sm)
    elif kind == 1:  # plastic
        col = jit(_PLASTIC_COLOURS[int(rng.integers(len(_PLASTIC_COLOURS)))], 12)
        body = m(
            "plastic_part",
            col,
            grad=(0.3 * math.cos(angle) / r, 0.3 * math.sin(angle) / r, x, y),
            fine=2.0,
            coarse=2.0,
        )
        if shape <= 1:  # housing with a lighter lid
            xs, ys = rounded_rect(x, y, 1.9 * r, 1.3 * r, 0.3 * r, angle)
            c.polygon(xs, ys, body)
            lid = m("plastic_part", np.clip(col * 1.15 + 10, 0, 255).astype(np.float32), fine=2.0, coarse=2.0)
            xs, ys = rounded_rect(x, y, 1.3 * r, 0.7 * r, 0.2 * r, angle)
            c.polygon(xs, ys, lid)
        elif shape == 2:  # cap
            c.disk(x, y, r * 0.85, body)
            rim = m("plastic_part", np.clip(col * 0.75, 0, 255).astype(np.float32), fine=2.0, coarse=2.0)
            c.disk(x, y, r * 0.6, rim)
        else:  # clip: rounded L
            lw = 0.55 * r
            for a in (angle, angle + 2.2):
                c.band(np.array([[x, y], [x + 1.4 * r * math.cos(a), y + 1.4 * r * math.sin(a)]]), lw, body)
            c.disk(x, y, lw / 2, body)
    else:  # crate on the belt, top view
        base = jit((182, 142, 92), 12) if rng.random() < 0.6 else jit((48, 84, 160), 10)
        box = m("crate", base, fine=4.0, coarse=3.0)
        xs, ys = rect(x, y, 2.0 * r, 1.5 * r, angle)
        c.polygon(xs, ys, box)
        flap = m("crate", np.clip(base * 0.75, 0, 255).astype(np.float32), fine=3.0, coarse=2.0)
        xs, ys = rect(x, y, 2.0 * r, 0.12 * r + 1, angle)
        c.polygon(xs, ys, flap)
        return  # defects are drawn on parts only
    if scene.has("defect") and draws[6] < style.defect_rate:
        paint_defect(scene, rng, x, y, r, kind, tuple(own))


def paint_defect(
    scene: Scene, rng: np.random.Generator, x: float, y: float, r: float, kind: int, on: tuple[int, ...]
) -> None:
    """Scratch, crack or corrosion spot painted on the part's own pixels (label defect)."""
    c, u = scene.canvas, scene.unit
    style = int(rng.integers(3))
    width = max(1.5, float(rng.uniform(3.0, 5.0)) * u)
    if style == 2 and kind == 0:  # rust / dent
        mat = Material(
            CLASS_ID["defect"],
            np.array([150, 78, 38], np.float32) + rng.normal(0, 10, 3).astype(np.float32),
            fine=8.0,
            coarse=4.0,
        )
        xs, ys = blob(
            rng,
            x + 0.35 * r * float(rng.uniform(-1, 1)),
            y + 0.35 * r * float(rng.uniform(-1, 1)),
            0.4 * r,
            0.3 * r,
            14,
        )
        c.polygon(xs, ys, c.material(mat), on=on)
        return
    bright = style == 0
    col = np.array([235, 235, 238] if bright else [22, 20, 20], np.float32)
    mat = Material(CLASS_ID["defect"], col, fine=5.0, coarse=2.0)
    a = float(rng.uniform(0, math.pi))
    n_pts = 2 if bright else 5
    t = np.linspace(-0.85, 0.85, n_pts)[:, None] * r
    pts = np.array([x, y]) + t * np.array([math.cos(a), math.sin(a)])
    if not bright:  # jagged crack
        pts += rng.normal(0, 0.12 * r, pts.shape)
    c.band(pts, width, c.material(mat), on=on)
