"""Zenoh key expressions of LAECIPS: one chunk per robot for inference (Algorithm 2's upload) and updates."""

from __future__ import annotations

import re
from typing import Final

import numpy as np

from laecips_core.errors import ConfigError

__all__ = [
    "infer_key",
    "update_key",
    "validate_robot_id",
    "weights_key",
]

_ROBOT_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def validate_robot_id(robot_id: str) -> str:
    """Check a robot id ([A-Za-z0-9_-], 1-64 chars): it becomes one chunk of every key expression.

    Raises:
        ConfigError: the id would change the meaning of the keys (slash, wildcard, empty...).
    """
    if not isinstance(robot_id, str) or not _ROBOT_ID_RE.fullmatch(robot_id):
        raise ConfigError(
            f"robot id {robot_id!r} must be 1-64 characters of [A-Za-z0-9_-] (it is a key chunk)"
        )
    return robot_id


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
