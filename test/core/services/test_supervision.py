"""Tests of laecips_core.services.supervision: a worker loop that dies is restarted, counted and reported."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from laecips_core.errors import ConfigError
from laecips_core.services.supervision import MAX_REASON_CHARS, Supervisor, WorkerHealth, describe


class _Fatal(BaseException):
    """Not an Exception: the kind of error a worker loop's own `except Exception` does not stop."""


def _wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _raise_here() -> None:
    raise KeyError("frame 7")


def test_describe_names_the_type_the_message_and_where() -> None:
    try:
        _raise_here()
    except KeyError as err:
        reason = describe(err)
    assert reason.startswith("KeyError: 'frame 7' (at test_supervision.py:")
    assert reason.endswith(" in _raise_here)")
    assert describe(ValueError("never raised")) == "ValueError: never raised"  # no traceback: no place
    assert len(describe(RuntimeError("x" * 2000))) == MAX_REASON_CHARS


def test_supervisor_restarts_a_dead_worker_and_says_why():
    stop = threading.Event()
    runs: list[int] = []
    deaths: list[tuple[str, str]] = []

    def body() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RecursionError("maximum recursion depth exceeded")
        if len(runs) == 2:
            raise _Fatal("not even an Exception")
        stop.wait(10.0)  # the third run lives until stopped

    supervisor = Supervisor("test", on_death=lambda name, reason: deaths.append((name, reason)))
    supervisor.spawn("loop", body)
    supervisor.spawn("quiet", lambda: None)  # returns at once: a normal end, never restarted
    try:
        assert _wait(lambda: len(runs) == 3 and supervisor.health().alive == 1)
        health = supervisor.health()
        assert health.restarts == 2 and health.workers == ("loop", "quiet")
        assert health.last_death.startswith("loop: _Fatal: not even an Exception")
        assert [name for name, _ in deaths] == ["loop", "loop"]
        assert "RecursionError: maximum recursion depth exceeded" in deaths[0][1]
        assert "test_supervision.py" in deaths[0][1]  # where it died
    finally:
        stop.set()
        assert supervisor.stop(5.0)
    assert supervisor.health().alive == 0 and len(runs) == 3


def test_health_before_any_worker_and_thread_names() -> None:
    supervisor = Supervisor("edge")
    assert supervisor.health() == WorkerHealth()
    stop = threading.Event()
    names: list[str] = []

    def body() -> None:
        names.append(threading.current_thread().name)
        stop.wait(10.0)

    supervisor.spawn("upload", body)
    try:
        assert _wait(lambda: bool(names))
        assert names == ["edge-upload"]
        assert supervisor.health() == WorkerHealth(("upload",), 1, 0, "")
        assert threading.current_thread().name not in names
    finally:
        stop.set()
        assert supervisor.stop(5.0)


def test_a_second_worker_of_the_same_name_is_refused() -> None:
    stop = threading.Event()
    supervisor = Supervisor("dup")
    supervisor.spawn("w", lambda: stop.wait(10.0) and None)
    try:
        with pytest.raises(ConfigError, match="'w' exists already"):
            supervisor.spawn("w", lambda: None)
        assert supervisor.health().workers == ("w",)
    finally:
        stop.set()
        assert supervisor.stop(5.0)


def test_check_on_demand_backs_off_then_restarts_and_a_raising_on_death_is_ignored() -> None:
    """With the monitor asleep (period 1 h), check() alone records the death, waits out the 0.1 s back-off
    and restarts; on_death raising does not stop that."""
    stop = threading.Event()
    runs: list[int] = []
    reported: list[str] = []

    def on_death(name: str, reason: str) -> None:
        reported.append(f"{name}: {reason}")
        raise RuntimeError("the diagnostics publisher is gone")

    def body() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise OSError("socket closed")
        stop.wait(10.0)

    supervisor = Supervisor("manual", on_death=on_death, period_s=3600.0)
    supervisor.spawn("net", body)
    try:
        assert _wait(lambda: supervisor.health().alive == 0)  # the first run died
        assert supervisor.check() == []  # recorded, but the back-off has not passed
        assert supervisor.health().restarts == 1 and len(reported) == 1
        assert reported[0].startswith("net: OSError: socket closed")
        restarted: list[str] = []
        assert _wait(lambda: bool(restarted.extend(supervisor.check()) or restarted))
        assert restarted == ["net"]
        assert _wait(lambda: len(runs) == 2 and supervisor.health().alive == 1)
        assert supervisor.check() == [] and supervisor.health().restarts == 1  # alive: nothing to do
        assert len(reported) == 1  # each death reported once
    finally:
        stop.set()
        assert supervisor.stop(5.0)


def test_no_restart_after_stop() -> None:
    release = threading.Event()
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        release.wait(10.0)
        raise RuntimeError("died while stopping")

    supervisor = Supervisor("stopping")
    supervisor.spawn("w", body)
    assert _wait(lambda: len(runs) == 1)
    release.set()
    assert supervisor.stop(5.0)
    supervisor.check()
    time.sleep(0.3)  # longer than the first back-off: a restart would have happened by now
    assert supervisor.check() == [] and len(runs) == 1
    health = supervisor.health()
    assert health.alive == 0 and health.last_death.startswith("w: RuntimeError: died while stopping")
