"""Property-based fuzzing (hypothesis) of every decoder that reads bytes from the wire or from disk.

Each case must end in a valid result (checked: shapes, dtypes, ranges) or in the project's own error
class (LaecipsError and its subclasses); anything else -- RecursionError, UnicodeDecodeError, TypeError,
a numpy or zstd error, a hang -- fails the test. Cases are counted per decoder and printed at the end of
the module (``fuzz cases per decoder``). Bounded: max_examples per test, a per-example deadline far above
the normal cost (it only catches hangs), pytest-timeout per test.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
import zenoh
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from laecips_core.algo import state
from laecips_core.errors import LaecipsError
from laecips_core.storage import bundle_loading, signing, weights
from laecips_core.storage.replay import ReplayBuffer

from laecips_core import image_codecs, imaging, transport

T = TypeVar("T")

# Per-test bounds: examples (cases) and a per-example deadline that only a hang reaches.
FUZZ = settings(
    max_examples=400,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FUZZ_SMALL = settings(FUZZ, max_examples=150)

COUNTS: dict[str, Counter[str]] = {}


@pytest.fixture(scope="module", autouse=True)
def report_counts(pytestconfig: pytest.Config) -> Iterator[None]:
    """Print the cases fuzzed per decoder (valid results / project errors) when the module ends."""
    yield
    total = sum(sum(c.values()) for c in COUNTS.values())
    lines = [f"fuzz cases per decoder ({total} in all):"]
    lines += [
        f"  {name}: {sum(c.values())} (valid {c['valid']}, project error {c['error']})"
        for name, c in sorted(COUNTS.items())
    ]
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown in the normal output, not only on failure
            reporter.write_line("\n" + "\n".join(lines))


def outcome(name: str, call: Callable[[], T]) -> T | None:
    """Run one decoder call: its result, or None when it raised a LaecipsError; anything else escapes."""
    counter = COUNTS.setdefault(name, Counter())
    try:
        result = call()
    except LaecipsError:
        counter["error"] += 1
        return None
    counter["valid"] += 1
    return result


# ------------------------------------------------------------------------------------------ strategies

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """Byte-level mutations of a valid encoding: overwrites, truncation, insertions, appended junk."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(valid)
        for _ in range(draw(st.integers(0, 8))):
            if not data:
                break
            pos = draw(st.integers(0, len(data) - 1))
            kind = draw(st.sampled_from(["set", "flip", "insert", "delete"]))
            if kind == "set":
                data[pos] = draw(st.integers(0, 255))
            elif kind == "flip":
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif kind == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
            else:
                del data[pos : pos + draw(st.integers(1, 16))]
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
        return bytes(data) + draw(st.binary(max_size=8))

    return build()


def near(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same JSON type as `value` (edge cases of its range included)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-2, 70) | st.sampled_from([2**31, 2**32, 2**63, -(2**63), 10**30])
    if isinstance(value, float):
        return st.floats(allow_nan=True, allow_infinity=True)
    if isinstance(value, str):
        return st.text(max_size=80) | st.sampled_from(["r1", "ok", "error", "jpeg", "", "a" * 5000])
    return JSON_VALUES


def mutated_header(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """A valid JSON header with some fields replaced by any JSON value, some removed, some added."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        header = dict(valid)
        keys = sorted(header)
        for key in draw(st.sets(st.sampled_from(keys), max_size=3)):
            header[key] = draw(near(header[key]) | JSON_VALUES)
        for key in draw(st.sets(st.sampled_from(keys), max_size=2)):
            header.pop(key, None)
        header.update(draw(st.dictionaries(st.text(max_size=6), JSON_SCALARS, max_size=2)))
        return json.dumps(header).encode("utf-8")

    return build()


def any_header(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Attachments a peer could send: mutated valid headers, any JSON, byte mutations, raw bytes."""
    text = json.dumps(valid).encode()
    nested = st.builds(
        lambda depth, opener: opener * depth, st.integers(1, 3000), st.sampled_from([b"[", b'{"a":'])
    )
    return st.one_of(
        mutated_header(valid),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        mutated(text),
        st.binary(max_size=64),
        nested,
    )


# -------------------------------------------------------------------------------------------- images

ENCODINGS = [*imaging.SUPPORTED_ENCODINGS, "RGB8", "8UC3", "bogus", ""]


BYTES_PER_PIXEL = {"mono8": 1, "8uc1": 1, "mono16": 2, "16uc1": 2, "yuv422": 2, "uyvy": 2, "yuyv": 2,
                   "yuv422_yuy2": 2, "rgba8": 4, "bgra8": 4, "8uc4": 4, "rgb16": 6, "bgr16": 6, "16uc3": 6,
                   "rgba16": 8, "bgra16": 8}  # fmt: skip


@st.composite
def image_fields(draw: st.DrawFn, encodings: list[str]) -> tuple[str, int, int, int, bytes]:
    """(encoding, height, width, step, data): mostly near-consistent geometry, sometimes anything."""
    encoding = draw(st.sampled_from(encodings))
    if draw(st.integers(0, 3)) == 0:  # anything, huge and negative sizes included
        height = draw(st.integers(-2, 12) | st.sampled_from([2**31, 2**40]))
        width = draw(st.integers(-2, 12) | st.sampled_from([2**31, 2**40]))
        step = draw(st.integers(-4, 100) | st.sampled_from([2**33]))
        return encoding, height, width, step, draw(st.binary(max_size=1200))
    height, width = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    step = width * BYTES_PER_PIXEL.get(encoding.lower(), 3) + draw(st.integers(-2, 5))
    size = max(0, height * step + draw(st.integers(-3, 3)))
    return encoding, height, width, step, draw(st.binary(min_size=size, max_size=size))


@FUZZ
@given(fields=image_fields(ENCODINGS), bigendian=st.booleans())
def test_fuzz_ros_image_to_rgb(fields, bigendian):
    encoding, height, width, step, data = fields
    rgb = outcome(
        "imaging.ros_image_to_rgb",
        lambda: imaging.ros_image_to_rgb(encoding, height, width, step, data, bigendian, max_pixels=4096),
    )
    if rgb is not None:
        assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous


@FUZZ
@given(fields=image_fields(["mono8", "8UC1", "mono16", "16UC1", "rgb8", "bogus"]), bigendian=st.booleans())
def test_fuzz_ros_labels_to_array(fields, bigendian):
    encoding, height, width, step, data = fields
    labels = outcome(
        "imaging.ros_labels_to_array",
        lambda: imaging.ros_labels_to_array(encoding, height, width, step, data, bigendian, max_pixels=4096),
    )
    if labels is not None:
        assert labels.shape == (height, width) and labels.dtype in (np.uint8, np.uint16)


VALID_JPEG = image_codecs.encode_jpeg(
    np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8), quality=80
)


@FUZZ
@given(
    data=st.one_of(
        mutated(VALID_JPEG), st.binary(max_size=200), st.binary(max_size=64).map(lambda b: b"\xff\xd8" + b)
    )
)
def test_fuzz_decode_jpeg_compressed_image(data):
    """CompressedImage (jpeg) from the camera and the JPEG of every cloud request."""
    rgb = outcome("image_codecs.decode_jpeg", lambda: image_codecs.decode_jpeg(data, max_pixels=64 * 64))
    if rgb is not None:
        assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
        assert rgb.shape[0] * rgb.shape[1] <= 64 * 64


VALID_LABELS = image_codecs.encode_labels(np.arange(48, dtype=np.uint8).reshape(6, 8) % 5)


@st.composite
def label_payloads(draw: st.DrawFn) -> bytes:
    """A LBL1 header with any fields and a zstd body of any length, or a mutated/raw payload."""
    kind = draw(st.sampled_from(["forged", "mutated", "raw"]))
    if kind == "mutated":
        return draw(mutated(VALID_LABELS))
    if kind == "raw":
        return draw(st.binary(max_size=100))
    code = draw(st.sampled_from([1, 1, 2, 4, 0, 3, 255]))
    height, width = draw(st.integers(0, 40)), draw(st.integers(0, 40))
    magic = draw(st.sampled_from([image_codecs.LABELS_MAGIC, b"LBL2"]))
    itemsize = {1: 1, 2: 2, 4: 4}.get(code, 1)
    if draw(st.booleans()):  # a body of the declared size, or off by a little
        size = max(0, height * width * itemsize + draw(st.sampled_from([0, 0, 0, -1, 1])))
        raw = draw(st.binary(min_size=size, max_size=size))
    else:
        raw = draw(st.binary(max_size=300))
    body = zstandard.ZstdCompressor().compress(raw) if draw(st.integers(0, 3)) else raw
    return struct.pack("<4sB3xII", magic, code, height, width) + body


@FUZZ
@given(data=label_payloads(), num_classes=st.none() | st.integers(1, 300))
def test_fuzz_decode_labels(data, num_classes):
    labels = outcome(
        "image_codecs.decode_labels",
        lambda: image_codecs.decode_labels(data, max_pixels=4096, num_classes=num_classes),
    )
    if labels is not None:
        assert labels.ndim == 2 and 0 < labels.size <= 4096
        if num_classes is not None:
            assert int(labels.min()) >= 0 and int(labels.max()) < num_classes


# -------------------------------------------------------------------------------- requests, replies

REQUEST = transport.InferRequest(
    robot_id="r1", frame_id=3, stamp=1.5, model_version=2, num_classes=5, width=24, height=16, jpeg=VALID_JPEG
)
REQUEST_PAYLOAD, REQUEST_ATTACHMENT = REQUEST.encode()


@FUZZ
@given(
    attachment=st.none() | any_header(json.loads(REQUEST_ATTACHMENT)),
    payload=st.one_of(st.just(REQUEST_PAYLOAD), mutated(REQUEST_PAYLOAD), st.binary(max_size=64), st.none()),
)
def test_fuzz_infer_request_decode_and_jpeg(attachment, payload):
    """What the cloud reads from a query: the JSON header, then the JPEG it describes."""
    request = outcome(
        "transport.InferRequest.decode",
        lambda: transport.InferRequest.decode(payload, attachment, max_bytes=4096),
    )
    if request is None:
        return
    assert transport.validate_robot_id(request.robot_id) and request.num_classes >= 1
    rgb = outcome("transport.InferRequest.rgb", request.rgb)
    if rgb is not None:
        assert rgb.shape == (request.height, request.width, 3)


LABELS = (np.arange(16 * 24, dtype=np.uint8).reshape(16, 24) % 5).astype(np.uint8)
REPLY_PAYLOAD, REPLY_ATTACHMENT = transport.InferReply(
    status="ok",
    frame_id=3,
    model_version=2,
    num_masks=4,
    lvm_s=0.1,
    fusion_s=0.01,
    cloud_s=0.2,
    labels=LABELS,
).encode()


@FUZZ
@given(
    attachment=st.none() | any_header(json.loads(REPLY_ATTACHMENT)),
    payload=st.one_of(st.just(REPLY_PAYLOAD), mutated(REPLY_PAYLOAD), label_payloads(), st.none()),
    num_classes=st.sampled_from([None, 1, 5, 300]),
)
def test_fuzz_infer_reply_decode(attachment, payload, num_classes):
    """What the edge reads from the cloud: header and label map, against the request's shape and M."""
    reply = outcome(
        "transport.InferReply.decode",
        lambda: transport.InferReply.decode(
            payload, attachment, expected_shape=(16, 24), num_classes=num_classes
        ),
    )
    if reply is None:
        return
    assert reply.status in transport.WIRE_STATUSES
    if reply.status == transport.STATUS_OK:
        assert reply.labels is not None and reply.labels.shape == (16, 24)
        assert num_classes is None or int(reply.labels.max()) < num_classes


@FUZZ_SMALL
@given(payload=st.binary(max_size=300))
def test_fuzz_error_reply_text(payload):
    """An error reply's bytes are decoded with replacement, never raised on (not UTF-8, huge...)."""
    text = outcome("transport.error_text", lambda: transport.error_text(zenoh.ZBytes(payload), 100))
    assert text is not None and len(text) <= 100


# ------------------------------------------------------------------------------------- announcements

ANNOUNCEMENT = {
    "v": 1,
    "version": 7,
    "sha256": "ab" * 32,
    "uri": "zenoh:laecips/r1/model/weights/7",
    "signer": "trainer",
    "signature": base64.b64encode(bytes(64)).decode(),
    "model_name": "tiny_fcn",
    "num_classes": 16,
    "stamp": 1.7e9,
}


@FUZZ
@given(text=any_header(ANNOUNCEMENT) | st.text(max_size=80))
def test_fuzz_model_announcement_from_json(text):
    announcement = outcome(
        "transport.ModelAnnouncement.from_json", lambda: transport.ModelAnnouncement.from_json(text)
    )
    if announcement is None:
        return
    assert 0 <= announcement.version < 2**32 and len(announcement.sha256) == 64
    assert announcement.uri == "" or announcement.uri.startswith(("zenoh:", "file://"))
    # What the receivers do next must end in a WeightsError at worst, never in another exception.
    statement = outcome("transport.ModelAnnouncement.statement", lambda: announcement.statement("r1"))
    assert statement is not None
    outcome("transport.ModelAnnouncement.signature_record", lambda: announcement.signature_record("r1"))


@FUZZ_SMALL
@given(
    text=any_header(
        {"format": "laecips-signed-announcement/1", "statement": {"robot_id": "r1"}, "signature": "x"}
    )
)
def test_fuzz_signature_record(text):
    """The .sig sidecar beside a stored bundle (read back from disk on every load)."""
    parsed = outcome(
        "signing.parse_signature_record",
        lambda: signing.parse_signature_record(text.decode("utf-8", "replace")),
    )
    if parsed is not None:
        fields, signature = parsed
        assert set(fields) == set(signing.STATEMENT_FIELDS) and isinstance(signature, str)


# ------------------------------------------------------------------------------------------ weights

VALID_BUNDLE = weights.serialize_bundle(
    {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)},
    {"b": torch.zeros(2)},
    {"model_name": "tiny_fcn", "num_classes": 16, "version": 3},
)


def _check_bundle(bundle: state.Bundle) -> None:
    assert bundle.f_state and isinstance(bundle.model_name, str)
    assert bundle.version >= 0 and bundle.num_classes >= 0  # the properties receivers use next


@FUZZ
@given(data=mutated(VALID_BUNDLE))
def test_fuzz_parse_bundle_bytes(data):
    bundle = outcome("bundle_loading.parse_bundle (mutated)", lambda: bundle_loading.parse_bundle(data))
    if bundle is not None:
        _check_bundle(bundle)


DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=6000)
METADATA_VALUES = st.one_of(st.text(max_size=12), DIGITS, JSON_VALUES)


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    """An 8-byte size, a forged JSON header (tensor entries and __metadata__) and any tail."""
    header: dict[str, Any] = {}
    if draw(st.booleans()):  # one consistent f tensor, so the metadata checks are reached
        header["f.w"] = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["f.w", "h.b", "x", "f.", ""]) | st.text(max_size=6))
        header[name] = {
            "dtype": draw(st.sampled_from(["F32", "F16", "I64", "U8", "BOOL", "XX"]) | JSON_SCALARS),
            "shape": draw(st.lists(st.integers(-1, 2**40), max_size=3) | JSON_VALUES),
            "data_offsets": draw(st.lists(st.integers(-1, 2**40), max_size=3) | JSON_VALUES),
        }
    meta = {"format": weights.BUNDLE_FORMAT, "model_name": "tiny_fcn", "num_classes": "16", "version": "3"}
    for key in draw(st.sets(st.sampled_from(sorted(meta)), max_size=2)):
        meta[key] = draw(METADATA_VALUES)
    header["__metadata__"] = meta if draw(st.integers(0, 3)) else draw(JSON_VALUES)
    text = json.dumps(header).encode()
    size = len(text) if draw(st.integers(0, 3)) else draw(st.integers(0, 2**64 - 1))
    tail = bytes(24) if "f.w" in header and draw(st.booleans()) else draw(st.binary(max_size=64))
    return struct.pack("<Q", size) + text + tail


@FUZZ
@given(data=safetensors_files())
def test_fuzz_parse_bundle_forged_header(data):
    """The safetensors header and its metadata as a lying trainer or a corrupt disk could hold them."""
    bundle = outcome("bundle_loading.parse_bundle (forged header)", lambda: bundle_loading.parse_bundle(data))
    if bundle is not None:
        _check_bundle(bundle)


@FUZZ
@given(
    meta=st.fixed_dictionaries(
        {},
        optional={
            "format": st.sampled_from([weights.BUNDLE_FORMAT, "other"]) | st.text(max_size=5),
            "model_name": st.text(max_size=10),
            "num_classes": DIGITS | st.text(max_size=5) | st.sampled_from(["\u0663", "-1", " 4", "1e3"]),
            "version": DIGITS | st.text(max_size=5) | st.sampled_from(["\u0663", "-1", "0x10", "٣٣"]),
            "class_names": st.text(max_size=20),
        },
    )
)
def test_fuzz_bundle_metadata(meta):
    """Any string metadata in an otherwise well-formed safetensors file (huge digit strings included)."""
    from safetensors.torch import save

    data = save({"f.w": torch.zeros(2), "h.b": torch.ones(1)}, metadata=meta)
    bundle = outcome("bundle_loading.parse_bundle (metadata)", lambda: bundle_loading.parse_bundle(data))
    if bundle is not None:
        _check_bundle(bundle)


@FUZZ_SMALL
@given(depth=st.integers(1, 200_000), opener=st.sampled_from([b"[", b'{"a":']))
def test_fuzz_safetensors_header_nested_deeply(depth, opener):
    text = b'{"__metadata__":' + opener * depth
    data = struct.pack("<Q", len(text)) + text
    nested = outcome("bundle_loading.parse_bundle (nested header)", lambda: bundle_loading.parse_bundle(data))
    assert nested is None


# ------------------------------------------------------------------------------------------- replay

REPLAY_COLUMNS = (
    "timestamp", "task_id", "robot_id", "model_version", "height", "width", "image", "image_crc",
    "labels_dtype", "labels", "labels_crc", "summary", "masks_count", "masks",
)  # fmt: skip


def _valid_row() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8).tobytes()
    labels = rng.integers(0, 3, (4, 5), dtype=np.uint8).tobytes()
    masks = np.packbits(rng.integers(0, 2, (2, 4, 5)).astype(bool)).tobytes()
    zc = zstandard.ZstdCompressor()
    return {
        "timestamp": 1.0, "task_id": 1, "robot_id": "r1", "model_version": 0, "height": 4, "width": 5,
        "image": zc.compress(image), "image_crc": zlib.crc32(image), "labels_dtype": "uint8",
        "labels": zc.compress(labels), "labels_crc": zlib.crc32(labels),
        "summary": np.ones(3, np.float32).tobytes(), "masks_count": 2, "masks": zc.compress(masks),
    }  # fmt: skip


VALID_ROW = _valid_row()
SQL_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.binary(max_size=40),
)


@st.composite
def replay_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A stored row with some columns replaced by any SQLite value (a column has no fixed type there)."""
    row = dict(VALID_ROW)
    for column in draw(st.sets(st.sampled_from(REPLAY_COLUMNS), min_size=1, max_size=4)):
        value = draw(SQL_VALUES | mutated(row[column]) if isinstance(row[column], bytes) else SQL_VALUES)
        row[column] = value
    return row


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A replay buffer file with the project's schema (written by ReplayBuffer itself)."""
    path = tmp_path_factory.mktemp("fuzz_replay") / "buffer.sqlite"
    with ReplayBuffer(path, maxsize=10) as buffer:
        buffer.append(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5), np.uint8))
        buffer.clear()
    return path


@FUZZ
@given(row=replay_rows())
def test_fuzz_replay_rows(replay_file, row):
    """Rows of a replay file written by another (buggy, old or hostile) process are read back safely."""
    raw = sqlite3.connect(replay_file, isolation_level=None)
    try:
        raw.execute("DELETE FROM samples")
        try:
            marks = ", ".join("?" * len(REPLAY_COLUMNS))
            raw.execute(
                f"INSERT INTO samples ({', '.join(REPLAY_COLUMNS)}) VALUES ({marks})",
                tuple(row[c] for c in REPLAY_COLUMNS),
            )
        except sqlite3.IntegrityError:  # NOT NULL: such a row cannot be in the file either
            return
    finally:
        raw.close()
    with ReplayBuffer(replay_file, maxsize=10) as buffer:
        samples = outcome("replay.ReplayBuffer.samples (rows)", buffer.samples)
    if samples is not None:
        (sample,) = samples
        h, w = sample.image.shape[:2]
        assert sample.image.dtype == np.uint8 and sample.labels.shape == (h, w)
        assert sample.masks is None or sample.masks.shape[1:] == (h, w)


@pytest.fixture(scope="module")
def replay_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small, checkpointed replay file holding two samples."""
    path = tmp_path_factory.mktemp("fuzz_replay_file") / "buffer.sqlite"
    rng = np.random.default_rng(2)
    with ReplayBuffer(path, maxsize=10) as buffer:
        for _ in range(2):
            buffer.append(
                rng.integers(0, 256, (6, 7, 3), dtype=np.uint8),
                rng.integers(0, 4, (6, 7), dtype=np.uint8),
                masks=rng.integers(0, 2, (3, 6, 7)).astype(bool),
                logits_summary=np.ones(4, np.float32),
            )
        buffer._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


DAMAGE = st.lists(
    st.tuples(st.floats(0.0, 1.0), st.sampled_from(["set", "flip", "zero-run"]), st.integers(0, 255)),
    min_size=1,
    max_size=12,
)


def damage(data: bytes, ops: list[tuple[float, str, int]], keep: float) -> bytes:
    """Apply (relative position, kind, value) byte damage, then keep the first `keep` share of the file."""
    out = bytearray(data)
    for where, kind, value in ops:
        pos = min(len(out) - 1, int(where * len(out)))
        if kind == "set":
            out[pos] = value
        elif kind == "flip":
            out[pos] ^= 1 << (value % 8)
        else:
            out[pos : pos + value] = bytes(len(out[pos : pos + value]))
    return bytes(out[: max(1, int(keep * len(out)))])


@FUZZ_SMALL
@given(ops=DAMAGE, keep=st.sampled_from([1.0, 1.0, 1.0, 0.9, 0.5, 0.1]))
def test_fuzz_replay_file_bytes(replay_bytes, tmp_path, ops, keep):
    """A replay file damaged on disk (bit flips, zeroed runs, truncation) opens and reads, or ReplayError."""
    damaged = damage(replay_bytes, ops, keep)
    path = tmp_path / f"damaged_{time.monotonic_ns()}.sqlite"
    path.write_bytes(damaged)
    try:
        buffer = outcome("replay.ReplayBuffer (damaged file)", lambda: ReplayBuffer(path, maxsize=10))
        if buffer is None:
            return
        with buffer:
            samples = outcome("replay.ReplayBuffer.samples (damaged file)", buffer.samples)
            if samples is not None:
                for sample in samples:
                    assert sample.image.ndim == 3 and sample.labels.shape == sample.image.shape[:2]
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
