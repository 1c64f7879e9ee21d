"""The edge-cloud wire schema of Algorithm 2's upload: InferRequest (hard frame x) and InferReply (F(x)).

Pure encode/decode with strict validation (a lying peer is rejected, never trusted); no Zenoh import, so
the schema is usable and testable without a Zenoh runtime (docs/design.md, "Wire format").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np

from laecips_core.errors import ConfigError, ImageError, WireFormatError
from laecips_core.image_arrays import MAX_IMAGE_PIXELS
from laecips_core.image_codecs import decode_jpeg, decode_jpeg_fitted, decode_labels, encode_labels
from laecips_core.transport.keys import validate_robot_id

__all__ = [
    "CLIENT_STATUSES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "MAX_ATTACHMENT_BYTES",
    "MAX_ERROR_CHARS",
    "MAX_MODEL_VERSION",
    "MAX_NUM_CLASSES",
    "STATUS_ERROR",
    "STATUS_INVALID",
    "STATUS_OK",
    "STATUS_TIMEOUT",
    "STATUS_UNREACHABLE",
    "WIRE_STATUSES",
    "WIRE_VERSION",
    "InferReply",
    "InferRequest",
]

WIRE_VERSION: Final = 1
"""Version of the JSON header carried in the Zenoh attachment (docs/design.md, "Wire format")."""
DEFAULT_MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
"""Largest JPEG payload a cloud accepts by default (bytes); 640x480 q75 is ~30-60 KiB."""
MAX_ATTACHMENT_BYTES: Final = 8192
"""Largest JSON header accepted before parsing (bytes)."""
MAX_NUM_CLASSES: Final = 65535
"""M above this does not fit the uint16 label maps of the wire."""
MAX_ERROR_CHARS: Final = 2000
"""Error texts longer than this are cut before they go on the wire."""
MAX_MODEL_VERSION: Final = 10**8 - 1
"""Highest model_version a request may name (a WeightStore holds versions in [0, 1e8))."""

STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"
STATUS_UNREACHABLE: Final = "unreachable"
STATUS_TIMEOUT: Final = "timeout"
STATUS_INVALID: Final = "invalid"
WIRE_STATUSES: Final = (STATUS_OK, STATUS_ERROR)
"""Statuses a cloud may put on the wire; the other three are made by CloudClient on the edge."""
CLIENT_STATUSES: Final = (STATUS_OK, STATUS_ERROR, STATUS_UNREACHABLE, STATUS_TIMEOUT, STATUS_INVALID)


def is_int(value: object) -> bool:
    """Whether a header value is an integer (numpy's included, bool excluded)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def parse_header(attachment: bytes | None, what: str) -> dict[str, Any]:
    """Parse a JSON header v1 (size-limited before parsing); WireFormatError names ``what`` and the fault."""
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
    if not is_int(version) or version != WIRE_VERSION:
        raise WireFormatError(
            f"{what} wire version {version!r} is not supported (this side speaks v{WIRE_VERSION}); "
            "update the older side"
        )
    return header


def header_int(header: Mapping[str, Any], key: str, what: str, lo: int, hi: int) -> int:
    """header[key] as an int in [lo, hi], else WireFormatError."""
    value: Any = header.get(key)
    if not is_int(value):
        raise WireFormatError(f"{what} field {key!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise WireFormatError(f"{what} field {key!r}={value} is outside [{lo}, {hi}]")
    return int(value)


def header_float(header: Mapping[str, Any], key: str, what: str, lo: float = 0.0) -> float:
    """header[key] as a finite float >= lo, else WireFormatError."""
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireFormatError(f"{what} field {key!r} must be a finite number, got {value!r}")
    if value < lo:
        raise WireFormatError(f"{what} field {key!r}={value} is below {lo}")
    return float(value)


def header_str(header: Mapping[str, Any], key: str, what: str, max_chars: int) -> str:
    """header[key] as a string of at most max_chars, else WireFormatError."""
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
        jpeg: The frame, JPEG-encoded RGB (image_codecs.encode_jpeg).
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
        header = parse_header(attachment, cls.WHAT)
        data = bytes(payload) if payload is not None else b""
        fields = _validate_request(header, data, max_bytes)
        return cls(jpeg=data, **fields)

    def rgb(self, fit_pixels: int | None = None) -> np.ndarray:
        """Decode the JPEG into (height, width, 3) uint8 RGB, checking it matches the header.

        Args:
            fit_pixels: When given and the frame is larger, decode it downscaled (aspect kept) to at
                most this many pixels (image_codecs.decode_jpeg_fitted: libjpeg's cheap DCT scaling).

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
    robot_id = header_str(header, "robot_id", what, 64)
    try:
        validate_robot_id(robot_id)
    except ConfigError as err:
        raise WireFormatError(str(err)) from err
    fields: dict[str, Any] = {
        "robot_id": robot_id,
        "frame_id": header_int(header, "frame_id", what, 0, 2**63 - 1),
        "stamp": header_float(header, "stamp", what, lo=-math.inf),
        "model_version": header_int(header, "model_version", what, 0, MAX_MODEL_VERSION),
        "num_classes": header_int(header, "num_classes", what, 1, MAX_NUM_CLASSES),
        "width": header_int(header, "width", what, 1, 1 << 16),
        "height": header_int(header, "height", what, 1, 1 << 16),
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
        payload_bytes: Size of the payload as received (bytes; set by decode, not sent): what the
            reply cost on the wire, so nobody re-encodes the labels to count it.
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
    payload_bytes: int = 0

    WHAT: ClassVar[str] = "infer reply"

    @property
    def ok(self) -> bool:
        """True when the reply carries valid fused labels."""
        return self.status == STATUS_OK and self.labels is not None

    def encode(self) -> tuple[bytes, bytes]:
        """Return (payload, attachment): image_codecs.encode_labels (empty on error) and the JSON header.

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
        header = parse_header(attachment, what)
        status = header.get("status")
        if status not in WIRE_STATUSES:
            raise WireFormatError(f"{what} status {status!r} is not one of {WIRE_STATUSES}")
        fields: dict[str, Any] = {
            "status": status,
            "error": header_str(header, "error", what, MAX_ERROR_CHARS),
            "frame_id": header_int(header, "frame_id", what, -1, 2**63 - 1),
            "model_version": header_int(header, "model_version", what, 0, 2**32 - 1),
            "num_masks": header_int(header, "num_masks", what, 0, 2**31 - 1),
            "lvm_s": header_float(header, "lvm_s", what),
            "fusion_s": header_float(header, "fusion_s", what),
            "cloud_s": header_float(header, "cloud_s", what),
        }
        data = bytes(payload) if payload is not None else b""
        fields["payload_bytes"] = len(data)
        if status == STATUS_ERROR:
            return cls(**fields)
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

