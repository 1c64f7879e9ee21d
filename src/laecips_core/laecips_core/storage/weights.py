"""Weight files of f and h: the safetensors bundle format (serialise, save, header metadata, tensors).

The trainer writes f (Eq. 13) and h (Eq. 14) into ONE bundle (``save_bundle``); every process applies
one strictly (``algo.state.apply_bundle``). Reading a bundle back, verified, is ``bundle_loading``; who
may publish one is ``signing``; the versions kept on disk are ``weight_store``; hashes and atomic
writes are ``laecips_core.files``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from laecips_core.algo.state import StateDict
from laecips_core.errors import ConfigError, WeightsError, error_reason
from laecips_core.files import StrPath, atomic_write_bytes, sha256_bytes
from laecips_core.storage.bundle_format import (
    BUNDLE_FORMAT,
    MODEL_FORMAT,
    ONNX_PREFIX,
    REQUIRED_METADATA,
    check_metadata,
    parse_header_metadata,
)

# ------------------------------------------------------------------------------------- files, hashes


# ------------------------------------------------------------------------------------- serialisation


def _as_state(module_or_state: nn.Module | Mapping[str, torch.Tensor] | None) -> StateDict:
    if module_or_state is None:
        return {}
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


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
    onnx: Mapping[str, bytes] | None = None,
) -> bytes:
    """Serialise f and h into one safetensors byte string ("f." / "h." prefixes, string metadata).

    Args:
        f: edge model f or its state dict.
        h: miner network h (``MinerNet``) or its state dict, or None for a miner without weights.
        metadata: must contain model_name, num_classes, version; other keys (miner_in_size, miner_name,
            parent_version, train_report, ...) are kept as strings. ``format`` and ``created`` (UTC ISO
            8601) are added when absent.
        onnx: ONNX graphs of f and h (``onnx_export.onnx_graphs``: {"f": bytes, "h": bytes}), stored as
            uint8 tensors "onnx.f" / "onnx.h" so the file's SHA-256 and signature cover them; the lean
            edge runs them without torch. Give metadata["onnx_stream_norm_prior"] with them.

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
    if onnx:
        if set(onnx) != {"f", "h"} or "onnx_stream_norm_prior" not in meta:
            raise ConfigError(
                "ONNX exports go into a bundle as both graphs {'f', 'h'} with metadata onnx_stream_norm_prior"
            )
        for key, graph in sorted(onnx.items()):
            tensors[f"{ONNX_PREFIX}{key}"] = torch.frombuffer(bytearray(graph), dtype=torch.uint8)
        meta["onnx"] = "f,h"
    else:  # metadata copied from a parent bundle must not claim graphs this file lacks
        meta.pop("onnx", None)
        meta.pop("onnx_stream_norm_prior", None)
    return st_save(tensors, metadata=meta)


def save_bundle(
    path: StrPath,
    f: nn.Module | Mapping[str, torch.Tensor],
    h: nn.Module | Mapping[str, torch.Tensor] | None,
    metadata: Mapping[str, object],
    onnx: Mapping[str, bytes] | None = None,
) -> str:
    """Write f and h (and their ONNX graphs) to ONE safetensors file atomically (see ``serialize_bundle``).

    Returns:
        Hex SHA-256 of the written file (what ModelUpdate carries and ``sign_digest`` signs).
    """
    data = serialize_bundle(f, h, metadata, onnx)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


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
