"""Tests of laecips_core.services.stores: per-robot paths on the cloud and seeding a robot's weight store."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from bundle_helpers import write_tiny_bundle
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.services.stores import replay_path, reports_dir, seed_store, store_dir
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.weight_store import WeightStore

NUM_CLASSES = 3


@pytest.fixture(scope="module")
def initial_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 0 of a tiny_fcn f + MinerNet h bundle: what the edges start from."""
    return write_tiny_bundle(tmp_path_factory.mktemp("bundles") / "v0.safetensors", 0, NUM_CLASSES)


class _RacedStore(WeightStore):
    """A store another process fills between seed_store's emptiness check and its put."""

    def __init__(self, directory: Path, other_bytes: bytes, version: int) -> None:
        super().__init__(directory)
        self._other = (other_bytes, version)
        self._raced = False

    def latest(self) -> int | None:
        if not self._raced:
            self._raced = True
            self.put(*self._other)  # the other process's put, done; this caller saw an empty store
            return None
        return super().latest()


def test_paths_per_robot(tmp_path: Path) -> None:
    assert replay_path(tmp_path / "replay", "robot1") == tmp_path / "replay" / "robot1.sqlite"
    assert store_dir(str(tmp_path / "w"), "robot_2") == tmp_path / "w" / "robot_2"
    assert reports_dir(tmp_path / "w", "r-3") == tmp_path / "w" / "r-3" / "reports"
    assert replay_path("replay", "a") != replay_path("replay", "b")  # one buffer per robot


@pytest.mark.parametrize("robot_id", ["", "../etc", "a/b", "robot*", "x" * 65])
def test_robot_ids_that_would_escape_their_folder_are_refused(tmp_path: Path, robot_id: str) -> None:
    for where in (replay_path, store_dir, reports_dir):
        with pytest.raises(ConfigError, match="robot id"):
            where(tmp_path, robot_id)


def test_seed_store_copies_the_initial_bundle_once(tmp_path: Path, initial_bundle: Path) -> None:
    store = WeightStore(store_dir(tmp_path / "weights", "robot1"))
    assert seed_store(store, initial_bundle) == 0
    assert store.path(0).read_bytes() == initial_bundle.read_bytes()
    mtime = store.path(0).stat().st_mtime_ns
    assert seed_store(store, initial_bundle) == 0 and seed_store(store, str(initial_bundle)) == 0
    assert store.versions() == [0] and store.path(0).stat().st_mtime_ns == mtime


def test_seed_store_uses_the_bundles_own_version(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "start.safetensors", 3, NUM_CLASSES)
    store = WeightStore(tmp_path / "store")
    assert seed_store(store, bundle) == 3
    assert store.versions() == [3] and load_bundle(store.path(3)).version == 3


def test_seed_store_leaves_a_trained_store_alone(tmp_path: Path, initial_bundle: Path) -> None:
    store = WeightStore(tmp_path / "store")
    newer = write_tiny_bundle(tmp_path / "v5.safetensors", 5, NUM_CLASSES)
    store.put(newer.read_bytes(), 5)
    assert seed_store(store, initial_bundle) == 5
    assert seed_store(store, tmp_path / "missing.safetensors") == 5  # not read when the store has one
    assert store.versions() == [5]


def test_seed_store_says_what_to_do_without_a_usable_bundle(tmp_path: Path) -> None:
    store = WeightStore(tmp_path / "store")
    with pytest.raises(WeightsError, match="laecips pretrain"):
        seed_store(store, tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError):
        seed_store(store, tmp_path)  # a folder is no bundle
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError):
        seed_store(store, junk)
    assert store.versions() == []  # nothing half-seeded


def test_seeding_at_once_from_many_threads_stores_one_copy(tmp_path: Path, initial_bundle: Path) -> None:
    store_path = tmp_path / "store"
    barrier = threading.Barrier(4)
    results: list[int] = []
    failures: list[BaseException] = []

    def seed() -> None:
        store = WeightStore(store_path)
        barrier.wait(10.0)
        try:
            results.append(seed_store(store, initial_bundle))
        except BaseException as err:  # reported below
            failures.append(err)

    threads = [threading.Thread(target=seed, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)
    assert not failures and results == [0, 0, 0, 0]
    assert WeightStore(store_path).versions() == [0]


def test_seed_store_after_a_race_accepts_the_same_bytes_only(tmp_path: Path, initial_bundle: Path) -> None:
    data = initial_bundle.read_bytes()
    assert seed_store(_RacedStore(tmp_path / "same", data, 0), initial_bundle) == 0
    other = write_tiny_bundle(tmp_path / "other.safetensors", 0, NUM_CLASSES, seed=9).read_bytes()
    assert other != data
    with pytest.raises(WeightsError, match="never overwritten"):
        seed_store(_RacedStore(tmp_path / "different", other, 0), initial_bundle)
