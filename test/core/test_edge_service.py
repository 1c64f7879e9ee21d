"""The edge side without ROS: bundle verification into f + h, the model slot, the cloud round trip."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zenoh
from bundle_helpers import write_tiny_bundle
from laecips_core.edge_service import (
    EdgeConfig,
    EdgeCounters,
    ModelSlot,
    ask_cloud,
    diagnostic_values,
    load_candidate,
    untrained_candidate,
)
from laecips_core.errors import WeightsError
from laecips_core.transport import (
    CloudClient,
    InferReply,
    InferRequest,
    infer_key,
    load_zenoh_config,
    open_session,
    wait_until,
)
from launch_helpers import free_port, zenoh_endpoint

from laecips_core import weights

M = 6


def _bundle(path: Path, version: int, label: int, *, with_h: bool = True) -> Path:
    """tiny_fcn whose classifier bias makes every pixel ``label``; h (MinerNet) unless with_h is False."""
    return write_tiny_bundle(path, version, M, label=label, with_h=with_h)


def _cfg(**changes: object) -> EdgeConfig:
    base = {"edge_model_name": "tiny_fcn", "num_classes": M, "input_height": 32, "input_width": 48}
    return EdgeConfig(**{**base, **changes}).validate()  # type: ignore[arg-type]


RGB = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)


def test_load_candidate_builds_the_bundles_f_and_refuses_what_does_not_verify(tmp_path: Path):
    path = _bundle(tmp_path / "v3.safetensors", 3, label=4)
    candidate = load_candidate(_cfg(), path, origin="operator")
    assert (candidate.version, candidate.path, candidate.origin) == (3, str(path), "operator")
    assert candidate.sha256 == weights.sha256_file(path)
    assert np.all(np.asarray(candidate.predictor.predict(RGB).labels) == 4)

    with pytest.raises(WeightsError, match="corrupt or tampered"):
        load_candidate(_cfg(), path, origin="update", expected_sha256="0" * 64)
    with pytest.raises(WeightsError, match="announced as 4"):
        load_candidate(_cfg(), path, origin="update", expected_version=4)
    with pytest.raises(WeightsError, match="M=6 but this node runs tiny_fcn with M=7"):
        load_candidate(_cfg(num_classes=7), path, origin="operator")
    h_at_32 = write_tiny_bundle(tmp_path / "h32.safetensors", 5, M, label=2, miner_in_size=(32, 32))
    assert load_candidate(_cfg(), h_at_32, origin="operator").version == 5  # h's size from the metadata
    with pytest.raises(WeightsError, match="does not exist|No such file|not found"):
        load_candidate(_cfg(), tmp_path / "missing.safetensors", origin="operator")


def test_load_candidate_with_a_trusted_key_needs_a_valid_signature_file(tmp_path: Path):
    private, public = weights.generate_keypair(tmp_path / "keys", name="trainer")
    other, _ = weights.generate_keypair(tmp_path / "keys", name="other")
    path = _bundle(tmp_path / "v1.safetensors", 1, label=2)
    cfg = _cfg(trusted_public_key=str(public))
    with pytest.raises(WeightsError, match="no signature file"):
        load_candidate(cfg, path, origin="operator")
    digest = weights.sha256_file(path)
    weights.write_signature(path, weights.sign_digest(other, digest))
    with pytest.raises(WeightsError, match="signature"):
        load_candidate(cfg, path, origin="operator")
    weights.write_signature(path, weights.sign_digest(private, digest))
    assert load_candidate(cfg, path, origin="operator").version == 1


def test_neural_miner_needs_h_in_the_bundle_the_baselines_do_not(tmp_path: Path):
    path = _bundle(tmp_path / "f_only.safetensors", 2, label=1, with_h=False)
    with pytest.raises(WeightsError, match="no miner weights h but miner=neural"):
        load_candidate(_cfg(), path, origin="operator")
    candidate = load_candidate(_cfg(miner="sm"), path, origin="operator")
    result = candidate.predictor.predict(RGB)
    assert np.all(np.asarray(result.labels) == 1) and 0.0 <= float(result.confidence) <= 1.0


def test_model_slot_swaps_only_between_frames_and_keeps_the_newest_offer(tmp_path: Path):
    first = untrained_candidate(_cfg())
    slot = ModelSlot(first)
    assert slot.swap() is None and slot.current is first and slot.newest_version() == 0
    v1 = load_candidate(_cfg(), _bundle(tmp_path / "v1.safetensors", 1, label=1), origin="update")
    v2 = load_candidate(_cfg(), _bundle(tmp_path / "v2.safetensors", 2, label=2), origin="update")
    slot.offer(v1)
    slot.offer(v2)
    assert slot.current is first and slot.newest_version() == 2
    assert slot.swap() is v2 and slot.current is v2 and slot.swap() is None


def test_ask_cloud_turns_every_cloud_behaviour_into_an_answer():
    cfg = _cfg(robot_id="r7")
    assert ask_cloud(None, cfg, frame_id=1, stamp=0.0, version=0, rgb=RGB, remaining_s=1.0).status == (
        "unreachable"
    )
    late = ask_cloud(None, cfg, frame_id=1, stamp=0.0, version=0, rgb=RGB, remaining_s=0.0)
    assert late.status == "timeout" and late.labels is None

    endpoint = zenoh_endpoint(free_port())
    cloud = open_session(load_zenoh_config(None, mode="peer", listen=[endpoint], connect=[]))
    edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    behaviour = {"lie": False}
    seen: list[InferRequest] = []

    def answer(query: zenoh.Query) -> None:
        payload = query.payload.to_bytes() if query.payload is not None else b""
        attachment = query.attachment.to_bytes() if query.attachment is not None else None
        request = InferRequest.decode(payload, attachment)
        seen.append(request)
        frame = request.frame_id + (1 if behaviour["lie"] else 0)
        labels = np.full((request.height, request.width), 3, dtype=np.uint8)
        body, header = InferReply("ok", frame_id=frame, cloud_s=0.01, labels=labels).encode()
        query.reply(query.key_expr, body, attachment=header)

    queryable = cloud.declare_queryable(infer_key("r7"), answer)
    try:
        probe = CloudClient(edge, "r7", 1.0)
        try:
            assert wait_until(probe.available, 10.0), "the edge never saw the cloud's queryable"
        finally:
            probe.close()
        good = ask_cloud(edge, cfg, frame_id=5, stamp=1.5, version=2, rgb=RGB, remaining_s=5.0)
        assert good.status == "ok" and good.labels is not None and np.all(good.labels == 3)
        assert good.bytes_sent > 0 and good.bytes_received > 0 and good.cloud_s == pytest.approx(0.01)
        assert min(good.upload_s, good.download_s) >= 0.0
        assert (seen[-1].frame_id, seen[-1].model_version, seen[-1].num_classes) == (5, 2, M)
        behaviour["lie"] = True
        lying = ask_cloud(edge, cfg, frame_id=6, stamp=1.6, version=2, rgb=RGB, remaining_s=5.0)
        assert lying.labels is None and lying.status == "invalid" and "not 6" in lying.error
    finally:
        queryable.undeclare()
        edge.close()
        cloud.close()


def test_counters_and_diagnostics_say_what_is_wrong():
    counters = EdgeCounters()
    threads = [
        threading.Thread(target=lambda: [counters.count(frames=1) for _ in range(500)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    counters.count(uploaded=500)
    snap = counters.snapshot()
    assert snap["frames"] == 2000 and snap["errors"] == 0
    warn, message, values = diagnostic_values(snap, rate_hz=10.0, version=3, in_flight=1, threshold=0.4)
    assert not warn and message == "running" and values["cur"] == "0.2500" and values["model_version"] == "3"
    counters.count(cloud_status="unreachable")
    warn, message, _ = diagnostic_values(
        counters.snapshot(), rate_hz=0, version=3, in_flight=0, threshold=0.4
    )
    assert warn and "unreachable" in message
    counters.count(bad_input=1, error="bad camera frame: encoding 'foo'")
    warn, message, values = diagnostic_values(
        counters.snapshot(), rate_hz=0, version=3, in_flight=0, threshold=0.4
    )
    assert warn and "encoding 'foo'" in message and values["errors"] == "1"
