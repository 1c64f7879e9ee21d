"""A 30 Hz camera and result recorder for the WLAN tests, run inside the edge's network namespace.

Publishes 640x480 rgb8 frames of noise (about 185 KB as the edge's q75 JPEG upload) on --topic at --rate
Hz with wall-clock stamps, each carrying its frame number in a band of 40x40 black/white blocks that
survives JPEG (frame_code / read_frame_code), and records what the edge publishes. One JSON line per
event, flushed twice a second, so a test reads the file while the stream runs:

    {"t": "pub", "i": frame number, "stamp": ns, "late_s": lateness of the publish vs its schedule}
    {"t": "res", "stamp": ns, "src": edge|cloud|fallback, "hard": bool, "up": bool, "total_s": s, "recv": ns}
    {"t": "diag", "recv": ns, "kv": {key: value of the edge's DiagnosticStatus}}

Runs until SIGINT/SIGTERM or --duration seconds.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

CODE_BITS = 32
BLOCK = 40


def frame_code(rgb: np.ndarray, number: int) -> np.ndarray:
    """Write `number` into the top band of `rgb` (2 rows x 16 blocks of BLOCK px, black = 0, white = 1)."""
    for bit in range(CODE_BITS):
        row, col = divmod(bit, 16)
        value = 255 if (number >> bit) & 1 else 0
        rgb[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = value
    return rgb


def read_frame_code(rgb: np.ndarray) -> int:
    """The frame number frame_code wrote, read from block centres (any uniform scaling of a 640x480 frame)."""
    height, width = rgb.shape[:2]
    sy, sx = height / 480.0, width / 640.0
    number = 0
    for bit in range(CODE_BITS):
        row, col = divmod(bit, 16)
        y0, y1 = (
            int((row * BLOCK + 12) * sy),
            max(int((row * BLOCK + 28) * sy), int((row * BLOCK + 12) * sy) + 1),
        )
        x0, x1 = (
            int((col * BLOCK + 12) * sx),
            max(int((col * BLOCK + 28) * sx), int((col * BLOCK + 12) * sx) + 1),
        )
        if rgb[y0:y1, x0:x1].mean() > 127:
            number |= 1 << bit
    return number


def main() -> int:
    """Publish frames and record results until signalled or --duration passed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="/cam")
    parser.add_argument("--fqn", default="/edge_node", help="the edge node's name (its ~/result topic)")
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from laecips_msgs.msg import SegmentationResult

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lines: list[str] = []
    lock = threading.Lock()

    def emit(record: dict[str, Any]) -> None:
        with lock:
            lines.append(json.dumps(record))

    rclpy.init()
    node = rclpy.create_node("wlan_camera")
    qos = QoSProfile(depth=4, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
    results_qos = QoSProfile(
        depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
    )
    pub = node.create_publisher(Image, args.topic, qos)

    def on_result(msg: SegmentationResult) -> None:
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        emit({"t": "res", "stamp": stamp, "src": msg.source, "hard": bool(msg.hard), "up": bool(msg.uploaded),
              "total_s": float(msg.total_s), "recv": time.time_ns()})  # fmt: skip

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("laecips_edge"):
                emit({"t": "diag", "recv": time.time_ns(), "kv": {kv.key: kv.value for kv in status.values}})

    node.create_subscription(SegmentationResult, f"{args.fqn}/result", on_result, results_qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, results_qos)
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()

    rng = np.random.default_rng(0)
    bases = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(8)]
    out = open(args.out, "a", encoding="utf-8")  # closed in finally
    print(json.dumps({"ready": True}), flush=True)
    period = 1.0 / args.rate
    start = time.monotonic()
    next_flush = start
    number = 0
    try:
        while not stop.is_set() and time.monotonic() - start < args.duration:
            due = start + number * period
            delay = due - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            late = time.monotonic() - due
            rgb = frame_code(bases[number % len(bases)].copy(), number)
            msg = Image()
            stamp = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.header.frame_id = "camera"
            msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = 480, 640, "rgb8", 0, 640 * 3
            msg.data = rgb.tobytes()
            pub.publish(msg)
            emit({"t": "pub", "i": number, "stamp": stamp, "late_s": round(late, 4)})
            number += 1
            if time.monotonic() >= next_flush:
                with lock:
                    pending, lines[:] = list(lines), []
                out.write("".join(line + "\n" for line in pending))
                out.flush()
                next_flush = time.monotonic() + 0.5
    finally:
        stop.set()
        spinner.join(2.0)
        with lock:
            out.write("".join(line + "\n" for line in lines))
        out.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
