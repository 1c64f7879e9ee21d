"""Tests of services.offload: newest-wins queue, bounded in-flight uploads, Algorithm 2 decisions."""

from __future__ import annotations

import random
import threading
import time

import pytest
from laecips_core.services.offload import (
    LatestQueue,
    UploadScheduler,
    classify_fallback,
    remaining_s,
    split_network,
    upload_decision,
)


def test_latest_queue_drops_the_oldest_when_full():
    q: LatestQueue[int] = LatestQueue(2)
    assert q.put(1) is None and q.put(2) is None
    assert q.put(3) == 1  # newest wins
    assert len(q) == 2
    assert q.get(0.01) == 2
    assert q.drain() == [3]
    assert q.get(0.01) is None and len(q) == 0


def test_upload_scheduler_bounds_in_flight_and_hands_pushed_out_jobs_to_on_drop():
    release = threading.Event()
    started: list[int] = []
    dropped: list[int] = []
    lock = threading.Lock()

    def handler(job: int) -> None:
        with lock:
            started.append(job)
        release.wait(5.0)

    scheduler: UploadScheduler[int] = UploadScheduler(2, handler, dropped.append, pending=1)
    try:
        for job in (0, 1):  # one at a time: a second waiting job would push the first out
            scheduler.submit(job)
            deadline = time.monotonic() + 5.0
            while scheduler.in_flight <= job and time.monotonic() < deadline:
                time.sleep(0.01)
        assert scheduler.in_flight == 2
        scheduler.submit(2)  # waits for a worker
        scheduler.submit(3)  # pushes 2 out
        assert dropped == [2]
        assert scheduler.max_seen_in_flight == 2
    finally:
        release.set()
        leftover = scheduler.close(timeout_s=5.0)
    assert sorted(started + leftover) == [0, 1, 3]
    assert scheduler.max_seen_in_flight <= 2 and scheduler.in_flight == 0


def test_upload_decision_hard_frames_always_easy_ones_by_exploration():
    rng = random.Random(0)
    assert upload_decision(0.5, 0.5, 0.0, rng) == (True, True)  # h(f(x)) <= delta is hard
    assert upload_decision(0.9, 0.5, 0.0, rng) == (False, False)
    assert upload_decision(0.9, 0.5, 1.0, rng) == (False, True)
    rng = random.Random(1)
    uploads = sum(upload_decision(0.9, 0.5, 0.25, rng)[1] for _ in range(2000))
    assert 400 < uploads < 600
    first, second = random.Random(7), random.Random(7)
    upload_decision(0.1, 0.5, 0.5, first)  # a hard frame draws nothing
    assert first.random() == second.random()


def test_deadline_and_network_split():
    assert remaining_s(2.0, 10.0, 11.5) == pytest.approx(0.5)
    assert remaining_s(2.0, 10.0, 12.5) < 0
    up, down = split_network(1.0, 0.4, 300, 100)
    assert up == pytest.approx(0.45) and down == pytest.approx(0.15)
    assert split_network(0.1, 0.4, 300, 100) == (0.0, 0.0)  # cloud clock ahead: no negative times
    assert split_network(1.0, 0.0, 0, 0) == (0.0, 1.0)


def test_classify_fallback():
    assert classify_fallback("timeout") == ("timeout", True)
    assert classify_fallback("unreachable") == ("unreachable", True)
    assert classify_fallback("dropped") == (None, False)
    assert classify_fallback("error") == (None, True)


def _wait(predicate: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return bool(predicate())  # type: ignore[operator]


def test_upload_scheduler_survives_a_raising_handler_and_restarts_a_dead_worker():
    handled: list[int] = []
    errors: list[tuple[int, str]] = []
    deaths: list[str] = []

    def handler(job: int) -> None:
        if job in (1, 2):
            raise ValueError(f"bad reply for job {job}")
        handled.append(job)

    def on_error(job: int, reason: str) -> None:
        errors.append((job, reason))
        if job == 2:  # the error path fails too: this kills the worker thread
            raise RuntimeError("fallback publisher broke")

    scheduler: UploadScheduler[int] = UploadScheduler(
        1, handler, lambda job: None, on_error=on_error, on_death=lambda w, r: deaths.append(r)
    )
    try:
        for job in (1, 2, 3):
            scheduler.submit(job)
            assert _wait(lambda j=job: j in handled or j in [e[0] for e in errors])
        assert _wait(lambda: 3 in handled)  # the one worker was restarted and took job 3
        assert [job for job, _ in errors] == [1, 2] and "ValueError: bad reply for job 1" in errors[0][1]
        assert scheduler.handler_errors == 2 and scheduler.in_flight == 0
        assert len(deaths) == 1 and "fallback publisher broke" in deaths[0]
        assert scheduler.health().restarts == 1 and scheduler.health().alive == 1
    finally:
        assert scheduler.close(timeout_s=5.0) == []


def test_tracked_upload_decision_uploads_at_the_target_rate_whatever_h_says():
    """A new recording where h says ~0.999 on every frame still gets uploads near the target."""
    import random

    import numpy as np
    from laecips_core.algo.thresholds import TrackingDelta
    from laecips_core.services.offload import tracked_upload_decision

    rng = np.random.default_rng(1)
    confidences = 0.998 + 0.001 * rng.random(600)  # a fixed delta of 0.5 would upload none of these
    tracker = TrackingDelta(0.35, window=50)
    draws = random.Random(0)
    decisions = [tracked_upload_decision(c, tracker, 0.0, draws) for c in confidences]
    rate = np.mean([uploaded for _, uploaded, _ in decisions])
    assert abs(rate - 0.35) < 0.05
    assert np.isnan(decisions[0][2]) and all(np.isfinite(d) for _, _, d in decisions[1:])


def test_tracked_upload_decision_keeps_the_target_when_h_gives_every_frame_the_same_confidence():
    """A saturated h (0.999 on every frame): ties at delta are shared out instead of uploading all."""
    import random

    import numpy as np
    from laecips_core.algo.thresholds import TrackingDelta
    from laecips_core.services.offload import tracked_upload_decision

    tracker = TrackingDelta(0.35, window=50)
    draws = random.Random(3)
    decisions = [tracked_upload_decision(0.999, tracker, 0.02, draws) for _ in range(800)]
    rate = np.mean([uploaded for _, uploaded, _ in decisions])
    assert abs(rate - (0.35 + 0.02 * 0.65)) < 0.05  # TrackingDelta.decide alone would upload all
    lowered = TrackingDelta(0.35, window=50)
    low = [tracked_upload_decision(0.999, lowered, 0.0, draws, target_rate=0.1)[1] for _ in range(800)]
    assert abs(np.mean(low) - 0.1) < 0.04


def test_upload_budget_backs_off_to_what_the_workers_can_finish():
    """Eq. 10 with measured delays: a cloud slower than the camera lowers the rate; a fast one does not."""
    import math

    from laecips_core.services.offload import BUDGET_MARGIN, UploadBudget

    budget = UploadBudget(max_in_flight=2)
    assert budget.rate(0.35) == 0.35  # nothing measured yet
    for i in range(20):
        budget.frame(i * 0.1, edge_s=0.02)  # 10 Hz camera
    budget.upload_done(0.05)  # a fast cloud: 2 workers x 0.1 s / 0.05 s = 4 uploads per frame possible
    assert budget.rate(0.35) == 0.35
    for _ in range(40):
        budget.upload_done(2.0)  # each upload now holds a worker for 2 s: 2 * 0.1 / 2 = 0.1 per frame
    state = budget.state(0.35)
    assert math.isclose(state.capacity, 0.1, rel_tol=0.01)
    assert math.isclose(state.rate, BUDGET_MARGIN * 0.1, rel_tol=0.01)
    assert budget.rate(0.35, exploration_rate=0.02) < state.rate  # exploration uploads use workers too
    assert math.isclose(budget.rate(1.0, latency_budget_s=0.12), (0.12 - 0.02) / 2.0, rel_tol=0.01)
    for _ in range(40):
        budget.upload_done(0.05)  # the cloud recovers: the operator's target again
    assert budget.rate(0.35) == 0.35
    with pytest.raises(Exception, match="max_in_flight"):
        UploadBudget(0)


def test_upload_budget_backs_off_while_a_first_upload_is_still_running():
    """No answer yet, but one upload has held its worker for 0.3 s at a 10 Hz camera: back off already."""
    from laecips_core.services.offload import UploadBudget

    budget = UploadBudget(max_in_flight=1)
    for i in range(5):
        budget.frame(i * 0.1)
    token = budget.begin()
    assert budget.rate(0.35) == 0.35  # just started
    time.sleep(0.3)
    assert budget.rate(0.35) < 0.35 * 0.9  # 1 worker x 0.1 s / >= 0.3 s -> at most ~0.27 per frame
    budget.end(token, record=False)
    assert budget.rate(0.35) == 0.35  # not recorded (e.g. nothing was sent): no measurement left
