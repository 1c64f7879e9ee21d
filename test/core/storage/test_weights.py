"""Tests of weight files: save, strict apply to f and h, single-model files, atomic writes, bounded reads."""

from __future__ import annotations

import pytest
from laecips_core.algo.state import apply_bundle
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.files import sha256_bytes, sha256_file
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.weights import load_model_state, save_bundle, save_model
from torch import nn
from weights_helpers import assert_same_state, built_h, bundle_meta, tiny_f


@pytest.fixture
def h_net() -> nn.Module:
    return built_h()


def test_bundle_round_trip_is_exact(tmp_path, h_net):
    f = tiny_f()
    path = tmp_path / "b.safetensors"
    digest = save_bundle(path, f, h_net, bundle_meta())
    assert digest == sha256_file(path) == sha256_bytes(path.read_bytes())
    bundle = load_bundle(path, expected_sha256=digest)
    assert_same_state(bundle.f_state, f.state_dict())
    assert_same_state(bundle.h_state, h_net.state_dict())
    assert bundle.version == 3 and bundle.num_classes == 5 and bundle.model_name == "tiny_fcn"
    assert bundle.metadata["miner_in_size"] == "64x64"
    assert bundle.metadata["format"] == "laecips-bundle/1" and bundle.metadata["created"].startswith("20")
    # One file holds both, prefixed.
    with open(path, "rb") as fh:
        header = fh.read(int.from_bytes(fh.read(8), "little")).decode()
    assert '"f.head.' in header and '"h.0.weight"' in header


def test_bundle_without_miner_weights(tmp_path):
    f = tiny_f()
    save_bundle(tmp_path / "b.safetensors", f, None, bundle_meta())
    bundle = load_bundle(tmp_path / "b.safetensors")
    assert bundle.h_state == {}
    apply_bundle(bundle, tiny_f(seed=4))
    with pytest.raises(ConfigError, match="version"):
        save_bundle(tmp_path / "c.safetensors", f, None, {"model_name": "tiny_fcn", "num_classes": 5})


def test_single_model_round_trip(tmp_path):
    f = tiny_f()
    digest = save_model(tmp_path / "f.safetensors", f, {"model_name": "tiny_fcn", "epoch": 7})
    state, meta = load_model_state(tmp_path / "f.safetensors", expected_sha256=digest)
    assert_same_state(state, f.state_dict())
    assert meta["epoch"] == "7" and meta["format"] == "laecips-model/1"
    with pytest.raises(WeightsError, match="SHA-256"):
        load_model_state(tmp_path / "f.safetensors", expected_sha256="1" * 64)
    # A single-model file is not a bundle.
    with pytest.raises(WeightsError, match="not a LAECIPS bundle"):
        load_bundle(tmp_path / "f.safetensors")


