"""Model-update distribution over Zenoh (the paper's parameter push after Eq. 13 and 14).

The trainer serves a bundle and announces it (publish_model); edges and clouds listen
(AnnouncementListener), ask for the latest when they start late (query_latest_announcement), fetch and
verify it into their weight store (fetch_into_store).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

import zenoh

from laecips_core import files
from laecips_core.errors import WeightsError, WireFormatError
from laecips_core.storage import bundle_loading, signing, weight_store
from laecips_core.transport.announcement import ModelAnnouncement, verify_announcement
from laecips_core.transport.client import error_text, zbytes
from laecips_core.transport.keys import update_key, validate_robot_id, weights_key
from laecips_core.transport.wire import MAX_ERROR_CHARS, WIRE_VERSION, header_int, parse_header

__all__ = [
    "DEFAULT_MAX_BUNDLE_BYTES",
    "AnnouncementListener",
    "ModelPublication",
    "fetch_into_store",
    "fetch_weights",
    "publish_model",
    "query_latest_announcement",
]

DEFAULT_MAX_BUNDLE_BYTES: Final = 512 * 1024 * 1024
"""Largest weights bundle fetch_weights accepts by default (bytes)."""


class ModelPublication:
    """What publish_model keeps alive: the weights queryable and the latest-announcement queryable.

    Keep it while the version may still be fetched; close() undeclares both.
    """

    def __init__(self, announcement: ModelAnnouncement, queryables: list[zenoh.Queryable[None]]) -> None:
        self.announcement = announcement
        self._queryables = queryables

    def close(self) -> None:
        """Stop serving this version (idempotent)."""
        for queryable in self._queryables:
            try:
                queryable.undeclare()
            except zenoh.ZError:
                pass
        self._queryables = []


def publish_model(
    session: zenoh.Session,
    robot_id: str,
    version: int,
    bundle_bytes: bytes,
    announcement: ModelAnnouncement,
) -> ModelPublication:
    """Serve a bundle on weights_key and announce it on update_key (trainer side).

    Declares a queryable on ``weights_key(robot_id, version)`` replying the bytes (header
    ``{"v":1,"version","sha256","size"}``), a queryable on ``update_key(robot_id)`` answering late
    joiners with this announcement (query_latest_announcement), then puts the announcement on
    ``update_key(robot_id)`` (reliable, blocking congestion control).

    Args:
        session: Open Zenoh session (the trainer's).
        robot_id: Robot the bundle is for.
        version: Bundle version; must equal announcement.version.
        bundle_bytes: The safetensors bundle.
        announcement: Announcement (sign_announcement); an empty uri is filled with "zenoh:" + weights_key,
            which the signature covers either way.

    Returns:
        The publication; keep it alive while edges may fetch this version.

    Raises:
        WeightsError: announcement.version/sha256 do not match version/bundle_bytes.
    """
    key = weights_key(robot_id, version)
    data = bytes(bundle_bytes)
    digest = files.sha256_bytes(data)
    if announcement.version != version:
        raise WeightsError(
            f"announcement says version {announcement.version} but the bundle is version {version}"
        )
    if announcement.sha256 != digest:
        raise WeightsError(
            f"announcement sha256 {announcement.sha256[:12]}... differs from the bundle's {digest[:12]}..."
        )
    if not announcement.uri:
        announcement = dataclasses.replace(announcement, uri="zenoh:" + key)
    text = announcement.to_json().encode("utf-8")
    header = json.dumps({"v": WIRE_VERSION, "version": version, "sha256": digest, "size": len(data)}).encode()

    def serve_weights(query: zenoh.Query) -> None:
        query.reply(key, data, attachment=header)

    def serve_announcement(query: zenoh.Query) -> None:
        query.reply(update_key(robot_id), text)

    queryables = [
        session.declare_queryable(key, serve_weights, complete=True),
        session.declare_queryable(update_key(robot_id), serve_announcement),
    ]
    session.put(update_key(robot_id), text, congestion_control=zenoh.CongestionControl.BLOCK)
    return ModelPublication(announcement, queryables)


def query_latest_announcement(
    session: zenoh.Session,
    robot_id: str,
    timeout_s: float = 1.0,
    *,
    public_key: str | Path | bytes | None = None,
) -> ModelAnnouncement | None:
    """Ask the trainer(s) for the newest announcement of a robot (for edges/clouds that start late).

    Malformed replies are skipped, whatever they hold; with ``public_key`` so are announcements that do
    not verify (a forged reply with a huge version cannot hide the real one).

    Returns:
        The valid announcement with the highest version, or None when nobody answered in time.
    """
    best: ModelAnnouncement | None = None
    try:
        replies = session.get(
            update_key(robot_id),
            target=zenoh.QueryTarget.ALL,
            consolidation=zenoh.ConsolidationMode.NONE,
            timeout=timeout_s,
        )
        for reply in replies:
            try:
                if reply.ok is None:
                    continue
                candidate = ModelAnnouncement.from_json(reply.ok.payload.to_bytes())
                if public_key is not None:
                    verify_announcement(candidate, robot_id, public_key)
            except Exception:  # a bad reply is skipped; the others still count
                continue
            if best is None or candidate.version > best.version:
                best = candidate
    except zenoh.ZError:
        return None
    return best


def _file_uri_path(uri: str, store: weight_store.WeightStore | None) -> Path:
    """The path of a ``file://`` uri if it names a file inside ``store``'s directory, else WeightsError.

    A uri on the wire must never make the receiver read an arbitrary local file (/dev/zero, /proc/...):
    only files of its own weight store, after resolving symbolic links and "..", are accepted.
    """
    raw = uri[len("file://") :]
    if store is None:
        raise WeightsError(
            f"announcement uri {uri!r} names a local file; file:// uris are accepted only inside the "
            "receiver's own weight store"
        )
    if not raw.startswith("/"):
        raise WeightsError(f"announcement uri {uri!r} is not an absolute file:///path")
    root = store.directory.resolve()
    try:
        path = Path(raw).resolve(strict=True)
    except (OSError, RuntimeError, ValueError) as err:  # ValueError: an embedded NUL byte
        raise WeightsError(f"announcement uri {uri!r} does not name an existing file: {err}") from err
    if not path.is_relative_to(root) or path == root:
        raise WeightsError(
            f"announcement uri {uri!r} is outside this receiver's weight store {root}; refusing to read it"
        )
    return path


def fetch_weights(
    session: zenoh.Session,
    robot_id: str,
    announcement: ModelAnnouncement,
    timeout_s: float,
    *,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    store: weight_store.WeightStore | None = None,
) -> bytes:
    """Fetch the bundle an announcement points to and verify its size and sha256 (edge/cloud side).

    The signature is not checked here (verify_announcement; fetch_into_store does both). A ``file://``
    uri is read only when it names a regular file inside ``store``; at most max_bytes + 1 bytes are read.

    Args:
        session: Open Zenoh session.
        robot_id: Robot the announcement was received for.
        announcement: From ModelAnnouncement.from_json.
        timeout_s: Deadline of the Zenoh get (seconds).
        max_bytes: Largest bundle accepted (bytes).
        store: The receiver's own weight store (the only place a file:// uri may point to).

    Returns:
        The bundle bytes, whose sha256 equals announcement.sha256.

    Raises:
        WeightsError: nobody served them, wrong size header, oversized, hash mismatch, a uri that is not
            this robot's weights key or a regular file of the receiver's own store.
    """
    key = weights_key(robot_id, announcement.version)
    uri = announcement.uri
    if uri.startswith("file://"):
        path = _file_uri_path(uri, store)
        data = files.read_limited(path, max_bytes, follow_symlinks=False)
    else:
        if uri and uri != "zenoh:" + key:
            raise WeightsError(
                f"announcement uri {uri!r} is not {'zenoh:' + key!r}; refusing to fetch elsewhere"
            )
        data = _fetch_over_zenoh(session, key, announcement, timeout_s, max_bytes)
    digest = files.sha256_bytes(data)
    if digest != announcement.sha256:
        raise WeightsError(
            f"bundle v{announcement.version} sha256 {digest[:12]}... does not match the announced "
            f"{announcement.sha256[:12]}...; refusing it"
        )
    return data


def fetch_into_store(
    session: zenoh.Session,
    robot_id: str,
    announcement: ModelAnnouncement,
    store: weight_store.WeightStore,
    *,
    model_name: str,
    num_classes: int | None,
    public_key: str | Path | None,
    timeout_s: float,
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
    allow_rollback: bool = False,
) -> tuple[Path, bool]:
    """Verify an announced bundle and keep it in ``store`` (edge and cloud side of a model update).

    Checks, before anything is fetched: the announced architecture and M match the running f; when
    ``public_key`` is given, the Ed25519 signature over the whole announcement for this robot
    (verify_announcement; an unsigned one is refused); and the version order: a version the store
    already has (the cloud shares its disk with the trainer) must hold the same bytes and is not fetched
    again, a version below the newest stored one is refused unless ``allow_rollback``. Otherwise the
    bytes are fetched (at most max_bytes), checked against the sha256 and their metadata (model name,
    version, M) and stored atomically. The signed announcement is kept beside the file
    (``<bundle>.sig``, signing.signature_record) so the bundle can be re-verified later.

    Returns:
        (path of the stored bundle, True when it was fetched now).

    Raises:
        WeightsError: any mismatch, a bad signature, an older version, nothing served, or a store
            holding other bytes.
    """
    version = announcement.version
    if announcement.model_name != model_name or (
        num_classes is not None and announcement.num_classes != num_classes
    ):
        raise WeightsError(
            f"announced {announcement.model_name} M={announcement.num_classes} does not match the running "
            f"{model_name} M={num_classes if num_classes is not None else announcement.num_classes}"
        )
    if public_key:
        verify_announcement(announcement, robot_id, public_key)
    path = store.path(version)
    fetched = False
    if path.is_file():
        if files.sha256_file(path) != announcement.sha256:
            raise WeightsError(
                f"{path} holds different weights for v{version} (announced sha256 "
                f"{announcement.sha256[:12]}...): an announcement cannot replace a stored version; move "
                "the file away first"
            )
    else:
        latest = store.latest()
        if latest is not None and version < latest and not allow_rollback:
            raise WeightsError(
                f"announced version {version} is older than the newest stored version {latest}: versions "
                "only go up; an operator rollback loads a stored file (edge_model.path) instead"
            )
        data = fetch_weights(session, robot_id, announcement, timeout_s, max_bytes=max_bytes, store=store)
        # header only (a lean edge has no torch to decode tensors); the loader decodes it later
        meta = bundle_loading.verify_bundle_bytes(
            data, expected_sha256=announcement.sha256, source=f"{robot_id} v{version}"
        )
        got_name, got_version, got_m = meta["model_name"], int(meta["version"]), int(meta["num_classes"])
        if (got_name, got_version) != (model_name, version) or num_classes not in (None, got_m):
            raise WeightsError(
                f"bundle is {got_name!r} v{got_version} M={got_m}, announced as "
                f"{model_name!r} v{version} M={announcement.num_classes}"
            )
        try:
            store.put(data, version)
            fetched = True
        except WeightsError:
            if not path.is_file():  # not a concurrent writer of the same version: a real failure
                raise
        if files.sha256_file(path) != announcement.sha256:
            raise WeightsError(f"{path} holds different weights for v{version}; move it away first")
    if announcement.signature and (public_key or fetched or signing.read_signature(path) is None):
        # an unverified signature never replaces a sidecar already there (e.g. the trainer's)
        signing.write_signature(path, announcement.signature_record(robot_id))
    return path, fetched


def _fetch_over_zenoh(
    session: zenoh.Session, key: str, announcement: ModelAnnouncement, timeout_s: float, max_bytes: int
) -> bytes:
    errors: list[str] = []
    try:
        replies = session.get(key, timeout=timeout_s)
        for reply in replies:
            try:
                if reply.ok is None:
                    errors.append(
                        error_text(reply.err.payload if reply.err is not None else None, 300) or "error"
                    )
                    continue
                sample = reply.ok
                if len(sample.payload) > max_bytes:  # checked before the bytes are copied out of Zenoh
                    errors.append(f"{len(sample.payload)} bytes, more than max_bytes={max_bytes}")
                    continue
                header = parse_header(zbytes(sample.attachment), "weights reply")
                size = header_int(header, "size", "weights reply", 1, max_bytes)
                data = sample.payload.to_bytes()
            except Exception as err:  # WireFormatError, or anything else a lying peer provokes
                errors.append(
                    str(err) if isinstance(err, WireFormatError) else f"{type(err).__name__}: {err}"
                )
                continue
            if len(data) != size:
                errors.append(f"got {len(data)} bytes but the header says {size}")
                continue
            return data
    except zenoh.ZError as err:
        raise WeightsError(f"cannot query {key}: {err}; retry when the link is back") from err
    reason = "; ".join(errors[:5]) if errors else "nobody is serving it (trainer down?)"
    raise WeightsError(f"cannot fetch bundle v{announcement.version} from {key}: {reason}")


class AnnouncementListener:
    """Subscriber on update_key(robot_id) handing valid announcements to a callback (invalid ones counted).

    The callback runs on a Zenoh thread: keep it short (enqueue). Nothing a sample holds, and nothing the
    callback raises, escapes: both are counted (``invalid``, ``errors``) with the last reason in
    ``last_error``. Late joiners can call query_latest_announcement first.

    Args:
        session: Open Zenoh session.
        robot_id: Robot whose announcements to receive.
        callback: Called with (robot_id, ModelAnnouncement).
    """

    def __init__(
        self, session: zenoh.Session, robot_id: str, callback: Callable[[str, ModelAnnouncement], None]
    ) -> None:
        self.robot_id = validate_robot_id(robot_id)
        self.invalid = 0
        self.errors = 0
        self.last_error = ""
        self._lock = threading.Lock()
        self._callback = callback
        self._subscriber = session.declare_subscriber(update_key(robot_id), self._on_sample)

    def _on_sample(self, sample: zenoh.Sample) -> None:
        try:
            announcement = ModelAnnouncement.from_json(sample.payload.to_bytes())
        except Exception as err:  # WireFormatError, or anything else: never out of a Zenoh callback
            with self._lock:
                self.invalid += 1
                self.last_error = str(err)[:MAX_ERROR_CHARS]
            return
        try:
            self._callback(self.robot_id, announcement)
        except Exception as err:
            with self._lock:
                self.errors += 1
                self.last_error = f"announcement callback failed: {type(err).__name__}: {err}"[
                    :MAX_ERROR_CHARS
                ]

    def close(self) -> None:
        """Undeclare the subscriber."""
        try:
            self._subscriber.undeclare()
        except zenoh.ZError:
            pass

