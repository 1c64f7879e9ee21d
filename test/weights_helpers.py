"""Shared by the weight-file tests: a tiny f, a small h, bundle metadata, state comparison."""

from __future__ import annotations

import torch
from laecips_core.algo.models import build_edge_model
from torch import nn


def small_h(seed: int = 0) -> nn.Module:
    """A small stand-in for the miner network h (the weight files do not care what h is)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(5, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(1))


def built_h(seed: int = 0) -> nn.Module:
    """small_h with its lazy layer materialised (so it has a state dict to save)."""
    h = small_h(seed)
    h(torch.zeros(1, 5, 8, 8))
    return h


def tiny_f(num_classes: int = 5, seed: int = 0, name: str = "tiny_fcn") -> nn.Module:
    """A seeded registry edge model f (no pretrained backbone)."""
    torch.manual_seed(seed)
    return build_edge_model(name, num_classes, pretrained_backbone=False)


def bundle_meta(version: int = 3, num_classes: int = 5, name: str = "tiny_fcn") -> dict[str, str | int]:
    """Bundle metadata with the required keys and a miner_in_size."""
    return {"model_name": name, "num_classes": num_classes, "version": version, "miner_in_size": "64x64"}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same keys, dtypes and values."""
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key
