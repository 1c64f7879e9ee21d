"""The cloud's copy of f per robot without ROS: the edge's version when stored, else the newest loaded."""

from __future__ import annotations

from pathlib import Path

from cloud_harness import NUM_CLASSES, make_bundle
from laecips_core.services.cloud_robots import MODEL_CACHE, RobotModel
from laecips_core.services.stores import seed_store
from laecips_core.storage.weight_store import WeightStore
from log_helpers import RecordingLog


def test_robot_model_follows_the_edges_version_and_survives_missing_and_broken_files(
    tmp_path: Path, initial_bundle: Path
):
    store = WeightStore(tmp_path / "robot1")
    assert seed_store(store, initial_bundle) == 0
    for version in (2, 4):
        store.put(
            make_bundle(tmp_path / f"v{version}.safetensors", version=version, seed=version).read_bytes(),
            version,
        )
    store.path(3).write_bytes(b"not a bundle")
    log = RecordingLog()
    model = RobotModel(store, 0, None)
    assert (model.model_name, model.num_classes, model.current) == ("tiny_fcn", NUM_CLASSES, 0)

    assert model.predictor(2, log).version == 2 and model.current == 2
    assert log.count("info", "loaded f version 2") == 1
    for _ in range(2):  # a version the store lacks: the newest loaded one serves, one warning
        assert model.predictor(7, log).version == 2
    assert log.count("warning", "f version 7") == 1
    for _ in range(2):  # a corrupt file: one error, then it is never read again
        assert model.predictor(3, log).version == 2
    assert log.count("error", "cannot load f version 3") == 1

    assert MODEL_CACHE == 2
    model.predictor(4, log)  # 0 leaves the cache (2 and 4 stay): asking for it again reloads the file
    model.predictor(2, log)
    assert log.count("info", "loaded f version 2") == 1
    assert model.predictor(0, log).version == 0 and log.count("info", "loaded f version 0") == 1
