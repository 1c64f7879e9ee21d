"""Model-update announcements (after Eq. 13 and 14 retrain f and h): the JSON schema, signing, verifying.

Pure data and Ed25519 signatures over every field plus the robot it is for; no Zenoh import (the
distribution over Zenoh is ``transport.updates``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from laecips_core.errors import WeightsError, WireFormatError
from laecips_core.storage import signing
from laecips_core.transport.keys import validate_robot_id, weights_key
from laecips_core.transport.wire import (
    MAX_NUM_CLASSES,
    WIRE_VERSION,
    header_float,
    header_int,
    header_str,
    parse_header,
)

__all__ = [
    "ModelAnnouncement",
    "sign_announcement",
    "verify_announcement",
]

_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")


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
        return cls(**cls._validate(parse_header(raw, cls.WHAT)))

    def effective_uri(self, robot_id: str) -> str:
        """The uri, with "" spelled out as ``zenoh:<weights_key(robot_id, version)>``."""
        return self.uri or "zenoh:" + weights_key(robot_id, self.version)

    def statement(self, robot_id: str) -> bytes:
        """The bytes the signature covers: every field but the signature, and robot_id (canonical JSON).

        "" and the explicit default uri give the same statement (publish_model fills the uri in).
        """
        return signing.announcement_statement(
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
        """The ``.sig`` sidecar text keeping this signed announcement (signing.signature_record)."""
        fields = json.loads(self.statement(robot_id))
        del fields["format"]
        return signing.signature_record(fields, self.signature)

    @classmethod
    def _validate(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        what = cls.WHAT
        fields: dict[str, Any] = {
            "version": header_int(data, "version", what, 0, 2**32 - 1),
            "sha256": header_str(data, "sha256", what, 64),
            "uri": header_str(data, "uri", what, 4096),
            "signer": header_str(data, "signer", what, 256),
            "signature": header_str(data, "signature", what, 1024),
            "model_name": header_str(data, "model_name", what, 128),
            "num_classes": header_int(data, "num_classes", what, 1, MAX_NUM_CLASSES),
            "stamp": header_float(data, "stamp", what),
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
        private_key: The trainer's Ed25519 key (PEM path or bytes, signing.generate_keypair).

    Returns:
        The announcement with uri filled in and ``signature`` set.
    """
    filled = dataclasses.replace(announcement, uri=announcement.effective_uri(robot_id), signature="")
    return dataclasses.replace(
        filled, signature=signing.sign_message(private_key, filled.statement(robot_id))
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
        signing.verify_message(
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
        signing.verify_digest(public_key, announcement.sha256, announcement.signature)
    except WeightsError:
        raise fields_error from None
    raise WeightsError(
        f"announcement v{announcement.version} is signed over its sha256 only, which lets anyone reuse it "
        "with another version or uri; refusing it (update the trainer: it must sign every field)"
    )

