"""transport.client: CloudClient over real Zenoh sessions (ok, unreachable, timeout, lying clouds)."""

from __future__ import annotations

import queue
import re
import threading

import numpy as np
import pytest
import zenoh
from laecips_core.errors import ConfigError
from laecips_core.transport import (
    CloudClient,
    CloudLink,
    InferReply,
    InferRequest,
    infer_key,
    load_zenoh_config,
    open_session,
)
from launch_helpers import free_port, wait_until
from transport_helpers import H, M, W, _request, _serve_fused


def test_client_gets_fused_labels_over_zenoh(sessions):
    cloud, edge = sessions
    _serve_fused(cloud, "robot1")
    client = CloudClient(edge, "robot1", timeout_s=5.0)
    assert wait_until(client.available, 10.0), "the cloud queryable never became visible"
    request = _request()
    reply = client.infer(request)
    assert reply.status == "ok", reply.error
    assert reply.labels is not None and reply.labels.shape == (H, W)
    assert int(reply.labels.max()) < M and reply.frame_id == request.frame_id
    with pytest.raises(ConfigError):
        client.infer(_request(robot_id="robot2"))


def test_cloud_down_is_unreachable_not_an_exception(sessions):
    _, edge = sessions
    client = CloudClient(edge, "nobody", timeout_s=5.0)
    assert not client.available()
    reply = client.infer(_request(robot_id="nobody"))
    assert reply.status == "unreachable" and reply.labels is None


def test_slow_cloud_times_out(sessions):
    cloud, edge = sessions
    held: queue.Queue[zenoh.Query] = queue.Queue()
    cloud.declare_queryable(infer_key("robot1"), held.put)  # never answers in time
    client = CloudClient(edge, "robot1", timeout_s=0.3)
    assert wait_until(client.available, 10.0)
    reply = client.infer(_request())
    assert reply.status == "timeout", reply
    held.get(timeout=5).drop()


def test_invalid_and_error_replies_are_reported(sessions):
    cloud, edge = sessions
    _serve_fused(cloud, "liar", lambda r: InferReply("ok", "", r.frame_id, 0, 0, 0, 0, 0, r.labels[:, :-1]))
    _serve_fused(cloud, "other", lambda r: InferReply("ok", "", r.frame_id + 1, 0, 0, 0, 0, 0, r.labels))
    _serve_fused(cloud, "refuser", lambda r: InferReply("error", "busy", -1))
    for robot, status, match in (("liar", "invalid", "shape|max_pixels"), ("other", "invalid", "frame"),
                                 ("refuser", "error", "busy")):  # fmt: skip
        client = CloudClient(edge, robot, timeout_s=5.0)
        assert wait_until(client.available, 10.0)
        reply = client.infer(_request(robot_id=robot))
        assert reply.status == status and reply.labels is None
        assert reply.error and re.search(match, reply.error), reply.error


def test_client_is_safe_to_use_from_several_threads(sessions):
    cloud, edge = sessions
    _serve_fused(cloud, "robot1")
    client = CloudClient(edge, "robot1", timeout_s=5.0)
    assert wait_until(client.available, 10.0)
    statuses: list[str] = []

    def worker(i: int) -> None:
        statuses.append(client.infer(_request(frame_id=i)).status)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert statuses == ["ok"] * 4


def _serve_lies(cloud: zenoh.Session, robot: str) -> zenoh.Queryable:
    """A cloud that answers frame 1 with a header of 8000 "[", frame 2 with a non-UTF-8 error, else well."""

    def on_query(query: zenoh.Query) -> None:
        req = InferRequest.decode(query.payload.to_bytes(), query.attachment.to_bytes())
        if req.frame_id == 1:
            query.reply(query.key_expr, b"", attachment=b"[" * 8000)
        elif req.frame_id == 2:
            query.reply_err(b"\xff\xfe cloud busy \xc3")
        else:
            labels = np.zeros((req.height, req.width), np.uint8)
            payload, attachment = InferReply("ok", "", req.frame_id, 0, 1, 0.0, 0.0, 0.0, labels).encode()
            query.reply(query.key_expr, payload, attachment=attachment)

    return cloud.declare_queryable(infer_key(robot), on_query)


def test_lying_cloud_replies_become_statuses_not_exceptions(sessions):
    cloud, edge = sessions
    _serve_lies(cloud, "robot1")
    client = CloudClient(edge, "robot1", timeout_s=5.0)
    assert wait_until(client.available, 10.0)
    nested = client.infer(_request(frame_id=1))
    assert nested.status == "invalid" and "nested too deeply" in nested.error and nested.frame_id == 1
    binary = client.infer(_request(frame_id=2))
    assert binary.status == "error" and "cloud busy" in binary.error and "\ufffd" in binary.error
    assert client.infer(_request(frame_id=3)).status == "ok"  # the same client goes on


def test_one_querier_serves_every_request_and_replies_carry_their_wire_size(sessions):
    """N requests through CloudLink's client: one declaration, N queries on it, and each reply's
    payload_bytes equal to the bytes the cloud put on the wire; a reopened session gets a new client."""
    cloud, edge = sessions
    sent: dict[int, int] = {}

    def on_query(query: zenoh.Query) -> None:
        req = InferRequest.decode(query.payload.to_bytes(), query.attachment.to_bytes())
        labels = np.full((req.height, req.width), req.frame_id % M, np.uint8)
        labels[: req.frame_id % H] = 0  # a different payload size per frame
        payload, attachment = InferReply("ok", frame_id=req.frame_id, labels=labels).encode()
        sent[req.frame_id] = len(payload)
        query.reply(query.key_expr, payload, attachment=attachment)

    cloud.declare_queryable(infer_key("robot1"), on_query)
    link = CloudLink()
    client = link.client(edge, "robot1", 5.0)
    assert client is not None and wait_until(client.available, 10.0)
    for frame in range(1, 9):
        same = link.client(edge, "robot1", 5.0)
        assert same is client
        reply = same.infer(_request(frame_id=frame), timeout_s=5.0)
        assert reply.status == "ok", reply.error
        assert reply.payload_bytes == sent[frame]
    assert link.declared == 1 and client.queries == 8 and len(set(sent.values())) > 1
    assert link.client(edge, "robot1", 2.0) is not client and link.declared == 2  # new deadline_s
    assert client.closed
    assert link.client(None, "robot1", 2.0) is None and link.declared == 2
    link.close()


def test_a_closed_session_gives_no_client_and_a_reopened_one_a_new_client():
    first = open_session(load_zenoh_config(None, mode="peer", listen=[f"tcp/127.0.0.1:{free_port()}"]))
    second = open_session(load_zenoh_config(None, mode="peer", listen=[f"tcp/127.0.0.1:{free_port()}"]))
    link = CloudLink()
    try:
        old = link.client(first, "robot1", 1.0)
        assert old is not None
        first.close()
        assert link.client(first, "robot1", 1.0) is None and old.closed
        new = link.client(second, "robot1", 1.0)
        assert new is not None and new is not old and link.declared == 2
        assert link.client(second, "robot1", 1.0) is new
    finally:
        link.close()
        second.close()


def test_a_shorter_per_call_deadline_times_out_and_leaves_the_querier_usable(sessions):
    cloud, edge = sessions
    held: queue.Queue[zenoh.Query] = queue.Queue()
    cloud.declare_queryable(infer_key("robot1"), held.put)  # never answers in time
    client = CloudClient(edge, "robot1", timeout_s=30.0)
    assert wait_until(client.available, 10.0)
    reply = client.infer(_request(), timeout_s=0.3)
    assert reply.status == "timeout" and "0.3 s" in reply.error, reply
    assert client.infer(_request(), timeout_s=0.0).status == "timeout"
    held.get(timeout=5).drop()
    assert client.queries == 1
    client.close()
    client.close()  # idempotent
    assert client.infer(_request(), timeout_s=1.0).status == "unreachable"
