"""Robot ids: one chunk of every Zenoh key expression and one folder name of the cloud's stores."""

from __future__ import annotations

import re
from typing import Final

from laecips_core.errors import ConfigError

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
