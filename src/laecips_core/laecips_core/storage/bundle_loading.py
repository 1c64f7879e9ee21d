"""Reading bundles of f and h back: verified (SHA-256, Ed25519 signature, format) before decoding.

``load_bundle`` / ``parse_bundle`` are how every process takes weights (Algorithm 2's update on the
edge and the cloud, the trainer's parent version, the evaluation); ``read_bundle_metadata`` and
``bundle_class_names`` read the header only, to size a node before its bundle is verified.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from laecips_core import classes
from laecips_core.algo.state import Bundle
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.files import StrPath, read_limited, sha256_bytes
from laecips_core.storage.bundle_format import (
    BUNDLE_FORMAT,
    MAX_HEADER_BYTES,
    ONNX_PREFIX,
    REQUIRED_METADATA,
    check_metadata,
    parse_header_metadata,
)
from laecips_core.storage.signing import verify_bundle_signature

MAX_BUNDLE_BYTES = 512 * 1024 * 1024
"""Largest bundle file ``load_bundle`` reads by default (bytes); a longer file is refused after max + 1."""


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
    metadata = parse_header_metadata(data, source)
    if metadata.get("format") != BUNDLE_FORMAT:
        raise WeightsError(f"{source} is not a LAECIPS bundle (format {metadata.get('format')!r})")
    try:
        return check_metadata(metadata, REQUIRED_METADATA)
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


def verify_bundle_bytes(
    data: bytes | bytearray | memoryview,
    *,
    expected_sha256: str | None = None,
    public_key: StrPath | bytes | None = None,
    signature: str | None = None,
    source: str = "bundle",
) -> dict[str, str]:
    """Check bundle bytes before anything is decoded: SHA-256, Ed25519 signature, format, metadata.

    Returns:
        The bundle's string metadata.

    Raises:
        WeightsError: wrong hash, bad signature (or one for other metadata), not a bundle.
    """
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
    metadata = parse_header_metadata(data, source)
    if metadata.get("format") != BUNDLE_FORMAT:
        raise WeightsError(
            f"{source} is not a LAECIPS bundle (format {metadata.get('format')!r}, want {BUNDLE_FORMAT!r}); "
            "write it with weights.save_bundle"
        )
    try:
        check_metadata(metadata, REQUIRED_METADATA)
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
    return metadata


def parse_bundle(
    data: bytes | bytearray | memoryview,
    *,
    expected_sha256: str | None = None,
    public_key: StrPath | bytes | None = None,
    signature: str | None = None,
    source: str = "bundle",
) -> Bundle:
    """Verify and decode bundle bytes (e.g. received over Zenoh) into torch tensors; see ``load_bundle``."""
    from laecips_core.storage.weights import load_tensors  # torch: only here, not for ONNX-only readers

    metadata = verify_bundle_bytes(
        data, expected_sha256=expected_sha256, public_key=public_key, signature=signature, source=source
    )
    tensors = load_tensors(data, source)
    f_state = {k[2:]: v for k, v in tensors.items() if k.startswith("f.")}
    h_state = {k[2:]: v for k, v in tensors.items() if k.startswith("h.")}
    onnx = {
        k[len(ONNX_PREFIX) :]: v.numpy().tobytes() for k, v in tensors.items() if k.startswith(ONNX_PREFIX)
    }
    stray = [k for k in tensors if not k.startswith(("f.", "h.", ONNX_PREFIX))]
    if stray or not f_state:
        raise WeightsError(f"{source} holds no f.* tensors or unexpected names {stray[:5]}")
    return Bundle(f_state, h_state, metadata, onnx)


class OnnxGraphs(NamedTuple):
    """The ONNX graphs of f and h from a verified bundle, for the lean edge (no torch).

    Attributes:
        f: ONNX graph of f (with its per-frame BatchNorm statistics at ``stream_norm_prior``).
        h: ONNX graph of the miner network h at its input size (``miner_in_size`` in the metadata).
        metadata: the bundle's string metadata.
    """

    f: bytes
    h: bytes
    metadata: dict[str, str]

    @property
    def version(self) -> int:
        """Model version of the bundle."""
        return int(self.metadata["version"])

    @property
    def stream_norm_prior(self) -> float:
        """N of ``streamnorm`` the f graph was exported with."""
        return float(self.metadata["onnx_stream_norm_prior"])


def has_onnx(metadata: Mapping[str, str]) -> bool:
    """Whether a bundle's metadata says it carries ONNX graphs of f and h."""
    return metadata.get("onnx") == "f,h" and "onnx_stream_norm_prior" in metadata


def load_onnx_graphs(
    path: StrPath,
    *,
    expected_sha256: str | None = None,
    public_key: StrPath | bytes | None = None,
    signature: str | None = None,
    max_bytes: int = MAX_BUNDLE_BYTES,
) -> OnnxGraphs:
    """Read a bundle's ONNX graphs of f and h, verified like ``load_bundle`` (hash, signature, format).

    Needs numpy and safetensors only, not torch: this is how the lean edge takes weights.

    Raises:
        WeightsError: what ``load_bundle`` raises, or the bundle carries no ONNX graphs (export them
            with ``laecips export-onnx`` or let the trainer ship them).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load as np_load

    try:
        data = read_limited(path, max_bytes)
    except WeightsError as err:
        raise WeightsError(f"cannot read bundle {path}: {err}") from err
    source = str(path)
    metadata = verify_bundle_bytes(
        data, expected_sha256=expected_sha256, public_key=public_key, signature=signature, source=source
    )
    if not has_onnx(metadata):
        raise WeightsError(
            f"{source} carries no ONNX graphs of f and h; add them with `laecips export-onnx {source}` "
            "or use backend torch"
        )
    try:
        arrays = np_load(bytes(data))
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as err:
        raise WeightsError(f"{source} is not a valid safetensors file: {err}") from err
    graphs = {key: arrays.get(f"{ONNX_PREFIX}{key}") for key in ("f", "h")}
    try:
        float(metadata["onnx_stream_norm_prior"])
    except ValueError as err:
        raise WeightsError(f"{source}: onnx_stream_norm_prior is not a number") from err
    f_graph, h_graph = graphs["f"], graphs["h"]
    if f_graph is None or h_graph is None or f_graph.dtype != "uint8" or h_graph.dtype != "uint8":
        raise WeightsError(
            f"{source} says it carries ONNX graphs but onnx.f / onnx.h are missing or not bytes"
        )
    return OnnxGraphs(f_graph.tobytes(), h_graph.tobytes(), metadata)


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
