"""transport.announcement: the announcement schema and its signature over every field."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from laecips_core.errors import WeightsError, WireFormatError
from laecips_core.files import sha256_bytes
from laecips_core.storage.signing import generate_keypair, sign_digest
from laecips_core.transport import (
    ModelAnnouncement,
    sign_announcement,
    verify_announcement,
    weights_key,
)
from transport_helpers import M, _announcement


def test_announcement_json_round_trip_and_validation():
    ann = _announcement(b"bundle")
    assert ModelAnnouncement.from_json(ann.to_json()) == ann
    for change, match in (
        ({"sha256": "abc"}, "sha256"),
        ({"signature": "not base64!"}, "base64"),
        ({"num_classes": 0}, "outside"),
        ({"uri": "http://evil/x"}, "uri"),
        ({"model_name": ""}, "model_name"),
    ):
        with pytest.raises(WireFormatError, match=match):
            ModelAnnouncement.from_json(json.dumps({"v": 1, **{**json.loads(ann.to_json()), **change}}))
    with pytest.raises(WireFormatError):
        ModelAnnouncement.from_json(b"\x00garbage")


def test_announcement_signature_covers_every_field(tmp_path):
    priv, pub = generate_keypair(tmp_path / "keys")
    other_priv, _ = generate_keypair(tmp_path / "keys", name="other")
    ann = sign_announcement(_announcement(b"bundle", 3, signature=""), "robot1", priv)
    assert ann.uri == "zenoh:" + weights_key("robot1", 3)  # what is signed is what goes on the wire
    verify_announcement(ann, "robot1", pub)
    verify_announcement(ModelAnnouncement.from_json(ann.to_json()), "robot1", pub)  # survives the wire
    verify_announcement(replace(ann, uri=""), "robot1", pub)  # "" names the same key
    for change in (
        {"version": 4},
        {"uri": "file:///dev/zero"},
        {"uri": "zenoh:" + weights_key("robot1", 4)},
        {"model_name": "lraspp_mobilenetv3"},
        {"num_classes": M + 1},
        {"stamp": 2.5},
        {"signer": "someone"},
        {"sha256": sha256_bytes(b"other bundle")},
    ):
        with pytest.raises(WeightsError, match="does not cover these fields"):
            verify_announcement(replace(ann, **change), "robot1", pub)  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match=r"does not cover these fields \(robot 'robot2'"):
        verify_announcement(ann, "robot2", pub)
    with pytest.raises(WeightsError, match="another key"):
        verify_announcement(sign_announcement(ann, "robot1", other_priv), "robot1", pub)
    with pytest.raises(WeightsError, match="sha256 only"):  # the old trainer's signature
        verify_announcement(replace(ann, signature=sign_digest(priv, ann.sha256)), "robot1", pub)
    with pytest.raises(WeightsError, match="unsigned"):
        verify_announcement(replace(ann, signature=""), "robot1", pub)
