"""Constants of f that torch-free code needs: the default edge model f and its input normalisation.

``models`` (torch) builds f and preprocesses with these; ``frames.normalise`` (numpy, the torch-free
edge) and the node configurations read them without importing torch.
"""

from __future__ import annotations

DEFAULT_EDGE_MODEL = "effnet_lite0_lraspp"
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
