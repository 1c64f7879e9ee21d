"""Worker threads that never stay dead: a supervisor restarts a worker loop that raised, and says why."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from laecips_core.errors import ConfigError

MAX_REASON_CHARS = 500
"""Death reasons are cut to this many characters (they end up in /diagnostics and logs)."""


def describe(err: BaseException) -> str:
    """``Type: message (file:line in function)`` of an exception, for logs and /diagnostics."""
    where = ""
    frames = traceback.extract_tb(err.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name})"
    return f"{type(err).__name__}: {err}{where}"[:MAX_REASON_CHARS]


@dataclass(frozen=True)
class WorkerHealth:
    """What a Supervisor knows about its workers (for /diagnostics).

    Attributes:
        workers: Names of the supervised workers.
        alive: How many of them have a running thread now.
        restarts: Worker deaths so far (each one restarted unless the supervisor was stopping).
        last_death: "<worker>: <reason>" of the last death ("" when none died).
    """

    workers: tuple[str, ...] = ()
    alive: int = 0
    restarts: int = 0
    last_death: str = ""


@dataclass
class _Worker:
    name: str
    body: Callable[[], None]
    thread: threading.Thread | None = None
    finished: bool = False  # the body returned (normal end: its stop condition was met)
    error: BaseException | None = None
    started: float = 0.0
    recorded: bool = False  # this death was counted and reported
    quick_deaths: int = 0
    not_before: float = 0.0


class Supervisor:
    """Runs named worker loops in daemon threads and restarts the ones that die.

    A worker body is a loop that returns when its owner's stop condition is met. If it raises instead
    (anything, BaseException included), its thread ends, the death is recorded with the reason,
    ``on_death(worker, reason)`` is called and, after a short back-off (0.1 s doubling to 5 s for
    workers that die again within 10 s), the body runs again in a new thread. A monitor thread checks
    every ``period_s``; ``check()`` does the same on demand.

    Args:
        name: Prefix of the thread names.
        on_death: Called (from the monitor thread) with (worker name, reason) for each death; what it
            raises is ignored.
        period_s: Monitor period (seconds).
    """

    def __init__(
        self,
        name: str = "laecips",
        *,
        on_death: Callable[[str, str], None] | None = None,
        period_s: float = 0.1,
    ) -> None:
        self.name = name
        self.on_death = on_death
        self.period_s = float(period_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: dict[str, _Worker] = {}
        self._restarts = 0
        self._last_death = ""
        self._monitor: threading.Thread | None = None

    # ----------------------------------------------------------------------------------- workers

    def spawn(self, name: str, body: Callable[[], None]) -> None:
        """Start ``body`` in a supervised daemon thread named ``<prefix>-<name>``.

        Raises:
            ConfigError: a worker of that name exists already.
        """
        with self._lock:
            if name in self._workers:
                raise ConfigError(f"worker {name!r} exists already: give each supervised thread its own name")
            worker = _Worker(name, body)
            self._workers[name] = worker
            self._start(worker)
            if self._monitor is None:
                self._monitor = threading.Thread(
                    target=self._watch, name=f"{self.name}-supervisor", daemon=True
                )
                self._monitor.start()

    def _start(self, worker: _Worker) -> None:
        worker.finished, worker.error, worker.recorded = False, None, False
        worker.started = time.monotonic()
        worker.thread = threading.Thread(
            target=self._run, args=(worker,), name=f"{self.name}-{worker.name}", daemon=True
        )
        worker.thread.start()

    @staticmethod
    def _run(worker: _Worker) -> None:
        try:
            worker.body()
        except BaseException as err:  # recorded and restarted by the monitor, never lost
            worker.error = err
        else:
            worker.finished = True

    # ----------------------------------------------------------------------------------- monitor

    def _watch(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.check()
            except Exception:  # the monitor itself must not die; the next check tries again
                continue

    def check(self) -> list[str]:
        """Record dead workers and restart those whose back-off has passed.

        Returns:
            Names of the workers restarted by this call.
        """
        restarted: list[str] = []
        deaths: list[tuple[str, str]] = []
        now = time.monotonic()
        with self._lock:
            for worker in self._workers.values():
                thread = worker.thread
                if thread is None or thread.is_alive() or worker.finished:
                    continue
                if not worker.recorded:
                    reason = describe(worker.error) if worker.error is not None else "thread ended"
                    worker.recorded = True
                    lived = now - worker.started
                    worker.quick_deaths = worker.quick_deaths + 1 if lived < 10.0 else 1
                    worker.not_before = now + min(5.0, 0.1 * 2 ** (worker.quick_deaths - 1))
                    self._restarts += 1
                    self._last_death = f"{worker.name}: {reason}"[:MAX_REASON_CHARS]
                    deaths.append((worker.name, reason))
                if self._stop.is_set() or now < worker.not_before:
                    continue
                self._start(worker)
                restarted.append(worker.name)
        for name, reason in deaths:
            if self.on_death is not None:
                try:
                    self.on_death(name, reason)
                except Exception:  # reporting must not stop the restarts
                    pass
        return restarted

    def health(self) -> WorkerHealth:
        """Names, live threads, restarts and the last death reason."""
        with self._lock:
            alive = sum(1 for w in self._workers.values() if w.thread is not None and w.thread.is_alive())
            return WorkerHealth(tuple(self._workers), alive, self._restarts, self._last_death)

    def stop(self, timeout_s: float) -> bool:
        """Stop restarting and wait (at most timeout_s in all) for the threads to end.

        The worker bodies end through their owner's stop condition, which the owner sets first.

        Returns:
            True when every thread ended in time.
        """
        self._stop.set()
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._lock:
            threads = [w.thread for w in self._workers.values() if w.thread is not None]
            if self._monitor is not None:
                threads.append(self._monitor)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads if t is not threading.current_thread())
