"""Weight files: safetensors bundles of f and h, atomic writes, SHA-256, Ed25519 signing, versions."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import stat
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from laecips_core import classes
from laecips_core.errors import ConfigError, WeightsError

BUNDLE_FORMAT = "laecips-bundle/1"
MODEL_FORMAT = "laecips-model/1"
REQUIRED_METADATA = ("model_name", "num_classes", "version")
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
"""Largest bundle file ``load_bundle`` reads by default (bytes); a longer file is refused after max + 1."""

StrPath = str | os.PathLike[str]
StateDict = dict[str, torch.Tensor]


class Bundle(NamedTuple):
    """The content of a bundle file: f's and h's state dicts and the string metadata.

    Attributes:
        f_state: edge model f, names without the "f." prefix.
        h_state: hard-input miner h (``MinerNet``), names without the "h." prefix; empty when the bundle
            carries no miner network (e.g. a MESS/SM/SPP miner).
        metadata: safetensors string metadata; always has model_name, num_classes, version, format.
    """

    f_state: StateDict
    h_state: StateDict
    metadata: dict[str, str]

    @property
    def version(self) -> int:
        """Model version (monotonic integer chosen by the trainer)."""
        return int(self.metadata["version"])

    @property
    def num_classes(self) -> int:
        """M, the class count f was built for."""
        return int(self.metadata["num_classes"])

    @property
    def model_name(self) -> str:
        """Registry key of f (``models.edge_model_registry``)."""
        return self.metadata["model_name"]


# ----------------------------------------------------------------------------------------- files, hashes


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: StrPath) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Raises:
        WeightsError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    return digest.hexdigest()


def read_limited(path: StrPath, max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """Read a regular file, at most ``max_bytes`` + 1 bytes, refusing devices, FIFOs and sockets.

    The file is opened non-blocking (a FIFO cannot hang the caller) and checked with fstat on the open
    descriptor, so what is read is what was checked.

    Args:
        path: The file.
        max_bytes: Largest size accepted (bytes, >= 0).
        follow_symlinks: False refuses a symbolic link as the last path component (O_NOFOLLOW).

    Returns:
        The content (at most ``max_bytes`` bytes).

    Raises:
        WeightsError: missing or unreadable, not a regular file, or longer than ``max_bytes``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError) as err:  # ValueError: an embedded NUL byte
        raise WeightsError(f"cannot read {path}: {err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise WeightsError(f"{path} is not a regular file; refusing to read it")
        if info.st_size > max_bytes:
            raise WeightsError(f"{path} is {info.st_size} bytes, more than max_bytes={max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:  # the size may change after fstat: never read past max_bytes + 1
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    finally:
        os.close(fd)
    if total > max_bytes:
        raise WeightsError(f"{path} grew past max_bytes={max_bytes} while it was read; refusing it")
    return b"".join(chunks)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows fsync on a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(directory: Path, name: str, data: bytes | bytearray | memoryview, mode: int) -> Path:
    """Write data to a fresh, fsynced temp file in ``directory`` and return its path."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write_bytes(path: StrPath, data: bytes | bytearray | memoryview, mode: int = 0o644) -> Path:
    """Write a file so that readers see either the old content or all of the new one, never a part.

    A temp file in the same directory is written, fsynced and renamed over ``path`` with os.replace;
    the directory is fsynced after. If anything fails the temp file is removed and ``path`` is left as
    it was (a process killed mid-write can leave a hidden ``.<name>.*.tmp`` file, never a partial
    ``path``).

    Args:
        path: destination file; its directory must exist.
        data: the complete new content.
        mode: permission bits of the new file.

    Returns:
        ``path`` as a Path.

    Raises:
        WeightsError: the directory is missing or not writable.
    """
    target = Path(path)
    try:
        tmp = _write_temp(target.parent, target.name, data, mode)
    except OSError as err:
        raise WeightsError(
            f"cannot write {target}: {err}; check that the directory exists and is writable"
        ) from err
    try:
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise WeightsError(f"cannot move the new {target} into place: {err}") from err
        raise
    _fsync_dir(target.parent)
    return target


# ----------------------------------------------------------------------------------------- serialisation


def _as_state(module_or_state: nn.Module | Mapping[str, torch.Tensor] | None) -> StateDict:
    if module_or_state is None:
        return {}
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _check_metadata(metadata: Mapping[str, object], required: tuple[str, ...]) -> dict[str, str]:
    missing = [key for key in required if key not in metadata]
    if missing:
        raise ConfigError(f"bundle metadata lacks {missing}; give model_name, num_classes and version")
    out = {str(k): str(v) for k, v in metadata.items()}
    for key in ("num_classes", "version"):
        # ASCII digits, at most 18: int() of it never fails (Python refuses > 4300 digits) and fits int64
        if key in out and not re.fullmatch(r"[0-9]{1,18}", out[key]):
            raise ConfigError(
                f"metadata {key} must be a non-negative integer (<= 18 digits), got {out[key][:40]!r}"
            )
    return out


def _parse_header_metadata(data: bytes | bytearray | memoryview, source: str) -> dict[str, str]:
    """Read the ``__metadata__`` object of a safetensors byte string (8-byte little-endian header size)."""
    if len(data) < 8:
        raise WeightsError(f"{source} is not a safetensors file (only {len(data)} bytes)")
    (size,) = struct.unpack("<Q", bytes(data[:8]))
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise WeightsError(f"{source} has a corrupt safetensors header (size {size}); re-download the file")
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
    except (RecursionError, ValueError) as err:  # ValueError covers JSONDecodeError, UnicodeDecodeError
        raise WeightsError(f"{source} has a corrupt safetensors header: {_reason(err)}") from err
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    if not isinstance(meta, dict):
        raise WeightsError(f"{source} has a malformed __metadata__ entry")
    try:
        return {str(k): str(v) for k, v in meta.items()}
    except RecursionError as err:  # a value nested just below json's limit
        raise WeightsError(f"{source} has a malformed __metadata__ entry: {_reason(err)}") from err


def read_bundle_metadata(path: StrPath) -> dict[str, str]:
    """The string metadata of a bundle file, read from its header only (no tensors, no verification).

    Used to size a node before its bundle is verified and loaded (e.g. M for ``num_classes: 0``).

    Raises:
        WeightsError: the file is missing, not a LAECIPS bundle, or its metadata lacks model_name,
            num_classes or version.
    """
    source = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            data = head + fh.read(min(size, MAX_HEADER_BYTES))
    except OSError as err:
        raise WeightsError(f"cannot read bundle {source}: {err}; give an existing .safetensors file") from err
    metadata = _parse_header_metadata(data, source)
    if metadata.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"{source} is not a LAECIPS bundle (format {metadata.get('format')!r})")
    try:
        return _check_metadata(metadata, REQUIRED_METADATA)
    except ConfigError as err:
        raise WeightsError(f"{source}: {err}") from err


def bundle_class_names(path: StrPath | None, metadata: Mapping[str, str]) -> list[str] | None:
    """The M class names of a bundle when they are known, else None.

    In order: the bundle's ``class_names`` metadata (a JSON list); its JSON card next to it (same stem,
    ``.json``, from ``laecips pretrain``): a ``class_names`` entry, or the built-in benchmark's names
    when the card says f was pre-trained on that benchmark. Names whose count is not the bundle's M
    are ignored.

    Args:
        path: The bundle file (for its card), or None.
        metadata: The bundle's metadata (``Bundle.metadata`` or ``read_bundle_metadata``).
    """
    try:
        num_classes = int(metadata.get("num_classes", "0"))
    except ValueError:
        return None
    candidates: list[Any] = []
    with contextlib.suppress(ValueError, RecursionError):
        candidates.append(json.loads(metadata["class_names"]) if "class_names" in metadata else None)
    card_file = Path(path).with_suffix(".json") if path is not None else None
    if card_file is not None and card_file.is_file():
        with contextlib.suppress(OSError, ValueError, RecursionError):
            card = json.loads(card_file.read_text(encoding="utf-8"))
            if isinstance(card, dict):
                data_info = card.get("data")
                candidates.append(card.get("class_names"))
                if isinstance(data_info, dict) and "benchmark" in data_info:
                    candidates.append(list(classes.CLASSES))
    for names in candidates:
        if isinstance(names, list) and len(names) == num_classes and all(isinstance(n, str) for n in names):
            return list(names)
    return None


def _reason(err: BaseException) -> str:
    """``Type: message`` of an exception, cut to 300 characters (for error texts that cross the wire)."""
    return f"{type(err).__name__}: {err}"[:300]


def _load_tensors(data: bytes | bytearray | memoryview, source: str) -> StateDict:
    try:
        return st_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as err:
        # RuntimeError covers RecursionError
        raise WeightsError(f"{source} is not a valid safetensors file: {_reason(err)}") from err


def serialize_bundle(
    f: nn.Module | Mapping[str, torch.Tensor],
    h: nn.Module | Mapping[str, torch.Tensor] | None,
    metadata: Mapping[str, object],
) -> bytes:
    """Serialise f and h into one safetensors byte string ("f." / "h." prefixes, string metadata).

    Args:
        f: edge model f or its state dict.
        h: miner network h (``MinerNet``) or its state dict, or None for a miner without weights.
        metadata: must contain model_name, num_classes, version; other keys (miner_in_size, miner_name,
            parent_version, train_report, ...) are kept as strings. ``format`` and ``created`` (UTC ISO
            8601) are added when absent.

    Returns:
        The bundle file's bytes.

    Raises:
        ConfigError: required metadata missing or malformed.
    """
    meta = _check_metadata(metadata, REQUIRED_METADATA)
    meta.setdefault("format", BUNDLE_FORMAT)
    meta.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    tensors = {f"f.{k}": v for k, v in _as_state(f).items()}
    tensors.update({f"h.{k}": v for k, v in _as_state(h).items()})
    if not any(k.startswith("f.") for k in tensors):
        raise ConfigError("f has no tensors; pass the edge model or its state dict")
    return st_save(tensors, metadata=meta)


def save_bundle(
    path: StrPath,
    f: nn.Module | Mapping[str, torch.Tensor],
    h: nn.Module | Mapping[str, torch.Tensor] | None,
    metadata: Mapping[str, object],
) -> str:
    """Write f and h to ONE safetensors file atomically (see ``serialize_bundle``).

    Returns:
        Hex SHA-256 of the written file (what ModelUpdate carries and ``sign_digest`` signs).
    """
    data = serialize_bundle(f, h, metadata)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def parse_bundle(
    data: bytes | bytearray | memoryview,
    *,
    expected_sha256: str | None = None,
    public_key: StrPath | bytes | None = None,
    signature: str | None = None,
    source: str = "bundle",
) -> Bundle:
    """Verify and decode bundle bytes (e.g. received over Zenoh); see ``load_bundle``."""
    digest = sha256_bytes(data)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise WeightsError(
            f"{source} has SHA-256 {digest}, expected {expected_sha256}: the file is corrupt or tampered "
            "with; fetch it again and do not load it"
        )
    if (public_key is None) != (signature is None):
        raise WeightsError("give both public_key and signature to verify a bundle, or neither")
    statement: dict[str, Any] | None = None
    if public_key is not None and signature is not None:
        statement = verify_bundle_signature(public_key, digest, signature, source=source)
    metadata = _parse_header_metadata(data, source)
    if metadata.get("format") != BUNDLE_FORMAT:
        raise WeightsError(
            f"{source} is not a LAECIPS bundle (format {metadata.get('format')!r}, want {BUNDLE_FORMAT!r}); "
            "write it with weights.save_bundle"
        )
    try:
        _check_metadata(metadata, REQUIRED_METADATA)
    except ConfigError as err:
        raise WeightsError(f"{source}: {err}") from err
    if statement is not None:
        signed = {key: statement[key] for key in REQUIRED_METADATA}
        own = {
            "model_name": metadata["model_name"],
            "num_classes": int(metadata["num_classes"]),
            "version": int(metadata["version"]),
        }
        if signed != own:
            raise WeightsError(
                f"{source} is {metadata['model_name']} v{metadata['version']} M={metadata['num_classes']} "
                f"but its signed announcement says {signed['model_name']} v{signed['version']} "
                f"M={signed['num_classes']}; do not load it"
            )
    tensors = _load_tensors(data, source)
    f_state = {k[2:]: v for k, v in tensors.items() if k.startswith("f.")}
    h_state = {k[2:]: v for k, v in tensors.items() if k.startswith("h.")}
    stray = [k for k in tensors if not k.startswith(("f.", "h."))]
    if stray or not f_state:
        raise WeightsError(f"{source} holds no f.* tensors or unexpected names {stray[:5]}")
    return Bundle(f_state, h_state, metadata)


def load_bundle(
    path: StrPath,
    *,
    expected_sha256: str | None = None,
    public_key: StrPath | bytes | None = None,
    signature: str | None = None,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> Bundle:
    """Read a bundle file, verifying its SHA-256 and Ed25519 signature when given.

    Args:
        path: bundle file written by ``save_bundle`` (a regular file; devices and FIFOs are refused).
        expected_sha256: hex digest the file must have (from the ModelUpdate message).
        public_key: Ed25519 public key (PEM file path, or PEM bytes) of the trainer.
        signature: a ``.sig`` sidecar's text: the base64 signature of the file's hex digest
            (``sign_digest``) or a signed announcement record (``signature_record``); needs ``public_key``.
        max_bytes: largest file accepted; at most max_bytes + 1 bytes are read.

    Returns:
        ``Bundle(f_state, h_state, metadata)``.

    Raises:
        WeightsError: unreadable or oversized file, wrong hash, bad signature, not a bundle, missing metadata.
    """
    try:
        data = read_limited(path, max_bytes)
    except WeightsError as err:
        raise WeightsError(f"cannot read bundle {path}: {err}") from err
    return parse_bundle(
        data, expected_sha256=expected_sha256, public_key=public_key, signature=signature, source=str(path)
    )


def _describe_mismatch(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> list[str]:
    own = module.state_dict()
    problems: list[str] = []
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        problems.append(f"{len(missing)} missing keys in the weights (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys in the weights (e.g. {unexpected[:3]})")
    shapes = [
        f"{k}: weights {tuple(state[k].shape)} vs {what} {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches ({'; '.join(shapes[:3])})")
    return problems


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str = "model") -> None:
    """Load a state dict only if every key and shape matches; the module is untouched otherwise.

    Args:
        module: destination (f or h).
        state: tensors keyed like ``module.state_dict()``.
        what: name used in the error message ("f", "h").

    Raises:
        WeightsError: saying which keys are missing/unexpected and which shapes differ.
    """
    problems = _describe_mismatch(module, state, what)
    if problems:
        raise WeightsError(
            f"weights do not fit {what} ({type(module).__name__}): "
            + "; ".join(problems)
            + ". Build the model with the bundle's model_name and num_classes."
        )
    module.load_state_dict(dict(state), strict=True)


def apply_bundle(bundle: Bundle, f: nn.Module, h: nn.Module | None = None) -> None:
    """Load a bundle into f (and h), strictly: all checks pass before either module changes.

    Args:
        bundle: from ``load_bundle``/``parse_bundle``.
        f: edge model; if it has ``model_name``/``num_classes`` attributes (``models.EdgeSegmenter``)
            they must equal the bundle's metadata.
        h: miner network (``MinerNet``), or None when the miner has no weights (then the bundle must
            carry no h tensors).

    Raises:
        WeightsError: architecture, class count, key or shape mismatch (the message says which).
    """
    meta_name, meta_classes = bundle.metadata.get("model_name"), bundle.metadata.get("num_classes")
    f_name, f_classes = getattr(f, "model_name", None), getattr(f, "num_classes", None)
    if f_name is not None and meta_name is not None and f_name != meta_name:
        raise WeightsError(
            f"bundle is for edge model {meta_name!r} but f is {f_name!r}; "
            f"build f with models.build_edge_model({meta_name!r}, {meta_classes})"
        )
    if f_classes is not None and meta_classes is not None and int(meta_classes) != int(f_classes):
        raise WeightsError(
            f"bundle was trained for M={meta_classes} classes but f has M={f_classes}; "
            f"rebuild f with num_classes={meta_classes} or retrain for {f_classes} classes"
        )
    problems = _describe_mismatch(f, bundle.f_state, "f")
    if h is None and bundle.h_state:
        problems.append("the bundle carries miner weights h but no miner network was given")
    if h is not None:
        problems += [f"h: {p}" for p in _describe_mismatch(h, bundle.h_state, "h")]
    if problems:
        raise WeightsError(f"bundle {meta_name!r} (M={meta_classes}) does not fit: " + "; ".join(problems))
    f.load_state_dict(bundle.f_state, strict=True)
    if h is not None:
        h.load_state_dict(bundle.h_state, strict=True)


def save_model(
    path: StrPath, model: nn.Module | Mapping[str, torch.Tensor], metadata: Mapping[str, object]
) -> str:
    """Write one module's state dict as a safetensors file, atomically.

    Args:
        path: destination file.
        model: module or state dict.
        metadata: string-convertible values kept in the file header (``format`` is added).

    Returns:
        Hex SHA-256 of the file.
    """
    meta = _check_metadata(metadata, ())
    meta.setdefault("format", MODEL_FORMAT)
    meta.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    state = _as_state(model)
    if not state:
        raise ConfigError("the model has no tensors to save")
    data = st_save(state, metadata=meta)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def load_model_state(
    path: StrPath, *, expected_sha256: str | None = None
) -> tuple[StateDict, dict[str, str]]:
    """Read a file written by ``save_model``.

    Returns:
        (state_dict, metadata).

    Raises:
        WeightsError: unreadable, wrong hash or not safetensors.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    digest = sha256_bytes(data)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise WeightsError(f"{path} has SHA-256 {digest}, expected {expected_sha256}; the file is corrupt")
    return _load_tensors(data, str(path)), _parse_header_metadata(data, str(path))


# ----------------------------------------------------------------------------------------- signatures


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
        raise WeightsError(f"signature record is not JSON: {_reason(err)}") from err
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


# ----------------------------------------------------------------------------------------- version store


class WeightStore:
    """A directory of bundle files, one per version, never overwritten (older versions kept for rollback).

    Files are ``bundle_v<version:08d>.safetensors``. ``put`` writes a temp file, fsyncs it and
    hard-links it to the final name, which fails if that name exists: two writers can never replace a
    published version, and readers never see a partial file.

    Args:
        directory: created if needed.
    """

    _NAME = re.compile(r"bundle_v(\d{8})\.safetensors")

    def __init__(self, directory: StrPath) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, version: int) -> Path:
        """File path of a version (whether or not it exists)."""
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 10**8:
            raise ConfigError(f"version must be an int in [0, 1e8), got {version!r}")
        return self.directory / f"bundle_v{version:08d}.safetensors"

    def put(self, bundle_bytes: bytes | bytearray | memoryview, version: int) -> Path:
        """Store a version's bundle bytes atomically.

        Returns:
            The new file's path.

        Raises:
            WeightsError: that version exists already (choose a new version number) or the write failed.
        """
        final = self.path(version)
        if final.exists():
            raise WeightsError(f"version {version} exists at {final}; versions are never overwritten")
        try:
            tmp = _write_temp(self.directory, final.name, bundle_bytes, 0o644)
        except OSError as err:
            raise WeightsError(f"cannot write {final}: {err}") from err
        try:
            os.link(tmp, final)
        except FileExistsError as err:
            raise WeightsError(
                f"version {version} exists at {final}; versions are never overwritten"
            ) from err
        except OSError as err:
            raise WeightsError(f"cannot publish {final}: {err}") from err
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _fsync_dir(self.directory)
        return final

    def versions(self) -> list[int]:
        """Stored versions, ascending (temp files of interrupted writes are ignored)."""
        found = (self._NAME.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> int | None:
        """Highest stored version, or None when the store is empty."""
        versions = self.versions()
        return versions[-1] if versions else None

    def prune(self, keep: int) -> list[int]:
        """Delete all but the ``keep`` newest versions; returns the deleted version numbers."""
        if keep < 1:
            raise ConfigError(f"keep must be >= 1, got {keep}")
        old = self.versions()[:-keep]
        for version in old:
            with contextlib.suppress(FileNotFoundError):
                self.path(version).unlink()
        return old
