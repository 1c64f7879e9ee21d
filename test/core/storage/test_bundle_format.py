"""Tests of the bundle format without torch: metadata rules and the safetensors header."""

from __future__ import annotations

import json
import struct

import pytest
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.storage import bundle_format


def _header(meta: object) -> bytes:
    body = json.dumps({"__metadata__": meta}).encode()
    return struct.pack("<Q", len(body)) + body


def test_check_metadata_needs_the_required_keys_as_plain_integers():
    meta = bundle_format.check_metadata(
        {"model_name": "m", "num_classes": 5, "version": 2}, bundle_format.REQUIRED_METADATA
    )
    assert meta == {"model_name": "m", "num_classes": "5", "version": "2"}
    with pytest.raises(ConfigError, match="lacks"):
        bundle_format.check_metadata({"model_name": "m"}, bundle_format.REQUIRED_METADATA)
    with pytest.raises(ConfigError, match="non-negative integer"):
        bundle_format.check_metadata({"model_name": "m", "num_classes": "-1", "version": 0}, ("num_classes",))


def test_header_metadata_is_read_or_refused_with_the_source_named():
    assert bundle_format.parse_header_metadata(_header({"a": "b"}), "x") == {"a": "b"}
    with pytest.raises(WeightsError, match="x is not a safetensors file"):
        bundle_format.parse_header_metadata(b"\x01", "x")
    with pytest.raises(WeightsError, match="corrupt safetensors header"):
        bundle_format.parse_header_metadata(struct.pack("<Q", 10**9) + b"{}", "x")
    with pytest.raises(WeightsError, match="malformed __metadata__"):
        bundle_format.parse_header_metadata(_header([1, 2]), "x")
    assert bundle_format.ONNX_PREFIX == "onnx."
