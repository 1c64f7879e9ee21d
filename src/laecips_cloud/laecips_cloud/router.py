"""Zenoh router for the demo: a Python session in "router" mode (zenohd is not installable here)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from laecips_core.errors import ConfigError

from laecips_core import transport

DEFAULT_CONFIG = "router.json5"
"""laecips_bringup config/router.json5 (installed or in this checkout): tcp/127.0.0.1:7447, no multicast."""


def build_parser() -> argparse.ArgumentParser:
    """Command line of ``zenoh_router``."""
    parser = argparse.ArgumentParser(
        prog="zenoh_router",
        description="Run a Zenoh router (Python session in router mode) until SIGINT/SIGTERM.",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="json5 config (default: laecips_bringup config/router.json5; '' for Zenoh's defaults)",
    )
    parser.add_argument(
        "--listen",
        action="append",
        default=None,
        metavar="ENDPOINT",
        help="endpoint to listen on, replacing the config's (repeatable), e.g. tcp/127.0.0.1:7447",
    )
    parser.add_argument(
        "--connect", action="append", default=None, metavar="ENDPOINT", help="endpoint of another router"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop by itself after this many seconds (0: run until signalled)",
    )
    # ros2 launch appends --ros-args ...; this is a plain process: ignore them.
    return parser


def _strip_ros_args(argv: Sequence[str]) -> list[str]:
    """Drop a trailing ``--ros-args ...`` block (added when started by ros2 launch)."""
    args = list(argv)
    return args[: args.index("--ros-args")] if "--ros-args" in args else args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point ``zenoh_router``: open the router session, print its endpoints, wait for a signal.

    Returns:
        0 after a clean stop, 2 when the config or the endpoints are unusable (e.g. port in use).
    """
    args = build_parser().parse_args(_strip_ros_args(sys.argv[1:] if argv is None else argv))
    path = args.config
    if path is None:
        found = transport.find_config(DEFAULT_CONFIG)
        path = str(found) if found is not None else ""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        print(f"zenoh_router: signal {signal.Signals(signum).name}, stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        config = transport.load_zenoh_config(
            path or None, mode="router", listen=args.listen, connect=args.connect
        )
        session = transport.open_session(config)
    except ConfigError as err:
        print(f"zenoh_router: {err}", file=sys.stderr, flush=True)
        return 2
    try:
        listen = transport.config_endpoints(config, "listen")
        print(
            f"zenoh_router: zid {session.zid()} listening on {json.dumps(listen)} "
            f"(config {path or 'zenoh defaults'}, multicast scouting off)",
            flush=True,
        )
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            stop.wait(0.2)
    finally:
        session.close()
    print("zenoh_router: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
