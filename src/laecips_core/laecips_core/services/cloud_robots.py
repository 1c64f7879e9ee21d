"""The cloud's state per robot: its copy of f and h at the edge's version (what Algorithm 1 fuses with).

``RobotModel`` keeps f (and h) of one robot at the version its edge reports, loaded from the robot's
WeightStore; ``RobotStats`` counts what the cloud did for the robot and ``RequestEvent`` says what it
did for one request (a laecips_msgs/CloudStatus).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from laecips_core.algo.bundles import build_models
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.errors import LaecipsError
from laecips_core.logs import Logger
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.weight_store import WeightStore

MODEL_CACHE = 2
"""Copies of f kept per robot (the current version and the previous one, for requests in flight)."""


@dataclass(frozen=True)
class RequestEvent:
    """What the service did for one request (becomes a laecips_msgs/CloudStatus)."""

    robot_id: str
    frame_id: int
    num_masks: int = 0
    model_version: int = 0
    lvm_s: float = 0.0
    fusion_s: float = 0.0
    cloud_s: float = 0.0
    replay_size: int = 0
    error: str = ""


@dataclass
class RobotStats:
    """Counters of one robot (read by the diagnostics)."""

    requests: int = 0
    ok: int = 0
    errors: int = 0
    busy: int = 0
    expired: int = 0
    downscaled: int = 0
    updates_stored: int = 0
    updates_refused: int = 0
    model_version: int = 0
    replay_size: int = 0
    lvm_s_sum: float = 0.0
    cloud_s_sum: float = 0.0
    last_error: str = ""


class RobotModel:
    """The cloud's copy of f (and h) for one robot, kept at the version the robot's edge reports.

    Versions come from the robot's WeightStore (written by the trainer, or by fetch_weights on
    announcements); the last MODEL_CACHE versions stay loaded so alternating requests do not reload.
    """

    def __init__(self, store: WeightStore, version: int, input_size: tuple[int, int] | None) -> None:
        self.store = store
        self.input_size = input_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, EdgePredictor] = OrderedDict()
        self._missing: set[int] = set()  # versions reported missing (logged once)
        self._broken: set[int] = set()  # versions whose file failed to load
        self.current = version
        self.model_name = ""
        self._load(version)

    def _load(self, version: int) -> EdgePredictor:
        from laecips_core.algo.mining import NeuralMiner

        bundle = load_bundle(self.store.path(version))
        f, h = build_models(bundle)
        self.model_name = bundle.model_name
        predictor = EdgePredictor(f, NeuralMiner(h), input_size=self.input_size, version=version)
        self._cache[version] = predictor
        while len(self._cache) > MODEL_CACHE:
            self._cache.popitem(last=False)
        return predictor

    @property
    def num_classes(self) -> int:
        """M of the loaded f."""
        return next(iter(self._cache.values())).num_classes

    def predictor(self, version: int, log: Logger) -> EdgePredictor:
        """The predictor at `version` when the store has it, else the newest loaded one (logged once)."""
        with self._lock:
            if version in self._cache:
                self._cache.move_to_end(version)
                self.current = version
                return self._cache[version]
            if self.store.path(version).is_file() and version not in self._broken:
                try:
                    predictor = self._load(version)
                except LaecipsError as err:  # a corrupt or foreign file: keep serving with what we have
                    self._broken.add(version)
                    log.error(f"{self.store.directory.name}: cannot load f version {version}: {err}")
                else:
                    self.current = version
                    log.info(f"{self.store.directory.name}: loaded f version {version}")
                    return predictor
            if version not in self._missing:
                self._missing.add(version)
                log.warning(
                    f"{self.store.directory.name}: edge runs f version {version}, which the cloud does not "
                    f"have; fusing with version {self.current} until it is announced"
                )
            if self.current in self._cache:
                return self._cache[self.current]
            return next(reversed(self._cache.values()))
