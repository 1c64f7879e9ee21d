"""CloudService and the training job without ROS: signed announcements, error paths of the job process."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from cloud_harness import NUM_CLASSES, make_bundle
from laecips_core.cloud_service import CloudConfig, CloudService
from laecips_core.errors import ConfigError
from laecips_core.training_job import JobSpec, replay_path, reports_dir, seed_store, store_dir
from laecips_core.transport import ModelAnnouncement, load_zenoh_config, open_session, publish_model
from laecips_core.weights import WeightStore, generate_keypair, sign_digest
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
        for signature in ("", sign_digest(other_priv, hashlib.sha256(data1).hexdigest())):
            announcement = _announcement(data1, 1, signature)
            publications.append(publish_model(trainer, "robot1", 1, data1, announcement))
            count = len(publications)
            assert wait_until(lambda c=count: service.snapshot()["robot1"].updates_refused >= c, 20.0)
            publications.pop().close()
        assert not store.path(1).exists()
        good = sign_digest(priv, hashlib.sha256(data1).hexdigest())
        publications.append(publish_model(trainer, "robot1", 1, data1, _announcement(data1, 1, good)))
        assert wait_until(store.path(1).is_file, 20.0)
        assert store.path(1).read_bytes() == data1 and service.snapshot()["robot1"].updates_stored == 1
    finally:
        for publication in publications:
            publication.close()
        service.stop()
        trainer.close()
        cloud_session.close()


def test_cloud_config_names_the_bad_parameter(tmp_path: Path):
    base = CloudConfig(weights_dir=str(tmp_path), replay_dir=str(tmp_path))
    for changes, match in (
        ({"robot_ids": ("a/b",)}, "robot id"),
        ({"robot_ids": ()}, "robot_ids"),
        ({"lvm": "sam2"}, "lvm"),
        ({"lvm_params": "[1]"}, "lvm_params"),
        ({"fusion_order": "random"}, "fusion_order"),
        ({"input_height": 64}, "input_width"),
        ({"workers": 0}, "workers"),
        ({"zenoh_listen": ("localhost:7447",)}, "endpoint"),
        ({"edge_model_path": str(tmp_path / "missing.safetensors")}, "edge_model.path"),
    ):
        cfg = CloudConfig(**{**base.__dict__, **changes})
        with pytest.raises(ConfigError, match=match):
            cfg.validate()


def test_training_job_reports_errors_in_its_result_file(tmp_path: Path, initial_bundle: Path):
    spec = JobSpec(
        robot_id="robot1",
        replay_path=str(replay_path(tmp_path / "replay", "robot1")),
        store_dir=str(store_dir(tmp_path / "weights", "robot1")),
        reports_dir=str(reports_dir(tmp_path / "weights", "robot1")),
        trainer={"epochs": 1, "input_size": [32, 32]},
    )
    (tmp_path / "spec.json").write_text(spec.to_json())
    argv = [sys.executable, "-m", "laecips_core.training_job", "--spec", str(tmp_path / "spec.json"),
            "--result", str(tmp_path / "result.json"), "--threads", "1"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "empty" in json.loads((tmp_path / "result.json").read_text())["error"]
    store = WeightStore(spec.store_dir)
    assert seed_store(store, initial_bundle) == 0 and seed_store(store, initial_bundle) == 0
    assert store.versions() == [0]
    with pytest.raises(ConfigError, match="TrainerConfig"):
        bogus = json.dumps({**json.loads(spec.to_json()), "trainer": {"bogus": 1}})
        JobSpec.from_json(bogus).trainer_config()
