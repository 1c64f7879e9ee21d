"""Edge-cloud wire over Zenoh: config loading, key expressions, InferRequest/InferReply, model publication."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import zenoh

from laecips_core import weights
from laecips_core.errors import ConfigError, ImageError, WeightsError, WireFormatError
from laecips_core.imaging import (
    MAX_IMAGE_PIXELS,
    decode_jpeg,
    decode_jpeg_fitted,
    decode_labels,
    encode_labels,
)

WIRE_VERSION: Final = 1
"""Version of the JSON header carried in the Zenoh attachment (docs/design.md, "Wire format")."""
DEFAULT_MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
"""Largest JPEG payload a cloud accepts by default (bytes); 640x480 q75 is ~30-60 KiB."""
DEFAULT_MAX_BUNDLE_BYTES: Final = 512 * 1024 * 1024
"""Largest weights bundle fetch_weights accepts by default (bytes)."""
MAX_ATTACHMENT_BYTES: Final = 8192
"""Largest JSON header accepted before parsing (bytes)."""
MAX_NUM_CLASSES: Final = 65535
"""M above this does not fit the uint16 label maps of the wire."""
MAX_ERROR_CHARS: Final = 2000
MAX_MODEL_VERSION: Final = 10**8 - 1
"""Highest model_version a request may name (a WeightStore holds versions in [0, 1e8))."""
SILENT_FRACTION: Final = 0.9
"""A get() that ends with no reply after this share of its timeout was a silent cloud (timeout), not none."""
"""Error texts longer than this are cut before they go on the wire."""

STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"
STATUS_UNREACHABLE: Final = "unreachable"
STATUS_TIMEOUT: Final = "timeout"
STATUS_INVALID: Final = "invalid"
WIRE_STATUSES: Final = (STATUS_OK, STATUS_ERROR)
"""Statuses a cloud may put on the wire; the other three are made by CloudClient on the edge."""
CLIENT_STATUSES: Final = (STATUS_OK, STATUS_ERROR, STATUS_UNREACHABLE, STATUS_TIMEOUT, STATUS_INVALID)

_ROBOT_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENDPOINT_RE: Final = re.compile(r"[a-z0-9]+/\S+")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_MODES: Final = ("peer", "client", "router")
# Config entries holding file paths: resolved against the json5 file's folder when relative.
_PATH_KEYS: Final = (
    "transport/link/tls/root_ca_certificate",
    "transport/link/tls/listen_certificate",
    "transport/link/tls/listen_private_key",
    "transport/link/tls/connect_certificate",
    "transport/link/tls/connect_private_key",
    "transport/auth/usrpwd/dictionary_file",
)


# --------------------------------------------------------------------------------------------- config


def find_config(name: str) -> Path | None:
    """Locate one of the project's shipped config files (laecips_bringup's ``config/<name>``).

    Looks in the installed ``share/laecips_bringup/config`` of every prefix on ``AMENT_PREFIX_PATH``
    (a sourced colcon workspace), then in ``$LAECIPS_ROOT/src/laecips_bringup/config`` (set by
    scripts/env.sh), then in the source checkout this module lives in.

    Args:
        name: File name inside config/, e.g. "cloud.json5" or "tls/edge.json5".

    Returns:
        The path, or None when no such file exists.
    """
    folders = [
        Path(prefix) / "share" / "laecips_bringup" / "config"
        for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
        if prefix
    ]
    checkouts = [Path(os.environ["LAECIPS_ROOT"])] if os.environ.get("LAECIPS_ROOT") else []
    checkouts.append(Path(__file__).resolve().parents[3])
    folders += [root / "src" / "laecips_bringup" / "config" for root in checkouts]
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _check_endpoints(what: str, endpoints: list[str]) -> None:
    if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        raise ConfigError(f"zenoh {what} endpoints must be a list of strings like 'tcp/127.0.0.1:7447'")
    for endpoint in endpoints:
        if not _ENDPOINT_RE.fullmatch(endpoint):
            raise ConfigError(
                f"zenoh {what} endpoint {endpoint!r} is not '<protocol>/<address>', e.g. 'tcp/127.0.0.1:7447'"
            )


def _insert(config: zenoh.Config, key: str, value: Any) -> None:
    try:
        config.insert_json5(key, json.dumps(value))
    except zenoh.ZError as err:
        raise ConfigError(
            f"zenoh config key {key!r} refused value {value!r}: {err}; see zenoh's DEFAULT_CONFIG.json5"
        ) from err


def _loopback(endpoint: str) -> str:
    return endpoint.replace("[::]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1")


def load_zenoh_config(
    path: str | None = None,
    *,
    mode: str | None = None,
    listen: list[str] | None = None,
    connect: list[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> zenoh.Config:
    """Build the one Zenoh config of a process: a json5 file, then explicit overrides.

    Relative certificate/key/dictionary paths in the file are resolved against the file's folder, so the
    TLS variants in config/tls/ work from any working directory. Multicast scouting is ALWAYS forced off
    (the network rule of this project): peers only meet through explicit listen/connect endpoints. Where
    neither the file nor the arguments set listen endpoints, Zenoh's implicit ones (every interface) are
    narrowed to 127.0.0.1.

    Args:
        path: json5 file (e.g. config/cloud.json5); None or "" starts from Zenoh's defaults (peer mode).
        mode: "peer", "client" or "router"; None keeps the file's.
        listen: Endpoints to listen on (replace the file's), e.g. ["tcp/127.0.0.1:7447"].
        connect: Endpoints to connect to (replace the file's).
        overrides: Further entries, {"transport/shared_memory/enabled": False, ...}; values are plain
            Python (dumped as JSON), keys are Zenoh's slash-separated config paths.

    Returns:
        A zenoh.Config ready for zenoh.open().

    Raises:
        ConfigError: missing/unreadable file, json5 syntax error, unknown key, bad mode or endpoint.
    """
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"zenoh config {file} does not exist; pass an existing json5 file or ''")
        try:
            config = zenoh.Config.from_json5(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read zenoh config {file}: {err}") from err
        except zenoh.ZError as err:
            raise ConfigError(f"zenoh config {file} is not valid json5 for zenoh: {err}") from err
        for key in _PATH_KEYS:
            value = json.loads(config.get_json(key))
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                _insert(config, key, str((file.parent / value).resolve()))
    else:
        config = zenoh.Config()
    if mode is not None:
        if mode not in _MODES:
            raise ConfigError(f"zenoh mode {mode!r} is not one of {_MODES}")
        _insert(config, "mode", mode)
    if listen is not None:
        _check_endpoints("listen", listen)
        _insert(config, "listen/endpoints", listen)
    if connect is not None:
        _check_endpoints("connect", connect)
        _insert(config, "connect/endpoints", connect)
    for key, value in (overrides or {}).items():
        _insert(config, key, value)
    implicit = json.loads(config.get_json("listen/endpoints"))
    if isinstance(implicit, dict):  # Zenoh's per-mode default listens on every interface: narrow it
        _insert(config, "listen/endpoints", {m: [_loopback(e) for e in eps] for m, eps in implicit.items()})
    # The network rule: never multicast, whatever the file or the overrides say.
    _insert(config, "scouting/multicast/enabled", False)
    return config


def open_session(config: zenoh.Config, *, retry_s: float = 0.0, period_s: float = 0.2) -> zenoh.Session:
    """Open a Zenoh session, turning Zenoh's errors (port in use, bad certificate) into ConfigError.

    A client-mode session needs its router at start: with retry_s > 0 the open is retried every
    period_s until it succeeds or retry_s seconds passed (e.g. nodes started just before the router).

    Args:
        config: From load_zenoh_config.
        retry_s: How long to keep retrying (seconds; 0 tries once).
        period_s: Pause between tries (seconds).

    Returns:
        The open session; close it (or use it in a ``with`` block).

    Raises:
        ConfigError: the last attempt's error (router not reachable, port in use, bad certificate).
    """
    deadline = time.monotonic() + max(0.0, retry_s)
    while True:
        try:
            return zenoh.open(config)
        except zenoh.ZError as err:
            if time.monotonic() + period_s > deadline:
                raise ConfigError(
                    f"cannot open the zenoh session: {err}; check that the router/peer is up, the "
                    "endpoints (port in use?) and the certificates"
                ) from err
        time.sleep(period_s)


def config_endpoints(config: zenoh.Config, which: str = "listen") -> list[str]:
    """Return the endpoints a config listens on or connects to ("listen" or "connect")."""
    value = json.loads(config.get_json(f"{which}/endpoints"))
    if isinstance(value, dict):  # per-mode form {"router": [...], "peer": [...]}
        mode = json.loads(config.get_json("mode")) or "peer"
        value = value.get(mode, [])
    return [str(v) for v in value or []]


# ----------------------------------------------------------------------------------------------- keys


def validate_robot_id(robot_id: str) -> str:
    """Check a robot id ([A-Za-z0-9_-], 1-64 chars): it becomes one chunk of every key expression.

    Raises:
        ConfigError: the id would change the meaning of the keys (slash, wildcard, empty...).
    """
    if not isinstance(robot_id, str) or not _ROBOT_ID_RE.fullmatch(robot_id):
        raise ConfigError(
            f"robot id {robot_id!r} must be 1-64 characters of [A-Za-z0-9_-] (it is a key chunk)"
        )
    return robot_id


def infer_key(robot_id: str) -> str:
    """Key of the cloud's inference queryable for one robot: ``laecips/<robot_id>/infer``."""
    return f"laecips/{validate_robot_id(robot_id)}/infer"


def update_key(robot_id: str) -> str:
    """Key of the model-update announcements for one robot: ``laecips/<robot_id>/model/update``."""
    return f"laecips/{validate_robot_id(robot_id)}/model/update"


def weights_key(robot_id: str, version: int) -> str:
    """Key serving one weights bundle: ``laecips/<robot_id>/model/weights/<version>``."""
    if not _is_int(version) or version < 0:
        raise ConfigError(f"weights version {version!r} must be an int >= 0")
    return f"laecips/{validate_robot_id(robot_id)}/model/weights/{version}"


# ------------------------------------------------------------------------------------- header parsing


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _parse_header(attachment: bytes | None, what: str) -> dict[str, Any]:
    if attachment is None or len(attachment) == 0:
        raise WireFormatError(f"{what} has no attachment; the JSON header v{WIRE_VERSION} is required")
    if len(attachment) > MAX_ATTACHMENT_BYTES:
        raise WireFormatError(f"{what} header is {len(attachment)} bytes, more than {MAX_ATTACHMENT_BYTES}")
    try:
        header = json.loads(bytes(attachment).decode("utf-8"))
    except RecursionError as err:  # e.g. thousands of nested "[": json recurses once per level
        raise WireFormatError(f"{what} header is not UTF-8 JSON: nested too deeply ({err})") from err
    except ValueError as err:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        raise WireFormatError(f"{what} header is not UTF-8 JSON: {err}") from err
    if not isinstance(header, dict):
        raise WireFormatError(f"{what} header must be a JSON object, got {type(header).__name__}")
    version = header.get("v")
    if not _is_int(version) or version != WIRE_VERSION:
        raise WireFormatError(
            f"{what} wire version {version!r} is not supported (this side speaks v{WIRE_VERSION}); "
            "update the older side"
        )
    return header


def _get_int(header: Mapping[str, Any], key: str, what: str, lo: int, hi: int) -> int:
    value: Any = header.get(key)
    if not _is_int(value):
        raise WireFormatError(f"{what} field {key!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise WireFormatError(f"{what} field {key!r}={value} is outside [{lo}, {hi}]")
    return int(value)


def _get_float(header: Mapping[str, Any], key: str, what: str, lo: float = 0.0) -> float:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireFormatError(f"{what} field {key!r} must be a finite number, got {value!r}")
    if value < lo:
        raise WireFormatError(f"{what} field {key!r}={value} is below {lo}")
    return float(value)


def _get_str(header: Mapping[str, Any], key: str, what: str, max_chars: int) -> str:
    value = header.get(key)
    if not isinstance(value, str):
        raise WireFormatError(f"{what} field {key!r} must be a string, got {value!r}")
    if len(value) > max_chars:
        raise WireFormatError(f"{what} field {key!r} is {len(value)} characters, more than {max_chars}")
    return value


def _check_size(width: int, height: int, what: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise WireFormatError(f"{what} image {width}x{height} exceeds MAX_IMAGE_PIXELS={MAX_IMAGE_PIXELS}")


# -------------------------------------------------------------------------------------------- request


@dataclass(frozen=True)
class InferRequest:
    """One hard frame x sent by the edge to the cloud for F(x) (Algorithm 1 on the cloud).

    Attributes:
        robot_id: Robot that sent it (key chunk, [A-Za-z0-9_-]).
        frame_id: Edge-side frame counter (int >= 0), echoed in the reply.
        stamp: Camera stamp of the frame (seconds).
        model_version: Version of the edge's f, so the cloud fuses with the same f.
        num_classes: M of the edge's f.
        width: Image width (pixels).
        height: Image height (pixels).
        jpeg: The frame, JPEG-encoded RGB (imaging.encode_jpeg).
    """

    robot_id: str
    frame_id: int
    stamp: float
    model_version: int
    num_classes: int
    width: int
    height: int
    jpeg: bytes

    WHAT: ClassVar[str] = "infer request"

    def _header(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "robot_id": self.robot_id,
            "frame_id": self.frame_id,
            "stamp": self.stamp,
            "model_version": self.model_version,
            "num_classes": self.num_classes,
            "width": self.width,
            "height": self.height,
            "encoding": "jpeg",
        }

    def encode(self) -> tuple[bytes, bytes]:
        """Return (payload, attachment): the JPEG bytes and the UTF-8 JSON header v1.

        Raises:
            WireFormatError: a field is out of range (the same checks the cloud applies).
        """
        header = self._header()
        payload = bytes(self.jpeg)
        _validate_request(header, payload, max(len(payload), 1))
        return payload, json.dumps(header, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(
        cls, payload: bytes | None, attachment: bytes | None, *, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    ) -> InferRequest:
        """Parse and validate a request received by the cloud.

        Args:
            payload: JPEG bytes (at most max_bytes).
            attachment: JSON header v1.
            max_bytes: Largest payload accepted (bytes).

        Returns:
            The request; the JPEG itself is checked only for its SOI marker (decode it with rgb()).

        Raises:
            WireFormatError: wrong version, missing/mistyped field, bad size, oversized or non-JPEG payload.
        """
        header = _parse_header(attachment, cls.WHAT)
        data = bytes(payload) if payload is not None else b""
        fields = _validate_request(header, data, max_bytes)
        return cls(jpeg=data, **fields)

    def rgb(self, fit_pixels: int | None = None) -> np.ndarray:
        """Decode the JPEG into (height, width, 3) uint8 RGB, checking it matches the header.

        Args:
            fit_pixels: When given and the frame is larger, decode it downscaled (aspect kept) to at
                most this many pixels (imaging.decode_jpeg_fitted: libjpeg's cheap DCT scaling).

        Returns:
            (height, width, 3) uint8, or the downscaled (h, w, 3) with h * w <= fit_pixels.

        Raises:
            WireFormatError: undecodable JPEG or a size different from width x height.
        """
        try:
            if fit_pixels is None:
                image = decode_jpeg(self.jpeg, max_pixels=self.width * self.height)
                full = image.shape[:2]
            else:
                image, full = decode_jpeg_fitted(self.jpeg, fit_pixels, max_pixels=self.width * self.height)
        except (ImageError, WireFormatError) as err:
            raise WireFormatError(
                f"{self.WHAT} JPEG cannot be decoded as the header's {self.width}x{self.height} image: {err}"
            ) from err
        if tuple(full) != (self.height, self.width) or image.ndim != 3 or image.shape[2] != 3:
            raise WireFormatError(
                f"{self.WHAT} JPEG is {full[1]}x{full[0]} but the header says {self.width}x{self.height}"
            )
        return image


def _validate_request(header: Mapping[str, Any], payload: bytes, max_bytes: int) -> dict[str, Any]:
    what = InferRequest.WHAT
    if header.get("encoding") != "jpeg":
        raise WireFormatError(f"{what} encoding {header.get('encoding')!r} is not supported; send 'jpeg'")
    robot_id = _get_str(header, "robot_id", what, 64)
    try:
        validate_robot_id(robot_id)
    except ConfigError as err:
        raise WireFormatError(str(err)) from err
    fields: dict[str, Any] = {
        "robot_id": robot_id,
        "frame_id": _get_int(header, "frame_id", what, 0, 2**63 - 1),
        "stamp": _get_float(header, "stamp", what, lo=-math.inf),
        "model_version": _get_int(header, "model_version", what, 0, MAX_MODEL_VERSION),
        "num_classes": _get_int(header, "num_classes", what, 1, MAX_NUM_CLASSES),
        "width": _get_int(header, "width", what, 1, 1 << 16),
        "height": _get_int(header, "height", what, 1, 1 << 16),
    }
    _check_size(fields["width"], fields["height"], what)
    if len(payload) == 0:
        raise WireFormatError(f"{what} has an empty payload; send the JPEG-encoded frame")
    if len(payload) > max_bytes:
        raise WireFormatError(f"{what} payload is {len(payload)} bytes, more than max_bytes={max_bytes}")
    if payload[:2] != b"\xff\xd8":
        raise WireFormatError(f"{what} payload does not start with a JPEG SOI marker")
    return fields


# ---------------------------------------------------------------------------------------------- reply


@dataclass(frozen=True)
class InferReply:
    """The cloud's answer to one InferRequest: F(x) labels, or why there are none.

    Attributes:
        status: "ok" or "error" on the wire; CloudClient adds "unreachable" (no cloud answered),
            "timeout" (deadline passed) and "invalid" (the reply failed validation).
        error: Empty when ok, else the reason.
        frame_id: Echo of the request's frame_id (-1 when no reply came).
        model_version: Version of the cloud's copy of f used for the fusion.
        num_masks: Number of LVM masks fused (K).
        lvm_s: Seconds in the large vision model.
        fusion_s: Seconds in Algorithm 1.
        cloud_s: Seconds from request arrival at the cloud to the reply.
        labels: (H, W) uint8 (uint16 when M > 255) fused labels F(x); None unless status is "ok".
    """

    status: str
    error: str = ""
    frame_id: int = -1
    model_version: int = 0
    num_masks: int = 0
    lvm_s: float = 0.0
    fusion_s: float = 0.0
    cloud_s: float = 0.0
    labels: np.ndarray | None = None

    WHAT: ClassVar[str] = "infer reply"

    @property
    def ok(self) -> bool:
        """True when the reply carries valid fused labels."""
        return self.status == STATUS_OK and self.labels is not None

    def encode(self) -> tuple[bytes, bytes]:
        """Return (payload, attachment): imaging.encode_labels(labels) (empty on error) and the JSON header.

        Raises:
            WireFormatError: status not "ok"/"error", "ok" without labels, labels not (H, W) uint8/uint16.
        """
        if self.status not in WIRE_STATUSES:
            raise WireFormatError(
                f"{self.WHAT} status {self.status!r} cannot be sent; use one of {WIRE_STATUSES}"
            )
        payload = b""
        if self.status == STATUS_OK:
            labels = self.labels
            if labels is None or labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
                raise WireFormatError(f"{self.WHAT} with status ok needs (H, W) uint8/uint16 labels")
            payload = encode_labels(labels)
        header = {
            "v": WIRE_VERSION,
            "status": self.status,
            "error": self.error[:MAX_ERROR_CHARS],
            "frame_id": int(self.frame_id),
            "model_version": int(self.model_version),
            "num_masks": int(self.num_masks),
            "lvm_s": float(self.lvm_s),
            "fusion_s": float(self.fusion_s),
            "cloud_s": float(self.cloud_s),
        }
        return payload, json.dumps(header, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(
        cls,
        payload: bytes | None,
        attachment: bytes | None,
        *,
        expected_shape: tuple[int, int] | None = None,
        num_classes: int | None = None,
    ) -> InferReply:
        """Parse and validate a reply received by the edge; a lying cloud is rejected.

        Args:
            payload: encode_labels bytes (empty when status is "error").
            attachment: JSON header v1.
            expected_shape: (H, W) the labels must have (the request's height, width).
            num_classes: M; every label must be < M.

        Raises:
            WireFormatError: bad header, undecodable labels, wrong shape/dtype, label >= num_classes.
        """
        what = cls.WHAT
        header = _parse_header(attachment, what)
        status = header.get("status")
        if status not in WIRE_STATUSES:
            raise WireFormatError(f"{what} status {status!r} is not one of {WIRE_STATUSES}")
        fields: dict[str, Any] = {
            "status": status,
            "error": _get_str(header, "error", what, MAX_ERROR_CHARS),
            "frame_id": _get_int(header, "frame_id", what, -1, 2**63 - 1),
            "model_version": _get_int(header, "model_version", what, 0, 2**32 - 1),
            "num_masks": _get_int(header, "num_masks", what, 0, 2**31 - 1),
            "lvm_s": _get_float(header, "lvm_s", what),
            "fusion_s": _get_float(header, "fusion_s", what),
            "cloud_s": _get_float(header, "cloud_s", what),
        }
        if status == STATUS_ERROR:
            return cls(**fields)
        data = bytes(payload) if payload is not None else b""
        if not data:
            raise WireFormatError(f"{what} with status ok has no labels payload")
        if expected_shape is not None:
            max_pixels = int(expected_shape[0]) * int(expected_shape[1])
        else:
            max_pixels = MAX_IMAGE_PIXELS
        try:
            labels = decode_labels(data, max_pixels=max_pixels)
        except (ImageError, WireFormatError) as err:
            raise WireFormatError(f"{what} labels payload cannot be decoded: {err}") from err
        if labels.ndim != 2 or labels.dtype not in (np.uint8, np.uint16):
            raise WireFormatError(
                f"{what} labels must be (H, W) uint8/uint16, got {labels.shape} {labels.dtype}"
            )
        if expected_shape is not None and tuple(labels.shape) != tuple(expected_shape):
            raise WireFormatError(
                f"{what} labels have shape {labels.shape}, expected {tuple(expected_shape)}"
            )
        if num_classes is not None and labels.size and int(labels.max()) >= num_classes:
            raise WireFormatError(
                f"{what} label {int(labels.max())} is out of range for {num_classes} classes"
            )
        return cls(labels=labels, **fields)


def _zbytes(value: zenoh.ZBytes | None) -> bytes | None:
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

    Every network condition becomes a status instead of an exception: no queryable -> "unreachable" (at
    once), deadline passed -> "timeout", malformed/lying reply -> "invalid". A link that went silent
    without closing can block Zenoh up to its close timeout (~5 s), hence: never on a camera callback.

    Args:
        session: An open Zenoh session.
        robot_id: This robot's id (key chunk).
        timeout_s: Deadline of one request (seconds, > 0).
    """

    def __init__(self, session: zenoh.Session, robot_id: str, timeout_s: float) -> None:
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigError(f"CloudClient timeout_s={timeout_s!r} must be a finite number > 0 (seconds)")
        self.robot_id = validate_robot_id(robot_id)
        self.timeout_s = float(timeout_s)
        self._session = session
        self._querier = session.declare_querier(
            infer_key(robot_id),
            target=zenoh.QueryTarget.BEST_MATCHING,
            timeout=self.timeout_s,
            congestion_control=zenoh.CongestionControl.BLOCK,
        )

    def available(self) -> bool:
        """True when a cloud queryable for this robot is currently known (cheap; no network round trip)."""
        try:
            status: Any = self._querier.matching_status  # a MatchingStatus at run time (the stub says bool)
            return bool(getattr(status, "matching", status))
        except zenoh.ZError:
            return False

    def infer(self, request: InferRequest) -> InferReply:
        """Send one request and wait for the first reply or the deadline.

        Args:
            request: Its robot_id must be this client's.

        Returns:
            The validated reply (labels of shape (request.height, request.width), all < num_classes), or
            an InferReply whose status says what went wrong.

        Raises:
            ConfigError: request.robot_id is not this client's robot (a programming error).
            WireFormatError: the request itself is malformed (a programming error).
        """
        if request.robot_id != self.robot_id:
            raise ConfigError(
                f"request for robot {request.robot_id!r} sent through the client of {self.robot_id!r}"
            )
        payload, attachment = request.encode()
        started = time.monotonic()
        try:
            replies = self._querier.get(payload=payload, attachment=attachment)
            reply = next(iter(replies), None)
        except zenoh.ZError as err:
            return InferReply(status=STATUS_UNREACHABLE, error=f"zenoh: {err}", frame_id=request.frame_id)
        if reply is None:
            waited = time.monotonic() - started
            if waited >= SILENT_FRACTION * self.timeout_s:  # somebody took the query and never answered
                return InferReply(
                    status=STATUS_TIMEOUT,
                    error=f"no reply from {infer_key(self.robot_id)} within {self.timeout_s:g} s "
                    f"(waited {waited:.2f} s): the cloud is silent or overloaded",
                    frame_id=request.frame_id,
                )
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
                _zbytes(sample.payload),
                _zbytes(sample.attachment),
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
        """Undeclare the querier (the session stays open)."""
        try:
            self._querier.undeclare()
        except zenoh.ZError:
            pass


# ------------------------------------------------------------------------------------- model updates


@dataclass(frozen=True)
class ModelAnnouncement:
    """A new edge bundle (f and h) from the continual trainer (Eq. 13, 14); mirrors laecips_msgs/ModelUpdate.

    Attributes:
        version: Monotonic version (>= 1 for trained bundles; 0 is the factory default).
        sha256: Hex sha256 of the safetensors bundle bytes.
        uri: Where to get them: "zenoh:<weights_key>" or "file:///path" (accepted by receivers only inside
            their own weight store); "" means weights_key(robot, version).
        signer: Name of the Ed25519 key that signed the announcement.
        signature: Base64 Ed25519 signature over ``statement(robot_id)``: every field above and below
            plus the robot it is for (sign_announcement / verify_announcement).
        model_name: Edge model registry name (checked against the running f).
        num_classes: M.
        stamp: When the trainer produced it (seconds since the epoch).
    """

    version: int
    sha256: str
    uri: str
    signer: str
    signature: str
    model_name: str
    num_classes: int
    stamp: float

    WHAT: ClassVar[str] = "model announcement"

    def to_json(self) -> str:
        """Serialise (with "v": 1) after validating every field."""
        data = {"v": WIRE_VERSION, **dataclasses.asdict(self)}
        ModelAnnouncement._validate(data)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelAnnouncement:
        """Parse and validate an announcement (the signature is checked by verify_announcement).

        Raises:
            WireFormatError: not JSON v1 (nesting too deep, not UTF-8 included), a field missing or out of
                range, sha256 not 64 hex chars, signature not base64.
        """
        try:
            raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        except (UnicodeEncodeError, TypeError) as err:
            raise WireFormatError(f"{cls.WHAT} is not UTF-8 text: {err}") from err
        return cls(**cls._validate(_parse_header(raw, cls.WHAT)))

    def effective_uri(self, robot_id: str) -> str:
        """The uri, with "" spelled out as ``zenoh:<weights_key(robot_id, version)>``."""
        return self.uri or "zenoh:" + weights_key(robot_id, self.version)

    def statement(self, robot_id: str) -> bytes:
        """The bytes the signature covers: every field but the signature, and robot_id (canonical JSON).

        "" and the explicit default uri give the same statement (publish_model fills the uri in).
        """
        return weights.announcement_statement(
            {
                "robot_id": validate_robot_id(robot_id),
                "version": int(self.version),
                "model_name": self.model_name,
                "num_classes": int(self.num_classes),
                "uri": self.effective_uri(robot_id),
                "sha256": self.sha256,
                "stamp": float(self.stamp),
                "signer": self.signer,
            }
        )

    def signature_record(self, robot_id: str) -> str:
        """The ``.sig`` sidecar text keeping this signed announcement (weights.signature_record)."""
        fields = json.loads(self.statement(robot_id))
        del fields["format"]
        return weights.signature_record(fields, self.signature)

    @classmethod
    def _validate(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        what = cls.WHAT
        fields: dict[str, Any] = {
            "version": _get_int(data, "version", what, 0, 2**32 - 1),
            "sha256": _get_str(data, "sha256", what, 64),
            "uri": _get_str(data, "uri", what, 4096),
            "signer": _get_str(data, "signer", what, 256),
            "signature": _get_str(data, "signature", what, 1024),
            "model_name": _get_str(data, "model_name", what, 128),
            "num_classes": _get_int(data, "num_classes", what, 1, MAX_NUM_CLASSES),
            "stamp": _get_float(data, "stamp", what),
        }
        if not _SHA256_RE.fullmatch(fields["sha256"]):
            raise WireFormatError(f"{what} sha256 must be 64 lowercase hex characters")
        if not fields["model_name"]:
            raise WireFormatError(f"{what} model_name is empty")
        if fields["signature"]:
            try:
                base64.b64decode(fields["signature"], validate=True)
            except (binascii.Error, ValueError) as err:
                raise WireFormatError(f"{what} signature is not base64: {err}") from err
        if fields["uri"] and not fields["uri"].startswith(("zenoh:", "file://")):
            raise WireFormatError(f"{what} uri {fields['uri']!r} must start with 'zenoh:' or 'file://'")
        return fields


def sign_announcement(
    announcement: ModelAnnouncement, robot_id: str, private_key: str | Path | bytes
) -> ModelAnnouncement:
    """Sign every field of an announcement for one robot (trainer side).

    An empty uri is first spelled out as ``zenoh:<weights_key>``, so what goes on the wire is what was
    signed.

    Args:
        announcement: The fields to announce (its signature is replaced).
        robot_id: The robot it is for (part of what is signed).
        private_key: The trainer's Ed25519 key (PEM path or bytes, weights.generate_keypair).

    Returns:
        The announcement with uri filled in and ``signature`` set.
    """
    filled = dataclasses.replace(announcement, uri=announcement.effective_uri(robot_id), signature="")
    return dataclasses.replace(
        filled, signature=weights.sign_message(private_key, filled.statement(robot_id))
    )


def verify_announcement(
    announcement: ModelAnnouncement, robot_id: str, public_key: str | Path | bytes
) -> None:
    """Check that the trusted key signed exactly these fields for exactly this robot.

    Raises:
        WeightsError: unsigned; signed over the sha256 only (an old trainer); or signed for other fields
            (another version, uri, robot, model, M, stamp or signer: a replayed or altered announcement).
    """
    if not announcement.signature:
        raise WeightsError(
            "the announcement is unsigned but a trusted public key is set; sign bundles on the trainer"
        )
    try:
        weights.verify_message(
            public_key,
            announcement.statement(robot_id),
            announcement.signature,
            f"announcement v{announcement.version} signature does not cover these fields (robot "
            f"{robot_id!r}, version {announcement.version}, uri {announcement.effective_uri(robot_id)!r}, "
            f"model {announcement.model_name!r}, M={announcement.num_classes}, stamp {announcement.stamp}, "
            f"signer {announcement.signer!r}): it was made for another announcement or by another key; "
            "refusing it",
        )
        return
    except WeightsError as err:
        fields_error = err
    try:
        weights.verify_digest(public_key, announcement.sha256, announcement.signature)
    except WeightsError:
        raise fields_error from None
    raise WeightsError(
        f"announcement v{announcement.version} is signed over its sha256 only, which lets anyone reuse it "
        "with another version or uri; refusing it (update the trainer: it must sign every field)"
    )


class ModelPublication:
    """What publish_model keeps alive: the weights queryable and the latest-announcement queryable.

    Keep it while the version may still be fetched; close() undeclares both.
    """

    def __init__(self, announcement: ModelAnnouncement, queryables: list[zenoh.Queryable]) -> None:
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


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    digest = _sha256_hex(data)
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


def _file_uri_path(uri: str, store: weights.WeightStore | None) -> Path:
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
    store: weights.WeightStore | None = None,
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
        data = weights.read_limited(path, max_bytes, follow_symlinks=False)
    else:
        if uri and uri != "zenoh:" + key:
            raise WeightsError(
                f"announcement uri {uri!r} is not {'zenoh:' + key!r}; refusing to fetch elsewhere"
            )
        data = _fetch_over_zenoh(session, key, announcement, timeout_s, max_bytes)
    digest = _sha256_hex(data)
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
    store: weights.WeightStore,
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
    (``<bundle>.sig``, weights.signature_record) so the bundle can be re-verified later.

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
        if weights.sha256_file(path) != announcement.sha256:
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
        bundle = weights.parse_bundle(
            data, expected_sha256=announcement.sha256, source=f"{robot_id} v{version}"
        )
        if (
            bundle.model_name != model_name
            or bundle.version != version
            or (num_classes is not None and bundle.num_classes != num_classes)
        ):
            raise WeightsError(
                f"bundle is {bundle.model_name!r} v{bundle.version} M={bundle.num_classes}, announced as "
                f"{model_name!r} v{version} M={announcement.num_classes}"
            )
        try:
            store.put(data, version)
            fetched = True
        except WeightsError:
            if not path.is_file():  # not a concurrent writer of the same version: a real failure
                raise
        if weights.sha256_file(path) != announcement.sha256:
            raise WeightsError(f"{path} holds different weights for v{version}; move it away first")
    if announcement.signature and (public_key or fetched or weights.read_signature(path) is None):
        # an unverified signature never replaces a sidecar already there (e.g. the trainer's)
        weights.write_signature(path, announcement.signature_record(robot_id))
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
                header = _parse_header(_zbytes(sample.attachment), "weights reply")
                size = _get_int(header, "size", "weights reply", 1, max_bytes)
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


def wait_until(predicate: Callable[[], object], timeout_s: float, period_s: float = 0.05) -> bool:
    """Poll predicate() until it is true or timeout_s passes (bounded helper for connection set-up).

    Returns:
        The last value of predicate() as a bool.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(period_s)
