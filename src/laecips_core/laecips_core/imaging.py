"""Images on the wire: ROS Image fields <-> numpy, and colouring of label maps (palette, overlay).

JPEG and the compressed label maps are in ``image_codecs``, the array checks, the pixel limit and
resizing in ``image_arrays``."""

from __future__ import annotations

import colorsys
import functools
from typing import Any, NamedTuple, TypedDict

import numpy as np

from laecips_core.errors import ImageError
from laecips_core.image_arrays import (
    MAX_IMAGE_PIXELS,
    check_labels,
    check_rgb,
    check_size,
)

__all__ = [
    "SUPPORTED_ENCODINGS",
    "RosImageFields",
    "colorize",
    "labels_to_ros_fields",
    "overlay",
    "palette",
    "rgb_to_ros_fields",
    "ros_image_to_rgb",
    "ros_labels_to_array",
]


class _Encoding(NamedTuple):
    channels: int  # samples per pixel (2 for packed YUV 4:2:2)
    itemsize: int  # bytes per sample
    order: str  # rgb, bgr, rgba, bgra, mono, uyvy, yuyv


_ENCODINGS: dict[str, _Encoding] = {
    "rgb8": _Encoding(3, 1, "rgb"),
    "bgr8": _Encoding(3, 1, "bgr"),
    "rgba8": _Encoding(4, 1, "rgba"),
    "bgra8": _Encoding(4, 1, "bgra"),
    "mono8": _Encoding(1, 1, "mono"),
    "8uc1": _Encoding(1, 1, "mono"),
    "8uc3": _Encoding(3, 1, "bgr"),  # OpenCV's channel order, as cv_bridge assumes
    "8uc4": _Encoding(4, 1, "bgra"),
    "rgb16": _Encoding(3, 2, "rgb"),
    "bgr16": _Encoding(3, 2, "bgr"),
    "rgba16": _Encoding(4, 2, "rgba"),
    "bgra16": _Encoding(4, 2, "bgra"),
    "mono16": _Encoding(1, 2, "mono"),
    "16uc1": _Encoding(1, 2, "mono"),
    "16uc3": _Encoding(3, 2, "bgr"),
    "yuv422": _Encoding(2, 1, "uyvy"),  # ROS's yuv422 is UYVY
    "uyvy": _Encoding(2, 1, "uyvy"),
    "yuv422_yuy2": _Encoding(2, 1, "yuyv"),
    "yuyv": _Encoding(2, 1, "yuyv"),
}
_LABEL_ENCODINGS = ("mono8", "8uc1", "mono16", "16uc1")
_OUT_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
"""Encodings accepted by ros_image_to_rgb (matched case-insensitively: 8UC3 == 8uc3)."""


def _lookup(encoding: str, allowed: tuple[str, ...] | None = None) -> tuple[str, _Encoding]:
    key = encoding.lower() if isinstance(encoding, str) else ""
    if key not in _ENCODINGS or (allowed is not None and key not in allowed):
        names = ", ".join(allowed if allowed is not None else SUPPORTED_ENCODINGS)
        raise ImageError(
            f"encoding {encoding!r} is not supported here; publish one of: {names} "
            "(e.g. set the camera driver's pixel format to rgb8)"
        )
    return key, _ENCODINGS[key]


def _rows(
    height: int, width: int, step: int, data: Any, bpp: int, encoding: str, max_pixels: int
) -> np.ndarray:
    """Validate the geometry and view data as (height, step) uint8 rows without copying."""
    check_size(height, width, max_pixels)
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        raise ImageError(f"step must be an int, got {step!r}")
    if step < width * bpp:
        raise ImageError(
            f"step = {step} is smaller than width*bytes_per_pixel = {width}*{bpp} = {width * bpp} for "
            f"encoding {encoding}; set step >= {width * bpp} (row length in bytes, padding included)"
        )
    try:
        buf = (
            memoryview(data).cast("B")
            if not isinstance(data, np.ndarray)
            else data.reshape(-1).view(np.uint8)
        )
    except (TypeError, ValueError) as err:
        raise ImageError(f"data must be a bytes-like object, got {type(data).__name__}") from err
    if len(buf) < height * step:
        raise ImageError(
            f"data has {len(buf)} bytes but height*step = {height}*{step} = {height * step}; the message is "
            "truncated or height/step are wrong"
        )
    return np.frombuffer(buf, np.uint8, count=height * step).reshape(height, step)


def _samples(rows: np.ndarray, width: int, enc: _Encoding, is_bigendian: bool) -> np.ndarray:
    """(H, W, C) samples of uint8 or uint16 (native order), still a view when possible."""
    height = rows.shape[0]
    if enc.itemsize == 1:
        return rows[:, : width * enc.channels].reshape(height, width, enc.channels)
    dtype = np.dtype(">u2" if is_bigendian else "<u2")
    wide = rows[:, : width * enc.channels * 2].view(dtype).reshape(height, width, enc.channels)
    return wide.astype(np.uint16)


def _yuv422_to_rgb(samples: np.ndarray, order: str) -> np.ndarray:
    """Packed 4:2:2 (H, W, 2) uint8 -> (H, W, 3) uint8 RGB with BT.601 limited-range coefficients."""
    height, width = samples.shape[:2]
    flat = samples.reshape(height, width * 2).astype(np.float32)
    if order == "uyvy":
        u, y0, v, y1 = (flat[:, i::4] for i in range(4))
    else:
        y0, u, y1, v = (flat[:, i::4] for i in range(4))
    y = np.empty((height, width), np.float32)
    y[:, 0::2], y[:, 1::2] = y0, y1
    y = (y - 16.0) * (255.0 / 219.0)
    cb = np.repeat(u - 128.0, 2, axis=1) * (255.0 / 224.0)
    cr = np.repeat(v - 128.0, 2, axis=1) * (255.0 / 224.0)
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def ros_image_to_rgb(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: Any,
    is_bigendian: bool | int = False,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Convert sensor_msgs/Image fields to an RGB array.

    Honours row padding (step) and byte order (is_bigendian); 16-bit encodings are scaled to 8 bit
    for display (value >> 8); mono images are replicated to three channels; alpha is dropped.

    Args:
        encoding: One of SUPPORTED_ENCODINGS (8UC3 is taken as BGR, like OpenCV and cv_bridge).
        height: Rows (> 0).
        width: Columns (> 0).
        step: Bytes per row including padding (>= width * bytes per pixel).
        data: Row-major pixel bytes (bytes, bytearray, array.array, memoryview or uint8 ndarray) of at
            least height * step bytes.
        is_bigendian: Byte order of 16-bit samples.
        max_pixels: Largest height * width accepted; checked before anything is allocated.

    Returns:
        (height, width, 3) uint8 RGB, a new C-contiguous array.

    Raises:
        ImageError: Unknown encoding, empty or oversized image, step too small, data too short.
    """
    key, enc = _lookup(encoding)
    if enc.order in ("uyvy", "yuyv") and width % 2:
        raise ImageError(f"width = {width} must be even for the 4:2:2 encoding {encoding}; crop one column")
    rows = _rows(height, width, step, data, enc.channels * enc.itemsize, key, max_pixels)
    samples = _samples(rows, width, enc, bool(is_bigendian))
    if enc.order in ("uyvy", "yuyv"):
        return _yuv422_to_rgb(samples, enc.order)
    if enc.itemsize == 2:
        samples = (samples >> 8).astype(np.uint8)
    if enc.order == "mono":
        return np.repeat(samples, 3, axis=2)
    index = {"rgb": [0, 1, 2], "rgba": [0, 1, 2], "bgr": [2, 1, 0], "bgra": [2, 1, 0]}[enc.order]
    return np.ascontiguousarray(samples[:, :, index])


class RosImageFields(TypedDict):
    """sensor_msgs/Image fields without the header: ``Image(header=header, **fields)``.

    Attributes:
        height: Rows (pixels).
        width: Columns (pixels).
        encoding: ROS image encoding (rgb8, bgr8, rgba8, bgra8, mono8, mono16).
        is_bigendian: Always 0 (mono16 is little-endian).
        step: Bytes per row.
        data: ``height * step`` bytes, row-major.
    """

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes


def rgb_to_ros_fields(rgb: np.ndarray, encoding: str = "rgb8") -> RosImageFields:
    """sensor_msgs/Image fields for an RGB array.

    Args:
        rgb: (H, W, 3) uint8 RGB.
        encoding: rgb8, bgr8, rgba8, bgra8 (alpha 255) or mono8 (BT.601 luma).

    Returns:
        The fields (RosImageFields: height, width, encoding, is_bigendian=0, step, data: bytes).

    Raises:
        ImageError: When rgb is not (H, W, 3) uint8 or the encoding is not one of those above.
    """
    rgb = check_rgb(rgb)
    key, enc = _lookup(encoding, _OUT_ENCODINGS)
    height, width = rgb.shape[:2]
    if enc.order == "mono":
        out = np.rint(rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    else:
        index = [0, 1, 2] if enc.order.startswith("rgb") else [2, 1, 0]
        out = rgb[:, :, index]
        if enc.channels == 4:
            out = np.concatenate([out, np.full((height, width, 1), 255, np.uint8)], axis=2)
    return {
        "height": height,
        "width": width,
        "encoding": key,
        "is_bigendian": 0,
        "step": width * enc.channels,
        "data": np.ascontiguousarray(out).tobytes(),
    }


def labels_to_ros_fields(labels: np.ndarray, num_classes: int | None = None) -> RosImageFields:
    """sensor_msgs/Image fields for a label map: mono8 when M <= 255, else mono16 (little-endian).

    Args:
        labels: (H, W) integer class ids in [0, 65535].
        num_classes: M; when None, mono8 is used if every value fits in 8 bits.

    Returns:
        The fields (RosImageFields: height, width, encoding, is_bigendian=0, step, data: bytes).

    Raises:
        ImageError: When labels are not a 2-D integer array or hold values outside [0, 65535].
    """
    labels = check_labels(labels)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi > 65535:
        raise ImageError(f"label values must be in [0, 65535] to fit mono16, got [{lo}, {hi}]")
    wide = hi > 255 if num_classes is None else num_classes > 255
    if not wide and hi > 255:
        raise ImageError(f"label value {hi} does not fit mono8 although num_classes = {num_classes}")
    dtype = np.dtype("<u2") if wide else np.dtype("u1")
    height, width = labels.shape
    return {
        "height": height,
        "width": width,
        "encoding": "mono16" if wide else "mono8",
        "is_bigendian": 0,
        "step": width * dtype.itemsize,
        "data": np.ascontiguousarray(labels, dtype=dtype).tobytes(),
    }


def ros_labels_to_array(
    encoding: str,
    height: int,
    width: int,
    step: int,
    data: Any,
    is_bigendian: bool | int = False,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """Label map from sensor_msgs/Image fields (mono8/8UC1 -> uint8, mono16/16UC1 -> uint16, unscaled).

    Returns:
        (height, width) uint8 or uint16, a new C-contiguous array.

    Raises:
        ImageError: Not a label encoding, empty or oversized image, step too small, data too short.
    """
    key, enc = _lookup(encoding, _LABEL_ENCODINGS)
    rows = _rows(height, width, step, data, enc.itemsize, key, max_pixels)
    samples = _samples(rows, width, enc, bool(is_bigendian))[:, :, 0]
    return np.ascontiguousarray(samples, dtype=np.uint8 if enc.itemsize == 1 else np.uint16)


def palette(num_classes: int, seed: int = 0) -> np.ndarray:
    """Distinct display colours, class 0 dark grey.

    Hues step by the golden angle (starting at a seed-dependent hue), saturation and value cycle so
    that neighbouring class ids differ strongly.

    Returns:
        (num_classes, 3) uint8.

    Raises:
        ImageError: When num_classes < 1.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 1:
        raise ImageError(f"num_classes must be an int >= 1, got {num_classes!r}")
    start = (seed * 0.618033988749895) % 1.0
    colours: list[tuple[int, ...]] = [(40, 40, 40)]
    for k in range(1, num_classes):
        hue = (start + k * 0.618033988749895) % 1.0
        sat = (0.95, 0.65, 0.8)[k % 3]
        val = (0.95, 0.8, 0.65, 1.0)[(k // 3) % 4]
        colours.append(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, val)))
    return np.array(colours, np.uint8)


def colorize(labels: np.ndarray, colours: np.ndarray, ignore_index: int | None = 255) -> np.ndarray:
    """RGB picture of a label map.

    Args:
        labels: (H, W) integer class ids in [0, M).
        colours: (M, 3) uint8 palette.
        ignore_index: Label drawn black even when it is >= M (None: no such label).

    Returns:
        (H, W, 3) uint8.

    Raises:
        ImageError: When a label other than ignore_index is outside [0, M).
    """
    labels = check_labels(labels)
    colours = np.asarray(colours, np.uint8)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ImageError(f"palette must be (M, 3) uint8, got shape {colours.shape}")
    ignore = None
    index = labels
    if ignore_index is not None and ignore_index >= len(colours):
        ignore = labels == ignore_index
        index = np.where(ignore, 0, labels)
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= len(colours):
        raise ImageError(
            f"labels span [{lo}, {hi}] but the palette has {len(colours)} colours; pass palette(M)"
        )
    out: np.ndarray = colours[index]
    if ignore is not None:
        out[ignore] = 0
    return out


@functools.lru_cache(maxsize=16)
def _blend_table(colours: bytes, rows: int, alpha: float) -> np.ndarray:
    """(rows*3*256,) uint8: rint((1 - alpha) * v + alpha * colour[row, channel]) for every byte v."""
    palette_f = np.frombuffer(colours, np.uint8).reshape(rows, 3).astype(np.float32)
    values = np.arange(256, dtype=np.float32)
    out = values[None, None, :] * (1.0 - alpha) + palette_f[:, :, None] * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(-1)


_CHANNEL_OFFSETS = np.array([0, 256, 512], dtype=np.int32)


def overlay(rgb: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourised labels over the image: (1 - alpha) * rgb + alpha * colorize(labels).

    Each output byte is looked up in a (colour, channel, byte) table of that blend (computed once per
    palette and alpha), the same values as blending in float32, in a third of the time at 640x480.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ImageError: When shapes differ, alpha is outside [0, 1] or labels are out of the palette.
    """
    rgb = check_rgb(rgb)
    labels = check_labels(labels)
    if labels.shape != rgb.shape[:2]:
        raise ImageError(
            f"labels shape {labels.shape} differs from the image's {rgb.shape[:2]}; resize_labels first"
        )
    if not 0.0 <= float(alpha) <= 1.0:
        raise ImageError(f"alpha must be in [0, 1], got {alpha}")
    colours = np.asarray(colours, np.uint8)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ImageError(f"palette must be (M, 3) uint8, got shape {colours.shape}")
    rows = colours
    if len(colours) <= 255:  # colorize draws the ignore label 255 black
        rows = np.zeros((256, 3), np.uint8)
        rows[: len(colours)] = colours
    if int(labels.min()) < 0 or int(labels.max()) >= len(colours):
        colorize(labels, colours)  # raises its ImageError naming the span, unless only 255s (ignored)
    table = _blend_table(np.ascontiguousarray(rows).tobytes(), len(rows), float(alpha))
    index = labels.astype(np.int32)
    index *= 768
    flat = index[..., None] + _CHANNEL_OFFSETS
    flat += rgb
    out: np.ndarray = np.take(table, flat)
    return out
