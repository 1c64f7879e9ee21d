"""Painters of what stands still on the shop floor: machines, racks, pallets, crate stacks, tools."""

from __future__ import annotations

import math

import numpy as np

from laecips_core.benchmark.scene import Scene

_MACHINE_COLOURS = ((150, 156, 160), (86, 128, 100), (62, 92, 140), (200, 200, 196), (210, 120, 40))


def paint_machine(scene: Scene, x: float, yb: float) -> None:
    """A machine box whose left foot is at (x, yb): front, top, screen, maybe a hazard band."""
    rng, u, c = scene.rng, scene.unit, scene.canvas
    s = scene.persp(yb) * scene.style.object_scale
    w = float(rng.uniform(140, 260)) * u * s
    h = float(rng.uniform(150, 300)) * u * s
    depth = float(rng.uniform(0.1, 0.25)) * w
    x += scene.pan
    body = scene.pick(_MACHINE_COLOURS, 10)
    front = scene.mat(
        "machine",
        body,
        c2=np.clip(body * 0.6, 0, 255).astype(np.float32),
        wave=scene.stripes(w / float(rng.integers(2, 5)), 0.0, 20.0, 0.93),
        grad=(0.25 / w, 0.0, x, 0.0),
        fine=3.0,
        coarse=4.0,
    )
    top = scene.mat("machine", np.clip(body * 1.2, 0, 255).astype(np.float32), fine=3.0, coarse=3.0)
    c.ellipse(x + w / 2, yb, w * 0.6, 8 * u * s, scene.shadow, on=scene.floor_ids)
    c.polygon(np.array([x, x + w, x + w, x]), np.array([yb - h, yb - h, yb, yb]), front)
    c.polygon(
        np.array([x, x + w, x + w + depth, x + depth]),
        np.array([yb - h, yb - h, yb - h - depth * 0.5, yb - h - depth * 0.5]),
        top,
    )
    screen = scene.mat(
        "machine",
        scene.colour((30, 50, 70), 10),
        grad=(0.0, 1.5 / h, 0.0, yb - h),
        fine=5.0,
        coarse=2.0,
    )
    sw, sh = w * float(rng.uniform(0.2, 0.35)), h * float(rng.uniform(0.12, 0.22))
    sx, sy = x + w * float(rng.uniform(0.1, 0.6)), yb - h * float(rng.uniform(0.55, 0.8))
    c.polygon(np.array([sx, sx + sw, sx + sw, sx]), np.array([sy, sy, sy + sh, sy + sh]), screen)
    if rng.random() < 0.6:
        band = scene.mat(
            "machine",
            scene.colour((226, 194, 42), 10),
            c2=scene.colour((28, 28, 30), 4),
            wave=scene.stripes(30 * u * s, math.pi / 4, 40.0),
            fine=3.0,
            coarse=3.0,
        )
        by = yb - h * float(rng.uniform(0.05, 0.25))
        c.polygon(np.array([x, x + w, x + w, x]), np.array([by - 10 * u * s, by - 10 * u * s, by, by]), band)


def paint_rack(scene: Scene, x: float, yb: float) -> None:
    """A shelf rack whose left foot is at (x, yb), with crates on its shelves when crates are present."""
    rng, u, c = scene.rng, scene.unit, scene.canvas
    s = scene.persp(yb) * scene.style.object_scale
    w = float(rng.uniform(150, 280)) * u * s
    h = float(rng.uniform(180, 340)) * u * s
    x += scene.pan
    up_c = scene.colour((40, 70, 150) if rng.random() < 0.7 else (120, 120, 124), 12)
    beam_c = scene.colour((222, 112, 32) if rng.random() < 0.7 else (200, 180, 40), 12)
    upright = scene.mat(
        "rack",
        up_c,
        c2=np.clip(up_c * 0.5, 0, 255).astype(np.float32),
        wave=scene.stripes(14 * u * s, math.pi / 2, 8.0, 0.7),
        fine=3.0,
        coarse=3.0,
    )
    beam = scene.mat("rack", beam_c, grad=(0.0, 0.0, 0.0, 0.0), fine=3.0, coarse=3.0)
    bw = max(2.0, 9 * u * s)
    n_up = int(rng.integers(2, 4))
    levels = int(rng.integers(2, 5))
    c.ellipse(x + w / 2, yb, w * 0.55, 6 * u * s, scene.shadow, on=scene.floor_ids)
    shelf_ys = [yb - (i + 1) * h / levels for i in range(levels)]
    # goods on shelves first (behind the beams)
    for sy in [yb] + shelf_ys[:-1]:
        if scene.has("crate") and rng.random() < 0.8:
            paint_crate_stack(
                scene, x + w * float(rng.uniform(0.25, 0.75)), sy - bw, min(h / levels * 0.8, w)
            )
    for i in range(n_up):
        ux = x + i * (w - bw) / (n_up - 1)
        c.polygon(np.array([ux, ux + bw, ux + bw, ux]), np.array([yb - h - bw, yb - h - bw, yb, yb]), upright)
    for sy in shelf_ys + [yb - 0.05 * h]:
        c.polygon(np.array([x, x + w, x + w, x]), np.array([sy - bw, sy - bw, sy, sy]), beam)


def paint_pallet(scene: Scene, x: float, yb: float) -> None:
    """A pallet centred at (x, yb), maybe loaded with a crate."""
    rng, u, c = scene.rng, scene.unit, scene.canvas
    s = scene.persp(yb) * scene.style.object_scale
    w = float(rng.uniform(100, 160)) * u * s
    hf = 0.13 * w
    d = 0.3 * w
    x += scene.pan
    wood = scene.colour((176, 136, 86) if rng.random() < 0.75 else (52, 92, 160), 14)
    front = scene.mat("pallet", wood, grad=(0.0, 0.0, 0.0, 0.0), fine=5.0, coarse=5.0)
    top = scene.mat(
        "pallet",
        np.clip(wood * 1.1, 0, 255).astype(np.float32),
        c2=np.clip(wood * 0.55, 0, 255).astype(np.float32),
        wave=scene.stripes(w / 6, 0.0, 10.0, -0.5, phase=0.0),
        fine=5.0,
        coarse=4.0,
    )
    c.ellipse(x, yb, w * 0.6, 5 * u * s, scene.shadow, on=scene.floor_ids)
    c.polygon(
        np.array([x - w / 2, x + w / 2, x + w / 2 + d * 0.5, x - w / 2 + d * 0.5]),
        np.array([yb - hf, yb - hf, yb - hf - d * 0.4, yb - hf - d * 0.4]),
        top,
    )
    c.polygon(
        np.array([x - w / 2, x + w / 2, x + w / 2, x - w / 2]),
        np.array([yb - hf, yb - hf, yb, yb]),
        front,
    )
    # openings between the three blocks show the shadowed floor underneath
    gap_w, gap_h = 0.3 * w, 0.55 * hf
    for gx in (x - w / 2 + 0.12 * w, x + 0.08 * w):
        c.polygon(
            np.array([gx, gx + gap_w, gx + gap_w, gx]),
            np.array([yb - gap_h - 0.15 * hf, yb - gap_h - 0.15 * hf, yb - 0.15 * hf, yb - 0.15 * hf]),
            scene.shadow,
        )
    if scene.has("crate") and rng.random() < 0.7:
        paint_crate_stack(scene, x + 0.1 * d, yb - hf - 0.1 * d, w * 0.9)


def paint_crate_stack(scene: Scene, x: float, yb: float, size: float | None) -> None:
    """One to three boxes standing at (x, yb); size caps the box width in px."""
    rng, u, c = scene.rng, scene.unit, scene.canvas
    s = scene.persp(yb) * scene.style.object_scale
    bw = float(rng.uniform(50, 95)) * u * s if size is None else size * float(rng.uniform(0.5, 0.9))
    cardboard = rng.random() < 0.65
    base = (
        scene.colour((182, 142, 92), 12)
        if cardboard
        else scene.pick(((48, 84, 160), (160, 50, 45), (110, 112, 116)), 10)
    )
    front = scene.mat("crate", base, grad=(0.4 / max(bw, 1.0), 0.0, x, 0.0), fine=4.0, coarse=4.0)
    top = scene.mat("crate", np.clip(base * 1.18, 0, 255).astype(np.float32), fine=3.0, coarse=3.0)
    detail = scene.mat(
        "crate",
        np.clip(base * (1.25 if cardboard else 0.45), 0, 255).astype(np.float32),
        fine=2.0,
        coarse=2.0,
    )
    if size is None:
        c.ellipse(x, yb, bw * 0.6, 4 * u * s, scene.shadow, on=scene.floor_ids)
    y = yb
    for _ in range(int(rng.integers(1, 4)) if size is None else 1):
        bh = bw * float(rng.uniform(0.55, 0.85))
        d = bw * 0.25
        c.polygon(
            np.array([x - bw / 2, x + bw / 2, x + bw / 2 + d, x - bw / 2 + d]),
            np.array([y - bh, y - bh, y - bh - d * 0.5, y - bh - d * 0.5]),
            top,
        )
        c.polygon(
            np.array([x - bw / 2, x + bw / 2, x + bw / 2, x - bw / 2]),
            np.array([y - bh, y - bh, y, y]),
            front,
        )
        if cardboard:  # tape strip
            c.polygon(
                np.array([x - 0.08 * bw, x + 0.08 * bw, x + 0.08 * bw, x - 0.08 * bw]),
                np.array([y - bh, y - bh, y - 0.6 * bh, y - 0.6 * bh]),
                detail,
            )
        else:  # handle slot
            c.ellipse(x, y - 0.78 * bh, 0.18 * bw, 0.05 * bh + 1, detail)
        y -= bh
        x += float(rng.uniform(-0.08, 0.08)) * bw


def paint_tool(scene: Scene, x: float, yb: float) -> None:
    """A wrench, screwdriver or hammer lying on the floor at (x, yb)."""
    rng, u, c = scene.rng, scene.unit, scene.canvas
    s = scene.persp(yb) * scene.style.object_scale
    x += scene.pan
    length = float(rng.uniform(60, 110)) * u * s
    a = float(rng.uniform(0, math.pi))
    d = np.array([math.cos(a), math.sin(a) * 0.5])
    steel = scene.mat(
        "tool",
        scene.colour((168, 170, 176), 10),
        wave=scene.stripes(6 * u, a + math.pi / 2, 1.0),
        c2=scene.colour((110, 112, 118), 8),
        fine=3.0,
        coarse=2.0,
    )
    grip = scene.mat(
        "tool",
        scene.pick(((200, 40, 30), (230, 190, 30), (40, 70, 170), (30, 30, 30)), 10),
        grad=(0.0, 0.0, 0.0, 0.0),
        fine=2.0,
        coarse=2.0,
    )
    before = c.mat.copy()
    p0 = np.array([x, yb]) - d * length / 2
    p1 = np.array([x, yb]) + d * length / 2
    kind = int(rng.integers(3))
    wid = max(1.5, 8 * u * s)
    if kind == 0:  # wrench: steel shaft with ring ends
        c.band(np.stack([p0, p1]), wid, steel)
        for p in (p0, p1):
            c.disk(float(p[0]), float(p[1]), 1.6 * wid, steel)
            c.restore_disk(float(p[0]), float(p[1]), 0.8 * wid, before)
    elif kind == 1:  # screwdriver: grip + thin blade
        mid = p0 + (p1 - p0) * 0.42
        c.band(np.stack([p0, mid]), 1.8 * wid, grip)
        c.band(np.stack([mid, p1]), max(1.2, 0.6 * wid), steel)
    else:  # hammer: grip + head across it
        c.band(np.stack([p0, p1]), 1.3 * wid, grip)
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        c.band(np.stack([p1 - n * 2.2 * wid, p1 + n * 2.2 * wid]), 2.2 * wid, steel)
