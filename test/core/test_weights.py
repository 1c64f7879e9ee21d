"""Tests of safetensors bundles, hashes, Ed25519 signatures, atomic writes and the version store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.models import build_edge_model
from laecips_core.weights import (
    WeightStore,
    apply_bundle,
    atomic_write_bytes,
    generate_keypair,
    load_bundle,
    load_model_state,
    load_state_strict,
    parse_bundle,
    read_signature,
    save_bundle,
    save_model,
    serialize_bundle,
    sha256_bytes,
    sha256_file,
    sign_digest,
    verify_digest,
    write_signature,
)
from torch import nn


def _h(seed: int = 0) -> nn.Module:
    """A small stand-in for the miner network h (weights.py does not care what h is)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(5, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(1))


def _f(num_classes: int = 5, seed: int = 0, name: str = "tiny_fcn") -> nn.Module:
    torch.manual_seed(seed)
    return build_edge_model(name, num_classes, pretrained_backbone=False)


def _meta(version: int = 3, num_classes: int = 5, name: str = "tiny_fcn") -> dict[str, str | int]:
    return {"model_name": name, "num_classes": num_classes, "version": version, "miner_in_size": "64x64"}


@pytest.fixture
def h_net() -> nn.Module:
    h = _h()
    h(torch.zeros(1, 5, 8, 8))  # materialise the lazy layer
    return h


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def test_bundle_round_trip_is_exact(tmp_path, h_net):
    f = _f()
    path = tmp_path / "b.safetensors"
    digest = save_bundle(path, f, h_net, _meta())
    assert digest == sha256_file(path) == sha256_bytes(path.read_bytes())
    bundle = load_bundle(path, expected_sha256=digest)
    _assert_same_state(bundle.f_state, f.state_dict())
    _assert_same_state(bundle.h_state, h_net.state_dict())
    assert bundle.version == 3 and bundle.num_classes == 5 and bundle.model_name == "tiny_fcn"
    assert bundle.metadata["miner_in_size"] == "64x64"
    assert bundle.metadata["format"] == "laecips-bundle/1" and bundle.metadata["created"].startswith("20")
    # One file holds both, prefixed.
    with open(path, "rb") as fh:
        header = fh.read(int.from_bytes(fh.read(8), "little")).decode()
    assert '"f.head.' in header and '"h.0.weight"' in header


def test_apply_bundle_reproduces_the_outputs(tmp_path, h_net):
    src_f = _f(seed=1).eval()
    save_bundle(tmp_path / "b.safetensors", src_f, h_net, _meta())
    dst_f, dst_h = _f(seed=2).eval(), _h(seed=2)
    dst_h(torch.zeros(1, 5, 8, 8))
    x = torch.randn(1, 3, 40, 48)
    assert not torch.allclose(src_f(x), dst_f(x))
    apply_bundle(load_bundle(tmp_path / "b.safetensors"), dst_f, dst_h)
    assert torch.equal(src_f(x), dst_f(x))
    _assert_same_state(dst_h.state_dict(), h_net.state_dict())


def test_bundle_without_miner_weights(tmp_path):
    f = _f()
    save_bundle(tmp_path / "b.safetensors", f, None, _meta())
    bundle = load_bundle(tmp_path / "b.safetensors")
    assert bundle.h_state == {}
    apply_bundle(bundle, _f(seed=4))
    with pytest.raises(ConfigError, match="version"):
        save_bundle(tmp_path / "c.safetensors", f, None, {"model_name": "tiny_fcn", "num_classes": 5})


def test_tampered_bundle_fails_the_hash_check(tmp_path, h_net):
    path = tmp_path / "b.safetensors"
    digest = save_bundle(path, _f(), h_net, _meta())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="SHA-256 .* expected .*tampered"):
        load_bundle(path, expected_sha256=digest)
    # Without a hash the flipped bit would load silently: that is why ModelUpdate carries the digest.
    assert load_bundle(path).version == 3


def test_signature_sidecar_round_trip(tmp_path, h_net):
    priv, pub = generate_keypair(tmp_path / "keys")
    path = tmp_path / "b.safetensors"
    assert read_signature(path) is None  # no sidecar yet
    signature = sign_digest(priv, save_bundle(path, _f(), h_net, _meta()))
    sidecar = write_signature(path, signature)
    assert sidecar == tmp_path / "b.safetensors.sig" and read_signature(path) == signature
    load_bundle(path, public_key=pub, signature=read_signature(path))
    sidecar.write_bytes(b"\xff\xfe")  # not ASCII: treated as missing, so a trusted key refuses the bundle
    assert read_signature(path) is None


def test_signatures_verify_and_reject(tmp_path, h_net):
    priv, pub = generate_keypair(tmp_path / "keys")
    assert oct(priv.stat().st_mode & 0o777) == "0o600"
    other_priv, other_pub = generate_keypair(tmp_path / "keys", name="intruder")
    path = tmp_path / "b.safetensors"
    digest = save_bundle(path, _f(), h_net, _meta())
    signature = sign_digest(priv, digest)
    verify_digest(pub, digest, signature)
    bundle = load_bundle(path, expected_sha256=digest, public_key=pub, signature=signature)
    assert bundle.version == 3
    # PEM bytes work as well as paths.
    load_bundle(path, public_key=pub.read_bytes(), signature=signature)
    with pytest.raises(WeightsError, match="does not verify"):
        load_bundle(path, public_key=pub, signature=sign_digest(other_priv, digest))
    with pytest.raises(WeightsError, match="does not verify"):
        load_bundle(path, public_key=other_pub, signature=signature)
    with pytest.raises(WeightsError, match="does not verify"):
        verify_digest(pub, "0" * 64, signature)
    with pytest.raises(WeightsError, match="base64"):
        load_bundle(path, public_key=pub, signature="not base64!")
    with pytest.raises(WeightsError, match="both"):
        load_bundle(path, public_key=pub)
    with pytest.raises(WeightsError, match="exists"):
        generate_keypair(tmp_path / "keys")


def test_wrong_class_count_is_refused_with_a_useful_message(tmp_path):
    save_bundle(tmp_path / "b.safetensors", _f(5), None, _meta(num_classes=5))
    bundle = load_bundle(tmp_path / "b.safetensors")
    with pytest.raises(WeightsError, match=r"M=5 classes but f has M=8.*num_classes=5"):
        apply_bundle(bundle, _f(8))


def test_wrong_architecture_is_refused_and_nothing_changes(tmp_path, h_net):
    save_bundle(tmp_path / "b.safetensors", _f(5), h_net, _meta())
    bundle = load_bundle(tmp_path / "b.safetensors")
    lraspp = build_edge_model("lraspp_mobilenetv3", 5)
    with pytest.raises(WeightsError, match=r"'tiny_fcn' but f is 'lraspp_mobilenetv3'.*build_edge_model"):
        apply_bundle(bundle, lraspp)
    # Modules without registry attributes: the key/shape comparison names what differs.
    plain = nn.Sequential(nn.Conv2d(3, 5, 1))
    with pytest.raises(WeightsError, match="missing keys.*unexpected keys"):
        apply_bundle(bundle, plain)
    # f fits but h does not: neither is modified.
    f = _f(5, seed=9)
    before = {k: v.clone() for k, v in f.state_dict().items()}
    wrong_h = nn.Sequential(nn.Conv2d(5, 2, 3))
    with pytest.raises(WeightsError, match=r"h: .*shape mismatches|h: .*keys"):
        apply_bundle(bundle, f, wrong_h)
    _assert_same_state(f.state_dict(), before)
    with pytest.raises(WeightsError, match="no miner network"):
        apply_bundle(bundle, f, None)


def test_load_state_strict_names_the_shape_mismatch():
    small, big = _f(5), _f(8)
    with pytest.raises(WeightsError, match=r"shape mismatches \(head\.\S+: weights \(5,"):
        load_state_strict(big, small.state_dict(), "f")


def test_single_model_round_trip(tmp_path):
    f = _f()
    digest = save_model(tmp_path / "f.safetensors", f, {"model_name": "tiny_fcn", "epoch": 7})
    state, meta = load_model_state(tmp_path / "f.safetensors", expected_sha256=digest)
    _assert_same_state(state, f.state_dict())
    assert meta["epoch"] == "7" and meta["format"] == "laecips-model/1"
    with pytest.raises(WeightsError, match="SHA-256"):
        load_model_state(tmp_path / "f.safetensors", expected_sha256="1" * 64)
    # A single-model file is not a bundle.
    with pytest.raises(WeightsError, match="not a LAECIPS bundle"):
        load_bundle(tmp_path / "f.safetensors")


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"\xff" * 8 + b"{}", (20).to_bytes(8, "little") + b"{not json}" * 3]
)
def test_garbage_is_not_a_bundle(data):
    with pytest.raises(WeightsError):
        parse_bundle(data)


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


_KILLED_WRITER = """
import os, sys, time
from laecips_core import weights
real_fsync = os.fsync
def slow_fsync(fd):
    real_fsync(fd)
    print("writing", flush=True)
    time.sleep(60)
os.fsync = slow_fsync
weights.WeightStore(sys.argv[1]).put(b"x" * 100000, 2)
"""


def test_writer_killed_mid_write_leaves_no_partial_version(tmp_path):
    store = WeightStore(tmp_path / "store")
    first = serialize_bundle(_f(), None, _meta(version=1))
    store.put(first, 1)
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(store.directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"  # the temp file is written, not yet published
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
    assert store.versions() == [1]
    assert not store.path(2).exists()
    assert any(p.name.endswith(".tmp") for p in store.directory.iterdir())  # the orphan is ignored
    assert load_bundle(store.path(store.latest() or 0)).version == 1
    assert store.put(serialize_bundle(_f(), None, _meta(version=2)), 2) == store.path(2)
    assert store.versions() == [1, 2]


def test_weight_store_keeps_previous_versions(tmp_path):
    store = WeightStore(tmp_path / "store")
    assert store.versions() == [] and store.latest() is None
    blobs = {v: serialize_bundle(_f(seed=v), None, _meta(version=v)) for v in (1, 2, 5)}
    for v, blob in blobs.items():
        path = store.put(blob, v)
        assert path == store.path(v) and path.read_bytes() == blob
    assert store.versions() == [1, 2, 5] and store.latest() == 5
    with pytest.raises(WeightsError, match="never overwritten"):
        store.put(b"other bytes", 2)
    assert store.path(2).read_bytes() == blobs[2]
    assert load_bundle(store.path(1)).version == 1  # rollback target is still there
    assert store.prune(keep=2) == [1]
    assert store.versions() == [2, 5]
    with pytest.raises(ConfigError):
        store.path(-1)


def test_atomic_write_into_a_missing_directory_says_so(tmp_path):
    with pytest.raises(WeightsError, match="directory exists"):
        atomic_write_bytes(Path(tmp_path) / "no" / "such" / "dir" / "f.bin", b"1")


# ------------------------------------------------------------------------------ hostile bytes and files


def _safetensors_with_header(header: bytes) -> bytes:
    return len(header).to_bytes(8, "little") + header


def test_header_nested_100k_deep_is_a_weights_error_not_a_recursion_error():
    deep = _safetensors_with_header(b'{"__metadata__":' + b"[" * 100_000)
    with pytest.raises(WeightsError, match="corrupt safetensors header"):
        parse_bundle(deep)
    closed = _safetensors_with_header(b'{"__metadata__":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    with pytest.raises(WeightsError, match="corrupt safetensors header"):
        parse_bundle(closed)
    from laecips_core.weights import _load_tensors  # safetensors' own parser, behind parse_bundle

    with pytest.raises(WeightsError, match="not a valid safetensors"):
        _load_tensors(_safetensors_with_header(b"[" * 100_000), "test")


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


def test_signed_announcement_record_reverifies_the_file(tmp_path, h_net):
    from laecips_core import weights

    priv, pub = generate_keypair(tmp_path / "keys")
    path = tmp_path / "v3.safetensors"
    digest = save_bundle(path, _f(), h_net, _meta(version=3))
    fields = {"robot_id": "r1", "version": 3, "model_name": "tiny_fcn", "num_classes": 5,
              "uri": "zenoh:laecips/r1/model/weights/3", "sha256": digest, "stamp": 1.5,
              "signer": "t"}  # fmt: skip

    def sign(statement: dict[str, object]) -> str:
        return weights.sign_message(priv, weights.announcement_statement(statement))

    signature = sign(fields)
    record = weights.signature_record(fields, signature)
    write_signature(path, record)
    assert read_signature(path) == record
    load_bundle(path, public_key=pub, signature=read_signature(path))
    assert weights.parse_signature_record(record) == (fields, signature)
    assert weights.parse_signature_record(sign_digest(priv, digest)) is None  # a bare digest signature
    for change, match in (
        ({"stamp": 2.5}, "does not verify"),  # the record was edited after signing
        ({"robot_id": "r2"}, "does not verify"),
    ):
        forged = weights.signature_record({**fields, **change}, signature)
        with pytest.raises(WeightsError, match=match):
            load_bundle(path, public_key=pub, signature=forged)
    for change, match in (({"sha256": "0" * 64}, "signed announcement is for"), ({"version": 4}, "says")):
        other = {**fields, **change}
        signed = weights.signature_record(other, sign(other))
        with pytest.raises(WeightsError, match=match):
            load_bundle(path, public_key=pub, signature=signed)
    with pytest.raises(WeightsError, match="not JSON"):
        load_bundle(path, public_key=pub, signature="{" + "[" * 5000)
    with pytest.raises(WeightsError):  # a digest signature is no announcement signature, and back
        verify_digest(pub, digest, signature)
