"""Shared inputs of the LVM tests: a three-region image with its class map, and validation frames."""

from __future__ import annotations

import numpy as np

VAL_CFG = {"seed": 4242, "frames_per_task": 20, "width": 320, "height": 240}
"""Validation frames: a data seed that neither the evaluation stream (0) nor pre-training (1000) uses."""


def shapes_image(height: int = 96, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Three flat regions with mild noise: (H, W, 3) uint8 image and its (H, W) uint8 class map."""
    rng = np.random.default_rng(0)
    gt = np.zeros((height, width), np.uint8)
    gt[height // 4 : 3 * height // 4, width // 4 : width // 2] = 1
    yy, xx = np.mgrid[:height, :width]
    gt[(yy - height // 2) ** 2 + (xx - 3 * width // 4) ** 2 < (height // 5) ** 2] = 2
    colours = np.array([[40, 60, 40], [220, 200, 60], [50, 90, 230]], np.float64)
    image = colours[gt] + rng.normal(0, 6, (height, width, 3))
    return image.clip(0, 255).astype(np.uint8), gt
