"""transport.config: json5 loading (multicast always off), shipped configs, TLS and ACL over real Zenoh."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from laecips_core.errors import ConfigError
from laecips_core.transport import (
    CloudClient,
    load_zenoh_config,
    open_session,
)
from launch_helpers import REPO_ROOT, free_port, wait_until
from transport_helpers import _request, _serve_fused


def test_config_forces_multicast_off_and_resolves_relative_cert_paths(tmp_path):
    file = tmp_path / "conf" / "peer.json5"
    file.parent.mkdir()
    file.write_text(
        '{ mode: "peer", scouting: { multicast: { enabled: true } },'
        ' transport: { link: { tls: { root_ca_certificate: "certs/ca.pem" } } } }'
    )
    cfg = load_zenoh_config(
        str(file),
        listen=["tcp/127.0.0.1:7999"],
        overrides={"scouting/multicast/enabled": True, "transport/shared_memory/enabled": False},
    )
    assert json.loads(cfg.get_json("scouting/multicast/enabled")) is False
    assert json.loads(cfg.get_json("transport/shared_memory/enabled")) is False
    assert json.loads(cfg.get_json("listen/endpoints")) == ["tcp/127.0.0.1:7999"]
    ca = json.loads(cfg.get_json("transport/link/tls/root_ca_certificate"))
    assert ca == str((file.parent / "certs" / "ca.pem").resolve())
    # no file: Zenoh's implicit listeners on every interface are narrowed to loopback
    default = json.loads(load_zenoh_config(None).get_json("listen/endpoints"))
    assert all("127.0.0.1" in e for eps in default.values() for e in eps)


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_zenoh_config(str(tmp_path / "missing.json5"))
    bad = tmp_path / "bad.json5"
    bad.write_text("{ mode: ")
    with pytest.raises(ConfigError, match="json5"):
        load_zenoh_config(str(bad))
    with pytest.raises(ConfigError, match="mode"):
        load_zenoh_config(None, mode="bogus")
    with pytest.raises(ConfigError, match="endpoint"):
        load_zenoh_config(None, connect=["127.0.0.1:7447"])
    with pytest.raises(ConfigError, match="refused"):
        load_zenoh_config(None, overrides={"no/such/key": 1})


def test_shipped_configs_load():
    for name in ("router", "cloud", "edge", "tls/router", "tls/cloud", "tls/trainer", "tls/edge"):
        cfg = load_zenoh_config(str(REPO_ROOT / "src" / "laecips_bringup" / "config" / f"{name}.json5"))
        assert json.loads(cfg.get_json("scouting/multicast/enabled")) is False
        assert json.loads(cfg.get_json("transport/shared_memory/enabled")) is False


# ------------------------------------------------------------------------------------ TLS and ACL


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    out = tmp_path_factory.mktemp("certs")
    _gen_certs(out)
    return out


def _gen_certs(out: Path) -> None:
    """scripts/gen_certs.sh into `out` for robot1 and robot2 (a fresh CA each call)."""
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "gen_certs.sh"), str(out), "robot1,robot2"],
                   check=True, timeout=60)  # fmt: skip


def _tls_paths(certs: Path, who: str) -> dict[str, object]:
    """Overrides pointing a shipped config/tls file at `who`'s bundle (router, cloud, trainer, robot1...)."""
    folder = certs / who
    paths: dict[str, object] = {"transport/link/tls/root_ca_certificate": str(folder / "ca.pem")}
    side = "listen" if who == "router" else "connect"
    paths[f"transport/link/tls/{side}_certificate"] = str(folder / "cert.pem")
    paths[f"transport/link/tls/{side}_private_key"] = str(folder / "key.pem")
    return paths


def test_mutual_tls_router_with_acl_blocks_other_robots_keys(certs):
    """The shipped config/tls files: mTLS works and edge-robot1 cannot reach robot2's keys."""
    endpoint = [f"tls/127.0.0.1:{free_port()}"]
    conf = REPO_ROOT / "src" / "laecips_bringup" / "config" / "tls"
    router = open_session(load_zenoh_config(str(conf / "router.json5"), listen=endpoint,
                                            overrides=_tls_paths(certs, "router")))  # fmt: skip
    opened = [router]
    try:
        cloud = open_session(load_zenoh_config(str(conf / "cloud.json5"), connect=endpoint,
                                               overrides=_tls_paths(certs, "cloud")))  # fmt: skip
        opened.append(cloud)
        edge = open_session(load_zenoh_config(str(conf / "edge.json5"), connect=endpoint,
                                              overrides=_tls_paths(certs, "robot1")))  # fmt: skip
        opened.append(edge)
        for robot in ("robot1", "robot2"):
            _serve_fused(cloud, robot)
        client1 = CloudClient(edge, "robot1", timeout_s=5.0)
        assert wait_until(client1.available, 10.0)
        assert client1.infer(_request()).status == "ok"
        client2 = CloudClient(edge, "robot2", timeout_s=2.0)
        assert client2.infer(_request(robot_id="robot2")).status == "unreachable"  # ACL: empty reply
        # control: robot2's own certificate does reach robot2's cloud through the same router
        admin = open_session(load_zenoh_config(str(conf / "edge.json5"), connect=endpoint,
                                               overrides=_tls_paths(certs, "robot2")))  # fmt: skip
        opened.append(admin)
        admin_client = CloudClient(admin, "robot2", timeout_s=5.0)
        assert wait_until(admin_client.available, 10.0)
        assert admin_client.infer(_request(robot_id="robot2")).status == "ok"
        assert client2.infer(_request(robot_id="robot2")).status == "unreachable"
        # a peer without a client certificate is refused by the router
        no_cert = {"transport/link/tls/root_ca_certificate": str(certs / "ca.pem"),
                   "transport/link/tls/enable_mtls": False}  # fmt: skip
        with pytest.raises(ConfigError):
            open_session(load_zenoh_config(str(conf / "edge.json5"), connect=endpoint, overrides=no_cert))
    finally:
        for session in reversed(opened):
            session.close()


def test_tls_peer_to_peer_refuses_an_untrusted_ca(certs, tmp_path):
    endpoint = [f"tls/127.0.0.1:{free_port()}"]
    server_conf = {"transport/link/tls/listen_certificate": str(certs / "router" / "cert.pem"),
                   "transport/link/tls/listen_private_key": str(certs / "router" / "key.pem")}  # fmt: skip
    cloud = open_session(load_zenoh_config(None, mode="peer", listen=endpoint, overrides=server_conf))
    try:
        _serve_fused(cloud, "robot1")
        edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=endpoint,
                                              overrides={"transport/link/tls/root_ca_certificate":
                                                         str(certs / "ca.pem")}))  # fmt: skip
        try:
            client = CloudClient(edge, "robot1", timeout_s=5.0)
            assert wait_until(client.available, 10.0)
            assert client.infer(_request()).status == "ok"
        finally:
            edge.close()
        other = tmp_path / "other"
        _gen_certs(other)
        untrusting = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=endpoint,
                                                    overrides={"transport/link/tls/root_ca_certificate":
                                                               str(other / "ca.pem")}))  # fmt: skip
        try:  # the server's certificate is not signed by that CA: no link, so nobody answers
            client = CloudClient(untrusting, "robot1", timeout_s=2.0)
            assert not wait_until(client.available, 2.0)
            assert client.infer(_request()).status == "unreachable"
        finally:
            untrusting.close()
    finally:
        cloud.close()
