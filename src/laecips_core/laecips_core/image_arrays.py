"""Image arrays: checks of (H, W, 3) uint8 RGB images and (H, W) label maps, the pixel limit of
anything read from the wire, and resizing (bilinear RGB, nearest-neighbour labels)."""

from __future__ import annotations

import math

import numpy as np

from laecips_core.errors import ImageError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "check_labels",
    "check_rgb",
    "check_size",
    "fit_size",
    "resize_labels",
    "resize_rgb",
]

MAX_IMAGE_PIXELS: int = 4096 * 4096
"""Largest height * width accepted from the wire; larger images are refused before any allocation."""


def check_size(height: int, width: int, max_pixels: int) -> None:
    """ImageError unless height and width are ints > 0 with height * width <= max_pixels."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ImageError(f"{name} must be an int, got {value!r}")
        if value <= 0:
            raise ImageError(f"{name} must be > 0, got {value}; the image is empty, check the camera driver")
    if height * width > max_pixels:
        raise ImageError(
            f"height*width = {height}x{width} = {height * width} pixels exceeds max_pixels = {max_pixels}; "
            "downscale the camera output or raise max_pixels"
        )


def check_rgb(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    """rgb itself when it is a non-empty (H, W, 3) uint8 array, else ImageError naming it ``name``."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ImageError(f"{name} must be an (H, W, 3) uint8 array, got shape {shape} dtype {dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"{name} is empty (shape {rgb.shape}); give at least one pixel")
    return rgb


def check_labels(labels: np.ndarray) -> np.ndarray:
    """labels itself when it is a non-empty (H, W) integer array, else ImageError."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype.kind not in "iu":
        shape = getattr(labels, "shape", None)
        dtype = getattr(labels, "dtype", type(labels).__name__)
        raise ImageError(f"labels must be an (H, W) integer array, got shape {shape} dtype {dtype}")
    if labels.shape[0] == 0 or labels.shape[1] == 0:
        raise ImageError(f"labels are empty (shape {labels.shape}); give at least one pixel")
    return labels


def fit_size(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """The largest (h, w) of the same aspect ratio with h * w <= max_pixels (the size itself if it fits)."""
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    h, w = max(1, int(height * scale)), max(1, int(width * scale))
    while h * w > max_pixels:  # rounding: shrink the longer side until it fits
        if h >= w:
            h -= 1
        else:
            w -= 1
    return h, w


def _check_target(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError) as err:
        raise ImageError(f"size must be (height, width), got {size!r}") from err
    check_size(height, width, MAX_IMAGE_PIXELS)
    return height, width


def bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-tap bilinear sampling of one axis, pixel centres aligned (align_corners=False).

    Returns:
        (low, high, frac): for each of the n_out outputs, the two input indices and the float32 weight
        of the high one (output = in[low] + (in[high] - in[low]) * frac).
    """
    pos = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    low = np.floor(pos).astype(np.intp)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (pos - low).astype(np.float32)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (pixel centres aligned, like align_corners=False) of an RGB image.

    Args:
        rgb: (H, W, 3) uint8.
        size: (height, width) of the output.

    Returns:
        (height, width, 3) uint8.
    """
    rgb = check_rgb(rgb)
    height, width = _check_target(size)
    if (height, width) == rgb.shape[:2]:
        return rgb.copy()

    y0, y1, fy = bilinear_taps(rgb.shape[0], height)
    x0, x1, fx = bilinear_taps(rgb.shape[1], width)
    src = rgb.astype(np.float32)
    top = src[y0] * (1 - fy)[:, None, None] + src[y1] * fy[:, None, None]
    out: np.ndarray = top[:, x0] * (1 - fx)[None, :, None] + top[:, x1] * fx[None, :, None]
    resized: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return resized


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map (no new class ids are invented).

    Args:
        labels: (H, W) integer array.
        size: (height, width) of the output.

    Returns:
        (height, width) array of labels' dtype.
    """
    labels = check_labels(labels)
    height, width = _check_target(size)
    ys = np.minimum(
        ((np.arange(height) + 0.5) * (labels.shape[0] / height)).astype(np.intp), labels.shape[0] - 1
    )
    xs = np.minimum(
        ((np.arange(width) + 0.5) * (labels.shape[1] / width)).astype(np.intp), labels.shape[1] - 1
    )
    resized: np.ndarray = labels[ys[:, None], xs[None, :]]
    return resized
