"""The training steps of LAECIPS: Eq. 13 (f toward F(x)), Eq. 14 (h), BatchNorm recalibration, agreement.

The trigger of Algorithm 2 (``should_train``) and the recipe's parameters (``TrainerConfig``) are in
``storage.jobspec``; the update recipes and the gate are in ``training.adaptation``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from laecips_core.algo.metrics import confusion_matrix, dataset_miou, frame_miou
from laecips_core.algo.mining import miner_loss
from laecips_core.algo.models import preprocess
from laecips_core.errors import ConfigError
from laecips_core.files import atomic_write_bytes
from laecips_core.storage.jobspec import TrainerConfig

IGNORE_INDEX = 255
"""Label value excluded from the loss and the metrics (design.md)."""


_MINER_CACHE_BYTES = 512 * 1024**2
"""Above this size f's logits are recomputed per batch in Eq. 14 instead of being cached (float16)."""


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(num_threads)``, restoring the old value (None: no change)."""
    if num_threads is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def resize_images(images: Sequence[np.ndarray] | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize RGB frames to one training size.

    Args:
        images: N frames (H_i, W_i, 3) uint8 (sizes may differ), or an (N, H, W, 3) uint8 array.
        size: Target (H, W).

    Returns:
        (N, H, W, 3) uint8, bilinear with antialiasing.
    """
    out = np.empty((len(images), size[0], size[1], 3), np.uint8)
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ConfigError(f"image {i} must be (H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}")
        if arr.shape[:2] == size:
            out[i] = arr
            continue
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).unsqueeze(0)
        r = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[i] = r[0].permute(1, 2, 0).numpy()
    return out


def resize_labels(labels: Sequence[np.ndarray] | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize label maps by the nearest pixel centre.

    Args:
        labels: N maps (H_i, W_i) of any integer dtype, or an (N, H, W) array.
        size: Target (H, W).

    Returns:
        (N, H, W) int64.
    """
    out = np.empty((len(labels), size[0], size[1]), np.int64)
    for i, lab in enumerate(labels):
        arr = np.asarray(lab)
        if arr.ndim != 2 or arr.dtype.kind not in "iu":
            raise ConfigError(f"label map {i} must be (H, W) integers, got {arr.shape} {arr.dtype}")
        rows = np.minimum(
            ((np.arange(size[0]) + 0.5) * arr.shape[0] / size[0]).astype(np.int64), arr.shape[0] - 1
        )
        cols = np.minimum(
            ((np.arange(size[1]) + 0.5) * arr.shape[1] / size[1]).astype(np.int64), arr.shape[1] - 1
        )
        out[i] = arr[rows[:, None], cols[None, :]]
    return out


def _prepare(
    images: Sequence[np.ndarray] | np.ndarray, labels: Sequence[np.ndarray] | np.ndarray, cfg: TrainerConfig
) -> tuple[np.ndarray, torch.Tensor]:
    if len(images) != len(labels):
        raise ConfigError(
            f"got {len(images)} images but {len(labels)} label maps; pass one label map per image"
        )
    if len(images) == 0:
        raise ConfigError("no training samples; Algorithm 2 trains only on a non-empty replay buffer")
    return resize_images(images, cfg.input_size), torch.from_numpy(resize_labels(labels, cfg.input_size))


def forward_logits(f: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Edge logits f(x) at the input's size.

    Args:
        f: Edge model; ``f(x)`` returns (B, M, h, w) logits.
        x: (B, 3, H, W) float32 normalised batch (``laecips_core.algo.models.preprocess``).

    Returns:
        (B, M, H, W) float32 logits (bilinearly resized when f returns another size).
    """
    out: torch.Tensor = f(x)
    if out.shape[-2:] != x.shape[-2:]:
        out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return out


def _check_targets(y: torch.Tensor, num_classes: int) -> None:
    bad = (y >= num_classes) & (y != IGNORE_INDEX)
    if bool(bad.any()) or bool((y < 0).any()):
        raise ConfigError(
            f"labels hold classes outside 0..{num_classes - 1} (and {IGNORE_INDEX} = ignore): "
            f"max {int(y.max())}; f has M = {num_classes} outputs, build it with the data's class count"
        )


def seg_loss_per_image(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image segmentation loss l(f(x), F(x)) of Eq. 13/14: mean pixel cross-entropy.

    Args:
        logits: (B, M, H, W) float logits of f.
        target: (B, H, W) int64 labels; 255 pixels are ignored.

    Returns:
        (B,) float32 cross-entropy in nats per image (0 for an image whose pixels are all ignored).
    """
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none")
    valid = (target != IGNORE_INDEX).flatten(1).sum(1).clamp(min=1)
    return ce.flatten(1).sum(1) / valid


def _batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Cut a shuffled index order into mini-batches; a trailing batch of one joins the previous batch,
    because BatchNorm in train mode fails on a single sample whose features are 1x1 (e.g. MinerNet)."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def _optimizer(params: Iterator[nn.Parameter], cfg: TrainerConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9)
    return torch.optim.Adam(params, lr=cfg.lr)


def train_edge(
    f: nn.Module,
    images: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[np.ndarray] | np.ndarray,
    cfg: TrainerConfig,
    progress: bool = True,
) -> list[float]:
    """Eq. 13: with h frozen (not touched), minimise l(f(x), F(x)) over the given frames, in place.

    Args:
        f: Edge model, updated in place (``ContinualTrainer`` passes a copy).
        images: N frames (H, W, 3) uint8 RGB, resized to ``cfg.input_size``.
        labels: N label maps (H, W): the fused F(x) online, ground truth in pre-training; 255 ignored.
        cfg: lr, epochs, batch_size, seed, num_threads, device, optimizer.
        progress: Show a tqdm bar.

    After the last epoch the BatchNorm running statistics are re-estimated on the same frames
    (``recalibrate_batchnorm``): torchvision's MobileNetV3 uses BN momentum 0.01, so after a few hundred
    steps its running statistics still mix in those of the untrained network and eval-mode f is far
    worse than the train-mode f that was optimised (measured: held-out mIoU 0.03 without, 0.41 with).

    Returns:
        Mean cross-entropy (nats per pixel) of each epoch. Training stops early, with NaN as the last
        entry, when the loss stops being finite (divergence); the caller must then reject f.
    """
    rgb, y = _prepare(images, labels, cfg)
    device = torch.device(cfg.device)
    n = len(rgb)
    gen = torch.Generator().manual_seed(cfg.seed)
    f.to(device).train()
    opt = _optimizer(f.parameters(), cfg)
    losses: list[float] = []
    with torch_threads(cfg.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for _ in tqdm(range(cfg.epochs), desc="train f (Eq. 13)", disable=not progress, leave=False):
            total = 0.0
            for idx in _batches(torch.randperm(n, generator=gen).numpy(), cfg.batch_size):
                x = preprocess(rgb[idx], device)
                target = y[idx].to(device)
                logits = forward_logits(f, x)
                _check_targets(target, logits.shape[1])
                loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
                if not torch.isfinite(loss):
                    losses.append(float("nan"))
                    return losses
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            losses.append(total / n)
        recalibrate_batchnorm(
            f, (preprocess(rgb[idx], device) for idx in _batches(np.arange(n), cfg.batch_size))
        )
    return losses


class FrozenLogits:
    """Logits of a frozen f for a fixed set of frames, for training h without touching f.

    One pass over the frames under ``torch.no_grad()`` (f in eval mode); the logits are cached as
    float16 when the cache stays under 512 MiB, otherwise recomputed per batch when indexed.

    Args:
        f: Edge model (left unchanged, put in eval mode).
        rgb: (N, H, W, 3) uint8 frames at the training size.
        cfg: batch_size and device.
        on_batch: Called once per batch of the pass with (slice of frame indices, (b, M, H, W) float32
            logits), e.g. to compute per-image losses or fused labels.
        progress: Show a tqdm bar for the pass.
        desc: Label of the bar.
    """

    def __init__(
        self,
        f: nn.Module,
        rgb: np.ndarray,
        cfg: TrainerConfig,
        on_batch: Callable[[slice, torch.Tensor], None] | None = None,
        progress: bool = True,
        desc: str = "f(x)",
    ) -> None:
        self.f = f.to(cfg.device).eval()
        self.rgb = rgb
        self.device = torch.device(cfg.device)
        n = len(rgb)
        first = self._compute(rgb[:1])
        _, self.num_classes, hh, ww = first.shape
        small = n * self.num_classes * hh * ww * 2 <= _MINER_CACHE_BYTES
        self.cache = torch.empty((n, self.num_classes, hh, ww), dtype=torch.float16) if small else None
        for start in tqdm(range(0, n, cfg.batch_size), desc=desc, disable=not progress, leave=False):
            sl = slice(start, start + cfg.batch_size)
            logits = self._compute(rgb[sl])
            if on_batch is not None:
                on_batch(sl, logits)
            if self.cache is not None:
                self.cache[sl] = logits.cpu().half()

    def _compute(self, rgb: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return forward_logits(self.f, preprocess(rgb, self.device)).float()

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        """(len(idx), M, H, W) float32 logits of the frames ``idx`` on cfg.device."""
        if self.cache is not None:
            return self.cache[torch.from_numpy(np.asarray(idx))].to(self.device).float()
        return self._compute(self.rgb[idx])


def fit_miner(
    h: nn.Module,
    logits: Callable[[np.ndarray], torch.Tensor],
    targets: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    cfg: TrainerConfig,
    progress: bool = True,
    desc: str = "train h",
    seed_offset: int = 1,
) -> list[float]:
    """Mini-batch training of a miner h on fixed per-frame targets (shared by Eq. 14 and pre-training).

    Args:
        h: Miner, (B, M, H, W) logits -> (B,) confidence; trained in place (train mode).
        logits: Maps frame indices (b,) to their f logits (b, M, H, W) (a ``FrozenLogits``).
        targets: (N,) float32 per-frame quantity the loss needs (l for Eq. 14, 0/1 for BCE).
        loss_fn: (confidence (b,), targets (b,)) -> scalar loss.
        cfg: lr, epochs, batch_size, seed, device, optimizer.
        progress: Show a tqdm bar.
        desc: Label of the bar.
        seed_offset: Added to cfg.seed for the shuffling.

    Returns:
        Mean loss of each epoch (early stop with NaN last when the loss stops being finite).
    """
    device = torch.device(cfg.device)
    n = len(targets)
    gen = torch.Generator().manual_seed(cfg.seed + seed_offset)
    h.to(device).train()
    opt = _optimizer(h.parameters(), cfg)
    losses: list[float] = []
    for _ in tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False):
        total = 0.0
        for idx in _batches(torch.randperm(n, generator=gen).numpy(), cfg.batch_size):
            with _batchnorm_frozen(h, len(idx) == 1):
                conf = h(logits(idx)).reshape(-1)
            loss = loss_fn(conf, targets[torch.from_numpy(idx)].to(device))
            if not torch.isfinite(loss):
                losses.append(float("nan"))
                return losses
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    if n > 1:  # one frame has no batch statistics (h's last maps are 1x1): its running ones are kept
        recalibrate_batchnorm(h, (logits(idx) for idx in _batches(np.arange(n), cfg.batch_size)))
    return losses


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@contextlib.contextmanager
def _batchnorm_frozen(module: nn.Module, frozen: bool) -> Iterator[None]:
    """While ``frozen``, run the BatchNorm layers of ``module`` in eval mode (their running statistics).

    A batch of one frame gives BatchNorm on h's 1x1 final maps a single value per channel, which torch
    refuses in train mode; this happens when the replay buffer's training split holds one frame.
    """
    norms = [m for m in module.modules() if isinstance(m, _BATCHNORMS) and m.training] if frozen else []
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


def recalibrate_batchnorm(module: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Set every BatchNorm's running mean/variance to the average over ``batches`` (no gradients).

    After a few dozen optimiser steps (h in Eq. 14 or pre-training) the running statistics, updated
    with momentum 0.1 from their initial (0, 1), still lag the activations, and the eval-mode output
    can differ wildly from the train-mode output that was optimised. One pass with a cumulative
    average (momentum=None) fixes that; the weights do not change.

    Args:
        module: Network with BatchNorm layers (others are ignored); its train/eval mode is kept.
        batches: Inputs of the module, e.g. its training batches.
    """
    norms = [m for m in module.modules() if isinstance(m, _BATCHNORMS) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    was_training = module.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    try:
        with torch.no_grad():
            for x in batches:
                module(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        module.train(was_training)


def train_miner(
    f: nn.Module,
    h: nn.Module,
    images: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[np.ndarray] | np.ndarray,
    cfg: TrainerConfig,
    progress: bool = True,
) -> list[float]:
    """Eq. 14: with f frozen, minimise L_h = h(f(x)) * l(f(x), F(x)) + beta * (-log h(f(x))), in place.

    l is the per-image cross-entropy of the frozen f against the labels (a constant for h); the optimum
    per frame is h = min(1, beta / l) (``laecips_core.algo.mining.miner_target``).

    Args:
        f: Edge model, used in eval mode without gradients and left unchanged.
        h: Miner, (B, M, H, W) logits -> (B,) confidence in (0, 1]; updated in place.
        images: N frames (H, W, 3) uint8 RGB.
        labels: N fused label maps F(x) (H, W).
        cfg: lr, epochs, batch_size, beta, seed, num_threads, device, optimizer.
        progress: Show tqdm bars.

    Returns:
        Mean L_h of each epoch (NaN last and early stop on divergence).
    """
    rgb, y = _prepare(images, labels, cfg)
    seg_losses = torch.empty(len(rgb))

    def per_image_loss(sl: slice, logits: torch.Tensor) -> None:
        target = y[sl].to(logits.device)
        _check_targets(target, logits.shape[1])
        seg_losses[sl] = seg_loss_per_image(logits, target).cpu()

    with torch_threads(cfg.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        source = FrozenLogits(f, rgb, cfg, per_image_loss, progress, "f(x) for Eq. 14")
        return fit_miner(
            h,
            source,
            seg_losses,
            lambda conf, loss: miner_loss(conf, loss, cfg.beta),
            cfg,
            progress,
            "train h (Eq. 14)",
        )


def evaluate_agreement(
    f: nn.Module,
    images: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[np.ndarray] | np.ndarray,
    cfg: TrainerConfig,
) -> dict[str, float]:
    """Agreement of f's argmax with reference labels (F(x) online, ground truth in pre-training).

    Computed at ``cfg.input_size``; pixels labelled 255 are ignored.

    Returns:
        ``{"miou": dataset-level mIoU (Eq. 25 over the confusion matrix), "frame_miou": mean of
        per-frame mIoU, "pixel_acc": share of correct pixels, "n": frames}``.
    """
    rgb, y = _prepare(images, labels, cfg)
    device = torch.device(cfg.device)
    was_training = f.training
    f.to(device).eval()
    conf: np.ndarray | None = None
    frame_scores: list[float] = []
    try:
        with torch_threads(cfg.num_threads), torch.inference_mode():
            for start in range(0, len(rgb), cfg.batch_size):
                logits = forward_logits(f, preprocess(rgb[start : start + cfg.batch_size], device))
                m = logits.shape[1]
                pred = logits.argmax(1).cpu().numpy()
                gt = y[start : start + cfg.batch_size].numpy()
                for p, g in zip(pred, gt):
                    c = confusion_matrix(p, g, m, ignore_index=IGNORE_INDEX)
                    conf = c if conf is None else conf + c
                    frame_scores.append(float(frame_miou(p, g, m)))
    finally:
        f.train(was_training)
    assert conf is not None
    total = conf.sum()
    return {
        "miou": float(dataset_miou(conf)),
        "frame_miou": float(np.nanmean(frame_scores)) if frame_scores else float("nan"),
        "pixel_acc": float(np.trace(conf) / total) if total else float("nan"),
        "n": float(len(rgb)),
    }


def plot_report(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a PNG of an update's loss curves (Eq. 13 and Eq. 14) and its held-back metrics.

    Args:
        report: ``TrainResult.report``.
        path: Output .png file, written atomically.
    """
    from matplotlib.figure import Figure  # imported here: plotting is optional for the trainer

    fig = Figure(figsize=(8, 3.2), dpi=100)
    panels = (
        ("loss_f", "f: l(f(x), F(x)) (Eq. 13)", "CE [nats/pixel]"),
        ("loss_h", "h: L_h (Eq. 14)", "L_h"),
    )
    for i, (key, title, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        values = list(report.get(key) or [])
        if values:
            ax.plot(range(1, len(values) + 1), values, marker="o")
        else:
            ax.text(0.5, 0.5, "not trained", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    key = str(report.get("metric", "consistency"))
    before = report.get("before", {}).get(key, float("nan"))
    after = report.get("after", {}).get(key, float("nan"))
    fig.suptitle(
        f"held-back {key}: {before:.3f} -> {after:.3f}   accepted={report.get('accepted')}   "
        f"n_train={report.get('n_train')} n_holdout={report.get('n_holdout')}",
        fontsize=9,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
