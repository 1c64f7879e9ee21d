"""Cloud test harness: tiny bundles, parameter files, a ROS listener in the test process."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from bundle_helpers import write_tiny_bundle
from laecips_core.services.cloud_config import CloudConfig
from launch_helpers import RosTestNode, free_port, zenoh_endpoint
from rclpy.qos import QoSProfile

NUM_CLASSES = 4
MINER_IN_SIZE = (32, 32)


def make_bundle(path: Path, version: int = 0, seed: int = 0) -> Path:
    """A tiny_fcn f + MinerNet h bundle (M = NUM_CLASSES, h at MINER_IN_SIZE) with random weights."""
    return write_tiny_bundle(path, version, NUM_CLASSES, seed=seed, miner_in_size=MINER_IN_SIZE)


def frame(seed: int, height: int = 120, width: int = 160) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 image of 8x8 colour blocks."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))


def write_params(path: Path, node_name: str, params: dict[str, Any]) -> Path:
    """A ROS 2 parameters YAML file for one node."""
    path.write_text(yaml.safe_dump({node_name: {"ros__parameters": params}}), encoding="utf-8")
    return path


class RosListener(RosTestNode):
    """A node in the test process (own context and domain) recording messages of some topics."""

    def __init__(self, domain_id: int) -> None:
        self.messages: dict[str, list[Any]] = {}
        super().__init__(domain_id, "cloud_test_listener")

    def listen(self, msg_type: type, topic: str, qos: QoSProfile) -> None:
        """Start recording `topic`."""
        self.messages.setdefault(topic, [])

        def store(msg: Any) -> None:
            with self.lock:
                self.messages[topic].append(msg)

        self.node.create_subscription(msg_type, topic, store, qos)

    def received(self, topic: str) -> list[Any]:
        """Messages of `topic` so far."""
        with self.lock:
            return list(self.messages.get(topic, []))

    def wait_for(self, topic: str, predicate: Callable[[Any], bool], timeout_s: float,
                 since: int = 0) -> Any | None:  # fmt: skip
        """The first message of `topic` from index `since` on for which predicate holds (waits timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for msg in self.received(topic)[since:]:
                if predicate(msg):
                    return msg
            time.sleep(0.05)
        return None


def service_config(
    tmp_path: Path, initial_bundle: Path, robot_ids: tuple[str, ...] = ("robot1",), **changes: Any
) -> tuple[CloudConfig, str]:
    """A validated in-process CloudConfig (tiny f, small LVM work size, own peer endpoint), endpoint."""
    endpoint = zenoh_endpoint(free_port())
    fields: dict[str, Any] = {
        "robot_ids": robot_ids,
        "zenoh_mode": "peer",
        "zenoh_listen": (endpoint,),
        "edge_model_name": "tiny_fcn",
        "edge_model_path": str(initial_bundle),
        "weights_dir": str(tmp_path / "weights"),
        "replay_dir": str(tmp_path / "replay"),
        "lvm_params": '{"work_size": 64}',
        "allow_unsigned_weights": True,
        **changes,
    }
    return CloudConfig(**fields).validate(), endpoint
