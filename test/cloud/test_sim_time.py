"""The cloud and trainer nodes under use_sim_time: timers, /diagnostics and CloudStatus follow /clock."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from cloud_harness import NUM_CLASSES, RosListener, frame, write_params
from diagnostic_msgs.msg import DiagnosticArray
from laecips_core.image_codecs import encode_jpeg
from laecips_core.storage.signing import generate_keypair
from laecips_core.transport import CloudClient, InferRequest, load_zenoh_config, open_session
from launch_helpers import (
    REPO_ROOT,
    ProcessGroup,
    free_port,
    random_domain_id,
    ros_env,
    wait_until,
    zenoh_endpoint,
)
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from laecips_msgs.msg import CloudStatus

pytestmark = pytest.mark.slow
SIM_START_S = 2000.0  # far from the wall clock (~1.7e9 s): a stamp says which clock it came from
CONFIG = REPO_ROOT / "src" / "laecips_bringup" / "config"


def _seconds(stamp: object) -> float:
    return stamp.sec + stamp.nanosec * 1e-9  # type: ignore[attr-defined]


class _SimClock:
    """Publishes /clock from SIM_START_S, 0.05 s of sim time per 0.05 s timer tick of the test node."""

    def __init__(self, listener: RosListener) -> None:
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = listener.node.create_publisher(Clock, "/clock", qos)
        self._lock = threading.Lock()
        self.now_s = SIM_START_S
        self._timer = listener.node.create_timer(0.05, self._tick)

    def _tick(self) -> None:
        with self._lock:
            self.now_s += 0.05
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = int(self.now_s), int((self.now_s % 1.0) * 1e9)
        self._pub.publish(msg)


def test_cloud_and_trainer_nodes_follow_the_sim_clock(tmp_path: Path, initial_bundle: Path) -> None:
    """With use_sim_time the cloud's and the trainer's /diagnostics (timers and stamps) and the cloud's
    CloudStatus stamps are in /clock's time, not the wall clock's."""
    domain = random_domain_id()
    listener = RosListener(domain)
    reliable = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    listener.listen(DiagnosticArray, "/diagnostics", reliable)
    listener.listen(CloudStatus, "/cloud_node/status", reliable)
    clock = _SimClock(listener)
    priv, pub = generate_keypair(tmp_path / "keys", name="trainer")
    endpoint = zenoh_endpoint(free_port())
    common = {
        "robot_ids": ["robot1"], "zenoh_mode": "peer", "edge_model.name": "tiny_fcn",
        "edge_model.path": str(initial_bundle), "weights_dir": str(tmp_path / "weights"),
        "replay_dir": str(tmp_path / "replay"), "diagnostics_period_s": 0.5, "use_sim_time": True,
    }  # fmt: skip
    cloud_params = write_params(tmp_path / "cloud.yaml", "cloud_node", {
        **common, "zenoh_listen": [endpoint], "lvm": "felzenszwalb", "num_classes": NUM_CLASSES,
        "lvm_params": json.dumps({"work_size": 80}), "trusted_public_key": str(pub),
    })  # fmt: skip
    trainer_params = write_params(tmp_path / "trainer.yaml", "trainer_node", {
        **common, "zenoh_connect": [endpoint], "signing_key": str(priv), "check_period_s": 0.5,
    })  # fmt: skip
    session = None
    try:
        with ProcessGroup(tmp_path / "logs", timeout_s=300) as group:
            for name, shipped, params in (("cloud", "cloud.yaml", cloud_params),
                                          ("trainer", "trainer.yaml", trainer_params)):  # fmt: skip
                argv = ["-m", f"laecips_cloud.{name}_node", "--ros-args", "--params-file",
                        str(CONFIG / shipped), "--params-file", str(params)]  # fmt: skip
                group.start_python(name, argv, env=ros_env(domain))

            def statuses(prefix: str) -> list[float]:
                return [_seconds(a.header.stamp) for a in listener.received("/diagnostics")
                        if any(s.name.startswith(prefix) for s in a.status)]  # fmt: skip

            assert wait_until(lambda: len(statuses("cloud_node")) >= 3, 120), group.logs()
            assert wait_until(lambda: len(statuses("trainer_node")) >= 3, 120), group.logs()
            session = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
            client = CloudClient(session, "robot1", timeout_s=30.0)
            assert wait_until(client.available, 60.0), group.logs()
            rgb = frame(1)
            request = InferRequest("robot1", 1, 1.0, 0, NUM_CLASSES, rgb.shape[1], rgb.shape[0],
                                   encode_jpeg(rgb, quality=90))  # fmt: skip
            assert client.infer(request).status == "ok", group.logs()
            assert wait_until(lambda: listener.received("/cloud_node/status"), 20), group.logs()
        stamps = {prefix: statuses(prefix) for prefix in ("cloud_node", "trainer_node")}
        status_stamps = [_seconds(m.header.stamp) for m in listener.received("/cloud_node/status")]
        now = clock.now_s  # after the last message was read: every stamp lies in [start, now]
    finally:
        if session is not None:
            session.close()
        listener.close()
    for prefix, seen in stamps.items():
        assert all(SIM_START_S <= t <= now + 1.0 for t in seen), (prefix, seen)
    assert status_stamps and all(SIM_START_S <= t <= now + 1.0 for t in status_stamps), status_stamps
