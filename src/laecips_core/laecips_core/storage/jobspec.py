"""The spec of one training job: the trainer service writes it as JSON, the training process reads it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from laecips_core.errors import ConfigError
from laecips_core.robots import validate_robot_id

RECIPES: tuple[str, ...] = ("paper", "bn", "refuse", "ema", "rehearsal")
"""Update recipes of f (``TrainerConfig.recipe``, implemented in ``laecips_core.training.adaptation``):

- "paper": Eq. 13 on the stored F(x) (fused from the old f), BatchNorm in train mode (reproduction).
- "bn": BatchNorm statistics re-estimated on the buffer's frames; no weight changes.
- "refuse": "bn", then F(x) re-fused with the adapted f, then Eq. 13 on it with the BatchNorm
  statistics frozen at the target's.
- "ema": "refuse" with a mean (EMA) teacher that re-fuses F(x) every epoch and a per-pixel confidence
  filter (pixels whose mask share is below ``confidence_threshold`` are ignored).
- "rehearsal": "ema" plus source frames with ground truth (f's pre-training frames) in every batch;
  BatchNorm stays frozen at the target statistics, so the source frames never enter them.
"""


GATES: tuple[str, ...] = ("consistency", "old_fused", "new_fused")
"""Label-free acceptance signals (``TrainerConfig.gate``); see ``adaptation.gate_update``."""


@dataclass(frozen=True)
class TrainerConfig:
    """Settings of the cloud-side continual update (Algorithm 2, Eq. 13, Eq. 14).

    Attributes:
        lr: Learning rate eta of Eq. 13 and Eq. 14. The paper uses 0.001 for 50 epochs on GPUs; on
            small pseudo-labelled buffers 1e-3 overshoots (docs/evaluation.md): 1e-4 is the default of
            the live trainer, the evaluation and the demo alike.
        epochs: Passes over the replay buffer per update (3: about a CPU-minute for 100 frames).
        batch_size: Frames per optimiser step.
        beta: Weight of the -log h term of Eq. 11/14. The optimum of Eq. 14 is h = min(1, beta / l) with
            l the per-image cross-entropy (nats/pixel) of f against F(x), so beta is the loss up to
            which a frame is fully trusted. F(x) is built from f's own scores, so l is small: measured
            with the "default" pre-trained f and the Felzenszwalb LVM on the benchmark (10 frames per
            task), median l = 0.125 on task 1 (p75 0.149), 0.26-0.28 on tasks 2-4 and 0.41 on task 5.
            beta = 0.15 puts in-distribution frames at h ~ 1 and drifted ones at 0.37-0.58, a range the
            threshold delta can cut; beta = 0.5 would give h = 1 for every frame (no signal).
        maxsize: Algorithm 2 trains when the replay buffer holds more than this many samples.
        maxtime_s: ... or when this many seconds passed since the last training (buffer not empty).
        holdout_fraction: Share of the buffer (the most recent frames) held back to gate the update.
        min_improvement: The candidate f' replaces f only when the gate's signal is at least this
            (0.0: refuse anything the gate sees as worse; see ``adaptation.gate_update``).
        input_size: Training resolution (H, W); images are resized bilinearly, labels by nearest pixel.
        seed: Seed of the shuffling and of torch's RNG during an update (deterministic runs).
        num_threads: torch CPU threads during training; None keeps the process setting.
        device: torch device string ("cpu", "cuda", "cuda:1").
        optimizer: "adam" or "sgd" (momentum 0.9).
        recipe: How f is updated (``laecips_core.recipes.RECIPES``): "paper" reproduces Eq. 13 on the
            stored F(x); the default is the best measured one (docs/evaluation.md, "Update recipes").
        gate: Label-free acceptance signal (``laecips_core.recipes.GATES``); a labelled validation set,
            when given to the trainer, replaces it.
        confidence_threshold: "ema"/"rehearsal": pseudo-label pixels whose mask share is below this
            are ignored in Eq. 13.
        ema_decay: "ema"/"rehearsal": per-step decay of the mean teacher.
        rehearsal_fraction: "rehearsal": share of each batch drawn from the source frames.
        min_class_ratio: Collapse guard: f' must predict at least this share of the classes in F(x).
        min_entropy_ratio: Collapse guard: f's class-histogram entropy must be at least this share of
            F(x)'s (``adaptation.gate_update``).
        fusion_order: Algorithm 1's mask order for re-fusion (the cloud's ``fusion_order``).
    """

    lr: float = 1e-4
    epochs: int = 3
    batch_size: int = 8
    beta: float = 0.15
    maxsize: int = 100
    maxtime_s: float = 600.0
    holdout_fraction: float = 0.2
    min_improvement: float = 0.0
    input_size: tuple[int, int] = (240, 320)
    seed: int = 0
    num_threads: int | None = None
    device: str = "cpu"
    optimizer: str = "adam"
    recipe: str = "refuse"
    gate: str = "new_fused"
    confidence_threshold: float = 0.5
    ema_decay: float = 0.99
    rehearsal_fraction: float = 0.25
    min_class_ratio: float = 0.5
    min_entropy_ratio: float = 0.5
    fusion_order: str = "area"

    def __post_init__(self) -> None:
        def positive_int(name: str, value: object) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"TrainerConfig.{name} must be an int >= 1, got {value!r}")

        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"TrainerConfig.lr must be a finite number > 0, got {self.lr!r}")
        positive_int("epochs", self.epochs)
        positive_int("batch_size", self.batch_size)
        positive_int("maxsize", self.maxsize)
        if not (isinstance(self.beta, int | float) and math.isfinite(self.beta) and self.beta > 0):
            raise ConfigError(f"TrainerConfig.beta must be a finite number > 0 (Eq. 14), got {self.beta!r}")
        if not (isinstance(self.maxtime_s, int | float) and self.maxtime_s > 0):
            raise ConfigError(f"TrainerConfig.maxtime_s must be > 0 s, got {self.maxtime_s!r}")
        if not (isinstance(self.holdout_fraction, int | float) and 0.0 < self.holdout_fraction < 1.0):
            raise ConfigError(
                f"TrainerConfig.holdout_fraction must be in (0, 1), got {self.holdout_fraction!r}; "
                "the update is gated on held-back frames"
            )
        if not (isinstance(self.min_improvement, int | float) and -1.0 <= self.min_improvement <= 1.0):
            raise ConfigError(
                f"TrainerConfig.min_improvement must be in [-1, 1], got {self.min_improvement!r}"
            )
        size = tuple(self.input_size)
        if len(size) != 2 or not all(isinstance(s, int) and 8 <= s <= 4096 for s in size):
            raise ConfigError(
                f"TrainerConfig.input_size must be (H, W) ints in 8..4096, got {self.input_size!r}"
            )
        object.__setattr__(self, "input_size", (int(size[0]), int(size[1])))
        if self.num_threads is not None:
            positive_int("num_threads", self.num_threads)
        from laecips_core.algo.fusion import ORDERS

        if self.recipe not in RECIPES:
            raise ConfigError(f"TrainerConfig.recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.gate not in GATES:
            raise ConfigError(f"TrainerConfig.gate must be one of {GATES}, got {self.gate!r}")
        if self.fusion_order not in ORDERS:
            raise ConfigError(
                f"TrainerConfig.fusion_order must be one of {ORDERS}, got {self.fusion_order!r}"
            )
        for name in ("confidence_threshold", "rehearsal_fraction", "min_class_ratio", "min_entropy_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ConfigError(f"TrainerConfig.{name} must be in [0, 1], got {value!r}")
        if not (isinstance(self.ema_decay, int | float) and 0.0 <= self.ema_decay < 1.0):
            raise ConfigError(f"TrainerConfig.ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"TrainerConfig.optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        try:
            dev = torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ConfigError(f"TrainerConfig.device {self.device!r} is not a torch device string") from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"TrainerConfig.device={self.device!r} but CUDA is not available; use 'cpu'")


def should_train(buffer_len: int, last_train_time: float, now: float, cfg: TrainerConfig) -> bool:
    """Algorithm 2's trigger: size(replay_buffer) > maxsize, or maxtime passed with something to learn.

    Args:
        buffer_len: Samples in the replay buffer.
        last_train_time: When the last training finished (or the service started), seconds.
        now: Current time on the same clock, seconds.
        cfg: Supplies maxsize and maxtime_s.

    Returns:
        True when training should start now. An empty buffer never triggers.
    """
    if buffer_len <= 0:
        return False
    return buffer_len > cfg.maxsize or (now - last_train_time) > cfg.maxtime_s


@dataclass(frozen=True)
class JobSpec:
    """What one training process does (written as JSON by the trainer node, read by ``main``).

    Attributes:
        robot_id: Robot whose buffer and store are used.
        replay_path: Its replay buffer (stores.replay_path()).
        store_dir: Its WeightStore folder (stores.store_dir()); its newest version is the update's parent.
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
            try:
                fields["input_size"] = tuple(int(v) for v in fields["input_size"])
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"input_size in the job spec must be [height, width] integers, got "
                    f"{fields['input_size']!r}"
                ) from err
        try:
            return TrainerConfig(**fields)
        except TypeError as err:
            raise ConfigError(f"unknown TrainerConfig field in the job spec: {err}") from err
