"""Edge test harness: a ROS 2 peer in the test process, edge/cloud/trainer processes, tiny weight bundles."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
import zenoh
from bundle_helpers import write_tiny_bundle
from diagnostic_msgs.msg import DiagnosticArray
from launch_helpers import REPO_ROOT, ManagedProcess, ProcessGroup, RosTestNode, ros_env
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue, SetParametersResult
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from laecips_core import transport
from laecips_msgs.msg import SegmentationResult

NUM_CLASSES = 16
EDGE_FQN = "/edge_node"
RELIABLE = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


def stamp_ns(header: Any) -> int:
    """Nanoseconds of a std_msgs/Header stamp."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def mono8(msg: Image) -> np.ndarray:
    """(H, W) uint8 of a mono8 Image (checks the step)."""
    assert msg.encoding == "mono8", msg.encoding
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return data[:, : msg.width]


def rgb8(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 of an rgb8 Image."""
    assert msg.encoding == "rgb8", msg.encoding
    data = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    return data[:, : msg.width * 3].reshape(msg.height, msg.width, 3)


def frame_rgb(index: int, height: int = 120, width: int = 160) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 RGB test frame."""
    rng = np.random.default_rng(index)
    base = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))


def image_msg(rgb: np.ndarray, stamp: int, frame_id: str = "camera") -> Image:
    """sensor_msgs/Image rgb8 of an RGB array, stamped `stamp` nanoseconds (built by hand)."""
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp), 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding, msg.step, msg.is_bigendian = "rgb8", int(rgb.shape[1]) * 3, 0
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


class RosPeer(RosTestNode):
    """A node in the test process (own context and domain) that feeds the edge and records its output."""

    def __init__(self, domain_id: int) -> None:
        self.results: list[SegmentationResult] = []
        self.labels: list[Image] = []
        self.overlays: list[Image] = []
        self.diagnostics: list[DiagnosticArray] = []
        self._subs: list[Any] = []
        super().__init__(domain_id, "edge_test_peer")

    def _append(self, bucket: list[Any]) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                bucket.append(msg)

        return callback

    def subscribe_edge(self, fqn: str = EDGE_FQN) -> None:
        """Record ~/result, ~/labels, ~/overlay of the edge node and /diagnostics."""
        self._subs += [
            self.node.create_subscription(
                SegmentationResult, f"{fqn}/result", self._append(self.results), RELIABLE
            ),
            self.node.create_subscription(Image, f"{fqn}/labels", self._append(self.labels), RELIABLE),
            self.node.create_subscription(Image, f"{fqn}/overlay", self._append(self.overlays), RELIABLE),
            self.node.create_subscription(
                DiagnosticArray, "/diagnostics", self._append(self.diagnostics), RELIABLE
            ),
        ]

    def edge_connected(self) -> bool:
        """True when the edge's publishers matched our subscriptions."""
        return all(sub.get_publisher_count() > 0 for sub in self._subs[:3])

    def publisher(self, topic: str, compressed: bool = False) -> Any:
        """Reliable camera publisher (Image or CompressedImage)."""
        return self.node.create_publisher(CompressedImage if compressed else Image, topic, RELIABLE)

    def snapshot(self) -> tuple[list[SegmentationResult], list[Image], list[Image]]:
        """Copies of what was received so far."""
        with self.lock:
            return list(self.results), list(self.labels), list(self.overlays)

    def results_for(self, stamp: int) -> list[SegmentationResult]:
        """Results whose header stamp is `stamp` ns."""
        with self.lock:
            return [r for r in self.results if stamp_ns(r.header) == stamp]

    def last_diagnostics(self) -> dict[str, str]:
        """Key/values of the newest edge DiagnosticStatus ({} when none came)."""
        with self.lock:
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name.startswith("laecips_edge"):
                        return {kv.key: kv.value for kv in status.values}
        return {}

    def set_parameter(
        self, name: str, value: Any, fqn: str = EDGE_FQN, timeout_s: float = 30.0
    ) -> SetParametersResult:
        """Set one parameter of a remote node through its set_parameters service (like `ros2 param set`)."""
        pvalue = ParameterValue()
        if isinstance(value, bool):
            pvalue.type, pvalue.bool_value = ParameterType.PARAMETER_BOOL, value
        elif isinstance(value, int):
            pvalue.type, pvalue.integer_value = ParameterType.PARAMETER_INTEGER, value
        elif isinstance(value, float):
            pvalue.type, pvalue.double_value = ParameterType.PARAMETER_DOUBLE, value
        else:
            pvalue.type, pvalue.string_value = ParameterType.PARAMETER_STRING, str(value)
        request = SetParameters.Request(parameters=[ParameterMsg(name=name, value=pvalue)])
        response = self.call_service(SetParameters, f"{fqn}/set_parameters", request, timeout_s)
        return response.results[0]

    def get_parameter(self, name: str, fqn: str = EDGE_FQN, timeout_s: float = 30.0) -> Any:
        """Value of one parameter of a remote node (int, float, str or bool)."""
        response = self.call_service(
            GetParameters, f"{fqn}/get_parameters", GetParameters.Request(names=[name]), timeout_s
        )
        value = response.values[0]
        return {
            ParameterType.PARAMETER_INTEGER: value.integer_value,
            ParameterType.PARAMETER_DOUBLE: value.double_value,
            ParameterType.PARAMETER_STRING: value.string_value,
            ParameterType.PARAMETER_BOOL: value.bool_value,
        }.get(value.type)


def wait_for(predicate: Callable[[], object], timeout_s: float, period_s: float = 0.05) -> bool:
    """Poll `predicate` until true or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return bool(predicate())


def edge_params(tmp_path: Path, endpoint: str, bundle: Path, **overrides: Any) -> dict[str, Any]:
    """Parameters of an edge node for tests: tiny_fcn, 160x120 frames, reliable camera, router endpoint."""
    params: dict[str, Any] = {
        "image_topic": "/cam",
        "image_qos": "reliable",
        "queue_size": 16,
        "robot_id": "r1",
        "edge_model.name": "tiny_fcn",
        "edge_model.path": str(bundle),
        "num_classes": NUM_CLASSES,
        "miner": "neural",
        "threshold": 0.0,
        "target_upload_rate": 0.0,  # a fixed delta: the tests choose which frames are hard
        "exploration_rate": 0.0,
        "max_in_flight": 2,
        "deadline_s": 2.0,
        "zenoh_config": str(REPO_ROOT / "src" / "laecips_bringup" / "config" / "edge.json5"),
        "zenoh_connect": [endpoint],
        "weights_dir": str(tmp_path / "edge_weights"),
        "update_timeout_s": 5.0,
        "diagnostics_period_s": 0.5,
        "allow_unsigned_weights": True,  # tests that pass trusted_public_key still get it checked
    }
    params.update(overrides)
    return params


def start_edge(
    group: ProcessGroup, tmp_path: Path, domain_id: int, params: dict[str, Any], name: str = "edge"
) -> ManagedProcess:
    """Start the edge_node console script with a parameters file."""
    params_file = _write_params(tmp_path / f"{name}.yaml", params)
    exe = shutil.which("edge_node") or str(Path(sys.executable).with_name("edge_node"))
    return group.start(name, [exe, "--ros-args", "--params-file", str(params_file)], env=ros_env(domain_id))


def _write_params(path: Path, params: dict[str, Any]) -> Path:
    """A ROS 2 parameters YAML file applying `params` to every node (``/**``)."""
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}), encoding="utf-8")
    return path


def _start_cloud_side(
    group: ProcessGroup, tmp_path: Path, name: str, node: str, params: dict[str, Any], domain_id: int
) -> ManagedProcess:
    """Start ``laecips_cloud.<node>`` with the shipped config/<node without _node>.yaml, then `params`."""
    params_file = _write_params(tmp_path / f"{name}.yaml", params)
    shipped = REPO_ROOT / "src" / "laecips_bringup" / "config" / f"{node.removesuffix('_node')}.yaml"
    argv = ["-m", f"laecips_cloud.{node}", "--ros-args", "--params-file", str(shipped),
            "--params-file", str(params_file)]  # fmt: skip
    return group.start_python(name, argv, env=ros_env(domain_id))


def start_cloud(
    group: ProcessGroup,
    tmp_path: Path,
    endpoint: str,
    bundle: Path,
    domain_id: int,
    name: str = "cloud",
    **overrides: Any,
) -> ManagedProcess:
    """Start the real cloud_node (client of the router at `endpoint`) for robot r1 and wait until it serves.

    f is `bundle` (tiny_fcn, M = NUM_CLASSES), the LVM is felzenszwalb at work_size 80; the weight
    store and replay buffer live in `<tmp_path>/weights` and `<tmp_path>/replay` (shared with
    `start_trainer`), so a restarted cloud picks up where the killed one stopped.
    """
    params = {
        "robot_ids": ["r1"],
        "zenoh_mode": "client",
        "zenoh_connect": [endpoint],
        "lvm": "felzenszwalb",
        "lvm_params": json.dumps({"work_size": 80}),
        "edge_model.name": "tiny_fcn",
        "edge_model.path": str(bundle),
        "num_classes": NUM_CLASSES,
        "weights_dir": str(tmp_path / "weights"),
        "replay_dir": str(tmp_path / "replay"),
        "diagnostics_period_s": 0.5,
        "allow_unsigned_weights": True,  # tests that pass trusted_public_key still get it checked
        **overrides,
    }
    return _start_cloud_side(group, tmp_path, name, "cloud_node", params, domain_id)


def wait_cloud_serving(group: ProcessGroup, session: zenoh.Session, robot_id: str = "r1") -> None:
    """Wait (bounded, 120 s) until a cloud queryable for `robot_id` is reachable through `session`."""
    client = transport.CloudClient(session, robot_id, timeout_s=10.0)
    assert wait_for(client.available, 120), group.logs()


def start_trainer(
    group: ProcessGroup,
    tmp_path: Path,
    endpoint: str,
    bundle: Path,
    domain_id: int,
    signing_key: Path,
    name: str = "trainer",
    **overrides: Any,
) -> ManagedProcess:
    """Start the real trainer_node for robot r1 on the cloud's replay buffer and weight store.

    Trains tiny_fcn on (image, F(x)) at 120x160 as soon as the buffer holds more than `maxsize`
    samples (4 by default) and signs updates with `signing_key`.
    """
    params = {
        "robot_ids": ["r1"],
        "zenoh_mode": "client",
        "zenoh_connect": [endpoint],
        "replay_dir": str(tmp_path / "replay"),
        "weights_dir": str(tmp_path / "weights"),
        "edge_model.name": "tiny_fcn",
        "edge_model.path": str(bundle),
        "signing_key": str(signing_key),
        "signer": "test-trainer",
        "maxsize": 4,
        "epochs": 3,
        "lr": 0.01,
        "batch_size": 4,
        "input_height": 120,
        "input_width": 160,
        "min_improvement": 0.0,
        "check_period_s": 0.5,
        "train_threads": 1,
        "diagnostics_period_s": 0.5,
        **overrides,
    }
    return _start_cloud_side(group, tmp_path, name, "trainer_node", params, domain_id)


def start_cloud_double(
    group: ProcessGroup, endpoint: str, name: str = "cloud", **options: Any
) -> ManagedProcess:
    """Start test/edge/cloud_double.py (a Zenoh queryable with a fixed reply delay) and wait until ready."""
    argv = [sys.executable, str(Path(__file__).with_name("cloud_double.py")), "--connect", endpoint]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    proc = group.start(name, argv, env=ros_env())
    assert proc.wait_for_log(r'"ready": true', 60), group.logs()
    return proc


def make_bundle(path: Path, version: int, label: int | None, seed: int | None = None) -> Path:
    """A tiny_fcn + MinerNet bundle with M = NUM_CLASSES (bundle_helpers.write_tiny_bundle).

    Args:
        path: file to write.
        version: the bundle's version.
        label: f labels every pixel `label` (classifier bias); None keeps the random init, a poor f
            whose labels vary over the image.
        seed: torch seed of the random init (default: `version`).
    """
    return write_tiny_bundle(path, version, NUM_CLASSES, label=label, seed=seed)
