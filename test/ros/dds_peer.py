"""A separate ROS 2 process for the DDS exchange test: publishes or receives laecips_msgs."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from laecips_msgs.msg import ModelUpdate, SegmentationResult

QOS = QoSProfile(
    depth=5,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def payload(seed: int, height: int, width: int) -> np.ndarray:
    """Deterministic mono8 label map both peers can rebuild."""
    return np.random.default_rng(seed).integers(0, 19, size=(height, width), dtype=np.uint8)


def publish(args: argparse.Namespace) -> int:
    node = rclpy.create_node("laecips_dds_pub")
    res_pub = node.create_publisher(SegmentationResult, "/laecips_test/result", QOS)
    upd_pub = node.create_publisher(ModelUpdate, "/laecips_test/update", QOS)
    labels = payload(args.seed, args.height, args.width)
    msg = SegmentationResult()
    msg.header.frame_id = "camera"
    msg.header.stamp = Time(sec=12, nanosec=345)
    msg.labels.header = msg.header
    msg.labels.height, msg.labels.width = args.height, args.width
    msg.labels.encoding, msg.labels.step = "mono8", args.width
    msg.labels.data = labels.tobytes()
    msg.source = SegmentationResult.SOURCE_CLOUD
    msg.confidence, msg.hard, msg.model_version, msg.num_classes = 0.25, True, 7, 19
    msg.class_fractions = np.bincount(labels.ravel(), minlength=19).astype(np.float32) / labels.size
    msg.total_s = 0.5
    upd = ModelUpdate(version=8, sha256="ab" * 32, uri="zenoh:laecips/r1/model/weights/8", signer="trainer")
    upd.data = bytes(range(256)) * 4
    upd.stamp = Time(sec=99)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and (
        res_pub.get_subscription_count() == 0 or upd_pub.get_subscription_count() == 0
    ):
        rclpy.spin_once(node, timeout_sec=0.05)
    if res_pub.get_subscription_count() == 0:
        print("no subscriber matched", file=sys.stderr)
        return 1
    res_pub.publish(msg)
    upd_pub.publish(upd)
    end = time.monotonic() + args.linger
    while time.monotonic() < end:  # keep the writer alive so reliable delivery completes
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    return 0


def receive(args: argparse.Namespace) -> int:
    node = rclpy.create_node("laecips_dds_sub")
    got: dict[str, object] = {}

    def on_result(msg: SegmentationResult) -> None:
        got["result"] = {
            "sha256": hashlib.sha256(bytes(msg.labels.data)).hexdigest(),
            "size": [msg.labels.height, msg.labels.width, msg.labels.step],
            "encoding": msg.labels.encoding,
            "source": msg.source,
            "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
            "model_version": msg.model_version,
            "fractions_sum": float(np.sum(msg.class_fractions)),
        }

    def on_update(msg: ModelUpdate) -> None:
        got["update"] = {
            "version": msg.version,
            "sha256": msg.sha256,
            "uri": msg.uri,
            "data_sha256": hashlib.sha256(bytes(msg.data)).hexdigest(),
            "stamp": msg.stamp.sec,
        }

    node.create_subscription(SegmentationResult, "/laecips_test/result", on_result, QOS)
    node.create_subscription(ModelUpdate, "/laecips_test/update", on_update, QOS)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and len(got) < 2:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps(got))
    node.destroy_node()
    return 0 if len(got) == 2 else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["pub", "sub"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--linger", type=float, default=2.0)
    args = parser.parse_args()
    rclpy.init()
    try:
        return publish(args) if args.mode == "pub" else receive(args)
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
