"""The miners as the evaluation runs them: by name, the zero-cost NoMiner, Eq. 14's stand-in h, the timer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo import mining
from laecips_core.errors import ConfigError
from laecips_core.evaluation.miners import NoMiner, UnusedMiner, miner_for, timed


def test_miner_for_by_name():
    h = mining.MinerNet(3)
    assert isinstance(miner_for("neural", 3, h), mining.NeuralMiner)
    assert not isinstance(miner_for("mess", 3, None), mining.NeuralMiner)
    with pytest.raises(ConfigError, match="needs a MinerNet h"):
        miner_for("neural", 3, None)


def test_no_miner_and_unused_miner_shapes():
    assert NoMiner().confidence(np.zeros((3, 4, 4))).tolist() == [1.0]
    assert NoMiner().confidence(torch.zeros(2, 3, 4, 4)).tolist() == [1.0, 1.0]
    h = UnusedMiner()
    out = h(torch.zeros(5, 3, 4, 4))
    assert out.shape == (5,) and torch.allclose(out, torch.full((5,), 0.5))
    assert sum(p.numel() for p in h.parameters()) == 1


def test_timed_returns_the_value_and_seconds():
    value, secs = timed(sum, [1, 2, 3])
    assert value == 6 and secs >= 0.0
