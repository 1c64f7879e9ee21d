"""Tests of the pre-training recipe (PretrainConfig) and the profiles that draw task-1 frames."""

from __future__ import annotations

from dataclasses import replace

import pytest
from laecips_core.errors import ConfigError
from laecips_core.training.profiles import (
    PRETRAIN_DATA_SEED,
    PROFILES,
    PretrainConfig,
    get_profile,
    profile_frames,
)

from laecips_core import benchmark as bench


@pytest.mark.parametrize(
    "bad",
    [
        {"num_classes": 1},
        {"epochs": 0},
        {"epochs": True},
        {"val_fraction": 0.0},
        {"val_fraction": 0.5, "miner_fraction": 0.45},
        {"hard_margin": 2.0},
        {"input_size": (4, 4)},
        {"lr": -1.0},
    ],
)
def test_config_validation(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PretrainConfig(**{"num_classes": 3, **bad})  # type: ignore[arg-type]


def test_config_normalises_sizes_and_maps_each_stage_to_a_trainer_config() -> None:
    cfg = PretrainConfig(num_classes=3, input_size=[24, 32], lvm_kwargs=[(1, "x")], seed=4)  # type: ignore[arg-type]
    assert cfg.input_size == (24, 32) and cfg.lvm_kwargs == (("1", "x"),)
    stage = cfg.trainer(0.5, 3)
    assert (stage.lr, stage.epochs, stage.batch_size, stage.seed) == (0.5, 3, 8, 4)
    assert stage.input_size == (24, 32)
    doc = cfg.to_json()
    assert doc["input_size"] == [24, 32] and doc["num_classes"] == 3 and doc["lvm_kwargs"] == [["1", "x"]]


def test_profiles_and_aliases() -> None:
    assert set(PROFILES) == {"default", "demo", "eval", "test"}
    default = get_profile("default")
    assert get_profile("demo") == default == get_profile("eval") and default.name == "default"
    assert default.eval_frames_per_task == 8 and default.benchmark["width"] == 320
    test = get_profile("test")
    assert test.name == "test" and test.pretrain.edge_model == "tiny_fcn" and test.pretrain.frames == 64
    assert not test.pretrain.pretrained_backbone and test.pretrain.num_classes == len(bench.CLASSES)
    assert test.benchmark["seed"] == PRETRAIN_DATA_SEED != bench.BenchmarkConfig().seed
    with pytest.raises(ConfigError, match="unknown pre-training profile 'huge'"):
        get_profile("huge")


def test_profile_frames_are_task_one_then_held_out_frames_of_every_task() -> None:
    base = get_profile("test")
    prof = replace(base, pretrain=replace(base.pretrain, frames=3), eval_frames_per_task=1)
    train, evals, info = profile_frames(prof, progress=False)
    bcfg = bench.BenchmarkConfig(frames_per_task=4, **prof.benchmark)
    assert [fr.index for fr in train] == [0, 1, 2] and {fr.task_id for fr in train} == {0}
    assert [fr.index for fr in evals] == [3, 4, 8, 12, 16]  # task 1: after the training frames
    assert [fr.task_id for fr in evals] == list(range(bcfg.num_tasks))
    assert train[0].image.shape == (120, 160, 3) and train[0].labels.shape == (120, 160)
    assert info["eval_frames"] == 5 and info["benchmark"]["frames_per_task"] == 4
    assert info["benchmark"]["seed"] == PRETRAIN_DATA_SEED
    none, no_evals, _ = profile_frames(replace(prof, eval_frames_per_task=0), progress=False)
    assert len(none) == 3 and no_evals == []
