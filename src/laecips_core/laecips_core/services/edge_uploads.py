"""The edge's hard frames to the cloud: the upload half of the paper's offloading (x to F when h says hard).

``ask_cloud``: one hard frame to the cloud (JPEG, through the session's one CloudClient, within its
deadline) and what came back (``CloudAnswer``); ``EdgeUploads``: the upload workers, sharing one
CloudClient per Zenoh session (transport.CloudLink); every hard frame ends in a cloud result F(x) or
a fallback to f(x), whatever the cloud sends, and a worker that dies is restarted and reported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import zenoh

from laecips_core import image_codecs, transport
from laecips_core.errors import LaecipsError
from laecips_core.services.edge_config import EdgeConfig
from laecips_core.services.edge_service import EdgeCounters
from laecips_core.services.offload import (
    UploadBudget,
    UploadScheduler,
    classify_fallback,
    remaining_s,
    split_network,
)

# ----------------------------------------------------------------------------------------- cloud


@dataclass(frozen=True)
class CloudAnswer:
    """What the cloud did with one hard frame.

    Attributes:
        labels: F(x) (H, W) class ids, or None when the frame falls back to f's labels.
        status: "ok", or the fallback reason ("timeout", "unreachable", "error", a cloud status...).
        error: Why there are no labels ("" when ok).
        bytes_sent: JPEG bytes uploaded (0 when nothing was sent).
        bytes_received: Reply payload bytes as received (the encoded labels).
        upload_s: Upload share of the network time (Eq. 27), seconds.
        cloud_s: Cloud compute time reported by the cloud (LVM + fusion), seconds.
        download_s: Download share of the network time, seconds.
    """

    labels: np.ndarray | None
    status: str
    error: str = ""
    bytes_sent: int = 0
    bytes_received: int = 0
    upload_s: float = 0.0
    cloud_s: float = 0.0
    download_s: float = 0.0


def ask_cloud(
    client: transport.CloudClient | None,
    cfg: EdgeConfig,
    *,
    frame_id: int,
    stamp: float,
    version: int,
    rgb: np.ndarray,
    remaining_s: float,
) -> CloudAnswer:
    """Send one hard frame (JPEG) to ``laecips/<robot_id>/infer`` and wait at most ``remaining_s``.

    Never raises for the link or the cloud: every failure is a CloudAnswer without labels whose
    status says what happened, so the caller publishes f's labels as the fallback.

    Args:
        client: The session's CloudClient (its querier is reused), or None while no session is open
            (then the answer is "unreachable").
        cfg: Edge parameters (robot id, M, JPEG quality).
        frame_id: The edge's frame number.
        stamp: Camera stamp (seconds).
        version: Version of f that produced the edge scores.
        rgb: (H, W, 3) uint8 frame.
        remaining_s: Time left of the frame's deadline (seconds, > 0).
    """
    if remaining_s <= 0.0:
        return CloudAnswer(None, "timeout", "deadline passed while waiting for a free upload slot")
    if client is None:
        return CloudAnswer(None, "unreachable", "no zenoh session")
    try:
        jpeg = image_codecs.encode_jpeg(rgb, quality=cfg.jpeg_quality)
        request = transport.InferRequest(
            robot_id=cfg.robot_id,
            frame_id=frame_id,
            stamp=stamp,
            model_version=version,
            num_classes=cfg.num_classes,
            width=int(rgb.shape[1]),
            height=int(rgb.shape[0]),
            jpeg=jpeg,
        )
        sent = time.monotonic()
        reply = client.infer(request, timeout_s=remaining_s)
        round_trip = time.monotonic() - sent
    except LaecipsError as err:
        return CloudAnswer(None, "error", f"cannot send frame: {err}")
    except Exception as err:  # never out of an upload worker: the frame falls back with the reason
        return CloudAnswer(None, "error", f"cloud round trip failed: {type(err).__name__}: {err}"[:2000])
    if not reply.ok or reply.labels is None:
        return CloudAnswer(None, reply.status, reply.error, bytes_sent=len(jpeg))
    upload_s, download_s = split_network(round_trip, float(reply.cloud_s), len(jpeg), reply.payload_bytes)
    return CloudAnswer(
        np.asarray(reply.labels),
        "ok",
        bytes_sent=len(jpeg),
        bytes_received=reply.payload_bytes,
        upload_s=upload_s,
        cloud_s=float(reply.cloud_s),
        download_s=download_s,
    )


class UploadJob(Protocol):
    """What the upload workers need of a hard frame (the node's job record has more)."""

    @property
    def frame_no(self) -> int:
        """The edge's frame number (frame_id on the wire)."""
        ...

    @property
    def stamp(self) -> float:
        """Camera stamp (seconds)."""
        ...

    @property
    def version(self) -> int:
        """Version of the f that scored the frame."""
        ...

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 frame."""
        ...

    @property
    def arrival(self) -> float:
        """Arrival time (time.monotonic(), seconds); the deadline counts from here."""
        ...


J = TypeVar("J", bound=UploadJob)


DEADLINE_GRACE_S = 0.05
"""Slack after a frame's deadline before its fallback is published without the cloud call."""


class _UploadCall:
    """One cloud round trip on its own thread, so its frame can fall back at the deadline while a
    stalled link still blocks the send. Exactly one of the waiter (in time) or the thread (after
    ``abandon``) finishes the bookkeeping."""

    def __init__(self, owner: EdgeUploads[Any], token: int) -> None:
        self._owner = owner
        self._token = token
        self._lock = threading.Lock()
        self._abandoned = False
        self.answer: CloudAnswer | None = None
        self.done = threading.Event()

    def run(self, session: zenoh.Session | None, cfg: EdgeConfig, job: Any, left: float) -> None:
        try:
            # the session's one client (declared on first use, then reused), got here: a stalled link
            # must not block the worker
            client = self._owner.link.client(session, cfg.robot_id, cfg.deadline_s)
            answer = ask_cloud(
                client,
                cfg,
                frame_id=job.frame_no,
                stamp=job.stamp,
                version=job.version,
                rgb=job.rgb,
                remaining_s=left,
            )
        except BaseException as err:  # ask_cloud never raises; a bad client or a bug must not leak the slot
            answer = CloudAnswer(None, "error", f"upload call failed: {type(err).__name__}: {err}"[:2000])
        with self._lock:
            self.answer = answer
            abandoned = self._abandoned
            self.done.set()
        self._owner._call_finished(self._token, answer, abandoned)

    def abandon(self) -> bool:
        """Give up on the call (its answer will be ignored); False when it finished meanwhile."""
        with self._lock:
            if self.done.is_set():
                return False
            self._abandoned = True
        self._owner._call_abandoned()
        return True


class EdgeUploads(Generic[J]):
    """The edge's upload workers without ROS: each hard frame ends in exactly one cloud result or fallback.

    At most ``max_in_flight`` frames are with the cloud at once (offload.UploadScheduler, newest wins),
    all through one CloudClient per Zenoh session (``link``, a transport.CloudLink: one querier declared
    on first use and reused; a reopened session or a new deadline_s gets a new one; close() undeclares it).
    A frame whose round trip fails in any way -- a timeout, an unreachable cloud, a reply that is
    invalid, not UTF-8 or nested too deep, even a bug -- is handed to ``on_fallback`` with the reason,
    and the worker takes the next frame. A worker thread that dies anyway (``on_fallback`` itself
    raised) is restarted and counted in the counters (``worker_restarts``, ``last_worker_death``), so
    /diagnostics turns WARN with the reason.

    Args:
        max_in_flight: Upload workers, i.e. concurrent cloud requests.
        config: Returns the current EdgeConfig (robot id, deadline, JPEG quality; may change at run time).
        session: Returns the Zenoh session, or None while it is not open yet (a new session object, e.g.
            after a reconnect, gets a new client).
        counters: Where uploads, fallbacks, bytes, errors and worker deaths are counted.
        on_cloud: Publishes a frame's cloud result (job, answer with labels).
        on_fallback: Publishes a frame's edge labels as the fallback (job, status, reason).
        on_death: Also told of each worker death (worker, reason), e.g. to log it.
        budget: Told when each upload starts and ends (``offload.UploadBudget.begin``/``end``), so the
            upload rate follows what the workers can finish.
        pending: Frames allowed to wait for a free worker.
        name: Thread name prefix.
    """

    def __init__(
        self,
        max_in_flight: int,
        *,
        config: Callable[[], EdgeConfig],
        session: Callable[[], zenoh.Session | None],
        counters: EdgeCounters,
        on_cloud: Callable[[J, CloudAnswer], None],
        on_fallback: Callable[[J, str, str], None],
        on_death: Callable[[str, str], None] | None = None,
        budget: UploadBudget | None = None,
        pending: int = 1,
        name: str = "laecips-upload",
    ) -> None:
        self._budget = budget
        self._config = config
        self._session = session
        self.link = transport.CloudLink()
        self._stall_lock = threading.Lock()
        self._stalled = 0  # calls still blocked in the link after their frame fell back
        self._max_stalled = max(1, int(max_in_flight))
        self._counters = counters
        self._on_cloud = on_cloud
        self._on_fallback = on_fallback
        self._on_death = on_death
        self._scheduler: UploadScheduler[J] = UploadScheduler(
            max_in_flight,
            self._upload,
            self._dropped,
            pending=pending,
            name=name,
            on_error=self._failed,
            on_death=self._died,
        )

    @property
    def in_flight(self) -> int:
        """Frames with the cloud now."""
        return self._scheduler.in_flight

    @property
    def max_seen_in_flight(self) -> int:
        """Most frames that were with the cloud at once."""
        return self._scheduler.max_seen_in_flight

    @property
    def stalled_calls(self) -> int:
        """Cloud calls still blocked in the link after their frame already fell back at its deadline."""
        with self._stall_lock:
            return self._stalled

    def submit(self, job: J) -> None:
        """Queue a hard frame (never blocks; a frame pushed out falls back at once as "dropped")."""
        self._scheduler.submit(job)

    def health(self) -> Any:
        """The workers' supervision.WorkerHealth (live threads, restarts, last death)."""
        return self._scheduler.health()

    def close(self, timeout_s: float) -> list[J]:
        """Stop the workers (bounded wait) and undeclare the cloud client; returns the frames never sent."""
        unsent = self._scheduler.close(timeout_s)
        self.link.close()
        return unsent

    def fallback(self, job: J, status: str, reason: str) -> None:
        """Count a fallback and hand the frame to on_fallback (also used for frames never sent)."""
        cloud_status, is_error = classify_fallback(status)
        self._counters.count(fallback=1, cloud_status=cloud_status)
        if is_error:
            self._counters.count(error=f"frame {job.frame_no}: cloud {status}: {reason}")
        self._on_fallback(job, status, reason)

    def _upload(self, job: J) -> None:
        cfg = self._config()
        left = remaining_s(cfg.deadline_s, job.arrival, time.monotonic())
        with self._stall_lock:
            stalled = self._stalled
        if stalled >= self._max_stalled:
            self.fallback(
                job, "timeout", f"the link is stalled: {stalled} earlier uploads are still blocked in send"
            )
            return
        token = self._budget.begin() if self._budget is not None else 0
        call = _UploadCall(self, token)
        threading.Thread(
            target=call.run,
            args=(self._session(), cfg, job, left),
            name=f"{threading.current_thread().name}-call",
            daemon=True,
        ).start()
        # ask_cloud bounds its own wait by the deadline, but a stalled link can block the send itself
        # (Zenoh's congestion control, seconds): the frame falls back at its deadline regardless.
        if not call.done.wait(max(left, 0.0) + DEADLINE_GRACE_S):
            if call.abandon():
                self.fallback(
                    job,
                    "timeout",
                    f"no cloud answer within the {cfg.deadline_s:g} s deadline (the upload is still "
                    "blocked in the link; its answer will be ignored)",
                )
                return
        answer = call.answer
        assert answer is not None
        self._counters.count(bytes_sent=answer.bytes_sent)
        if answer.labels is None:
            self.fallback(job, answer.status, answer.error)
            return
        self._counters.count(cloud_ok=1, bytes_received=answer.bytes_received, cloud_status="available")
        self._on_cloud(job, answer)

    def _call_finished(self, token: int, answer: CloudAnswer, abandoned: bool) -> None:
        """Bookkeeping when an upload call returns (in time, or after its frame already fell back)."""
        if self._budget is not None:
            self._budget.end(token, record=answer.status != "unreachable")
        if abandoned:
            with self._stall_lock:
                self._stalled -= 1

    def _call_abandoned(self) -> None:
        with self._stall_lock:
            self._stalled += 1

    def _failed(self, job: J, reason: str) -> None:
        self.fallback(job, "error", f"upload worker error: {reason}")

    def _dropped(self, job: J) -> None:
        self._counters.count(dropped_upload=1)
        self.fallback(job, "dropped", "a newer hard frame replaced it while the link was busy")

    def _died(self, worker: str, reason: str) -> None:
        self._counters.worker_died(f"upload worker {worker}: {reason}")
        if self._on_death is not None:
            self._on_death(worker, reason)
