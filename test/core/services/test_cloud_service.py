"""CloudService without ROS: trusted-key announcements, hostile announcements, a dead worker restarted."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from cloud_harness import NUM_CLASSES, make_bundle, service_config
from laecips_core.services.cloud_config import CloudConfig
from laecips_core.services.cloud_service import CloudService
from laecips_core.services.stores import store_dir
from laecips_core.storage.signing import generate_keypair, sign_digest
from laecips_core.storage.weight_store import WeightStore
from laecips_core.transport import (
    CloudClient,
    InferRequest,
    ModelAnnouncement,
    load_zenoh_config,
    open_session,
    publish_model,
    sign_announcement,
    update_key,
)
from launch_helpers import free_port, wait_until, zenoh_endpoint


def _announcement(data: bytes, version: int, signature: str = "") -> ModelAnnouncement:
    digest = hashlib.sha256(data).hexdigest()
    return ModelAnnouncement(version, digest, "", "test", signature, "tiny_fcn", NUM_CLASSES, 1.0)


def test_cloud_fetches_only_announcements_signed_by_the_trusted_key(tmp_path: Path, initial_bundle: Path):
    priv, pub = generate_keypair(tmp_path / "keys", name="trusted")
    other_priv, _ = generate_keypair(tmp_path / "keys", name="other")
    endpoint = zenoh_endpoint(free_port())
    cfg = CloudConfig(
        robot_ids=("robot1",),
        zenoh_mode="peer",
        zenoh_listen=(endpoint,),
        edge_model_name="tiny_fcn",
        edge_model_path=str(initial_bundle),
        weights_dir=str(tmp_path / "weights"),
        replay_dir=str(tmp_path / "replay"),
        trusted_public_key=str(pub),
        lvm_params='{"work_size": 64}',
    ).validate()
    cloud_session = open_session(cfg.zenoh())
    trainer = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    service = CloudService(cfg, cloud_session, logging.getLogger("cloud-test"))
    service.start()
    store = WeightStore(store_dir(cfg.weights_dir, "robot1"))
    publications = []
    try:
        assert wait_until(lambda: bool(trainer.info.peers_zid()), 10.0)
        data1 = make_bundle(tmp_path / "v1.safetensors", version=1, seed=1).read_bytes()
        refused = 0
        for announcement, reason in (
            (_announcement(data1, 1), "unsigned"),
            (sign_announcement(_announcement(data1, 1), "robot1", other_priv), "does not cover"),
            (sign_announcement(_announcement(data1, 1), "robot2", priv), "does not cover"),  # other robot
            (_announcement(data1, 1, sign_digest(priv, hashlib.sha256(data1).hexdigest())), "sha256 only"),
        ):
            publications.append(publish_model(trainer, "robot1", 1, data1, announcement))
            refused += 1
            assert wait_until(lambda c=refused: service.snapshot()["robot1"].updates_refused >= c, 20.0)
            assert reason in service.snapshot()["robot1"].last_error
            publications.pop().close()
        assert not store.path(1).exists()
        good = sign_announcement(_announcement(data1, 1), "robot1", priv)
        publications.append(publish_model(trainer, "robot1", 1, data1, good))
        assert wait_until(store.path(1).is_file, 20.0)
        assert wait_until(lambda: service.snapshot()["robot1"].updates_stored == 1, 10.0)
        assert store.path(1).read_bytes() == data1
    finally:
        for publication in publications:
            publication.close()
        service.stop()
        trainer.close()
        cloud_session.close()


_service = service_config  # (tmp_path, initial_bundle, **CloudConfig changes) -> (config, endpoint)


def test_fetch_loop_lives_through_hostile_announcements(
    tmp_path: Path, initial_bundle: Path, monkeypatch: pytest.MonkeyPatch
):
    """Refused announcements, an unexpected exception inside a fetch and garbage on the update key each
    cost a log line; the same fetch thread and listener then take the next good announcement."""
    from laecips_core.services import cloud_service

    real_fetch = cloud_service.transport.fetch_into_store

    def fetch_into_store(
        session: object, robot: str, announcement: ModelAnnouncement, *a: object, **kw: object
    ) -> tuple[Path, bool]:
        if announcement.version == 4:  # not a LaecipsError: a bug deep in a parser, say
            raise RecursionError("maximum recursion depth exceeded while decoding")
        return real_fetch(session, robot, announcement, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(cloud_service.transport, "fetch_into_store", fetch_into_store)
    cfg, endpoint = _service(tmp_path, initial_bundle)
    cloud_session = open_session(cfg.zenoh())
    trainer = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    service = CloudService(cfg, cloud_session, logging.getLogger("cloud-test"))
    service.start()
    store = WeightStore(store_dir(cfg.weights_dir, "robot1"))
    try:
        assert wait_until(lambda: bool(trainer.info.peers_zid()), 10.0)
        header = b'{"__metadata__":' + b"[" * 100_000
        deep = len(header).to_bytes(8, "little") + header  # a safetensors header nested 100k deep
        hostile = [
            (deep, _announcement(deep, 1), "corrupt safetensors header"),
            (b"", replace(_announcement(b"x", 2), uri="file:///dev/zero"), "outside this receiver's"),
            (b"", _announcement(b"y", 4), "RecursionError: maximum recursion depth"),
        ]
        for data, announcement, reason in hostile:
            before = service.snapshot()["robot1"].updates_refused
            if data:
                publications = [publish_model(trainer, "robot1", announcement.version, data, announcement)]
            else:
                publications = []
            try:
                # Re-announce until the cloud has seen it: a put sent before its subscription reached
                # this peer is lost (at most 10 tries, 3 s each).
                seen = False
                for _ in range(10):
                    trainer.put(update_key("robot1"), announcement.to_json())
                    seen = wait_until(lambda b=before: service.snapshot()["robot1"].updates_refused > b, 3.0)
                    if seen:
                        break
                assert seen
                assert reason in service.snapshot()["robot1"].last_error
            finally:
                for publication in publications:
                    publication.close()
        for junk in (b"[" * 8000, b"\xff\xfe\xfd", b'{"version": 3', b"null"):  # the listener's part
            trainer.put(update_key("robot1"), junk)
        data3 = make_bundle(tmp_path / "v3.safetensors", version=3, seed=3).read_bytes()
        good = publish_model(trainer, "robot1", 3, data3, _announcement(data3, 3))
        try:  # the same fetch thread, still alive, takes the next good announcement
            assert wait_until(store.path(3).is_file, 20.0)
        finally:
            good.close()
        assert store.versions() == [0, 3] and service.health().restarts == 0
    finally:
        service.stop()
        trainer.close()
        cloud_session.close()


class _Fatal(BaseException):
    """Not an Exception: gets past the worker's `except Exception` and ends its thread."""


def test_cloud_worker_that_dies_is_restarted_and_reported(tmp_path: Path, initial_bundle: Path):
    from cloud_harness import frame
    from laecips_core.image_codecs import encode_jpeg

    cfg, endpoint = _service(tmp_path, initial_bundle, workers=1)
    cloud_session = open_session(cfg.zenoh())
    edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=[endpoint]))
    broken = {"left": 1}

    def on_event(event: object) -> None:
        if broken["left"]:
            broken["left"] -= 1
            raise _Fatal("status publisher crashed")

    service = CloudService(cfg, cloud_session, logging.getLogger("cloud-test"), on_event)
    service.start()
    client = CloudClient(edge, "robot1", timeout_s=20.0)
    try:
        assert wait_until(client.available, 10.0)
        rgb = frame(0, 64, 64)
        jpeg = encode_jpeg(rgb, quality=90)
        first = client.infer(InferRequest("robot1", 1, 1.0, 0, NUM_CLASSES, 64, 64, jpeg))
        assert first.status == "ok", first.error  # answered before the event callback broke
        assert wait_until(lambda: service.health().restarts == 1, 10.0)
        second = client.infer(InferRequest("robot1", 2, 2.0, 0, NUM_CLASSES, 64, 64, jpeg))
        assert second.status == "ok", second.error  # the only worker was restarted
        health = service.health()
        assert (
            health.alive == 2
            and "worker-0" in health.last_death
            and "status publisher crashed" in (health.last_death)
        )
    finally:
        client.close()
        service.stop()
        edge.close()
        cloud_session.close()
