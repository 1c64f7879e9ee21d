"""Where a robot's files live on the cloud (replay buffer, weight store, reports); seeding a store."""

from __future__ import annotations

import os
from pathlib import Path

from laecips_core.errors import WeightsError
from laecips_core.files import sha256_bytes, sha256_file
from laecips_core.robots import validate_robot_id
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.weight_store import WeightStore


def replay_path(replay_dir: str | os.PathLike[str], robot_id: str) -> Path:
    """Replay buffer file of one robot: ``<replay_dir>/<robot_id>.sqlite`` (cloud writes, trainer reads)."""
    return Path(replay_dir) / f"{validate_robot_id(robot_id)}.sqlite"


def store_dir(weights_dir: str | os.PathLike[str], robot_id: str) -> Path:
    """The WeightStore folder of one robot: ``<weights_dir>/<robot_id>/`` (bundle_v<version>.safetensors)."""
    return Path(weights_dir) / validate_robot_id(robot_id)


def reports_dir(weights_dir: str | os.PathLike[str], robot_id: str) -> Path:
    """Training reports of one robot (JSON + loss PNG per update): ``<weights_dir>/<robot_id>/reports/``."""
    return store_dir(weights_dir, robot_id) / "reports"


def seed_store(store: WeightStore, initial_bundle: str | os.PathLike[str]) -> int:
    """Make sure a robot's store holds the bundle its edge starts from; return the store's latest version.

    The initial bundle (e.g. pretraining.ensure_default_weights) is copied in under its own metadata
    version (normally 0) when the store is empty, so the cloud's f and the trainer start from exactly
    the edge's f. Two processes seeding at once are fine (the second finds the same file).

    Raises:
        WeightsError: unreadable/invalid initial bundle, or the store holds that version with other bytes.
    """
    latest = store.latest()
    if latest is not None:
        return latest
    data = Path(initial_bundle).read_bytes() if Path(initial_bundle).is_file() else None
    if data is None:
        raise WeightsError(f"initial bundle {initial_bundle} does not exist; run `laecips pretrain` first")
    bundle = load_bundle(initial_bundle)
    try:
        store.put(data, bundle.version)
    except WeightsError:
        if sha256_file(store.path(bundle.version)) != sha256_bytes(data):
            raise
    latest = store.latest()
    assert latest is not None  # the put above or a concurrent one stored a version
    return latest
