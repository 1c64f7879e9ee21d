"""Bounded cost and fairness of CloudService on real Zenoh: max_pixels, per-robot queues, durable replay."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zenoh
from cloud_harness import NUM_CLASSES, frame, service_config
from laecips_core.image_codecs import encode_jpeg
from laecips_core.services.cloud_service import CloudService
from laecips_core.services.stores import replay_path
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.transport import (
    CloudClient,
    InferReply,
    InferRequest,
    infer_key,
    load_zenoh_config,
    open_session,
)
from launch_helpers import free_port, wait_until, zenoh_endpoint

pytestmark = pytest.mark.slow


@contextmanager
def _cloud(
    tmp_path: Path, initial_bundle: Path, **changes: Any
) -> Iterator[tuple[CloudService, zenoh.Session]]:
    """A started CloudService for robot1 and robot2 and a client session connected to it."""
    cfg, endpoint = service_config(tmp_path, initial_bundle, ("robot1", "robot2"), **changes)
    session = open_session(cfg.zenoh())
    edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    service = CloudService(cfg, session, logging.getLogger("cloud-bounds"))
    service.start()
    try:
        yield service, edge
    finally:
        service.stop()
        edge.close()
        session.close()


def _request(robot: str, frame_id: int, rgb: np.ndarray, **changes: Any) -> InferRequest:
    fields: dict[str, Any] = {
        "robot_id": robot,
        "frame_id": frame_id,
        "stamp": 0.0,
        "model_version": 0,
        "num_classes": NUM_CLASSES,
        "width": rgb.shape[1],
        "height": rgb.shape[0],
        "jpeg": encode_jpeg(rgb),
        **changes,
    }
    return InferRequest(**fields)


def _client(edge: zenoh.Session, robot: str, timeout_s: float = 30.0) -> CloudClient:
    client = CloudClient(edge, robot, timeout_s=timeout_s)
    assert wait_until(client.available, 10.0)
    return client


def test_one_robots_flood_does_not_starve_another(tmp_path: Path, initial_bundle: Path):
    with _cloud(tmp_path, initial_bundle, queue_size=4, workers=1) as (service, edge):
        client2 = _client(edge, "robot2")
        _client(edge, "robot1")
        payload, attachment = _request("robot1", 1, frame(1)).encode()
        stop = threading.Event()
        receivers: list[Any] = []

        def flood() -> None:  # fire-and-forget gets, bounded in count and time
            deadline = time.monotonic() + 60.0
            while not stop.is_set() and len(receivers) < 400 and time.monotonic() < deadline:
                receivers.append(
                    edge.get(infer_key("robot1"), payload=payload, attachment=attachment, timeout=60.0)
                )
                time.sleep(0.01)

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            assert wait_until(lambda: service.snapshot()["robot1"].busy > 0, 30.0), "the flood never filled"
            answers = [client2.infer(_request("robot2", i, frame(i))) for i in range(5)]
        finally:
            stop.set()
            flooder.join(timeout=10.0)
        assert [a.status for a in answers] == ["ok"] * 5, [a.error for a in answers]
        robot1 = service.snapshot()["robot1"]
        assert robot1.busy > 0 and robot1.ok > 0  # robot1 was served too, and its overflow refused
        assert service.snapshot()["robot2"].busy == 0


def test_huge_frames_are_downscaled_to_max_pixels_and_answered_at_full_size(
    tmp_path: Path, initial_bundle: Path
):
    with _cloud(tmp_path, initial_bundle, max_pixels=64 * 64) as (service, edge):
        client = _client(edge, "robot1")
        big = np.kron(frame(3, 120, 160), np.ones((8, 8, 1), np.uint8))  # 960x1280
        reply = client.infer(_request("robot1", 1, big))
        assert reply.status == "ok", reply.error
        assert reply.labels is not None and reply.labels.shape == (960, 1280)
        assert service.snapshot()["robot1"].downscaled == 1
        small = _request("robot1", 2, frame(4, 48, 64))
        assert client.infer(small).status == "ok"
        assert service.snapshot()["robot1"].downscaled == 1  # 48x64 fits: served as it is
        stored = service.buffers["robot1"].samples()
        assert stored[0].image.shape[0] * stored[0].image.shape[1] <= 64 * 64
        assert stored[1].image.shape[:2] == (48, 64)


def test_replay_append_is_durable_before_the_reply(tmp_path: Path, initial_bundle: Path):
    with _cloud(tmp_path, initial_bundle) as (service, edge):
        buffer = service.buffers["robot1"]
        real_append = buffer.append

        def slow_append(*args: Any, **kwargs: Any) -> int:  # widen the window between reply and append
            time.sleep(0.5)
            return real_append(*args, **kwargs)

        buffer.append = slow_append  # type: ignore[method-assign]
        client = _client(edge, "robot1")
        for frame_id in range(3):
            assert client.infer(_request("robot1", frame_id, frame(frame_id))).status == "ok"
            with ReplayBuffer(replay_path(tmp_path / "replay", "robot1")) as reader:  # another connection
                assert len(reader) == frame_id + 1, "the reply came before the sample was on disk"


def test_malformed_requests_get_wire_format_errors_not_internal_errors(tmp_path: Path, initial_bundle: Path):
    with _cloud(tmp_path, initial_bundle) as (service, edge):
        _client(edge, "robot1")
        payload, attachment = _request("robot1", 5, frame(5)).encode()
        header = json.loads(attachment)
        cases = {
            "model_version": {**header, "model_version": 2**32 - 1},
            "nested too deeply": "[" * 8000,
            "but the header says": {**header, "width": 161},  # the JPEG is 160 wide
        }
        for match, bad in cases.items():
            raw = bad if isinstance(bad, str) else json.dumps(bad)
            replies = list(
                edge.get(infer_key("robot1"), payload=payload, attachment=raw.encode(), timeout=10)
            )
            assert len(replies) == 1 and replies[0].ok is not None
            ok = replies[0].ok
            reply = InferReply.decode(ok.payload.to_bytes(), ok.attachment.to_bytes())
            assert reply.status == "error" and match in reply.error, reply.error
            assert "internal" not in reply.error and "ConfigError" not in reply.error
        assert service.health().restarts == 0


def test_a_silent_cloud_is_a_timeout_not_unreachable():
    endpoint = zenoh_endpoint(free_port())
    cloud = open_session(load_zenoh_config(None, mode="peer", listen=[endpoint]))
    edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    held: list[zenoh.Query] = []
    try:
        cloud.declare_queryable(infer_key("robot1"), held.append)  # takes every query, never replies
        client = _client(edge, "robot1", timeout_s=1.0)
        reply = client.infer(_request("robot1", 1, frame(1)))
        assert reply.status == "timeout", reply.error
        held.clear()
        cloud.close()
        assert wait_until(lambda: not client.available(), 10.0)
        assert client.infer(_request("robot1", 2, frame(2))).status == "unreachable"
    finally:
        edge.close()
        cloud.close()
