"""The edge node as a real process: real DDS on loopback, real Zenoh, tiny_fcn on 160x120 frames."""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from cloud_double import LIES
from edge_harness import (
    NUM_CLASSES,
    RosPeer,
    edge_params,
    frame_rgb,
    image_msg,
    make_bundle,
    mono8,
    rgb8,
    stamp_ns,
    start_cloud,
    start_cloud_double,
    start_edge,
    start_trainer,
    wait_cloud_serving,
    wait_for,
)
from laecips_core.services.stores import replay_path
from laecips_core.storage import bundle_loading, signing
from laecips_core.storage.replay import ReplayBuffer
from launch_helpers import REPO_ROOT, ProcessGroup, random_domain_id, ros_env
from sensor_msgs.msg import CompressedImage, Image

from laecips_core import files, image_codecs, imaging, transport

BASE_STAMP = 1_700_000_000 * 1_000_000_000


def _connect(peer: RosPeer, topic: str = "/cam", compressed: bool = False) -> object:
    """Camera publisher matched with the edge, and the edge's outputs matched with the peer."""
    pub = peer.publisher(topic, compressed=compressed)
    peer.subscribe_edge()
    assert wait_for(lambda: pub.get_subscription_count() > 0 and peer.edge_connected(), 90)
    return pub


def _send(
    peer: RosPeer,
    pub: object,
    index: int,
    sources: tuple[str, ...] = ("edge",),
    timeout_s: float = 30.0,
    rgb: np.ndarray | None = None,
) -> int:
    """Publish frame `index` (or `rgb`), wait for a result of each of `sources`; returns its stamp."""
    stamp = BASE_STAMP + index * 10_000_000
    pub.publish(image_msg(frame_rgb(index) if rgb is None else rgb, stamp))
    ok = wait_for(lambda: set(sources) <= {r.source for r in peer.results_for(stamp)}, timeout_s)
    assert ok, f"frame {index}: got {[r.source for r in peer.results_for(stamp)]}, wanted {sources}"
    return stamp


def _probe_until_cloud(peer: RosPeer, pub: object, first_index: int, tries: int = 30) -> None:
    """Send hard frames one by one until one comes back from the cloud (the link is up)."""
    for index in range(first_index, first_index + tries):
        stamp = _send(peer, pub, index)
        wait_for(lambda s=stamp: len(peer.results_for(s)) >= 2, 10)
        if any(r.source == "cloud" for r in peer.results_for(stamp)):
            return
    raise AssertionError(f"no cloud result after {tries} hard frames")


def _announcement(version: int, data: bytes, signature: str = "") -> transport.ModelAnnouncement:
    """What the trainer announces for bundle bytes `data` (sha256 of `data`, Ed25519 `signature`)."""
    return transport.ModelAnnouncement(
        version=version,
        sha256=files.sha256_bytes(data),
        uri="",
        signer="test",
        signature=signature,
        model_name="tiny_fcn",
        num_classes=NUM_CLASSES,
        stamp=time.time(),
    )


def _final(peer: RosPeer, stamp: int) -> object:
    """The non-edge (cloud or fallback) result of a frame."""
    (result,) = [r for r in peer.results_for(stamp) if r.source != "edge"]
    return result


def test_every_frame_gets_labels_overlay_and_result_and_bad_input_is_survived(
    tmp_path: Path, router, bundles
):
    endpoint, _ = router
    domain = random_domain_id()
    with ProcessGroup(tmp_path / "logs", timeout_s=240) as group:
        edge = start_edge(group, tmp_path, domain, edge_params(tmp_path, endpoint, bundles[0]))
        peer = RosPeer(domain)
        try:
            pub = _connect(peer)
            stamps = [_send(peer, pub, i) for i in range(5)]
            results, labels, overlays = peer.snapshot()
            palette = np.asarray(imaging.palette(NUM_CLASSES), dtype=np.float64)
            for i, stamp in enumerate(stamps):
                (result,) = peer.results_for(stamp)
                assert result.header.frame_id == "camera" and result.source == "edge"
                assert not result.hard and not result.uploaded and result.model_version == 0
                assert result.num_classes == NUM_CLASSES and 0.0 <= result.confidence <= 1.0
                assert result.total_s >= result.edge_compute_s > 0.0
                edge_labels = mono8(result.labels)
                assert edge_labels.shape == (120, 160) and (edge_labels == 2).all()  # the v0 bundle's f ran
                assert np.isclose(result.class_fractions[2], 1.0) and np.isclose(
                    sum(result.class_fractions), 1.0
                )
                (lab,) = [m for m in labels if stamp_ns(m.header) == stamp]
                (ovl,) = [m for m in overlays if stamp_ns(m.header) == stamp]
                assert lab.header.frame_id == ovl.header.frame_id == "camera"
                assert np.array_equal(mono8(lab), edge_labels)
                blended = rgb8(ovl).astype(np.float64)
                assert blended.shape == (120, 160, 3)
                expected = 0.5 * frame_rgb(i) + 0.5 * palette[2]
                assert np.abs(blended - expected).mean() < 3.0, (
                    "overlay is not the alpha blend of image and palette"
                )

            # Malformed frames: each is logged as an error and the next good frame is still answered.
            good = frame_rgb(0)
            bad_encoding = image_msg(good, BASE_STAMP + 900)
            bad_encoding.encoding = "bogus42"
            short = image_msg(good, BASE_STAMP + 901)
            short.data = bytes(good.tobytes()[: 120 * 160 * 3 // 2])
            empty = image_msg(good, BASE_STAMP + 902)
            empty.height = empty.width = empty.step = 0
            empty.data = b""
            huge = Image()
            huge.header.stamp.sec = 1_700_000_100
            huge.height = huge.width = huge.step = 8192
            huge.encoding = "mono8"
            huge.data = bytes(8192 * 8192)
            for n, bad in enumerate((bad_encoding, short, empty, huge)):
                pub.publish(bad)
                _send(peer, pub, 100 + n, timeout_s=60)
            assert edge.alive(), edge.log()
            assert wait_for(lambda: peer.last_diagnostics().get("bad_input") == "4", 10), (
                peer.last_diagnostics()
            )
            errors = [line for line in edge.log().splitlines() if "dropping camera frame" in line]
            assert len(errors) == 4, edge.log()[-3000:]
            assert "ERROR" in errors[0] and "bogus42" in errors[0]
            for stamp in (BASE_STAMP + 900, BASE_STAMP + 901, BASE_STAMP + 902):
                assert peer.results_for(stamp) == []
            # Diagnostics are periodic: wait for the report that has counted the last good frame.
            assert wait_for(lambda: peer.last_diagnostics().get("frames") == "9", 10), peer.last_diagnostics()
            diag = peer.last_diagnostics()
            assert diag["model_version"] == "0" and float(diag["cur"]) == 0.0
        finally:
            peer.close()


def test_compressed_camera_frames(tmp_path: Path, router, bundles):
    endpoint, _ = router
    domain = random_domain_id()
    params = edge_params(tmp_path, endpoint, bundles[0], image_transport="compressed")
    with ProcessGroup(tmp_path / "logs", timeout_s=180) as group:
        edge = start_edge(group, tmp_path, domain, params)
        peer = RosPeer(domain)
        try:
            pub = _connect(peer, compressed=True)
            msg = CompressedImage(format="jpeg", data=image_codecs.encode_jpeg(frame_rgb(3), quality=90))
            msg.header.stamp.sec = 42
            pub.publish(msg)
            assert wait_for(lambda: peer.results_for(42 * 10**9), 30)
            (result,) = peer.results_for(42 * 10**9)
            assert mono8(result.labels).shape == (120, 160)
            png = CompressedImage(format="png", data=b"\x89PNG\r\n\x1a\n0000")
            png.header.stamp.sec = 43
            pub.publish(png)
            msg.header.stamp.sec = 44
            pub.publish(msg)
            assert wait_for(lambda: peer.results_for(44 * 10**9), 30)
            assert peer.results_for(43 * 10**9) == []
            assert "not supported" in edge.log() and edge.alive()
        finally:
            peer.close()


@pytest.mark.slow
def test_hard_frames_use_the_cloud_fall_back_when_it_dies_and_use_it_again(tmp_path: Path, router, bundles):
    endpoint, session = router
    domain = random_domain_id()
    params = edge_params(tmp_path, endpoint, bundles[0], threshold=1.0, deadline_s=5.0)
    with ProcessGroup(tmp_path / "logs", timeout_s=400) as group:
        edge = start_edge(group, tmp_path, domain, params)
        start_cloud(group, tmp_path, endpoint, bundles[0], domain)
        peer = RosPeer(domain)
        try:
            pub = _connect(peer)
            wait_cloud_serving(group, session)
            # Phase 1: the real cloud answers; every hard frame is published twice (edge, then F(x)).
            _probe_until_cloud(peer, pub, 0)
            up = [_send(peer, pub, 200 + i, ("edge", "cloud")) for i in range(4)]
            for stamp in up:
                edge_result = [r for r in peer.results_for(stamp) if r.source == "edge"][0]
                cloud = _final(peer, stamp)
                assert edge_result.hard and edge_result.uploaded
                # f of bundle v0 says 2 everywhere, so Algorithm 1 (majority of f in each mask) does too.
                assert cloud.source == "cloud" and (mono8(cloud.labels) == 2).all()
                assert cloud.header.frame_id == "camera" and cloud.total_s >= cloud.cloud_compute_s > 0.0
            with ReplayBuffer(replay_path(tmp_path / "replay", "r1")) as buffer:
                assert len(buffer) >= len(up), "the cloud did not store (image, F(x)) in its replay buffer"
            # Phase 2: the cloud crashes (SIGKILL); every frame still gets a result, now a fallback.
            group.kill("cloud")
            down = [_send(peer, pub, 300 + i, ("edge", "fallback")) for i in range(4)]
            for stamp in down:
                fallback = _final(peer, stamp)
                assert (mono8(fallback.labels) == 2).all() and fallback.uploaded
            assert wait_for(lambda: peer.last_diagnostics().get("cloud") in ("unreachable", "timeout"), 5)
            # The camera path never waits on the network: edge latency does not grow while the cloud is down.
            lat_up = statistics.median(
                r.total_s for s in up for r in peer.results_for(s) if r.source == "edge"
            )
            lat_down = statistics.median(
                r.total_s for s in down for r in peer.results_for(s) if r.source == "edge"
            )
            assert lat_down <= 3.0 * lat_up + 0.05, (lat_up, lat_down)
            # Phase 3: the cloud is restarted (same store and buffer) and is used again.
            start_cloud(group, tmp_path, endpoint, bundles[0], domain)
            wait_cloud_serving(group, session)
            _probe_until_cloud(peer, pub, 400)
            again = [_send(peer, pub, 500 + i, ("edge", "cloud")) for i in range(3)]
            assert all(_final(peer, s).source == "cloud" for s in again)
            assert edge.alive(), edge.log()[-3000:]
        finally:
            peer.close()


@pytest.mark.slow
def test_trainer_update_reaches_the_edge_end_to_end(tmp_path: Path, router):
    """edge -> cloud F(x) -> replay buffer -> trainer (Eq. 13, 14) -> signed update -> edge swaps f."""
    endpoint, session = router
    domain = random_domain_id()
    # A deliberately poor start: random-init tiny_fcn, whose noisy labels Algorithm 1 smooths per mask,
    # so training on F(x) raises held-back agreement and the trainer's check passes.
    start = make_bundle(tmp_path / "start.safetensors", 0, None, seed=1)
    priv, pub_key = signing.generate_keypair(tmp_path / "keys", name="trainer")
    Path(f"{start}.sig").write_text(signing.sign_digest(priv, files.sha256_file(start)))
    params = edge_params(
        tmp_path, endpoint, start, threshold=1.0, deadline_s=5.0, trusted_public_key=str(pub_key)
    )
    with ProcessGroup(tmp_path / "logs", timeout_s=400) as group:
        edge = start_edge(group, tmp_path, domain, params)
        start_cloud(group, tmp_path, endpoint, start, domain, trusted_public_key=str(pub_key))
        trainer = start_trainer(group, tmp_path, endpoint, start, domain, priv)
        peer = RosPeer(domain)
        try:
            pub = _connect(peer)
            wait_cloud_serving(group, session)
            reference = frame_rgb(0)
            before = _send(peer, pub, 0, rgb=reference)
            (old,) = peer.results_for(before)
            assert old.model_version == 0 and peer.get_parameter("edge_model.version") == 0
            # Hard frames flow to the cloud until the trainer's update arrives (bounded: 240 s). The
            # collapse guards may refuse several candidates of the random start first (one in ~7 s).
            deadline = time.monotonic() + 240.0
            index = 1
            while peer.get_parameter("edge_model.version") == 0:
                assert time.monotonic() < deadline, group.logs()
                _send(peer, pub, index, ("edge", "cloud") if index < 8 else ("edge",))
                index += 1
                time.sleep(0.2)
            version = peer.get_parameter("edge_model.version")
            assert version >= 1
            # A random-init start can make a collapsed candidate first: the gate may refuse it, with
            # its reason, before an accepted update reaches the edge.
            refusals = [ln for ln in trainer.log().splitlines() if "update refused" in ln]
            assert all("collapse guard" in ln or "gate " in ln for ln in refusals), refusals
            after = _send(peer, pub, 1000, rgb=reference)
            new = [r for r in peer.results_for(after) if r.source == "edge"][0]
            assert new.model_version == version
            assert not np.array_equal(mono8(new.labels), mono8(old.labels)), "f did not change"
            stored = Path(peer.get_parameter("edge_model.path"))
            assert bundle_loading.load_bundle(stored).version == version
            assert edge.alive() and trainer.alive(), group.logs()
        finally:
            peer.close()


@pytest.mark.slow
def test_slow_link_keeps_at_most_max_in_flight_and_newest_wins(tmp_path: Path, router, bundles):
    endpoint, _ = router
    domain = random_domain_id()
    params = edge_params(tmp_path, endpoint, bundles[0], threshold=1.0, deadline_s=6.0, max_in_flight=1)
    with ProcessGroup(tmp_path / "logs", timeout_s=300) as group:
        start_edge(group, tmp_path, domain, params)
        cloud = start_cloud_double(group, endpoint, label=7, delay_s=1.0)
        peer = RosPeer(domain)
        try:
            pub = _connect(peer)
            _send(peer, pub, 0, ("edge", "cloud"), timeout_s=30)  # link warm
            stamps = []
            for i in range(1, 11):  # 10 hard frames at ~10 Hz against a 1 s cloud
                stamps.append(BASE_STAMP + i * 10_000_000)
                pub.publish(image_msg(frame_rgb(i), stamps[-1]))
                time.sleep(0.1)
            done = wait_for(lambda: all(len(peer.results_for(s)) == 2 for s in stamps), 90)
            assert done, group.logs()[-3000:]
            finals = [_final(peer, s).source for s in stamps]
            requests = [json.loads(line) for line in cloud.log().splitlines() if '"frame_id"' in line]
            assert max(r["in_flight"] for r in requests) == 1, requests
            assert finals.count("cloud") == len(requests) - 1  # minus the warm-up frame
            assert finals.count("fallback") >= 5 and finals[-1] == "cloud", finals  # newest wins
        finally:
            peer.close()


@pytest.mark.slow
def test_model_updates_verified_swapped_and_operator_rollback(tmp_path: Path, router, bundles):
    endpoint, session = router
    domain = random_domain_id()
    params = edge_params(tmp_path, endpoint, bundles[0])
    with ProcessGroup(tmp_path / "logs", timeout_s=400) as group:
        edge = start_edge(group, tmp_path, domain, params)
        peer = RosPeer(domain)
        try:
            pub = _connect(peer)
            first = _send(peer, pub, 0)
            assert (mono8(peer.results_for(first)[0].labels) == 2).all()
            assert peer.get_parameter("edge_model.version") == 0
            assert wait_for(lambda: "zenoh session open" in edge.log(), 30), edge.log()

            # A good update v1 (published like the trainer does) reaches the edge and changes its output.
            data = bundles[1].read_bytes()
            publication = transport.publish_model(session, "r1", 1, data, _announcement(1, data))
            assert wait_for(lambda: peer.get_parameter("edge_model.version") == 1, 30), edge.log()[-3000:]
            after = _send(peer, pub, 1)
            (result,) = peer.results_for(after)
            assert result.model_version == 1 and (mono8(result.labels) == 5).all()
            stored = Path(peer.get_parameter("edge_model.path"))
            assert stored.parent == tmp_path / "edge_weights" and stored.read_bytes() == data

            # An older version announced now (v0, validly made) is refused: versions only go up.
            v0 = bundles[0].read_bytes()
            older = transport.publish_model(session, "r1", 0, v0, _announcement(0, v0))
            assert wait_for(lambda: "update v0 refused" in edge.log(), 30), edge.log()[-3000:]
            assert "versions only go up" in edge.log().split("update v0 refused")[1][:400]
            older.close()
            assert peer.get_parameter("edge_model.version") == 1

            # A corrupted update v2 (bytes do not match the announced sha256) is refused; v1 keeps running.
            v2 = make_bundle(tmp_path / "v2.safetensors", 2, 9).read_bytes()
            corrupted = bytearray(v2)
            corrupted[-1] ^= 0xFF
            key = transport.weights_key("r1", 2)
            header = json.dumps({"v": 1, "version": 2, "sha256": files.sha256_bytes(v2), "size": len(v2)})
            queryable = session.declare_queryable(
                key, lambda q: q.reply(key, bytes(corrupted), attachment=header.encode()), complete=True
            )
            session.put(transport.update_key("r1"), _announcement(2, v2).to_json())
            assert wait_for(lambda: "update v2 refused" in edge.log(), 30), edge.log()[-3000:]
            assert "sha256" in edge.log().split("update v2 refused")[1][:400]
            queryable.undeclare()
            # A uri naming a local file outside the edge's own weight store is never read (issue 10).
            zero = dataclasses.replace(_announcement(3, v2), uri="file:///dev/zero")
            session.put(transport.update_key("r1"), zero.to_json())
            assert wait_for(lambda: "update v3 refused" in edge.log(), 30), edge.log()[-3000:]
            assert "outside this receiver's weight store" in edge.log().split("update v3 refused")[1][:400]
            still = _send(peer, pub, 2)
            assert peer.results_for(still)[0].model_version == 1
            assert (mono8(peer.results_for(still)[0].labels) == 5).all()
            assert peer.get_parameter("edge_model.version") == 1

            # Operators cannot set the version, and a bad file is refused with the reason.
            refused = peer.set_parameter("edge_model.version", 7)
            assert not refused.successful and "set by the node" in refused.reason
            garbage = tmp_path / "garbage.safetensors"
            garbage.write_bytes(b"not a bundle at all")
            queued = peer.set_parameter("edge_model.path", str(garbage))  # checks pass; the worker refuses it
            assert queued.successful, queued.reason
            marker = f"edge_model.path {garbage} refused"
            assert wait_for(lambda: marker in edge.log(), 30), edge.log()[-3000:]
            assert "safetensors" in edge.log().split(marker)[1][:400]
            assert wait_for(lambda: peer.get_parameter("edge_model.path") == str(stored), 10)
            missing = peer.set_parameter("edge_model.path", str(tmp_path / "nope.safetensors"))
            assert not missing.successful and "cannot read" in missing.reason
            assert (mono8(peer.results_for(_send(peer, pub, 3))[0].labels) == 5).all()

            # Rollback to the v0 file: accepted, swapped between frames, version follows the file.
            accepted = peer.set_parameter("edge_model.path", str(bundles[0]))
            assert accepted.successful, accepted.reason
            assert wait_for(lambda: peer.get_parameter("edge_model.version") == 0, 10)
            back = _send(peer, pub, 4)
            assert peer.results_for(back)[0].model_version == 0
            assert (mono8(peer.results_for(back)[0].labels) == 2).all()
            assert edge.alive()
            publication.close()
        finally:
            peer.close()


@pytest.mark.slow
def test_trusted_key_requires_signed_bundles(tmp_path: Path, router, bundles):
    endpoint, session = router
    priv, pub_key = signing.generate_keypair(tmp_path / "keys")
    other_priv, _ = signing.generate_keypair(tmp_path / "other_keys")
    start_bundle = bundles[0]
    Path(f"{start_bundle}.sig").write_text(signing.sign_digest(priv, files.sha256_file(start_bundle)))
    domain = random_domain_id()
    params = edge_params(tmp_path, endpoint, start_bundle, trusted_public_key=str(pub_key))
    with ProcessGroup(tmp_path / "logs", timeout_s=300) as group:
        edge = start_edge(group, tmp_path, domain, params)
        peer = RosPeer(domain)
        try:
            pub = _connect(peer)
            assert (mono8(peer.results_for(_send(peer, pub, 0))[0].labels) == 2).all()
            assert wait_for(lambda: "zenoh session open" in edge.log(), 30), edge.log()
            data = bundles[1].read_bytes()
            digest = files.sha256_bytes(data)

            def announce(signature: str) -> transport.ModelPublication:
                return transport.publish_model(session, "r1", 1, data, _announcement(1, data, signature))

            unsigned = announce("")
            assert wait_for(lambda: edge.log().count("update v1 refused") == 1, 30), edge.log()[-2000:]
            assert "unsigned" in edge.log().split("update v1 refused")[1][:300]
            unsigned.close()
            forged = announce(signing.sign_digest(other_priv, digest))
            assert wait_for(lambda: edge.log().count("update v1 refused") == 2, 30), edge.log()[-2000:]
            assert "signature" in edge.log().split("update v1 refused")[2][:300]
            forged.close()
            digest_only = announce(signing.sign_digest(priv, digest))  # the old trainer's signature
            assert wait_for(lambda: edge.log().count("update v1 refused") == 3, 30), edge.log()[-2000:]
            assert "sha256 only" in edge.log().split("update v1 refused")[3][:300]
            digest_only.close()
            assert peer.get_parameter("edge_model.version") == 0
            for junk in (b"[" * 8000, b"\xff\xfe\xfd", b'{"version": 1'):  # the listener lives through it
                session.put(transport.update_key("r1"), junk)
            good = transport.sign_announcement(_announcement(1, data), "r1", priv)
            signed = transport.publish_model(session, "r1", 1, data, good)
            assert wait_for(lambda: peer.get_parameter("edge_model.version") == 1, 30), edge.log()[-2000:]
            assert (mono8(peer.results_for(_send(peer, pub, 1))[0].labels) == 5).all()
            signed.close()
            # Issue 10's attack: the real signature replayed under a new version with uri file:///dev/zero.
            replayed = dataclasses.replace(good, version=7, uri="file:///dev/zero")
            session.put(transport.update_key("r1"), replayed.to_json())
            assert wait_for(lambda: "update v7 refused" in edge.log(), 30), edge.log()[-2000:]
            assert "does not cover these fields" in edge.log().split("update v7 refused")[1][:400]
            assert peer.get_parameter("edge_model.version") == 1 and edge.alive()
            # An operator file without its .sig is refused while a trusted key is configured.
            copy = tmp_path / "copy_v0.safetensors"
            copy.write_bytes(start_bundle.read_bytes())
            refused = peer.set_parameter("edge_model.path", str(copy))
            assert not refused.successful and "no signature" in refused.reason
            accepted = peer.set_parameter("edge_model.path", str(start_bundle))
            assert accepted.successful, accepted.reason
        finally:
            peer.close()


@pytest.mark.slow
def test_lying_cloud_costs_fallbacks_not_upload_workers(tmp_path: Path, router, bundles):
    """Issue 10: every kind of bad reply (cloud_double.LIES: nested header, non-UTF-8 error, garbage, wrong
    size, class 200 of 16, a 200 MB zstd bomb, late, wrong frame id, negative labels) costs one fallback for
    its frame; the edge publishes a result for every frame and keeps uploading afterwards."""
    endpoint, _ = router
    domain = random_domain_id()
    params = edge_params(tmp_path, endpoint, bundles[0], threshold=1.0, deadline_s=5.0, max_in_flight=2)
    # every lie once, then the two that killed workers before again: more than the two upload workers
    lies = ",".join([*LIES, "nested", "binary-error"])
    with ProcessGroup(tmp_path / "logs", timeout_s=300) as group:
        edge = start_edge(group, tmp_path, domain, params)
        cloud = start_cloud_double(group, endpoint, label=7, lies=lies)
        peer = RosPeer(domain)
        try:
            pub = _connect(peer)
            finals: list[str] = []
            for index in range(30):  # one hard frame at a time, each must get exactly one final result
                stamp = _send(peer, pub, index)
                assert wait_for(lambda s=stamp: len(peer.results_for(s)) >= 2, 30), edge.log()[-3000:]
                finals.append(_final(peer, stamp).source)
                if finals.count("cloud") >= 3:
                    break
            requests = [json.loads(line) for line in cloud.log().splitlines() if '"frame_id"' in line]
            told = lies.split(",")
            assert [r["lie"] for r in requests[: len(told)]] == told, requests
            assert finals[-3:] == ["cloud"] * 3, finals  # after every lie, frames still reach the cloud
            assert finals[: len(told)] == ["fallback"] * len(told), finals  # each lie: its frame falls back
            snap = peer.last_diagnostics()
            assert wait_for(lambda: peer.last_diagnostics().get("cloud") == "available", 10), snap
            assert peer.last_diagnostics()["worker_restarts"] == "0"
            assert edge.alive() and "Traceback" not in edge.log(), edge.log()[-3000:]
        finally:
            peer.close()


def test_shipped_params_refuse_to_start_without_a_trusted_key():
    """Issue 10: config/edge.yaml as shipped (no trusted_public_key, allow_unsigned_weights false) does not
    start; the message says what to set."""
    import subprocess
    import sys

    shipped = REPO_ROOT / "src" / "laecips_bringup" / "config" / "edge.yaml"
    exe = str(Path(sys.executable).with_name("edge_node"))
    argv = [exe, "--ros-args", "--params-file", str(shipped)]
    done = subprocess.run(argv, env=ros_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "no trusted_public_key" in out and "allow_unsigned_weights" in out
