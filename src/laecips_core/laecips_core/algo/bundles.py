"""One builder for bundle -> (f, h): the edge, the cloud, the training job and the benches all use it."""

from __future__ import annotations

from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import EdgeSegmenter, build_edge_model
from laecips_core.algo.state import Bundle, apply_bundle, miner_in_size
from laecips_core.errors import ConfigError, WeightsError


def build_models(bundle: Bundle) -> tuple[EdgeSegmenter, MinerNet]:
    """Build f (registry name of the bundle) and h (MinerNet) and load the bundle into them (strict).

    Returns:
        (f, h) in eval mode on the CPU.

    Raises:
        WeightsError: the bundle does not fit the architecture it names.
    """
    try:
        f = build_edge_model(bundle.model_name, bundle.num_classes, pretrained_backbone=False)
    except ConfigError as err:
        raise WeightsError(f"bundle names an unusable edge model: {err}") from err
    try:
        h = MinerNet(bundle.num_classes, in_size=miner_in_size(bundle.metadata))
    except ConfigError as err:
        raise WeightsError(f"bundle's miner_in_size is unusable: {err}") from err
    apply_bundle(bundle, f, h if bundle.h_state else None)
    return f.eval(), h.eval()
