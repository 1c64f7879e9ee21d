"""transport.wire: InferRequest/InferReply round trips and strict validation; no Zenoh import."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from laecips_core.errors import WireFormatError
from laecips_core.image_arrays import MAX_IMAGE_PIXELS
from laecips_core.transport import (
    InferReply,
    InferRequest,
    ModelAnnouncement,
)
from transport_helpers import _DROP, H, M, W, _header, _labels, _request

# ------------------------------------------------------------------------------------ request


def test_request_round_trip_and_image_decode():
    request = _request()
    payload, attachment = request.encode()
    header = json.loads(attachment)
    assert header["v"] == 1 and header["encoding"] == "jpeg" and header["frame_id"] == 7
    decoded = InferRequest.decode(payload, attachment)
    assert decoded == request
    rgb = decoded.rgb()
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize(
    ("attachment", "match"),
    [
        (None, "no attachment"),
        (b"", "no attachment"),
        (b"\xff\xfe garbage", "not UTF-8 JSON"),
        (b"not json", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b"x" * 9000, "bytes, more than"),
        (_header(v=2), "wire version 2"),
        (_header(v=_DROP), "wire version None"),
        (_header(encoding="png"), "encoding 'png'"),
        (_header(width=-160), "outside"),
        (_header(height=0), "outside"),
        (_header(frame_id=-1), "outside"),
        (_header(width=True), "must be an integer"),
        (_header(width="160"), "must be an integer"),
        (_header(num_classes=0), "outside"),
        (_header(stamp=float("nan")), "finite"),
        (_header(robot_id="a/b"), "robot id"),
        (_header(model_version=_DROP), "must be an integer"),
        (_header(width=8192, height=8193), "MAX_IMAGE_PIXELS"),
    ],
)
def test_request_decode_rejects_malformed_headers(attachment, match):
    payload, _ = _request().encode()
    with pytest.raises(WireFormatError, match=match):
        InferRequest.decode(payload, attachment)


def test_request_decode_rejects_bad_payloads():
    payload, attachment = _request().encode()
    with pytest.raises(WireFormatError, match="empty payload"):
        InferRequest.decode(b"", attachment)
    with pytest.raises(WireFormatError, match="more than max_bytes"):
        InferRequest.decode(payload, attachment, max_bytes=len(payload) - 1)
    with pytest.raises(WireFormatError, match="SOI"):
        InferRequest.decode(b"GIF89a" + payload, attachment)
    lying = InferRequest.decode(payload, _header(width=W * 2))
    with pytest.raises(WireFormatError, match="header says"):
        lying.rgb()
    broken = InferRequest.decode(payload[:40], attachment)
    with pytest.raises(WireFormatError, match="JPEG"):
        broken.rgb()


def test_oversized_image_is_refused_before_decoding():
    assert 8192 * 8192 > MAX_IMAGE_PIXELS
    big = _request(width=8192, height=8192)
    with pytest.raises(WireFormatError, match="MAX_IMAGE_PIXELS"):
        big.encode()


# ------------------------------------------------------------------------------------ reply


def test_reply_round_trip_uint8_and_uint16():
    for dtype, classes in ((np.uint8, M), (np.uint16, 1000)):
        labels = _labels(dtype, classes)
        reply = InferReply("ok", "", 7, 3, 12, 0.5, 0.01, 0.6, labels)
        payload, attachment = reply.encode()
        back = InferReply.decode(payload, attachment, expected_shape=(H, W), num_classes=classes)
        assert back.ok and back.labels is not None
        assert back.labels.dtype == dtype
        np.testing.assert_array_equal(back.labels, labels)
        assert (back.frame_id, back.model_version, back.num_masks) == (7, 3, 12)
        assert back.lvm_s == pytest.approx(0.5)


def test_error_reply_round_trip_has_no_labels():
    payload, attachment = InferReply("error", "bad jpeg", 4).encode()
    assert payload == b""
    back = InferReply.decode(payload, attachment)
    assert back.status == "error" and back.error == "bad jpeg" and back.labels is None and not back.ok


def test_lying_cloud_is_rejected():
    good = InferReply("ok", "", 7, 3, 2, 0.1, 0.1, 0.2, _labels())
    payload, attachment = good.encode()
    with pytest.raises(WireFormatError, match="out of range"):
        InferReply.decode(payload, attachment, expected_shape=(H, W), num_classes=3)
    with pytest.raises(WireFormatError, match="shape|max_pixels"):
        InferReply.decode(payload, attachment, expected_shape=(H, W + 1), num_classes=M)
    with pytest.raises(WireFormatError, match="shape|max_pixels"):
        InferReply.decode(payload, attachment, expected_shape=(H - 1, W), num_classes=M)
    with pytest.raises(WireFormatError, match="cannot be decoded"):
        InferReply.decode(b"\x00" * 40, attachment, expected_shape=(H, W))
    with pytest.raises(WireFormatError, match="no labels"):
        InferReply.decode(b"", attachment)
    header = json.loads(attachment)
    for key, value, match in (
        ("status", "great", "status"),
        ("lvm_s", -1.0, "below"),
        ("num_masks", -3, "outside"),
        ("error", 5, "string"),
        ("v", 0, "wire version"),
    ):
        bad = dict(header, **{key: value})
        with pytest.raises(WireFormatError, match=match):
            InferReply.decode(payload, json.dumps(bad).encode(), expected_shape=(H, W))
    with pytest.raises(WireFormatError, match="cannot be sent"):
        InferReply("timeout").encode()
    with pytest.raises(WireFormatError, match="labels"):
        InferReply("ok", labels=np.zeros((2, 2, 3), np.uint8)).encode()


def test_parsers_turn_deep_nesting_and_bad_text_into_wire_format_errors():
    payload, _ = _request().encode()
    deep = b"[" * 8000  # under MAX_ATTACHMENT_BYTES: json recurses once per "[" and gives up
    for decode in (
        lambda a: InferRequest.decode(payload, a),
        lambda a: InferReply.decode(b"", a),
        ModelAnnouncement.from_json,
    ):
        with pytest.raises(WireFormatError, match="nested too deeply"):
            decode(deep)
    with pytest.raises(WireFormatError, match="UTF-8"):
        ModelAnnouncement.from_json(b"\xff\xfe{}")
    with pytest.raises(WireFormatError, match="UTF-8"):
        ModelAnnouncement.from_json("\ud800")  # a lone surrogate cannot be encoded


def test_error_and_ok_replies_carry_the_payload_size_as_received():
    labels = _labels()
    payload, attachment = InferReply("ok", frame_id=3, labels=labels).encode()
    decoded = InferReply.decode(payload, attachment, expected_shape=(H, W), num_classes=M)
    assert decoded.payload_bytes == len(payload) > 0
    assert InferReply("ok", frame_id=3, labels=labels, payload_bytes=999).encode() == (payload, attachment)
    err_payload, err_attachment = InferReply("error", "busy", 3).encode()
    assert InferReply.decode(b"xyz", err_attachment).payload_bytes == 3 and err_payload == b""


def test_wire_imports_without_zenoh():
    """The schema is usable where Zenoh is not: importing it (and keys) must not import zenoh."""
    code = (
        "import sys\n"
        "from laecips_core.transport import wire, keys\n"
        "wire.InferReply.decode(*wire.InferReply('error', 'x', 1).encode())\n"
        "assert keys.infer_key('r1') == 'laecips/r1/infer'\n"
        "print(sorted(m for m in sys.modules if m == 'zenoh' or m.startswith('zenoh.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
