"""Fixtures of the cloud tests: a tiny initial bundle and a ROS listener in its own domain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cloud_harness import RosListener, make_bundle
from launch_helpers import random_domain_id


@pytest.fixture(scope="module")
def initial_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 0 of f and h: what the edges start from (tiny_fcn, 4 classes)."""
    return make_bundle(tmp_path_factory.mktemp("bundles") / "v0.safetensors", version=0)


@pytest.fixture(scope="module")
def domain_id() -> int:
    """A ROS_DOMAIN_ID of this test module's own."""
    return random_domain_id()


@pytest.fixture(scope="module")
def ros_listener(domain_id: int) -> Iterator[RosListener]:
    """A recording ROS node in the module's domain."""
    listener = RosListener(domain_id)
    try:
        yield listener
    finally:
        listener.close()
