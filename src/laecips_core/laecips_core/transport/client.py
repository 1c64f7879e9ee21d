"""The edge's cloud client (Algorithm 2: a hard frame x goes to the cloud, F(x) comes back) over Zenoh.

One ``CloudClient`` per Zenoh session: its querier on ``laecips/<robot_id>/infer`` is declared once and
reused by every hard frame (from any upload thread); ``close`` undeclares it. ``CloudLink`` keeps that
one client for a node and builds a new one when the session is reopened.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from typing import Any, Final

import zenoh

from laecips_core.errors import ConfigError, WireFormatError
from laecips_core.transport.keys import infer_key, validate_robot_id
from laecips_core.transport.wire import (
    MAX_ERROR_CHARS,
    STATUS_ERROR,
    STATUS_INVALID,
    STATUS_TIMEOUT,
    STATUS_UNREACHABLE,
    InferReply,
    InferRequest,
)

__all__ = [
    "SILENT_FRACTION",
    "CloudClient",
    "CloudLink",
    "error_text",
]

SILENT_FRACTION: Final = 0.9
"""A get() that ends with no reply after this share of its timeout was a silent cloud (timeout), not none."""

_END: Final = object()
"""Put on a query's reply queue when Zenoh closes its reply channel (all replies in, or its timeout)."""


def zbytes(value: zenoh.ZBytes | None) -> bytes | None:
    """The bytes of a Zenoh payload or attachment (None stays None)."""
    return None if value is None else value.to_bytes()


def error_text(payload: zenoh.ZBytes | None, max_chars: int = MAX_ERROR_CHARS) -> str:
    """The text of an error reply, whatever its bytes: UTF-8 with replacement characters, cut to max_chars.

    ``ZBytes.to_string()`` raises ValueError on bytes that are not UTF-8; a lying peer must not be able
    to turn its error reply into an exception on our side.
    """
    if payload is None:
        return ""
    return payload.to_bytes()[: 4 * max_chars].decode("utf-8", "replace")[:max_chars]


class CloudClient:
    """Blocking edge-side client of ``laecips/<robot_id>/infer``; call infer() from a worker thread.

    The querier is declared once here and reused by every infer() (thread-safe), until close(). Every
    network condition becomes a status instead of an exception: no queryable -> "unreachable" (at once),
    deadline passed -> "timeout", malformed/lying reply -> "invalid". A link that went silent without
    closing can block Zenoh up to its close timeout (~5 s), hence: never on a camera callback.

    Args:
        session: An open Zenoh session.
        robot_id: This robot's id (key chunk).
        timeout_s: Longest deadline of one request (seconds, > 0): the querier's Zenoh timeout; infer()
            may wait less.

    Attributes:
        queries: Requests sent through the querier so far.
    """

    def __init__(self, session: zenoh.Session, robot_id: str, timeout_s: float) -> None:
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigError(f"CloudClient timeout_s={timeout_s!r} must be a finite number > 0 (seconds)")
        self.robot_id = validate_robot_id(robot_id)
        self.timeout_s = float(timeout_s)
        self.session = session
        self.queries = 0
        self._lock = threading.Lock()
        self._closed = False
        self._querier = session.declare_querier(
            infer_key(robot_id),
            target=zenoh.QueryTarget.BEST_MATCHING,
            timeout=self.timeout_s,
            congestion_control=zenoh.CongestionControl.BLOCK,
        )

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed

    def available(self) -> bool:
        """True when a cloud queryable for this robot is currently known (cheap; no network round trip)."""
        try:
            status: Any = self._querier.matching_status  # a MatchingStatus at run time (the stub says bool)
            return bool(getattr(status, "matching", status))
        except zenoh.ZError:
            return False

    def infer(self, request: InferRequest, timeout_s: float | None = None) -> InferReply:
        """Send one request and wait for the first reply or the deadline.

        Args:
            request: Its robot_id must be this client's.
            timeout_s: This request's deadline (seconds; None or more than the client's: the client's).

        Returns:
            The validated reply (labels of shape (request.height, request.width), all < num_classes,
            ``payload_bytes`` = the reply payload's size as received), or an InferReply whose status says
            what went wrong.

        Raises:
            ConfigError: request.robot_id is not this client's robot (a programming error).
            WireFormatError: the request itself is malformed (a programming error).
        """
        if request.robot_id != self.robot_id:
            raise ConfigError(
                f"request for robot {request.robot_id!r} sent through the client of {self.robot_id!r}"
            )
        deadline = self.timeout_s if timeout_s is None else min(float(timeout_s), self.timeout_s)
        if not deadline > 0:
            return InferReply(
                status=STATUS_TIMEOUT, error="the deadline passed before sending", frame_id=request.frame_id
            )
        payload, attachment = request.encode()
        replies: queue.SimpleQueue[Any] = queue.SimpleQueue()
        token = zenoh.CancellationToken()
        started = time.monotonic()
        try:
            self._querier.get(
                zenoh.handlers.Callback(replies.put, lambda: replies.put(_END)),
                payload=payload,
                attachment=attachment,
                cancellation_token=token,
            )
        except zenoh.ZError as err:
            return InferReply(status=STATUS_UNREACHABLE, error=f"zenoh: {err}", frame_id=request.frame_id)
        with self._lock:
            self.queries += 1
        try:
            reply = replies.get(timeout=max(0.0, deadline - (time.monotonic() - started)))
        except queue.Empty:
            reply = None
        finally:
            token.cancel()  # only the first reply counts; a late one must not keep the query alive
        waited = time.monotonic() - started
        if reply is None or (reply is _END and waited >= SILENT_FRACTION * deadline):
            # somebody took the query and never answered in time
            return InferReply(
                status=STATUS_TIMEOUT,
                error=f"no reply from {infer_key(self.robot_id)} within {deadline:g} s "
                f"(waited {waited:.2f} s): the cloud is silent or overloaded",
                frame_id=request.frame_id,
            )
        if reply is _END:
            return InferReply(
                status=STATUS_UNREACHABLE,
                error="no cloud is serving " + infer_key(self.robot_id),
                frame_id=request.frame_id,
            )
        try:
            return self._read_reply(request, reply)
        except Exception as err:  # whatever a lying cloud sends, the caller gets a status, never a raise
            return InferReply(
                status=STATUS_INVALID,
                error=f"unreadable reply: {type(err).__name__}: {err}"[:MAX_ERROR_CHARS],
                frame_id=request.frame_id,
            )

    def _read_reply(self, request: InferRequest, reply: zenoh.Reply) -> InferReply:
        """Turn one Zenoh reply into an InferReply (raises only for a bug; infer() catches that too)."""
        if reply.err is not None:
            text = error_text(reply.err.payload)
            status = STATUS_TIMEOUT if "timeout" in text.lower() else STATUS_ERROR
            return InferReply(
                status=status, error=text[:MAX_ERROR_CHARS] or status, frame_id=request.frame_id
            )
        sample = reply.ok
        if sample is None:
            return InferReply(
                status=STATUS_INVALID, error="reply is neither ok nor err", frame_id=request.frame_id
            )
        try:
            result = InferReply.decode(
                zbytes(sample.payload),
                zbytes(sample.attachment),
                expected_shape=(request.height, request.width),
                num_classes=request.num_classes,
            )
        except WireFormatError as err:
            return InferReply(status=STATUS_INVALID, error=str(err), frame_id=request.frame_id)
        if result.status == STATUS_ERROR:  # the cloud refused it (busy, bad request...): say why
            return dataclasses.replace(result, frame_id=request.frame_id)
        if result.frame_id != request.frame_id:
            return InferReply(
                status=STATUS_INVALID,
                error=f"reply is for frame {result.frame_id}, not {request.frame_id}",
                frame_id=request.frame_id,
            )
        return result

    def close(self) -> None:
        """Undeclare the querier (idempotent; the session stays open)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._querier.undeclare()
        except zenoh.ZError:
            pass


class CloudLink:
    """The one CloudClient of a node: declared on first use, reused by every hard frame, rebuilt on change.

    A new client (a new querier) is declared only when the session is another object (reopened), was
    closed, or the robot id or the deadline changed; the old one is closed then. Thread-safe.

    Attributes:
        declared: Clients (queriers) declared so far.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: CloudClient | None = None
        self.declared = 0

    def client(self, session: zenoh.Session | None, robot_id: str, timeout_s: float) -> CloudClient | None:
        """The client for this session, robot and deadline (None while there is no open session).

        Raises:
            ConfigError: bad robot id or timeout.
            zenoh.ZError: the querier could not be declared.
        """
        with self._lock:
            old = self._client
            if session is None or session.is_closed():
                if old is not None:
                    old.close()
                self._client = None
                return None
            if (
                old is not None
                and old.session is session
                and old.robot_id == robot_id
                and old.timeout_s == float(timeout_s)
                and not old.closed
            ):
                return old
            self._client = None
            if old is not None:
                old.close()
            new = CloudClient(session, robot_id, timeout_s)
            self._client = new
            self.declared += 1
            return new

    def close(self) -> None:
        """Undeclare the current client's querier (idempotent)."""
        with self._lock:
            old, self._client = self._client, None
        if old is not None:
            old.close()
