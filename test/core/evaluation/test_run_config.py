"""EvalConfig, quick_config and the link model of Eq. 27."""

from __future__ import annotations

import pytest
from laecips_core.errors import ConfigError
from laecips_core.evaluation.run_config import (
    MINER_OF,
    UPDATING,
    EvalConfig,
    LinkModel,
    config_dict,
    quick_config,
)


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown method"):
        EvalConfig(methods=("LAECIPS", "FOO"))
    with pytest.raises(ConfigError, match="bandwidth"):
        EvalConfig(bandwidth_mbps=0.0)
    with pytest.raises(ConfigError, match="task boundaries apply to a bag"):
        EvalConfig(task_boundaries=(1.0,))
    cfg = EvalConfig.from_options(quick=True, epochs=2, cur_budget=None, methods=None)
    assert cfg.quick and cfg.trainer.epochs == 2 and cfg.weights_profile == "test"
    assert cfg.cur_budget == 0.35 and cfg.methods == EvalConfig().methods
    with pytest.raises(ConfigError, match="unknown evaluation option"):
        EvalConfig.from_options(colour="red")


def test_from_options_routes_the_checkpoint_and_keeps_quick_defaults():
    cfg = EvalConfig.from_options(
        quick=True, sam_checkpoint="/w/sam.pth", bag="/b", task_boundaries=[2.0, 4.0]
    )
    assert cfg.lvm_kwargs == {"checkpoint": "/w/sam.pth"} and cfg.task_boundaries == (2.0, 4.0)
    assert (cfg.width, cfg.height, cfg.frames_per_task) == (quick_config().width, quick_config().height, 4)
    assert cfg.trainer == quick_config().trainer  # no trainer option given: the quick trainer stays


def test_link_model_upload_and_download_seconds():
    link = LinkModel(bandwidth_mbps=4.0, rtt_ms=10.0)
    assert link.upload_s(500_000) == pytest.approx(1.0 + 0.01)  # 4 Mbit at 4 Mbit/s + 10 ms
    assert link.download_s(500_000) == pytest.approx(1.0)  # the RTT is paid once, on the upload
    with pytest.raises(ConfigError, match="RTT"):
        LinkModel(rtt_ms=-1.0)
    assert EvalConfig(bandwidth_mbps=2.0, rtt_ms=5.0).link == LinkModel(2.0, 5.0)


def test_method_table_and_config_dict():
    assert set(UPDATING) <= set(MINER_OF) and "DCSB" in MINER_OF and "DCSB" not in UPDATING
    d = config_dict(quick_config())
    assert isinstance(d["trainer"], dict) and d["trainer"]["maxsize"] == 3 and d["quick"] is True
