"""Tests of bundles with ONNX graphs: written with f and h, covered by the hash and signature, read back
without torch, and never claimed by a bundle that lacks them."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_helpers import add_onnx_graphs, write_tiny_bundle
from laecips_core.errors import WeightsError
from laecips_core.storage import bundle_loading, signing
from laecips_core.storage.weights import serialize_bundle
from laecips_core.training.onnx_bundle import bundle_with_onnx

from laecips_core import files


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("onnx_bundle")
    plain = write_tiny_bundle(folder / "plain.safetensors", 3, 5)
    return plain, add_onnx_graphs(plain, folder / "with_onnx.safetensors", prior=4.0)


def test_graphs_ride_in_the_bundle_next_to_the_same_tensors(onnx_bundle):
    plain, with_onnx = onnx_bundle
    before, after = bundle_loading.load_bundle(plain), bundle_loading.load_bundle(with_onnx)
    assert not before.onnx and set(after.onnx) == {"f", "h"}
    assert after.version == 3 and after.metadata["onnx"] == "f,h"
    assert float(after.metadata["onnx_stream_norm_prior"]) == 4.0
    assert before.f_state.keys() == after.f_state.keys() and before.h_state.keys() == after.h_state.keys()
    graphs = bundle_loading.load_onnx_graphs(with_onnx)
    assert graphs.f == after.onnx["f"] and graphs.h == after.onnx["h"]
    assert graphs.f.startswith(b"\x08") and graphs.stream_norm_prior == 4.0 and graphs.version == 3
    with pytest.raises(WeightsError, match="no ONNX graphs.*laecips export-onnx"):
        bundle_loading.load_onnx_graphs(plain)


def test_graphs_are_verified_like_the_rest_of_the_bundle(onnx_bundle, tmp_path):
    _, with_onnx = onnx_bundle
    private, public = signing.generate_keypair(tmp_path / "keys")
    digest = files.sha256_file(with_onnx)
    signature = signing.sign_digest(private, digest)
    graphs = bundle_loading.load_onnx_graphs(with_onnx, public_key=public, signature=signature)
    assert graphs.version == 3
    data = bytearray(with_onnx.read_bytes())
    data[-100] ^= 0xFF  # one byte inside the last tensor (the h graph or a weight)
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="SHA-256"):
        bundle_loading.load_onnx_graphs(tampered, expected_sha256=digest)
    with pytest.raises(WeightsError, match="signature"):
        bundle_loading.load_onnx_graphs(tampered, public_key=public, signature=signature)


def test_a_child_bundle_without_graphs_does_not_claim_them(onnx_bundle):
    _, with_onnx = onnx_bundle
    parent = bundle_loading.load_bundle(with_onnx)
    data = serialize_bundle(parent.f_state, parent.h_state, dict(parent.metadata))  # metadata copied
    child = bundle_loading.parse_bundle(data)
    assert not child.onnx and not bundle_loading.has_onnx(child.metadata)


def test_exporting_again_replaces_the_graphs_and_needs_h(onnx_bundle, tmp_path):
    _, with_onnx = onnx_bundle
    parent = bundle_loading.load_bundle(with_onnx)
    again = bundle_loading.parse_bundle(bundle_with_onnx(parent, 0.0, (32, 48)))
    assert float(again.metadata["onnx_stream_norm_prior"]) == 0.0 and set(again.onnx) == {"f", "h"}
    f_only = write_tiny_bundle(tmp_path / "f_only.safetensors", 1, 5, with_h=False)
    with pytest.raises(WeightsError, match="no miner weights h"):
        bundle_with_onnx(bundle_loading.load_bundle(f_only), 16.0)
