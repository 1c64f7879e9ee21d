"""Tests of Algorithm 2's update step: recipes of f, re-fusion, the label-free gate and its guards."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import build_edge_model
from laecips_core.errors import ConfigError
from laecips_core.lvm.base import masks_from_label_map
from laecips_core.storage.jobspec import RECIPES, TrainerConfig
from laecips_core.training.adaptation import (
    ContinualTrainer,
    Target,
    adapt_batchnorm,
    apply_recipe,
    gate_update,
    make_target,
    refuse,
)
from laecips_core.training.fit import train_edge
from torch import nn
from toy_data import toy_frames

M = 3
SIZE = (32, 48)


def _toy(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return toy_frames(n, seed, SIZE)


def _samples(images: list[np.ndarray], labels: list[np.ndarray], masks: bool = True) -> list[SimpleNamespace]:
    """Replay-like samples; masks = the ground-truth regions (an oracle SAM), labels = F(x)."""
    return [
        SimpleNamespace(
            id=i + 1,
            image=im,
            labels=lab,
            timestamp=float(i),
            masks=masks_from_label_map(lab.astype(np.int64)) if masks else None,
        )
        for i, (im, lab) in enumerate(zip(images, labels))
    ]


def _cfg(**kw: object) -> TrainerConfig:
    base: dict[str, object] = {"lr": 1e-2, "epochs": 6, "batch_size": 8, "input_size": SIZE, "seed": 0}
    base.update(kw)
    return TrainerConfig(**base)  # type: ignore[arg-type]


def _tiny_f(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_edge_model("tiny_fcn", M)


def _weak_f(images: list[np.ndarray], labels: list[np.ndarray]) -> nn.Module:
    """An f that is mostly right: a few epochs on the ground truth."""
    f = _tiny_f()
    train_edge(f, images, labels, _cfg(epochs=4), progress=False)
    return f.eval()


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Constant(nn.Module):
    """A collapsed f: class 0 everywhere, whatever the input."""

    num_classes = M

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], M, *x.shape[2:])
        out[:, 0] = 10.0
        return out


def test_bn_recipe_changes_only_batchnorm_statistics() -> None:
    images, labels = _toy(12, seed=1)
    f = _tiny_f()
    before = copy.deepcopy(f.state_dict())
    losses = apply_recipe(f, make_target(_samples(images, labels), SIZE), _cfg(recipe="bn"))
    after = f.state_dict()
    assert losses == []
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("running_" in k or "num_batches" in k for k in changed)


def test_adapt_batchnorm_matches_target_statistics() -> None:
    bn = nn.BatchNorm2d(3)
    net = nn.Sequential(bn)
    rgb = np.full((4, 8, 8, 3), 200, np.uint8)
    adapt_batchnorm(net, rgb, _cfg(batch_size=2))
    # preprocess: (200/255 - mean) / std per channel; the running mean must equal it
    expected = (200 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(bn.running_mean, expected, atol=1e-4)


def test_refuse_gives_each_mask_the_majority_class_of_the_new_f() -> None:
    images, labels = _toy(6, seed=2)
    f = _weak_f(images, labels)
    target = make_target(_samples(images, labels), SIZE)
    fused, probs = refuse(f, target, _cfg())
    assert fused.shape == (6, *SIZE) and probs.shape == (6, M, *SIZE)
    for lab, masks, p in zip(fused, target.masks, probs):
        for mask in masks:
            assert len(np.unique(lab[mask])) == 1  # one class per mask
            assert lab[mask][0] == p[:, mask].sum(axis=1).argmax()


def test_make_target_without_masks_uses_the_regions_of_the_stored_labels() -> None:
    images, labels = _toy(3, seed=3)
    target = make_target(_samples(images, labels, masks=False), SIZE)
    for lab, masks in zip(labels, target.masks):
        assert masks.sum(axis=0).max() == 1 and masks.any(axis=0).all()  # a partition of the image
        for mask in masks:
            assert len(np.unique(lab[mask])) == 1


def test_gate_accepts_an_update_that_helps() -> None:
    images, labels = _toy(24, seed=4)
    weak = _weak_f(images[:8], labels[:8])
    better = copy.deepcopy(weak)
    train_edge(better, images, labels, _cfg(epochs=15), progress=False)
    hold = make_target(_samples(images[16:], labels[16:]), SIZE)
    result = gate_update(weak, better.eval(), hold, _cfg())
    assert result.accepted, result.reason
    assert result.signal > 0 and result.details["consistency_new"] > result.details["consistency_old"]


def test_gate_refuses_an_update_that_collapses_f_to_one_class() -> None:
    images, labels = _toy(12, seed=5)
    f = _weak_f(images, labels)
    hold = make_target(_samples(images, labels), SIZE)
    result = gate_update(f, _Constant(), hold, _cfg())
    # a constant f agrees perfectly with its own fusion: only the guard stops it
    assert result.details["consistency_new"] == pytest.approx(1.0)
    assert not result.accepted and "collapse guard" in result.reason


def test_gate_uses_labelled_validation_when_given() -> None:
    images, labels = _toy(16, seed=6)
    f = _weak_f(images, labels)
    worse = _tiny_f(seed=3).eval()
    hold = make_target(_samples(images[:4], labels[:4]), SIZE)
    val = (np.stack(images[4:]), np.stack(labels[4:]).astype(np.int64))
    result = gate_update(f, worse, hold, _cfg(min_class_ratio=0.0, min_entropy_ratio=0.0), validation=val)
    assert not result.accepted and result.details["validation"] < 0 and "validation" in result.reason


@pytest.mark.parametrize("recipe", [r for r in RECIPES if r != "rehearsal"])
def test_continual_trainer_runs_every_recipe_and_leaves_inputs_alone(recipe: str) -> None:
    images, labels = _toy(20, seed=7)
    f, h = _weak_f(images, labels), MinerNet(M, in_size=(32, 32))
    f_orig = copy.deepcopy(f.state_dict())
    h_orig = copy.deepcopy(h.state_dict())
    cfg = _cfg(recipe=recipe, epochs=2, min_improvement=-1.0, min_class_ratio=0.0, min_entropy_ratio=0.0)
    result = ContinualTrainer(cfg).run(f, h, _samples(images, labels), progress=False)
    rep = result.report
    assert result.accepted, rep["reason"]
    assert rep["recipe"] == recipe and (rep["n_train"], rep["n_holdout"]) == (16, 4)
    assert set(rep["gate"]) >= {"consistency", "old_fused", "classes_new"}
    assert _same_state(f_orig, f.state_dict()) and _same_state(h_orig, h.state_dict())
    assert not _same_state(f_orig, result.f_state) and not _same_state(h_orig, result.h_state)
    g = _tiny_f(seed=5)
    g.load_state_dict(result.f_state)


def test_rehearsal_needs_source_frames_and_trains_with_them() -> None:
    from laecips_core.training.adaptation import SourceFrames

    images, labels = _toy(12, seed=8)
    target = make_target(_samples(images, labels), SIZE)
    with pytest.raises(ConfigError, match="source frames"):
        apply_recipe(_tiny_f(), target, _cfg(recipe="rehearsal", epochs=1))
    f = _tiny_f()
    losses = apply_recipe(
        f, target, _cfg(recipe="rehearsal", epochs=2), source=SourceFrames(images[:4], labels[:4])
    )
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_continual_trainer_refuses_divergent_update() -> None:
    images, labels = _toy(20, seed=9)
    f = _weak_f(images, labels)
    f_good = copy.deepcopy(f.state_dict())
    result = ContinualTrainer(_cfg(lr=1e4, epochs=3, optimizer="sgd", recipe="paper")).run(
        f, MinerNet(M, in_size=(32, 32)), _samples(images, labels), progress=False
    )
    assert not result.accepted and _same_state(f_good, result.f_state) and result.report["loss_h"] == []


def test_split_holds_back_most_recent_frames() -> None:
    images, labels = _toy(10, seed=10)
    samples = _samples(images, labels)[::-1]  # given newest first
    train, hold = ContinualTrainer(TrainerConfig(holdout_fraction=0.3)).split(samples)
    assert [s.timestamp for s in hold] == [7.0, 8.0, 9.0]
    assert [s.timestamp for s in train] == [float(i) for i in range(7)]
    result = ContinualTrainer(_cfg()).run(
        _tiny_f(), MinerNet(M, in_size=(32, 32)), samples[:1], progress=False
    )
    assert not result.accepted and "need >= 2" in result.report["reason"]


def test_target_is_a_named_tuple_of_arrays() -> None:
    images, labels = _toy(2, seed=11)
    target = make_target(_samples(images, labels), SIZE)
    assert (
        isinstance(target, Target) and target.rgb.shape == (2, *SIZE, 3) and target.stored.dtype == np.int64
    )
