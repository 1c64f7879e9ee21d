"""A bounded queue per key (robot) served round-robin, so one robot's flood cannot starve another."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

from laecips_core.errors import ConfigError

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-key FIFO queues of at most ``per_key`` items each, taken from in round-robin order over the keys.

    A robot that floods fills only its own queue (further puts raise queue.Full: the cloud answers it
    "busy"); a robot with one waiting request is served after at most one request of every other robot.
    Thread-safe.

    Args:
        keys: The keys (robot ids), in the order the round-robin visits them.
        per_key: Most items waiting per key (>= 1).
    """

    def __init__(self, keys: Sequence[str], per_key: int) -> None:
        if isinstance(per_key, bool) or not isinstance(per_key, int) or per_key < 1:
            raise ConfigError(f"per_key must be an int >= 1, got {per_key!r}")
        if not keys or len(set(keys)) != len(keys):
            raise ConfigError(f"FairQueue needs distinct keys, got {list(keys)!r}")
        self.per_key = per_key
        self._keys = tuple(keys)
        self._queues: dict[str, deque[T]] = {key: deque() for key in self._keys}
        self._next = 0
        self._ready = threading.Condition()

    def put_nowait(self, key: str, item: T) -> None:
        """Append item to key's queue.

        Raises:
            queue.Full: key's queue holds per_key items already.
            KeyError: unknown key.
        """
        with self._ready:
            waiting = self._queues[key]
            if len(waiting) >= self.per_key:
                raise queue.Full
            waiting.append(item)
            self._ready.notify()

    def _take(self) -> tuple[str, T] | None:
        count = len(self._keys)
        for step in range(count):
            index = (self._next + step) % count
            waiting = self._queues[self._keys[index]]
            if waiting:
                self._next = (index + 1) % count
                return self._keys[index], waiting.popleft()
        return None

    def get(self, timeout: float) -> tuple[str, T]:
        """The oldest item of the next key (round-robin) that has one, waiting up to timeout seconds.

        Raises:
            queue.Empty: nothing arrived in time.
        """
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                taken = self._take()
                if taken is not None:
                    return taken
                left = deadline - time.monotonic()
                if left <= 0:
                    raise queue.Empty
                self._ready.wait(left)

    def get_nowait(self) -> tuple[str, T]:
        """Like get() without waiting (raises queue.Empty)."""
        with self._ready:
            taken = self._take()
        if taken is None:
            raise queue.Empty
        return taken

    def qsize(self, key: str | None = None) -> int:
        """Items waiting for key, or in all queues."""
        with self._ready:
            if key is not None:
                return len(self._queues[key])
            return sum(len(q) for q in self._queues.values())
