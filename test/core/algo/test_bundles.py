"""Tests of laecips_core.algo.bundles: bundle -> (f, h) of the architecture it names; h's in_size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bundle_helpers import write_tiny_bundle
from laecips_core.algo.bundles import build_models
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import EdgeSegmenter, build_edge_model
from laecips_core.algo.state import DEFAULT_MINER_IN_SIZE, Bundle, miner_in_size
from laecips_core.errors import WeightsError
from laecips_core.storage.bundle_loading import load_bundle, parse_bundle
from laecips_core.storage.weights import serialize_bundle

M = 3


def _same(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    own = module.state_dict()
    return own.keys() == state.keys() and all(torch.equal(own[k], state[k]) for k in own)


def _bundle(f: torch.nn.Module, h: torch.nn.Module | None, **metadata: object) -> Bundle:
    meta: dict[str, object] = {"model_name": "tiny_fcn", "num_classes": M, "version": 0, **metadata}
    return parse_bundle(serialize_bundle(f, h, meta), source="test")


@pytest.mark.parametrize(
    ("raw", "size"),
    [("[64, 64]", (64, 64)), ("32x48", (32, 48)), ("96,32", (96, 32)), (" (40, 56) ", (40, 56))],
)
def test_miner_in_size_reads_the_written_forms(raw: str, size: tuple[int, int]) -> None:
    assert miner_in_size({"miner_in_size": raw}) == size


def test_miner_in_size_defaults_to_minernets_own() -> None:
    assert miner_in_size({}) == miner_in_size({"miner_in_size": ""}) == DEFAULT_MINER_IN_SIZE
    assert DEFAULT_MINER_IN_SIZE == MinerNet(M).in_size


@pytest.mark.parametrize("raw", ["64", "a,b", "1,2,3", "64;64", "6.5x7"])
def test_miner_in_size_refuses_anything_but_two_ints(raw: str) -> None:
    with pytest.raises(WeightsError, match="miner_in_size"):
        miner_in_size({"miner_in_size": raw})


def test_build_models_returns_the_bundles_f_and_h_in_eval_mode(tmp_path: Path) -> None:
    path = write_tiny_bundle(tmp_path / "b.safetensors", 4, M, seed=3, miner_in_size=(32, 48))
    bundle = load_bundle(path)
    f, h = build_models(bundle)
    assert isinstance(f, EdgeSegmenter) and isinstance(h, MinerNet)
    assert (f.model_name, f.num_classes, h.in_size) == ("tiny_fcn", M, (32, 48))
    assert not f.training and not h.training
    assert not any(m.training for m in f.modules()) and not any(m.training for m in h.modules())
    assert _same(f, bundle.f_state) and _same(h, bundle.h_state)
    assert next(f.parameters()).device.type == "cpu"
    with torch.no_grad():
        logits = f(torch.zeros(1, 3, 32, 48))
    assert logits.shape == (1, M, 32, 48)


def test_an_f_only_bundle_gives_an_untrained_h_of_the_default_size(tmp_path: Path) -> None:
    bundle = load_bundle(write_tiny_bundle(tmp_path / "f.safetensors", 1, M, with_h=False))
    assert not bundle.h_state
    f, h = build_models(bundle)
    assert _same(f, bundle.f_state) and h.in_size == DEFAULT_MINER_IN_SIZE and not h.training


def test_a_bundle_whose_tensors_do_not_fit_raises_weights_error() -> None:
    torch.manual_seed(0)
    four = build_edge_model("tiny_fcn", M + 1, pretrained_backbone=False)
    with pytest.raises(WeightsError, match="does not fit"):
        build_models(_bundle(four, MinerNet(M + 1)))  # tensors of M + 1 classes, metadata says M
    three = build_edge_model("tiny_fcn", M, pretrained_backbone=False)
    state = {k: v for k, v in three.state_dict().items() if not k.startswith("head.")}
    with pytest.raises(WeightsError, match="does not fit"):
        build_models(_bundle(state, None))  # f's head missing


def test_a_bundle_naming_an_unknown_model_raises_weights_error() -> None:
    torch.manual_seed(0)
    f = build_edge_model("tiny_fcn", M, pretrained_backbone=False)
    with pytest.raises(WeightsError, match="unusable edge model"):
        build_models(_bundle(f, None, model_name="resnet9000"))


def test_a_bundle_with_an_unusable_miner_in_size_raises_weights_error() -> None:
    torch.manual_seed(0)
    f = build_edge_model("tiny_fcn", M, pretrained_backbone=False)
    bundle = _bundle(f, MinerNet(M), miner_in_size="16,16")
    with pytest.raises(WeightsError, match="miner_in_size"):
        build_models(bundle)
