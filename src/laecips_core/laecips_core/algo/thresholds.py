"""The upload threshold delta of Eq. 2: fixed for a target upload rate, tracking it on a stream, or
from a latency budget (Eq. 9/10). Pure numpy: the edge node decides with it without torch."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from laecips_core.errors import ConfigError


def threshold_for_cur(confidences: Sequence[float] | np.ndarray, target_cur: float) -> float:
    """delta such that a fraction ``target_cur`` of frames has confidence <= delta (uploaded, Eq. 2).

    With k = round(target_cur * n) of the n confidences to upload, delta is the midpoint between the
    k-th and (k+1)-th smallest confidence (so new frames near the cut split evenly); below the
    smallest for k = 0, the largest for k = n. Equal confidences at the cut are all uploaded or all
    kept, so the achieved fraction can exceed the target by the size of that tie.

    Args:
        confidences: Miner outputs on calibration frames, (n,) with n >= 1, finite.
        target_cur: Wanted cloud upload rate in [0, 1].

    Returns:
        The threshold delta.
    """
    values = _sorted_confidences(confidences)
    if not (isinstance(target_cur, int | float) and 0.0 <= target_cur <= 1.0):
        raise ConfigError(f"target_cur must be in [0, 1], got {target_cur!r}")
    return _threshold_for_count(values, int(round(target_cur * len(values))))


class TrackingDelta:
    """A threshold delta (Eq. 2) that keeps the cloud upload rate at a target on any stream.

    Before each frame, delta is ``threshold_for_cur`` of the last ``window`` confidences at the target
    rate; the frame is hard when its confidence h(f(x)) <= delta; then its confidence joins the window.
    A fixed delta calibrated once stops working when h or f change (Eq. 14 can move every confidence
    toward 1): after a model update call ``reset`` so the window holds only the new model's values.
    With an empty window every frame is hard until the first confidence arrives. The evaluation and
    the edge node use this same class.

    Args:
        target_rate: Wanted upload rate (CUR) in [0, 1].
        window: Number of recent confidences the quantile is taken over (>= 1).
        initial: Confidences to start the window with (e.g. calibration frames), newest last.
    """

    def __init__(
        self, target_rate: float, window: int = 50, initial: Sequence[float] | np.ndarray = ()
    ) -> None:
        if not (isinstance(target_rate, int | float) and 0.0 <= target_rate <= 1.0):
            raise ConfigError(f"target_rate must be in [0, 1], got {target_rate!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"window must be an int >= 1 frames, got {window!r}")
        self.target_rate = float(target_rate)
        self.window: deque[float] = deque(maxlen=window)
        self.resets = 0
        self.reset(initial)
        self.resets = 0

    @property
    def delta(self) -> float:
        """The current threshold (``nan`` while the window is empty: every frame is hard then)."""
        if not self.window:
            return math.nan
        return threshold_for_cur(np.fromiter(self.window, dtype=np.float64), self.target_rate)

    def decide(self, confidence: float) -> bool:
        """Whether the frame with this confidence is hard (uploaded); its confidence joins the window."""
        delta = self.delta
        hard = math.isnan(delta) or confidence <= delta
        if math.isfinite(confidence):
            self.window.append(float(confidence))
        return bool(hard)

    def reset(self, initial: Sequence[float] | np.ndarray = ()) -> None:
        """Forget the window (after a model update), optionally seeding it with new confidences."""
        self.window.clear()
        values = np.asarray(initial, dtype=np.float64).reshape(-1)
        keep = self.window.maxlen if self.window.maxlen is not None else values.size
        self.window.extend(float(v) for v in values[np.isfinite(values)][-keep:])
        self.resets += 1


def threshold_for_latency(
    confidences: Sequence[float] | np.ndarray, d_edge: float, d_cloud: float, delay_max: float
) -> float:
    """delta that keeps the mean latency under ``delay_max`` (Eq. 9/10) with the most uploads.

    Eq. 9 gives the mean delay (d1 - d0) * E[h] + d0 with d1 = d_edge, d0 = d_cloud, where h is here
    the hard decision 1[h(f(x)) > delta] (kept on the edge). It stays below delay_max when
    E[h] > (d0 - delay_max) / (d0 - d1), i.e. when the upload rate is at most
    (delay_max - d1) / (d0 - d1). NOTE: the paper prints Eq. 10 with the denominator
    (delay_max - d1); that does not follow from Eq. 9 (try d1 = 1, d0 = 5, delay_max = 3: half the
    frames may go up, Eq. 10 as printed demands all stay), so Eq. 9 is used. The largest whole
    number of calibration frames within that rate is uploaded (``threshold_for_cur``'s rule).

    Args:
        confidences: Miner outputs on calibration frames, (n,) with n >= 1.
        d_edge: d1, seconds per frame kept on the edge.
        d_cloud: d0, seconds per uploaded frame (edge compute, upload, cloud, download), > d_edge.
        delay_max: Latency budget in seconds, > d_edge.

    Returns:
        The threshold delta.
    """
    values = _sorted_confidences(confidences)
    for name, value in (("d_edge", d_edge), ("d_cloud", d_cloud), ("delay_max", delay_max)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    if d_cloud <= d_edge:
        raise ConfigError(
            f"d_cloud ({d_cloud} s) must exceed d_edge ({d_edge} s); otherwise upload everything"
        )
    if delay_max <= d_edge:
        raise ConfigError(
            f"delay_max ({delay_max} s) is not above the edge delay ({d_edge} s): no threshold can meet it"
        )
    max_cur = min(1.0, (delay_max - d_edge) / (d_cloud - d_edge))
    return _threshold_for_count(values, int(math.floor(max_cur * len(values) + 1e-9)))


def _sorted_confidences(confidences: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.sort(np.asarray(confidences, dtype=np.float64).reshape(-1))
    if values.size == 0 or not np.isfinite(values).all():
        raise ConfigError("confidences must be a non-empty list of finite numbers (one per frame)")
    return values


def _threshold_for_count(values: np.ndarray, k: int) -> float:
    """delta with exactly the k smallest of the sorted ``values`` <= delta (ties permitting)."""
    if k <= 0:
        return float(np.nextafter(values[0], -np.inf))
    if k >= len(values):
        return float(values[-1])
    middle = (values[k - 1] + values[k]) / 2
    return float(middle if middle < values[k] else values[k - 1])
