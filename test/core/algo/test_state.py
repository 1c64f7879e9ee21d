"""Tests of algo.state: applying a bundle of f and h strictly (all checks before either network changes)."""

from __future__ import annotations

import pytest
import torch
from laecips_core.algo.models import build_edge_model
from laecips_core.algo.state import apply_bundle, load_state_strict
from laecips_core.errors import WeightsError
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.weights import save_bundle
from torch import nn
from weights_helpers import assert_same_state, built_h, bundle_meta, small_h, tiny_f


@pytest.fixture
def h_net() -> nn.Module:
    return built_h()


def test_apply_bundle_reproduces_the_outputs(tmp_path, h_net):
    src_f = tiny_f(seed=1).eval()
    save_bundle(tmp_path / "b.safetensors", src_f, h_net, bundle_meta())
    dst_f, dst_h = tiny_f(seed=2).eval(), small_h(seed=2)
    dst_h(torch.zeros(1, 5, 8, 8))
    x = torch.randn(1, 3, 40, 48)
    assert not torch.allclose(src_f(x), dst_f(x))
    apply_bundle(load_bundle(tmp_path / "b.safetensors"), dst_f, dst_h)
    assert torch.equal(src_f(x), dst_f(x))
    assert_same_state(dst_h.state_dict(), h_net.state_dict())


def test_wrong_class_count_is_refused_with_a_useful_message(tmp_path):
    save_bundle(tmp_path / "b.safetensors", tiny_f(5), None, bundle_meta(num_classes=5))
    bundle = load_bundle(tmp_path / "b.safetensors")
    with pytest.raises(WeightsError, match=r"M=5 classes but f has M=8.*num_classes=5"):
        apply_bundle(bundle, tiny_f(8))


def test_wrong_architecture_is_refused_and_nothing_changes(tmp_path, h_net):
    save_bundle(tmp_path / "b.safetensors", tiny_f(5), h_net, bundle_meta())
    bundle = load_bundle(tmp_path / "b.safetensors")
    lraspp = build_edge_model("lraspp_mobilenetv3", 5)
    with pytest.raises(WeightsError, match=r"'tiny_fcn' but f is 'lraspp_mobilenetv3'.*build_edge_model"):
        apply_bundle(bundle, lraspp)
    # Modules without registry attributes: the key/shape comparison names what differs.
    plain = nn.Sequential(nn.Conv2d(3, 5, 1))
    with pytest.raises(WeightsError, match="missing keys.*unexpected keys"):
        apply_bundle(bundle, plain)
    # f fits but h does not: neither is modified.
    f = tiny_f(5, seed=9)
    before = {k: v.clone() for k, v in f.state_dict().items()}
    wrong_h = nn.Sequential(nn.Conv2d(5, 2, 3))
    with pytest.raises(WeightsError, match=r"h: .*shape mismatches|h: .*keys"):
        apply_bundle(bundle, f, wrong_h)
    assert_same_state(f.state_dict(), before)
    with pytest.raises(WeightsError, match="no miner network"):
        apply_bundle(bundle, f, None)


def test_load_state_strict_names_the_shape_mismatch():
    small, big = tiny_f(5), tiny_f(8)
    with pytest.raises(WeightsError, match=r"shape mismatches \(head\.\S+: weights \(5,"):
        load_state_strict(big, small.state_dict(), "f")
