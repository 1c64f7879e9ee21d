"""Edge test harness: a ROS 2 peer in the test process, edge/cloud-double processes, tiny weight bundles."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from launch_helpers import REPO_ROOT, ManagedProcess, ProcessGroup, ros_env
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue, SetParametersResult
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

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


class RosPeer:
    """A node in the test process (own context and domain) that feeds the edge and records its output."""

    def __init__(self, domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("edge_test_peer", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.results: list[SegmentationResult] = []
        self.labels: list[Image] = []
        self.overlays: list[Image] = []
        self.diagnostics: list[DiagnosticArray] = []
        self._subs: list[Any] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutdown races end the loop
                if not self.context.ok():
                    return
                raise

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

    def _call(self, srv_type: Any, name: str, request: Any, timeout_s: float) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f"service {name} not available"
            future = client.call_async(request)
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert future.done(), f"service {name} did not answer in {timeout_s} s"
            return future.result()
        finally:
            self.node.destroy_client(client)

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
        response = self._call(SetParameters, f"{fqn}/set_parameters", request, timeout_s)
        return response.results[0]

    def get_parameter(self, name: str, fqn: str = EDGE_FQN, timeout_s: float = 30.0) -> Any:
        """Value of one parameter of a remote node (int, float, str or bool)."""
        response = self._call(
            GetParameters, f"{fqn}/get_parameters", GetParameters.Request(names=[name]), timeout_s
        )
        value = response.values[0]
        return {
            ParameterType.PARAMETER_INTEGER: value.integer_value,
            ParameterType.PARAMETER_DOUBLE: value.double_value,
            ParameterType.PARAMETER_STRING: value.string_value,
            ParameterType.PARAMETER_BOOL: value.bool_value,
        }.get(value.type)

    def close(self) -> None:
        """Shut the context down and stop the spinning thread."""
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)
            self._thread.join(timeout=5.0)


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
        "exploration_rate": 0.0,
        "max_in_flight": 2,
        "deadline_s": 2.0,
        "zenoh_config": str(REPO_ROOT / "config" / "edge.json5"),
        "zenoh_connect": [endpoint],
        "weights_dir": str(tmp_path / "edge_weights"),
        "update_timeout_s": 5.0,
        "diagnostics_period_s": 0.5,
    }
    params.update(overrides)
    return params


def start_edge(
    group: ProcessGroup, tmp_path: Path, domain_id: int, params: dict[str, Any], name: str = "edge"
) -> ManagedProcess:
    """Start the edge_node console script with a parameters file."""
    params_file = tmp_path / f"{name}.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    exe = shutil.which("edge_node") or str(Path(sys.executable).with_name("edge_node"))
    return group.start(name, [exe, "--ros-args", "--params-file", str(params_file)], env=ros_env(domain_id))


def start_cloud_double(
    group: ProcessGroup, endpoint: str, name: str = "cloud", **options: Any
) -> ManagedProcess:
    """Start test/edge/cloud_double.py (a real Zenoh queryable with known labels) and wait until ready."""
    argv = [sys.executable, str(Path(__file__).with_name("cloud_double.py")), "--connect", endpoint]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    proc = group.start(name, argv, env=ros_env())
    assert proc.wait_for_log(r'"ready": true', 60), group.logs()
    return proc


def make_bundle(path: Path, version: int, label: int) -> Path:
    """A tiny_fcn + MinerNet bundle (save_bundle) whose f labels every pixel `label` (classifier bias)."""
    import torch
    from laecips_core.mining import MinerNet
    from laecips_core.models import build_edge_model

    from laecips_core import weights

    torch.manual_seed(version)
    f = build_edge_model("tiny_fcn", NUM_CLASSES)
    with torch.no_grad():
        for name in ("low_classifier", "high_classifier"):
            bias = getattr(f.head, name).bias
            bias.zero_()
            bias[label] = 50.0
    h = MinerNet(NUM_CLASSES)
    weights.save_bundle(
        path, f, h, {"model_name": "tiny_fcn", "num_classes": NUM_CLASSES, "version": version}
    )
    return path
