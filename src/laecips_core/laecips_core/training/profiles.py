"""Pre-training recipe of f and h (``PretrainConfig``) and the named profiles that draw task-1 frames."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from laecips_core import benchmark as bench
from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
from laecips_core.errors import ConfigError
from laecips_core.lvm.registry import DEFAULT_LVM
from laecips_core.storage.jobspec import TrainerConfig

__all__ = [
    "PRETRAIN_DATA_SEED",
    "PROFILES",
    "PROFILE_ALIASES",
    "RECIPE_VERSION",
    "PretrainConfig",
    "Profile",
    "get_profile",
    "profile_frames",
]

RECIPE_VERSION = 2
"""Bumped whenever the pre-training code changes its result for the same configuration (cache key)."""


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
