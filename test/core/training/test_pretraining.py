"""Tests of pre-training: the paper's hard/easy labels, h's BCE training, splits, the cached "test" bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from laecips_core.algo import state
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.metrics import auroc
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import build_edge_model, preprocess
from laecips_core.errors import ConfigError
from laecips_core.storage import bundle_loading
from laecips_core.training import pretraining
from laecips_core.training.pretraining import (
    PretrainConfig,
    card_path,
    ensure_default_weights,
    get_profile,
    hard_labels,
    pretrain_miner,
    pretrain_models,
    profile_key,
    split_frames,
)
from torch import nn

from laecips_core import files

SIZE = (32, 48)


class _Frame(NamedTuple):
    image: np.ndarray
    labels: np.ndarray
    task_id: int


class _ColourSeg(nn.Module):
    """A fixed f: the class of a pixel is its dominant colour channel (R=0, G=1, B=2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 4.0 * x


class _HalvesLVM:
    """A mask generator that knows the scene layout: left half and right half."""

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        h, w = image_rgb_uint8.shape[:2]
        masks = np.zeros((2, h, w), bool)
        masks[0, :, : w // 2] = True
        masks[1, :, w // 2 :] = True
        return masks


def _frame(hard: bool, rng: np.random.Generator) -> _Frame:
    """Ground truth: left half class 0, right half class 1. Hard frames paint 30 % of the right half red,
    so f mislabels it while the right-half mask lets Algorithm 1 restore class 1 (F beats f by > 0.1)."""
    h, w = SIZE
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2, 0] = rng.integers(200, 256)
    image[:, w // 2 :, 1] = rng.integers(200, 256)
    if hard:
        rows = int(h * 0.3)
        y0 = int(rng.integers(0, h - rows))
        image[y0 : y0 + rows, w // 2 :] = (230, 0, 0)
    labels = np.zeros((h, w), np.uint8)
    labels[:, w // 2 :] = 1
    return _Frame(image, labels, 0)


def _cfg(**kw: object) -> PretrainConfig:
    base: dict[str, object] = {
        "num_classes": 3,
        "edge_model": "tiny_fcn",
        "input_size": SIZE,
        "batch_size": 8,
        "miner_epochs": 30,
        "miner_lr": 3e-3,
        "miner_in_size": (32, 32),
    }
    base.update(kw)
    return PretrainConfig(**base)  # type: ignore[arg-type]


def test_config_validation() -> None:
    for bad in (
        {"num_classes": 1},
        {"epochs": 0},
        {"val_fraction": 0.0},
        {"val_fraction": 0.5, "miner_fraction": 0.45},
        {"hard_margin": 2.0},
        {"input_size": (4, 4)},
        {"lr": -1.0},
    ):
        with pytest.raises(ConfigError):
            _cfg(**bad)
    with pytest.raises(ConfigError, match="unknown pre-training profile"):
        get_profile("huge")


def test_hard_labels_follow_the_paper_rule() -> None:
    rng = np.random.default_rng(0)
    pattern = [True, False, False, True, False, True, False, False, True, False]
    frames = [_frame(hard, rng) for hard in pattern]
    _, stats = hard_labels(_ColourSeg(), frames, AssistedInference(_HalvesLVM()), _cfg(), progress=False)
    assert stats.hard.tolist() == pattern
    assert np.all(stats.miou_fused[stats.hard] - stats.miou_edge[stats.hard] >= 0.1)
    assert np.allclose(stats.miou_fused, 1.0)  # the layout masks fix every error of f
    assert stats.summary["hard"] == 4 and stats.summary["easy"] == 6
    # A stricter margin than any gain makes every frame easy.
    _, strict = hard_labels(
        _ColourSeg(), frames, AssistedInference(_HalvesLVM()), _cfg(hard_margin=0.9), progress=False
    )
    assert not strict.hard.any()


def test_pretrain_miner_separates_hard_from_easy() -> None:
    rng = np.random.default_rng(1)
    pattern = [i % 3 == 0 for i in range(24)]  # 8 hard, 16 easy: the BCE is class-weighted
    frames = [_frame(hard, rng) for hard in pattern]
    f = _ColourSeg()
    cfg = _cfg(seed=3, batch_size=24, miner_epochs=12, miner_lr=3e-3)  # 12 full-batch steps: fast
    h, stats = pretrain_miner(f, frames, AssistedInference(_HalvesLVM()), cfg, progress=False)
    assert not h.training and isinstance(h, MinerNet)
    assert stats.summary["class_weights"]["hard"] == pytest.approx(24 / 16)
    assert stats.losses[-1] < stats.losses[0]
    with torch.inference_mode():
        conf = h(f(preprocess(np.stack([fr.image for fr in frames])))).numpy()
    hard = np.array(pattern)
    assert auroc(conf, ~hard) > 0.9
    assert conf[~hard].mean() > conf[hard].mean() + 0.2  # h = confidence: low on hard frames


def test_auroc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, 30).astype(float)  # many ties
    positive = rng.random(30) > 0.4
    pairs = [(a > b) + 0.5 * (a == b) for a in scores[positive] for b in scores[~positive]]
    assert auroc(scores, positive) == pytest.approx(np.mean(pairs))
    assert np.isnan(auroc(scores, np.ones(30, bool)))


def test_split_frames_is_contiguous_and_checked() -> None:
    frames = list(range(50))
    f_part, miner_part, val_part = split_frames(frames, _cfg(val_fraction=0.2, miner_fraction=0.3))  # type: ignore[arg-type]
    assert f_part == list(range(25)) and miner_part == list(range(25, 40)) and val_part == list(range(40, 50))
    with pytest.raises(ConfigError, match="too few"):
        split_frames(frames[:2], _cfg())  # type: ignore[arg-type]


def test_pretrain_models_on_caller_frames() -> None:
    rng = np.random.default_rng(4)
    frames = [_frame(i % 2 == 0, rng) for i in range(10)]
    f, h = pretrain_models(
        [fr.image for fr in frames],
        [fr.labels for fr in frames],
        3,
        profile="test",
        progress=False,
        epochs=2,
        miner_epochs=1,
        input_size=SIZE,
    )
    assert not f.training and not h.training
    x = torch.zeros(1, 3, *SIZE)
    with torch.inference_mode():
        assert f(x).shape == (1, 3, *SIZE)
        assert 0.0 <= float(h(f(x))[0]) <= 1.0


@pytest.mark.slow
def test_test_profile_writes_a_loadable_cached_bundle(tmp_path: Path) -> None:
    path = ensure_default_weights(tmp_path, "test", progress=False)
    prof = get_profile("test")
    assert path.parent == tmp_path and profile_key(prof)[:12] in path.name
    card = json.loads(card_path(path).read_text())
    assert card["sha256"] == files.sha256_file(path)
    assert card["config"]["edge_model"] == "tiny_fcn" and card["data"]["benchmark"]["seed"] == 1000
    assert set(card["versions"]) >= {"torch", "laecips_core"} and card["seconds"] > 0
    metrics = card["metrics"]
    assert metrics["loss_f"][-1] < metrics["loss_f"][0]
    assert 0.0 < metrics["f_val"]["pixel_acc"] <= 1.0
    assert metrics["miner_train"]["hard"] + metrics["miner_train"]["easy"] == metrics["n_frames"]["miner"]

    bundle = bundle_loading.load_bundle(path, expected_sha256=card["sha256"])
    assert bundle.metadata["model_name"] == "tiny_fcn" and bundle.metadata["version"] == "0"
    num_classes = int(bundle.metadata["num_classes"])
    f = build_edge_model("tiny_fcn", num_classes, pretrained_backbone=False)
    h = MinerNet(num_classes, in_size=tuple(json.loads(bundle.metadata["miner_in_size"])))
    state.apply_bundle(bundle, f, h)

    # Cached: a second call returns the same file without training again.
    mtime = path.stat().st_mtime_ns
    assert ensure_default_weights(tmp_path, "test", progress=False) == path
    assert path.stat().st_mtime_ns == mtime


def test_the_weights_key_ignores_comments_docstrings_imports_and_order_but_not_code() -> None:
    source = '"""Module."""\n\nimport os\n\ndef f(x: int) -> int:\n    """Doc."""\n    return x + 1  # one\n'
    source += 'Y = 2\n"""Y."""\n'
    reworded = '"""Other words."""\nfrom laecips_core.benchmark import generator as os\n\nY = 2\n\n'
    reworded += 'def f(x: int) -> int:\n    """Eq. 13."""\n    # a comment\n    return x + 1\n'
    assert sorted(pretraining.normalised_definitions(source)) == sorted(
        pretraining.normalised_definitions(reworded)
    )
    for changed in (
        source.replace("x + 1", "x + 2"),
        source.replace("x: int", "x: float"),
        source.replace("Y = 2", "Y = 3"),
    ):
        assert pretraining.normalised_definitions(changed) != pretraining.normalised_definitions(source)
    assert pretraining.code_fingerprint() == pretraining.code_fingerprint()


def test_the_weights_key_covers_every_training_code_file() -> None:
    files = pretraining.training_code_files()
    names = {p.relative_to(Path(pretraining.__file__).parents[1]).as_posix() for p in files}
    assert {"algo/models.py", "algo/fusion.py", "training/fit.py", "training/pretraining.py"} <= names
    assert any(n.startswith("benchmark/") for n in names) and any(n.startswith("lvm/") for n in names)
    assert all(p.is_file() for p in files)
