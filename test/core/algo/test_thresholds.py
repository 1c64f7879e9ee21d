"""Tests of the upload threshold delta (Eq. 2, Eq. 9/10): fixed, tracking and latency-bounded."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.algo.thresholds import TrackingDelta, threshold_for_cur, threshold_for_latency
from laecips_core.errors import ConfigError


def test_threshold_for_cur_uploads_the_requested_fraction() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(200)
    for target in (0.0, 0.1, 0.35, 0.5, 1.0):
        delta = threshold_for_cur(conf, target)
        assert np.mean(conf <= delta) == pytest.approx(target)
    assert threshold_for_cur([0.1, 0.2, 0.3, 0.4], 0.5) == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="target_cur"):
        threshold_for_cur(conf, 1.5)
    with pytest.raises(ConfigError, match="non-empty"):
        threshold_for_cur([], 0.5)


def test_threshold_for_latency_follows_eq9() -> None:
    conf = np.linspace(0.0, 1.0, 10)
    d1, d0 = 1.0, 5.0
    delta = threshold_for_latency(conf, d1, d0, 3.0)  # half the frames may go to the cloud
    uploaded = np.mean(conf <= delta)
    assert uploaded == pytest.approx(0.5)
    assert uploaded * d0 + (1 - uploaded) * d1 <= 3.0
    assert np.mean(conf <= threshold_for_latency(conf, d1, d0, 2.0)) == pytest.approx(0.2)
    assert np.mean(conf <= threshold_for_latency(conf, d1, d0, 1.3)) == pytest.approx(0.0)
    assert np.mean(conf <= threshold_for_latency(conf, d1, d0, 9.0)) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="edge delay"):
        threshold_for_latency(conf, d1, d0, 0.5)
    with pytest.raises(ConfigError, match="must exceed d_edge"):
        threshold_for_latency(conf, 2.0, 1.0, 3.0)


def test_tracking_delta_keeps_the_upload_rate_through_a_model_update():
    rng = np.random.default_rng(0)
    before = rng.uniform(0.2, 0.8, 400)  # the old h's confidences
    after = 0.99 + 0.009 * rng.random(400)  # Eq. 14 pushed every confidence of the new h toward 1
    tracker = TrackingDelta(0.35, window=50, initial=before[:50])
    rate_before = np.mean([tracker.decide(c) for c in before])
    tracker.reset()  # the update arrives
    rate_after = np.mean([tracker.decide(c) for c in after])
    assert abs(rate_before - 0.35) < 0.06 and abs(rate_after - 0.35) < 0.06
    # Without the reset the old window's delta (~0.4) flags nothing for the new h: the loop switches off.
    stale = TrackingDelta(0.35, window=400, initial=before)
    assert np.mean([stale.decide(c) for c in after[:100]]) < 0.05


def test_tracking_delta_validates_and_starts_hard():
    with pytest.raises(ConfigError):
        TrackingDelta(1.5)
    with pytest.raises(ConfigError):
        TrackingDelta(0.3, window=0)
    tracker = TrackingDelta(0.3, window=5)
    assert np.isnan(tracker.delta) and tracker.decide(0.9)  # nothing known yet: upload
    assert not tracker.decide(0.95) or tracker.delta <= 0.95
