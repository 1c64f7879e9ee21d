"""One continual-training job of Algorithm 2 in its own process: replay buffer -> Eq. 13/14 -> new bundle."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from laecips_core.algo.bundles import build_models
from laecips_core.errors import ConfigError, LaecipsError, WeightsError
from laecips_core.files import atomic_write_bytes, sha256_bytes
from laecips_core.storage.bundle_loading import load_bundle, parse_bundle
from laecips_core.storage.jobspec import JobSpec
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.storage.weight_store import WeightStore
from laecips_core.storage.weights import serialize_bundle
from laecips_core.training.adaptation import ContinualTrainer
from laecips_core.training.fit import plot_report
from laecips_core.training.onnx_bundle import bundle_with_onnx

_REPLAY_READ_MAXSIZE = 10**9
"""maxsize of the trainer's handle on the buffer: it never appends, so this bound never applies."""


# ---------------------------------------------------------------------------------------------- job


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
        Path(spec.progress_path).parent.mkdir(parents=True, exist_ok=True)
        _write_json(spec.progress_path, {"phase": phase, "time": time.time(), **extra})


VALIDATION_MAX_FRAMES = 200
"""Most labelled frames read from a validation bag (memory bound)."""


def load_validation_bag(path: str | os.PathLike[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images and ground-truth labels of a small labelled rosbag2 (``bags.DEFAULT_TOPICS``).

    Raises:
        BagError: unreadable bag; ConfigError: no labelled frame in it.
    """
    from laecips_core.storage import bags

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


def run_job(spec: JobSpec, onnx_prior: float | None = None) -> dict[str, Any]:
    """Train f (Eq. 13) then h (Eq. 14) on the robot's replay buffer and store the bundle if accepted.

    Reads at most spec.max_samples samples, trains copies of the store's newest f/h with
    ContinualTrainer (which refuses updates that do worse on held-back frames), writes the new bundle as
    version latest+1 into the WeightStore (atomic; older versions kept), and a report JSON + loss PNG.
    The buffer is NOT cleared here: the caller clears ``trained_ids`` once it has published.
    With ``onnx_prior`` the bundle also carries ONNX graphs of the new f (with that stream_norm_prior)
    and h, for lean edges (``onnx_bundle.bundle_with_onnx``), f traced at the training resolution.

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
        if onnx_prior is not None and result.h_state:
            _progress(spec, "exporting onnx", version=version)
            # traced at the training resolution: a fixed-size f graph (the default f) runs at it
            data = bundle_with_onnx(parse_bundle(data, source=f"v{version}"), onnx_prior, cfg.input_size)
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
    """``python -m laecips_core.training.job --spec SPEC.json --result RESULT.json``.

    Exit status 0 when the job ran (accepted or refused: see the result file), 1 on an error (the
    result file then holds {"error": "..."}), 2 on bad arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, type=Path, help="JobSpec JSON written by the trainer node")
    parser.add_argument("--result", required=True, type=Path, help="where to write the result JSON")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: keep the default)")
    parser.add_argument(
        "--onnx-prior",
        type=float,
        default=None,
        help="also ship ONNX graphs of f (with this stream_norm_prior) and h in the bundle",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:
        spec = JobSpec.from_json(args.spec.read_text(encoding="utf-8"))
        result = run_job(spec, args.onnx_prior)
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
