"""What the edge node reports besides its labels: ~/classes, per-class summaries, /diagnostics (CUR, Eq. 26).

The edge side of LAECIPS without ROS is split by responsibility; the rclpy node
laecips_edge.edge_node adapts these pieces (camera topic, publishers, parameter callback, threads):

- ``edge_config``: ``EdgeConfig`` / ``EDGE_PARAMS``, the node's parameters and their checks;
- ``edge_models``: loading and verifying f and h, ``ModelSlot`` and the update worker's step
  (Algorithm 2's update on the robot);
- ``edge_uploads``: ``ask_cloud`` and ``EdgeUploads``, the hard frames' round trips to F;
- here: ``classes_json`` and ``class_summary`` (the result messages' extras), ``EdgeCounters`` and
  ``diagnostic_values`` (frame rate, CUR, cloud state, worker restarts).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------- outputs


def classes_json(names: list[str], *, robot_id: str, model_version: int) -> str:
    """The ``~/classes`` message body: the JSON of a bag's classes topic (``bags.BagTopics.classes``)."""
    return json.dumps(
        {
            "classes": names,
            "num_classes": len(names),
            "robot_id": robot_id,
            "model_version": model_version,
            "producer": "laecips edge_node",
        },
        sort_keys=True,
    )


def class_summary(
    labels: np.ndarray, label_probs: np.ndarray | None, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class fractions of `labels` and mean softmax score of f over each class's pixels.

    Args:
        labels: (H, W) integer class ids < M.
        label_probs: (H, W) float32 softmax score of f at each pixel's label
            (``EdgeResult.label_probs(labels)``), or None.
        num_classes: M.

    Returns:
        (fractions, scores): two (M,) float32 arrays; fractions sum to 1, scores are 0 where a class
        is absent (or when label_probs does not match labels).
    """
    flat = labels.reshape(-1).astype(np.int64)
    counts = np.bincount(flat, minlength=num_classes)[:num_classes].astype(np.float64)
    fractions = (counts / max(1, flat.size)).astype(np.float32)
    scores = np.zeros(num_classes, dtype=np.float32)
    if label_probs is not None and label_probs.shape == labels.shape:
        sums = np.bincount(flat, weights=label_probs.reshape(-1), minlength=num_classes)[:num_classes]
        scores = (sums / np.maximum(counts, 1.0)).astype(np.float32)
    return fractions, scores


# ----------------------------------------------------------------------------------- diagnostics


@dataclass
class _Counts:
    frames: int = 0
    uploaded: int = 0
    hard: int = 0
    cloud_ok: int = 0
    fallback: int = 0
    dropped_input: int = 0
    dropped_upload: int = 0
    bad_input: int = 0
    errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    updates_applied: int = 0
    updates_refused: int = 0
    worker_restarts: int = 0
    cloud_status: str = "unknown"
    last_error: str = ""
    last_worker_death: str = ""


COUNTER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(_Counts))
"""Keys of ``EdgeCounters.snapshot()``."""


class EdgeCounters:
    """Thread-safe counts and last values of the edge (frames, uploads, fallbacks, errors, bytes...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = _Counts()

    def count(self, error: str | None = None, cloud_status: str | None = None, **increments: int) -> None:
        """Add ``increments`` (names from COUNTER_NAMES); an ``error`` also counts in ``errors``."""
        with self._lock:
            for key, value in increments.items():
                setattr(self._counts, key, getattr(self._counts, key) + value)
            if error:
                self._counts.errors += 1
                self._counts.last_error = error[:500]
            if cloud_status:
                self._counts.cloud_status = cloud_status

    def worker_died(self, reason: str) -> None:
        """Count a worker thread that died (and was restarted); the reason is shown in /diagnostics."""
        with self._lock:
            self._counts.worker_restarts += 1
            self._counts.errors += 1
            self._counts.last_worker_death = reason[:500]
            self._counts.last_error = reason[:500]

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every counter."""
        with self._lock:
            return {name: getattr(self._counts, name) for name in COUNTER_NAMES}


def diagnostic_values(
    snap: dict[str, Any],
    *,
    rate_hz: float,
    version: int,
    in_flight: int,
    threshold: float,
    extra: dict[str, str] | None = None,
) -> tuple[bool, str, dict[str, str]]:
    """What /diagnostics says about the edge: (warn, message, key -> value).

    Args:
        snap: ``EdgeCounters.snapshot()``.
        rate_hz: Frames per second since the last report.
        version: Version of the running model.
        in_flight: Hard frames waiting on the cloud.
        threshold: delta now.
        extra: More key -> value pairs (e.g. the upload rate kept now and the delays behind it).

    Returns:
        warn is True after a worker thread died (restarted; the message gives the reason), on bad input,
        refused updates or an unreachable/slow cloud; CUR (Eq. 26) is uploaded / frames.
    """
    cur = snap["uploaded"] / snap["frames"] if snap["frames"] else 0.0
    values = {
        "frame_rate_hz": f"{rate_hz:.2f}",
        "cur": f"{cur:.4f}",
        "cloud": snap["cloud_status"],
        "model_version": str(version),
        "in_flight": str(in_flight),
        "threshold": str(threshold),
        **(extra or {}),
        **{k: str(v) for k, v in snap.items() if k != "cloud_status"},
    }
    if snap["worker_restarts"]:
        return True, f"worker died and was restarted: {snap['last_worker_death']}", values
    if snap["bad_input"] or snap["updates_refused"]:
        return True, snap["last_error"] or "errors", values
    if snap["cloud_status"] in ("unreachable", "timeout"):
        return True, f"cloud {snap['cloud_status']}: hard frames fall back to f", values
    return False, "running", values
