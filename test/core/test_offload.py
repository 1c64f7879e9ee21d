"""Tests of laecips_core.offload: newest-wins queue, bounded in-flight uploads, Algorithm 2 decisions."""

from __future__ import annotations

import random
import threading
import time

import pytest
from laecips_core.offload import (
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
