"""One continual-training job of Algorithm 2 in its own process: replay buffer -> Eq. 13/14 -> new bundle."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from laecips_core.adaptation import ContinualTrainer
from laecips_core.errors import ConfigError, LaecipsError, WeightsError
from laecips_core.models import build_edge_model
from laecips_core.replay import ReplayBuffer
from laecips_core.training import TrainerConfig, plot_report
from laecips_core.transport import validate_robot_id
from laecips_core.weights import (
    Bundle,
    WeightStore,
    apply_bundle,
    atomic_write_bytes,
    load_bundle,
    serialize_bundle,
    sha256_bytes,
    sha256_file,
)

DEFAULT_MINER_IN_SIZE: tuple[int, int] = (64, 64)
"""in_size of MinerNet h when a bundle's metadata does not say (mining.MinerNet's default)."""
_REPLAY_READ_MAXSIZE = 10**9
"""maxsize of the trainer's handle on the buffer: it never appends, so this bound never applies."""


# ------------------------------------------------------------------------------------------- layout


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


def miner_in_size(metadata: Mapping[str, str]) -> tuple[int, int]:
    """Read h's input size from bundle metadata ("miner_in_size": "[64, 64]", "64x64" or "64,64")."""
    raw = metadata.get("miner_in_size")
    if not raw:
        return DEFAULT_MINER_IN_SIZE
    text = raw.strip().strip("[]()").replace("x", ",")
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError as err:
        raise WeightsError(f"bundle metadata miner_in_size={raw!r} is not 'H,W'") from err
    return height, width


def build_models(bundle: Bundle) -> tuple[nn.Module, nn.Module]:
    """Build f (registry name of the bundle) and h (MinerNet) and load the bundle into them (strict).

    Returns:
        (f, h) in eval mode on the CPU.

    Raises:
        WeightsError: the bundle does not fit the architecture it names.
    """
    from laecips_core.mining import MinerNet

    try:
        f = build_edge_model(bundle.model_name, bundle.num_classes, pretrained_backbone=False)
    except ConfigError as err:
        raise WeightsError(f"bundle names an unusable edge model: {err}") from err
    h = MinerNet(bundle.num_classes, in_size=miner_in_size(bundle.metadata))
    apply_bundle(bundle, f, h if bundle.h_state else None)
    return f.eval(), h.eval()


# ---------------------------------------------------------------------------------------------- job


@dataclass(frozen=True)
class JobSpec:
    """What one training process does (written as JSON by the trainer node, read by ``main``).

    Attributes:
        robot_id: Robot whose buffer and store are used.
        replay_path: Its replay buffer (replay_path()).
        store_dir: Its WeightStore folder (store_dir()); the newest version is the parent of the update.
        reports_dir: Where the report JSON and loss PNG go.
        trainer: TrainerConfig fields (lr, epochs, batch_size, beta, maxsize, maxtime_s, input_size, ...).
        max_samples: At most this many (oldest) samples are read (memory bound).
        validation_bag: Labelled rosbag2 to gate on ("" = the label-free gate).
        progress_path: JSON file updated at each phase ("" for none).
    """

    robot_id: str
    replay_path: str
    store_dir: str
    reports_dir: str
    trainer: dict[str, Any] = field(default_factory=dict)
    max_samples: int = 1000
    validation_bag: str = ""
    progress_path: str = ""

    def to_json(self) -> str:
        """Serialise for the child process."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """Parse a spec written by to_json.

        Raises:
            ConfigError: not a JSON object with the fields of JobSpec.
        """
        try:
            data = json.loads(text)
            spec = cls(**data)
        except (json.JSONDecodeError, TypeError) as err:
            raise ConfigError(f"training job spec is not valid: {err}") from err
        validate_robot_id(spec.robot_id)
        if not isinstance(spec.max_samples, int) or spec.max_samples < 2:
            raise ConfigError(f"max_samples must be an int >= 2, got {spec.max_samples!r}")
        return spec

    def trainer_config(self) -> TrainerConfig:
        """The TrainerConfig of this job (validated by TrainerConfig itself)."""
        fields = dict(self.trainer)
        if "input_size" in fields:
            fields["input_size"] = tuple(int(v) for v in fields["input_size"])
        try:
            return TrainerConfig(**fields)
        except TypeError as err:
            raise ConfigError(f"unknown TrainerConfig field in the job spec: {err}") from err


def _write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=1, default=_json_default) + "\n").encode("utf-8"))


def _json_default(value: object) -> object:
    if hasattr(value, "tolist"):
        return value.tolist()  # numpy scalars/arrays
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _progress(spec: JobSpec, phase: str, **extra: Any) -> None:
    if spec.progress_path:
        _write_json(spec.progress_path, {"phase": phase, "time": time.time(), **extra})


VALIDATION_MAX_FRAMES = 200
"""Most labelled frames read from a validation bag (memory bound)."""


def load_validation_bag(path: str | os.PathLike[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images and ground-truth labels of a small labelled rosbag2 (``bags.DEFAULT_TOPICS``).

    Raises:
        BagError: unreadable bag; ConfigError: no labelled frame in it.
    """
    from laecips_core import bags

    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    topics = bags.DEFAULT_TOPICS
    for frame in bags.read_bag_frames(
        path, topics.image, topics.labels, max_frames=10 * VALIDATION_MAX_FRAMES
    ):
        if frame.labels is not None:
            images.append(frame.image)
            labels.append(frame.labels)
        if len(images) >= VALIDATION_MAX_FRAMES:
            break
    if not images:
        raise ConfigError(f"validation bag {path} has no frame with labels; record one with a labels topic")
    return images, labels


def run_job(spec: JobSpec) -> dict[str, Any]:
    """Train f (Eq. 13) then h (Eq. 14) on the robot's replay buffer and store the bundle if accepted.

    Reads at most spec.max_samples samples, trains copies of the store's newest f/h with
    ContinualTrainer (which refuses updates that do worse on held-back frames), writes the new bundle as
    version latest+1 into the WeightStore (atomic; older versions kept), and a report JSON + loss PNG.
    The buffer is NOT cleared here: the caller clears ``trained_ids`` once it has published.

    Returns:
        {"accepted", "version" (new or parent), "parent_version", "sha256", "path", "trained_ids",
        "reason", "report_path", "plot_path", "seconds"}.

    Raises:
        LaecipsError: empty store, unreadable buffer or bundle.
    """
    t0 = time.perf_counter()
    cfg = spec.trainer_config()
    _progress(spec, "loading")
    store = WeightStore(spec.store_dir)
    parent = store.latest()
    if parent is None:
        raise WeightsError(f"weight store {spec.store_dir} is empty; seed it with the edge's initial bundle")
    parent_bundle = load_bundle(store.path(parent))
    f, h = build_models(parent_bundle)
    with ReplayBuffer(spec.replay_path, maxsize=_REPLAY_READ_MAXSIZE) as buffer:
        samples = buffer.samples(limit=spec.max_samples)
    ids = [int(s.id) for s in samples]
    _progress(spec, "training", samples=len(samples), parent_version=parent)
    validation = load_validation_bag(spec.validation_bag) if spec.validation_bag else None
    result = ContinualTrainer(cfg, validation=validation).run(f, h, samples, progress=False)
    report = dict(result.report)
    report.update(robot_id=spec.robot_id, parent_version=parent, n_samples=len(samples))
    out: dict[str, Any] = {
        "accepted": bool(result.accepted),
        "version": parent,
        "parent_version": parent,
        "sha256": "",
        "path": "",
        "trained_ids": ids,
        "reason": str(report.get("reason", "")),
    }
    reports = Path(spec.reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    if result.accepted:
        version = (store.latest() or parent) + 1
        metadata = {k: v for k, v in parent_bundle.metadata.items() if k not in ("created", "format")}
        metadata.update(
            version=str(version),
            parent_version=str(parent),
            robot_id=spec.robot_id,
            train_reason=out["reason"][:500],
        )
        data = serialize_bundle(result.f_state, result.h_state or None, metadata)
        path = store.put(data, version)
        out.update(version=version, sha256=sha256_bytes(data), path=str(path))
        stem = f"v{version:08d}"
    else:
        stem = f"refused_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"
    report["version"] = out["version"]
    report_path, plot_path = reports / f"{stem}.json", reports / f"{stem}.png"
    _write_json(report_path, report)
    plot_report(report, plot_path)
    out.update(report_path=str(report_path), plot_path=str(plot_path), seconds=time.perf_counter() - t0)
    _progress(spec, "done", accepted=out["accepted"], version=out["version"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m laecips_core.training_job --spec SPEC.json --result RESULT.json``.

    Exit status 0 when the job ran (accepted or refused: see the result file), 1 on an error (the
    result file then holds {"error": "..."}), 2 on bad arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, type=Path, help="JobSpec JSON written by the trainer node")
    parser.add_argument("--result", required=True, type=Path, help="where to write the result JSON")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: keep the default)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:
        spec = JobSpec.from_json(args.spec.read_text(encoding="utf-8"))
        result = run_job(spec)
    except (LaecipsError, OSError) as err:
        _write_json(args.result, {"error": f"{type(err).__name__}: {err}"})
        print(f"training job failed: {err}", file=sys.stderr)
        return 1
    _write_json(args.result, result)
    verdict = "accepted" if result["accepted"] else "refused"
    print(f"training job {verdict}: version {result['version']} ({result['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
