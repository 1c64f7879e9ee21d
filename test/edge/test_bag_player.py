"""`laecips play-bag` as a real process: a rosbag2 written with rosbags is replayed on real DDS."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import rclpy
from laecips_core.errors import BagError, ConfigError
from laecips_core.storage import bags
from launch_helpers import ProcessGroup, random_domain_id, ros_env
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String, UInt8

from laecips_edge import bag_player

FPS = 10.0
FRAMES = 10


class _Frame(NamedTuple):
    index: int
    task_id: int
    timestamp: float
    image: np.ndarray
    labels: np.ndarray


@pytest.fixture
def small_bag(tmp_path: Path) -> Path:
    """10 frames of 32x24 at 10 Hz (stamps 5.0, 5.1, ...), labels, tasks 0/1 and the class list."""
    frames = [
        _Frame(
            i,
            i // 5,
            5.0 + i / FPS,
            np.full((24, 32, 3), i * 20, np.uint8),
            np.full((24, 32), i % 3, np.uint8),
        )
        for i in range(FRAMES)
    ]
    return bags.write_frames_bag(tmp_path / "bag", frames, ["a", "b", "c"], progress=False)


def test_options_are_validated_and_types_resolved() -> None:
    with pytest.raises(ConfigError, match="--rate"):
        bag_player.PlayOptions(bag=Path("x"), rate=0.0).validate()
    with pytest.raises(ConfigError, match="--loop"):
        bag_player.PlayOptions(bag=Path("x"), loops=0).validate()
    assert bag_player.message_class("sensor_msgs/msg/Image") is Image
    with pytest.raises(BagError, match="no ROS 2 message class"):
        bag_player.message_class("not_a_pkg/msg/Thing")
    with pytest.raises(BagError, match="<package>/msg/<Name>"):
        bag_player.message_class("sensor_msgs/Image")


def test_missing_bag_and_topic_are_reported(tmp_path: Path, small_bag: Path) -> None:
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random_domain_id())
    node = rclpy.create_node("player_errors", context=context)
    try:
        with pytest.raises(BagError, match="does not exist"):
            bag_player.play_bag(bag_player.PlayOptions(bag=tmp_path / "nope"), node=node)
        with pytest.raises(BagError, match="not in the bag"):
            bag_player.play_bag(bag_player.PlayOptions(bag=small_bag, topics=("/nope",)), node=node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("rate", [1.0])
def test_play_bag_publishes_every_message_with_timing_types_and_latching(
    tmp_path: Path, small_bag: Path, rate: float
) -> None:
    domain = random_domain_id()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("player_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    lock = threading.Lock()
    images: list[tuple[float, Image]] = []
    tasks: list[int] = []
    classes: list[tuple[int, str]] = []
    reliable = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)

    def on_image(msg: Image) -> None:
        with lock:
            images.append((time.monotonic(), msg))

    node.create_subscription(Image, bags.DEFAULT_TOPICS.image, on_image, reliable)
    node.create_subscription(UInt8, bags.DEFAULT_TOPICS.task, lambda m: tasks.append(m.data), reliable)
    spinning = threading.Thread(target=lambda: executor.spin(), daemon=True)
    spinning.start()
    try:
        with ProcessGroup(tmp_path / "logs", timeout_s=120) as group:
            argv = [
                sys.executable, "-m", "laecips_core.cli", "play-bag", str(small_bag),
                "--rate", str(rate), "--loop", "2", "--depth", "100",
                "--wait-topic", bags.DEFAULT_TOPICS.image,
                "--topics", bags.DEFAULT_TOPICS.image, bags.DEFAULT_TOPICS.task, bags.DEFAULT_TOPICS.classes,
            ]  # fmt: skip
            player = group.start("player", argv, env=ros_env(domain))
            # A subscriber that joins in the middle of pass 1 still gets the class list, published once at
            # the start of each pass, through transient-local durability: before pass 2 begins.
            assert _wait(lambda: len(images) >= 3, 60), player.log()
            latched = QoSProfile(
                depth=1,
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )

            def on_classes(msg: String) -> None:
                with lock:
                    classes.append((len(images), msg.data))

            node.create_subscription(String, bags.DEFAULT_TOPICS.classes, on_classes, latched)
            assert player.popen.wait(timeout=90) == 0, player.log()
            assert "published 42 messages on 3 topics" in player.log(), player.log()
        assert classes and classes[0][0] < FRAMES, classes
        assert '"classes": ["a", "b", "c"]' in classes[0][1]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(images) < 2 * FRAMES:
            time.sleep(0.05)
        with lock:
            got = list(images)
        assert len(got) == 2 * FRAMES, len(got)
        assert tasks == [0] * 5 + [1] * 5 + [0] * 5 + [1] * 5
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in got]
        assert np.allclose(stamps[:FRAMES], [5.0 + i / FPS for i in range(FRAMES)])
        assert stamps[FRAMES:] == stamps[:FRAMES]  # the second pass replays the recorded headers
        first = got[3][1]
        assert first.encoding == "rgb8" and (first.height, first.width) == (24, 32)
        assert bytes(first.data) == np.full((24, 32, 3), 60, np.uint8).tobytes()
        # Real timing: one pass spans (FRAMES - 1) / FPS / rate seconds of bag time; a player that ignored
        # the timing would deliver the pass at once.
        span = got[FRAMES - 1][0] - got[0][0]
        assert span >= 0.8 * (FRAMES - 1) / FPS / rate, span
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinning.join(timeout=5)


def test_play_bag_clock_publishes_the_bags_time_and_restarts_it_each_pass(
    tmp_path: Path, small_bag: Path
) -> None:
    """`laecips play-bag --clock`: /clock carries the bag's time (5.0-5.9 s here, not the wall clock),
    reaches each message's time, and starts again at the bag's start on the next --loop pass."""
    from rosgraph_msgs.msg import Clock

    domain = random_domain_id()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("clock_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    lock = threading.Lock()
    clock: list[float] = []
    images: list[Image] = []
    reliable = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)

    def on_clock(msg: Clock) -> None:
        with lock:
            clock.append(msg.clock.sec + msg.clock.nanosec * 1e-9)

    node.create_subscription(Clock, "/clock", on_clock, reliable)
    node.create_subscription(Image, bags.DEFAULT_TOPICS.image, images.append, reliable)
    spinning = threading.Thread(target=lambda: executor.spin(), daemon=True)
    spinning.start()
    try:
        with ProcessGroup(tmp_path / "logs", timeout_s=120) as group:
            argv = [sys.executable, "-m", "laecips_core.cli", "play-bag", str(small_bag), "--loop", "2",
                    "--depth", "100", "--wait-topic", bags.DEFAULT_TOPICS.image, "--clock", "50"]  # fmt: skip
            player = group.start("player", argv, env=ros_env(domain))
            assert player.popen.wait(timeout=90) == 0, player.log()
        assert _wait(lambda: len(images) >= 2 * FRAMES, 10), len(images)
        with lock:
            got = list(clock)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinning.join(timeout=5)
    last = 5.0 + (FRAMES - 1) / FPS
    assert len(got) >= 2 * FRAMES, len(got)  # at least one /clock per message
    assert all(5.0 - 1e-6 <= t <= last + 0.15 for t in got), (min(got), max(got))
    top = next(i for i, t in enumerate(got) if t >= last - 1e-6)  # pass 1 reached the last message's time
    assert any(t <= 5.0 + 1e-6 for t in got[top:]), got[top:]  # pass 2 starts the clock again
