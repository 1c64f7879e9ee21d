"""Tests of the version store: versions never overwritten, kept for rollback, no partial file after a kill."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.weight_store import WeightStore
from laecips_core.storage.weights import serialize_bundle
from weights_helpers import bundle_meta, tiny_f

_KILLED_WRITER = """
import os, sys, time
from laecips_core.storage import weight_store
real_fsync = os.fsync
def slow_fsync(fd):
    real_fsync(fd)
    print("writing", flush=True)
    time.sleep(60)
os.fsync = slow_fsync
weight_store.WeightStore(sys.argv[1]).put(b"x" * 100000, 2)
"""


def test_writer_killed_mid_write_leaves_no_partial_version(tmp_path):
    store = WeightStore(tmp_path / "store")
    first = serialize_bundle(tiny_f(), None, bundle_meta(version=1))
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
    assert store.put(serialize_bundle(tiny_f(), None, bundle_meta(version=2)), 2) == store.path(2)
    assert store.versions() == [1, 2]


def test_weight_store_keeps_previous_versions(tmp_path):
    store = WeightStore(tmp_path / "store")
    assert store.versions() == [] and store.latest() is None
    blobs = {v: serialize_bundle(tiny_f(seed=v), None, bundle_meta(version=v)) for v in (1, 2, 5)}
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
