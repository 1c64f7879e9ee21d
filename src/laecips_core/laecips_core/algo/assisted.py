"""The assisted inference F(x) (Eq. 1, Algorithm 1) as one object: f's scores + SAM(x) masks -> labels.

The cloud node, the trainer's re-fusion, the evaluation, pre-training and the benches all build F(x)
through ``AssistedInference``, so they share the LVM options, the mask order and the score kind.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from laecips_core.algo.fusion import ORDERS, MaskOrder, assisted_inference
from laecips_core.errors import ConfigError
from laecips_core.lvm.base import LVM
from laecips_core.lvm.registry import build_lvm


class Fused(NamedTuple):
    """One F(x).

    Attributes:
        labels: (H, W) uint8 (int32 when M > 255) fused label map F(x).
        masks: (K, H, W) bool masks SAM(x) the labels were fused from (kept for re-fusion).
        lvm_s: Seconds the LVM took.
        fusion_s: Seconds Algorithm 1 took.
    """

    labels: np.ndarray
    masks: np.ndarray
    lvm_s: float
    fusion_s: float


class AssistedInference:
    """F: run the LVM ("segment everything"), then Algorithm 1 over f's per-class probabilities.

    Args:
        lvm: The large vision model SAM(x) (``laecips_core.lvm``).
        order: Algorithm 1's mask order: "area" (largest first, smaller masks win; the default) or
            "input".
    """

    def __init__(self, lvm: LVM, *, order: MaskOrder = "area") -> None:
        if order not in ORDERS:
            raise ConfigError(f"fusion order must be one of {ORDERS}, got {order!r}")
        self.lvm = lvm
        self.order: MaskOrder = order

    @classmethod
    def build(
        cls, lvm: str, lvm_kwargs: Mapping[str, Any] | None = None, *, order: MaskOrder = "area"
    ) -> AssistedInference:
        """Build the LVM by registry name (``lvm.build_lvm``) and wrap it."""
        return cls(build_lvm(lvm, **dict(lvm_kwargs or {})), order=order)

    @property
    def needs_labels(self) -> bool:
        """True for the evaluation-only oracle LVM, whose masks come from ground truth."""
        return bool(getattr(self.lvm, "needs_labels", False))

    def masks(self, rgb: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """SAM(x): (H, W, 3) uint8 RGB -> (K, H, W) bool masks.

        Args:
            rgb: The image x.
            labels: Ground truth (H, W), passed only to an LVM that ``needs_labels`` (the oracle).
        """
        if self.needs_labels:
            generate: Any = self.lvm.generate
            out: np.ndarray = generate(rgb, labels=labels)
            return out
        return self.lvm.generate(rgb)

    def fuse(self, probs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Algorithm 1: (M, H, W) float probabilities of f and (K, H, W) masks -> (H, W) labels F(x)."""
        return np.asarray(assisted_inference(probs, masks, order=self.order))

    def __call__(self, rgb: np.ndarray, probs: np.ndarray, labels: np.ndarray | None = None) -> Fused:
        """F(x) for one frame: masks from the LVM, then Algorithm 1 with f's probabilities ``probs``."""
        t0 = time.perf_counter()
        masks = self.masks(rgb, labels)
        t1 = time.perf_counter()
        fused = self.fuse(probs, masks)
        return Fused(fused, masks, t1 - t0, time.perf_counter() - t1)


def mask_confidence(
    probs: np.ndarray, masks: np.ndarray, fused: np.ndarray, *, order: MaskOrder = "area"
) -> np.ndarray:
    """Per-pixel confidence of F(x): for a pixel whose label a mask decided, the mask's winning share.

    Algorithm 1 gives mask k the class c_k = argmax_c S_kc with S_kc = sum_{p in k} probs[c, p]; its
    share is S_k,c_k / |k| (the mean probability of the chosen class over the mask, in [0, 1]). A pixel
    takes the share of the mask that decided its label (the last one applied in ``order``); a pixel no
    mask covers takes f's own top probability there. Used to drop unsure pseudo-labels in Eq. 13.

    Args:
        probs: (M, H, W) float probabilities of the f the labels were fused from.
        masks: (K, H, W) bool masks.
        fused: (H, W) labels F(x) (only its shape is checked; the shares are recomputed).
        order: The mask order used for ``fused``.

    Returns:
        (H, W) float32 confidence in [0, 1].
    """
    if probs.ndim != 3 or masks.ndim != 3 or probs.shape[1:] != masks.shape[1:] != fused.shape:
        raise ConfigError(f"probs {probs.shape}, masks {masks.shape}, fused {fused.shape} do not match")
    conf: np.ndarray = probs.max(axis=0).astype(np.float32)
    if len(masks) == 0:
        return conf
    flat_masks = masks.reshape(len(masks), -1)
    areas = flat_masks.sum(axis=1)
    sums = flat_masks.astype(np.float32) @ probs.reshape(probs.shape[0], -1).T.astype(np.float32)  # (K, M)
    shares = sums.max(axis=1) / np.maximum(areas, 1)
    indices = np.argsort(-areas, kind="stable") if order == "area" else np.arange(len(masks))
    flat_conf = conf.reshape(-1)
    for k in indices:
        if areas[k]:
            flat_conf[flat_masks[k]] = shares[k]
    out: np.ndarray = flat_conf.reshape(conf.shape)
    return out
