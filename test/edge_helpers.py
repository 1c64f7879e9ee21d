"""Shared by the edge tests without ROS: tiny bundles with a known f, a valid EdgeConfig, a frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bundle_helpers import write_tiny_bundle
from laecips_core.services.edge_config import EdgeConfig

M = 6
RGB = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)


def bundle(path: Path, version: int, label: int, *, with_h: bool = True) -> Path:
    """tiny_fcn whose classifier bias makes every pixel ``label``; h (MinerNet) unless with_h is False."""
    return write_tiny_bundle(path, version, M, label=label, with_h=with_h)


def edge_cfg(**changes: object) -> EdgeConfig:
    """A validated EdgeConfig of tiny_fcn with M classes at 32x48 for robot1, unsigned weights allowed."""
    base = {
        "edge_model_name": "tiny_fcn",
        "num_classes": M,
        "input_height": 32,
        "input_width": 48,
        "robot_id": "robot1",
    }
    base["allow_unsigned_weights"] = True  # the tests that give a key still have it checked
    return EdgeConfig(**{**base, **changes}).validate()  # type: ignore[arg-type]
