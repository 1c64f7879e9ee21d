"""`laecips play-bag`: publish a rosbag2 on ROS 2 topics with its recorded timing (ros2 bag play stand-in)."""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from laecips_core.errors import BagError, ConfigError

MAX_RATE = 1000.0
MAX_LOOPS = 10_000
MAX_CLOCK_HZ = 1000.0
DEFAULT_CLOCK_HZ = 40.0
"""/clock rate of ``--clock`` without a value (as ros2 bag play)."""
PLAYER_NODE = "laecips_bag_player"


@dataclass(frozen=True)
class PlayOptions:
    """What ``play_bag`` does.

    Attributes:
        bag: rosbag2 directory (or its .mcap / .db3 file) with CDR messages.
        rate: time scale: 2.0 plays twice as fast as recorded (0 < rate <= 1000).
        loops: number of passes over the bag (1..10000).
        topics: topics to publish (None: every topic of the bag).
        qos: "reliable" or "best_effort" for the topics that were not latched.
        depth: history depth of every publisher.
        wait_topic: before playing, wait until ``wait_subscribers`` subscribers matched this topic.
        wait_subscribers: how many subscribers to wait for on ``wait_topic``.
        start_delay_s: pause after the subscribers matched and before the first message. Discovery is
            two-sided: the publisher can see a subscriber before that subscriber has matched the
            publisher, and a volatile message sent in between is lost.
        wait_timeout_s: give up waiting after this many seconds (then play anyway).
        clock_hz: publish ``/clock`` (rosgraph_msgs/Clock) at this rate, with the bag's time: the log
            time of the message being played, advancing with ``rate`` in between; 0 = no clock. Each
            message is published after the clock reached its log time, so nodes with
            ``use_sim_time`` see the recorded time. Each pass starts the clock again at the bag's start.
    """

    bag: Path
    rate: float = 1.0
    loops: int = 1
    topics: tuple[str, ...] | None = None
    qos: str = "reliable"
    depth: int = 10
    wait_topic: str | None = None
    wait_subscribers: int = 1
    start_delay_s: float = 0.5
    wait_timeout_s: float = 30.0
    clock_hz: float = 0.0

    def validate(self) -> PlayOptions:
        """Check the ranges; returns self.

        Raises:
            ConfigError: naming the option and what is allowed.
        """
        if not (math.isfinite(self.rate) and 0.0 < self.rate <= MAX_RATE):
            raise ConfigError(f"--rate {self.rate} must be in (0, {MAX_RATE}]")
        if not 1 <= self.loops <= MAX_LOOPS:
            raise ConfigError(f"--loop {self.loops} must be in [1, {MAX_LOOPS}]")
        if self.qos not in ("reliable", "best_effort"):
            raise ConfigError(f"--qos {self.qos!r} must be 'reliable' or 'best_effort'")
        if not 1 <= self.depth <= 1000:
            raise ConfigError(f"--depth {self.depth} must be in [1, 1000]")
        if not (0.0 <= self.wait_timeout_s <= 3600.0) or self.wait_subscribers < 0:
            raise ConfigError("--wait-timeout-s must be in [0, 3600] and --wait-subscribers >= 0")
        if not (math.isfinite(self.clock_hz) and 0.0 <= self.clock_hz <= MAX_CLOCK_HZ):
            raise ConfigError(f"--clock {self.clock_hz} Hz must be in [0, {MAX_CLOCK_HZ}] (0 = no /clock)")
        if not 0.0 <= self.start_delay_s <= 60.0:
            raise ConfigError(f"--start-delay-s {self.start_delay_s} must be in [0, 60]")
        return self


@dataclass(frozen=True)
class PlayReport:
    """What was published: messages per topic, passes done, wall time (seconds)."""

    published: dict[str, int]
    loops_done: int
    wall_s: float
    interrupted: bool = False


def message_class(msgtype: str) -> Any:
    """The rclpy message class of a rosbags type name ("sensor_msgs/msg/Image" -> sensor_msgs.msg.Image).

    Raises:
        BagError: the name is not "<pkg>/msg/<Name>" or the interface package is not importable.
    """
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise BagError(f"message type {msgtype!r} is not '<package>/msg/<Name>'")
    package, _, name = parts
    try:
        module = importlib.import_module(f"{package}.msg")
        return getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise BagError(
            f"no ROS 2 message class for {msgtype}: install/source the interface package {package} "
            "or leave the topic out with --topics"
        ) from err


def _latched(connection: Any) -> bool:
    """True when the recorder offered transient-local durability on this connection (a latched topic)."""
    profiles = getattr(getattr(connection, "ext", None), "offered_qos_profiles", None) or []
    for qos in profiles:
        durability = getattr(qos, "durability", None)
        if (
            durability is not None
            and getattr(durability, "name", str(durability)).upper() == "TRANSIENT_LOCAL"
        ):
            return True
    return False


def _open(path: Path) -> Any:
    """An (unopened) rosbags AnyReader for a rosbag2 directory, .mcap or .db3 file."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    if not path.exists():
        raise BagError(f"bag {path} does not exist: give a rosbag2 directory (see `laecips record-bag`)")
    try:
        return AnyReader([path])
    except (AnyReaderError, ValueError) as err:
        raise BagError(f"{path} is not a readable rosbag2: {err}") from err


def _select(reader: Any, topics: Sequence[str] | None) -> list[Any]:
    """Connections to play; BagError when a requested topic is missing or not CDR."""
    from rosbags.interfaces import ConnectionExtRosbag2

    available = sorted({c.topic for c in reader.connections})
    if topics:
        missing = sorted(set(topics) - set(available))
        if missing:
            raise BagError(f"topics {missing} are not in the bag; it has {available}")
    conns = [c for c in reader.connections if not topics or c.topic in topics]
    for conn in conns:
        ext = conn.ext
        if not isinstance(ext, ConnectionExtRosbag2) or ext.serialization_format != "cdr":
            raise BagError(
                f"topic {conn.topic} is not CDR-serialised rosbag2 data; only ROS 2 bags can be played"
            )
    return conns


class _SimClock:
    """Publishes /clock with the bag's time: ``bag_ns + (now - wall) * rate`` since the last anchor."""

    def __init__(self, node: Any, hz: float, rate: float) -> None:
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._msg_type = Clock
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self._pub = node.create_publisher(Clock, "/clock", qos)
        self._period = 1.0 / hz
        self._rate = rate
        self._bag_ns = 0
        self._wall = time.monotonic()
        self._last_sent = -math.inf
        self.published = 0

    def anchor(self, bag_ns: int, wall: float) -> None:
        """From now on the clock reads ``bag_ns`` at monotonic time ``wall``."""
        self._bag_ns, self._wall = int(bag_ns), wall

    def now_ns(self) -> int:
        """The bag time now (nanoseconds)."""
        return self._bag_ns + int((time.monotonic() - self._wall) * self._rate * 1e9)

    def publish(self, bag_ns: int | None = None) -> None:
        """Publish the bag time now (or ``bag_ns``)."""
        stamp = self.now_ns() if bag_ns is None else int(bag_ns)
        msg = self._msg_type()
        msg.clock.sec, msg.clock.nanosec = divmod(max(0, stamp), 1_000_000_000)
        self._pub.publish(msg)
        self._last_sent = time.monotonic()
        self.published += 1

    def tick(self) -> None:
        """Publish when a clock period has passed since the last /clock."""
        if time.monotonic() - self._last_sent >= self._period:
            self.publish()

    @property
    def period_s(self) -> float:
        """Seconds between two /clock messages."""
        return self._period


def _sleep_until(target: float, keep_going: Callable[[], bool], clock: _SimClock | None = None) -> bool:
    """Sleep until time.monotonic() reaches `target` in short steps (ticking the clock); False when told
    to stop."""
    step = 0.05 if clock is None else min(0.05, clock.period_s)
    while True:
        if not keep_going():
            return False
        if clock is not None:
            clock.tick()
        left = target - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, step))


def play_bag(
    options: PlayOptions, *, node: Any = None, progress: Callable[[str], None] | None = None
) -> PlayReport:
    """Publish the bag's messages as recorded (raw CDR bytes, no re-serialisation) with real timing.

    Message i of a pass is published at ``start + (t_i - t_0) / rate`` where t_i is its log time; each
    pass starts when the previous one ended. Latched (transient-local) topics keep that durability.
    With ``clock_hz`` > 0, ``/clock`` carries the bag's time (``PlayOptions.clock_hz``).

    Args:
        options: validated play options.
        node: an rclpy Node to publish from (None: rclpy must be initialised; a node is created).
        progress: called with one line per pass (None: silent).

    Returns:
        PlayReport.

    Raises:
        BagError: unreadable bag, unknown topic or type.
        ConfigError: bad options.
    """
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    options.validate()
    reader = _open(Path(options.bag))
    own_node = node is None
    if own_node:
        node = rclpy.create_node(PLAYER_NODE)
    published: Counter[str] = Counter()
    start_wall = time.monotonic()
    loops_done = 0
    interrupted = False
    try:
        with reader:
            conns = _select(reader, options.topics)
            reliability = (
                ReliabilityPolicy.RELIABLE if options.qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
            )
            publishers: dict[int, Any] = {}
            by_topic: dict[str, Any] = {}
            for conn in conns:
                if conn.topic in by_topic:
                    publishers[conn.id] = by_topic[conn.topic]
                    continue
                latched = _latched(conn)
                qos = QoSProfile(
                    depth=1 if latched else options.depth,
                    history=HistoryPolicy.KEEP_LAST,
                    reliability=ReliabilityPolicy.RELIABLE if latched else reliability,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
                )
                pub = node.create_publisher(message_class(conn.msgtype), conn.topic, qos)
                publishers[conn.id] = by_topic[conn.topic] = pub
            clock = _SimClock(node, options.clock_hz, options.rate) if options.clock_hz > 0 else None
            if clock is not None:
                clock.anchor(int(reader.start_time), time.monotonic())
                clock.publish(int(reader.start_time))
            if options.wait_topic:
                if options.wait_topic not in by_topic:
                    raise BagError(f"--wait-topic {options.wait_topic} is not one of the played topics")
                pub = by_topic[options.wait_topic]
                deadline = time.monotonic() + options.wait_timeout_s
                while pub.get_subscription_count() < options.wait_subscribers and time.monotonic() < deadline:
                    if clock is not None:
                        clock.anchor(int(reader.start_time), time.monotonic())
                        clock.tick()
                    time.sleep(0.05)
                if pub.get_subscription_count() < options.wait_subscribers and progress:
                    progress(
                        f"waited {options.wait_timeout_s} s for subscribers on {options.wait_topic}; playing"
                    )
                time.sleep(options.start_delay_s)
            for loop in range(options.loops):
                pass_start = time.monotonic()
                first_ns: int | None = None
                for conn, log_ns, raw in reader.messages(connections=conns):
                    if first_ns is None:
                        first_ns = int(log_ns)
                        if clock is not None:
                            clock.anchor(first_ns, pass_start)
                    target = pass_start + (int(log_ns) - first_ns) / 1e9 / options.rate
                    if not _sleep_until(target, rclpy.ok, clock):
                        interrupted = True
                        break
                    if clock is not None:  # the clock has reached this message's time before it goes out
                        clock.anchor(int(log_ns), time.monotonic())
                        clock.publish(int(log_ns))
                    publishers[conn.id].publish(bytes(raw))
                    published[conn.topic] += 1
                if interrupted:
                    break
                loops_done = loop + 1
                if progress:
                    progress(
                        f"pass {loops_done}/{options.loops}: {sum(published.values())} messages, "
                        f"{time.monotonic() - pass_start:.1f} s"
                    )
        # Reliable samples still unacknowledged die with the writer: let subscribers take them first.
        for pub in publishers.values():
            pub.wait_for_all_acked(Duration(seconds=5))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if own_node:
            node.destroy_node()
    return PlayReport(dict(published), loops_done, time.monotonic() - start_wall, interrupted)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the play-bag options to a parser (shared by `laecips play-bag` and the `bag_player` script)."""
    parser.add_argument("bag", type=Path, help="rosbag2 directory, .mcap or .db3 file")
    parser.add_argument("--rate", type=float, default=1.0, help="time scale (2 = twice as fast); default 1")
    parser.add_argument("--loop", type=int, default=1, help=f"number of passes, 1..{MAX_LOOPS}; default 1")
    parser.add_argument("--topics", nargs="+", default=None, help="topics to play (default: all)")
    parser.add_argument(
        "--qos", choices=("reliable", "best_effort"), default="reliable", help="QoS of non-latched topics"
    )
    parser.add_argument(
        "--start-delay-s", type=float, default=0.5,
        help="pause after --wait-topic matched, before playing (default 0.5 s; discovery is two-sided)",
    )  # fmt: skip
    parser.add_argument("--depth", type=int, default=10, help="publisher history depth (default 10)")
    parser.add_argument(
        "--wait-topic", default=None, help="wait for subscribers on this topic before playing"
    )
    parser.add_argument("--wait-subscribers", type=int, default=1, help="subscribers to wait for (default 1)")
    parser.add_argument(
        "--wait-timeout-s", type=float, default=30.0, help="longest wait in seconds (default 30)"
    )
    parser.add_argument(
        "--clock",
        type=float,
        nargs="?",
        const=DEFAULT_CLOCK_HZ,
        default=0.0,
        metavar="HZ",
        help=f"publish /clock with the bag's time (for use_sim_time) at HZ (default {DEFAULT_CLOCK_HZ:g} Hz)",
    )


def options_from_args(args: argparse.Namespace) -> PlayOptions:
    """PlayOptions from parsed play-bag arguments (validated)."""
    return PlayOptions(
        bag=args.bag,
        rate=args.rate,
        loops=args.loop,
        topics=tuple(args.topics) if args.topics else None,
        qos=args.qos,
        depth=args.depth,
        wait_topic=args.wait_topic,
        wait_subscribers=args.wait_subscribers,
        start_delay_s=args.start_delay_s,
        wait_timeout_s=args.wait_timeout_s,
        clock_hz=args.clock,
    ).validate()


def run(args: argparse.Namespace) -> int:
    """Handler of `laecips play-bag`: init rclpy, play, print a summary; 130 when interrupted."""
    import rclpy

    options = options_from_args(args)
    rclpy.init()
    try:
        report = play_bag(options, progress=lambda line: print(f"play-bag: {line}", flush=True))
    finally:
        rclpy.try_shutdown()
    total = sum(report.published.values())
    print(
        f"play-bag: published {total} messages on {len(report.published)} topics in {report.wall_s:.1f} s "
        f"({report.loops_done} pass(es)){' - interrupted' if report.interrupted else ''}",
        flush=True,
    )
    return 130 if report.interrupted else 0


def register(subparsers: Any) -> None:
    """Entry point of group "laecips.commands": add the `play-bag` subcommand to the laecips CLI."""
    parser = subparsers.add_parser(
        "play-bag",
        help="publish a rosbag2 on ROS 2 topics with its recorded timing (stand-in for ros2 bag play)",
        description=(
            "Publish every (or the chosen) topic of a rosbag2 with the recorded message timing scaled by "
            "--rate, --loop times. Messages are sent as recorded (CDR), with rclpy message types from "
            "the bag's type names; latched topics stay latched. Uses ROS_DOMAIN_ID of the environment."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `bag_player` (same options as `laecips play-bag`)."""
    parser = argparse.ArgumentParser(prog="bag_player", description="Publish a rosbag2 with real timing.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (BagError, ConfigError) as err:
        print(f"bag_player: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
