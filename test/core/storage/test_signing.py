"""Tests of Ed25519 keys, digest signatures, signed announcement records and .sig sidecars."""

from __future__ import annotations

import pytest
from laecips_core.errors import WeightsError
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.signing import (
    generate_keypair,
    read_signature,
    sign_digest,
    verify_digest,
    write_signature,
)
from laecips_core.storage.weights import save_bundle
from torch import nn
from weights_helpers import built_h, bundle_meta, tiny_f


@pytest.fixture
def h_net() -> nn.Module:
    return built_h()


def test_signature_sidecar_round_trip(tmp_path, h_net):
    priv, pub = generate_keypair(tmp_path / "keys")
    path = tmp_path / "b.safetensors"
    assert read_signature(path) is None  # no sidecar yet
    signature = sign_digest(priv, save_bundle(path, tiny_f(), h_net, bundle_meta()))
    sidecar = write_signature(path, signature)
    assert sidecar == tmp_path / "b.safetensors.sig" and read_signature(path) == signature
    load_bundle(path, public_key=pub, signature=read_signature(path))
    sidecar.write_bytes(b"\xff\xfe")  # not ASCII: treated as missing, so a trusted key refuses the bundle
    assert read_signature(path) is None


def test_signatures_verify_and_reject(tmp_path, h_net):
    priv, pub = generate_keypair(tmp_path / "keys")
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    other_priv, other_pub = generate_keypair(tmp_path / "keys", name="intruder")
    path = tmp_path / "b.safetensors"
    digest = save_bundle(path, tiny_f(), h_net, bundle_meta())
    signature = sign_digest(priv, digest)
    verify_digest(pub, digest, signature)
    bundle = load_bundle(path, expected_sha256=digest, public_key=pub, signature=signature)
    assert bundle.version == 3
    # PEM bytes work as well as paths.
    load_bundle(path, public_key=pub.read_bytes(), signature=signature)
    with pytest.raises(WeightsError, match="does not verify"):
        load_bundle(path, public_key=pub, signature=sign_digest(other_priv, digest))
    with pytest.raises(WeightsError, match="does not verify"):
        load_bundle(path, public_key=other_pub, signature=signature)
    with pytest.raises(WeightsError, match="does not verify"):
        verify_digest(pub, "0" * 64, signature)
    with pytest.raises(WeightsError, match="base64"):
        load_bundle(path, public_key=pub, signature="not base64!")
    with pytest.raises(WeightsError, match="both"):
        load_bundle(path, public_key=pub)
    with pytest.raises(WeightsError, match="exists"):
        generate_keypair(tmp_path / "keys")


def test_signed_announcement_record_reverifies_the_file(tmp_path, h_net):
    from laecips_core.storage import signing

    priv, pub = generate_keypair(tmp_path / "keys")
    path = tmp_path / "v3.safetensors"
    digest = save_bundle(path, tiny_f(), h_net, bundle_meta(version=3))
    fields = {"robot_id": "r1", "version": 3, "model_name": "tiny_fcn", "num_classes": 5,
              "uri": "zenoh:laecips/r1/model/weights/3", "sha256": digest, "stamp": 1.5,
              "signer": "t"}  # fmt: skip

    def sign(statement: dict[str, object]) -> str:
        return signing.sign_message(priv, signing.announcement_statement(statement))

    signature = sign(fields)
    record = signing.signature_record(fields, signature)
    write_signature(path, record)
    assert read_signature(path) == record
    load_bundle(path, public_key=pub, signature=read_signature(path))
    assert signing.parse_signature_record(record) == (fields, signature)
    assert signing.parse_signature_record(sign_digest(priv, digest)) is None  # a bare digest signature
    for change, match in (
        ({"stamp": 2.5}, "does not verify"),  # the record was edited after signing
        ({"robot_id": "r2"}, "does not verify"),
    ):
        forged = signing.signature_record({**fields, **change}, signature)
        with pytest.raises(WeightsError, match=match):
            load_bundle(path, public_key=pub, signature=forged)
    for change, match in (({"sha256": "0" * 64}, "signed announcement is for"), ({"version": 4}, "says")):
        other = {**fields, **change}
        signed = signing.signature_record(other, sign(other))
        with pytest.raises(WeightsError, match=match):
            load_bundle(path, public_key=pub, signature=signed)
    with pytest.raises(WeightsError, match="not JSON"):
        load_bundle(path, public_key=pub, signature="{" + "[" * 5000)
    with pytest.raises(WeightsError):  # a digest signature is no announcement signature, and back
        verify_digest(pub, digest, signature)
