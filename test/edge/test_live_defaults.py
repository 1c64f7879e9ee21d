"""The edge node with its shipped defaults on a new recording: bag replay with sim time, a namespace, a
saturated h, and a cloud slower than the camera (real DDS, real Zenoh, real rosbag2 files)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from edge_harness import NUM_CLASSES, RELIABLE, edge_params, frame_rgb, start_cloud_double, wait_for
from laecips_core.storage import bags
from launch_helpers import ManagedProcess, ProcessGroup, RosTestNode, random_domain_id, ros_env
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from laecips_msgs.msg import SegmentationResult

NAMESPACE = "/robot7"
ROBOT = "robot7"
FPS = 10.0
BAG_START_S = 1000.0  # bag time, far from the wall clock (~1.7e9 s): a stamp says which clock it came from
CLASS_NAMES = [f"thing{i}" for i in range(NUM_CLASSES)]


@dataclass(frozen=True)
class _Frame:
    index: int
    task_id: int
    timestamp: float
    image: np.ndarray
    labels: np.ndarray | None


def _record(path: Path, frames: int) -> Path:
    """A new recording (the project's bag writer): camera frames at FPS in the robot's namespace."""
    stream = [
        _Frame(i, 1 + i * 5 // frames, BAG_START_S + i / FPS, frame_rgb(i), None) for i in range(frames)
    ]
    topics = bags.BagTopics(image=f"{NAMESPACE}/camera/image_raw")
    return bags.write_frames_bag(path, stream, CLASS_NAMES, topics=topics, progress=False)


def _saturated_bundle(path: Path) -> Path:
    """tiny_fcn + an h that says 0.999 on every frame (a fixed delta of 0.5 uploads nothing)."""
    from bundle_helpers import write_tiny_bundle

    return write_tiny_bundle(path, 1, NUM_CLASSES, h_constant=0.999, class_names=CLASS_NAMES)


def _params(tmp_path: Path, endpoint: str, bundle: Path, **overrides: Any) -> dict[str, Any]:
    """Harness parameters minus what the shipped defaults decide here (topic, robot id, M, upload rate)."""
    params = edge_params(tmp_path, endpoint, bundle, exploration_rate=0.0, **overrides)
    params.update(zenoh_config="", zenoh_mode="client", allow_unsigned_weights=True)
    for key in ("image_topic", "robot_id", "num_classes", "target_upload_rate", "threshold"):
        params.pop(key)
    return params


def _start_edge(group: ProcessGroup, tmp_path: Path, domain: int, params: dict[str, Any]) -> ManagedProcess:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}), encoding="utf-8")
    exe = shutil.which("edge_node") or str(Path(sys.executable).with_name("edge_node"))
    argv = [exe, "--ros-args", "-r", f"__ns:={NAMESPACE}", "--params-file", str(path)]
    return group.start("edge", argv, env=ros_env(domain))


def _play(group: ProcessGroup, bag: Path, domain: int, *extra: str) -> ManagedProcess:
    argv = [sys.executable, "-m", "laecips_core.cli", "play-bag", str(bag), "--qos", "reliable",
            "--depth", "100", "--wait-topic", f"{NAMESPACE}/camera/image_raw", *extra]  # fmt: skip
    return group.start("player", argv, env=ros_env(domain))


class _Peer(RosTestNode):
    """Records the namespaced edge's results, its latched classes and /diagnostics."""

    def __init__(self, domain: int) -> None:
        super().__init__(domain, "live_defaults_peer")
        self.results: list[SegmentationResult] = []
        self.classes: list[str] = []
        self.diagnostics: list[DiagnosticArray] = []
        latched = QoSProfile(
            depth=1,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        edge = f"{NAMESPACE}/edge_node"
        sub = self.node.create_subscription
        self.subs = [
            sub(SegmentationResult, f"{edge}/result", self._keep(self.results), RELIABLE),
            sub(String, f"{edge}/classes", self._on_classes, latched),
            sub(DiagnosticArray, "/diagnostics", self._keep(self.diagnostics), RELIABLE),
        ]

    def _keep(self, bucket: list[Any]) -> Any:
        def callback(msg: Any) -> None:
            with self.lock:
                bucket.append(msg)

        return callback

    def _on_classes(self, msg: String) -> None:
        with self.lock:
            self.classes.append(msg.data)

    def edge_results(self) -> list[SegmentationResult]:
        with self.lock:
            return [r for r in self.results if r.source == "edge"]

    def edge_diagnostics(self) -> list[tuple[float, dict[str, str]]]:
        """(header stamp in seconds, key/values) of each edge DiagnosticStatus received."""
        out = []
        with self.lock:
            arrays = list(self.diagnostics)
        for array in arrays:
            stamp = array.header.stamp.sec + array.header.stamp.nanosec * 1e-9
            for status in array.status:
                if status.name == f"laecips_edge: {ROBOT}":
                    out.append((stamp, {kv.key: kv.value for kv in status.values}))
        return out


@pytest.fixture
def peer() -> Iterator[Any]:
    made: list[_Peer] = []

    def make(domain: int) -> _Peer:
        made.append(_Peer(domain))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.mark.slow
def test_bag_replay_with_sim_time_keeps_results_diagnostics_and_the_target_upload_rate(
    tmp_path: Path, router, peer
):
    """`play-bag --clock` + use_sim_time: every frame is answered, /diagnostics keeps coming stamped in bag
    time, and with the default target_upload_rate a saturated h still uploads near 0.35 of the frames."""
    endpoint, _ = router
    domain = random_domain_id()
    frames = 60
    bag = _record(tmp_path / "recording", frames)
    bundle = _saturated_bundle(tmp_path / "bundles" / "saturated.safetensors")
    params = _params(tmp_path, endpoint, bundle, use_sim_time=True, diagnostics_period_s=0.5)
    with ProcessGroup(tmp_path / "logs", timeout_s=300) as group:
        start_cloud_double(group, endpoint, robot_id=ROBOT, label=3)
        edge = _start_edge(group, tmp_path, domain, params)
        p = peer(domain)
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in p.subs), 90), group.logs()
        player = _play(group, bag, domain, "--clock", "100")
        assert player.popen.wait(timeout=120) == 0, group.logs()
        assert wait_for(lambda: len(p.edge_results()) >= frames, 30), (len(p.edge_results()), edge.log())
        results = p.edge_results()
        uploaded = sum(r.uploaded for r in results)
        assert wait_for(lambda: sum(r.source == "cloud" for r in p.results) >= uploaded, 30), edge.log()
        diagnostics = p.edge_diagnostics()
        classes = list(p.classes)
    cur = uploaded / len(results)
    print(f"new recording, h = 0.999 on every frame: CUR {cur:.3f} ({uploaded}/{len(results)}), target 0.35")
    # The camera topic is relative (<namespace>/camera/image_raw), robot_id comes from the namespace (the
    # cloud double serves robot7 only) and M from the bundle.
    assert len(results) == frames and {r.num_classes for r in results} == {NUM_CLASSES}
    assert all(r.confidence == pytest.approx(0.999, abs=1e-6) for r in results)
    assert 0.15 <= cur <= 0.6, cur  # a fixed delta of 0.5 would give 0; TrackingDelta alone 1.0
    stamps = sorted({round(r.header.stamp.sec + r.header.stamp.nanosec * 1e-9, 3) for r in results})
    assert stamps[0] == BAG_START_S and len(stamps) == frames
    # /diagnostics follows the sim clock: stamped in bag time, several during the 6 s of replay.
    during = [(t, v) for t, v in diagnostics if BAG_START_S <= t <= BAG_START_S + frames / FPS + 1.0]
    assert len(during) >= 5 and len(during) == len(diagnostics), [t for t, _ in diagnostics]
    assert int(during[-1][1]["frames"]) > int(during[0][1]["frames"])
    # The class names travel with the results: latched on ~/classes, as a bag's classes topic.
    assert classes and bags._parse_classes(classes[-1]) == CLASS_NAMES
    assert json.loads(classes[-1])["robot_id"] == ROBOT


@pytest.mark.slow
def test_a_cloud_slower_than_the_camera_makes_the_edge_upload_less_instead_of_dropping(
    tmp_path: Path, router, peer
):
    """One upload worker, a cloud that takes 1 s per frame, a 10 Hz camera: the workers finish ~0.1
    uploads per frame, so the 0.35 target would see most uploads dropped by the newest-wins queue; the
    edge lowers its upload rate to what it measured instead."""
    endpoint, _ = router
    domain = random_domain_id()
    frames = 120
    bag = _record(tmp_path / "recording", frames)
    bundle = _saturated_bundle(tmp_path / "bundles" / "saturated.safetensors")
    params = _params(tmp_path, endpoint, bundle, max_in_flight=1, deadline_s=5.0, diagnostics_period_s=0.5)
    with ProcessGroup(tmp_path / "logs", timeout_s=300) as group:
        start_cloud_double(group, endpoint, robot_id=ROBOT, label=3, delay_s=1.0)
        edge = _start_edge(group, tmp_path, domain, params)
        p = peer(domain)
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in p.subs), 90), group.logs()
        player = _play(group, bag, domain)
        assert player.popen.wait(timeout=120) == 0, group.logs()
        assert wait_for(lambda: len(p.edge_results()) >= frames, 30), (len(p.edge_results()), edge.log())
        wait_for(lambda: p.edge_diagnostics() and p.edge_diagnostics()[-1][1]["frames"] == str(frames), 10)
        last = p.edge_diagnostics()[-1][1]
    uploaded, dropped = int(last["uploaded"]), int(last["dropped_upload"])
    print(
        f"slow cloud (1 s per frame, 1 worker, 10 Hz): uploaded {uploaded}/{frames}, dropped {dropped}, "
        f"rate now {last['upload_rate_now']}, capacity {last['upload_capacity']}, "
        f"busy {last['cloud_busy_s']} s"
    )
    assert float(last["upload_rate_now"]) < 0.2  # backed off from 0.35
    assert uploaded < 0.25 * frames  # 0.35 without the back-off
    assert dropped <= max(4, 0.5 * uploaded), last  # without it: most of ~40 uploads dropped
