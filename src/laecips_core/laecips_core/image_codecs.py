"""Image payloads on the wire: JPEG (the frames x the edge uploads) and the compressed label maps
(the fused labels F(x) the cloud returns): b"LBL1" header + zstd body, validated before allocating."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import simplejpeg
import zstandard

from laecips_core.errors import ImageError, WireFormatError
from laecips_core.image_arrays import (
    MAX_IMAGE_PIXELS,
    check_labels,
    check_rgb,
    check_size,
    fit_size,
    resize_rgb,
)

__all__ = [
    "LABELS_MAGIC",
    "decode_jpeg",
    "decode_jpeg_fitted",
    "decode_labels",
    "encode_jpeg",
    "encode_labels",
]

LABELS_MAGIC = b"LBL1"
_LABELS_HEADER = struct.Struct("<4sB3xII")  # magic, dtype code, pad, height, width: 16 bytes
_LABEL_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("u1"),
    2: np.dtype("<u2"),
    4: np.dtype("<i4"),
}
_ZSTD_LEVEL = 3


def encode_jpeg(rgb: np.ndarray, quality: int = 75) -> bytes:
    """JPEG bytes (4:2:0) of an RGB image.

    Args:
        rgb: (H, W, 3) uint8 RGB.
        quality: JPEG quality in [1, 100].

    Raises:
        ImageError: When rgb is not (H, W, 3) uint8 or quality is out of range.
    """
    rgb = check_rgb(rgb)
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 100:
        raise ImageError(f"quality must be an int in [1, 100], got {quality!r}")
    return bytes(
        simplejpeg.encode_jpeg(
            np.ascontiguousarray(rgb), quality=int(quality), colorspace="RGB", colorsubsampling="420"
        )
    )


def decode_jpeg(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode JPEG bytes to RGB, refusing non-JPEG data and oversized images before decoding.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        ImageError: When data is not a valid JPEG or its size exceeds max_pixels.
    """
    data = _jpeg_bytes(data)
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        check_size(int(height), int(width), max_pixels)
        rgb: np.ndarray = simplejpeg.decode_jpeg(data, colorspace="RGB")
        return rgb
    except ValueError as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError(f"corrupt JPEG ({err}); the payload was damaged or is not a JPEG") from err


def _jpeg_bytes(data: object) -> bytes:
    """data as bytes, or ImageError when it is not bytes or does not start like a JPEG."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError(f"JPEG data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise ImageError(f"data is not a JPEG (no SOI marker, {len(data)} bytes); send encode_jpeg() output")
    return data


def decode_jpeg_fitted(
    data: bytes, fit_pixels: int, max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a JPEG downscaled to at most fit_pixels pixels, cheaply (libjpeg's DCT scaling).

    The cost of a huge frame is bounded: libjpeg decodes at 1/2, 1/4 or 1/8 size directly, so a
    4096x4096 frame never becomes 16 M RGB pixels. The result is the largest of those scales that fits
    (between a quarter of fit_pixels and fit_pixels), or, when even 1/8 is too large, that resized to
    fit_size() bilinearly.

    Args:
        data: JPEG bytes.
        fit_pixels: Most pixels of the returned image (>= 1).
        max_pixels: Largest full size accepted (refused before decoding above it).

    Returns:
        ((h, w, 3) uint8 RGB with h * w <= fit_pixels, (full height, full width) of the JPEG).

    Raises:
        ImageError: not a valid JPEG, or its full size exceeds max_pixels.
    """
    data = _jpeg_bytes(data)
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        height, width = int(height), int(width)
        check_size(height, width, max_pixels)
        target = fit_size(height, width, max(1, int(fit_pixels)))
        if target == (height, width):
            return simplejpeg.decode_jpeg(data, colorspace="RGB"), (height, width)
        # libjpeg decodes at 1/k (k = 2, 4, 8) directly: take the smallest k whose size fits, so the
        # full-size pixels are never produced; only beyond 1/8 a (small) bilinear resize follows
        k = 2
        while k < 8 and math.ceil(height / k) * math.ceil(width / k) > fit_pixels:
            k *= 2
        small = simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_height=math.ceil(height / k), min_width=math.ceil(width / k)
        )
    except ValueError as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError(f"corrupt JPEG ({err}); the payload was damaged or is not a JPEG") from err
    if small.shape[0] * small.shape[1] > fit_pixels:
        small = resize_rgb(small, target)
    return small, (height, width)


def encode_labels(labels: np.ndarray) -> bytes:
    """Compact label map: 16-byte header (b"LBL1", dtype code, height, width) + zstd(level 3) body.

    uint8 maps stay uint8, uint16 / int32 maps are stored little-endian as such; other integer
    types are stored as the smallest of those that holds their values.

    Raises:
        ImageError: When labels are not a 2-D integer array or do not fit in int32.
    """
    labels = check_labels(labels)
    if labels.dtype == np.uint8:
        code = 1
    else:
        lo, hi = int(labels.min()), int(labels.max())
        if lo >= 0 and hi <= 255 and labels.dtype.itemsize == 1:
            code = 1
        elif lo >= 0 and hi <= 65535 and labels.dtype != np.int32:
            code = 2
        elif -(2**31) <= lo and hi < 2**31:
            code = 4
        else:
            raise ImageError(f"label values [{lo}, {hi}] do not fit int32")
    height, width = labels.shape
    body = np.ascontiguousarray(labels, dtype=_LABEL_DTYPES[code]).tobytes()
    header = _LABELS_HEADER.pack(LABELS_MAGIC, code, height, width)
    return header + zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(body)


def decode_labels(
    data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS, num_classes: int | None = None
) -> np.ndarray:
    """Inverse of encode_labels, validating every field before allocating.

    Args:
        data: encode_labels() output.
        max_pixels: Largest height * width accepted.
        num_classes: When given, every label must lie in [0, num_classes).

    Returns:
        (H, W) uint8, uint16 or int32 label map.

    Raises:
        WireFormatError: Bad magic, unknown dtype code, zero or oversized size, corrupt or wrong-length
            body, or labels out of range.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireFormatError(f"label payload must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _LABELS_HEADER.size:
        raise WireFormatError(f"label payload has {len(data)} bytes, fewer than the 16-byte header")
    magic, code, height, width = _LABELS_HEADER.unpack_from(data)
    if magic != LABELS_MAGIC:
        raise WireFormatError(
            f"label payload magic is {magic!r}, expected {LABELS_MAGIC!r}; send encode_labels()"
        )
    if code not in _LABEL_DTYPES:
        raise WireFormatError(f"label dtype code {code} is unknown; expected one of {sorted(_LABEL_DTYPES)}")
    if height == 0 or width == 0 or height * width > max_pixels:
        raise WireFormatError(
            f"label map size {height}x{width} must be non-empty and at most max_pixels = {max_pixels} pixels"
        )
    dtype = _LABEL_DTYPES[code]
    expected = height * width * dtype.itemsize
    body = data[_LABELS_HEADER.size :]
    try:
        declared = zstandard.frame_content_size(body)
        if declared not in (-1, expected):
            raise WireFormatError(
                f"label body declares {declared} bytes, expected {expected} for {height}x{width}"
            )
        raw = zstandard.ZstdDecompressor().decompress(body, max_output_size=expected)
    except zstandard.ZstdError as err:
        raise WireFormatError(f"label body is not valid zstd ({err}); the payload is corrupt") from err
    if len(raw) != expected:
        raise WireFormatError(f"label body holds {len(raw)} bytes, expected {expected} for {height}x{width}")
    labels = np.frombuffer(raw, dtype).reshape(height, width).astype(dtype.newbyteorder("="))
    if num_classes is not None:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise WireFormatError(f"labels span [{lo}, {hi}], outside [0, {num_classes}) classes")
    return labels
