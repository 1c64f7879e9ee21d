"""Toy segmentation frames shared by the training and adaptation tests."""

from __future__ import annotations

import numpy as np

TOY_SIZE = (32, 48)
"""(H, W) of the toy frames."""


def toy_frames(
    n: int, seed: int, size: tuple[int, int] = TOY_SIZE
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames with a red (class 1) and a blue (class 2) rectangle on grey noise (class 0)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        img = rng.integers(90, 140, (*size, 3), dtype=np.uint8)
        lab = np.zeros(size, np.uint8)
        for cls, color in ((1, (220, 30, 30)), (2, (30, 30, 220))):
            y0, x0 = rng.integers(0, size[0] - 12), rng.integers(0, size[1] - 16)
            hh, ww = rng.integers(8, 13), rng.integers(10, 17)
            img[y0 : y0 + hh, x0 : x0 + ww] = color
            lab[y0 : y0 + hh, x0 : x0 + ww] = cls
        images.append(img)
        labels.append(lab)
    return images, labels
