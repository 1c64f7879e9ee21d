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
    h_constant: float | None = None,
    class_names: list[str] | None = None,
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
        h_constant: h says exactly this confidence on every frame (a saturated h, as on a new
            recording); None keeps the random init.
        class_names: written to the metadata as ``class_names`` (JSON), as a bundle that knows its classes.
    """
    import json
    import math

    import torch
    from laecips_core.algo.mining import MinerNet
    from laecips_core.algo.models import build_edge_model
    from laecips_core.storage import weights

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
        if h_constant is not None:
            with torch.no_grad():
                h.resnet.fc.weight.zero_()
                h.resnet.fc.bias.fill_(math.log(h_constant / (1.0 - h_constant)))
    if class_names is not None:
        metadata["class_names"] = json.dumps(class_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights.save_bundle(path, f, h, metadata)
    return path


def add_onnx_graphs(path: Path, out: Path | None = None, prior: float = 16.0) -> Path:
    """Rewrite a bundle with ONNX graphs of its f and h (``onnx_bundle.bundle_with_onnx``) to ``out``."""
    from laecips_core.storage.bundle_loading import load_bundle
    from laecips_core.training.onnx_bundle import bundle_with_onnx

    from laecips_core import files

    target = path if out is None else out
    files.atomic_write_bytes(target, bundle_with_onnx(load_bundle(path), prior, (32, 48)))
    return target
