"""The edge's f and h without ROS: bundle verification into f + h, the model slot, which updates to take."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import write_tiny_bundle
from edge_helpers import RGB, M, bundle, edge_cfg
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.services.edge_models import (
    ModelSlot,
    OperatorLoad,
    check_operator_path,
    check_update,
    load_candidate,
    prepare_request,
    untrained_candidate,
)
from laecips_core.storage import signing

from laecips_core import files, transport


def test_load_candidate_builds_the_bundles_f_and_refuses_what_does_not_verify(tmp_path: Path):
    path = bundle(tmp_path / "v3.safetensors", 3, label=4)
    candidate = load_candidate(edge_cfg(), path, origin="operator")
    assert (candidate.version, candidate.path, candidate.origin) == (3, str(path), "operator")
    assert candidate.sha256 == files.sha256_file(path)
    assert np.all(np.asarray(candidate.predictor.predict(RGB).labels) == 4)

    with pytest.raises(WeightsError, match="corrupt or tampered"):
        load_candidate(edge_cfg(), path, origin="update", expected_sha256="0" * 64)
    with pytest.raises(WeightsError, match="announced as 4"):
        load_candidate(edge_cfg(), path, origin="update", expected_version=4)
    with pytest.raises(WeightsError, match="M=6 but this node runs tiny_fcn with M=7"):
        load_candidate(edge_cfg(num_classes=7), path, origin="operator")
    h_at_32 = write_tiny_bundle(tmp_path / "h32.safetensors", 5, M, label=2, miner_in_size=(32, 32))
    assert load_candidate(edge_cfg(), h_at_32, origin="operator").version == 5  # h's size from the metadata
    with pytest.raises(WeightsError, match="does not exist|No such file|not found"):
        load_candidate(edge_cfg(), tmp_path / "missing.safetensors", origin="operator")


def test_load_candidate_with_a_trusted_key_needs_a_valid_signature_file(tmp_path: Path):
    private, public = signing.generate_keypair(tmp_path / "keys", name="trainer")
    other, _ = signing.generate_keypair(tmp_path / "keys", name="other")
    path = bundle(tmp_path / "v1.safetensors", 1, label=2)
    cfg = edge_cfg(trusted_public_key=str(public))
    with pytest.raises(WeightsError, match="no signature file"):
        load_candidate(cfg, path, origin="operator")
    digest = files.sha256_file(path)
    signing.write_signature(path, signing.sign_digest(other, digest))
    with pytest.raises(WeightsError, match="signature"):
        load_candidate(cfg, path, origin="operator")
    signing.write_signature(path, signing.sign_digest(private, digest))
    assert load_candidate(cfg, path, origin="operator").version == 1


def test_neural_miner_needs_h_in_the_bundle_the_baselines_do_not(tmp_path: Path):
    path = bundle(tmp_path / "f_only.safetensors", 2, label=1, with_h=False)
    with pytest.raises(WeightsError, match="no miner weights h but miner=neural"):
        load_candidate(edge_cfg(), path, origin="operator")
    candidate = load_candidate(edge_cfg(miner="sm"), path, origin="operator")
    result = candidate.predictor.predict(RGB)
    assert np.all(np.asarray(result.labels) == 1) and 0.0 <= float(result.confidence) <= 1.0


def test_model_slot_swaps_only_between_frames_and_keeps_the_newest_offer(tmp_path: Path):
    first = untrained_candidate(edge_cfg())
    slot = ModelSlot(first)
    assert slot.swap() is None and slot.current is first and slot.newest_version() == 0
    v1 = load_candidate(edge_cfg(), bundle(tmp_path / "v1.safetensors", 1, label=1), origin="update")
    v2 = load_candidate(edge_cfg(), bundle(tmp_path / "v2.safetensors", 2, label=2), origin="update")
    slot.offer(v1)
    slot.offer(v2)
    assert slot.current is first and slot.newest_version() == 2
    assert slot.swap() is v2 and slot.current is v2 and slot.swap() is None


def test_check_update_lets_versions_only_go_up(tmp_path: Path):
    slot = ModelSlot(
        load_candidate(edge_cfg(), bundle(tmp_path / "v3.safetensors", 3, label=1), origin="start")
    )
    running = slot.current.sha256

    def announced(version: int, sha256: str) -> transport.ModelAnnouncement:
        return transport.ModelAnnouncement(version, sha256, "", "t", "", "tiny_fcn", M, 1.0)

    assert check_update(announced(4, "a" * 64), slot) is True
    assert check_update(announced(3, running), slot) is False  # repeated announcement: nothing to do
    with pytest.raises(WeightsError, match="never reused"):
        check_update(announced(3, "b" * 64), slot)
    with pytest.raises(WeightsError, match="older than v3"):
        check_update(announced(2, "c" * 64), slot)
    assert check_update(announced(2, "c" * 64), slot, allow_rollback=True) is True


def test_operator_paths_are_checked_cheaply_and_loaded_like_updates(tmp_path: Path):
    """check_operator_path reads no bundle; prepare_request loads an OperatorLoad (rollback allowed) and
    skips a repeated announcement, refusing to fetch without a session."""
    v3 = bundle(tmp_path / "v3.safetensors", 3, label=1)
    v1 = bundle(tmp_path / "v1.safetensors", 1, label=2)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    cfg = edge_cfg()
    bad = [(7, "must be a string"), ("", "cannot be emptied"), (str(other), "not a .safetensors"),
           (str(tmp_path / "nope.safetensors"), "cannot read")]  # fmt: skip
    for value, match in bad:
        with pytest.raises(ConfigError, match=match):
            check_operator_path(cfg, value)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a bundle")
    assert check_operator_path(cfg, str(garbage)) == str(garbage)  # only the worker reads it
    priv, pub = signing.generate_keypair(tmp_path / "keys")
    with pytest.raises(ConfigError, match="no signature file"):
        check_operator_path(replace(cfg, trusted_public_key=str(pub)), str(v1))

    slot = ModelSlot(load_candidate(cfg, v3, origin="start"))
    rollback = prepare_request(None, cfg, slot, OperatorLoad(str(v1)))
    assert rollback is not None and rollback.version == 1 and rollback.origin == "operator"
    with pytest.raises(WeightsError):
        prepare_request(None, cfg, slot, OperatorLoad(str(garbage)))
    running = transport.ModelAnnouncement(3, slot.current.sha256, "", "t", "", "tiny_fcn", M, 1.0)
    assert prepare_request(None, cfg, slot, running) is None
    newer = transport.ModelAnnouncement(4, "a" * 64, "", "t", "", "tiny_fcn", M, 1.0)
    with pytest.raises(WeightsError, match="no Zenoh session"):
        prepare_request(None, cfg, slot, newer)


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory) -> Path:
    from bundle_helpers import add_onnx_graphs

    folder = tmp_path_factory.mktemp("lean")
    return add_onnx_graphs(bundle(folder / "v3.safetensors", 3, label=4))


def test_onnxruntime_with_a_bundles_graphs_runs_the_lean_predictor(onnx_bundle: Path, tmp_path: Path):
    from laecips_core.algo.onnx_predictor import OnnxEdgePredictor
    from laecips_core.algo.predictor import EdgePredictor

    lean = load_candidate(edge_cfg(backend="onnxruntime"), onnx_bundle, origin="operator")
    assert isinstance(lean.predictor, OnnxEdgePredictor) and lean.version == 3
    assert np.all(np.asarray(lean.predictor.predict(RGB).labels) == 4)
    # backend torch, another prior or a baseline miner: torch's predictor (it is installed here)
    for changes in ({"backend": "torch"}, {"backend": "onnxruntime", "stream_norm_prior": 0.0}):
        candidate = load_candidate(edge_cfg(**changes), onnx_bundle, origin="operator")
        assert isinstance(candidate.predictor, EdgePredictor)
    # the graphs are verified like the tensors: a trusted key needs the bundle's signature
    private, public = signing.generate_keypair(tmp_path / "keys")
    signed = tmp_path / "signed.safetensors"
    signed.write_bytes(onnx_bundle.read_bytes())
    cfg = edge_cfg(backend="onnxruntime", trusted_public_key=str(public))
    signing.write_signature(signed, signing.sign_digest(private, "0" * 64))
    with pytest.raises(WeightsError, match="signature"):
        load_candidate(cfg, signed, origin="operator")
    signing.write_signature(signed, signing.sign_digest(private, files.sha256_file(signed)))
    assert isinstance(load_candidate(cfg, signed, origin="operator").predictor, OnnxEdgePredictor)


def test_without_torch_the_edge_says_what_it_needs(onnx_bundle: Path, tmp_path: Path, monkeypatch):
    from laecips_core.services import edge_models

    monkeypatch.setattr(edge_models, "torch_available", lambda: False)
    with pytest.raises(WeightsError, match="stream_norm_prior 16.0 but this node sets 0"):
        load_candidate(edge_cfg(backend="onnxruntime", stream_norm_prior=0.0), onnx_bundle, origin="operator")
    with pytest.raises(WeightsError, match="miner is 'mess'"):
        load_candidate(edge_cfg(backend="onnxruntime", miner="mess"), onnx_bundle, origin="operator")
    plain = bundle(tmp_path / "plain.safetensors", 2, label=1)
    with pytest.raises(WeightsError, match="carries no ONNX graphs.*laecips export-onnx"):
        load_candidate(edge_cfg(backend="onnxruntime"), plain, origin="operator")
    with pytest.raises(ConfigError, match="torch is not installed.*edge_model.path"):
        untrained_candidate(edge_cfg(backend="onnxruntime"))
