"""Tests of services.fairqueue: per-robot bounded FIFOs served round-robin (no robot starves another)."""

from __future__ import annotations

import queue
import threading

import pytest
from laecips_core.errors import ConfigError
from laecips_core.services.fairqueue import FairQueue


def test_fair_queue_serves_keys_round_robin_and_bounds_each_key():
    fair: FairQueue[int] = FairQueue(("a", "b"), per_key=3)
    for i in range(3):
        fair.put_nowait("a", i)
    with pytest.raises(queue.Full):
        fair.put_nowait("a", 99)
    fair.put_nowait("b", 100)  # a's full queue does not block b
    assert [fair.get(0.1) for _ in range(4)] == [("a", 0), ("b", 100), ("a", 1), ("a", 2)]
    with pytest.raises(queue.Empty):
        fair.get(0.05)


def test_round_robin_goes_on_after_the_last_key_served_and_skips_empty_keys() -> None:
    fair: FairQueue[str] = FairQueue(("r1", "r2", "r3"), per_key=2)
    fair.put_nowait("r1", "a")
    assert fair.get_nowait() == ("r1", "a")
    for key in ("r1", "r3"):  # r2 has nothing; r1 was served last, so r3 comes first
        fair.put_nowait(key, key + "-x")
    assert fair.get_nowait() == ("r3", "r3-x")
    assert fair.get_nowait() == ("r1", "r1-x")
    with pytest.raises(queue.Empty):
        fair.get_nowait()


def test_a_flooding_key_waits_behind_one_item_of_every_other_key() -> None:
    keys = ("flood", "b", "c")
    fair: FairQueue[int] = FairQueue(keys, per_key=5)
    for i in range(5):
        fair.put_nowait("flood", i)
    fair.put_nowait("b", 10)
    fair.put_nowait("c", 20)
    served = [fair.get_nowait() for _ in range(7)]
    assert served[:3] == [("flood", 0), ("b", 10), ("c", 20)]
    assert [item for key, item in served if key == "flood"] == [0, 1, 2, 3, 4]  # FIFO per key


def test_qsize_counts_per_key_and_in_all_and_unknown_keys_raise() -> None:
    fair: FairQueue[int] = FairQueue(("a", "b"), per_key=2)
    fair.put_nowait("a", 1)
    fair.put_nowait("a", 2)
    fair.put_nowait("b", 3)
    assert (fair.qsize("a"), fair.qsize("b"), fair.qsize()) == (2, 1, 3)
    with pytest.raises(KeyError):
        fair.put_nowait("robot9", 4)
    with pytest.raises(KeyError):
        fair.qsize("robot9")
    fair.get_nowait()
    assert fair.qsize() == 2
    fair.put_nowait("a", 5)  # room again after a take
    assert fair.qsize("a") == 2


@pytest.mark.parametrize(
    ("keys", "per_key", "match"),
    [
        (("a",), 0, "per_key"),
        (("a",), True, "per_key"),
        (("a",), 1.5, "per_key"),
        ((), 1, "distinct keys"),
        (("a", "a"), 1, "distinct keys"),
    ],
)
def test_bad_arguments_raise_config_error(keys: tuple[str, ...], per_key: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FairQueue(keys, per_key)  # type: ignore[arg-type]


def test_get_wakes_up_when_another_thread_puts() -> None:
    fair: FairQueue[int] = FairQueue(("a", "b"), per_key=1)
    got: list[tuple[str, int]] = []
    taker = threading.Thread(target=lambda: got.append(fair.get(10.0)), daemon=True)
    taker.start()
    fair.put_nowait("b", 7)
    taker.join(10.0)
    assert not taker.is_alive() and got == [("b", 7)]
