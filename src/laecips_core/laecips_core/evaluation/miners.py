"""The miners h of Eq. 2 as the evaluation runs them, and the wall clock that times f, h, SAM(x) and F(x).

``build_miner`` gives each mined method its confidence function (the MinerNet h or MESS/SM/SPP);
``NoMiner`` lets an EdgePredictor time f alone; ``UnusedMiner`` is the weightless h that Eq. 14 trains
for MESS/SM/SPP inside ContinualTrainer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from laecips_core.algo import mining
from laecips_core.errors import ConfigError


class UnusedMiner(nn.Module):
    """Stand-in h for MESS/SM/SPP inside ContinualTrainer: their confidence has no weights to learn.

    ContinualTrainer always runs Eq. 14 on some h; with a single parameter that step costs nothing,
    while f is trained exactly as for LAECIPS.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, M, H, W) logits -> (B,) constant confidence sigmoid(bias)."""
        return torch.sigmoid(self.bias).expand(logits.shape[0])


class NoMiner:
    """A miner that costs nothing: lets EdgePredictor time f alone (miners are timed separately)."""

    def confidence(self, logits: np.ndarray | torch.Tensor) -> np.ndarray:
        """(M, H, W) or (B, M, H, W) logits -> (B,) ones."""
        return np.ones(1 if logits.ndim == 3 else int(logits.shape[0]))


def miner_for(name: str, num_classes: int, h: nn.Module | None) -> mining.Miner:
    """The miner called ``name`` (``mining.miner_registry``); "neural" wraps the MinerNet ``h``.

    Raises:
        ConfigError: "neural" without an h.
    """
    if name == "neural":
        if h is None:
            raise ConfigError("the neural miner needs a MinerNet h: load weights that carry h")
        return mining.NeuralMiner(h)
    return mining.build_miner(name, num_classes)


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """(fn(*args), wall seconds it took)."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0
