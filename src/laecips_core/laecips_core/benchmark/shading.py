"""Shading of a painted scene: material textures (noise banks, periodic patterns, shading) and the
task's camera (light, colour temperature, motion blur, vignette, sensor noise)."""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from laecips_core.benchmark.raster import Canvas, Material
from laecips_core.benchmark.tasks import TaskStyle

NOISE_PAD = 128
"""Noise banks are larger than the frame by this much (px); material offsets are drawn in [0, NOISE_PAD)."""


@functools.lru_cache(maxsize=8)
def noise_bank(height: int, width: int, sigma: float, channels: int) -> np.ndarray:
    """Unit-variance noise (C, H + pad, W + pad) float32, Gaussian-smoothed by sigma px (0 = white)."""
    rng = np.random.default_rng(20240607 + channels * 1000 + int(sigma * 10))
    noise = rng.standard_normal((channels, height + NOISE_PAD, width + NOISE_PAD), dtype=np.float32)
    if sigma > 0:
        noise = ndimage.gaussian_filter(noise, (0.0, sigma, sigma), mode="wrap")
        noise /= max(float(noise.std()), 1e-6)
    noise.setflags(write=False)
    return noise


@functools.lru_cache(maxsize=4)
def _vignette(height: int, width: int) -> np.ndarray:
    """(H, W) float32 lens fall-off, 1 at the centre, about 0.8 in the corners."""
    yy = (np.arange(height, dtype=np.float32) - height / 2) / (height / 2)
    xx = (np.arange(width, dtype=np.float32) - width / 2) / (width / 2)
    v = (1.0 - 0.1 * (yy[:, None] ** 2 + xx[None, :] ** 2)).astype(np.float32)
    v.setflags(write=False)
    return v


def _wave(p: tuple[float, float, float, float, float], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Periodic pattern in [-1, 1]: sin of a plane wave, shifted by bias and sharpened towards a square."""
    fx, fy, ph, sharp, bias = p
    v = x * np.float32(fx)
    v += y * np.float32(fy)
    v += np.float32(ph)
    np.sin(v, out=v)
    if bias:
        v -= np.float32(bias)
    if sharp > 1:
        v *= np.float32(sharp)
        np.clip(v, -1.0, 1.0, out=v)
    return v


def _shade_into(
    out: np.ndarray,
    m: Material,
    xi: np.ndarray,
    yi: np.ndarray,
    bank_idx: np.ndarray,
    fine: np.ndarray,
    coarse: np.ndarray,
    bank_w: int,
) -> None:
    """Write the colour of material m at pixels (xi, yi) into out (3, n) float32 (planar, fast)."""
    idx = bank_idx + (m.oy * bank_w + m.ox)
    tex = fine.take(idx)
    tex *= np.float32(m.fine)
    tex += coarse.take(idx) * np.float32(m.coarse)
    t = lum = None
    if m.wave is not None or m.grad is not None or m.rings is not None:
        x = xi.astype(np.float32)
        y = yi.astype(np.float32)
        if m.wave is not None and m.c2 is not None:
            t = _wave(m.wave, x, y)
            if m.wave2 is not None:
                t *= _wave(m.wave2, x, y)
            t += 1.0
            t *= 0.5
        if m.grad is not None and (m.grad[0] or m.grad[1]):
            gx, gy, cx, cy = m.grad
            lum = (x - np.float32(cx)) * np.float32(gx)
            lum += (y - np.float32(cy)) * np.float32(gy)
            lum += 1.0
        if m.rings is not None:
            cx, cy, freq, amp = m.rings
            ring = np.hypot(x - np.float32(cx), y - np.float32(cy))
            ring *= np.float32(freq)
            np.sin(ring, out=ring)
            ring *= np.float32(amp)
            lum = ring + 1.0 if lum is None else lum + ring
    for ch in range(3):
        o = out[ch]
        c1 = np.float32(m.c1[ch])
        if t is not None and m.c2 is not None:
            np.multiply(t, np.float32(m.c2[ch]) - c1, out=o)
            o += c1
        else:
            o.fill(c1)
        if lum is not None:
            o *= lum
        o += tex


def render(
    canvas: Canvas, style: TaskStyle, rng: np.random.Generator, unit: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shade every material on its pixels, then apply the task's camera: light, blur, vignette, noise."""
    H, W = canvas.shape
    flat = canvas.mat.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=len(canvas.materials))
    yi, xi = np.divmod(order, W)
    fine = noise_bank(H, W, 0.7, 1)[0]
    coarse = noise_bank(H, W, round(max(1.0, 10.0 * unit / style.texture_scale), 1), 1)[0]
    bank_w = fine.shape[1]
    bank_idx = yi * bank_w + xi
    fine_flat, coarse_flat = fine.ravel(), coarse.ravel()
    shaded = np.empty((3, H * W), np.float32)
    start = 0
    for m_id, count in enumerate(counts.tolist()):
        if count:
            sl = slice(start, start + count)
            _shade_into(
                shaded[:, sl],
                canvas.materials[m_id],
                xi[sl],
                yi[sl],
                bank_idx[sl],
                fine_flat,
                coarse_flat,
                bank_w,
            )
            start += count
    img = np.empty((3, H, W), np.float32)
    planes = img.reshape(3, H * W)
    gain = np.asarray(style.colour_temperature, np.float32) * np.float32(style.gain)
    vignette = _vignette(H, W)
    blur = 0
    if style.motion_blur_px > 0:
        blur = int(round(style.motion_blur_px * unit * float(rng.uniform(0.6, 1.4))))
    sensor = noise_bank(H, W, 0.0, 3) if style.noise_std > 0 else None
    oy, ox = (int(v) for v in rng.integers(NOISE_PAD, size=2))
    out = np.empty((H, W, 3), np.uint8)
    for ch in range(3):
        planes[ch][order] = shaded[ch]
        plane = img[ch]
        if blur >= 2:
            plane = ndimage.uniform_filter1d(plane, blur, axis=1, mode="nearest")
        plane *= vignette * gain[ch]
        if sensor is not None:
            plane += sensor[ch, oy : oy + H, ox : ox + W] * np.float32(style.noise_std)
        np.clip(plane, 0.0, 255.0, out=plane)
        out[:, :, ch] = plane
    return out, canvas.labels()
