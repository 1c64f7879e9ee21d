"""Tests of imaging: ROS Image fields, JPEG, the compressed label codec, resizing and colouring."""

from __future__ import annotations

import array
import struct
import tracemalloc

import numpy as np
import pytest
import zstandard
from laecips_core.errors import ImageError, WireFormatError

from laecips_core import imaging


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (7, 10, 3), dtype=np.uint8)


def _pad_rows(pixels: np.ndarray, pad: int) -> tuple[int, bytes]:
    """(step, data) of (H, W*bpp) uint8 rows followed by pad junk bytes each."""
    rows = pixels.reshape(pixels.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    padded = np.concatenate([rows, junk], axis=1)
    return padded.shape[1], padded.tobytes()


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize(
    ("encoding", "order"),
    [
        ("rgb8", [0, 1, 2]),
        ("bgr8", [2, 1, 0]),
        ("8UC3", [2, 1, 0]),
        ("rgba8", [0, 1, 2, None]),
        ("bgra8", [2, 1, 0, None]),
        ("8UC4", [2, 1, 0, None]),
    ],
)
def test_8bit_colour_round_trip(rgb, encoding, order, pad):
    planes = [rgb[:, :, i] if i is not None else np.full(rgb.shape[:2], 17, np.uint8) for i in order]
    step, payload = _pad_rows(np.stack(planes, axis=2), pad)
    out = imaging.ros_image_to_rgb(encoding, 7, 10, step, payload)
    assert out.dtype == np.uint8 and out.shape == (7, 10, 3) and out.flags.c_contiguous
    assert np.array_equal(out, rgb)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_is_replicated(rgb, encoding):
    gray = rgb[:, :, 0]
    step, payload = _pad_rows(gray, 3)
    out = imaging.ros_image_to_rgb(encoding, 7, 10, step, array.array("B", payload))
    assert np.array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize(("encoding", "channels"), [("mono16", 1), ("16UC1", 1), ("rgb16", 3), ("bgr16", 3)])
def test_16bit_is_scaled_to_8bit_with_byte_order(rgb, encoding, channels, bigendian):
    wide = rgb[:, :, :channels].astype(np.uint16) * 256 + 255  # low byte must be dropped
    dtype = ">u2" if bigendian else "<u2"
    step, payload = _pad_rows(wide.astype(dtype).view(np.uint8), 2)
    out = imaging.ros_image_to_rgb(encoding, 7, 10, step, payload, is_bigendian=bigendian)
    expect = rgb[:, :, :channels] if encoding != "bgr16" else rgb[:, :, :channels][:, :, ::-1]
    assert np.array_equal(out, np.broadcast_to(expect, out.shape) if channels == 1 else expect)


@pytest.mark.parametrize("encoding", ["yuv422", "uyvy", "yuv422_yuy2"])
def test_yuv422_decodes_grey_and_colour(encoding):
    # two pixels: white-ish grey (Y=235) and pure red in BT.601 limited range (Y=81, U=90, V=240)
    y0, y1, u, v = 235, 81, 128, 128
    red = (81, 90, 240)
    if encoding == "yuv422_yuy2":
        raw = bytes([y0, u, y0, v, red[0], red[1], red[0], red[2]])
    else:
        raw = bytes([u, y0, v, y0, red[1], red[0], red[2], red[0]])
    out = imaging.ros_image_to_rgb(encoding, 1, 4, 8, raw)
    assert np.array_equal(out[0, 0], [255, 255, 255]) and np.array_equal(out[0, 1], [255, 255, 255])
    assert abs(int(out[0, 2, 0]) - 255) <= 2 and out[0, 2, 1] <= 3 and out[0, 2, 2] <= 3
    del y1
    with pytest.raises(ImageError, match="even"):
        imaging.ros_image_to_rgb(encoding, 1, 3, 8, raw)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_rgb_to_ros_fields_round_trip(rgb, encoding):
    fields = imaging.rgb_to_ros_fields(rgb, encoding)
    assert set(fields) == {"height", "width", "encoding", "is_bigendian", "step", "data"}
    assert isinstance(fields["data"], bytes) and len(fields["data"]) == fields["height"] * fields["step"]
    back = imaging.ros_image_to_rgb(
        fields["encoding"],
        fields["height"],
        fields["width"],
        fields["step"],
        fields["data"],
        fields["is_bigendian"],
    )
    assert np.array_equal(back, rgb)


def test_rgb_to_mono8_is_luma():
    img = np.zeros((2, 2, 3), np.uint8)
    img[0, 0] = (255, 255, 255)
    img[1, 1] = (0, 255, 0)
    fields = imaging.rgb_to_ros_fields(img, "mono8")
    assert fields["step"] == 2
    assert list(fields["data"]) == [255, 0, 0, 150]


def test_label_fields_round_trip_mono8_and_mono16():
    small = np.random.default_rng(1).integers(0, 19, (5, 6), dtype=np.uint8)
    fields = imaging.labels_to_ros_fields(small, num_classes=19)
    assert fields["encoding"] == "mono8" and fields["step"] == 6
    back = imaging.ros_labels_to_array(fields["encoding"], 5, 6, fields["step"], fields["data"])
    assert back.dtype == np.uint8 and np.array_equal(back, small)
    many = np.arange(30, dtype=np.int32).reshape(5, 6) * 11  # values up to 319
    fields = imaging.labels_to_ros_fields(many, num_classes=320)
    assert fields["encoding"] == "mono16" and fields["step"] == 12
    back = imaging.ros_labels_to_array("16UC1", 5, 6, fields["step"], fields["data"])
    assert back.dtype == np.uint16 and np.array_equal(back, many)
    assert imaging.labels_to_ros_fields(many)["encoding"] == "mono16"  # inferred from the values
    step, payload = _pad_rows(many.astype(">u2").view(np.uint8), 4)
    assert np.array_equal(imaging.ros_labels_to_array("mono16", 5, 6, step, payload, True), many)
    with pytest.raises(ImageError, match="mono8"):
        imaging.labels_to_ros_fields(many, num_classes=19)
    with pytest.raises(ImageError, match="encoding"):
        imaging.ros_labels_to_array("rgb8", 5, 6, 18, bytes(90))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("bayer_rggb8", 2, 2, 2, bytes(4)), "encoding 'bayer_rggb8' is not supported"),
        (("rgb8", 0, 2, 6, b""), "height must be > 0"),
        (("rgb8", 2, 0, 0, b""), "width must be > 0"),
        (("rgb8", 2, 2, 5, bytes(10)), "step = 5 is smaller than width"),
        (("rgb8", 2, 2, 6, bytes(11)), "data has 11 bytes but height\\*step"),
        (("mono16", 2, 2, 3, bytes(6)), "step = 3"),
        (("rgb8", 2, 2, 6, "not bytes"), "bytes-like"),
        (("rgb8", 2.0, 2, 6, bytes(12)), "height must be an int"),
    ],
)
def test_malformed_images_raise_image_error(args, match):
    with pytest.raises(ImageError, match=match):
        imaging.ros_image_to_rgb(*args)


def test_8k_image_is_refused_before_allocating():
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="max_pixels"):
            imaging.ros_image_to_rgb("rgb8", 8192, 8192, 8192 * 3, b"")
        with pytest.raises(WireFormatError, match="max_pixels"):
            imaging.decode_labels(struct.pack("<4sB3xII", b"LBL1", 1, 8192, 8192) + b"\x00" * 32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    with pytest.raises(ImageError, match="max_pixels"):
        imaging.ros_image_to_rgb("mono8", 100, 100, 100, bytes(10_000), max_pixels=9_999)


def _smooth_image(height: int = 48, width: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=2).clip(0, 255).astype(np.uint8)


def test_jpeg_round_trip_and_garbage():
    img = _smooth_image()
    jpeg = imaging.encode_jpeg(img, quality=90)
    assert isinstance(jpeg, bytes) and jpeg[:2] == b"\xff\xd8"
    back = imaging.decode_jpeg(jpeg)
    assert back.shape == img.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - img).mean() < 3.0
    assert len(imaging.encode_jpeg(img, quality=10)) < len(jpeg)
    with pytest.raises(ImageError, match="not a JPEG"):
        imaging.decode_jpeg(b"GIF89a garbage bytes")
    with pytest.raises(ImageError, match="not a JPEG"):
        imaging.decode_jpeg(b"")
    with pytest.raises(ImageError):
        imaging.decode_jpeg(jpeg[:40])
    with pytest.raises(ImageError, match="quality"):
        imaging.encode_jpeg(img, quality=0)
    with pytest.raises(ImageError, match="uint8"):
        imaging.encode_jpeg(img.astype(np.float32))


def test_jpeg_claiming_8k_is_refused_before_decoding():
    jpeg = bytearray(imaging.encode_jpeg(_smooth_image(16, 16)))
    sof = jpeg.index(b"\xff\xc0")  # baseline frame header: marker, length, precision, height, width
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 8192, 8192)
    with pytest.raises(ImageError, match="max_pixels"):
        imaging.decode_jpeg(bytes(jpeg))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_label_codec_round_trip(dtype):
    labels = np.random.default_rng(2).integers(0, 200 if dtype != np.uint16 else 3000, (33, 47)).astype(dtype)
    blob = imaging.encode_labels(labels)
    assert blob[:4] == b"LBL1"
    back = imaging.decode_labels(blob, max_pixels=33 * 47)
    assert back.shape == (33, 47) and np.array_equal(back, labels)
    if dtype in (np.uint8, np.uint16, np.int32):
        assert back.dtype == dtype
    flat = np.zeros((480, 640), np.uint8)
    assert len(imaging.encode_labels(flat)) < 200  # compressed


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
        imaging.decode_labels(blob)


def test_label_payload_without_declared_size_is_bounded_and_class_range_checked():
    def unsized(raw: bytes) -> bytes:
        stream = zstandard.ZstdCompressor(write_content_size=False).compressobj()
        return stream.compress(raw) + stream.flush()

    bomb = unsized(bytes(range(20)) * 50_000)  # 1 MB behind a 4x5 header
    assert zstandard.frame_content_size(bomb) == -1
    with pytest.raises(WireFormatError, match="corrupt"):
        imaging.decode_labels(_labels_blob(body=bomb))
    with pytest.raises(WireFormatError, match="holds 10 bytes, expected 20"):
        imaging.decode_labels(_labels_blob(body=unsized(bytes(10))))
    assert imaging.decode_labels(_labels_blob(body=unsized(bytes(range(20))))).ravel().tolist() == list(
        range(20)
    )
    good = imaging.encode_labels(np.full((4, 5), 9, np.uint8))
    assert imaging.decode_labels(good, num_classes=10).max() == 9
    with pytest.raises(WireFormatError, match="outside"):
        imaging.decode_labels(good, num_classes=9)
    with pytest.raises(WireFormatError, match="bytes"):
        imaging.decode_labels("text")  # type: ignore[arg-type]


def test_resize_rgb_and_labels():
    img = _smooth_image(40, 60)
    small = imaging.resize_rgb(img, (20, 30))
    assert small.shape == (20, 30, 3) and small.dtype == np.uint8
    assert np.abs(small.astype(int) - img[::2, ::2]).max() <= 6  # smooth ramp stays a ramp
    flat = np.full((9, 13, 3), 77, np.uint8)
    assert (imaging.resize_rgb(flat, (31, 5)) == 77).all()
    labels = np.array([[1, 2], [3, 4]], np.uint8)
    up = imaging.resize_labels(labels, (4, 4))
    assert np.array_equal(up, np.repeat(np.repeat(labels, 2, 0), 2, 1))
    odd = imaging.resize_labels(np.random.default_rng(3).integers(0, 5, (17, 23)).astype(np.uint16), (7, 40))
    assert odd.shape == (7, 40) and odd.dtype == np.uint16 and set(np.unique(odd)) <= set(range(5))
    with pytest.raises(ImageError, match="height"):
        imaging.resize_labels(labels, (0, 3))


def test_palette_colorize_overlay():
    pal = imaging.palette(256)
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal.tolist()}) == 256
    assert int(pal[0].max()) <= 60 and all(int(c.max()) > 60 for c in pal[1:])
    assert np.array_equal(imaging.palette(16), imaging.palette(16)) and not np.array_equal(
        imaging.palette(16), imaging.palette(16, seed=1)
    )
    labels = np.array([[0, 1], [2, 255]], np.uint8)
    colour = imaging.colorize(labels, pal[:3])
    assert np.array_equal(colour[0, 1], pal[1]) and np.array_equal(colour[1, 1], [0, 0, 0])
    with pytest.raises(ImageError, match="palette has 3"):
        imaging.colorize(np.array([[3]], np.uint8), pal[:3])
    img = np.full((2, 2, 3), 200, np.uint8)
    assert np.array_equal(imaging.overlay(img, labels, pal[:3], alpha=0.0), img)
    assert np.array_equal(imaging.overlay(img, labels, pal[:3], alpha=1.0), colour)
    half = imaging.overlay(img, labels, pal[:3], alpha=0.5)
    assert np.abs(half.astype(int) - (img.astype(int) + colour) / 2).max() <= 1
    with pytest.raises(ImageError, match="differs"):
        imaging.overlay(img, np.zeros((3, 3), np.uint8), pal)
    with pytest.raises(ImageError, match="alpha"):
        imaging.overlay(img, labels, pal[:3], alpha=1.5)
