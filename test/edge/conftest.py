"""Fixtures of the edge tests: a Zenoh router in the test process, tiny bundles, ROS peers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zenoh
from edge_harness import RosPeer, make_bundle
from launch_helpers import free_port, zenoh_endpoint


@pytest.fixture
def router() -> Iterator[tuple[str, zenoh.Session]]:
    """A Zenoh router session in the test process on a free loopback port: (endpoint, session)."""
    from laecips_core import transport

    endpoint = zenoh_endpoint(free_port())
    session = zenoh.open(transport.load_zenoh_config(mode="router", listen=[endpoint]))
    try:
        yield endpoint, session
    finally:
        session.close()


@pytest.fixture
def bundles(tmp_path: Path) -> dict[int, Path]:
    """Bundles v0 (labels everything 2) and v1 (labels everything 5)."""
    folder = tmp_path / "bundles"
    folder.mkdir()
    return {0: make_bundle(folder / "v0.safetensors", 0, 2), 1: make_bundle(folder / "v1.safetensors", 1, 5)}


@pytest.fixture
def peer_factory() -> Iterator[Callable[[int], RosPeer]]:
    """Create RosPeers in given domains; all are closed at the end."""
    peers: list[RosPeer] = []

    def make(domain_id: int) -> RosPeer:
        peer = RosPeer(domain_id)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()
