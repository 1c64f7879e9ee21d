"""delta per miner from a CUR or latency budget (Eq. 2, Eq. 9/10), and the Fig. 8 sweep."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.algo import thresholds
from laecips_core.errors import ConfigError
from laecips_core.evaluation.calibration import choose_deltas, starting_confidences, sweep_curves
from laecips_core.evaluation.run_config import EvalConfig
from laecips_core.evaluation.sources import StreamSource
from laecips_core.evaluation.start_model import StartModel

M = 3  # the conftest stream's classes


def test_sweep_curves_end_points_and_oracle():
    rng = np.random.default_rng(1)
    edge = rng.uniform(0.2, 0.6, 50)
    gain = rng.uniform(-0.05, 0.3, 50)
    base = {
        "edge_miou": edge,
        "fused_miou": edge + gain,
        "conf_neural": -gain + rng.normal(0, 0.01, 50),  # nearly perfect ranking
        "conf_spp": rng.uniform(0, 1, 50),  # random ranking
    }
    curves = sweep_curves(base, ["neural", "spp"], points=21)
    for name in ("neural", "spp"):
        c = curves[name]
        assert c["cur"][0] == 0.0 and c["miou"][0] == pytest.approx(edge.mean())
        assert c["cur"][-1] == 1.0 and c["miou"][-1] == pytest.approx((edge + gain).mean())
        assert np.all(np.diff(c["cur"]) >= 0)
    assert curves["ORACLE"]["auc"] >= curves["neural"]["auc"] >= curves["spp"]["auc"]
    assert sweep_curves({"edge_miou": np.full(3, np.nan), "fused_miou": np.full(3, np.nan)}, [], 5) == {}


@pytest.fixture()
def start(start_models):
    f0, h0 = start_models
    return StartModel(f0, h0, M, ["r", "b", "g"], [], {"kind": "test"})


def test_choose_deltas_puts_the_budget_share_of_calibration_frames_below_delta(
    start, mini_stream, halves_fuser
):
    frames = mini_stream(8)
    stream = StreamSource(lambda: iter(frames), 8, None, {"kind": "test"})
    conf = starting_confidences(start, frames, ["neural", "mess"])
    assert set(conf) == {"neural", "mess"} and conf["neural"].shape == (8,)
    cfg = EvalConfig(cur_budget=0.25, calibrate_on="calibration", progress=False)
    deltas, info, seen = choose_deltas(cfg, start, stream, ["neural", "mess"], halves_fuser)
    # No held-out frames with these weights: calibrated on the stream, with a note.
    assert info["calibrate_on"] == "stream" and info["notes"] and info["frames"] == 8
    for name in ("neural", "mess"):
        np.testing.assert_array_equal(seen[name], conf[name])
        assert info["calibration_cur"][name] == pytest.approx(np.mean(conf[name] <= deltas[name]))
        assert deltas[name] == thresholds.threshold_for_cur(conf[name], 0.25)
    with pytest.raises(ConfigError, match="latency budget needs calibration frames"):
        choose_deltas(EvalConfig(latency_budget_s=0.1, progress=False), start, stream, ["mess"], halves_fuser)
