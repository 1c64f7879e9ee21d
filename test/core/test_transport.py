"""Tests of the edge-cloud wire: round trips, strict validation, real Zenoh sessions, TLS and an ACL."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import zenoh
from laecips_core.errors import ConfigError, WeightsError, WireFormatError
from laecips_core.imaging import MAX_IMAGE_PIXELS, encode_jpeg
from laecips_core.models import build_edge_model
from laecips_core.transport import (
    AnnouncementListener,
    CloudClient,
    InferReply,
    InferRequest,
    ModelAnnouncement,
    fetch_into_store,
    fetch_weights,
    infer_key,
    load_zenoh_config,
    open_session,
    publish_model,
    query_latest_announcement,
    sign_announcement,
    update_key,
    verify_announcement,
    weights_key,
)
from laecips_core.weights import (
    WeightStore,
    generate_keypair,
    load_bundle,
    read_signature,
    serialize_bundle,
    sha256_bytes,
    sign_digest,
)
from launch_helpers import REPO_ROOT, free_port, wait_until

H, W, M = 24, 32, 5


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _request(**changes: object) -> InferRequest:
    fields: dict[str, object] = {
        "robot_id": "robot1",
        "frame_id": 7,
        "stamp": 12.5,
        "model_version": 3,
        "num_classes": M,
        "width": W,
        "height": H,
        "jpeg": encode_jpeg(_image()),
    }
    fields.update(changes)
    return InferRequest(**fields)  # type: ignore[arg-type]


def _header(**changes: object) -> bytes:
    _, attachment = _request().encode()
    header = json.loads(attachment)
    header.update(changes)
    for key in [k for k, v in changes.items() if v is _DROP]:
        del header[key]
    return json.dumps(header).encode()


_DROP = object()


# ------------------------------------------------------------------------------------ keys, config


def test_keys_follow_the_agreed_layout_and_refuse_bad_robot_ids():
    assert infer_key("robot_1-a") == "laecips/robot_1-a/infer"
    assert update_key("r2") == "laecips/r2/model/update"
    assert weights_key("r2", 4) == "laecips/r2/model/weights/4"
    for bad in ("", "a/b", "*", "**", "a b", "rob$ot", "x" * 65):
        with pytest.raises(ConfigError, match="robot id"):
            infer_key(bad)
    with pytest.raises(ConfigError, match="version"):
        weights_key("r2", -1)


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


# ------------------------------------------------------------------------------------ request


def test_request_round_trip_and_image_decode():
    request = _request()
    payload, attachment = request.encode()
    header = json.loads(attachment)
    assert header["v"] == 1 and header["encoding"] == "jpeg" and header["frame_id"] == 7
    decoded = InferRequest.decode(payload, attachment)
    assert decoded == request
    rgb = decoded.rgb()
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize(
    ("attachment", "match"),
    [
        (None, "no attachment"),
        (b"", "no attachment"),
        (b"\xff\xfe garbage", "not UTF-8 JSON"),
        (b"not json", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b"x" * 9000, "bytes, more than"),
        (_header(v=2), "wire version 2"),
        (_header(v=_DROP), "wire version None"),
        (_header(encoding="png"), "encoding 'png'"),
        (_header(width=-160), "outside"),
        (_header(height=0), "outside"),
        (_header(frame_id=-1), "outside"),
        (_header(width=True), "must be an integer"),
        (_header(width="160"), "must be an integer"),
        (_header(num_classes=0), "outside"),
        (_header(stamp=float("nan")), "finite"),
        (_header(robot_id="a/b"), "robot id"),
        (_header(model_version=_DROP), "must be an integer"),
        (_header(width=8192, height=8193), "MAX_IMAGE_PIXELS"),
    ],
)
def test_request_decode_rejects_malformed_headers(attachment, match):
    payload, _ = _request().encode()
    with pytest.raises(WireFormatError, match=match):
        InferRequest.decode(payload, attachment)


def test_request_decode_rejects_bad_payloads():
    payload, attachment = _request().encode()
    with pytest.raises(WireFormatError, match="empty payload"):
        InferRequest.decode(b"", attachment)
    with pytest.raises(WireFormatError, match="more than max_bytes"):
        InferRequest.decode(payload, attachment, max_bytes=len(payload) - 1)
    with pytest.raises(WireFormatError, match="SOI"):
        InferRequest.decode(b"GIF89a" + payload, attachment)
    lying = InferRequest.decode(payload, _header(width=W * 2))
    with pytest.raises(WireFormatError, match="header says"):
        lying.rgb()
    broken = InferRequest.decode(payload[:40], attachment)
    with pytest.raises(WireFormatError, match="JPEG"):
        broken.rgb()


def test_oversized_image_is_refused_before_decoding():
    assert 8192 * 8192 > MAX_IMAGE_PIXELS
    big = _request(width=8192, height=8192)
    with pytest.raises(WireFormatError, match="MAX_IMAGE_PIXELS"):
        big.encode()


# ------------------------------------------------------------------------------------ reply


def _labels(dtype: type = np.uint8, hi: int = M) -> np.ndarray:
    return np.random.default_rng(1).integers(0, hi, (H, W)).astype(dtype)


def test_reply_round_trip_uint8_and_uint16():
    for dtype, classes in ((np.uint8, M), (np.uint16, 1000)):
        labels = _labels(dtype, classes)
        reply = InferReply("ok", "", 7, 3, 12, 0.5, 0.01, 0.6, labels)
        payload, attachment = reply.encode()
        back = InferReply.decode(payload, attachment, expected_shape=(H, W), num_classes=classes)
        assert back.ok and back.labels is not None
        assert back.labels.dtype == dtype
        np.testing.assert_array_equal(back.labels, labels)
        assert (back.frame_id, back.model_version, back.num_masks) == (7, 3, 12)
        assert back.lvm_s == pytest.approx(0.5)


def test_error_reply_round_trip_has_no_labels():
    payload, attachment = InferReply("error", "bad jpeg", 4).encode()
    assert payload == b""
    back = InferReply.decode(payload, attachment)
    assert back.status == "error" and back.error == "bad jpeg" and back.labels is None and not back.ok


def test_lying_cloud_is_rejected():
    good = InferReply("ok", "", 7, 3, 2, 0.1, 0.1, 0.2, _labels())
    payload, attachment = good.encode()
    with pytest.raises(WireFormatError, match="out of range"):
        InferReply.decode(payload, attachment, expected_shape=(H, W), num_classes=3)
    with pytest.raises(WireFormatError, match="shape|max_pixels"):
        InferReply.decode(payload, attachment, expected_shape=(H, W + 1), num_classes=M)
    with pytest.raises(WireFormatError, match="shape|max_pixels"):
        InferReply.decode(payload, attachment, expected_shape=(H - 1, W), num_classes=M)
    with pytest.raises(WireFormatError, match="cannot be decoded"):
        InferReply.decode(b"\x00" * 40, attachment, expected_shape=(H, W))
    with pytest.raises(WireFormatError, match="no labels"):
        InferReply.decode(b"", attachment)
    header = json.loads(attachment)
    for key, value, match in (
        ("status", "great", "status"),
        ("lvm_s", -1.0, "below"),
        ("num_masks", -3, "outside"),
        ("error", 5, "string"),
        ("v", 0, "wire version"),
    ):
        bad = dict(header, **{key: value})
        with pytest.raises(WireFormatError, match=match):
            InferReply.decode(payload, json.dumps(bad).encode(), expected_shape=(H, W))
    with pytest.raises(WireFormatError, match="cannot be sent"):
        InferReply("timeout").encode()
    with pytest.raises(WireFormatError, match="labels"):
        InferReply("ok", labels=np.zeros((2, 2, 3), np.uint8)).encode()


# ------------------------------------------------------------------------------------ announcements


def _announcement(data: bytes, version: int = 1, **changes: object) -> ModelAnnouncement:
    import hashlib

    fields: dict[str, object] = {
        "version": version,
        "sha256": hashlib.sha256(data).hexdigest(),
        "uri": "",
        "signer": "test",
        "signature": base64.b64encode(b"s" * 64).decode(),
        "model_name": "tiny_fcn",
        "num_classes": M,
        "stamp": 1.5,
    }
    fields.update(changes)
    return ModelAnnouncement(**fields)  # type: ignore[arg-type]


def test_announcement_json_round_trip_and_validation():
    ann = _announcement(b"bundle")
    assert ModelAnnouncement.from_json(ann.to_json()) == ann
    for change, match in (
        ({"sha256": "abc"}, "sha256"),
        ({"signature": "not base64!"}, "base64"),
        ({"num_classes": 0}, "outside"),
        ({"uri": "http://evil/x"}, "uri"),
        ({"model_name": ""}, "model_name"),
    ):
        with pytest.raises(WireFormatError, match=match):
            ModelAnnouncement.from_json(json.dumps({"v": 1, **{**json.loads(ann.to_json()), **change}}))
    with pytest.raises(WireFormatError):
        ModelAnnouncement.from_json(b"\x00garbage")


# ------------------------------------------------------------------------------------ real zenoh


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


def _serve_fused(cloud: zenoh.Session, robot: str, transform: object = None) -> zenoh.Queryable:
    """A queryable that decodes the request and replies labels derived from the image (or transform's)."""

    def on_query(query: zenoh.Query) -> None:
        req = InferRequest.decode(query.payload.to_bytes(), query.attachment.to_bytes())
        labels = (req.rgb()[..., 0] % req.num_classes).astype(np.uint8)
        reply = InferReply("ok", "", req.frame_id, req.model_version, 3, 0.01, 0.001, 0.02, labels)
        if transform is not None:
            reply = transform(reply)  # type: ignore[operator]
        payload, attachment = reply.encode()
        query.reply(query.key_expr, payload, attachment=attachment)

    return cloud.declare_queryable(infer_key(robot), on_query)


def test_client_gets_fused_labels_over_zenoh(sessions):
    cloud, edge = sessions
    _serve_fused(cloud, "robot1")
    client = CloudClient(edge, "robot1", timeout_s=5.0)
    assert wait_until(client.available, 10.0), "the cloud queryable never became visible"
    request = _request()
    reply = client.infer(request)
    assert reply.status == "ok", reply.error
    assert reply.labels is not None and reply.labels.shape == (H, W)
    assert int(reply.labels.max()) < M and reply.frame_id == request.frame_id
    with pytest.raises(ConfigError):
        client.infer(_request(robot_id="robot2"))


def test_cloud_down_is_unreachable_not_an_exception(sessions):
    _, edge = sessions
    client = CloudClient(edge, "nobody", timeout_s=5.0)
    assert not client.available()
    reply = client.infer(_request(robot_id="nobody"))
    assert reply.status == "unreachable" and reply.labels is None


def test_slow_cloud_times_out(sessions):
    cloud, edge = sessions
    held: queue.Queue[zenoh.Query] = queue.Queue()
    cloud.declare_queryable(infer_key("robot1"), held.put)  # never answers in time
    client = CloudClient(edge, "robot1", timeout_s=0.3)
    assert wait_until(client.available, 10.0)
    reply = client.infer(_request())
    assert reply.status == "timeout", reply
    held.get(timeout=5).drop()


def test_invalid_and_error_replies_are_reported(sessions):
    cloud, edge = sessions
    _serve_fused(cloud, "liar", lambda r: InferReply("ok", "", r.frame_id, 0, 0, 0, 0, 0, r.labels[:, :-1]))
    _serve_fused(cloud, "other", lambda r: InferReply("ok", "", r.frame_id + 1, 0, 0, 0, 0, 0, r.labels))
    _serve_fused(cloud, "refuser", lambda r: InferReply("error", "busy", -1))
    for robot, status, match in (("liar", "invalid", "shape|max_pixels"), ("other", "invalid", "frame"),
                                 ("refuser", "error", "busy")):  # fmt: skip
        client = CloudClient(edge, robot, timeout_s=5.0)
        assert wait_until(client.available, 10.0)
        reply = client.infer(_request(robot_id=robot))
        assert reply.status == status and reply.labels is None
        assert reply.error and re.search(match, reply.error), reply.error


def test_model_publication_fetch_and_latest(sessions):
    trainer, edge = sessions
    received: queue.Queue[bytes] = queue.Queue()
    edge.declare_subscriber(update_key("robot1"), lambda s: received.put(s.payload.to_bytes()))
    bundle1, bundle2 = b"bundle-one" * 100, b"bundle-two" * 100
    with pytest.raises(WeightsError, match="sha256"):
        publish_model(trainer, "robot1", 1, bundle1, _announcement(bundle2))
    assert wait_until(lambda: bool(trainer.info.peers_zid()), 10.0)
    pub1 = publish_model(trainer, "robot1", 1, bundle1, _announcement(bundle1, 1))
    ann = ModelAnnouncement.from_json(received.get(timeout=10))
    assert ann.version == 1 and ann.uri == "zenoh:" + weights_key("robot1", 1)
    assert fetch_weights(edge, "robot1", ann, timeout_s=5.0) == bundle1
    pub2 = publish_model(trainer, "robot1", 2, bundle2, _announcement(bundle2, 2))
    assert ModelAnnouncement.from_json(received.get(timeout=10)).version == 2  # v2's queryables are declared
    latest = query_latest_announcement(edge, "robot1", timeout_s=2.0)
    assert latest is not None and latest.version == 2
    tampered = _announcement(bundle2, 1, uri=ann.uri)  # v1's key serves bundle1: hash mismatch
    with pytest.raises(WeightsError, match="does not match"):
        fetch_weights(edge, "robot1", tampered, timeout_s=5.0)
    pub1.close()
    pub2.close()
    with pytest.raises(WeightsError, match="nobody is serving"):
        fetch_weights(edge, "robot1", ann, timeout_s=1.0)
    assert query_latest_announcement(edge, "robot1", timeout_s=0.5) is None


def _signed_bundle(priv: Path, version: int, seed: int) -> tuple[bytes, ModelAnnouncement]:
    torch.manual_seed(seed)
    data = serialize_bundle(build_edge_model("tiny_fcn", M), None, {"model_name": "tiny_fcn",
                            "num_classes": str(M), "version": str(version)})  # fmt: skip
    return data, sign_announcement(_announcement(data, version, signature=""), "robot1", priv)


def _served(session: zenoh.Session, key: str) -> bool:
    """Whether some queryable answers `key` yet (a fresh declaration reaches the peer a moment later)."""
    return any(reply.ok is not None for reply in session.get(key, timeout=1.0))


def test_fetch_into_store_verifies_before_storing(sessions, tmp_path):
    trainer, edge = sessions
    priv, pub = generate_keypair(tmp_path / "keys")
    other_priv, _ = generate_keypair(tmp_path / "keys", name="intruder")
    store = WeightStore(tmp_path / "edge")
    data, ann = _signed_bundle(priv, 1, seed=1)
    assert wait_until(lambda: bool(trainer.info.peers_zid()), 10.0)
    publication = publish_model(trainer, "robot1", 1, data, ann)
    try:
        assert wait_until(lambda: _served(edge, weights_key("robot1", 1)), 10.0)

        def fetch(a: ModelAnnouncement, **kw: object) -> tuple[Path, bool]:
            args: dict[str, object] = {"model_name": "tiny_fcn", "num_classes": M, "public_key": pub}
            args.update(kw)
            return fetch_into_store(edge, "robot1", a, store, timeout_s=5.0, **args)  # type: ignore[arg-type]

        for bad, kw, match in (
            (ann, {"model_name": "lraspp_mobilenetv3"}, "does not match"),
            (ann, {"num_classes": M + 1}, "does not match"),
            (replace(ann, signature=""), {}, "unsigned"),
            (sign_announcement(ann, "robot1", other_priv), {}, "does not cover these fields"),
            (replace(ann, signature=sign_digest(priv, ann.sha256)), {}, "sha256 only"),
        ):
            with pytest.raises(WeightsError, match=match):
                fetch(bad, **kw)
        assert store.versions() == []  # nothing stored from a refused announcement
        path, fetched = fetch(ann)
        assert fetched and path.read_bytes() == data
        assert read_signature(path) == ann.signature_record("robot1")  # the signed announcement is kept
        load_bundle(path, public_key=pub, signature=read_signature(path))  # the sidecar re-verifies the file
        assert fetch(ann) == (path, False)  # already stored: not fetched again
        data2, ann2 = _signed_bundle(priv, 2, seed=2)
        store.put(data, 2)  # another file under v2's name
        with pytest.raises(WeightsError, match="holds different weights"):
            fetch(ann2)
        data3, ann3 = _signed_bundle(priv, 3, seed=3)
        relabelled = sign_announcement(replace(ann3, version=4, uri=""), "robot1", priv)  # metadata: v3
        publication4 = publish_model(trainer, "robot1", 4, data3, relabelled)
        try:
            assert wait_until(lambda: _served(edge, weights_key("robot1", 4)), 10.0)
            with pytest.raises(WeightsError, match="announced as"):
                fetch(relabelled)
        finally:
            publication4.close()
        assert 4 not in store.versions() and data2 != data
        assert fetch(ann, public_key=None)[1] is False  # without a key only the sha256 is checked
    finally:
        publication.close()


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


def test_client_is_safe_to_use_from_several_threads(sessions):
    cloud, edge = sessions
    _serve_fused(cloud, "robot1")
    client = CloudClient(edge, "robot1", timeout_s=5.0)
    assert wait_until(client.available, 10.0)
    statuses: list[str] = []

    def worker(i: int) -> None:
        statuses.append(client.infer(_request(frame_id=i)).status)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert statuses == ["ok"] * 4


# ------------------------------------------------------------------------------------ hostile peers


def test_parsers_turn_deep_nesting_and_bad_text_into_wire_format_errors():
    payload, _ = _request().encode()
    deep = b"[" * 8000  # under MAX_ATTACHMENT_BYTES: json recurses once per "[" and gives up
    for decode in (
        lambda a: InferRequest.decode(payload, a),
        lambda a: InferReply.decode(b"", a),
        ModelAnnouncement.from_json,
    ):
        with pytest.raises(WireFormatError, match="nested too deeply"):
            decode(deep)
    with pytest.raises(WireFormatError, match="UTF-8"):
        ModelAnnouncement.from_json(b"\xff\xfe{}")
    with pytest.raises(WireFormatError, match="UTF-8"):
        ModelAnnouncement.from_json("\ud800")  # a lone surrogate cannot be encoded


def _serve_lies(cloud: zenoh.Session, robot: str) -> zenoh.Queryable:
    """A cloud that answers frame 1 with a header of 8000 "[", frame 2 with a non-UTF-8 error, else well."""

    def on_query(query: zenoh.Query) -> None:
        req = InferRequest.decode(query.payload.to_bytes(), query.attachment.to_bytes())
        if req.frame_id == 1:
            query.reply(query.key_expr, b"", attachment=b"[" * 8000)
        elif req.frame_id == 2:
            query.reply_err(b"\xff\xfe cloud busy \xc3")
        else:
            labels = np.zeros((req.height, req.width), np.uint8)
            payload, attachment = InferReply("ok", "", req.frame_id, 0, 1, 0.0, 0.0, 0.0, labels).encode()
            query.reply(query.key_expr, payload, attachment=attachment)

    return cloud.declare_queryable(infer_key(robot), on_query)


def test_lying_cloud_replies_become_statuses_not_exceptions(sessions):
    cloud, edge = sessions
    _serve_lies(cloud, "robot1")
    client = CloudClient(edge, "robot1", timeout_s=5.0)
    assert wait_until(client.available, 10.0)
    nested = client.infer(_request(frame_id=1))
    assert nested.status == "invalid" and "nested too deeply" in nested.error and nested.frame_id == 1
    binary = client.infer(_request(frame_id=2))
    assert binary.status == "error" and "cloud busy" in binary.error and "\ufffd" in binary.error
    assert client.infer(_request(frame_id=3)).status == "ok"  # the same client goes on


def test_announcement_signature_covers_every_field(tmp_path):
    priv, pub = generate_keypair(tmp_path / "keys")
    other_priv, _ = generate_keypair(tmp_path / "keys", name="other")
    ann = sign_announcement(_announcement(b"bundle", 3, signature=""), "robot1", priv)
    assert ann.uri == "zenoh:" + weights_key("robot1", 3)  # what is signed is what goes on the wire
    verify_announcement(ann, "robot1", pub)
    verify_announcement(ModelAnnouncement.from_json(ann.to_json()), "robot1", pub)  # survives the wire
    verify_announcement(replace(ann, uri=""), "robot1", pub)  # "" names the same key
    for change in (
        {"version": 4},
        {"uri": "file:///dev/zero"},
        {"uri": "zenoh:" + weights_key("robot1", 4)},
        {"model_name": "lraspp_mobilenetv3"},
        {"num_classes": M + 1},
        {"stamp": 2.5},
        {"signer": "someone"},
        {"sha256": sha256_bytes(b"other bundle")},
    ):
        with pytest.raises(WeightsError, match="does not cover these fields"):
            verify_announcement(replace(ann, **change), "robot1", pub)  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match=r"does not cover these fields \(robot 'robot2'"):
        verify_announcement(ann, "robot2", pub)
    with pytest.raises(WeightsError, match="another key"):
        verify_announcement(sign_announcement(ann, "robot1", other_priv), "robot1", pub)
    with pytest.raises(WeightsError, match="sha256 only"):  # the old trainer's signature
        verify_announcement(replace(ann, signature=sign_digest(priv, ann.sha256)), "robot1", pub)
    with pytest.raises(WeightsError, match="unsigned"):
        verify_announcement(replace(ann, signature=""), "robot1", pub)


def test_replayed_signature_with_a_file_uri_is_refused_without_reading(sessions, tmp_path):
    """The attack of issue 10: a real (sha256, signature) pair, a new version, uri file:///dev/zero."""
    _, edge = sessions
    priv, pub = generate_keypair(tmp_path / "keys")
    store = WeightStore(tmp_path / "edge")
    _, ann = _signed_bundle(priv, 1, seed=1)
    replay = replace(ann, version=7, uri="file:///dev/zero")
    args: dict[str, object] = {"model_name": "tiny_fcn", "num_classes": M, "timeout_s": 1.0}
    with pytest.raises(WeightsError, match="does not cover these fields"):
        fetch_into_store(edge, "robot1", replay, store, public_key=pub, **args)  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match="outside this receiver's weight store"):
        fetch_into_store(edge, "robot1", replay, store, public_key=None, **args)  # type: ignore[arg-type]
    assert store.versions() == []


def test_file_uris_are_read_only_inside_the_receivers_store(sessions, tmp_path):
    _, edge = sessions
    store = WeightStore(tmp_path / "store")
    data = b"bundle-bytes" * 10
    inside = store.directory / "incoming.bin"
    inside.write_bytes(data)
    ann = _announcement(data, 1, uri=f"file://{inside}")
    assert fetch_weights(edge, "robot1", ann, 1.0, store=store) == data
    with pytest.raises(WeightsError, match="only inside the receiver's own weight store"):
        fetch_weights(edge, "robot1", ann, 1.0)  # no store: no local file at all
    with pytest.raises(WeightsError, match="more than max_bytes"):
        fetch_weights(edge, "robot1", ann, 1.0, store=store, max_bytes=len(data) - 1)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(data)
    fifo = store.directory / "fifo"
    os.mkfifo(fifo)  # a blocking open of a FIFO without a writer would hang the fetch for good
    (store.directory / "zero").symlink_to("/dev/zero")
    (store.directory / "escape").symlink_to(outside)
    for uri, match in (
        ("file:///dev/zero", "outside this receiver's weight store"),
        (f"file://{store.directory / 'zero'}", "outside this receiver's weight store"),
        (f"file://{store.directory / 'escape'}", "outside this receiver's weight store"),
        (f"file://{store.directory}/../outside.bin", "outside this receiver's weight store"),
        (f"file://{fifo}", "not a regular file"),
        (f"file://{store.directory / 'missing'}", "does not name an existing file"),
        ("file://relative/incoming.bin", "absolute"),
    ):
        with pytest.raises(WeightsError, match=match):
            fetch_weights(edge, "robot1", _announcement(data, 1, uri=uri), 1.0, store=store)


def test_versions_only_go_up_unless_a_rollback_is_allowed(sessions, tmp_path):
    trainer, edge = sessions
    priv, pub = generate_keypair(tmp_path / "keys")
    store = WeightStore(tmp_path / "edge")
    data1, ann1 = _signed_bundle(priv, 1, seed=1)
    data2, ann2 = _signed_bundle(priv, 2, seed=2)
    assert wait_until(lambda: bool(trainer.info.peers_zid()), 10.0)
    publications = [
        publish_model(trainer, "robot1", 1, data1, ann1),
        publish_model(trainer, "robot1", 2, data2, ann2),
    ]
    try:
        assert wait_until(
            lambda: _served(edge, weights_key("robot1", 1)) and _served(edge, weights_key("robot1", 2)), 10.0
        )

        def fetch(a: ModelAnnouncement, **kw: object) -> tuple[Path, bool]:
            args: dict[str, object] = {"model_name": "tiny_fcn", "num_classes": M, "public_key": pub}
            args.update(kw)
            return fetch_into_store(edge, "robot1", a, store, timeout_s=5.0, **args)  # type: ignore[arg-type]

        assert fetch(ann2)[1] and store.versions() == [2]
        with pytest.raises(WeightsError, match="older than the newest stored version 2"):
            fetch(ann1)
        assert store.versions() == [2]
        assert fetch(ann1, allow_rollback=True)[1] and store.versions() == [1, 2]  # the operator asked
        data3, _ = _signed_bundle(priv, 2, seed=3)
        reused = sign_announcement(_announcement(data3, 2, signature=""), "robot1", priv)  # v2, other bytes
        for allow in (False, True):
            with pytest.raises(WeightsError, match="holds different weights"):
                fetch(reused, allow_rollback=allow)
        assert store.path(2).read_bytes() == data2
        with pytest.raises(WeightsError, match="more than max_bytes"):
            fetch_weights(edge, "robot1", ann2, 5.0, max_bytes=len(data2) - 1)
    finally:
        for publication in publications:
            publication.close()


def test_listener_and_latest_query_survive_garbage_and_forgeries(sessions, tmp_path):
    trainer, edge = sessions
    priv, pub = generate_keypair(tmp_path / "keys")
    received: queue.Queue[int] = queue.Queue()

    def callback(robot: str, ann: ModelAnnouncement) -> None:
        if ann.version == 5:
            raise RuntimeError("consumer broke")
        received.put(ann.version)

    listener = AnnouncementListener(edge, "robot1", callback)
    try:
        assert wait_until(lambda: bool(trainer.info.peers_zid()), 10.0)
        probe = _announcement(b"probe", 0).to_json()
        assert wait_until(lambda: trainer.put(update_key("robot1"), probe) or not received.empty(), 10.0)
        invalid_before = listener.invalid
        for junk in (b"[" * 8000, b"\xff\xfe\xfd", b'{"v":1'):
            trainer.put(update_key("robot1"), junk)
        trainer.put(update_key("robot1"), _announcement(b"five", 5).to_json())
        trainer.put(update_key("robot1"), _announcement(b"six", 6).to_json())
        assert wait_until(lambda: 6 in list(received.queue), 10.0)
        assert listener.invalid - invalid_before == 3 and listener.errors == 1
        assert "consumer broke" in listener.last_error
    finally:
        listener.close()

    def forged(query: zenoh.Query) -> None:
        query.reply(update_key("robot1"), _announcement(b"forged", 99).to_json())
        query.reply(update_key("robot1"), b"[" * 8000)

    forger = trainer.declare_queryable(update_key("robot1"), forged)
    data, ann = _signed_bundle(priv, 1, seed=1)
    publication = publish_model(trainer, "robot1", 1, data, ann)
    try:
        assert wait_until(lambda: query_latest_announcement(edge, "robot1", 1.0) is not None, 10.0)
        unchecked = query_latest_announcement(edge, "robot1", timeout_s=2.0)
        assert unchecked is not None and unchecked.version == 99
        checked = query_latest_announcement(edge, "robot1", timeout_s=2.0, public_key=pub)
        assert checked is not None and checked.version == 1
    finally:
        publication.close()
        forger.undeclare()
