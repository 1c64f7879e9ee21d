"""The two stages of pre-training on task 1: f on ground truth (Eq. 13 with y for F(x)) and h on the
paper's HARD/EASY labels, HARD when frame mIoU(F(x)) - mIoU(f(x)) >= margin (F(x): Algorithm 1)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.metrics import auroc, frame_miou
from laecips_core.algo.mining import MinerNet, hard_label
from laecips_core.algo.models import build_edge_model
from laecips_core.errors import ConfigError
from laecips_core.training.fit import (
    FrozenLogits,
    fit_miner,
    resize_images,
    resize_labels,
    torch_threads,
    train_edge,
)
from laecips_core.training.profiles import PretrainConfig

__all__ = [
    "LabelledFrame",
    "MinerPretrainStats",
    "hard_labels",
    "miner_quality",
    "pretrain_edge",
    "pretrain_miner",
]


class LabelledFrame(Protocol):
    """What pre-training reads from a frame (``laecips_core.benchmark.generator.Frame`` fits)."""

    @property
    def image(self) -> np.ndarray: ...  # (H, W, 3) uint8 RGB

    @property
    def labels(self) -> np.ndarray: ...  # (H, W) ground-truth classes, 255 = ignore

    @property
    def task_id(self) -> int: ...


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


def miner_quality(
    f: nn.Module, h: nn.Module, frames: Sequence[LabelledFrame], fuser: AssistedInference, cfg: PretrainConfig
) -> dict[str, Any]:
    """How well h separates HARD from EASY frames it was not trained on (AUROC of EASY, accuracy at 0.5,
    mean confidence per class) next to the label counts and mean mIoUs of ``hard_labels``."""
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
