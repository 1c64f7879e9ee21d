"""Test helpers: re-exports laecips_tooling.processes (scripts/), the repo root, a spinning ROS 2 node."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from laecips_tooling.processes import (
    ManagedProcess,
    ProcessGroup,
    free_port,
    process_group,
    random_domain_id,
    ros_env,
    wait_until,
    zenoh_endpoint,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "REPO_ROOT",
    "ManagedProcess",
    "ProcessGroup",
    "RosTestNode",
    "free_port",
    "process_group",
    "random_domain_id",
    "ros_env",
    "wait_until",
    "zenoh_endpoint",
]


class RosTestNode:
    """A node in the test process with its own rclpy context and domain, spun by a daemon thread.

    Subclasses (the edge and cloud harnesses) add subscriptions to `self.node` and guard what their
    callbacks store with `self.lock`.

    Args:
        domain_id: ROS_DOMAIN_ID of the context (the processes under test use the same).
        name: node name.
    """

    def __init__(self, domain_id: int, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutdown races end the loop
                if not self.context.ok() or self._stop.is_set():
                    return
                raise

    def close(self) -> None:
        """Stop spinning (bounded join) and shut the context down."""
        import rclpy

        self._stop.set()
        self._thread.join(timeout=5.0)
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.context)

    def call_service(self, srv_type: Any, name: str, request: Any, timeout_s: float) -> Any:
        """Call service `name` and wait (bounded) for its response; AssertionError when it does not answer."""
        import time

        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f"service {name} not available"
            future = client.call_async(request)
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert future.done(), f"service {name} did not answer in {timeout_s} s"
            return future.result()
        finally:
            self.node.destroy_client(client)
