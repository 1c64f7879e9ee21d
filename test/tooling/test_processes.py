"""scripts/laecips_tooling/processes.py: process groups that always clean up, ports, the loopback ROS env."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest
from laecips_core.errors import ConfigError
from laecips_tooling.processes import (
    ProcessGroup,
    free_port,
    process_group,
    ros_env,
    wait_until,
    zenoh_endpoint,
)

# A child that starts a grandchild in its own process group, prints both pids and ignores SIGINT.
_PARENT_AND_CHILD = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('pids', subprocess.os.getpid(), child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); its state in /proc says it is gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_free_port_is_bindable_on_loopback_and_endpoint_is_explicit() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
    assert zenoh_endpoint(port) == f"tcp/127.0.0.1:{port}"


def test_ros_env_is_loopback_only_with_its_own_domain() -> None:
    env = ros_env(42, extra={"LAECIPS_X": "1"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["ROS_DOMAIN_ID"] == "42" and env["LAECIPS_X"] == "1"
    assert "ROS_STATIC_PEERS" not in env
    assert 1 <= int(ros_env()["ROS_DOMAIN_ID"]) <= 100


def test_group_kills_the_whole_process_group_even_when_sigint_is_ignored(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path, timeout_s=60, grace_s=0.5) as group:
        proc = group.start_python("stubborn", ["-c", _PARENT_AND_CHILD])
        match = proc.wait_for_log(r"pids (\d+) (\d+)", timeout_s=30)
        assert match, group.logs()
        pids = [int(match.group(1)), int(match.group(2))]
        assert all(_alive(pid) for pid in pids)
        with pytest.raises(ConfigError, match="still running"):
            group.start_python("stubborn", ["-c", "pass"])
    assert wait_until(lambda: not any(_alive(pid) for pid in pids), timeout_s=10), pids
    assert not proc.alive()


def test_check_timeout_stops_everything_and_says_so(tmp_path: Path) -> None:
    with process_group(tmp_path, timeout_s=0.2, grace_s=0.5) as group:
        proc = group.start(
            "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], env=ros_env(3)
        )
        time.sleep(0.3)
        with pytest.raises(TimeoutError, match="all processes were stopped"):
            group.check_timeout()
        assert not proc.alive()
    assert "==== sleeper ====" in group.logs()
