"""The cloud node as a real process: Zenoh requests, f + LVM + Algorithm 1, replay buffer, CloudStatus."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zenoh
from cloud_harness import NUM_CLASSES, RosListener, frame, make_bundle, write_params
from laecips_core.algo.bundles import build_models
from laecips_core.algo.fusion import assisted_inference
from laecips_core.algo.mining import NeuralMiner
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.image_codecs import decode_jpeg, encode_jpeg
from laecips_core.lvm.registry import build_lvm
from laecips_core.services.cloud_robots import RequestEvent
from laecips_core.services.stores import replay_path, store_dir
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.storage.weight_store import WeightStore
from laecips_core.transport import (
    CloudClient,
    InferReply,
    InferRequest,
    ModelAnnouncement,
    infer_key,
    load_zenoh_config,
    open_session,
    publish_model,
)
from launch_helpers import (
    REPO_ROOT,
    ManagedProcess,
    ProcessGroup,
    free_port,
    ros_env,
    wait_until,
    zenoh_endpoint,
)
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from laecips_msgs.msg import CloudStatus

pytestmark = pytest.mark.slow
LVM_PARAMS = {"work_size": 80}
STATUS_TOPIC = "/cloud_node/status"


@dataclass
class CloudRun:
    root: Path
    session: zenoh.Session
    proc: ManagedProcess
    group: ProcessGroup

    def client(self, robot: str) -> CloudClient:
        client = CloudClient(self.session, robot, timeout_s=30.0)
        assert wait_until(client.available, 60.0), self.group.logs()
        return client

    def buffer(self, robot: str) -> ReplayBuffer:
        return ReplayBuffer(replay_path(self.root / "replay", robot))


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, initial_bundle, domain_id, ros_listener: RosListener) -> Iterator[CloudRun]:
    root = tmp_path_factory.mktemp("cloud")
    endpoint = zenoh_endpoint(free_port())
    params = write_params(
        root / "cloud.yaml",
        "cloud_node",
        {
            "robot_ids": ["robot1", "robot2"],
            "zenoh_mode": "peer",
            "zenoh_listen": [endpoint],
            "lvm": "felzenszwalb",
            "lvm_params": json.dumps(LVM_PARAMS),
            "edge_model": {"name": "tiny_fcn", "path": str(initial_bundle)},
            "num_classes": NUM_CLASSES,
            "weights_dir": str(root / "weights"),
            "replay_dir": str(root / "replay"),
            "diagnostics_period_s": 0.5,
            "allow_unsigned_weights": True,
        },
    )
    reliable = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    ros_listener.listen(CloudStatus, STATUS_TOPIC, reliable)
    with ProcessGroup(root / "logs", timeout_s=600) as group:
        shipped = REPO_ROOT / "src" / "laecips_bringup" / "config" / "cloud.yaml"
        argv = ["-m", "laecips_cloud.cloud_node", "--ros-args", "--params-file", str(shipped),
                "--params-file", str(params)]  # fmt: skip
        proc = group.start_python("cloud", argv, env=ros_env(domain_id))
        session = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
        try:
            yield CloudRun(root, session, proc, group)
        finally:
            session.close()


def _request(robot: str, frame_id: int, version: int = 0, seed: int = 0) -> InferRequest:
    rgb = frame(seed)
    return InferRequest(robot, frame_id, float(frame_id), version, NUM_CLASSES, rgb.shape[1], rgb.shape[0],
                        encode_jpeg(rgb, quality=90))  # fmt: skip


def _expected_fusion(bundle_path: Path, jpeg: bytes) -> np.ndarray:
    """F(x) computed in the test from the same bundle, LVM and Algorithm 1."""
    f, h = build_models(load_bundle(bundle_path))
    rgb = decode_jpeg(jpeg)
    probs = EdgePredictor(f, NeuralMiner(h)).predict(rgb).probs
    return np.asarray(assisted_inference(probs, build_lvm("felzenszwalb", **LVM_PARAMS).generate(rgb)))


def test_answers_with_fused_labels_and_fills_the_replay_buffer(cloud, initial_bundle):
    request = _request("robot1", 1)
    reply = cloud.client("robot1").infer(request)
    assert reply.status == "ok", (reply.error, cloud.group.logs())
    assert reply.labels is not None and reply.labels.shape == (120, 160) and reply.labels.dtype == np.uint8
    assert int(reply.labels.max()) < NUM_CLASSES
    assert reply.model_version == 0 and reply.num_masks > 1 and reply.cloud_s >= reply.lvm_s > 0
    expected = _expected_fusion(initial_bundle, request.jpeg)
    assert np.mean(expected != reply.labels) < 0.01, "the cloud's F(x) differs from f + LVM + Algorithm 1"
    with cloud.buffer("robot1") as buffer:
        assert wait_until(lambda: len(buffer) >= 1, 10.0)
        sample = buffer.samples()[-1]
    assert sample.robot_id == "robot1" and sample.model_version == 0
    np.testing.assert_array_equal(sample.labels, reply.labels)
    np.testing.assert_array_equal(sample.image, decode_jpeg(request.jpeg))
    assert sample.logits_summary is not None and sample.logits_summary.shape == (NUM_CLASSES,)


def test_malformed_requests_get_error_replies_and_the_node_keeps_serving(cloud):
    client = cloud.client("robot1")
    good_payload, good_attachment = _request("robot1", 2).encode()
    header = json.loads(good_attachment)
    cases = [
        (b"garbage", b"not json", "JSON"),
        (good_payload, json.dumps(dict(header, v=9)).encode(), "version"),
        (good_payload, json.dumps(dict(header, width=80)).encode(), "header's 80x120"),
        (good_payload[:50], good_attachment, "JPEG"),
        (good_payload, json.dumps(dict(header, robot_id="robot2")).encode(), "robot2"),
        (good_payload, json.dumps(dict(header, num_classes=7)).encode(), "classes"),
    ]
    for payload, attachment, match in cases:
        key = infer_key("robot1")
        replies = list(cloud.session.get(key, payload=payload, attachment=attachment, timeout=20))
        assert len(replies) == 1 and replies[0].ok is not None
        reply = InferReply.decode(replies[0].ok.payload.to_bytes(), replies[0].ok.attachment.to_bytes())
        assert reply.status == "error" and match in reply.error, reply.error
        assert cloud.proc.alive()
    after = client.infer(_request("robot1", 3))
    assert after.status == "ok", after.error


def test_serves_two_robots_with_their_own_buffers(cloud):
    reply = cloud.client("robot2").infer(_request("robot2", 10, seed=5))
    assert reply.status == "ok", reply.error and reply.labels is not None
    with cloud.buffer("robot2") as buffer:
        assert wait_until(lambda: len(buffer) >= 1, 10.0)
        assert {s.robot_id for s in buffer.samples()} == {"robot2"}
    with cloud.buffer("robot1") as buffer:
        assert {s.robot_id for s in buffer.samples()} == {"robot1"}


def test_follows_the_edge_model_version(cloud, tmp_path):
    v1 = make_bundle(tmp_path / "v1.safetensors", version=1, seed=1)
    WeightStore(store_dir(cloud.root / "weights", "robot1")).put(v1.read_bytes(), 1)
    client = cloud.client("robot1")
    request = _request("robot1", 20, version=1, seed=2)
    reply = client.infer(request)
    assert reply.status == "ok" and reply.model_version == 1
    assert np.mean(_expected_fusion(v1, request.jpeg) != reply.labels) < 0.01
    assert client.infer(_request("robot1", 21, version=0)).model_version == 0
    unknown = client.infer(_request("robot1", 22, version=9))
    assert unknown.status == "ok" and unknown.model_version in (0, 1)


def test_fetches_announced_weights_and_uses_them(cloud, tmp_path):
    data = make_bundle(tmp_path / "v2.safetensors", version=2, seed=2).read_bytes()
    announcement = ModelAnnouncement(2, hashlib.sha256(data).hexdigest(), "", "test", "", "tiny_fcn",
                                     NUM_CLASSES, 1.0)  # fmt: skip
    early = cloud.client("robot2").infer(_request("robot2", 29, version=2))  # before v2 exists
    assert early.status == "ok" and early.model_version == 0
    publication = publish_model(cloud.session, "robot2", 2, data, announcement)
    try:
        stored = WeightStore(store_dir(cloud.root / "weights", "robot2")).path(2)
        assert wait_until(stored.is_file, 30.0), cloud.group.logs()
        assert stored.read_bytes() == data
        reply = cloud.client("robot2").infer(_request("robot2", 30, version=2))
        assert reply.status == "ok" and reply.model_version == 2
    finally:
        publication.close()


def _status_after(cloud: CloudRun, listener: RosListener, send: Callable[[int], None],
                  predicate: Callable[[Any], bool]) -> Any | None:  # fmt: skip
    """Send requests (at most 6) until a matching CloudStatus arrives.

    ~/status is volatile: events sent before DDS discovery matched the listener are gone, so the
    test sends its own requests instead of relying on earlier tests' traffic. Only messages that
    arrive after this call started count: earlier tests' errors are in the listener's record too.
    """
    since = len(listener.received(STATUS_TOPIC))
    for attempt in range(6):
        send(100 + attempt)
        found = listener.wait_for(STATUS_TOPIC, predicate, 5.0, since=since)
        if found is not None:
            return found
    return None


def test_publishes_cloud_status_on_ros(cloud, ros_listener):
    client = cloud.client("robot1")

    def good(frame_id: int) -> None:
        assert client.infer(_request("robot1", frame_id)).status == "ok"

    def bad(frame_id: int) -> None:
        replies = cloud.session.get(infer_key("robot1"), payload=b"garbage", attachment=b"{", timeout=20)
        assert len(list(replies)) == 1

    ok = _status_after(cloud, ros_listener, good, lambda m: m.robot_id == "robot1" and not m.error)
    assert ok is not None, cloud.group.logs()
    assert ok.replay_size >= 1 and ok.num_masks > 0
    failed = _status_after(cloud, ros_listener, bad, lambda m: bool(m.error) and m.robot_id == "robot1")
    assert failed is not None, cloud.group.logs()
    assert failed.robot_id == "robot1" and "JSON" in failed.error


def test_stops_cleanly_on_sigint(cloud):
    # Ready first (run alone, SIGINT would land while Python still imports, before rclpy's handler).
    assert cloud.proc.wait_for_log(r"cloud serving", 300.0) is not None, cloud.group.logs()
    assert cloud.proc.alive()
    code = cloud.group.stop("cloud", signal.SIGINT)
    assert code == 0, cloud.group.logs()


class _Fatal(BaseException):
    """Not an Exception: gets past the worker's `except Exception` and ends its thread."""


def test_a_worker_that_dies_is_restarted_and_diagnostics_turn_warn(
    tmp_path, initial_bundle, monkeypatch: pytest.MonkeyPatch
):
    """Issue 10: a cloud worker killed by a bug is restarted, the node keeps serving, and /diagnostics says
    WARN with the reason. The node runs in this process (real rclpy, real Zenoh) so the one failure that
    can kill a worker, a BaseException from its status callback, can be injected."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from launch_helpers import random_domain_id
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from laecips_cloud import cloud_node

    original = cloud_node.CloudNode._publish_status
    broken = {"left": 1}

    def publish_status(self: cloud_node.CloudNode, event: RequestEvent) -> None:
        if broken["left"]:
            broken["left"] -= 1
            raise _Fatal("status publisher crashed")
        original(self, event)

    monkeypatch.setattr(cloud_node.CloudNode, "_publish_status", publish_status)
    domain = random_domain_id()
    listener = RosListener(domain)
    listener.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=50))
    endpoint = zenoh_endpoint(free_port())
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    overrides = [
        Parameter("robot_ids", value=["robot1"]),
        Parameter("zenoh_mode", value="peer"),
        Parameter("zenoh_listen", value=[endpoint]),
        Parameter("lvm", value="felzenszwalb"),
        Parameter("lvm_params", value=json.dumps(LVM_PARAMS)),
        Parameter("edge_model.name", value="tiny_fcn"),
        Parameter("edge_model.path", value=str(initial_bundle)),
        Parameter("num_classes", value=NUM_CLASSES),
        Parameter("weights_dir", value=str(tmp_path / "weights")),
        Parameter("replay_dir", value=str(tmp_path / "replay")),
        Parameter("workers", value=1),
        Parameter("diagnostics_period_s", value=0.2),
        Parameter("allow_unsigned_weights", value=True),
    ]
    node = cloud_node.CloudNode(context=context, parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    session = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    client = CloudClient(session, "robot1", timeout_s=30.0)

    def workers_status(msg: DiagnosticArray) -> DiagnosticStatus | None:
        return next((s for s in msg.status if s.name.endswith(": workers")), None)

    try:
        assert wait_until(client.available, 30.0)
        since = len(listener.received("/diagnostics"))
        assert listener.wait_for("/diagnostics", lambda m: workers_status(m) is not None, 10.0, since)
        ok = listener.received("/diagnostics")[-1]
        assert workers_status(ok).level == DiagnosticStatus.OK  # type: ignore[union-attr]
        first = client.infer(_request("robot1", 1))
        assert first.status == "ok", first.error  # answered before the status callback broke

        def restarted(msg: DiagnosticArray) -> bool:  # WARN, and every supervised thread running again
            status = workers_status(msg)
            values = {kv.key: kv.value for kv in status.values} if status is not None else {}
            return (
                status is not None
                and status.level == DiagnosticStatus.WARN
                and (values.get("alive") == values.get("workers"))
            )

        warn = listener.wait_for("/diagnostics", restarted, 20.0)
        assert warn is not None, (
            f"no WARN with all threads alive on /diagnostics: {listener.received('/diagnostics')[-1:]}"
        )
        status = workers_status(warn)
        assert status is not None and "status publisher crashed" in status.message
        assert {kv.key: kv.value for kv in status.values}["restarts"] == "1"
        second = client.infer(_request("robot1", 2, seed=1))
        assert second.status == "ok", second.error  # the restarted worker serves
    finally:
        client.close()
        session.close()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5.0)
        listener.close()


def test_shipped_params_refuse_to_start_without_a_trusted_key():
    """Issue 10: config/cloud.yaml as shipped (no trusted_public_key, allow_unsigned_weights false) does not
    start; the message says what to set."""
    import subprocess
    import sys

    shipped = REPO_ROOT / "src" / "laecips_bringup" / "config" / "cloud.yaml"
    argv = [sys.executable, "-m", "laecips_cloud.cloud_node", "--ros-args", "--params-file", str(shipped)]
    done = subprocess.run(argv, env=ros_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "no trusted_public_key" in done.stderr + done.stdout and "allow_unsigned_weights" in done.stderr
