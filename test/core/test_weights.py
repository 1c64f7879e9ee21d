"""Tests of weight files: save, strict apply to f and h, single-model files, atomic writes, bounded reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from laecips_core.bundle_loading import load_bundle
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.models import build_edge_model
from laecips_core.weights import (
    apply_bundle,
    atomic_write_bytes,
    load_model_state,
    load_state_strict,
    save_bundle,
    save_model,
    sha256_bytes,
    sha256_file,
)
from torch import nn
from weights_helpers import assert_same_state, built_h, bundle_meta, small_h, tiny_f


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


def test_apply_bundle_reproduces_the_outputs(tmp_path, h_net):
    src_f = tiny_f(seed=1).eval()
    save_bundle(tmp_path / "b.safetensors", src_f, h_net, bundle_meta())
    dst_f, dst_h = tiny_f(seed=2).eval(), small_h(seed=2)
    dst_h(torch.zeros(1, 5, 8, 8))
    x = torch.randn(1, 3, 40, 48)
    assert not torch.allclose(src_f(x), dst_f(x))
    apply_bundle(load_bundle(tmp_path / "b.safetensors"), dst_f, dst_h)
    assert torch.equal(src_f(x), dst_f(x))
    assert_same_state(dst_h.state_dict(), h_net.state_dict())


def test_bundle_without_miner_weights(tmp_path):
    f = tiny_f()
    save_bundle(tmp_path / "b.safetensors", f, None, bundle_meta())
    bundle = load_bundle(tmp_path / "b.safetensors")
    assert bundle.h_state == {}
    apply_bundle(bundle, tiny_f(seed=4))
    with pytest.raises(ConfigError, match="version"):
        save_bundle(tmp_path / "c.safetensors", f, None, {"model_name": "tiny_fcn", "num_classes": 5})


def test_wrong_class_count_is_refused_with_a_useful_message(tmp_path):
    save_bundle(tmp_path / "b.safetensors", tiny_f(5), None, bundle_meta(num_classes=5))
    bundle = load_bundle(tmp_path / "b.safetensors")
    with pytest.raises(WeightsError, match=r"M=5 classes but f has M=8.*num_classes=5"):
        apply_bundle(bundle, tiny_f(8))


def test_wrong_architecture_is_refused_and_nothing_changes(tmp_path, h_net):
    save_bundle(tmp_path / "b.safetensors", tiny_f(5), h_net, bundle_meta())
    bundle = load_bundle(tmp_path / "b.safetensors")
    lraspp = build_edge_model("lraspp_mobilenetv3", 5)
    with pytest.raises(WeightsError, match=r"'tiny_fcn' but f is 'lraspp_mobilenetv3'.*build_edge_model"):
        apply_bundle(bundle, lraspp)
    # Modules without registry attributes: the key/shape comparison names what differs.
    plain = nn.Sequential(nn.Conv2d(3, 5, 1))
    with pytest.raises(WeightsError, match="missing keys.*unexpected keys"):
        apply_bundle(bundle, plain)
    # f fits but h does not: neither is modified.
    f = tiny_f(5, seed=9)
    before = {k: v.clone() for k, v in f.state_dict().items()}
    wrong_h = nn.Sequential(nn.Conv2d(5, 2, 3))
    with pytest.raises(WeightsError, match=r"h: .*shape mismatches|h: .*keys"):
        apply_bundle(bundle, f, wrong_h)
    assert_same_state(f.state_dict(), before)
    with pytest.raises(WeightsError, match="no miner network"):
        apply_bundle(bundle, f, None)


def test_load_state_strict_names_the_shape_mismatch():
    small, big = tiny_f(5), tiny_f(8)
    with pytest.raises(WeightsError, match=r"shape mismatches \(head\.\S+: weights \(5,"):
        load_state_strict(big, small.state_dict(), "f")


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


def test_atomic_write_keeps_the_old_file_when_replace_fails(tmp_path, monkeypatch):
    target = tmp_path / "w.safetensors"
    atomic_write_bytes(target, b"old content")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(WeightsError, match="disk gone"):
        atomic_write_bytes(target, b"new content that never lands")
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]  # temp file removed


def test_atomic_write_into_a_missing_directory_says_so(tmp_path):
    with pytest.raises(WeightsError, match="directory exists"):
        atomic_write_bytes(Path(tmp_path) / "no" / "such" / "dir" / "f.bin", b"1")


def test_read_limited_refuses_devices_fifos_and_reads_at_most_max_plus_one(tmp_path, monkeypatch):
    from laecips_core import weights

    with pytest.raises(WeightsError, match="not a regular file"):
        weights.read_limited("/dev/zero", 1024)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opened without O_NONBLOCK this would block forever (no writer)
    with pytest.raises(WeightsError, match="not a regular file"):
        weights.read_limited(fifo, 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    assert weights.read_limited(big, 5000) == b"x" * 5000
    read_sizes: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        chunk = real_read(fd, n)
        read_sizes.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "read", counting_read)
    with pytest.raises(WeightsError, match="more than max_bytes"):
        weights.read_limited(big, 4999)
    assert sum(read_sizes) == 0  # refused from fstat, nothing read
    # a regular file whose st_size lies (procfs says 0): the read itself stops at max + 1 bytes
    proc = Path("/proc/self/status")
    assert proc.stat().st_size == 0 and len(proc.read_bytes()) > 200
    with pytest.raises(WeightsError, match="grew past"):
        weights.read_limited(proc, 100)
    assert 0 < sum(read_sizes) <= 101
    link = tmp_path / "link"
    link.symlink_to(big)
    with pytest.raises(WeightsError, match="cannot read"):
        weights.read_limited(link, 10_000, follow_symlinks=False)
