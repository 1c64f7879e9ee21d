"""transport.updates: publishing, fetching and verifying model updates over real Zenoh."""

from __future__ import annotations

import os
import queue
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import zenoh
from laecips_core.algo.models import build_edge_model
from laecips_core.errors import WeightsError
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.signing import generate_keypair, read_signature, sign_digest
from laecips_core.storage.weight_store import WeightStore
from laecips_core.storage.weights import serialize_bundle
from laecips_core.transport import (
    AnnouncementListener,
    ModelAnnouncement,
    fetch_into_store,
    fetch_weights,
    publish_model,
    query_latest_announcement,
    sign_announcement,
    update_key,
    weights_key,
)
from launch_helpers import wait_until
from transport_helpers import M, _announcement


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
