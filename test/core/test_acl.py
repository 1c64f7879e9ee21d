"""Least privilege on real Zenoh sessions: the shipped mTLS + ACL configs, certificates from gen_certs.sh.

Only the trainer's identity may announce and serve weights; a robot may only ask for its own inference,
receive and fetch its own updates. The CA's private key never sits in a node's certificate folder.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zenoh
from laecips_core.errors import WeightsError
from laecips_core.image_codecs import encode_jpeg
from laecips_core.transport import (
    AnnouncementListener,
    CloudClient,
    InferReply,
    InferRequest,
    ModelAnnouncement,
    ModelPublication,
    fetch_weights,
    find_config,
    infer_key,
    load_zenoh_config,
    open_session,
    publish_model,
    query_latest_announcement,
    update_key,
    weights_key,
)
from launch_helpers import REPO_ROOT, free_port, wait_until

pytestmark = pytest.mark.slow

CONFIG_OF = {"router": "router", "cloud": "cloud", "trainer": "trainer", "robot1": "edge", "robot2": "edge"}
QUIET_S = 1.0
"""How long a denied message gets to (not) arrive after an allowed one sent later has arrived (s)."""


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    out = tmp_path_factory.mktemp("certs")
    script = REPO_ROOT / "scripts" / "gen_certs.sh"
    subprocess.run(
        ["bash", str(script), str(out), "robot1,robot2"], check=True, timeout=60, capture_output=True
    )
    return out


def test_gen_certs_keeps_the_ca_key_out_of_every_node_folder(certs: Path):
    ca_key = (certs / "ca-private" / "ca.key").read_bytes()
    assert b"PRIVATE KEY" in ca_key
    nodes = ["router", "cloud", "trainer", "robot1", "robot2"]
    for node in nodes:
        folder = certs / node
        assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "cert.pem", "key.pem"], node
        for file in folder.iterdir():
            assert file.read_bytes() != ca_key, f"{file} is the CA key"
        assert (folder / "key.pem").stat().st_mode & 0o077 == 0, f"{node}/key.pem is readable by others"
    assert not (certs / "ca.key").exists() and not (certs / "ca.srl").exists()
    keys = [p for p in certs.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert sorted(str(p.relative_to(certs)) for p in keys) == sorted(
        ["ca-private/ca.key", *(f"{n}/key.pem" for n in nodes)]
    )


class Net:
    """A router with the shipped config/tls/router.json5 and one client session per identity."""

    def __init__(self, certs: Path) -> None:
        self.endpoint = [f"tls/127.0.0.1:{free_port()}"]
        self.sessions: list[zenoh.Session] = []
        self.router = self._open(certs, "router")
        self.cloud = self._open(certs, "cloud")
        self.trainer = self._open(certs, "trainer")
        self.robot1 = self._open(certs, "robot1")
        self.robot2 = self._open(certs, "robot2")

    def _open(self, certs: Path, who: str) -> zenoh.Session:
        folder = certs / who
        side = "listen" if who == "router" else "connect"
        overrides = {
            "transport/link/tls/root_ca_certificate": str(folder / "ca.pem"),
            f"transport/link/tls/{side}_certificate": str(folder / "cert.pem"),
            f"transport/link/tls/{side}_private_key": str(folder / "key.pem"),
        }
        where = {"listen": self.endpoint} if who == "router" else {"connect": self.endpoint}
        shipped = find_config(f"tls/{CONFIG_OF[who]}.json5")
        assert shipped is not None, "the shipped config/tls files are missing"
        config = load_zenoh_config(str(shipped), overrides=overrides, **where)
        session = open_session(config, retry_s=10.0)
        self.sessions.append(session)
        return session

    def close(self) -> None:
        for session in reversed(self.sessions):
            session.close()


@pytest.fixture
def net(certs: Path) -> Iterator[Net]:
    network = Net(certs)
    try:
        yield network
    finally:
        network.close()


def _bundle(version: int) -> tuple[bytes, ModelAnnouncement]:
    data = f"weights of version {version}".encode() * 10
    return data, _announcement(version, data)


def _announcement(version: int, data: bytes) -> ModelAnnouncement:
    return ModelAnnouncement(version, hashlib.sha256(data).hexdigest(), "", "", "", "tiny", 3, 0.0)


def _serve_infer(session: zenoh.Session, robot: str) -> zenoh.Queryable:
    def on_query(query: zenoh.Query) -> None:
        req = InferRequest.decode(query.payload.to_bytes(), query.attachment.to_bytes())
        labels = np.zeros((req.height, req.width), np.uint8)
        payload, attachment = InferReply("ok", "", req.frame_id, 0, 1, 0.0, 0.0, 0.0, labels).encode()
        query.reply(query.key_expr, payload, attachment=attachment)

    return session.declare_queryable(infer_key(robot), on_query)


def _request(robot: str) -> InferRequest:
    jpeg = encode_jpeg(np.zeros((8, 8, 3), np.uint8))
    return InferRequest(robot, 1, 0.0, 0, 3, 8, 8, jpeg)


class Seen:
    """Versions of the announcements a listener received: all of them, and a queue to wait on."""

    def __init__(self) -> None:
        self.versions: list[int] = []
        self.queue: queue.Queue[int] = queue.Queue()

    def __call__(self, _robot: str, announcement: ModelAnnouncement) -> None:
        self.versions.append(announcement.version)
        self.queue.put(announcement.version)


def _listen(session: zenoh.Session, robot: str) -> tuple[AnnouncementListener, Seen]:
    seen = Seen()
    return AnnouncementListener(session, robot, seen), seen


def _publish_until_seen(
    net: Net, robot: str, version: int, seen: Seen, publication: ModelPublication | None = None
) -> ModelPublication:
    """The trainer publishes `version` for `robot` (or re-puts `publication`) until `seen` gets it."""
    if publication is None:
        data, announcement = _bundle(version)
        publication = publish_model(net.trainer, robot, version, data, announcement)
    else:
        net.trainer.put(update_key(robot), publication.announcement.to_json())
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        try:
            if seen.queue.get(timeout=0.5) == version:
                return publication
        except queue.Empty:
            net.trainer.put(update_key(robot), publication.announcement.to_json())
    raise AssertionError(f"the trainer's announcement of v{version} for {robot} never arrived")


def test_robot_may_use_only_its_own_keys_and_never_publish_updates(net: Net):
    cloud_listener, cloud_seen = _listen(net.cloud, "robot1")
    robot1_listener, robot1_seen = _listen(net.robot1, "robot1")
    snoop_listener, snoop_seen = _listen(net.robot1, "robot2")  # robot1 listening on robot2's updates
    robot2_listener, robot2_seen = _listen(net.robot2, "robot2")
    _serve_infer(net.cloud, "robot1")
    _serve_infer(net.cloud, "robot2")
    try:
        # allowed: robot1 asks the cloud for inference on its own key
        client1 = CloudClient(net.robot1, "robot1", timeout_s=5.0)
        assert wait_until(client1.available, 10.0)
        assert client1.infer(_request("robot1")).status == "ok"

        # denied: robot1 declares a weights queryable and puts an announcement for "its" model
        evil = b"EVIL-WEIGHTS" * 10
        forged = _announcement(7, evil)
        evil_weights = net.robot1.declare_queryable(
            "laecips/robot1/model/weights/**",
            lambda q: q.reply(q.key_expr, evil, attachment=b'{"v":1,"version":7,"size":120}'),
        )
        evil_latest = net.robot1.declare_queryable(
            update_key("robot1"), lambda q: q.reply(q.key_expr, forged.to_json())
        )
        # allowed: the trainer's announcement arrives at the cloud (so its subscription is in place) ...
        publication = _publish_until_seen(net, "robot1", 1, cloud_seen)
        # ... robot1's forgeries, sent after it, do not (nor after the trainer's next put arrived)
        for _ in range(3):
            net.robot1.put(update_key("robot1"), forged.to_json())
        _publish_until_seen(net, "robot1", 1, cloud_seen, publication)
        time.sleep(QUIET_S)
        assert 7 not in cloud_seen.versions, "the cloud received robot1's announcement"
        assert cloud_listener.invalid == 0
        # (robot1's own subscriber sees its put: Zenoh delivers inside one session without the router)
        # the cloud fetches the trainer's bundle, but nothing robot1 serves
        data1, _ = _bundle(1)
        assert fetch_weights(net.cloud, "robot1", publication.announcement, 5.0) == data1
        with pytest.raises(WeightsError, match="nobody is serving"):
            fetch_weights(net.cloud, "robot1", forged, 3.0)
        latest = query_latest_announcement(net.cloud, "robot1", timeout_s=2.0)
        assert latest is not None and latest.version == 1, "a forged latest-announcement reply got through"
        # robot1 may query its own update and weights keys (served by the trainer)
        evil_weights.undeclare()  # (else robot1's own session answers its queries locally)
        evil_latest.undeclare()
        assert fetch_weights(net.robot1, "robot1", publication.announcement, 5.0) == data1
        latest1 = query_latest_announcement(net.robot1, "robot1", timeout_s=2.0)
        assert latest1 is not None and latest1.version == 1

        # the cloud's identity may not announce either
        _publish_until_seen(net, "robot1", 1, robot1_seen, publication)
        for _ in range(3):
            net.cloud.put(update_key("robot1"), _bundle(9)[1].to_json())
        _publish_until_seen(net, "robot1", 1, robot1_seen, publication)

        # robot2's keys: robot2 gets its update and inference, robot1 gets nothing of robot2's
        publication2 = _publish_until_seen(net, "robot2", 2, robot2_seen)
        client2 = CloudClient(net.robot2, "robot2", timeout_s=5.0)
        assert wait_until(client2.available, 10.0)
        assert client2.infer(_request("robot2")).status == "ok"
        data2, _ = _bundle(2)
        assert fetch_weights(net.robot2, "robot2", publication2.announcement, 5.0) == data2
        time.sleep(QUIET_S)
        assert snoop_seen.versions == [], "robot1 received robot2's announcement"
        assert 9 not in robot1_seen.versions, "the cloud's identity published an announcement"
        snoop = CloudClient(net.robot1, "robot2", timeout_s=2.0)
        assert snoop.infer(_request("robot2")).status == "unreachable"
        with pytest.raises(WeightsError, match="nobody is serving"):
            fetch_weights(net.robot1, "robot2", publication2.announcement, 2.0)
        assert query_latest_announcement(net.robot1, "robot2", timeout_s=1.0) is None
        assert list(net.robot1.get(weights_key("robot2", 2), timeout=1.0)) == []
    finally:
        for listener in (cloud_listener, robot1_listener, snoop_listener, robot2_listener):
            listener.close()
