"""Tests of the pre-training stages: f on ground truth, the paper's hard/easy labels, h's BCE training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.metrics import auroc
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import preprocess
from laecips_core.errors import ConfigError
from laecips_core.training.pretrain_stages import hard_labels, miner_quality, pretrain_edge, pretrain_miner
from pretrain_frames import SIZE, ColourSeg, HalvesLVM, cfg, frame


def test_hard_labels_follow_the_paper_rule() -> None:
    rng = np.random.default_rng(0)
    pattern = [True, False, False, True, False, True, False, False, True, False]
    frames = [frame(hard, rng) for hard in pattern]
    _, stats = hard_labels(ColourSeg(), frames, AssistedInference(HalvesLVM()), cfg(), progress=False)
    assert stats.hard.tolist() == pattern
    assert np.all(stats.miou_fused[stats.hard] - stats.miou_edge[stats.hard] >= 0.1)
    assert np.allclose(stats.miou_fused, 1.0)  # the layout masks fix every error of f
    assert stats.summary["hard"] == 4 and stats.summary["easy"] == 6
    # A stricter margin than any gain makes every frame easy.
    _, strict = hard_labels(
        ColourSeg(), frames, AssistedInference(HalvesLVM()), cfg(hard_margin=0.9), progress=False
    )
    assert not strict.hard.any()


def test_pretrain_miner_separates_hard_from_easy_on_seen_and_held_out_frames() -> None:
    rng = np.random.default_rng(1)
    pattern = [i % 3 == 0 for i in range(24)]  # 8 hard, 16 easy: the BCE is class-weighted
    frames = [frame(hard, rng) for hard in pattern]
    f = ColourSeg()
    fuser = AssistedInference(HalvesLVM())
    recipe = cfg(seed=3, batch_size=24, miner_epochs=12, miner_lr=3e-3)  # 12 full-batch steps: fast
    h, stats = pretrain_miner(f, frames, fuser, recipe, progress=False)
    assert not h.training and isinstance(h, MinerNet)
    assert stats.summary["class_weights"]["hard"] == pytest.approx(24 / 16)
    assert stats.losses[-1] < stats.losses[0]
    with torch.inference_mode():
        conf = h(f(preprocess(np.stack([fr.image for fr in frames])))).numpy()
    hard = np.array(pattern)
    assert auroc(conf, ~hard) > 0.9
    assert conf[~hard].mean() > conf[hard].mean() + 0.2  # h = confidence: low on hard frames

    held_out = [frame(i % 2 == 0, rng) for i in range(10)]
    quality = miner_quality(f, h, held_out, fuser, recipe)
    assert quality["frames"] == 10 and quality["hard"] == 5 and quality["easy"] == 5
    assert quality["auroc_easy"] > 0.9 and quality["mean_conf_easy"] > quality["mean_conf_hard"]
    assert 0.0 <= quality["acc_at_0.5"] <= 1.0
    with pytest.raises(ConfigError, match="at least one labelled frame"):
        pretrain_miner(f, [], fuser, recipe, progress=False)


def test_auroc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, 30).astype(float)  # many ties
    positive = rng.random(30) > 0.4
    pairs = [(a > b) + 0.5 * (a == b) for a in scores[positive] for b in scores[~positive]]
    assert auroc(scores, positive) == pytest.approx(np.mean(pairs))
    assert np.isnan(auroc(scores, np.ones(30, bool)))


def test_pretrain_edge_is_seeded_and_learns() -> None:
    rng = np.random.default_rng(5)
    frames = [frame(False, rng) for _ in range(8)]
    recipe = cfg(epochs=3, lr=1e-2, pretrained_backbone=False, seed=11)
    f1, losses = pretrain_edge(frames, recipe, progress=False)
    f2, _ = pretrain_edge(frames, recipe, progress=False)
    assert not f1.training and len(losses) == 3 and losses[-1] < losses[0]
    x = torch.zeros(1, 3, *SIZE)
    with torch.inference_mode():
        assert f1(x).shape == (1, 3, *SIZE)
    for a, b in zip(f1.state_dict().values(), f2.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the same recipe and frames give the same f, bit for bit
    with pytest.raises(ConfigError, match="at least one labelled task-1 frame"):
        pretrain_edge([], recipe, progress=False)
