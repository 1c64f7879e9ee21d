"""The cloud node's parameters without ROS: every bad value is refused, naming the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest
from laecips_core.errors import ConfigError
from laecips_core.services.cloud_config import CloudConfig


def test_cloud_config_names_the_bad_parameter(tmp_path: Path):
    base = CloudConfig(weights_dir=str(tmp_path), replay_dir=str(tmp_path), allow_unsigned_weights=True)
    for changes, match in (
        ({"robot_ids": ("a/b",)}, "robot id"),
        ({"robot_ids": ()}, "robot_ids"),
        ({"lvm": "sam2"}, "lvm"),
        ({"lvm_params": "[1]"}, "lvm_params"),
        ({"fusion_order": "random"}, "fusion_order"),
        ({"input_height": 64}, "input_width"),
        ({"workers": 0}, "workers"),
        ({"zenoh_listen": ("localhost:7447",)}, "endpoint"),
        ({"edge_model_path": str(tmp_path / "missing.safetensors")}, "edge_model.path"),
        ({"allow_unsigned_weights": False}, "trusted_public_key: set it to the trainer's .pub"),
        ({"max_pixels": 10}, "max_pixels"),
    ):
        cfg = CloudConfig(**{**base.__dict__, **changes})
        with pytest.raises(ConfigError, match=match):
            cfg.validate()
