"""Fixtures of the transport tests: two Zenoh peers on loopback (multicast scouting off)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zenoh
from laecips_core.transport import (
    load_zenoh_config,
    open_session,
)
from launch_helpers import free_port


@pytest.fixture
def sessions() -> Iterator[tuple[zenoh.Session, zenoh.Session]]:
    """A 'cloud' peer listening on a free loopback port and an 'edge' peer connected to it."""
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    cloud = open_session(load_zenoh_config(None, mode="peer", listen=[endpoint]))
    edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    try:
        yield cloud, edge
    finally:
        edge.close()
        cloud.close()
