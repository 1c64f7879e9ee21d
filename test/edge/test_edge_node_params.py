"""The edge node's runtime edge_model.path, node in process: checks on the callback, loading on the worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rclpy
from edge_harness import RosPeer, edge_params, frame_rgb, image_msg, mono8, wait_for
from laecips_core.services import edge_models
from launch_helpers import random_domain_id
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from laecips_edge import edge_node

BASE_STAMP = 1_700_000_000 * 1_000_000_000


class _Gate:
    """Wraps edge_models.load_candidate: records the loading thread and holds it until released."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(60.0), "the test never released the load"
        return self.real(*args, **kwargs)


@pytest.fixture
def running_edge(
    tmp_path: Path, router: tuple[str, Any], bundles: dict[int, Path]
) -> Iterator[tuple[edge_node.EdgeNode, RosPeer, threading.Thread]]:
    """An EdgeNode in this process (own context and domain, spun by a thread) and a peer feeding it."""
    endpoint, _ = router
    domain = random_domain_id()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    params = edge_params(tmp_path, endpoint, bundles[0])
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    node = edge_node.EdgeNode(context=context, parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, name="edge-executor", daemon=True)
    spinner.start()
    peer = RosPeer(domain)
    try:
        yield node, peer, spinner
    finally:
        peer.close()
        node.destroy_node()
        executor.shutdown(timeout_sec=2.0)
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5.0)


def _send(peer: RosPeer, pub: Any, index: int) -> Any:
    """Publish frame `index` and return the edge's result for it (waits up to 30 s)."""
    stamp = BASE_STAMP + index * 10_000_000
    pub.publish(image_msg(frame_rgb(index), stamp))
    assert wait_for(lambda: bool(peer.results_for(stamp)), 30.0), f"frame {index} got no result"
    return peer.results_for(stamp)[0]


def test_edge_model_path_is_checked_on_the_callback_and_loaded_by_the_update_worker(
    monkeypatch: pytest.MonkeyPatch, running_edge: Any, bundles: dict[int, Path], tmp_path: Path
) -> None:
    node, peer, spinner = running_edge
    gate = _Gate(edge_models.load_candidate)
    monkeypatch.setattr(edge_models, "load_candidate", gate)
    pub = peer.publisher("/cam")
    peer.subscribe_edge()
    assert wait_for(lambda: pub.get_subscription_count() > 0 and peer.edge_connected(), 60.0)
    first = _send(peer, pub, 0)
    assert first.model_version == 0 and (mono8(first.labels) == 2).all()

    # A valid file: accepted at once, while its load is still held on the worker.
    accepted = peer.set_parameter("edge_model.path", str(bundles[1]))
    assert accepted.successful, accepted.reason
    assert gate.entered.wait(30.0), "nobody loaded the bundle"
    assert gate.threads and all(name != spinner.name for name in gate.threads)
    held = _send(peer, pub, 1)  # the executor (camera, services) runs while the bundle loads
    assert held.model_version == 0 and (mono8(held.labels) == 2).all()
    assert peer.get_parameter("edge_model.version") == 0
    gate.release.set()
    assert wait_for(lambda: peer.get_parameter("edge_model.version") == 1, 30.0)
    after = _send(peer, pub, 2)
    assert after.model_version == 1 and (mono8(after.labels) == 5).all()
    assert peer.get_parameter("edge_model.path") == str(bundles[1])
    assert node.counters()["updates_applied"] == 1

    # Bad values: refused on the callback with the reason, nothing queued.
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    for value, reason in (
        (str(tmp_path / "nope.safetensors"), "cannot read"),
        (str(other), "not a .safetensors"),
        ("", "cannot be emptied"),
    ):
        refused = peer.set_parameter("edge_model.path", value)
        assert not refused.successful and reason in refused.reason, (value, refused.reason)
    version = peer.set_parameter("edge_model.version", 7)
    assert not version.successful and "set by the node" in version.reason
    assert len(gate.threads) == 1

    # A .safetensors file that is not a bundle passes the checks; the worker refuses it and the
    # parameter goes back to the running bundle.
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a bundle at all")
    queued = peer.set_parameter("edge_model.path", str(garbage))
    assert queued.successful, queued.reason
    assert wait_for(lambda: node.counters()["updates_refused"] == 1, 30.0)
    assert f"operator bundle {garbage} refused" in node.counters()["last_error"]
    assert wait_for(lambda: peer.get_parameter("edge_model.path") == str(bundles[1]), 10.0)
    last = _send(peer, pub, 3)
    assert last.model_version == 1 and (mono8(last.labels) == 5).all()
