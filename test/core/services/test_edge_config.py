"""The edge node's parameters without ROS: the key rule, defaults from the namespace and the bundle."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from bundle_helpers import write_tiny_bundle
from edge_helpers import M, bundle, edge_cfg
from laecips_core.errors import ConfigError
from laecips_core.services.edge_config import (
    EdgeConfig,
    class_names_for,
    resolve_defaults,
    robot_id_from_namespace,
)


def test_edge_refuses_to_start_without_a_key_unless_unsigned_weights_are_allowed():
    with pytest.raises(ConfigError, match="trusted_public_key: set it to the trainer's .pub"):
        edge_cfg(allow_unsigned_weights=False)
    assert edge_cfg(allow_unsigned_weights=True).allow_unsigned_weights


def test_defaults_follow_the_namespace_and_the_bundle(tmp_path: Path):
    """robot_id from the namespace, M and the class names from the bundle, a relative camera topic."""
    assert robot_id_from_namespace("/fleet/robot2") == "robot2" and robot_id_from_namespace("/") == "robot1"
    assert not EdgeConfig().image_topic.startswith("/")  # <namespace>/camera/image_raw, remappable
    names = [f"n{i}" for i in range(M)]
    named = write_tiny_bundle(tmp_path / "named.safetensors", 1, M, class_names=names)
    cfg = resolve_defaults(EdgeConfig(edge_model_name="tiny_fcn", edge_model_path=str(named)), "/robot4")
    assert (cfg.robot_id, cfg.num_classes) == ("robot4", M)
    assert class_names_for(cfg, named) == names
    anonymous = bundle(tmp_path / "anon.safetensors", 1, label=2)
    assert class_names_for(cfg, anonymous) == [f"class_{i}" for i in range(M)]
    assert class_names_for(replace(cfg, class_names=tuple("abcdef")), anonymous) == list("abcdef")
    with pytest.raises(ConfigError, match="num_classes 0 takes M from edge_model.path"):
        resolve_defaults(EdgeConfig(edge_model_path=str(tmp_path / "missing.safetensors")))
