"""Algorithm 2's update step: recipes of f (Eq. 13 and measured variants), the gate, Eq. 14, EDGE-TTA.

A recipe turns the edge model f and a replay buffer of hard frames x with their SAM(x) masks into a
candidate f'. "paper" is Eq. 13 as printed (cross-entropy toward the stored F(x), fused from the OLD f).
The others start by re-estimating f's BatchNorm statistics on the buffer (test-time adaptation of the
normalisation) and then re-fuse F(x) with the adapted f, because F(x) fused from a better f is a
better teacher (docs/evaluation.md, "Update recipes"). The gate decides on held-back frames whether f'
replaces f, without labels (``gate_update``), or with a small labelled validation set when one exists.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from laecips_core.algo.assisted import mask_confidence
from laecips_core.algo.fusion import MaskOrder, assisted_inference
from laecips_core.algo.metrics import frame_miou
from laecips_core.algo.models import preprocess
from laecips_core.errors import ConfigError
from laecips_core.lvm.base import masks_from_label_map
from laecips_core.storage.jobspec import GATES, RECIPES, TrainerConfig
from laecips_core.training.fit import (
    IGNORE_INDEX,
    _batches,
    _batchnorm_frozen,
    _check_targets,
    _optimizer,
    forward_logits,
    recalibrate_batchnorm,
    resize_images,
    resize_labels,
    torch_threads,
    train_edge,
    train_miner,
)

__all__ = [
    "GATES",
    "RECIPES",
    "ContinualTrainer",
    "GateResult",
    "SourceFrames",
    "Target",
    "TrainResult",
    "adapt_batchnorm",
    "apply_recipe",
    "gate_update",
    "make_target",
    "refuse",
]


class SourceFrames(NamedTuple):
    """Labelled frames of f's pre-training distribution, for rehearsal (the cloud keeps them).

    Attributes:
        images: N frames (H, W, 3) uint8 RGB.
        labels: N ground-truth maps (H, W), 255 = ignore.
    """

    images: Sequence[np.ndarray]
    labels: Sequence[np.ndarray]


class Target(NamedTuple):
    """Replay frames at the training size, with the masks SAM(x) to re-fuse F(x) from.

    Attributes:
        rgb: (N, h, w, 3) uint8 frames.
        masks: N (K_i, h, w) bool mask stacks.
        stored: (N, h, w) int64 F(x) as stored (fused from the f that served the frame).
    """

    rgb: np.ndarray
    masks: list[np.ndarray]
    stored: np.ndarray


def resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(K, H, W) bool masks -> (K, h, w) bool by the nearest pixel centre (as ``resize_labels``)."""
    if masks.shape[1:] == size:
        return masks.astype(bool, copy=False)
    rows = np.minimum(
        ((np.arange(size[0]) + 0.5) * masks.shape[1] / size[0]).astype(np.int64), masks.shape[1] - 1
    )
    cols = np.minimum(
        ((np.arange(size[1]) + 0.5) * masks.shape[2] / size[1]).astype(np.int64), masks.shape[2] - 1
    )
    out: np.ndarray = masks[:, rows[:, None], cols[None, :]].astype(bool, copy=False)
    return out


def make_target(samples: Sequence[Any], size: tuple[int, int]) -> Target:
    """Replay samples (``image``, ``labels`` F(x), optional ``masks``) -> a ``Target`` at ``size``.

    A sample without stored masks (an old buffer) gets the connected regions of its stored F(x) as
    masks, so re-fusion still snaps the new f to the regions the cloud answered with.
    """
    if not samples:
        raise ConfigError("no replay samples: Algorithm 2 trains only on a non-empty buffer")
    rgb = resize_images([s.image for s in samples], size)
    stored = resize_labels([s.labels for s in samples], size)
    masks: list[np.ndarray] = []
    for s, lab in zip(samples, stored):
        m = getattr(s, "masks", None)
        if m is None:
            masks.append(masks_from_label_map(_connected_regions(lab)))
        else:
            masks.append(resize_masks(np.asarray(m), size))
    return Target(rgb, masks, stored)


def _connected_regions(labels: np.ndarray) -> np.ndarray:
    from skimage.measure import label as connected

    regions: np.ndarray = connected(labels.astype(np.int64) + 1, background=0, connectivity=1)
    return regions


def probabilities(f: nn.Module, rgb: np.ndarray, cfg: TrainerConfig) -> np.ndarray:
    """Softmax of f(x) in eval mode: (N, h, w, 3) uint8 -> (N, M, h, w) float32 (numpy)."""
    device = torch.device(cfg.device)
    was_training = f.training
    f.to(device).eval()
    out: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for idx in _batches(np.arange(len(rgb)), cfg.batch_size):
                logits = forward_logits(f, preprocess(rgb[idx], device))
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    finally:
        f.train(was_training)
    return np.concatenate(out)


def refuse(
    f: nn.Module,
    target: Target,
    cfg: TrainerConfig,
    *,
    confidence_threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """F(x) re-fused with ``f``'s probabilities and the stored masks (Algorithm 1 again).

    Returns:
        ((N, h, w) int64 labels with unsure pixels set to 255, (N, M, h, w) probabilities of f).
    """
    order = cast(MaskOrder, cfg.fusion_order)
    probs = probabilities(f, target.rgb, cfg)
    labels = np.empty(target.stored.shape, np.int64)
    for i, (p, m) in enumerate(zip(probs, target.masks)):
        fused = np.asarray(assisted_inference(p, m, order=order)).astype(np.int64)
        if confidence_threshold > 0:
            fused[mask_confidence(p, m, fused, order=order) < confidence_threshold] = IGNORE_INDEX
        labels[i] = fused
    return labels, probs


def adapt_batchnorm(f: nn.Module, rgb: np.ndarray, cfg: TrainerConfig) -> None:
    """Re-estimate f's BatchNorm statistics on frames (N, h, w, 3) uint8, in place (weights unchanged)."""
    device = torch.device(cfg.device)
    f.to(device)
    with torch_threads(cfg.num_threads):
        recalibrate_batchnorm(
            f, (preprocess(rgb[idx], device) for idx in _batches(np.arange(len(rgb)), cfg.batch_size))
        )


def _self_train(
    f: nn.Module,
    target: Target,
    cfg: TrainerConfig,
    *,
    ema: bool,
    source: SourceFrames | None,
    progress: bool,
) -> list[float]:
    """Eq. 13 toward re-fused F(x) with BatchNorm frozen at the target statistics (f adapted already).

    Without ``ema`` the labels are re-fused once from the adapted f; with it a mean teacher (EMA of
    the student's weights, decay ``cfg.ema_decay``) re-fuses them at every epoch and pixels below
    ``cfg.confidence_threshold`` are ignored. With ``source`` every batch also holds
    ``round(batch_size * cfg.rehearsal_fraction)`` source frames with their ground truth.
    """
    device = torch.device(cfg.device)
    n = len(target.rgb)
    teacher = copy.deepcopy(f).eval() if ema else f
    threshold = cfg.confidence_threshold if ema else 0.0
    src_rgb: np.ndarray | None = None
    src_y: torch.Tensor | None = None
    n_src = 0
    if source is not None and len(source.images):
        src_rgb = resize_images(source.images, cfg.input_size)
        src_y = torch.from_numpy(resize_labels(source.labels, cfg.input_size))
        n_src = max(1, round(cfg.batch_size * cfg.rehearsal_fraction))
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = _optimizer(f.parameters(), cfg)
    losses: list[float] = []
    labels_t: torch.Tensor | None = None
    for epoch in tqdm(range(cfg.epochs), desc="train f (re-fused Eq. 13)", disable=not progress, leave=False):
        if labels_t is None or ema:
            labels, _ = refuse(teacher, target, cfg, confidence_threshold=threshold)
            labels_t = torch.from_numpy(labels)
        f.train()
        total = 0.0
        with _batchnorm_frozen(f, True):
            for idx in _batches(torch.randperm(n, generator=gen).numpy(), cfg.batch_size):
                x = preprocess(target.rgb[idx], device)
                y = labels_t[torch.from_numpy(idx)].to(device)
                if src_rgb is not None and src_y is not None:
                    pick = torch.randint(len(src_rgb), (n_src,), generator=gen).numpy()
                    x = torch.cat([x, preprocess(src_rgb[pick], device)])
                    y = torch.cat([y, src_y[torch.from_numpy(pick)].to(device)])
                logits = forward_logits(f, x)
                _check_targets(y, logits.shape[1])
                if bool((y != IGNORE_INDEX).any()):
                    loss = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
                else:
                    loss = logits.sum() * 0.0
                if not torch.isfinite(loss):
                    losses.append(float("nan"))
                    return losses
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ema:
                    _ema_update(teacher, f, cfg.ema_decay)
                total += float(loss.detach()) * len(idx)
        losses.append(total / n)
        del epoch
    if ema:  # the teacher is the smoother of the two: it is what ships
        f.load_state_dict(teacher.state_dict())
    return losses


@torch.no_grad()
def _ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)


def apply_recipe(
    f: nn.Module,
    target: Target,
    cfg: TrainerConfig,
    *,
    source: SourceFrames | None = None,
    progress: bool = False,
) -> list[float]:
    """Update f in place with ``cfg.recipe`` on the target frames (see ``RECIPES``).

    Returns:
        Mean training loss per epoch (empty for "bn"); NaN last when training diverged.
    """
    if cfg.recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {cfg.recipe!r}; choose one of {RECIPES}")
    with torch_threads(cfg.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if cfg.recipe == "paper":
            return train_edge(f, target.rgb, target.stored, cfg, progress)
        adapt_batchnorm(f, target.rgb, cfg)
        if cfg.recipe == "bn":
            return []
        losses = _self_train(
            f,
            target,
            cfg,
            ema=cfg.recipe in ("ema", "rehearsal"),
            source=source if cfg.recipe == "rehearsal" else None,
            progress=progress,
        )
        if cfg.recipe == "rehearsal" and source is None:
            raise ConfigError("recipe 'rehearsal' needs the source frames f was pre-trained on")
        return losses


# --------------------------------------------------------------------------------------- the gate


class GateResult(NamedTuple):
    """Outcome of ``gate_update``.

    Attributes:
        accepted: Whether f' may replace f.
        signal: The decision value (accepted when >= ``cfg.min_improvement`` and the guards pass).
        reason: One line for logs and reports.
        details: Every candidate signal and guard value, for reports and the gate's validation.
    """

    accepted: bool
    signal: float
    reason: str
    details: dict[str, float]


def _mean_agreement(pred: np.ndarray, ref: np.ndarray, num_classes: int) -> float:
    values = [frame_miou(p, r, num_classes) for p, r in zip(pred, ref)]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _class_stats(pred: np.ndarray, num_classes: int, min_share: float = 1e-3) -> tuple[int, float]:
    """(classes covering >= min_share of the pixels, normalised entropy of the class histogram)."""
    counts = np.bincount(pred.reshape(-1), minlength=num_classes).astype(np.float64)
    share = counts / max(counts.sum(), 1.0)
    nz = share[share > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(num_classes)) if num_classes > 1 else 0.0
    return int((share >= min_share).sum()), entropy


def gate_update(
    old_f: nn.Module,
    new_f: nn.Module,
    hold: Target,
    cfg: TrainerConfig,
    *,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> GateResult:
    """Decide whether the candidate f' (``new_f``) replaces f (``old_f``), on held-back replay frames.

    Label-free signals (g = a model, F_g(x) = Algorithm 1 on g's probabilities and the stored masks,
    agreement = mean frame mIoU of g's argmax against a reference):

    - "new_fused" (default): agreement(f', F_f'(x)) - agreement(f, F_f'(x)): both models against the
      F(x) re-fused from the candidate, the better teacher. Validated against ground truth before it
      became the default (docs/evaluation.md, "The gate"): Pearson 0.86 and the right sign in 19 of 20
      candidate updates, where "old_fused" had -0.50.
    - "consistency": agreement(f', F_f'(x)) - agreement(f, F_f(x)). Each model is compared with its
      own SAM-snapped output (symmetric); weaker (Pearson 0.40).
    - "old_fused": agreement(f', F_f(x)) - agreement(f, F_f(x)), the gate this project first had: it
      favours the old f by construction (kept to report, not to decide).

    Guards against collapse (a constant prediction agrees perfectly with its own fusion): f' is refused
    when it predicts fewer than ``ceil(cfg.min_class_ratio * k)`` classes, where k is the number of
    classes in the stored F(x) of the held-back frames (what the cloud answered; each class counted
    when it covers >= 0.1 % of the pixels), or when the normalised entropy of its class histogram falls
    below ``cfg.min_entropy_ratio`` times that of the stored F(x). The reference is F(x), not f: a
    noisy f predicts many spurious classes, and an update that removes them is not a collapse.

    With ``validation`` = (N, h, w, 3) uint8 images and (N, h, w) ground truth (a small labelled bag),
    the signal is the ground-truth frame-mIoU change on it instead (the guards still apply).
    """
    m = int(cfg_num_classes(old_f))
    old_probs = probabilities(old_f, hold.rgb, cfg)
    new_probs = probabilities(new_f, hold.rgb, cfg)
    old_pred = old_probs.argmax(1)
    new_pred = new_probs.argmax(1)
    order = cast(MaskOrder, cfg.fusion_order)
    fused_old = np.stack(
        [np.asarray(assisted_inference(p, k, order=order)) for p, k in zip(old_probs, hold.masks)]
    )
    fused_new = np.stack(
        [np.asarray(assisted_inference(p, k, order=order)) for p, k in zip(new_probs, hold.masks)]
    )
    details = {
        "consistency_old": _mean_agreement(old_pred, fused_old, m),
        "consistency_new": _mean_agreement(new_pred, fused_new, m),
        "old_fused_old": _mean_agreement(old_pred, fused_old, m),
        "old_fused_new": _mean_agreement(new_pred, fused_old, m),
        "new_fused_old": _mean_agreement(old_pred, fused_new, m),
        "new_fused_new": _mean_agreement(new_pred, fused_new, m),
    }
    details["consistency"] = details["consistency_new"] - details["consistency_old"]
    details["old_fused"] = details["old_fused_new"] - details["old_fused_old"]
    details["new_fused"] = details["new_fused_new"] - details["new_fused_old"]
    k_old, e_old = _class_stats(old_pred, m)
    k_new, e_new = _class_stats(new_pred, m)
    k_ref, e_ref = _class_stats(hold.stored, m)
    details.update(
        {
            "classes_old": k_old,
            "classes_new": k_new,
            "classes_fused": k_ref,
            "entropy_old": e_old,
            "entropy_new": e_new,
            "entropy_fused": e_ref,
        }
    )
    signal_name = cfg.gate
    if validation is not None:
        images, gt = validation
        v_old = probabilities(old_f, images, cfg).argmax(1)
        v_new = probabilities(new_f, images, cfg).argmax(1)
        details["validation_old"] = _mean_agreement(v_old, gt, m)
        details["validation_new"] = _mean_agreement(v_new, gt, m)
        details["validation"] = details["validation_new"] - details["validation_old"]
        signal_name = "validation"
    signal = float(details[signal_name])
    if k_new < math.ceil(cfg.min_class_ratio * k_ref):
        return GateResult(
            False,
            signal,
            f"collapse guard: f' predicts {k_new} classes, F(x) has {k_ref}; old weights kept",
            details,
        )
    if e_new < cfg.min_entropy_ratio * e_ref:
        return GateResult(
            False,
            signal,
            f"collapse guard: class entropy {e_new:.3f} < {cfg.min_entropy_ratio} x {e_ref:.3f} (F(x))",
            details,
        )
    if not (math.isfinite(signal) and signal >= cfg.min_improvement):
        return GateResult(
            False,
            signal,
            f"gate {signal_name} {signal:+.4f} < {cfg.min_improvement:+.4f}; old weights kept",
            details,
        )
    return GateResult(
        True, signal, f"gate {signal_name} {signal:+.4f} >= {cfg.min_improvement:+.4f}", details
    )


def cfg_num_classes(f: nn.Module) -> int:
    """M of an edge model (``EdgeSegmenter.num_classes``; else the last conv's output channels)."""
    m = getattr(f, "num_classes", None)
    if isinstance(m, int):
        return m
    convs = [mod for mod in f.modules() if isinstance(mod, nn.Conv2d)]
    if not convs:
        raise ConfigError("cannot tell the number of classes of f")
    return int(convs[-1].out_channels)


# --------------------------------------------------------------------------------------- Algorithm 2


class TrainResult(NamedTuple):
    """Outcome of one Algorithm 2 update.

    Attributes:
        f_state: State dict of the new f (CPU tensors); the unchanged input's when not accepted.
        h_state: State dict of the new h; the unchanged input's when not accepted.
        accepted: True when the gate (``gate_update``) let f' replace f; only then may it be pushed.
        report: JSON-serialisable summary (recipe, losses, gate signals, sizes, seconds, reason).
    """

    f_state: dict[str, torch.Tensor]
    h_state: dict[str, torch.Tensor]
    accepted: bool
    report: dict[str, Any]


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in module.state_dict().values() if v.is_floating_point())


class ContinualTrainer:
    """The cloud's update step of Algorithm 2: a recipe for f (Eq. 13 family), the gate, then h (Eq. 14).

    The samples are ordered by time and the most recent ``holdout_fraction`` is held back: under drift
    the newest frames are the best proxy for what the robot sees next, and a temporal split keeps
    near-duplicate neighbouring video frames on one side. f' is made from the older part with
    ``cfg.recipe``; ``gate_update`` compares f' with f on the held-back part (label-free, or on the
    labelled ``validation`` frames). When accepted, h is trained for f' with Eq. 14 on all samples,
    against F(x) re-fused with f'. The caller's modules are never changed: training runs on copies.

    Args:
        cfg: Trainer settings.
        source: Labelled frames of f's pre-training distribution (needed by recipe "rehearsal").
        validation: Optional labelled validation set, (N, H, W, 3) uint8 images and (N, H, W) labels.
    """

    def __init__(
        self,
        cfg: TrainerConfig | None = None,
        *,
        source: SourceFrames | None = None,
        validation: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else TrainerConfig()
        self.source = source
        self.validation = validation

    def split(self, samples: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """Order samples by (timestamp, id) and split them into (train, held-back) lists.

        The held-back slice has ``max(1, round(n * holdout_fraction))`` samples (0 when n < 2).
        """
        ordered = sorted(samples, key=lambda s: (float(s.timestamp), int(getattr(s, "id", 0))))
        n = len(ordered)
        n_hold = 0 if n < 2 else min(n - 1, max(1, round(n * self.cfg.holdout_fraction)))
        return ordered[: n - n_hold], ordered[n - n_hold :]

    def run(self, f: nn.Module, h: nn.Module, samples: Sequence[Any], progress: bool = True) -> TrainResult:
        """Make f' with the recipe, gate it, and train h for it (Eq. 14) when accepted.

        Args:
            f: Current edge model (not modified).
            h: Current miner (not modified).
            samples: Replay samples with ``image`` (H, W, 3) uint8, ``labels`` (H, W) F(x), ``timestamp``
                and optionally ``masks`` (K, H, W) SAM(x) (``laecips_core.storage.replay.ReplaySample``).
            progress: Show tqdm bars.

        Returns:
            TrainResult; ``report`` has recipe, loss_f, loss_h, before, after, gate, signal, accepted,
            n_train, n_holdout, seconds, reason and the config.
        """
        cfg = self.cfg
        t0 = time.perf_counter()
        train, hold = self.split(samples)
        report: dict[str, Any] = {
            "recipe": cfg.recipe,
            "loss_f": [],
            "loss_h": [],
            "before": {},
            "after": {},
            "gate": {},
            "signal": float("nan"),
            "accepted": False,
            "n_train": len(train),
            "n_holdout": len(hold),
            "metric": cfg.gate if self.validation is None else "validation",
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        }
        if not hold:
            report["reason"] = f"{len(train)} sample(s): need >= 2 to train and hold one back"
            return self._finish(f, h, report, t0, accepted=False)
        new_f, new_h = copy.deepcopy(f), copy.deepcopy(h)
        with torch_threads(cfg.num_threads):
            target = make_target(train, cfg.input_size)
            held = make_target(hold, cfg.input_size)
            report["loss_f"] = apply_recipe(new_f, target, cfg, source=self.source, progress=progress)
            if (report["loss_f"] and not math.isfinite(report["loss_f"][-1])) or not _finite(new_f):
                report["reason"] = "f diverged (non-finite loss or weights); lower TrainerConfig.lr"
                return self._finish(f, h, report, t0, accepted=False)
            validation = None
            if self.validation is not None:
                val_images, val_labels = self.validation
                size = cfg.input_size
                validation = (resize_images(val_images, size), resize_labels(val_labels, size))
            gate = gate_update(f, new_f, held, cfg, validation=validation)
            key = str(report["metric"])
            report["gate"] = gate.details
            report["signal"] = gate.signal
            report["before"] = {key: gate.details.get(f"{key}_old", float("nan"))}
            report["after"] = {key: gate.details.get(f"{key}_new", float("nan"))}
            if not gate.accepted:
                report["reason"] = gate.reason
                return self._finish(f, h, report, t0, accepted=False)
            every = Target(
                np.concatenate([target.rgb, held.rgb]),
                target.masks + held.masks,
                np.concatenate([target.stored, held.stored]),
            )
            labels, _ = refuse(new_f, every, cfg)
            report["loss_h"] = train_miner(new_f, new_h, every.rgb, labels, cfg, progress)
            if not (math.isfinite(report["loss_h"][-1]) and _finite(new_h)):
                report["reason"] = "h diverged (non-finite Eq. 14 loss); lower TrainerConfig.lr"
                return self._finish(f, h, report, t0, accepted=False)
        report["reason"] = gate.reason
        return self._finish(new_f, new_h, report, t0, accepted=True)

    @staticmethod
    def _finish(
        f: nn.Module, h: nn.Module, report: dict[str, Any], t0: float, *, accepted: bool
    ) -> TrainResult:
        report["accepted"] = accepted
        report["seconds"] = time.perf_counter() - t0
        return TrainResult(_cpu_state(f), _cpu_state(h), accepted, report)
