"""Test helper without ROS: tiny tiny_fcn (+ MinerNet) safetensors bundles with a known f."""

from __future__ import annotations

from pathlib import Path


def write_tiny_bundle(
    path: Path,
    version: int,
    num_classes: int,
    *,
    label: int | None = None,
    seed: int | None = None,
    with_h: bool = True,
    miner_in_size: tuple[int, int] | None = None,
) -> Path:
    """Write a tiny_fcn f (+ MinerNet h) bundle with ``weights.save_bundle``.

    Args:
        path: File to write (parent folders are created).
        version: The bundle's version.
        num_classes: M.
        label: f labels every pixel ``label`` (classifier bias); None keeps the random init, a poor f
            whose labels vary over the image.
        seed: Torch seed of the random init (default: ``version``).
        with_h: Include the miner h (False: an f-only bundle, for the MESS/SM/SPP miners).
        miner_in_size: h's input size, written to the metadata (None: MinerNet's default).
    """
    import torch
    from laecips_core.mining import MinerNet
    from laecips_core.models import build_edge_model

    from laecips_core import weights

    torch.manual_seed(version if seed is None else seed)
    f = build_edge_model("tiny_fcn", num_classes, pretrained_backbone=False)
    for name in ("low_classifier", "high_classifier") if label is not None else ():
        with torch.no_grad():
            bias = getattr(f.head, name).bias
            bias.zero_()
            bias[label] = 50.0
    metadata: dict[str, object] = {"model_name": "tiny_fcn", "num_classes": num_classes, "version": version}
    h = None
    if with_h:
        h = MinerNet(num_classes) if miner_in_size is None else MinerNet(num_classes, in_size=miner_in_size)
        if miner_in_size is not None:
            metadata["miner_in_size"] = str(list(miner_in_size))
    path.parent.mkdir(parents=True, exist_ok=True)
    weights.save_bundle(path, f, h, metadata)
    return path
