"""The demo's Zenoh router (zenoh_router entry point) as a real process: clients meet through it."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from laecips_core.errors import ConfigError
from laecips_core.image_codecs import encode_jpeg
from laecips_core.transport import (
    CloudClient,
    InferReply,
    InferRequest,
    infer_key,
    load_zenoh_config,
    open_session,
)
from launch_helpers import ProcessGroup, free_port, ros_env, wait_until, zenoh_endpoint

pytestmark = pytest.mark.slow


def _router_argv(*args: str) -> list[str]:
    exe = shutil.which("zenoh_router")
    assert exe is not None, "zenoh_router is not installed: pip install -e src/laecips_cloud"
    return [exe, *args]


def test_router_relays_queries_between_clients_and_stops_on_sigterm(tmp_path: Path):
    endpoint = zenoh_endpoint(free_port())
    with ProcessGroup(tmp_path, timeout_s=120) as group:
        router = group.start("router", _router_argv("--listen", endpoint), env=ros_env())
        match = router.wait_for_log(r"listening on (\[.*\])", 60.0)
        assert match is not None, group.logs()
        assert endpoint in match.group(1) and "router.json5" in router.log()
        # clients need their router at start; open_session retries while it comes up
        cloud = open_session(load_zenoh_config(None, mode="client", connect=[endpoint]), retry_s=20.0)
        edge = open_session(load_zenoh_config(None, mode="client", connect=[endpoint]), retry_s=20.0)
        try:
            labels = np.full((16, 24), 2, np.uint8)

            def on_query(query) -> None:
                payload, attachment = InferReply("ok", "", 5, 0, 1, 0, 0, 0, labels).encode()
                query.reply(query.key_expr, payload, attachment=attachment)

            cloud.declare_queryable(infer_key("robot1"), on_query)
            client = CloudClient(edge, "robot1", timeout_s=5.0)
            assert wait_until(client.available, 20.0)
            rgb = np.zeros((16, 24, 3), np.uint8)
            reply = client.infer(InferRequest("robot1", 5, 0.0, 0, 3, 24, 16, encode_jpeg(rgb)))
            assert reply.status == "ok" and reply.labels is not None
            np.testing.assert_array_equal(reply.labels, labels)
        finally:
            edge.close()
            cloud.close()
        code = group.stop("router", signal.SIGTERM)
        assert code == 0 and "stopped" in router.log(), router.log()


def test_router_refuses_a_busy_port(tmp_path: Path):
    endpoint = zenoh_endpoint(free_port())
    holder = open_session(load_zenoh_config(None, mode="peer", listen=[endpoint]))
    try:
        with ProcessGroup(tmp_path, timeout_s=60) as group:
            router = group.start("router", _router_argv("--listen", endpoint), env=ros_env())
            router.popen.wait(timeout=60)
            assert router.popen.returncode == 2 and "Address already in use" in router.log(), router.log()
    finally:
        holder.close()


def test_client_without_router_fails_with_a_clear_error():
    endpoint = zenoh_endpoint(free_port())
    with pytest.raises(ConfigError, match="router"):
        open_session(load_zenoh_config(None, mode="client", connect=[endpoint]), retry_s=0.3)
