"""The bundle file format of f and h, without torch: names, metadata rules, the safetensors header.

A bundle is one safetensors file: f's tensors under "f.", h's under "h.", optionally the ONNX graphs of
both as uint8 tensors "onnx.f" / "onnx.h" (what the lean edge runs), and string metadata (model_name,
num_classes, version, format, ...). ``weights`` writes bundles (torch); ``bundle_loading`` reads them.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping

from laecips_core.errors import ConfigError, WeightsError, error_reason

BUNDLE_FORMAT = "laecips-bundle/1"
MODEL_FORMAT = "laecips-model/1"
REQUIRED_METADATA = ("model_name", "num_classes", "version")
MAX_HEADER_BYTES = 16 * 1024 * 1024
ONNX_PREFIX = "onnx."
"""Tensor name prefix of the ONNX graphs in a bundle ("onnx.f", "onnx.h")."""


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
