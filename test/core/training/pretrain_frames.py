"""Synthetic task-1 frames for the pre-training tests: a fixed f, a layout-aware LVM, HARD/EASY frames."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from laecips_core.training.profiles import PretrainConfig
from torch import nn

SIZE = (32, 48)
"""(H, W) of every synthetic frame and of the recipe's input_size."""


class Frame(NamedTuple):
    """A labelled frame (fits ``LabelledFrame``)."""

    image: np.ndarray
    labels: np.ndarray
    task_id: int


class ColourSeg(nn.Module):
    """A fixed f: the class of a pixel is its dominant colour channel (R=0, G=1, B=2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4.0 * x


class HalvesLVM:
    """A mask generator that knows the scene layout: left half and right half."""

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        h, w = image_rgb_uint8.shape[:2]
        masks = np.zeros((2, h, w), bool)
        masks[0, :, : w // 2] = True
        masks[1, :, w // 2 :] = True
        return masks


def frame(hard: bool, rng: np.random.Generator) -> Frame:
    """Ground truth: left half class 0, right half class 1. Hard frames paint 30 % of the right half red,
    so f mislabels it while the right-half mask lets Algorithm 1 restore class 1 (F beats f by > 0.1)."""
    h, w = SIZE
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2, 0] = rng.integers(200, 256)
    image[:, w // 2 :, 1] = rng.integers(200, 256)
    if hard:
        rows = int(h * 0.3)
        y0 = int(rng.integers(0, h - rows))
        image[y0 : y0 + rows, w // 2 :] = (230, 0, 0)
    labels = np.zeros((h, w), np.uint8)
    labels[:, w // 2 :] = 1
    return Frame(image, labels, 0)


def cfg(**kw: object) -> PretrainConfig:
    """A small recipe for 3 classes at SIZE (tiny_fcn); keyword arguments override fields."""
    base: dict[str, object] = {
        "num_classes": 3,
        "edge_model": "tiny_fcn",
        "input_size": SIZE,
        "batch_size": 8,
        "miner_epochs": 30,
        "miner_lr": 3e-3,
        "miner_in_size": (32, 32),
    }
    base.update(kw)
    return PretrainConfig(**base)  # type: ignore[arg-type]
