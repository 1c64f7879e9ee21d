"""Weight files of f and h: the safetensors bundle format, SHA-256, atomic writes, applying to f and h.

The trainer writes f (Eq. 13) and h (Eq. 14) into ONE bundle (``save_bundle``); every process applies
one strictly (``apply_bundle``). Reading a bundle back, verified, is ``bundle_loading``; who may
publish one is ``signing``; the versions kept on disk are ``weight_store``.
"""

from __future__ import annotations

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
from typing import NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from laecips_core.errors import ConfigError, WeightsError

BUNDLE_FORMAT = "laecips-bundle/1"
MODEL_FORMAT = "laecips-model/1"
REQUIRED_METADATA = ("model_name", "num_classes", "version")
MAX_HEADER_BYTES = 16 * 1024 * 1024

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


# ------------------------------------------------------------------------------------- files, hashes


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


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename or link in it survives a crash (a no-op where not allowed)."""
    with contextlib.suppress(OSError):  # not every filesystem allows fsync on a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_temp(directory: Path, name: str, data: bytes | bytearray | memoryview, mode: int) -> Path:
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
        tmp = write_temp(target.parent, target.name, data, mode)
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
    fsync_dir(target.parent)
    return target


# ------------------------------------------------------------------------------------- serialisation


def _as_state(module_or_state: nn.Module | Mapping[str, torch.Tensor] | None) -> StateDict:
    if module_or_state is None:
        return {}
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def check_metadata(metadata: Mapping[str, object], required: tuple[str, ...]) -> dict[str, str]:
    """Metadata as strings, with the required keys present and num_classes/version plain integers.

    Raises:
        ConfigError: a required key is missing or an integer field is malformed.
    """
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


def parse_header_metadata(data: bytes | bytearray | memoryview, source: str) -> dict[str, str]:
    """Read the ``__metadata__`` object of a safetensors byte string (8-byte little-endian header size)."""
    if len(data) < 8:
        raise WeightsError(f"{source} is not a safetensors file (only {len(data)} bytes)")
    (size,) = struct.unpack("<Q", bytes(data[:8]))
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise WeightsError(f"{source} has a corrupt safetensors header (size {size}); re-download the file")
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
    except (RecursionError, ValueError) as err:  # ValueError covers JSONDecodeError, UnicodeDecodeError
        raise WeightsError(f"{source} has a corrupt safetensors header: {error_reason(err)}") from err
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    if not isinstance(meta, dict):
        raise WeightsError(f"{source} has a malformed __metadata__ entry")
    try:
        return {str(k): str(v) for k, v in meta.items()}
    except RecursionError as err:  # a value nested just below json's limit
        raise WeightsError(f"{source} has a malformed __metadata__ entry: {error_reason(err)}") from err


def error_reason(err: BaseException) -> str:
    """``Type: message`` of an exception, cut to 300 characters (for error texts that cross the wire)."""
    return f"{type(err).__name__}: {err}"[:300]


def load_tensors(data: bytes | bytearray | memoryview, source: str) -> StateDict:
    """Decode safetensors bytes into tensors (raises WeightsError naming ``source`` when invalid)."""
    try:
        return st_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as err:
        # RuntimeError covers RecursionError
        raise WeightsError(f"{source} is not a valid safetensors file: {error_reason(err)}") from err


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
    meta = check_metadata(metadata, REQUIRED_METADATA)
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
    meta = check_metadata(metadata, ())
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
    return load_tensors(data, str(path)), parse_header_metadata(data, str(path))
