"""Inference backends for f: eager torch, ONNX Runtime (``onnx_runtime``; the exporter is here), TensorRT.

The backend registry names them for ``EdgePredictor``; ``export_onnx`` writes the ONNX graphs of f and h
that the trainer ships inside a bundle (``onnx_export``) and the lean edge runs without torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from laecips_core.algo.onnx_runtime import InferenceBackend, OnnxBackend, check_batch
from laecips_core.errors import ConfigError, WeightsError

MAX_EXPORT_BATCH = 64


class TorchBackend:
    """Eager PyTorch inference of f under ``torch.inference_mode``.

    Args:
        model: the edge model f (put in eval mode here).
        device: torch device string ("cpu", "cuda", "cuda:0").
    """

    fixed_hw: tuple[int, int] | None = None

    def __init__(self, model: nn.Module, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(B,3,H,W) float32 -> (B,M,H,W) float32 logits (numpy, on the CPU)."""
        x = torch.from_numpy(check_batch(batch)).to(self.device)
        with torch.inference_mode():
            out: torch.Tensor = self.model(x)
        return out.float().cpu().numpy()


def export_onnx(
    model: nn.Module,
    path: str | Path,
    height: int,
    width: int,
    *,
    dynamic: bool | None = None,
    external_data: bool = False,
    opset_version: int | None = None,
    channels: int = 3,
) -> Path:
    """Export f (or the miner network h) to ONNX with the dynamo exporter.

    With ``dynamic`` the batch, height and width axes are symbolic (one file serves every frame size);
    if the model cannot be exported that way (a warning says why) a fixed (1,3,height,width) graph is
    written instead: check ``OnnxBackend(path).fixed_hw``. Without ``external_data`` the weights are
    stored inside the .onnx file (models < 2 GB), so the file is self-contained and can be moved
    freely; with it they go to ``<name>.onnx.data`` next to it, which must move along under that name.

    Args:
        model: f, mapping (B,3,H,W) float32 to (B,M,H,W) float32 logits (put in eval mode here).
        path: destination .onnx file (its directory is created).
        height: H of the example input (pixels).
        width: W of the example input (pixels).
        dynamic: symbolic batch/height/width axes; None uses the model's ``onnx_dynamic`` attribute
            (``models.EdgeSegmenter``; True when absent).
        external_data: store weights in a separate .onnx.data file.
        opset_version: ONNX opset (None: the exporter's default).
        channels: C of the (B,C,H,W) example input: 3 for f; M for h (``mining.MinerNet``), exported at
            its ``in_size`` with ``dynamic=False`` so the graph is the ResNet alone (resize the logits
            to in_size before running it).

    Returns:
        ``path`` as an absolute Path.

    Raises:
        WeightsError: the export failed.
    """
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    example = torch.zeros(1, int(channels), int(height), int(width), device=device)
    program: Any = None
    if dynamic is None:
        dynamic = bool(getattr(model, "onnx_dynamic", True))
    if dynamic:
        dims = {
            0: torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH),
            2: torch.export.Dim("height", min=32, max=8192),
            3: torch.export.Dim("width", min=32, max=8192),
        }
        try:
            with torch.no_grad():  # inference graphs (streamnorm's fused batch_norm path)
                program = torch.onnx.export(
                    model,
                    (example,),
                    dynamo=True,
                    dynamic_shapes=(dims,),
                    opset_version=opset_version,
                    verbose=False,
                )
        except Exception as err:  # torch.export raises many unrelated types for unsupported dynamism
            warnings.warn(
                f"dynamic-shape ONNX export failed ({type(err).__name__}: {str(err)[:200]}); "
                f"exporting a fixed 1x3x{height}x{width} graph",
                stacklevel=2,
            )
    if program is None:
        try:
            with torch.no_grad():
                program = torch.onnx.export(
                    model, (example,), dynamo=True, opset_version=opset_version, verbose=False
                )
        except Exception as err:
            raise WeightsError(f"ONNX export of {type(model).__name__} failed: {err}") from err
    program.save(str(out), external_data=external_data)
    return out


def _tensorrt_unavailable(*args: object, **kwargs: object) -> InferenceBackend:
    raise ConfigError(
        "TensorRT needs JetPack on a Jetson (tensorrt and torch2trt are not installable from PyPI here); "
        "use backend 'onnxruntime' here, or build a TensorRT engine from export_onnx's file on the Jetson"
    )


backend_registry: dict[str, Callable[..., InferenceBackend]] = {
    "torch": TorchBackend,
    "onnxruntime": OnnxBackend,
    "tensorrt": _tensorrt_unavailable,
}


def build_backend(name: str, *args: object, **kwargs: object) -> InferenceBackend:
    """Construct a backend by key: ``build_backend("torch", f)``, ``build_backend("onnxruntime", path)``.

    Raises:
        ConfigError: unknown name, or "tensorrt" off a Jetson.
    """
    if name not in backend_registry:
        raise ConfigError(f"unknown inference backend {name!r}; choose one of {sorted(backend_registry)}")
    return backend_registry[name](*args, **kwargs)
