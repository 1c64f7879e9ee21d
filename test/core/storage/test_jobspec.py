"""Tests of storage.jobspec: the training job's JSON spec (round trip, validation, TrainerConfig)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from laecips_core.errors import ConfigError
from laecips_core.storage.jobspec import JobSpec, TrainerConfig


def _spec(**changes: object) -> JobSpec:
    fields: dict[str, object] = {
        "robot_id": "robot1",
        "replay_path": "/tmp/replay/robot1.sqlite",
        "store_dir": "/tmp/weights/robot1",
        "reports_dir": "/tmp/weights/robot1/reports",
        "trainer": {"epochs": 1, "lr": 0.01, "input_size": [32, 48]},
    }
    fields.update(changes)
    return JobSpec(**fields)  # type: ignore[arg-type]


def _json(**changes: object) -> str:
    data = json.loads(_spec().to_json())
    data.update(changes)
    return json.dumps(data)


def test_json_round_trip_keeps_every_field() -> None:
    spec = _spec(max_samples=7, validation_bag="/bags/val", progress_path="/tmp/progress.json")
    text = spec.to_json()
    assert json.loads(text)["trainer"] == {"epochs": 1, "lr": 0.01, "input_size": [32, 48]}
    assert JobSpec.from_json(text) == spec
    defaults = JobSpec.from_json(_spec().to_json())
    assert (defaults.max_samples, defaults.validation_bag, defaults.progress_path) == (1000, "", "")


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _spec().robot_id = "robot2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid"),
        ("[1, 2]", "not valid"),
        (_json(bogus=1), "not valid"),
        (json.dumps({"robot_id": "robot1"}), "not valid"),  # required fields missing
        (_json(robot_id="a/b"), "robot id"),
        (_json(robot_id=""), "robot id"),
        (_json(max_samples=1), "max_samples"),
        (_json(max_samples="50"), "max_samples"),
    ],
)
def test_from_json_rejects_bad_specs_with_config_error(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        JobSpec.from_json(text)


def test_trainer_config_builds_a_validated_trainer_config() -> None:
    cfg = _spec().trainer_config()
    assert isinstance(cfg, TrainerConfig)
    assert (cfg.epochs, cfg.lr, cfg.input_size) == (1, 0.01, (32, 48))  # the JSON list became a tuple
    assert cfg.batch_size == TrainerConfig().batch_size  # fields not given keep TrainerConfig's defaults
    assert _spec(trainer={}).trainer_config() == TrainerConfig()


def test_trainer_config_names_unknown_and_bad_fields() -> None:
    with pytest.raises(ConfigError, match="TrainerConfig"):
        bogus = json.dumps({**json.loads(_spec().to_json()), "trainer": {"bogus": 1}})
        JobSpec.from_json(bogus).trainer_config()
    with pytest.raises(ConfigError, match="lr"):
        _spec(trainer={"lr": -1.0}).trainer_config()
    with pytest.raises(ConfigError, match="input_size"):
        _spec(trainer={"input_size": [32]}).trainer_config()


@pytest.mark.parametrize("input_size", [["x", 32], 32])
def test_trainer_config_rejects_a_malformed_input_size_with_config_error(input_size: object) -> None:
    with pytest.raises(ConfigError, match="input_size"):
        _spec(trainer={"input_size": input_size}).trainer_config()
