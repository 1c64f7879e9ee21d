"""The edge's uploads without ROS: one hard frame's round trip, and upload workers that outlive any cloud."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import zenoh
from edge_helpers import RGB, M, edge_cfg
from laecips_core.services.edge_config import EdgeConfig
from laecips_core.services.edge_service import EdgeCounters, diagnostic_values
from laecips_core.services.edge_uploads import CloudAnswer, EdgeUploads, ask_cloud
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


def test_ask_cloud_turns_every_cloud_behaviour_into_an_answer():
    cfg = edge_cfg(robot_id="r7")
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
    cfg = edge_cfg(robot_id="r9", deadline_s=5.0)
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
    cfg = edge_cfg(robot_id="r5", deadline_s=5.0)
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
    cfg = edge_cfg(robot_id="r8")
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
    from laecips_core.services import edge_uploads

    release = threading.Event()
    calls: list[int] = []

    def stalled_ask_cloud(client: object, cfg: EdgeConfig, *, frame_id: int, **_: object) -> CloudAnswer:
        calls.append(frame_id)
        release.wait(30.0)  # blocked until the test lets the link recover
        return CloudAnswer(np.zeros((4, 4), np.uint8), "ok")

    monkeypatch.setattr(edge_uploads, "ask_cloud", stalled_ask_cloud)
    cfg = edge_cfg(robot_id="r7", deadline_s=0.3)
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
