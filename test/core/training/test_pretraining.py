"""Tests of pre-training: the (f, miner, validation) split, f and h from the caller's frames, the cached
"test" bundle and its card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from laecips_core.algo import state
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import build_edge_model
from laecips_core.errors import ConfigError
from laecips_core.storage import bundle_loading
from laecips_core.training.pretraining import ensure_default_weights, pretrain_models, split_frames
from laecips_core.training.profiles import get_profile
from laecips_core.training.weights_cache import card_path, profile_key
from pretrain_frames import SIZE, cfg, frame

from laecips_core import files


def test_split_frames_is_contiguous_and_checked() -> None:
    frames = list(range(50))
    f_part, miner_part, val_part = split_frames(frames, cfg(val_fraction=0.2, miner_fraction=0.3))  # type: ignore[arg-type]
    assert f_part == list(range(25)) and miner_part == list(range(25, 40)) and val_part == list(range(40, 50))
    with pytest.raises(ConfigError, match="too few"):
        split_frames(frames[:2], cfg())  # type: ignore[arg-type]


def test_pretrain_models_on_caller_frames() -> None:
    rng = np.random.default_rng(4)
    frames = [frame(i % 2 == 0, rng) for i in range(10)]
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


def test_pretrain_models_needs_two_labelled_frames() -> None:
    rng = np.random.default_rng(6)
    one = frame(False, rng)
    with pytest.raises(ConfigError, match=">= 2 images with one label map each"):
        pretrain_models([one.image], [one.labels], 3, progress=False)
    with pytest.raises(ConfigError, match="got 2"):
        pretrain_models([one.image, one.image], [one.labels], 3, progress=False)
