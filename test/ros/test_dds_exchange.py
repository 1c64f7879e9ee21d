"""Two separate processes exchange laecips_msgs over real DDS on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

PEER = Path(__file__).with_name("dds_peer.py")


def test_segmentation_result_and_model_update_cross_processes() -> None:
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 100)))
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    sub = subprocess.Popen(
        [sys.executable, str(PEER), "sub", "--seed", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pub = subprocess.run(
            [sys.executable, str(PEER), "pub", "--seed", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        out, err = sub.communicate(timeout=60)
    finally:
        sub.kill()
        sub.wait(timeout=10)
    assert pub.returncode == 0, pub.stderr
    assert sub.returncode == 0, f"subscriber got {out!r}: {err}"
    got = json.loads(out)
    expected = np.random.default_rng(5).integers(0, 19, size=(480, 640), dtype=np.uint8)
    result = got["result"]
    assert result["sha256"] == hashlib.sha256(expected.tobytes()).hexdigest()
    assert result["size"] == [480, 640, 640]
    assert result["encoding"] == "mono8"
    assert result["source"] == "cloud"
    assert result["stamp"] == [12, 345]
    assert result["model_version"] == 7
    assert abs(result["fractions_sum"] - 1.0) < 1e-4
    update = got["update"]
    assert update["version"] == 8 and update["sha256"] == "ab" * 32
    assert update["uri"] == "zenoh:laecips/r1/model/weights/8" and update["stamp"] == 99
    assert update["data_sha256"] == hashlib.sha256(bytes(range(256)) * 4).hexdigest()
