"""The edge side without ROS: bundle verification into f + h, the model slot, the cloud round trip."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import zenoh
from bundle_helpers import write_tiny_bundle
from laecips_core.edge_service import (
    CloudAnswer,
    EdgeConfig,
    EdgeCounters,
    EdgeUploads,
    ModelSlot,
    OperatorLoad,
    ask_cloud,
    check_operator_path,
    check_update,
    diagnostic_values,
    load_candidate,
    prepare_request,
    untrained_candidate,
)
from laecips_core.errors import ConfigError, WeightsError
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

from laecips_core import transport, weights

M = 6


def _bundle(path: Path, version: int, label: int, *, with_h: bool = True) -> Path:
    """tiny_fcn whose classifier bias makes every pixel ``label``; h (MinerNet) unless with_h is False."""
    return write_tiny_bundle(path, version, M, label=label, with_h=with_h)


def _cfg(**changes: object) -> EdgeConfig:
    base = {
        "edge_model_name": "tiny_fcn",
        "num_classes": M,
        "input_height": 32,
        "input_width": 48,
        "robot_id": "robot1",
    }
    base["allow_unsigned_weights"] = True  # the tests that give a key still have it checked
    return EdgeConfig(**{**base, **changes}).validate()  # type: ignore[arg-type]


def test_edge_refuses_to_start_without_a_key_unless_unsigned_weights_are_allowed():
    with pytest.raises(ConfigError, match="trusted_public_key: set it to the trainer's .pub"):
        _cfg(allow_unsigned_weights=False)
    assert _cfg(allow_unsigned_weights=True).allow_unsigned_weights


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
        client = CloudClient(edge, "r7", 5.0)
        assert wait_until(client.available, 10.0), "the edge never saw the cloud's queryable"
        good = ask_cloud(client, cfg, frame_id=5, stamp=1.5, version=2, rgb=RGB, remaining_s=5.0)
        assert good.status == "ok" and good.labels is not None and np.all(good.labels == 3)
        sent = len(InferReply("ok", frame_id=5, labels=good.labels).encode()[0])
        assert good.bytes_sent > 0 and good.bytes_received == sent and good.cloud_s == pytest.approx(0.01)
        assert min(good.upload_s, good.download_s) >= 0.0
        assert (seen[-1].frame_id, seen[-1].model_version, seen[-1].num_classes) == (5, 2, M)
        behaviour["lie"] = True
        lying = ask_cloud(client, cfg, frame_id=6, stamp=1.6, version=2, rgb=RGB, remaining_s=5.0)
        assert lying.labels is None and lying.status == "invalid" and "not 6" in lying.error
        assert client.queries == 2  # one querier, reused
        client.close()
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


# ---------------------------------------------------------------------- hostile clouds, dying workers


@dataclass(frozen=True)
class _Frame:
    """What EdgeUploads needs of a hard frame (the node's job record has more)."""

    frame_no: int
    stamp: float
    version: int
    rgb: np.ndarray
    arrival: float


class _Outcomes:
    """Records every publication of the upload workers: frame -> (source, status, reason)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_frame: dict[int, list[tuple[str, str, str]]] = {}

    def cloud(self, job: _Frame, answer: CloudAnswer) -> None:
        with self.lock:
            self.by_frame.setdefault(job.frame_no, []).append(("cloud", answer.status, ""))

    def fallback(self, job: _Frame, status: str, reason: str) -> None:
        with self.lock:
            self.by_frame.setdefault(job.frame_no, []).append(("fallback", status, reason))

    def of(self, frame: int) -> list[tuple[str, str, str]]:
        with self.lock:
            return list(self.by_frame.get(frame, []))


def _lying_cloud(session: zenoh.Session, robot: str) -> zenoh.Queryable:
    """frame % 3 == 1: a header of 8000 "["; == 2: an error reply that is not UTF-8; else: labels 3."""

    def answer(query: zenoh.Query) -> None:
        payload = query.payload.to_bytes() if query.payload is not None else b""
        attachment = query.attachment.to_bytes() if query.attachment is not None else None
        request = InferRequest.decode(payload, attachment)
        if request.frame_id % 3 == 1:
            query.reply(query.key_expr, b"", attachment=b"[" * 8000)
        elif request.frame_id % 3 == 2:
            query.reply_err(b"\xff\xfe\xc3 overloaded")
        else:
            labels = np.full((request.height, request.width), 3, dtype=np.uint8)
            body, header = InferReply("ok", frame_id=request.frame_id, labels=labels).encode()
            query.reply(query.key_expr, body, attachment=header)

    return session.declare_queryable(infer_key(robot), answer)


def test_lying_cloud_costs_one_fallback_per_bad_reply_and_uploads_go_on():
    """End to end over real Zenoh: both upload workers live through every kind of bad reply."""
    cfg = _cfg(robot_id="r9", deadline_s=5.0)
    endpoint = zenoh_endpoint(free_port())
    cloud = open_session(load_zenoh_config(None, mode="peer", listen=[endpoint], connect=[]))
    edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    queryable = _lying_cloud(cloud, "r9")
    counters = EdgeCounters()
    outcomes = _Outcomes()
    uploads: EdgeUploads[_Frame] = EdgeUploads(
        2,
        config=lambda: cfg,
        session=lambda: edge,
        counters=counters,
        on_cloud=outcomes.cloud,
        on_fallback=outcomes.fallback,
    )
    try:
        probe = CloudClient(edge, "r9", 1.0)
        try:
            assert wait_until(probe.available, 10.0), "the edge never saw the cloud's queryable"
        finally:
            probe.close()
        for frame in range(1, 10):  # one at a time: a second waiting frame would push the first out
            uploads.submit(_Frame(frame, float(frame), 1, RGB, time.monotonic()))
            assert wait_until(lambda f=frame: bool(outcomes.of(f)), 10.0), f"frame {frame} got nothing"
        for frame in range(1, 10):
            (only,) = outcomes.of(frame)  # exactly one publication per frame
            source, status, reason = only
            if frame % 3 == 1:
                assert (source, status) == ("fallback", "invalid") and "nested too deeply" in reason
            elif frame % 3 == 2:
                assert (source, status) == ("fallback", "error") and "overloaded" in reason
                assert "\ufffd" in reason
            else:
                assert (source, status) == ("cloud", "ok")
        health = uploads.health()
        assert health.alive == 2 and health.restarts == 0  # nothing died: every reply became a status
        snap = counters.snapshot()
        assert (snap["cloud_ok"], snap["fallback"], snap["worker_restarts"]) == (3, 6, 0)
        assert snap["cloud_status"] == "available"
        assert uploads.link.declared == 1  # both workers, nine frames: one querier
    finally:
        assert uploads.close(timeout_s=5.0) == []
        queryable.undeclare()
        edge.close()
        cloud.close()


def test_hard_frames_share_one_querier_per_session_and_count_the_bytes_received():
    """N hard frames through two upload workers: one querier declared (CloudLink.declared), N queries sent
    through it, each answer's bytes_received equal to the reply payload the cloud sent; a reopened
    session gets a new client."""
    cfg = _cfg(robot_id="r5", deadline_s=5.0)
    endpoint = zenoh_endpoint(free_port())
    cloud = open_session(load_zenoh_config(None, mode="peer", listen=[endpoint], connect=[]))
    sessions = [open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))]
    sent_bytes: dict[int, int] = {}
    received: dict[int, int] = {}

    def answer(query: zenoh.Query) -> None:
        payload = query.payload.to_bytes() if query.payload is not None else b""
        attachment = query.attachment.to_bytes() if query.attachment is not None else None
        request = InferRequest.decode(payload, attachment)
        labels = (np.arange(request.height * request.width) * request.frame_id % M).astype(np.uint8)
        labels = labels.reshape(request.height, request.width)
        body, header = InferReply("ok", frame_id=request.frame_id, labels=labels).encode()
        sent_bytes[request.frame_id] = len(body)
        query.reply(query.key_expr, body, attachment=header)

    def on_cloud(job: _Frame, answer: CloudAnswer) -> None:
        received[job.frame_no] = answer.bytes_received

    queryable = cloud.declare_queryable(infer_key("r5"), answer)
    uploads: EdgeUploads[_Frame] = EdgeUploads(
        2, config=lambda: cfg, session=lambda: sessions[-1], counters=EdgeCounters(), on_cloud=on_cloud,
        on_fallback=lambda job, status, reason: None,
    )  # fmt: skip
    try:
        probe = CloudClient(sessions[-1], "r5", 1.0)
        assert wait_until(probe.available, 10.0), "the edge never saw the cloud's queryable"
        probe.close()
        frames = 8
        for frame in range(1, frames + 1):  # one at a time: a second waiting frame would push the first out
            uploads.submit(_Frame(frame, float(frame), 1, RGB, time.monotonic()))
            assert wait_until(lambda f=frame: f in received, 10.0), f"frame {frame} got no cloud answer"
        assert uploads.link.declared == 1
        client = uploads.link.client(sessions[-1], "r5", cfg.deadline_s)
        assert client is not None and client.queries == frames
        assert received == sent_bytes and len(set(received.values())) > 1  # sizes differ per frame

        sessions[0].close()  # the link is lost and the session reopened: a new client, once
        sessions.append(open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint])))
        probe = CloudClient(sessions[-1], "r5", 1.0)
        assert wait_until(probe.available, 10.0)
        probe.close()
        for frame in (frames + 1, frames + 2):
            uploads.submit(_Frame(frame, float(frame), 1, RGB, time.monotonic()))
            assert wait_until(lambda f=frame: f in received, 10.0), f"frame {frame} got no cloud answer"
        assert uploads.link.declared == 2 and received == sent_bytes
    finally:
        uploads.close(timeout_s=5.0)
        queryable.undeclare()
        for session in sessions:
            session.close()
        cloud.close()


class _Fatal(BaseException):
    """Not an Exception: gets past every `except Exception` and ends the worker thread."""


def test_upload_worker_that_dies_is_restarted_and_shows_in_diagnostics():
    cfg = _cfg(robot_id="r8")
    counters = EdgeCounters()
    outcomes = _Outcomes()
    failures = {"left": 1}

    def fallback(job: _Frame, status: str, reason: str) -> None:
        if failures["left"]:  # the publisher breaks once, badly: the worker thread dies
            failures["left"] -= 1
            raise _Fatal("publisher crashed")
        outcomes.fallback(job, status, reason)

    deaths: list[str] = []
    uploads: EdgeUploads[_Frame] = EdgeUploads(
        1,
        config=lambda: cfg,
        session=lambda: None,  # no session yet: every frame falls back as "unreachable"
        counters=counters,
        on_cloud=outcomes.cloud,
        on_fallback=fallback,
        on_death=lambda worker, reason: deaths.append(reason),
    )
    try:
        uploads.submit(_Frame(1, 1.0, 0, RGB, time.monotonic()))
        assert wait_until(lambda: uploads.health().restarts == 1, 10.0)
        uploads.submit(_Frame(2, 2.0, 0, RGB, time.monotonic()))  # served by the restarted worker
        assert wait_until(lambda: bool(outcomes.of(2)), 10.0)
        assert outcomes.of(2)[0][:2] == ("fallback", "unreachable")
        assert uploads.health().alive == 1 and len(deaths) == 1 and "publisher crashed" in deaths[0]
        snap = counters.snapshot()
        assert snap["worker_restarts"] == 1 and "publisher crashed" in snap["last_worker_death"]
        warn, message, values = diagnostic_values(snap, rate_hz=1.0, version=0, in_flight=0, threshold=0.5)
        assert warn and "restarted" in message and "_Fatal: publisher crashed" in message
        assert values["worker_restarts"] == "1"
    finally:
        uploads.close(timeout_s=5.0)


def test_a_stalled_link_cannot_hold_a_frame_past_its_deadline(monkeypatch: pytest.MonkeyPatch):
    """A send that blocks in the link (Zenoh's congestion control on a dead WLAN) must not delay the
    fallback: the frame falls back at its deadline, the late answer is ignored, and while the worker's
    earlier call is still blocked the next frame falls back at once instead of piling up threads."""
    from laecips_core import edge_service

    release = threading.Event()
    calls: list[int] = []

    def stalled_ask_cloud(client: object, cfg: EdgeConfig, *, frame_id: int, **_: object) -> CloudAnswer:
        calls.append(frame_id)
        release.wait(30.0)  # blocked until the test lets the link recover
        return CloudAnswer(np.zeros((4, 4), np.uint8), "ok")

    monkeypatch.setattr(edge_service, "ask_cloud", stalled_ask_cloud)
    cfg = _cfg(robot_id="r7", deadline_s=0.3)
    counters = EdgeCounters()
    outcomes = _Outcomes()
    lone = open_session(load_zenoh_config(None, mode="peer", listen=[zenoh_endpoint(free_port())]))
    uploads: EdgeUploads[_Frame] = EdgeUploads(
        1,
        config=lambda: cfg,
        session=lambda: lone,
        counters=counters,
        on_cloud=outcomes.cloud,
        on_fallback=outcomes.fallback,
    )
    try:
        uploads.submit(_Frame(1, 1.0, 0, RGB, time.monotonic()))
        # The fallback comes while the call is still blocked (release has not been set).
        assert wait_until(lambda: bool(outcomes.of(1)), 10.0), "frame 1 never fell back"
        assert not release.is_set()
        ((source, status, reason),) = outcomes.of(1)
        assert (source, status) == ("fallback", "timeout") and "deadline" in reason
        uploads.submit(_Frame(2, 2.0, 0, RGB, time.monotonic()))
        assert wait_until(lambda: bool(outcomes.of(2)), 10.0), "frame 2 never fell back"
        ((source, status, reason),) = outcomes.of(2)
        assert (source, status) == ("fallback", "timeout") and "stalled" in reason
        assert calls == [1]  # frame 2 was never sent into the stalled link
        assert uploads.stalled_calls == 1
        release.set()  # the link recovers: the late answer of frame 1 is dropped, uploads resume
        assert wait_until(lambda: uploads.stalled_calls == 0, 10.0)
        uploads.submit(_Frame(3, 3.0, 0, RGB, time.monotonic()))
        assert wait_until(lambda: bool(outcomes.of(3)), 10.0), "frame 3 got nothing"
        assert outcomes.of(3) == [("cloud", "ok", "")] and calls == [1, 3]
        assert [o[0] for o in outcomes.of(1)] == ["fallback"]  # still exactly one publication
        assert counters.snapshot()["cloud_ok"] == 1
    finally:
        release.set()
        uploads.close(timeout_s=5.0)
        lone.close()


def test_check_update_lets_versions_only_go_up(tmp_path: Path):
    slot = ModelSlot(load_candidate(_cfg(), _bundle(tmp_path / "v3.safetensors", 3, label=1), origin="start"))
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
    v3 = _bundle(tmp_path / "v3.safetensors", 3, label=1)
    v1 = _bundle(tmp_path / "v1.safetensors", 1, label=2)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    cfg = _cfg()
    bad = [(7, "must be a string"), ("", "cannot be emptied"), (str(other), "not a .safetensors"),
           (str(tmp_path / "nope.safetensors"), "cannot read")]  # fmt: skip
    for value, match in bad:
        with pytest.raises(ConfigError, match=match):
            check_operator_path(cfg, value)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a bundle")
    assert check_operator_path(cfg, str(garbage)) == str(garbage)  # only the worker reads it
    priv, pub = weights.generate_keypair(tmp_path / "keys")
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


def test_defaults_follow_the_namespace_and_the_bundle(tmp_path: Path):
    """robot_id from the namespace, M and the class names from the bundle, a relative camera topic."""
    import json

    from laecips_core.edge_service import (
        EdgeConfig,
        class_names_for,
        classes_json,
        resolve_defaults,
        robot_id_from_namespace,
    )

    assert robot_id_from_namespace("/fleet/robot2") == "robot2" and robot_id_from_namespace("/") == "robot1"
    assert not EdgeConfig().image_topic.startswith("/")  # <namespace>/camera/image_raw, remappable
    names = [f"n{i}" for i in range(M)]
    named = write_tiny_bundle(tmp_path / "named.safetensors", 1, M, class_names=names)
    cfg = resolve_defaults(EdgeConfig(edge_model_name="tiny_fcn", edge_model_path=str(named)), "/robot4")
    assert (cfg.robot_id, cfg.num_classes) == ("robot4", M)
    assert class_names_for(cfg, named) == names
    anonymous = _bundle(tmp_path / "anon.safetensors", 1, label=2)
    assert class_names_for(cfg, anonymous) == [f"class_{i}" for i in range(M)]
    assert class_names_for(replace(cfg, class_names=tuple("abcdef")), anonymous) == list("abcdef")
    body = json.loads(classes_json(names, robot_id="robot4", model_version=3))
    assert body["classes"] == names and body["num_classes"] == M
    with pytest.raises(ConfigError, match="num_classes 0 takes M from edge_model.path"):
        resolve_defaults(EdgeConfig(edge_model_path=str(tmp_path / "missing.safetensors")))
