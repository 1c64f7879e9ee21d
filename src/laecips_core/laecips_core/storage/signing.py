"""Who may publish f and h (Algorithm 2's model updates): Ed25519 keys and signatures, .sig sidecars.

A digest signature (``sign_digest``) vouches for a file's bytes; an announcement is signed over all
its fields (``announcement_statement``: robot, version, model, M, uri, sha256, stamp, signer), and
edges and clouds keep that signed record beside a received bundle (``signature_record``,
``write_signature``), so ``verify_bundle_signature`` re-verifies the file whenever it is loaded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from laecips_core.errors import ConfigError, WeightsError, error_reason
from laecips_core.files import StrPath, atomic_write_bytes, read_limited

# ---------------------------------------------------------------------------------------------- keys


def generate_keypair(directory: StrPath, name: str = "laecips", overwrite: bool = False) -> tuple[Path, Path]:
    """Create an Ed25519 key pair for signing bundles.

    Args:
        directory: created if needed.
        name: file stem: ``<name>.key`` (PKCS#8 PEM, mode 0600) and ``<name>.pub`` (SubjectPublicKeyInfo PEM).
        overwrite: replace existing files (off by default so a trainer key is never lost by accident).

    Returns:
        (private_key_path, public_key_path).

    Raises:
        WeightsError: the files exist and ``overwrite`` is False.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    if not overwrite and (priv_path.exists() or pub_path.exists()):
        raise WeightsError(f"{priv_path} or {pub_path} exists; remove them or pass overwrite=True")
    key = Ed25519PrivateKey.generate()
    priv_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(priv_path, priv_pem, mode=0o600)
    atomic_write_bytes(pub_path, pub_pem)
    return priv_path, pub_path


def _read_pem(key: StrPath | bytes, kind: str) -> bytes:
    if isinstance(key, bytes):
        return key
    try:
        return Path(key).read_bytes()
    except OSError as err:
        raise WeightsError(
            f"cannot read the {kind} key {key}: {err}; create one with generate_keypair"
        ) from err


def sign_digest(private_key: StrPath | bytes, sha256_hex: str) -> str:
    """Sign a file's hex SHA-256 (its ASCII text) with an Ed25519 private key.

    A digest signature vouches for the bytes of a file only (a ``.sig`` sidecar); announcements are
    signed over all their fields instead (``announcement_statement``).

    Args:
        private_key: PEM file path or PEM bytes from ``generate_keypair``.
        sha256_hex: 64 hex characters.

    Returns:
        Base64 (standard alphabet) signature, 88 characters.
    """
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256_hex):
        raise ConfigError(f"sha256_hex must be 64 hex characters, got {sha256_hex!r}")
    return sign_message(private_key, sha256_hex.lower().encode("ascii"))


def sign_message(private_key: StrPath | bytes, message: bytes) -> str:
    """Sign arbitrary bytes with an Ed25519 private key.

    Args:
        private_key: PEM file path or PEM bytes from ``generate_keypair``.
        message: What to sign (a hex digest, or ``announcement_statement``'s bytes).

    Returns:
        Base64 (standard alphabet) signature, 88 characters.

    Raises:
        WeightsError: the key is unreadable or not Ed25519.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_read_pem(private_key, "private"), password=None)
    except (ValueError, TypeError) as err:
        raise WeightsError(f"the private key is not a PEM Ed25519 key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise WeightsError(f"the private key is {type(key).__name__}, not Ed25519; use generate_keypair")
    return base64.b64encode(key.sign(bytes(message))).decode("ascii")


def verify_digest(public_key: StrPath | bytes, sha256_hex: str, signature_b64: str) -> None:
    """Check an Ed25519 signature made by ``sign_digest``.

    Raises:
        WeightsError: bad key, malformed signature, or a signature that does not match (do not load).
    """
    verify_message(public_key, sha256_hex.lower().encode("ascii"), signature_b64)


def verify_message(
    public_key: StrPath | bytes,
    message: bytes,
    signature_b64: str,
    failure: str = (
        "bundle signature does not verify with the trainer's public key: the weights were not "
        "published by that trainer or were altered; do not load them"
    ),
) -> None:
    """Check an Ed25519 signature made by ``sign_message`` over ``message``.

    Args:
        public_key: PEM file path or PEM bytes of the trusted key.
        message: The signed bytes.
        signature_b64: Base64 signature.
        failure: Error text when the signature does not match.

    Raises:
        WeightsError: bad key, malformed signature, or a signature that does not match.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(_read_pem(public_key, "public"))
    except (ValueError, TypeError) as err:
        raise WeightsError(f"the public key is not a PEM Ed25519 key: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise WeightsError(f"the public key is {type(key).__name__}, not Ed25519")
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise WeightsError(f"signature is not base64: {err}") from err
    try:
        key.verify(raw, bytes(message))
    except InvalidSignature as err:
        raise WeightsError(failure) from err


# --------------------------------------------------------------------------- announcement statements


ANNOUNCEMENT_FORMAT = "laecips-announcement/1"
"""First field of every signed announcement statement (never a bare hex digest: no cross-use)."""
STATEMENT_FIELDS = ("robot_id", "version", "model_name", "num_classes", "uri", "sha256", "stamp", "signer")
"""Fields an announcement signature covers (transport.ModelAnnouncement plus the robot it is for)."""
_RECORD_FORMAT = "laecips-signed-announcement/1"


def _statement_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in STATEMENT_FIELDS if key not in fields]
    if missing:
        raise WeightsError(f"an announcement statement needs {list(STATEMENT_FIELDS)}; missing {missing}")
    out = {key: fields[key] for key in STATEMENT_FIELDS}
    types: dict[str, type | tuple[type, ...]] = {"version": int, "num_classes": int, "stamp": (int, float)}
    for key in STATEMENT_FIELDS:
        want = types.get(key, str)
        if isinstance(out[key], bool) or not isinstance(out[key], want):
            raise WeightsError(f"announcement statement field {key!r} has the wrong type: {out[key]!r}")
    out["stamp"] = float(out["stamp"])
    return out


def announcement_statement(fields: Mapping[str, Any]) -> bytes:
    """The canonical bytes an announcement signature covers (sign with ``sign_message``).

    Canonical JSON (sorted keys, no spaces, ASCII) of ``{"format": ANNOUNCEMENT_FORMAT}`` and every
    field of STATEMENT_FIELDS, so a signature made for one robot, version, uri, model, M, sha256, stamp
    or signer does not verify for any other.

    Args:
        fields: robot_id, version, model_name, num_classes, uri, sha256, stamp (seconds), signer.

    Raises:
        WeightsError: a field is missing or has the wrong type.
    """
    body = {"format": ANNOUNCEMENT_FORMAT, **_statement_fields(fields)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signature_record(fields: Mapping[str, Any], signature_b64: str) -> str:
    """A ``.sig`` sidecar text keeping a signed announcement: its statement fields and signature.

    Edges and clouds store it beside a received bundle (they cannot make a digest signature); it lets
    ``load_bundle`` re-verify the file later (sha256, version, model name and M all signed).
    """
    record = {"format": _RECORD_FORMAT, "statement": _statement_fields(fields), "signature": signature_b64}
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def parse_signature_record(text: str) -> tuple[dict[str, Any], str] | None:
    """(statement fields, signature) of a ``signature_record`` text; None for a bare digest signature.

    Raises:
        WeightsError: the text looks like a record (starts with "{") but is malformed.
    """
    if not text.lstrip().startswith("{"):
        return None
    try:
        record = json.loads(text)
    except (RecursionError, ValueError) as err:
        raise WeightsError(f"signature record is not JSON: {error_reason(err)}") from err
    if not isinstance(record, dict) or record.get("format") != _RECORD_FORMAT:
        raise WeightsError(f"signature record has no format {_RECORD_FORMAT!r}")
    statement, signature = record.get("statement"), record.get("signature")
    if not isinstance(statement, dict) or not isinstance(signature, str):
        raise WeightsError("signature record needs a 'statement' object and a 'signature' string")
    return _statement_fields(statement), signature


def verify_bundle_signature(
    public_key: StrPath | bytes, sha256_hex: str, signature: str, *, source: str = "bundle"
) -> dict[str, Any] | None:
    """Verify a bundle's ``.sig`` text: a digest signature, or a signed announcement record.

    Args:
        public_key: The trusted Ed25519 key.
        sha256_hex: The file's hex digest.
        signature: Base64 digest signature (``sign_digest``) or ``signature_record`` text.
        source: Name of the file for messages.

    Returns:
        The record's statement fields (the caller checks version, model name and M against the file),
        or None for a digest signature.

    Raises:
        WeightsError: the signature does not verify, or the record is for other bytes.
    """
    parsed = parse_signature_record(signature)
    if parsed is None:
        verify_digest(public_key, sha256_hex, signature)
        return None
    statement, signature_b64 = parsed
    verify_message(
        public_key,
        announcement_statement(statement),
        signature_b64,
        f"{source}: its signed announcement record does not verify with the trusted key; do not load it",
    )
    if str(statement["sha256"]).lower() != sha256_hex.lower():
        raise WeightsError(
            f"{source} has SHA-256 {sha256_hex}, but its signed announcement is for {statement['sha256']}"
        )
    return statement


# ------------------------------------------------------------------------------------------ sidecars


SIGNATURE_SUFFIX = ".sig"
"""Sidecar of a stored bundle (``<bundle>.sig``): the base64 Ed25519 signature of its sha256, or the
signed announcement it came with (``signature_record``)."""


def write_signature(bundle_path: StrPath, signature_b64: str) -> Path:
    """Store a signature (or a ``signature_record``) atomically beside ``bundle_path``.

    Operators copy both files for rollbacks.
    """
    return atomic_write_bytes(Path(str(bundle_path) + SIGNATURE_SUFFIX), signature_b64.encode("ascii"))


def read_signature(bundle_path: StrPath) -> str | None:
    """The base64 signature stored beside a bundle, or None when there is none (or it is unreadable)."""
    try:
        text = read_limited(str(bundle_path) + SIGNATURE_SUFFIX, 1 << 16).decode("ascii").strip()
    except (WeightsError, UnicodeDecodeError):
        return None
    return text or None
