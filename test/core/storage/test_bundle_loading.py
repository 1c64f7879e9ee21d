"""Tests of reading bundles back: the hash check, and hostile bytes that must end in a WeightsError."""

from __future__ import annotations

import pytest
from laecips_core.errors import WeightsError
from laecips_core.storage.bundle_loading import load_bundle, parse_bundle
from laecips_core.storage.weights import load_tensors, save_bundle
from torch import nn
from weights_helpers import built_h, bundle_meta, tiny_f


@pytest.fixture
def h_net() -> nn.Module:
    return built_h()


def test_tampered_bundle_fails_the_hash_check(tmp_path, h_net):
    path = tmp_path / "b.safetensors"
    digest = save_bundle(path, tiny_f(), h_net, bundle_meta())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="SHA-256 .* expected .*tampered"):
        load_bundle(path, expected_sha256=digest)
    # Without a hash the flipped bit would load silently: that is why ModelUpdate carries the digest.
    assert load_bundle(path).version == 3


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"\xff" * 8 + b"{}", (20).to_bytes(8, "little") + b"{not json}" * 3]
)
def test_garbage_is_not_a_bundle(data):
    with pytest.raises(WeightsError):
        parse_bundle(data)


def _safetensors_with_header(header: bytes) -> bytes:
    return len(header).to_bytes(8, "little") + header


def test_header_nested_100k_deep_is_a_weights_error_not_a_recursion_error():
    deep = _safetensors_with_header(b'{"__metadata__":' + b"[" * 100_000)
    with pytest.raises(WeightsError, match="corrupt safetensors header"):
        parse_bundle(deep)
    closed = _safetensors_with_header(b'{"__metadata__":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(WeightsError, match="corrupt safetensors header"):
        parse_bundle(closed)
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_tensors(_safetensors_with_header(b"[" * 100_000), "test")
