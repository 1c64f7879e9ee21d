"""Tests of image_codecs: JPEG (full and cheaply downscaled decoding) and the compressed label codec."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import zstandard
from laecips_core.errors import ImageError, WireFormatError

from laecips_core import image_codecs


def _smooth_image(height: int = 48, width: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).clip(0, 255).astype(np.uint8)


def test_jpeg_round_trip_and_garbage():
    img = _smooth_image()
    jpeg = image_codecs.encode_jpeg(img, quality=90)
    assert isinstance(jpeg, bytes) and jpeg[:2] == b"\xff\xd8"
    back = image_codecs.decode_jpeg(jpeg)
    assert back.shape == img.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - img).mean() < 3.0
    assert len(image_codecs.encode_jpeg(img, quality=10)) < len(jpeg)
    with pytest.raises(ImageError, match="not a JPEG"):
        image_codecs.decode_jpeg(b"GIF89a garbage bytes")
    with pytest.raises(ImageError, match="not a JPEG"):
        image_codecs.decode_jpeg(b"")
    with pytest.raises(ImageError):
        image_codecs.decode_jpeg(jpeg[:40])
    with pytest.raises(ImageError, match="quality"):
        image_codecs.encode_jpeg(img, quality=0)
    with pytest.raises(ImageError, match="uint8"):
        image_codecs.encode_jpeg(img.astype(np.float32))


def test_jpeg_claiming_8k_is_refused_before_decoding():
    jpeg = bytearray(image_codecs.encode_jpeg(_smooth_image(16, 16)))
    sof = jpeg.index(b"\xff\xc0")  # baseline frame header: marker, length, precision, height, width
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 8192, 8192)
    with pytest.raises(ImageError, match="max_pixels"):
        image_codecs.decode_jpeg(bytes(jpeg))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_label_codec_round_trip(dtype):
    labels = np.random.default_rng(2).integers(0, 200 if dtype != np.uint16 else 3000, (33, 47)).astype(dtype)
    blob = image_codecs.encode_labels(labels)
    assert blob[:4] == b"LBL1"
    back = image_codecs.decode_labels(blob, max_pixels=33 * 47)
    assert back.shape == (33, 47) and np.array_equal(back, labels)
    if dtype in (np.uint8, np.uint16, np.int32):
        assert back.dtype == dtype
    flat = np.zeros((480, 640), np.uint8)
    assert len(image_codecs.encode_labels(flat)) < 200  # compressed


def _labels_blob(code: int = 1, height: int = 4, width: int = 5, body: bytes | None = None) -> bytes:
    if body is None:
        body = zstandard.ZstdCompressor(level=3).compress(bytes(height * width))
    return struct.pack("<4sB3xII", b"LBL1", code, height, width) + body


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"LBL1", "fewer than the 16-byte header"),
        (b"XXXX" + _labels_blob()[4:], "magic"),
        (_labels_blob(code=7), "dtype code 7"),
        (_labels_blob(height=0), "non-empty"),
        (_labels_blob(body=b"not zstd at all"), "zstd"),
        (
            _labels_blob(height=5, body=zstandard.ZstdCompressor().compress(bytes(20))),
            "declares 20 bytes, expected 25",
        ),
        (_labels_blob(body=zstandard.ZstdCompressor().compress(bytes(10**6))), "declares 1000000"),
        (_labels_blob(code=2), "declares 20 bytes, expected 40"),
        (_labels_blob(body=zstandard.ZstdCompressor().compress(bytes(20))[:-3]), "zstd"),
    ],
)
def test_malformed_label_payloads_raise_wire_format_error(blob, match):
    with pytest.raises(WireFormatError, match=match):
        image_codecs.decode_labels(blob)


def test_label_payload_without_declared_size_is_bounded_and_class_range_checked():
    def unsized(raw: bytes) -> bytes:
        stream = zstandard.ZstdCompressor(write_content_size=False).compressobj()
        return stream.compress(raw) + stream.flush()

    bomb = unsized(bytes(range(20)) * 50_000)  # 1 MB behind a 4x5 header
    assert zstandard.frame_content_size(bomb) == -1
    with pytest.raises(WireFormatError, match="corrupt"):
        image_codecs.decode_labels(_labels_blob(body=bomb))
    with pytest.raises(WireFormatError, match="holds 10 bytes, expected 20"):
        image_codecs.decode_labels(_labels_blob(body=unsized(bytes(10))))
    assert image_codecs.decode_labels(_labels_blob(body=unsized(bytes(range(20))))).ravel().tolist() == list(
        range(20)
    )
    good = image_codecs.encode_labels(np.full((4, 5), 9, np.uint8))
    assert image_codecs.decode_labels(good, num_classes=10).max() == 9
    with pytest.raises(WireFormatError, match="outside"):
        image_codecs.decode_labels(good, num_classes=9)
    with pytest.raises(WireFormatError, match="bytes"):
        image_codecs.decode_labels("text")  # type: ignore[arg-type]


def test_label_payload_claiming_8k_is_refused_before_allocating():
    tracemalloc.start()
    try:
        with pytest.raises(WireFormatError, match="max_pixels"):
            image_codecs.decode_labels(struct.pack("<4sB3xII", b"LBL1", 1, 8192, 8192) + b"\x00" * 32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_decode_jpeg_fitted_downscales_within_the_budget():
    img = _smooth_image(96, 128)
    jpeg = image_codecs.encode_jpeg(img, quality=95)
    full, size = image_codecs.decode_jpeg_fitted(jpeg, fit_pixels=96 * 128)
    assert size == (96, 128) and np.array_equal(full, image_codecs.decode_jpeg(jpeg))
    half, size = image_codecs.decode_jpeg_fitted(jpeg, fit_pixels=48 * 64)
    assert size == (96, 128) and half.shape == (48, 64, 3)  # libjpeg's 1/2 scale fits exactly
    assert np.abs(half.astype(int) - img[::2, ::2]).mean() < 6.0
    quarter, _ = image_codecs.decode_jpeg_fitted(jpeg, fit_pixels=48 * 64 - 1)
    assert quarter.shape == (24, 32, 3)  # the next scale that fits
    tiny, _ = image_codecs.decode_jpeg_fitted(jpeg, fit_pixels=50)  # beyond 1/8 (12x16): resized
    assert tiny.shape[0] * tiny.shape[1] <= 50 and tiny.dtype == np.uint8 and tiny.shape[2] == 3
    with pytest.raises(ImageError, match="not a JPEG"):
        image_codecs.decode_jpeg_fitted(b"not a jpeg", fit_pixels=100)
    with pytest.raises(ImageError, match="max_pixels"):
        image_codecs.decode_jpeg_fitted(jpeg, fit_pixels=100, max_pixels=96 * 128 - 1)
