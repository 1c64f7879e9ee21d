"""A bundle of f and h with their ONNX graphs added: what the trainer ships and `laecips export-onnx` writes.

The graphs (``algo.onnx_export``) go into the same safetensors file as f's and h's tensors, so the file's
SHA-256 and Ed25519 signature cover them and the lean edge verifies them like the rest before use.
"""

from __future__ import annotations

from laecips_core.algo.bundles import build_models
from laecips_core.algo.onnx_export import EXAMPLE_HW, onnx_graphs, onnx_metadata
from laecips_core.algo.state import Bundle
from laecips_core.errors import WeightsError
from laecips_core.storage.weights import serialize_bundle

ONNX_METADATA_KEYS = ("onnx", "onnx_stream_norm_prior")
"""Metadata a bundle's ONNX graphs bring (replaced when the graphs are exported again)."""


def bundle_with_onnx(
    bundle: Bundle, stream_norm_prior: float, example_hw: tuple[int, int] = EXAMPLE_HW
) -> bytes:
    """The bundle's bytes with ONNX graphs of its f and h (any graphs it had are exported again).

    Args:
        bundle: a verified bundle (``bundle_loading.load_bundle``) with h's weights.
        stream_norm_prior: N of ``streamnorm`` baked into f's graph.
        example_hw: (H, W) f is traced at (the graph's size when f has no symbolic height/width).

    Returns:
        Bytes of the new bundle file: same tensors and metadata (version included) plus the graphs.

    Raises:
        WeightsError: the bundle carries no h, does not fit its architecture, or the export failed.
    """
    if not bundle.h_state:
        raise WeightsError(
            "the bundle carries no miner weights h; the lean edge needs h's graph: export a bundle from "
            "`laecips pretrain` or the trainer"
        )
    f, h = build_models(bundle)
    graphs = onnx_graphs(f, h, stream_norm_prior, example_hw)
    metadata = {k: v for k, v in bundle.metadata.items() if k not in ONNX_METADATA_KEYS}
    metadata.update(onnx_metadata(stream_norm_prior))
    return serialize_bundle(bundle.f_state, bundle.h_state, metadata, graphs)
