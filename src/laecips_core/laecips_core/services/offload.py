"""ROS-free upload scheduling of the edge (Algorithm 2): newest-wins queues, bounded in-flight, deadlines."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from laecips_core.algo.thresholds import TrackingDelta, threshold_for_cur
from laecips_core.errors import ConfigError
from laecips_core.services.supervision import Supervisor, WorkerHealth, describe

T = TypeVar("T")

FALLBACK_CLOUD_STATES: tuple[str, ...] = ("unreachable", "timeout")
"""Fallback statuses that say something about the cloud's availability (shown in /diagnostics)."""
FALLBACK_NOT_ERRORS: tuple[str, ...] = ("dropped",)
"""Fallback statuses that are expected under load, not errors (a newer hard frame replaced the job)."""
DEFAULT_CUR_BUDGET = 0.35
"""The target cloud upload rate of the evaluation (``--cur-budget``) and the edge (``target_upload_rate``)."""
BUDGET_MARGIN = 0.8
"""Share of the measured upload capacity ``UploadBudget`` lets the tracking delta use."""


def upload_decision(
    confidence: float, threshold: float, exploration_rate: float, rng: random.Random
) -> tuple[bool, bool]:
    """Whether a frame is hard and whether it is uploaded (Algorithm 2's offloading rule).

    A frame is hard when h(f(x)) <= delta; an easy frame is still uploaded with probability
    `exploration_rate` so that h stays calibrated (rng is drawn only for easy frames).

    Args:
        confidence: h(f(x)) in [0, 1].
        threshold: delta.
        exploration_rate: Probability of uploading an easy frame, in [0, 1].
        rng: Random source of the exploration draw.

    Returns:
        (hard, uploaded).
    """
    hard = confidence <= threshold
    explore = not hard and rng.random() < exploration_rate
    return hard, hard or explore


def tracked_upload_decision(
    confidence: float,
    tracker: TrackingDelta,
    exploration_rate: float,
    rng: random.Random,
    target_rate: float | None = None,
) -> tuple[bool, bool, float]:
    """``upload_decision`` with the tracking delta of ``mining.TrackingDelta`` (the live default).

    delta is ``mining.threshold_for_cur`` of the tracker's window at ``target_rate``. Unlike
    ``TrackingDelta.decide``, ties at the cut are shared out: when h gives many frames the very same
    confidence (a saturated h says 0.999 on every frame of a new recording), a frame whose confidence
    equals delta is hard with the probability that brings the expected upload rate to the target,
    instead of all of them being hard (CUR 1) or none. The frame's confidence then joins the window.

    Args:
        confidence: h(f(x)).
        tracker: The tracking delta (its window is updated here).
        exploration_rate: Probability of uploading an easy frame anyway.
        rng: Random source of the tie and exploration draws.
        target_rate: Upload rate to keep now (None: ``tracker.target_rate``); the edge lowers it below
            the operator's target when the cloud cannot keep up (``UploadBudget``).

    Returns:
        (hard, uploaded, delta used for this frame; NaN while the tracker's window is empty).
    """
    rate = tracker.target_rate if target_rate is None else min(1.0, max(0.0, float(target_rate)))
    window = np.fromiter(tracker.window, dtype=np.float64)
    if window.size == 0:
        delta, hard = math.nan, True
    else:
        delta = threshold_for_cur(window, rate)
        if confidence < delta:
            hard = True
        elif confidence == delta:
            hard = rng.random() < _tie_share(window, delta, rate)
        else:
            hard = False
    if math.isfinite(confidence):
        tracker.window.append(float(confidence))
    explore = not hard and rng.random() < exploration_rate
    return hard, hard or explore, delta


def _tie_share(window: np.ndarray, delta: float, rate: float) -> float:
    """Share of the frames whose confidence equals delta that must be hard for ``rate`` uploads."""
    tied = int(np.count_nonzero(window == delta))
    if tied == 0:
        return 1.0
    wanted = rate * window.size - np.count_nonzero(window < delta)
    return float(min(1.0, max(0.0, wanted / tied)))


@dataclass(frozen=True)
class BudgetState:
    """What ``UploadBudget`` measured and allows (for /diagnostics).

    Attributes:
        rate: Upload rate the tracking delta keeps now (<= the operator's target).
        capacity: Most uploads per frame the upload workers can finish (inf until measured).
        frame_period_s: Mean time between frames, seconds (nan until measured).
        busy_s: Mean time a worker spends on one upload (round trip or deadline), seconds (nan until
            measured).
        edge_s: Mean edge compute per frame, d1, seconds (nan until measured).
    """

    rate: float
    capacity: float
    frame_period_s: float
    busy_s: float
    edge_s: float


class UploadBudget:
    """The upload rate the edge can sustain, from measured delays; the tracking delta keeps at most this.

    Each upload keeps one of the ``max_in_flight`` workers busy for ``busy_s`` (the measured round trip,
    or the deadline when the cloud did not answer); frames arrive every ``frame_period_s``. The workers
    finish at most ``max_in_flight * frame_period_s / busy_s`` uploads per frame; above that rate the
    newest-wins queue drops uploads. ``rate`` therefore lowers the operator's target to ``margin`` times
    that capacity (exploration uploads included). With a latency budget it also applies Eq. 10 (in the
    form derived from Eq. 9, as ``mining.threshold_for_latency``): the upload rate is at most
    (delay_max - d1) / (d0 - d1), with d1 the measured edge delay and d0 = d1 + busy_s.
    Delays are exponential moving averages, so the rate comes back up when the cloud does.

    Args:
        max_in_flight: Upload workers (concurrent cloud requests), >= 1.
        margin: Share of the capacity to use (< 1 leaves room for jitter), in (0, 1].
        smoothing: Weight of a new measurement in the moving averages, in (0, 1].
    """

    def __init__(self, max_in_flight: int, margin: float = BUDGET_MARGIN, smoothing: float = 0.2) -> None:
        if max_in_flight < 1 or not 0.0 < margin <= 1.0 or not 0.0 < smoothing <= 1.0:
            raise ConfigError(
                f"UploadBudget needs max_in_flight >= 1, margin and smoothing in (0, 1]; got "
                f"{max_in_flight}, {margin}, {smoothing}"
            )
        self.max_in_flight = int(max_in_flight)
        self._margin = float(margin)
        self._alpha = float(smoothing)
        self._lock = threading.Lock()
        self._last_frame: float | None = None
        self._period = math.nan
        self._busy = math.nan
        self._edge = math.nan
        self._running: dict[int, float] = {}
        self._next_token = 0

    def _mean(self, old: float, new: float) -> float:
        return new if math.isnan(old) else old + self._alpha * (new - old)

    def frame(self, arrival: float, edge_s: float | None = None) -> None:
        """Record a processed frame: its arrival (time.monotonic(), seconds) and f + h's compute time."""
        with self._lock:
            if self._last_frame is not None and arrival > self._last_frame:
                self._period = self._mean(self._period, arrival - self._last_frame)
            self._last_frame = arrival
            if edge_s is not None and math.isfinite(edge_s) and edge_s >= 0:
                self._edge = self._mean(self._edge, float(edge_s))

    def begin(self) -> int:
        """An upload starts now; returns the token to give ``end``. While it runs, its age counts as a
        lower bound of busy_s, so a cloud that stalls lowers the rate before its first answer."""
        with self._lock:
            self._next_token += 1
            self._running[self._next_token] = time.monotonic()
            return self._next_token

    def end(self, token: int, *, record: bool = True) -> None:
        """The upload of ``token`` ended; its duration is recorded unless ``record`` is False (e.g. no
        session: nothing was sent)."""
        with self._lock:
            started = self._running.pop(token, None)
        if started is not None and record:
            self.upload_done(time.monotonic() - started)

    def upload_done(self, busy_s: float) -> None:
        """Record how long one upload kept its worker busy (seconds, answered or not)."""
        if math.isfinite(busy_s) and busy_s >= 0:
            with self._lock:
                self._busy = self._mean(self._busy, float(busy_s))

    def state(
        self, target: float, exploration_rate: float = 0.0, latency_budget_s: float = 0.0
    ) -> BudgetState:
        """The rate to keep now and the measurements behind it.

        Args:
            target: The operator's target upload rate (``target_upload_rate``).
            exploration_rate: Share of easy frames uploaded anyway (they load the workers too).
            latency_budget_s: delay_max of Eq. 10 in seconds (0 = no latency budget).
        """
        with self._lock:
            period, busy, edge = self._period, self._busy, self._edge
            oldest = max((time.monotonic() - t for t in self._running.values()), default=0.0)
        if oldest > (busy if math.isfinite(busy) else 0.0):
            busy = oldest  # an upload still running has kept its worker at least this long
        capacity = math.inf
        if math.isfinite(period) and math.isfinite(busy) and busy > 0:
            capacity = self.max_in_flight * period / busy
        total = self._margin * capacity  # hard + exploration uploads per frame the workers can take
        rate = float(target)
        if math.isfinite(total):
            e = min(max(exploration_rate, 0.0), 0.999)
            rate = min(rate, max(0.0, (total - e) / (1.0 - e)))
        if latency_budget_s > 0 and math.isfinite(busy) and busy > 0:
            d1 = edge if math.isfinite(edge) else 0.0
            rate = min(rate, max(0.0, (latency_budget_s - d1) / busy))
        return BudgetState(max(0.0, min(1.0, rate)), capacity, period, busy, edge)

    def rate(self, target: float, exploration_rate: float = 0.0, latency_budget_s: float = 0.0) -> float:
        """The upload rate to keep now (``state(...).rate``)."""
        return self.state(target, exploration_rate, latency_budget_s).rate


def remaining_s(deadline_s: float, arrival: float, now: float) -> float:
    """Seconds left of a frame's cloud deadline (<= 0: give up and fall back to f's labels).

    Args:
        deadline_s: Budget from the frame's arrival (seconds).
        arrival: Arrival time of the frame (time.monotonic(), seconds).
        now: Current time on the same clock (seconds).
    """
    return deadline_s - (now - arrival)


def split_network(round_trip_s: float, cloud_s: float, up_bytes: int, down_bytes: int) -> tuple[float, float]:
    """Split the network part of a round trip into upload and download time by bytes moved.

    Without synchronised clocks only the round trip is measurable: its network part (round trip -
    cloud compute, at least 0) is shared between the two directions in proportion to their bytes.

    Args:
        round_trip_s: Request sent to reply received (seconds).
        cloud_s: Compute time the cloud reported (seconds).
        up_bytes: Request payload (JPEG) size in bytes.
        down_bytes: Reply payload (encoded labels) size in bytes.

    Returns:
        (upload_s, download_s), summing to max(0, round_trip_s - cloud_s).
    """
    network = max(0.0, round_trip_s - cloud_s)
    up_share = up_bytes / max(1, up_bytes + down_bytes)
    return network * up_share, network * (1.0 - up_share)


def classify_fallback(status: str) -> tuple[str | None, bool]:
    """How a fallback (edge labels published because the cloud result did not come) is counted.

    Args:
        status: Why: "timeout", "unreachable", "dropped", "error" or the cloud's reply status.

    Returns:
        (cloud_status, is_error): the new cloud availability for /diagnostics (None = unchanged) and
        whether it counts as an error.
    """
    return (status if status in FALLBACK_CLOUD_STATES else None), status not in FALLBACK_NOT_ERRORS


class LatestQueue(Generic[T]):
    """Bounded FIFO whose put never blocks: when full the OLDEST item is dropped (newest wins).

    Args:
        maxlen: capacity (>= 1).
    """

    def __init__(self, maxlen: int) -> None:
        self._items: deque[T] = deque()
        self._maxlen = max(1, int(maxlen))
        self._cond = threading.Condition()

    def put(self, item: T) -> T | None:
        """Append `item`; return the item dropped to make room, or None."""
        with self._cond:
            dropped = self._items.popleft() if len(self._items) >= self._maxlen else None
            self._items.append(item)
            self._cond.notify()
        return dropped

    def get(self, timeout_s: float) -> T | None:
        """Pop the oldest item, waiting at most `timeout_s`; None when nothing came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            return self._items.popleft() if self._items else None

    def drain(self) -> list[T]:
        """Remove and return everything queued."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class UploadScheduler(Generic[T]):
    """At most `max_in_flight` jobs run `handler` at once; waiting jobs are newest-wins.

    When every worker is busy (the link is slower than the camera), at most `pending` jobs wait; a
    newer job pushes the oldest waiting one out, and that one is handed to `on_drop` (the edge
    publishes it as a fallback result). The camera thread never waits: ``submit`` only enqueues.

    No job can stop a worker: whatever ``handler`` raises goes to ``on_error(job, reason)`` (the edge
    publishes a fallback for that frame) and the worker takes the next job. A worker that dies anyway
    (``on_error`` raised too) is restarted by a Supervisor and reported through ``on_death`` and
    ``health()``.

    Args:
        max_in_flight: worker threads, i.e. concurrent cloud requests (>= 1).
        handler: called in a worker thread with one job.
        on_drop: called with a job that was pushed out before it could be sent.
        pending: jobs allowed to wait for a worker.
        name: thread name prefix.
        on_error: called with (job, reason) when handler raised; None only records the reason.
        on_death: called with (worker name, reason) when a worker thread died and is restarted.
    """

    def __init__(
        self,
        max_in_flight: int,
        handler: Callable[[T], None],
        on_drop: Callable[[T], None],
        pending: int = 1,
        name: str = "upload",
        on_error: Callable[[T, str], None] | None = None,
        on_death: Callable[[str, str], None] | None = None,
    ) -> None:
        self._queue: LatestQueue[T] = LatestQueue(pending)
        self._handler = handler
        self._on_drop = on_drop
        self._on_error = on_error
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_seen_in_flight = 0
        self.handler_errors = 0
        self.last_error = ""
        self._supervisor = Supervisor(name, on_death=on_death)
        for i in range(max(1, max_in_flight)):
            self._supervisor.spawn(str(i), self._run)

    def submit(self, job: T) -> None:
        """Queue a job (never blocks); a job pushed out goes to on_drop at once."""
        dropped = self._queue.put(job)
        if dropped is not None:
            self._on_drop(dropped)

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._queue.get(0.1)
            if job is None:
                continue
            with self._lock:
                self.in_flight += 1
                self.max_seen_in_flight = max(self.max_seen_in_flight, self.in_flight)
            try:
                self._handler(job)
            except Exception as err:  # one job never costs a worker: report it and take the next
                reason = describe(err)
                with self._lock:
                    self.handler_errors += 1
                    self.last_error = reason
                if self._on_error is not None:
                    self._on_error(job, reason)
            finally:
                with self._lock:
                    self.in_flight -= 1

    def health(self) -> WorkerHealth:
        """The workers' health (live threads, restarts, last death reason)."""
        return self._supervisor.health()

    def close(self, timeout_s: float) -> list[T]:
        """Stop the workers (waiting at most `timeout_s` in total); return the jobs never started."""
        self._stop.set()
        self._supervisor.stop(timeout_s)
        return self._queue.drain()
