"""Tests of the edge model registry, the shipped EfficientNet-Lite0 weights and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
from laecips_core.algo.models import (
    EFFNET_LITE0_SHA256,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NO_BACKBONE_WEIGHTS,
    build_edge_model,
    count_params,
    edge_model_registry,
    has_pretrained_backbone,
    load_effnet_lite0_imagenet_state,
    preprocess,
)
from laecips_core.errors import ConfigError, ImageError, WeightsError


def test_registry_keys_and_default():
    assert {"lraspp_mobilenetv3", "effnet_lite0_lraspp", "tiny_fcn"} <= set(edge_model_registry)
    assert DEFAULT_EDGE_MODEL == "effnet_lite0_lraspp" and has_pretrained_backbone(DEFAULT_EDGE_MODEL)


@pytest.mark.parametrize("name", ["lraspp_mobilenetv3", "tiny_fcn"])
def test_pretrained_backbone_is_refused_not_ignored_where_nothing_ships(name):
    assert not has_pretrained_backbone(name)
    with pytest.raises(ConfigError, match="no pretrained backbone weights"):
        build_edge_model(name, 5, pretrained_backbone=True)
    assert build_edge_model(name, 5).backbone_weights == NO_BACKBONE_WEIGHTS


@pytest.mark.parametrize("name", ["tiny_fcn", "lraspp_mobilenetv3", "effnet_lite0_lraspp"])
def test_forward_returns_logits_at_input_size(name):
    torch.manual_seed(0)
    model = build_edge_model(name, 7, pretrained_backbone=False).eval()
    x = torch.randn(2, 3, 97, 131)
    with torch.inference_mode():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 7, 97, 131)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert model.model_name == name and model.num_classes == 7
    # The two images differ, so must their logits: the output depends on the input.
    assert not torch.allclose(out[0], out[1])


def test_param_counts_match_the_documented_models():
    assert 3_000_000 < count_params(build_edge_model("lraspp_mobilenetv3", 19)) < 3_400_000
    assert 2_800_000 < count_params(build_edge_model("effnet_lite0_lraspp", 19, False)) < 3_300_000
    tiny = build_edge_model("tiny_fcn", 19)
    assert count_params(tiny) < 50_000
    for p in tiny.backbone.parameters():
        p.requires_grad_(False)
    assert count_params(tiny, trainable_only=True) < count_params(tiny)


def test_effnet_builder_loads_the_shipped_imagenet_weights():
    shipped = load_effnet_lite0_imagenet_state()
    assert "_fc.weight" in shipped and shipped["_fc.weight"].shape == (1000, 1280)
    pretrained = build_edge_model("effnet_lite0_lraspp", 5, pretrained_backbone=True)
    scratch = build_edge_model("effnet_lite0_lraspp", 5, pretrained_backbone=False)
    own = pretrained.state_dict()
    for key in ("_conv_stem.weight", "_blocks.3._depthwise_conv.weight", "_blocks.15._bn2.running_var"):
        assert torch.equal(own[f"backbone.net.{key}"], shipped[key]), key
        assert not torch.equal(scratch.state_dict()[f"backbone.net.{key}"], shipped[key]), key
    # The card's record is true: it names the verified file for the loaded model only.
    assert EFFNET_LITE0_SHA256 in pretrained.backbone_weights
    assert scratch.backbone_weights == NO_BACKBONE_WEIGHTS
    # The ImageNet classifier and head conv are dropped: the trunk ends at block 15 (320 channels).
    assert not any(k.startswith(("backbone.net._fc", "backbone.net._conv_head")) for k in own)


def test_effnet_weights_with_a_wrong_hash_are_refused(monkeypatch):
    monkeypatch.setattr("laecips_core.algo.models.EFFNET_LITE0_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="SHA-256"):
        build_edge_model("effnet_lite0_lraspp", 5, pretrained_backbone=True)


def test_build_rejects_unknown_names_and_bad_class_counts():
    with pytest.raises(ConfigError, match="unknown edge model 'deeplab'"):
        build_edge_model("deeplab", 5)
    with pytest.raises(ConfigError, match="num_classes"):
        build_edge_model("tiny_fcn", 1)
    with pytest.raises(ConfigError, match="num_classes"):
        build_edge_model("tiny_fcn", 3.0)  # type: ignore[arg-type]


def test_preprocess_normalises_with_imagenet_statistics():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[1, 2] = (255, 0, 128)
    x = preprocess(rgb)
    assert x.shape == (1, 3, 4, 5) and x.dtype == torch.float32 and x.is_contiguous()
    expected = [(v / 255.0 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(x[0, :, 1, 2], torch.tensor(expected), atol=1e-6)
    assert torch.allclose(x[0, :, 0, 0], -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD), atol=1e-6)
    batch = np.stack([rgb, 255 - rgb])
    xb = preprocess(batch)
    assert xb.shape == (2, 3, 4, 5)
    assert torch.equal(xb[0], x[0])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 5, 3), np.float32),
        np.zeros((4, 5), np.uint8),
        np.zeros((4, 5, 4), np.uint8),
        np.zeros((0, 5, 3), np.uint8),
        [[0, 0, 0]],
    ],
)
def test_preprocess_rejects_non_rgb_input(bad):
    with pytest.raises(ImageError):
        preprocess(bad)
