"""TrainerService without ROS: config, signing key, Algorithm 2 trigger, training process, signed updates."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cloud_harness import NUM_CLASSES, make_bundle
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.services import trainer_service
from laecips_core.services.stores import store_dir
from laecips_core.services.trainer_service import (
    DEFAULT_KEY_NAME,
    TRAINER_PARAMS,
    TrainerNodeConfig,
    TrainerService,
)
from laecips_core.storage.bundle_loading import parse_bundle
from laecips_core.storage.jobspec import TrainerConfig
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.storage.signing import generate_keypair, read_signature, verify_digest
from laecips_core.storage.weight_store import WeightStore
from laecips_core.transport import (
    ModelAnnouncement,
    fetch_weights,
    load_zenoh_config,
    open_session,
    verify_announcement,
)
from launch_helpers import free_port, wait_until, zenoh_endpoint
from log_helpers import RecordingLog


def _config(tmp_path: Path, initial_bundle: Path | None, **changes: Any) -> TrainerNodeConfig:
    fields: dict[str, Any] = {
        "robot_ids": ("robot1",),
        "zenoh_mode": "peer",
        "zenoh_listen": (zenoh_endpoint(free_port()),),
        "replay_dir": str(tmp_path / "replay"),
        "weights_dir": str(tmp_path / "weights"),
        "edge_model_name": "tiny_fcn",
        "edge_model_path": str(initial_bundle) if initial_bundle else "",
    }
    fields.update(changes)
    return TrainerNodeConfig(**fields).validate()


@contextmanager
def _service(cfg: TrainerNodeConfig, **kwargs: Any) -> Iterator[TrainerService]:
    session = open_session(cfg.zenoh())
    service = TrainerService(cfg, session, kwargs.pop("log", logging.getLogger("trainer-test")), **kwargs)
    try:
        yield service
    finally:
        service.stop()
        session.close()


def _fill(buffer: ReplayBuffer, count: int, start: int) -> list[int]:
    """Learnable samples: dark left half = class 1, bright right half = class 2."""
    rng = np.random.default_rng(start)
    ids = []
    for i in range(start, start + count):
        image = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
        image[:, 32:] += 180
        labels = np.ones((48, 64), np.uint8)
        labels[:, 32:] = 2
        ids.append(buffer.append(image, labels, robot_id="robot1", timestamp=float(i), model_version=0))
    return ids


def _run_job(service: TrainerService, robot: str = "robot1", timeout_s: float = 240.0) -> None:
    """check() until the trigger started a job and that job was polled to its end (bounded)."""
    state = service.robots[robot]
    started = state.jobs_started
    ended = state.published + state.refused + state.failed
    service.check()
    assert state.jobs_started == started + 1 and state.job is not None, "Algorithm 2 did not trigger"
    deadline = time.monotonic() + timeout_s
    while state.published + state.refused + state.failed == ended and time.monotonic() < deadline:
        time.sleep(0.2)
        service.check()
    assert state.published + state.refused + state.failed == ended + 1, "the training process did not end"


# ------------------------------------------------------------------------------------------ config


def test_trainer_config_carries_the_node_fields() -> None:
    cfg = TrainerNodeConfig(input_height=48, input_width=64, train_threads=3, lr=0.02, seed=5, maxsize=7)
    trainer = cfg.trainer_config()
    assert (trainer.input_size, trainer.num_threads, trainer.lr, trainer.seed, trainer.maxsize) == (
        (48, 64),
        3,
        0.02,
        5,
        7,
    )
    defaults, node = TrainerConfig(), TrainerNodeConfig()
    shared = ("lr", "epochs", "batch_size", "beta", "recipe", "gate", "holdout_fraction", "min_improvement")
    for name in shared:
        assert getattr(node, name) == getattr(defaults, name), f"{name} differs from TrainerConfig's default"


def test_every_parameter_names_a_config_field() -> None:
    fields = set(TrainerNodeConfig.__dataclass_fields__)
    assert {spec.field for spec in TRAINER_PARAMS} == fields
    assert len({spec.name for spec in TRAINER_PARAMS}) == len(TRAINER_PARAMS)


def test_validate_names_the_bad_parameter(tmp_path: Path) -> None:
    base = TrainerNodeConfig(weights_dir=str(tmp_path), replay_dir=str(tmp_path))
    assert base.validate() is base
    for changes, match in (
        ({"robot_ids": ("a/b",)}, "robot id"),
        ({"robot_ids": ("r", "r")}, "robot_ids"),
        ({"edge_model_path": str(tmp_path / "missing.safetensors")}, "edge_model.path"),
        ({"signing_key": str(tmp_path / "missing.key")}, "laecips keygen"),
        ({"signer": ""}, "signer"),
        ({"lr": 0.0}, "lr"),
        ({"input_height": 4}, "input_height"),
        ({"max_parallel_jobs": 0}, "max_parallel_jobs"),
        ({"max_samples": 1}, "max_samples"),
        ({"zenoh_listen": ("localhost:7447",)}, "endpoint"),
        ({"recipe": "magic"}, "recipe"),
        ({"edge_model_name": "resnet9000"}, "edge_model.name"),
    ):
        with pytest.raises(ConfigError, match=match):
            replace(base, **changes).validate()


# ---------------------------------------------------------------------------------------- service


def test_an_empty_store_without_a_seed_bundle_is_refused(tmp_path: Path) -> None:
    cfg = _config(tmp_path, None)
    session = open_session(cfg.zenoh())
    try:
        with pytest.raises(ConfigError, match="edge_model.path"):
            TrainerService(cfg, session, RecordingLog())
    finally:
        session.close()


def test_start_seeds_each_store_and_creates_a_signing_key_once(tmp_path: Path, initial_bundle: Path) -> None:
    cfg = _config(tmp_path, initial_bundle, robot_ids=("robot1", "robot2"))
    log = RecordingLog()
    with _service(cfg, log=log) as service:
        key = tmp_path / "weights" / "keys" / f"{DEFAULT_KEY_NAME}.key"
        assert service.key_path == key and service.public_key_path == key.with_suffix(".pub")
        assert key.is_file() and f"trusted_public_key={key.with_suffix('.pub')}" in log.text("info")
        for robot in ("robot1", "robot2"):
            assert WeightStore(store_dir(cfg.weights_dir, robot)).versions() == [0]
        snapshot = service.snapshot()
        assert set(snapshot) == {"robot1", "robot2"}
        assert snapshot["robot1"] == {
            "phase": "idle",
            "replay_size": 0,
            "jobs_started": 0,
            "published": 0,
            "refused": 0,
            "failed": 0,
            "version": 0,
            "last_reason": "",
        }
        service.republish()  # only the seed version: nothing trained to announce
        assert service.robots["robot1"].published == 0
    before = key.read_bytes()
    log = RecordingLog()
    with _service(_config(tmp_path, initial_bundle), log=log) as service:  # a restarted trainer
        assert service.key_path.read_bytes() == before and "created signing key" not in log.text("info")


def test_trainer_signs_every_field_of_its_announcements(tmp_path: Path, initial_bundle: Path):
    priv, pub = generate_keypair(tmp_path / "keys", name="trainer")
    endpoint = zenoh_endpoint(free_port())
    cfg = TrainerNodeConfig(
        robot_ids=("robot1",),
        zenoh_mode="peer",
        zenoh_listen=(endpoint,),
        replay_dir=str(tmp_path / "replay"),
        weights_dir=str(tmp_path / "weights"),
        edge_model_name="tiny_fcn",
        edge_model_path=str(initial_bundle),
        signing_key=str(priv),
    ).validate()
    session = open_session(cfg.zenoh())
    published: list[ModelAnnouncement] = []
    service = TrainerService(
        cfg, session, logging.getLogger("trainer-test"), lambda r, a: published.append(a)
    )
    try:
        store = WeightStore(store_dir(cfg.weights_dir, "robot1"))
        data = make_bundle(tmp_path / "v1.safetensors", version=1, seed=1).read_bytes()
        store.put(data, 1)
        service.republish()  # announces the newest trained version, v1
        (ann,) = published
        verify_announcement(ann, "robot1", pub)
        assert ann.uri == "zenoh:laecips/robot1/model/weights/1"
        with pytest.raises(WeightsError, match="does not cover these fields"):
            verify_announcement(replace(ann, version=2), "robot1", pub)
        verify_digest(pub, ann.sha256, read_signature(store.path(1)) or "")  # the file's own sidecar
    finally:
        service.stop()
        session.close()


def test_trainer_maxtime_follows_the_clock_it_is_given(tmp_path: Path, initial_bundle: Path):
    """The trainer node hands its ROS clock to TrainerService: Algorithm 2's maxtime counts in that
    clock's seconds (bag time under use_sim_time); the first /clock reading and a bag that starts over
    restart the window instead of firing at once or never again."""
    priv, _ = generate_keypair(tmp_path / "keys", name="trainer")
    cfg = TrainerNodeConfig(
        robot_ids=("robot1",),
        zenoh_mode="peer",
        zenoh_listen=(zenoh_endpoint(free_port()),),
        replay_dir=str(tmp_path / "replay"),
        weights_dir=str(tmp_path / "weights"),
        edge_model_name="tiny_fcn",
        edge_model_path=str(initial_bundle),
        signing_key=str(priv),
        maxsize=1000,
        maxtime_s=10.0,
    ).validate()
    clock = [0.0]  # sim time before the first /clock
    session = open_session(cfg.zenoh())
    service = TrainerService(cfg, session, logging.getLogger("trainer-clock"), clock=lambda: clock[0])
    state = service.robots["robot1"]
    try:
        image = np.zeros((24, 32, 3), np.uint8)
        state.buffer.append(image, np.ones((24, 32), np.uint8), robot_id="robot1", model_version=0)
        for now in (0.0, 1000.0, 1009.0, 500.0, 509.0):  # first /clock at 1000 s; the bag restarts at 500
            clock[0] = now
            service.check()
            assert state.job is None, f"training started at clock {now} (last_train {state.last_train})"
        assert state.last_train == 500.0
        clock[0] = 511.0  # 11 s of the clock's time since the restart > maxtime_s
        service.check()
        assert state.job is not None and state.jobs_started == 1
    finally:
        service.stop()
        session.close()


def test_republish_refuses_a_bundle_of_another_model(tmp_path: Path, initial_bundle: Path) -> None:
    """edge_model.name is checked against each bundle before it is signed and served."""
    cfg = _config(tmp_path, initial_bundle)
    store = WeightStore(store_dir(cfg.weights_dir, "robot1"))
    store.put(make_bundle(tmp_path / "v1.safetensors", version=1, seed=1).read_bytes(), 1)
    log = RecordingLog()
    published: list[ModelAnnouncement] = []
    other = replace(cfg, edge_model_name="lraspp_mobilenetv3")
    with _service(other, log=log, on_published=lambda r, a: published.append(a)) as service:
        service.republish()
        assert published == [] and service.robots["robot1"].published == 0
        assert "cannot republish version 1" in log.text("error") and "lraspp_mobilenetv3" in log.text("error")
        assert read_signature(store.path(1)) is None  # nothing signed


@pytest.mark.slow
def test_a_training_process_publishes_a_signed_fetchable_update_then_a_refusal(
    tmp_path: Path, initial_bundle: Path
) -> None:
    """Algorithm 2 end to end without ROS: trigger, child process, signed publication over Zenoh, buffer
    cleared; then an impossible gate (reconfigure) refuses the next update, which is not published."""
    priv, pub = generate_keypair(tmp_path / "keys", name="trainer")
    cfg = _config(
        tmp_path, initial_bundle, signing_key=str(priv), maxsize=4, epochs=2, lr=0.01, batch_size=4,
        input_height=32, input_width=32, min_improvement=-1.0, train_threads=1,
    )  # fmt: skip
    log = RecordingLog()
    published: list[tuple[str, ModelAnnouncement]] = []
    with _service(cfg, log=log, on_published=lambda r, a: published.append((r, a))) as service:
        state = service.robots["robot1"]
        _fill(state.buffer, 4, 0)  # not more than maxsize
        service.check()
        assert state.job is None and state.jobs_started == 0
        ids = _fill(state.buffer, 2, 4)
        _run_job(service)
        assert state.published == 1 and state.failed == 0, log.lines
        ((robot, ann),) = published
        assert (robot, ann.version, ann.model_name, ann.num_classes) == ("robot1", 1, "tiny_fcn", NUM_CLASSES)
        verify_announcement(ann, "robot1", pub)
        store = WeightStore(store_dir(cfg.weights_dir, "robot1"))
        assert store.versions() == [0, 1]
        verify_digest(pub, ann.sha256, read_signature(store.path(1)) or "")
        edge = open_session(load_zenoh_config(None, mode="peer", listen=[], connect=list(cfg.zenoh_listen)))
        try:
            assert wait_until(lambda: bool(edge.info.peers_zid()), 10.0)
            data = fetch_weights(edge, "robot1", ann, timeout_s=10.0)
        finally:
            edge.close()
        assert data == store.path(1).read_bytes()
        shipped = parse_bundle(data, expected_sha256=ann.sha256)  # export_onnx is on by default
        assert shipped.metadata["parent_version"] == "0" and set(shipped.onnx) == {"f", "h"}
        assert float(shipped.metadata["onnx_stream_norm_prior"]) == cfg.onnx_stream_norm_prior
        assert len(state.buffer) == 0 and f"trained on {len(ids) + 4} samples" in log.text("info")
        assert service.snapshot()["robot1"]["phase"] == "idle"
        assert service.snapshot()["robot1"]["version"] == 1

        service.reconfigure(replace(cfg, min_improvement=1.0))  # no update can pass this gate
        _fill(state.buffer, 5, 100)
        _run_job(service)
        assert (state.published, state.refused, state.jobs_started) == (1, 1, 2)
        assert "update refused, not published" in state.last_reason and len(published) == 1
        assert len(state.buffer) == 0 and store.versions() == [0, 1]  # a refused batch is cleared too


@pytest.mark.slow
def test_a_failed_job_is_counted_and_keeps_the_samples(tmp_path: Path, initial_bundle: Path) -> None:
    cfg = _config(tmp_path, initial_bundle, maxsize=1, input_height=32, input_width=32)
    log = RecordingLog()
    with _service(cfg, log=log) as service:
        state = service.robots["robot1"]
        state.store.path(0).unlink()  # the store was emptied under the trainer: run_job cannot start
        _fill(state.buffer, 2, 0)
        _run_job(service)
        assert (state.failed, state.published, state.refused) == (1, 0, 0)
        assert "WeightsError" in state.last_reason and "empty" in state.last_reason
        assert "training job failed" in log.text("error")
        assert len(state.buffer) == 2  # nothing was trained: the samples stay for the next job
        assert service.snapshot()["robot1"]["failed"] == 1
        # The buffer is still over maxsize, but the robot backs off instead of restarting the job at once.
        assert state.job is None and "next try in 5 s" in log.text("error")
        for _ in range(5):
            service.check()
        assert state.jobs_started == 1 and state.job is None
        state.retry_after = 0.0  # the back-off has passed
        _run_job(service)
        assert state.failed == 2 and state.failures_in_row == 2
        assert state.retry_after - time.monotonic() > 5.0  # doubled: 10 s after the second failure in a row


def test_the_failure_backoff_doubles_and_starts_over(tmp_path: Path, initial_bundle: Path) -> None:
    cfg = _config(tmp_path, initial_bundle, maxsize=1000)
    with _service(cfg) as service:
        state = service.robots["robot1"]
        first, most = trainer_service.FAILURE_BACKOFF_S
        waits = [state.job_failed(f"failure {i}") for i in range(10)]
        assert waits[:3] == [first, 2 * first, 4 * first] and waits[-1] == most
        assert state.failed == 10 and state.last_reason == "failure 9"
        state.job_finished()
        assert state.failures_in_row == 0 and state.retry_after == 0.0
        assert state.job_failed("again") == first


def test_stop_kills_a_running_training_process(tmp_path: Path, initial_bundle: Path) -> None:
    cfg = _config(tmp_path, initial_bundle, maxsize=1, input_height=32, input_width=32)
    log = RecordingLog()
    with _service(cfg, log=log) as service:
        state = service.robots["robot1"]
        _fill(state.buffer, 2, 0)
        service.check()
        job = state.job
        assert job is not None and job.popen.poll() is None
        assert service.snapshot()["robot1"]["phase"] in ("starting", "loading", "training")
        service.stop(timeout_s=5.0)
        assert state.job is None and job.popen.poll() is not None
        assert "stopping the running training job" in log.text("warning")
