"""Tests of services.params: parameter specs, range/choice checks, runtime changes, Zenoh fields."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from laecips_core.errors import ConfigError
from laecips_core.services.params import (
    ParamSpec,
    check_choice,
    check_range,
    check_ranges,
    check_robot_ids,
    check_zenoh_fields,
    field_changes,
    zenoh_from_fields,
)

SPECS = (
    ParamSpec("threshold", "threshold", "delta", 0.0, 1.0, mutable=True),
    ParamSpec("workers", "workers", "threads", 1, 8),
    ParamSpec("edge_model.path", "edge_model_path", "bundle", mutable=True),
)


@dataclass(frozen=True)
class _Config:
    threshold: float = 0.5
    workers: int = 1
    edge_model_path: str = ""


def test_check_range_refuses_out_of_range_non_finite_and_bool():
    check_range("threshold", 0.0, 0.0, 1.0)
    check_range("threshold", 1, 0.0, 1.0)
    for value, match in ((1.5, "outside"), (math.nan, "finite"), (math.inf, "finite"), (True, "finite")):
        with pytest.raises(ConfigError, match=match):
            check_range("threshold", value, 0.0, 1.0)
    with pytest.raises(ConfigError, match="threshold"):
        check_range("threshold", "0.5", 0.0, 1.0)


def test_check_ranges_checks_ranged_specs_and_honours_fields():
    assert SPECS[0].ranged and not SPECS[2].ranged
    check_ranges(_Config(), SPECS)
    with pytest.raises(ConfigError, match="workers"):
        check_ranges(_Config(workers=0), SPECS)
    check_ranges(_Config(workers=0), SPECS, fields={"threshold"})  # only the changed fields
    with pytest.raises(ConfigError, match="threshold"):
        check_ranges(_Config(threshold=2.0), SPECS, fields={"threshold"})


def test_check_choice_and_robot_ids():
    check_choice("miner", "mess", ("neural", "mess"))
    with pytest.raises(ConfigError, match=r"miner='x' is not one of \['neural', 'mess'\]"):
        check_choice("miner", "x", ("neural", "mess"))
    check_robot_ids(("robot1", "robot_2"))
    for ids, match in (((), "non-empty"), (("a", "a"), "distinct"), (("a/b",), "robot id")):
        with pytest.raises(ConfigError, match=match):
            check_robot_ids(ids)


def test_field_changes_maps_names_to_fields_and_refuses_read_only():
    changes = field_changes([("threshold", 0.3), ("edge_model.path", "b.safetensors"), ("other", 1)], SPECS)
    assert changes == {"threshold": 0.3, "edge_model_path": "b.safetensors"}
    with pytest.raises(ConfigError, match="workers is read-only: restart the node"):
        field_changes([("threshold", 0.3), ("workers", 2)], SPECS)


def test_zenoh_fields(tmp_path: Path):
    check_zenoh_fields("", "", ["tcp/127.0.0.1:7447"], [])
    config = zenoh_from_fields("", "peer", ["tcp/127.0.0.1:7447"], ["tcp/127.0.0.1:7448"])
    assert "7447" in str(config.get_json("listen/endpoints"))
    assert "7448" in str(config.get_json("connect/endpoints"))
    assert "false" in str(config.get_json("scouting/multicast/enabled")).lower()
    with pytest.raises(ConfigError, match="does not exist"):
        check_zenoh_fields(str(tmp_path / "missing.json5"), "", (), ())
    with pytest.raises(ConfigError, match="zenoh_mode"):
        check_zenoh_fields("", "router", (), (), modes=("", "peer", "client"))
    with pytest.raises(ConfigError, match="endpoint"):
        check_zenoh_fields("", "", ("localhost:7447",), ())
