"""Fixtures of the cloud node tests: a ROS listener in the module's own domain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cloud_harness import RosListener
from launch_helpers import random_domain_id


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
