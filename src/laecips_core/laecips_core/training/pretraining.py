"""Pre-training of f and h on task 1 (before deployment) and the cached default weights of each profile."""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import laecips_core
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.metrics import auroc, frame_miou
from laecips_core.algo.mining import MinerNet, hard_label
from laecips_core.algo.models import DEFAULT_EDGE_MODEL, build_edge_model
from laecips_core.benchmark import generator as bench
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.files import atomic_write_bytes, sha256_file
from laecips_core.lvm.core import DEFAULT_LVM
from laecips_core.storage.jobspec import TrainerConfig
from laecips_core.storage.weights import save_bundle
from laecips_core.training.fit import (
    FrozenLogits,
    evaluate_agreement,
    fit_miner,
    resize_images,
    resize_labels,
    torch_threads,
    train_edge,
)

RECIPE_VERSION = 2
"""Bumped whenever the pre-training code changes its result for the same configuration (cache key)."""


class LabelledFrame(Protocol):
    """What pre-training reads from a frame (``laecips_core.benchmark.generator.Frame`` fits)."""

    @property
    def image(self) -> np.ndarray: ...  # (H, W, 3) uint8 RGB

    @property
    def labels(self) -> np.ndarray: ...  # (H, W) ground-truth classes, 255 = ignore

    @property
    def task_id(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """Recipe of the task-1 pre-training of the edge model f and the miner h.

    Attributes:
        num_classes: M.
        edge_model: Registry key of f (``laecips_core.algo.models.edge_model_registry``).
        pretrained_backbone: Load the shipped ImageNet backbone weights (a model without any refuses;
            the card's ``backbone_weights`` says what was loaded).
        epochs: Epochs of f on the ground-truth labels.
        lr: Adam learning rate of f (1e-3: the ImageNet backbone is fine-tuned, not trained anew).
        batch_size: Frames per step (f and h).
        input_size: Training resolution (H, W); also the resolution at which LVM masks and the fused
            labels F(x) of the miner's hard/easy labels are computed.
        frames: Number of task-1 frames ``ensure_default_weights`` generates for pre-training.
        val_fraction: Most recent share of the frames held out to measure f (never trained on).
        miner_fraction: Share of the frames kept from f's training and used only to label and train h:
            on frames f was trained on it is over-confident, so the hard/easy labels there would not
            resemble deployment. The default (half of 256 frames) gives h 128 frames while f keeps 96:
            with an LVM that helps on most frames, EASY frames are rare and h needs many frames.
        miner_epochs: Epochs of h. h (ResNet18, 11M parameters) memorises the few miner frames quickly:
            on the "default" f, 100 frames, 20 epochs gave held-out AUROC 0.51 and 8 epochs 0.58.
        miner_lr: Adam learning rate of h.
        miner_in_size: (H, W) that ``MinerNet`` resizes f's logits to.
        hard_margin: A frame is HARD when frame mIoU(F(x)) - frame mIoU(f(x)) >= this (paper: 0.1).
        lvm: Registry key of the LVM that makes SAM(x) for the fused labels (the CPU default).
        lvm_kwargs: Keyword arguments of the LVM builder, as (name, value) pairs.
        seed: Seed of f's and h's initialisation and of the shuffling.
        num_threads: torch CPU threads; None keeps the process setting.
        device: torch device string.
    """

    num_classes: int
    edge_model: str = DEFAULT_EDGE_MODEL
    pretrained_backbone: bool = True
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 8
    input_size: tuple[int, int] = (240, 320)
    frames: int = 256
    val_fraction: float = 0.125
    miner_fraction: float = 0.5
    miner_epochs: int = 8
    miner_lr: float = 1e-3
    miner_in_size: tuple[int, int] = (64, 64)
    hard_margin: float = 0.1
    lvm: str = DEFAULT_LVM
    lvm_kwargs: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    num_threads: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("num_classes", "epochs", "batch_size", "frames", "miner_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"PretrainConfig.{name} must be an int >= 1, got {value!r}")
        if self.num_classes < 2:
            raise ConfigError(f"PretrainConfig.num_classes must be >= 2, got {self.num_classes}")
        for name in ("val_fraction", "miner_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"PretrainConfig.{name} must be in (0, 1), got {getattr(self, name)!r}")
        if self.val_fraction + self.miner_fraction >= 0.9:
            raise ConfigError("val_fraction + miner_fraction must leave >= 10 % of the frames to train f")
        if not 0.0 <= self.hard_margin <= 1.0:
            raise ConfigError(f"PretrainConfig.hard_margin must be in [0, 1], got {self.hard_margin!r}")
        for name in ("input_size", "miner_in_size"):
            size = tuple(getattr(self, name))
            if len(size) != 2 or not all(isinstance(s, int) and s >= 8 for s in size):
                raise ConfigError(f"PretrainConfig.{name} must be (H, W) ints >= 8, got {size!r}")
            object.__setattr__(self, name, (int(size[0]), int(size[1])))
        object.__setattr__(self, "lvm_kwargs", tuple((str(k), v) for k, v in self.lvm_kwargs))
        self.trainer(self.lr, self.epochs)  # validates lr, device, threads through TrainerConfig

    def trainer(self, lr: float, epochs: int) -> TrainerConfig:
        """The ``TrainerConfig`` used for one stage (f or h) of pre-training."""
        return TrainerConfig(
            lr=lr,
            epochs=epochs,
            batch_size=self.batch_size,
            input_size=self.input_size,
            seed=self.seed,
            num_threads=self.num_threads,
            device=self.device,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples as lists), used in the card and the cache key."""
        out: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return out


class MinerPretrainStats(NamedTuple):
    """Outcome of ``pretrain_miner``.

    Attributes:
        hard: (N,) bool, the paper's HARD label of each frame.
        miou_edge: (N,) frame mIoU of f(x) vs ground truth.
        miou_fused: (N,) frame mIoU of F(x) = fusion(f(x), LVM(x)) vs ground truth.
        losses: Weighted BCE of each epoch.
        summary: JSON-serialisable counts and rates.
    """

    hard: np.ndarray
    miou_edge: np.ndarray
    miou_fused: np.ndarray
    losses: list[float]
    summary: dict[str, Any]


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


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG inside the block and restore the caller's RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def pretrain_edge(
    frames: Sequence[LabelledFrame], cfg: PretrainConfig, progress: bool = True
) -> tuple[nn.Module, list[float]]:
    """Train a fresh edge model f on task-1 frames with their ground-truth labels (Eq. 13 with y for F(x)).

    Args:
        frames: Frames with ``image`` (H, W, 3) uint8 and ground-truth ``labels`` (H, W).
        cfg: Recipe (edge_model, num_classes, epochs, lr, batch_size, input_size, seed).
        progress: Show tqdm bars.

    Returns:
        (f in eval mode, mean cross-entropy of each epoch).
    """
    if not frames:
        raise ConfigError("pretrain_edge needs at least one labelled task-1 frame")
    with _seeded(cfg.seed):
        f = build_edge_model(cfg.edge_model, cfg.num_classes, pretrained_backbone=cfg.pretrained_backbone)
    losses = train_edge(
        f,
        [fr.image for fr in frames],
        [fr.labels for fr in frames],
        cfg.trainer(cfg.lr, cfg.epochs),
        progress,
    )
    if not all(math.isfinite(v) for v in losses):
        raise ConfigError(f"pre-training of f diverged (losses {losses}); lower PretrainConfig.lr")
    return f.eval(), losses


def hard_labels(
    f: nn.Module,
    frames: Sequence[LabelledFrame],
    fuser: AssistedInference,
    cfg: PretrainConfig,
    progress: bool = True,
) -> tuple[FrozenLogits, MinerPretrainStats]:
    """Label frames HARD/EASY as the paper does: mIoU(F(x)) - mIoU(f(x)) >= hard_margin.

    F(x) = Algorithm 1 on softmax(f(x)) and the LVM's masks, both at ``cfg.input_size``; mIoU per frame
    against the ground truth.

    Returns:
        (f's logits of the frames, stats with ``hard`` and the per-frame mIoUs; ``losses`` empty).
    """
    tcfg = cfg.trainer(cfg.miner_lr, cfg.miner_epochs)
    rgb = resize_images([fr.image for fr in frames], cfg.input_size)
    gt = resize_labels([fr.labels for fr in frames], cfg.input_size)
    n = len(rgb)
    miou_edge = np.zeros(n)
    miou_fused = np.zeros(n)
    bar = tqdm(total=n, desc="LVM + fusion for h labels", disable=not progress, leave=False)

    def label_batch(sl: slice, logits: torch.Tensor) -> None:
        probs = torch.softmax(logits, dim=1).cpu().numpy()
        for i, p in zip(range(*sl.indices(n)), probs):
            edge = p.argmax(0)
            fused = fuser(rgb[i], p, gt[i]).labels
            miou_edge[i] = frame_miou(edge, gt[i], cfg.num_classes)
            miou_fused[i] = frame_miou(np.asarray(fused), gt[i], cfg.num_classes)
            bar.update(1)

    try:
        source = FrozenLogits(f, rgb, tcfg, label_batch, progress=False)
    finally:
        bar.close()
    hard = np.array(
        [hard_label(float(a), float(b), margin=cfg.hard_margin) for a, b in zip(miou_fused, miou_edge)], bool
    )
    summary = {
        "frames": n,
        "hard": int(hard.sum()),
        "easy": int(n - hard.sum()),
        "hard_rate": float(hard.mean()) if n else float("nan"),
        "miou_edge_mean": float(np.nanmean(miou_edge)) if n else float("nan"),
        "miou_fused_mean": float(np.nanmean(miou_fused)) if n else float("nan"),
    }
    return source, MinerPretrainStats(hard, miou_edge, miou_fused, [], summary)


def pretrain_miner(
    f: nn.Module,
    frames: Sequence[LabelledFrame],
    fuser: AssistedInference,
    cfg: PretrainConfig,
    progress: bool = True,
) -> tuple[nn.Module, MinerPretrainStats]:
    """Train the miner h on f's logits with the paper's pre-training labels (BCE: 0 HARD, 1 EASY).

    Classes are balanced by weighting each frame with n / (2 n_class), so a rare HARD class still
    shapes h; the counts are in ``stats.summary``.

    Args:
        f: Pre-trained edge model (frozen, unchanged).
        frames: Labelled frames f was NOT trained on.
        fuser: F(x) (LVM + Algorithm 1), as the cloud builds it.
        cfg: Recipe (miner_epochs, miner_lr, miner_in_size, hard_margin, input_size, seed).
        progress: Show tqdm bars.

    Returns:
        (h in eval mode, stats incl. the BCE curve).
    """
    if not frames:
        raise ConfigError("pretrain_miner needs at least one labelled frame that f was not trained on")
    tcfg = cfg.trainer(cfg.miner_lr, cfg.miner_epochs)
    with torch_threads(cfg.num_threads):
        source, stats = hard_labels(f, frames, fuser, cfg, progress)
    target = torch.from_numpy((~stats.hard).astype(np.float32))  # 1 = easy (confident), 0 = hard
    n_easy = float(target.sum())
    n_hard = float(len(target) - n_easy)
    w_easy = len(target) / (2 * n_easy) if n_easy and n_hard else 1.0
    w_hard = len(target) / (2 * n_hard) if n_easy and n_hard else 1.0

    def weighted_bce(conf: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        weight = t * w_easy + (1 - t) * w_hard
        return F.binary_cross_entropy(conf.clamp(1e-6, 1 - 1e-6), t, weight=weight)

    with _seeded(cfg.seed + 7):
        h = MinerNet(cfg.num_classes, in_size=cfg.miner_in_size)
    with torch_threads(cfg.num_threads), _seeded(cfg.seed + 8):
        losses = fit_miner(h, source, target, weighted_bce, tcfg, progress, "pre-train h (BCE)")
    stats.summary["bce"] = losses
    stats.summary["class_weights"] = {"easy": w_easy, "hard": w_hard}
    return h.eval(), stats._replace(losses=losses)


def _miner_quality(
    f: nn.Module, h: nn.Module, frames: Sequence[LabelledFrame], fuser: AssistedInference, cfg: PretrainConfig
) -> dict[str, Any]:
    source, stats = hard_labels(f, frames, fuser, cfg, progress=False)
    h.eval()
    with torch.inference_mode():
        conf = np.concatenate(
            [
                h(source(np.arange(s, min(s + cfg.batch_size, len(frames))))).reshape(-1).cpu().numpy()
                for s in range(0, len(frames), cfg.batch_size)
            ]
        )
    easy = ~stats.hard
    return {
        **{
            k: stats.summary[k]
            for k in ("frames", "hard", "easy", "hard_rate", "miou_edge_mean", "miou_fused_mean")
        },
        "auroc_easy": auroc(conf, easy),
        "acc_at_0.5": float(((conf > 0.5) == easy).mean()) if len(conf) else float("nan"),
        "mean_conf_easy": float(conf[easy].mean()) if easy.any() else float("nan"),
        "mean_conf_hard": float(conf[~easy].mean()) if (~easy).any() else float("nan"),
    }


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
            "miner_val": _miner_quality(f, h, val_frames, fuser, cfg),
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


@dataclass(frozen=True)
class Profile:
    """A reproducible pre-training set-up: the recipe and the benchmark it draws task-1 frames from.

    Attributes:
        name: Canonical profile name (part of the cached file's name).
        pretrain: Recipe; ``pretrain.frames`` task-1 frames are generated.
        benchmark: Keyword arguments of ``BenchmarkConfig`` except frames_per_task.
        eval_frames_per_task: Held-out frames per task to report f's mIoU under drift (0: none).
    """

    name: str
    pretrain: PretrainConfig
    benchmark: dict[str, Any] = field(default_factory=dict)
    eval_frames_per_task: int = 0


PRETRAIN_DATA_SEED = 1000
"""Seed of the pre-training stream: its frames never coincide with an evaluation stream (seed 0 by
default) although they follow the same task-1 distribution."""

_PRETRAIN_STREAM: dict[str, Any] = {"seed": PRETRAIN_DATA_SEED, "fps": 1.0}
"""The benchmark changes scene every SEGMENT_SECONDS of stream time; at 1 frame/s every pre-training
frame is a new scene, so few frames already cover many layouts (at 10 fps, 10 frames share one)."""

PROFILE_ALIASES: dict[str, str] = {"default": "default", "demo": "default", "eval": "default", "test": "test"}
"""Accepted profile names and their canonical profile: demo, evaluation and the CLI share one file."""

PROFILES: tuple[str, ...] = tuple(PROFILE_ALIASES)


def get_profile(name: str) -> Profile:
    """The named profile.

    "test": tiny_fcn at 120x160 on 64 frames of 160x120, seconds on one core. "default" (aliases
    "demo", "eval"): LRASPP-MobileNetV3 at 240x320 on 160 frames of 320x240, a few minutes on 2 cores;
    it also reports f's mIoU on 8 held-out frames of each of the 5 tasks.
    """
    canonical = PROFILE_ALIASES.get(name)
    num_classes = len(bench.CLASSES)
    if canonical == "test":
        cfg = PretrainConfig(
            num_classes=num_classes,
            edge_model="tiny_fcn",
            pretrained_backbone=False,
            epochs=20,
            lr=1e-2,
            input_size=(120, 160),
            frames=64,
            miner_epochs=8,
            num_threads=1,
        )
        return Profile("test", cfg, {**_PRETRAIN_STREAM, "width": 160, "height": 120}, 0)
    if canonical == "default":
        cfg = PretrainConfig(num_classes=num_classes)
        return Profile("default", cfg, {**_PRETRAIN_STREAM, "width": 320, "height": 240}, 8)
    raise ConfigError(f"unknown pre-training profile {name!r}; choose one of {PROFILES}")


TRAINING_CODE: tuple[str, ...] = (
    "algo/assisted.py",
    "algo/fusion.py",
    "algo/metrics.py",
    "algo/mining.py",
    "algo/models.py",
    "benchmark",
    "lvm",
    "storage/jobspec.py",
    "training/fit.py",
    "training/pretraining.py",
)
"""Files and subpackages of laecips_core whose code determines pre-trained weights (part of the cache key)."""


class _DropDocstringsAndImports(ast.NodeTransformer):
    """Removes bare string statements (docstrings) and import statements, wherever they stand."""

    def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return node

    def visit_Import(self, node: ast.Import) -> None:
        return None

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return None


def normalised_definitions(source: str) -> list[str]:
    """The top-level statements of a module as ``ast.dump`` strings, without comments, docstrings,
    imports and layout.

    Two sources with the same result run the same code: editing a docstring or a comment, moving a
    definition to another listed module, or changing where an import comes from keeps the cache key.
    Type annotations are kept (they are code). The dump is Python-version specific, so another
    interpreter version trains its own weights once.
    """
    tree = _DropDocstringsAndImports().visit(ast.parse(source))
    return [ast.dump(stmt, include_attributes=False) for stmt in tree.body]


def training_code_files() -> list[Path]:
    """The .py files named by ``TRAINING_CODE`` (a subpackage stands for all its modules)."""
    pkg = Path(laecips_core.__file__).parent
    found: list[Path] = []
    for name in TRAINING_CODE:
        path = pkg / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def code_fingerprint() -> str:
    """Hex SHA-256 over the code of ``TRAINING_CODE`` (``normalised_definitions``, sorted): any change
    to the code that trains changes the cache key, so a cached bundle never outlives the code that
    made it; comments, docstrings, imports and moving a definition between these files do not."""
    statements: list[str] = []
    for path in training_code_files():
        if not path.is_file():
            raise ConfigError(f"training code {path} is missing: reinstall laecips_core")
        statements += normalised_definitions(path.read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for statement in sorted(statements):
        digest.update(statement.encode() + b"\0")
    return digest.hexdigest()


def profile_key(prof: Profile) -> str:
    """Hex SHA-256 over everything that determines a profile's weights (recipe, data, code source)."""
    recipe = prof.pretrain.to_json()
    recipe.pop("num_threads")  # how fast, not what: the same weights up to float rounding
    payload = {
        "recipe_version": RECIPE_VERSION,
        "code": code_fingerprint(),
        "pretrain": recipe,
        "benchmark": prof.benchmark,
        "eval_frames_per_task": prof.eval_frames_per_task,
        "classes": list(bench.CLASSES),
        "data_version": str(getattr(bench, "GENERATOR_VERSION", getattr(bench, "__version__", ""))),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def profile_frames(prof: Profile, progress: bool = True) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Generate a profile's task-1 training frames and its held-out per-task evaluation frames.

    Returns:
        (task-1 frames in stream order, evaluation frames of every task, data_info for the card).
    """
    n = prof.pretrain.frames
    bcfg = bench.BenchmarkConfig(frames_per_task=n + prof.eval_frames_per_task, **prof.benchmark)
    first_task = bench.task_of(bcfg, 0)
    train = [
        bench.generate_frame(bcfg, i) for i in tqdm(range(n), desc="task-1 frames", disable=not progress)
    ]
    if any(fr.task_id != first_task for fr in train):
        raise ConfigError("the benchmark's first task holds fewer frames than PretrainConfig.frames")
    evals: list[Any] = []
    if prof.eval_frames_per_task:
        per = bcfg.frames_per_task
        for task in range(bcfg.num_tasks):
            start = task * per + (n if task == 0 else 0)  # task 1: the frames after the training ones
            evals += [bench.generate_frame(bcfg, start + j) for j in range(prof.eval_frames_per_task)]
    info = {"benchmark": json.loads(json.dumps(asdict(bcfg), default=str)), "eval_frames": len(evals)}
    return train, evals, info


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _cached(bundle: Path, card: Path, key: str) -> bool:
    if not (bundle.is_file() and card.is_file()):
        return False
    try:
        meta = json.loads(card.read_text())
        return bool(meta["data"]["key"] == key and meta["sha256"] == sha256_file(bundle))
    except (OSError, ValueError, KeyError, TypeError, WeightsError):
        return False


def default_cache_dir() -> Path:
    """Weights cache: ``$LAECIPS_WEIGHTS_CACHE``, else ``$XDG_CACHE_HOME/laecips/weights`` (~/.cache)."""
    env = os.environ.get("LAECIPS_WEIGHTS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "laecips" / "weights"


def card_path(bundle_path: str | os.PathLike[str]) -> Path:
    """The JSON card that belongs to a bundle (same stem, ``.json``)."""
    return Path(bundle_path).with_suffix(".json")


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
    if not force and _cached(bundle, card, key):
        return bundle
    with _file_lock(bundle.with_suffix(".lock")):
        if not force and _cached(bundle, card, key):  # another process finished it while we waited
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
