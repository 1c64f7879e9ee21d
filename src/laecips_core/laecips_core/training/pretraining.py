"""Pre-training of f and h on task 1 (before deployment): split the frames, train both stages
(``training.pretrain_stages``), measure them and write a safetensors bundle and its card; the cached
default weights of each profile (``ensure_default_weights``) and f and h from the caller's frames.

The recipe and profiles live in ``training.profiles``, the cache key and location in
``training.weights_cache``."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

import laecips_core
from laecips_core.algo.assisted import AssistedInference
from laecips_core.errors import ConfigError
from laecips_core.files import atomic_write_bytes
from laecips_core.storage.weights import save_bundle
from laecips_core.training.fit import evaluate_agreement, torch_threads
from laecips_core.training.pretrain_stages import (
    LabelledFrame,
    miner_quality,
    pretrain_edge,
    pretrain_miner,
)
from laecips_core.training.profiles import (
    RECIPE_VERSION,
    PretrainConfig,
    get_profile,
    profile_frames,
)
from laecips_core.training.weights_cache import (
    card_path,
    default_cache_dir,
    file_lock,
    is_cached,
    profile_key,
)

__all__ = [
    "PretrainResult",
    "ensure_default_weights",
    "pretrain",
    "pretrain_models",
    "split_frames",
]


class PretrainResult(NamedTuple):
    """Files written by ``pretrain``.

    Attributes:
        bundle_path: safetensors bundle of f and h (``laecips_core.storage.weights.save_bundle``).
        card_path: JSON card next to it (config, data, sha256, metrics, seconds, versions).
        sha256: Hex SHA-256 of the bundle file.
        metrics: The card's metrics.
    """

    bundle_path: Path
    card_path: Path
    sha256: str
    metrics: dict[str, Any]


def split_frames(
    frames: Sequence[LabelledFrame], cfg: PretrainConfig
) -> tuple[list[LabelledFrame], list[LabelledFrame], list[LabelledFrame]]:
    """Split task-1 frames in stream order into (f-train, miner, validation) blocks.

    The validation block is the most recent ``val_fraction``, the miner block the ``miner_fraction``
    before it; contiguous blocks keep neighbouring (near-duplicate) frames on one side.
    """
    n = len(frames)
    n_val = max(1, round(n * cfg.val_fraction))
    n_miner = max(1, round(n * cfg.miner_fraction))
    n_f = n - n_val - n_miner
    if n_f < 1:
        raise ConfigError(f"{n} frames are too few to train f, label h and validate; give >= 3 (better 50+)")
    frames = list(frames)
    return frames[:n_f], frames[n_f : n_f + n_miner], frames[n_f + n_miner :]


def _versions() -> dict[str, str]:
    import torchvision

    return {
        "laecips_core": laecips_core.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def pretrain(
    frames: Sequence[LabelledFrame],
    cfg: PretrainConfig,
    out_dir: str | os.PathLike[str],
    progress: bool = True,
    *,
    eval_frames: Sequence[LabelledFrame] = (),
    name: str = "pretrained",
    data_info: dict[str, Any] | None = None,
) -> PretrainResult:
    """Pre-train f and h on task-1 frames and write a safetensors bundle plus a JSON card.

    f is trained on the oldest block of ``frames`` with ground truth, h on the next block with the
    paper's HARD/EASY labels, and both are measured on the newest block (``split_frames``).

    Args:
        frames: Labelled task-1 frames in stream order.
        cfg: Recipe.
        out_dir: Directory of ``<name>.safetensors`` and ``<name>.json`` (created).
        progress: Show tqdm bars.
        eval_frames: Optional held-out labelled frames of any task: f's mIoU vs ground truth is
            reported per ``task_id`` (drift: tasks 2-5 should score lower than task 1).
        name: File stem.
        data_info: How the frames were made (e.g. the BenchmarkConfig), copied into the card.

    Returns:
        PretrainResult(bundle_path, card_path, sha256, metrics).
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    f_frames, miner_frames, val_frames = split_frames(frames, cfg)
    eval_cfg = cfg.trainer(cfg.lr, 1)
    with torch_threads(cfg.num_threads):
        f, loss_f = pretrain_edge(f_frames, cfg, progress)
        seconds_f = time.perf_counter() - t0
        fuser = AssistedInference.build(cfg.lvm, dict(cfg.lvm_kwargs))
        h, stats = pretrain_miner(f, miner_frames, fuser, cfg, progress)
        seconds_h = time.perf_counter() - t0 - seconds_f
        metrics: dict[str, Any] = {
            "loss_f": loss_f,
            "f_train": evaluate_agreement(
                f, [x.image for x in f_frames], [x.labels for x in f_frames], eval_cfg
            ),
            "f_val": evaluate_agreement(
                f, [x.image for x in val_frames], [x.labels for x in val_frames], eval_cfg
            ),
            "miner_train": stats.summary,
            "miner_val": miner_quality(f, h, val_frames, fuser, cfg),
            "n_frames": {"f": len(f_frames), "miner": len(miner_frames), "val": len(val_frames)},
        }
        by_task: dict[int, list[LabelledFrame]] = {}
        for fr in eval_frames:
            by_task.setdefault(int(fr.task_id), []).append(fr)
        metrics["f_by_task"] = {
            str(task): evaluate_agreement(f, [x.image for x in group], [x.labels for x in group], eval_cfg)
            for task, group in sorted(by_task.items())
        }
    bundle_path = out / f"{name}.safetensors"
    card_path = out / f"{name}.json"
    metadata = {
        "model_name": cfg.edge_model,
        "num_classes": str(cfg.num_classes),
        "version": "0",
        "miner_name": "neural",
        "miner_in_size": json.dumps(list(cfg.miner_in_size)),
        "input_size": json.dumps(list(cfg.input_size)),
        "source": "pretrain",
        "recipe_version": str(RECIPE_VERSION),
        "backbone_weights": str(getattr(f, "backbone_weights", "")),
    }
    sha = save_bundle(bundle_path, f, h, metadata)
    seconds = time.perf_counter() - t0
    card = {
        "bundle": bundle_path.name,
        "sha256": sha,
        "metadata": metadata,
        "config": cfg.to_json(),
        "data": data_info or {},
        "metrics": metrics,
        "seconds": seconds,
        "seconds_f": seconds_f,
        "seconds_h": seconds_h,
        "cpu_seconds": time.process_time() - cpu0,
        "torch_threads": torch.get_num_threads() if cfg.num_threads is None else cfg.num_threads,
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_bytes(card_path, (json.dumps(card, indent=2, allow_nan=True) + "\n").encode())
    return PretrainResult(bundle_path, card_path, sha, metrics)


def ensure_default_weights(
    cache_dir: str | os.PathLike[str] | None = None,
    profile: str = "default",
    progress: bool = True,
    *,
    path: str | os.PathLike[str] | None = None,
    force: bool = False,
    **overrides: Any,
) -> Path:
    """Return the bundle of a pre-training profile, training it once and caching it by its config hash.

    The file is ``<cache_dir>/laecips-<profile>-<key12>.safetensors`` with its card next to it
    (``card_path``); key is ``profile_key``, so demos, evaluation and tests that ask for the same
    profile get the same file, and a changed recipe gets a new one. Concurrent callers are serialised
    by a lock file; a bundle whose SHA-256 or key does not match its card is rebuilt.

    Args:
        cache_dir: Cache directory (created); None: ``default_cache_dir()``.
        profile: "test" (< ~30 s on one core) or "default" / "demo" / "eval" (a few minutes on 2 cores).
        progress: Show tqdm bars.
        path: Write (or reuse) the bundle at this path instead of the cache.
        force: Train again even if a valid cached bundle exists.
        **overrides: ``PretrainConfig`` fields to change (part of the key), e.g. ``epochs=2``.

    Returns:
        Path of the safetensors bundle.
    """
    prof = get_profile(profile)
    if overrides:
        prof = replace(prof, pretrain=replace(prof.pretrain, **overrides))
    key = profile_key(prof)
    if path is not None:
        bundle = Path(path)
        if bundle.suffix != ".safetensors":
            raise ConfigError(f"bundle path {bundle} must end in .safetensors")
    else:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        bundle = cache / f"laecips-{prof.name}-{key[:12]}.safetensors"
    card = card_path(bundle)
    if not force and is_cached(bundle, card, key):
        return bundle
    with file_lock(bundle.with_suffix(".lock")):
        if not force and is_cached(bundle, card, key):  # another process finished it while we waited
            return bundle
        train, evals, info = profile_frames(prof, progress)
        info.update({"profile": prof.name, "key": key})
        pretrain(
            train, prof.pretrain, bundle.parent, progress, eval_frames=evals, name=bundle.stem, data_info=info
        )
    return bundle


class _ArrayFrame(NamedTuple):
    image: np.ndarray
    labels: np.ndarray
    task_id: int


def pretrain_models(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    num_classes: int,
    *,
    profile: str = "default",
    seed: int = 0,
    progress: bool = True,
    **overrides: Any,
) -> tuple[nn.Module, nn.Module]:
    """Pre-train f and h in memory on the caller's labelled frames with a profile's recipe.

    For data other than the built-in benchmark (e.g. a bag's first task). The oldest frames train f,
    the most recent ``miner_fraction`` label and train h (``hard_labels``); nothing is written.

    Args:
        images: Frames (H, W, 3) uint8 RGB in stream order (>= 2).
        labels: Ground-truth label maps (H, W), 255 = ignore.
        num_classes: M.
        profile: Recipe to follow (``get_profile``).
        seed: Seed of the initialisation and shuffling.
        progress: Show tqdm bars.
        **overrides: Other ``PretrainConfig`` fields to change.

    Returns:
        (f, h) in eval mode.
    """
    if len(images) != len(labels) or len(images) < 2:
        raise ConfigError(f"pretrain_models needs >= 2 images with one label map each, got {len(images)}")
    cfg = replace(get_profile(profile).pretrain, num_classes=num_classes, seed=seed, **overrides)
    frames = [_ArrayFrame(im, lab, 0) for im, lab in zip(images, labels)]
    n_miner = min(len(frames) - 1, max(1, round(len(frames) * cfg.miner_fraction)))
    with torch_threads(cfg.num_threads):
        f, _ = pretrain_edge(frames[:-n_miner], cfg, progress)
        fuser = AssistedInference.build(cfg.lvm, dict(cfg.lvm_kwargs))
        h, _ = pretrain_miner(f, frames[-n_miner:], fuser, cfg, progress)
    return f, h
