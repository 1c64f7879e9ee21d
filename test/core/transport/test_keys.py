"""transport.keys: the agreed key layout and robot-id checks."""

from __future__ import annotations

import pytest
from laecips_core.errors import ConfigError
from laecips_core.transport import (
    infer_key,
    update_key,
    weights_key,
)


def test_keys_follow_the_agreed_layout_and_refuse_bad_robot_ids():
    assert infer_key("robot_1-a") == "laecips/robot_1-a/infer"
    assert update_key("r2") == "laecips/r2/model/update"
    assert weights_key("r2", 4) == "laecips/r2/model/weights/4"
    for bad in ("", "a/b", "*", "**", "a b", "rob$ot", "x" * 65):
        with pytest.raises(ConfigError, match="robot id"):
            infer_key(bad)
    with pytest.raises(ConfigError, match="version"):
        weights_key("r2", -1)
