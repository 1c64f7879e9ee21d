"""Hard-input miners: the paper's neural h (ResNet18 over f's logits) and the baselines of Eq. 22-24."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, TypeAlias, overload, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from laecips_core.errors import ConfigError

Scores: TypeAlias = np.ndarray | torch.Tensor
"""(M, H, W) or (B, M, H, W) float scores, numpy or a torch tensor on any device."""

_LOG_EPS = 1e-6
"""Clamp of h before the log in Eq. 14: -log h stays <= 13.8 and its gradient finite."""

_HARD_LABEL_TOLERANCE = 1e-9
"""mIoU gains within this of the margin count as reaching it (0.6 - 0.5 is 0.0999... in floats)."""


def _as_batch(scores: Scores, what: str) -> tuple[torch.Tensor, bool]:
    """(M, H, W) or (B, M, H, W) numpy/torch scores -> (B, M, H, W) float tensor, and whether batched."""
    tensor = torch.from_numpy(np.asarray(scores)) if isinstance(scores, np.ndarray) else scores
    if not isinstance(tensor, torch.Tensor):
        raise ConfigError(f"{what} must be a numpy array or torch tensor, got {type(scores).__name__}")
    if not tensor.is_floating_point():
        raise ConfigError(f"{what} has dtype {tensor.dtype}: pass float scores (M, H, W) or (B, M, H, W)")
    if tensor.ndim not in (3, 4) or 0 in tensor.shape:
        raise ConfigError(
            f"{what} has shape {tuple(tensor.shape)}: pass (M, H, W) or (B, M, H, W) with no empty axis"
        )
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()
    batched = tensor.ndim == 4
    return (tensor if batched else tensor.unsqueeze(0)), batched


def _per_image(values: torch.Tensor, batched: bool) -> float | np.ndarray:
    """(B,) tensor -> (B,) float64 numpy when the input was batched, else a Python float."""
    out = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    return out if batched else float(out[0])


def _check_thre_pix(thre_pix: float) -> None:
    if not (isinstance(thre_pix, int | float) and 0.0 < thre_pix <= 1.0):
        raise ConfigError(f"thre_pix must be a probability in (0, 1], got {thre_pix!r}")


def mess_confidence(probs: Scores, thre_pix: float = 0.9) -> float | np.ndarray:
    """MESS (Eq. 22): the fraction of pixels whose top-1 probability is >= thre_pix.

    Args:
        probs: Softmax probabilities f(x), (M, H, W) or (B, M, H, W), numpy or torch.
        thre_pix: Per-pixel confidence threshold in (0, 1].

    Returns:
        A float in [0, 1] for (M, H, W) input, an (B,) float64 array for batched input.
    """
    _check_thre_pix(thre_pix)
    batch, batched = _as_batch(probs, "probs")
    top1 = batch.amax(dim=1)  # (B, H, W)
    return _per_image((top1 >= thre_pix).double().mean(dim=(1, 2)), batched)


def sm_confidence(probs: Scores) -> float | np.ndarray:
    """SM (Eq. 23): the mean over pixels of top-1 minus top-2 probability (smallest margin).

    Args:
        probs: Softmax probabilities f(x), (M, H, W) or (B, M, H, W) with M >= 2, numpy or torch.

    Returns:
        A float in [0, 1] for (M, H, W) input, an (B,) float64 array for batched input.
    """
    batch, batched = _as_batch(probs, "probs")
    if batch.shape[1] < 2:
        raise ConfigError("sm_confidence needs M >= 2 classes (top-1 minus top-2 probability)")
    top = torch.topk(batch, k=2, dim=1).values  # (B, 2, H, W)
    return _per_image((top[:, 0] - top[:, 1]).double().mean(dim=(1, 2)), batched)


def spp_confidence(probs: Scores) -> float | np.ndarray:
    """SPP (Eq. 24): the mean over pixels of the top-1 probability.

    Args:
        probs: Softmax probabilities f(x), (M, H, W) or (B, M, H, W), numpy or torch.

    Returns:
        A float in [0, 1] for (M, H, W) input, an (B,) float64 array for batched input.
    """
    batch, batched = _as_batch(probs, "probs")
    return _per_image(batch.amax(dim=1).double().mean(dim=(1, 2)), batched)


class MinerNet(nn.Module):
    """The paper's hard-input miner h: a ResNet18 over f's logit map, confidence h(f(x)) in [0, 1].

    torchvision's resnet18 (weights=None) with its first convolution taking the M logit channels
    and a 1-output head followed by a sigmoid. The logits are first resized to ``in_size`` (area
    averaging when shrinking, bilinear otherwise), so h costs the same for any frame size: at
    64 x 64 it is ~0.2 GMAC, under 10 % of LRASPP-MobileNetV3 f at 640 x 480 (~2.4 GMAC); 11.2M
    parameters for M = 19 (the paper: < 20M).

    Args:
        num_classes: M, the number of logit channels of f.
        in_size: (H, W) the logits are resized to, each >= 32 (ResNet18 downsamples by 32).
    """

    def __init__(self, num_classes: int, in_size: tuple[int, int] = (64, 64)) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"MinerNet num_classes must be an int >= 1, got {num_classes!r}")
        size = tuple(in_size)
        if len(size) != 2 or not all(isinstance(v, int) and v >= 32 for v in size):
            raise ConfigError(f"MinerNet in_size must be (H, W) ints >= 32, got {in_size!r}")
        self.num_classes = num_classes
        self.in_size: tuple[int, int] = (int(size[0]), int(size[1]))
        resnet = torchvision.models.resnet18(weights=None, num_classes=1)
        resnet.conv1 = nn.Conv2d(num_classes, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.resnet = resnet

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """h(f(x)): logits (B, M, H, W) float -> confidence (B,) in [0, 1] (high = easy)."""
        if logits.ndim != 4 or logits.shape[1] != self.num_classes:
            raise ConfigError(
                f"MinerNet expects logits (B, {self.num_classes}, H, W), got {tuple(logits.shape)}"
            )
        x = logits.to(self.resnet.conv1.weight.dtype)
        if tuple(x.shape[-2:]) != self.in_size:
            shrink = x.shape[-2] >= self.in_size[0] and x.shape[-1] >= self.in_size[1]
            if shrink:
                x = F.interpolate(x, size=self.in_size, mode="area")
            else:
                x = F.interpolate(x, size=self.in_size, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.resnet(x)).squeeze(1)


@runtime_checkable
class Miner(Protocol):
    """Decides easy/hard: ``confidence(logits)`` high = trust f(x); upload when <= delta (Eq. 2)."""

    def confidence(self, logits: Scores) -> np.ndarray:
        """Logits (M, H, W) or (B, M, H, W), numpy or torch -> (B,) float confidences (B = 1 unbatched)."""
        ...


class NeuralMiner:
    """The paper's miner: h(f(x)) from a network such as :class:`MinerNet` (run in eval mode).

    Args:
        net: Module mapping logits (B, M, H, W) to confidences (B,) in [0, 1]; kept as ``.net``
            (the trainer and ``EdgePredictor.set_weights`` load h's weights into it).
    """

    def __init__(self, net: nn.Module) -> None:
        if not isinstance(net, nn.Module):
            raise ConfigError(f"NeuralMiner needs a torch nn.Module h, got {type(net).__name__}")
        self.net = net

    def confidence(self, logits: Scores) -> np.ndarray:
        """h(f(x)) for (M, H, W) or (B, M, H, W) logits -> (B,) float64; the net's mode is restored."""
        batch, _ = _as_batch(logits, "logits")
        param = next(self.net.parameters(), None)
        if param is not None:
            batch = batch.to(device=param.device, dtype=param.dtype)
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.inference_mode():
                out = self.net(batch).reshape(-1)
        finally:
            self.net.train(was_training)
        result: np.ndarray = out.to(device="cpu", dtype=torch.float64).numpy()
        return result


class MessMiner:
    """MESS baseline (Eq. 22) over softmax(logits).

    Args:
        thre_pix: Per-pixel top-1 probability threshold in (0, 1].
    """

    def __init__(self, thre_pix: float = 0.9) -> None:
        _check_thre_pix(thre_pix)
        self.thre_pix = thre_pix

    def confidence(self, logits: Scores) -> np.ndarray:
        """Fraction of confident pixels for (M, H, W) or (B, M, H, W) logits -> (B,) float64."""
        batch, _ = _as_batch(logits, "logits")
        return np.asarray(mess_confidence(torch.softmax(batch, dim=1), self.thre_pix)).reshape(-1)


class SmMiner:
    """SM baseline (Eq. 23) over softmax(logits): mean top-1 minus top-2 probability."""

    def confidence(self, logits: Scores) -> np.ndarray:
        """Mean margin for (M, H, W) or (B, M, H, W) logits -> (B,) float64."""
        batch, _ = _as_batch(logits, "logits")
        return np.asarray(sm_confidence(torch.softmax(batch, dim=1))).reshape(-1)


class SppMiner:
    """SPP baseline (Eq. 24) over softmax(logits): mean top-1 probability."""

    def confidence(self, logits: Scores) -> np.ndarray:
        """Mean top-1 probability for (M, H, W) or (B, M, H, W) logits -> (B,) float64."""
        batch, _ = _as_batch(logits, "logits")
        return np.asarray(spp_confidence(torch.softmax(batch, dim=1))).reshape(-1)


def _neural(num_classes: int, in_size: tuple[int, int] = (64, 64)) -> NeuralMiner:
    return NeuralMiner(MinerNet(num_classes, in_size=in_size))


def _mess(num_classes: int, thre_pix: float = 0.9) -> MessMiner:
    return MessMiner(thre_pix)


def _sm(num_classes: int) -> SmMiner:
    if num_classes < 2:
        raise ConfigError("the SM miner needs M >= 2 classes (top-1 minus top-2 probability)")
    return SmMiner()


def _spp(num_classes: int) -> SppMiner:
    return SppMiner()


miner_registry: dict[str, Callable[..., Miner]] = {
    "neural": _neural,
    "mess": _mess,
    "sm": _sm,
    "spp": _spp,
}
"""Builders ``(num_classes, **kw) -> Miner``: "neural" (a fresh, untrained MinerNet h; kw in_size),
"mess" (kw thre_pix), "sm", "spp"."""


def build_miner(name: str, num_classes: int, **kw: object) -> Miner:
    """Build a miner from :data:`miner_registry`.

    Args:
        name: "neural", "mess", "sm" or "spp".
        num_classes: M of the edge model f.
        **kw: The builder's options (in_size for "neural", thre_pix for "mess").

    Raises:
        ConfigError: Unknown name or option.
    """
    if name not in miner_registry:
        raise ConfigError(f"unknown miner {name!r}: use one of {sorted(miner_registry)}")
    try:
        return miner_registry[name](num_classes, **kw)
    except TypeError as err:
        raise ConfigError(f"miner {name!r} does not take options {sorted(kw)}: {err}") from err


def hard_label(miou_fused: float, miou_edge: float, margin: float = 0.1) -> bool:
    """The paper's pre-training label of h: HARD when mIoU(F(x)) - mIoU(f(x)) >= margin.

    Args:
        miou_fused: Frame mIoU of the assisted result F(x) against the ground truth.
        miou_edge: Frame mIoU of the edge result f(x).
        margin: Gain that makes the upload worth it (paper: 0.1); a gain within 1e-9 of it counts.

    Raises:
        ConfigError: If an mIoU is NaN (a frame without any valid pixel cannot be labelled).
    """
    if math.isnan(miou_fused) or math.isnan(miou_edge):
        raise ConfigError("hard_label got a NaN mIoU: skip frames without labelled pixels")
    return miou_fused - miou_edge >= margin - _HARD_LABEL_TOLERANCE


@overload
def miner_target(loss: float, beta: float) -> float: ...
@overload
def miner_target(loss: np.ndarray, beta: float) -> np.ndarray: ...
@overload
def miner_target(loss: torch.Tensor, beta: float) -> torch.Tensor: ...
def miner_target(loss: float | np.ndarray | torch.Tensor, beta: float) -> float | np.ndarray | torch.Tensor:
    """The minimiser of Eq. 14 for one sample: h* = min(1, beta / l).

    d/dh [h * l - beta * log h] = l - beta / h = 0 gives h = beta / l, clipped to h <= 1 (l <= beta:
    fully trusted). A loss of 0 gives 1.

    Args:
        loss: Per-image segmentation loss l(f(x), F(x)) >= 0 (float, numpy array or tensor).
        beta: Weight of the -log h term (Eq. 11/14), > 0.

    Returns:
        h* of the same kind and shape as ``loss``.
    """
    if not (isinstance(beta, int | float) and math.isfinite(beta) and beta > 0):
        raise ConfigError(f"beta must be a finite number > 0, got {beta!r}")
    if isinstance(loss, torch.Tensor):
        return torch.clamp(beta / loss.clamp_min(torch.finfo(loss.dtype).tiny), max=1.0)
    array = np.asarray(loss, dtype=np.float64)
    target = np.minimum(1.0, beta / np.maximum(array, np.finfo(np.float64).tiny))
    return float(target) if array.ndim == 0 else target


def miner_loss(h_out: torch.Tensor, seg_loss: torch.Tensor, beta: float) -> torch.Tensor:
    """Eq. 14, step 2 of the update (f frozen): mean over the batch of h * l + beta * (-log h).

    Args:
        h_out: (B,) confidences h(f(x)) in [0, 1], with gradient.
        seg_loss: (B,) per-image losses l(f(x), F(x)); detached (f is frozen in this step).
        beta: Weight of the -log h term, > 0.

    Returns:
        Scalar loss; h is clamped to >= 1e-6 inside the log.
    """
    if not (isinstance(beta, int | float) and math.isfinite(beta) and beta > 0):
        raise ConfigError(f"beta must be a finite number > 0, got {beta!r}")
    if h_out.shape != seg_loss.shape or h_out.ndim != 1:
        raise ConfigError(
            f"miner_loss needs h_out and seg_loss of the same shape (B,), got {tuple(h_out.shape)} "
            f"and {tuple(seg_loss.shape)}"
        )
    loss = seg_loss.detach().to(h_out.dtype)
    return (h_out * loss - beta * torch.log(h_out.clamp_min(_LOG_EPS))).mean()
