"""The starting edge model f and MinerNet h of every method (the models Algorithm 2 starts from).

From ``--pretrain-task K`` (f and h pre-trained on the labelled frames of task K of the stream),
a ``--weights`` bundle, or the cached default weights; with them the held-out calibration frames that
set delta (Eq. 2) and the training resolution of the continual updates (Eq. 13, Eq. 14).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from torch import nn

from laecips_core.algo import mining, models, state
from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR
from laecips_core.errors import ConfigError
from laecips_core.evaluation.run_config import EvalConfig
from laecips_core.evaluation.sources import (
    StreamFrame,
    StreamSource,
    as_stream_frame,
    first_frame_size,
    scan_num_classes,
)
from laecips_core.storage import bundle_loading


@dataclass
class StartModel:
    """The starting edge model f (and MinerNet h) shared by every method, and where it came from.

    Attributes:
        f: edge model f (eval mode).
        h: MinerNet h, or None when the weights carry no miner network.
        num_classes: M.
        class_names: M names (generated "class_<i>" when the source has none).
        calibration: held-out frames of f's pre-training distribution (for delta), possibly empty.
        description: source of the weights, for results.json.
        stream_norm_prior: N of ``streamnorm`` with which the robot runs f (0 = stored statistics).
    """

    f: nn.Module
    h: nn.Module | None
    num_classes: int
    class_names: list[str]
    calibration: list[StreamFrame]
    description: dict[str, Any]
    stream_norm_prior: float = DEFAULT_STREAM_NORM_PRIOR


def model_from_bundle(bundle: state.Bundle) -> tuple[nn.Module, nn.Module | None]:
    """Build f (and h when the bundle has one) for a bundle and load it strictly."""
    f = models.build_edge_model(bundle.model_name, bundle.num_classes, pretrained_backbone=False)
    h = mining.MinerNet(bundle.num_classes) if bundle.h_state else None
    state.apply_bundle(bundle, f, h)
    f.eval()
    if h is not None:
        h.eval()
    return f, h


def _class_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    if names is not None and len(names) == num_classes:
        return list(names)
    return [f"class_{i}" for i in range(num_classes)]


def _benchmark_calibration(cfg: EvalConfig, height: int, width: int) -> list[StreamFrame]:
    """Held-out frames of the benchmark's first task (a seed the stream does not use), at (height, width)."""
    from laecips_core import benchmark as data

    bench = data.BenchmarkConfig(
        seed=cfg.seed + CALIBRATION_SEED_OFFSET,
        frames_per_task=max(cfg.calibration_frames, 1),
        width=width,
        height=height,
        num_tasks=1,
    )
    return [as_stream_frame(fr) for fr in data.generate_stream(bench)]


CALIBRATION_SEED_OFFSET = 7919
"""The calibration stream uses seed + this, so its frames are never frames of the evaluated stream."""


def working_size(height: int, width: int, max_pixels: int = 240 * 320) -> tuple[int, int]:
    """Training resolution (H, W) for frames of height x width: the frame size, scaled down to at most
    ``max_pixels`` pixels with the same aspect ratio (inference always runs at the frame's own size)."""
    scale = min(1.0, math.sqrt(max_pixels / float(height * width)))
    return max(8, round(height * scale)), max(8, round(width * scale))


def prepare_start_model(cfg: EvalConfig, source: StreamSource) -> tuple[StartModel, StreamSource]:
    """The starting f and h of every method, and the stream to evaluate (without the pre-training task).

    Order of precedence: ``--pretrain-task K`` (f and h pre-trained on task K's labelled frames with
    ``pretraining.pretrain``; its held-out validation block calibrates delta; task K is not streamed),
    then a ``--weights`` bundle, then the cached default weights of
    ``pretraining.ensure_default_weights(profile)`` (benchmark classes; calibration on held-out
    benchmark frames of the first task).

    Raises:
        ConfigError, WeightsError, BagError: inconsistent class counts, too few labelled frames in task K.
    """
    from laecips_core.training import pretraining  # imported here: only this step trains or fetches weights

    if cfg.pretrain_task is not None:
        return _pretrain_on_task(cfg, source)
    if cfg.weights is not None:
        path = Path(cfg.weights)
        bundle = bundle_loading.load_bundle(cfg.weights)
        description: dict[str, Any] = {"kind": "bundle", "path": str(cfg.weights), **bundle.metadata}
    else:
        path = pretraining.ensure_default_weights(profile=cfg.weights_profile, progress=cfg.progress)
        bundle = bundle_loading.load_bundle(path)
        description = {
            "kind": "default",
            "profile": cfg.weights_profile,
            "path": str(path),
            **bundle.metadata,
        }
    num_classes = bundle.num_classes
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise ConfigError(
            f"--num-classes {cfg.num_classes} but the weights are for M={num_classes}; "
            "drop --num-classes, or use --pretrain-task K to train for the new classes"
        )
    if source.class_names is not None and len(source.class_names) != num_classes:
        raise ConfigError(
            f"the stream has {len(source.class_names)} classes but the weights have M={num_classes}: "
            "use --pretrain-task K to pre-train on this data"
        )
    f, h = model_from_bundle(bundle)
    calibration: list[StreamFrame] = []
    if cfg.weights is None or source.description.get("kind") == "benchmark":
        height, width = first_frame_size(source)
        calibration = _benchmark_calibration(cfg, height, width)
    # Names: the stream's classes topic, else the bundle's (its metadata or card), else class_<i>.
    names = _class_names(
        source.class_names or bundle_loading.bundle_class_names(path, bundle.metadata), num_classes
    )
    return StartModel(f, h, num_classes, names, calibration, description), source


def _pretrain_on_task(cfg: EvalConfig, source: StreamSource) -> tuple[StartModel, StreamSource]:
    """``--pretrain-task K``: pre-train f and h on task K's labelled frames, stream the other tasks."""
    from laecips_core.training import pretrain_stages, pretraining, profiles

    k = cfg.pretrain_task
    task_frames: list[StreamFrame] = []
    in_task = 0
    for fr in source.frames():
        if fr.task_id == k:
            in_task += 1
            if fr.labels is not None and len(task_frames) < cfg.pretrain_max_frames:
                task_frames.append(fr)
    if len(task_frames) < 3:
        raise ConfigError(
            f"task id {k} has {len(task_frames)} labelled frame(s); --pretrain-task needs >= 3 (better 50+): "
            "check the task source (--task-topic / --task-boundaries) and the label topic"
        )
    if cfg.num_classes is not None:
        num_classes = cfg.num_classes
    elif source.class_names is not None:
        num_classes = len(source.class_names)
    else:
        num_classes = scan_num_classes(source)
    top = max(
        int(np.max(fr.labels, where=fr.labels != 255, initial=0))
        for fr in task_frames
        if fr.labels is not None
    )
    if top >= num_classes:
        raise ConfigError(
            f"task id {k} has label id {top} but M={num_classes}: give --num-classes {top + 1} or more"
        )
    profile = profiles.get_profile(cfg.weights_profile)
    height, width = task_frames[0].image.shape[:2]
    pcfg = replace(
        profile.pretrain,
        num_classes=num_classes,
        input_size=working_size(height, width),
        seed=cfg.seed,
    )
    # Every frame kept has labels (filtered above), so they are pretrain_stages.LabelledFrame.
    labelled = cast("list[pretrain_stages.LabelledFrame]", task_frames)
    result = pretraining.pretrain(
        labelled,
        pcfg,
        Path(cfg.out) / "pretrain",
        cfg.progress,
        name=f"pretrain-task{k}",
        data_info={"source": source.description, "task": k, "frames": len(task_frames)},
    )
    f, h = model_from_bundle(bundle_loading.load_bundle(result.bundle_path))
    calibration = cast("list[StreamFrame]", pretraining.split_frames(labelled, pcfg)[2])

    def frames() -> Iterator[StreamFrame]:
        index = 0
        for fr in source.frames():
            if fr.task_id != k:
                yield replace(fr, index=index)
                index += 1

    total = None if source.total is None else source.total - in_task
    stream = StreamSource(frames, total, source.class_names, {**source.description, "pretrain_task": k})
    description = {
        "kind": "pretrain_task",
        "task": k,
        "frames": len(task_frames),
        "calibration_frames": len(calibration),
        "profile": cfg.weights_profile,
        "num_classes": num_classes,
        "bundle": str(result.bundle_path),
        "metrics": {key: result.metrics.get(key) for key in ("f_val", "miner_val", "n_frames")},
    }
    names = _class_names(source.class_names, num_classes)
    return StartModel(f, h, num_classes, names, list(calibration), description), stream
