"""Tests of imaging: ROS Image fields <-> numpy and colouring of label maps."""

from __future__ import annotations

import array
import tracemalloc

import numpy as np
import pytest
from laecips_core.errors import ImageError

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
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    with pytest.raises(ImageError, match="max_pixels"):
        imaging.ros_image_to_rgb("mono8", 100, 100, 100, bytes(10_000), max_pixels=9_999)


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


def test_overlay_table_gives_the_float_blend_exactly():
    def blend(rgb: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
        colour = imaging.colorize(labels, colours).astype(np.float32)
        out = rgb.astype(np.float32) * (1.0 - alpha) + colour * alpha
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    rng = np.random.default_rng(5)
    for num_classes in (2, 19, 256, 300):
        colours = rng.integers(0, 256, (num_classes, 3), dtype=np.uint8)
        for alpha in (0.0, 0.3, 0.5, 1.0):
            rgb = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
            labels = rng.integers(0, num_classes, (23, 31)).astype(np.uint16)
            if num_classes < 255:
                labels[0, 0] = 255  # the ignore label: drawn black
            np.testing.assert_array_equal(
                imaging.overlay(rgb, labels, colours, alpha), blend(rgb, labels, colours, alpha)
            )
    with pytest.raises(ImageError, match="palette has 19 colours"):
        imaging.overlay(rgb, np.full((23, 31), 20, np.uint8), imaging.palette(19))
