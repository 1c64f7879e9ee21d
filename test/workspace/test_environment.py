"""The test environment must keep ROS 2 on loopback: fail loudly, never skip."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_discovery_range_is_localhost() -> None:
    value = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")
    assert value == "LOCALHOST", (
        f"ROS_AUTOMATIC_DISCOVERY_RANGE is {value!r}: every ROS 2 process here must stay on loopback. "
        "Run the tests through `make test` (it sources scripts/env.sh)."
    )


def test_domain_id_is_set_and_valid() -> None:
    domain = os.environ.get("ROS_DOMAIN_ID", "")
    assert domain.isdigit() and 0 <= int(domain) <= 101, f"ROS_DOMAIN_ID={domain!r} must be 0..101"


def test_fastdds_profile_is_loopback_only() -> None:
    profile = Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile.is_file(), f"Fast DDS profile {profile} missing"
    text = profile.read_text()
    assert "<useBuiltinTransports>false</useBuiltinTransports>" in text
    assert "<address>127.0.0.1</address>" in text


def test_ci_runs_only_make_test() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [line for line in lines if not line.startswith(("set ", "cd "))]
    assert commands == ["make test"], commands
