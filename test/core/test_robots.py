"""Tests of robots: a robot id is one key chunk and one folder name, so only [A-Za-z0-9_-]{1,64} passes."""

from __future__ import annotations

import pytest
from laecips_core.errors import ConfigError
from laecips_core.robots import validate_robot_id


@pytest.mark.parametrize("good", ["r", "robot_1-a", "X" * 64])
def test_a_plain_robot_id_is_returned_unchanged(good: str) -> None:
    assert validate_robot_id(good) == good


@pytest.mark.parametrize("bad", ["", "a/b", "*", "**", "a b", "rob$ot", "x" * 65, "../up", "a\x00b", 7])
def test_an_id_that_would_change_a_key_or_a_path_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="robot id"):
        validate_robot_id(bad)  # type: ignore[arg-type]
