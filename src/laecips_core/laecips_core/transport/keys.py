"""Zenoh key expressions of LAECIPS: one chunk per robot for inference (Algorithm 2's upload) and updates."""

from __future__ import annotations

import numpy as np

from laecips_core.errors import ConfigError
from laecips_core.robots import validate_robot_id

__all__ = [
    "infer_key",
    "update_key",
    "validate_robot_id",
    "weights_key",
]


def infer_key(robot_id: str) -> str:
    """Key of the cloud's inference queryable for one robot: ``laecips/<robot_id>/infer``."""
    return f"laecips/{validate_robot_id(robot_id)}/infer"


def update_key(robot_id: str) -> str:
    """Key of the model-update announcements for one robot: ``laecips/<robot_id>/model/update``."""
    return f"laecips/{validate_robot_id(robot_id)}/model/update"


def weights_key(robot_id: str, version: int) -> str:
    """Key serving one weights bundle: ``laecips/<robot_id>/model/weights/<version>``."""
    if not isinstance(version, int | np.integer) or isinstance(version, bool) or version < 0:
        raise ConfigError(f"weights version {version!r} must be an int >= 0")
    return f"laecips/{validate_robot_id(robot_id)}/model/weights/{version}"
