"""Fixtures of the evaluation tests: a hand-built two-task stream, a halves LVM, tiny starting f0 and h0."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from laecips_core.algo import mining, models
from laecips_core.algo.assisted import AssistedInference
from laecips_core.evaluation.sources import StreamFrame
from laecips_core.storage.jobspec import TrainerConfig

M = 3
"""Classes of the hand-built stream: 0 red (left half), 1 blue / 2 green (right half, by task)."""
SIZE = 32
"""Side of its square frames, pixels."""


class HalvesLVM:
    """A stand-in LVM for hand-built frames: two masks, the left and the right half of the image."""

    name = "halves"

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        h, w = image_rgb_uint8.shape[:2]
        left = np.zeros((h, w), bool)
        left[:, : w // 2] = True
        return np.stack([left, ~left])


def make_mini_stream(n: int = 6) -> list[StreamFrame]:
    """Left half class 0 (red), right half class 1 or 2 (blue / green) depending on the task."""
    frames = []
    for i in range(n):
        task = 0 if i < n // 2 else 1
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        labels = np.zeros((SIZE, SIZE), np.uint8)
        img[:, : SIZE // 2] = (200, 30, 30)
        img[:, SIZE // 2 :] = (30, 30, 200) if task == 0 else (30, 200, 30)
        labels[:, SIZE // 2 :] = 1 if task == 0 else 2
        img = np.clip(img.astype(int) + (7 * i) % 13, 0, 255).astype(np.uint8)
        frames.append(StreamFrame(i, task, 0.1 * i, img, labels))
    return frames


@pytest.fixture()
def mini_stream() -> Callable[..., list[StreamFrame]]:
    """Factory: ``mini_stream(n=6)``, the first half task 0, the second task 1, 0.1 s apart."""
    return make_mini_stream


@pytest.fixture()
def halves_fuser() -> AssistedInference:
    """F(x) with the halves LVM (Algorithm 1, area order)."""
    return AssistedInference(HalvesLVM())


@pytest.fixture()
def start_models() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(f0, h0): a seeded tiny_fcn f for M classes and a MinerNet h, both in eval mode."""
    torch.manual_seed(0)
    f0 = models.build_edge_model("tiny_fcn", M, pretrained_backbone=False).eval()
    h0 = mining.MinerNet(M, in_size=(64, 64)).eval()  # 2x2 after ResNet: batch-1 BatchNorm is fine
    return f0, h0


@pytest.fixture()
def accept_all_trainer() -> Callable[..., TrainerConfig]:
    """Factory: ``accept_all_trainer(maxsize=2)``, one epoch at SIZE x SIZE, every finite update accepted
    (these tests check the bookkeeping, not the gate)."""

    def make(maxsize: int = 2) -> TrainerConfig:
        return TrainerConfig(
            epochs=1,
            maxsize=maxsize,
            batch_size=2,
            min_improvement=-1.0,
            min_class_ratio=0.0,
            min_entropy_ratio=0.0,
            input_size=(SIZE, SIZE),
        )

    return make
