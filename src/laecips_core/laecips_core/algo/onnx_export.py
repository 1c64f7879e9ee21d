"""ONNX graphs of f and h for a bundle: what the trainer ships so that a robot runs them without torch.

f is exported with its per-frame BatchNorm statistics (``streamnorm``, prior N) and symbolic batch,
height and width; h (``mining.MinerNet``) at its input size, logits in and confidence h(f(x)) out. The
lean edge (``onnx_predictor``) does the rest in numpy (``frames``). On a Jetson, TensorRT builds its
engines from the same graphs (docs/edge.md, ``trtexec``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

from laecips_core.algo.backends import export_onnx
from laecips_core.algo.frames import check_prior
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.streamnorm import with_stream_norm
from laecips_core.errors import ConfigError

EXAMPLE_HW = (240, 320)
"""(H, W) f is traced at when not told (the trainer's default training resolution): the graph has
symbolic H and W where f allows, else this fixed size, which the lean edge then runs f at."""


def onnx_graphs(
    f: nn.Module, h: nn.Module, stream_norm_prior: float, example_hw: tuple[int, int] = EXAMPLE_HW
) -> dict[str, bytes]:
    """Export f (with per-frame BatchNorm statistics at prior N) and h to ONNX, in memory.

    Args:
        f: the edge model f (``models.EdgeSegmenter``), in eval mode.
        h: the miner network h (``mining.MinerNet``).
        stream_norm_prior: N of ``streamnorm`` baked into f's graph (0 = stored statistics only).
        example_hw: (H, W) f is traced at.

    Returns:
        {"f": bytes, "h": bytes}: self-contained ONNX graphs (``weights.serialize_bundle``'s ``onnx``).

    Raises:
        ConfigError: h is not a MinerNet or the prior is invalid.
        WeightsError: the export failed.
    """
    prior = check_prior(stream_norm_prior)
    if not isinstance(h, MinerNet):
        raise ConfigError(f"ONNX export needs the miner network h as a MinerNet, got {type(h).__name__}")
    with tempfile.TemporaryDirectory(prefix="laecips_onnx_") as folder:
        f_path = export_onnx(with_stream_norm(f.eval(), prior), Path(folder) / "f.onnx", *example_hw)
        height, width = h.in_size
        h_path = export_onnx(
            h.eval(), Path(folder) / "h.onnx", height, width, dynamic=False, channels=h.num_classes
        )
        return {"f": f_path.read_bytes(), "h": h_path.read_bytes()}


def onnx_metadata(stream_norm_prior: float) -> dict[str, str]:
    """Bundle metadata that goes with ``onnx_graphs``: the prior f's graph normalises with."""
    return {"onnx_stream_norm_prior": repr(check_prior(stream_norm_prior))}
