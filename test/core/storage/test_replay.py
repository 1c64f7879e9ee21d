"""Tests of the replay buffer: durability across a killed writer, bounds, clearing, validation."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from laecips_core.errors import ConfigError, ReplayError
from laecips_core.storage.replay import ReplayBuffer

# A writer process: appends deterministic samples and acknowledges each id on stdout once append returned.
WRITER = """
import sys, time
import numpy as np
from laecips_core.storage.replay import ReplayBuffer

def sample(i):
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), rng.integers(0, 12, (48, 64), dtype=np.uint8)

path, n, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
buf = ReplayBuffer(path, maxsize=100000)
print("ready", flush=True)
for i in range(n):
    image, labels = sample(i)
    sid = buf.append(image, labels, timestamp=float(i), task_id=i % 5, robot_id="r1", model_version=7,
                     logits_summary=np.full(12, i, np.float32))
    print(f"{i} {sid}", flush=True)
    if delay:
        time.sleep(delay)
buf.close()
"""


def _sample(i: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), rng.integers(0, 12, (48, 64), dtype=np.uint8)


def _spawn_writer(path: Path, n: int, delay: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(n), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    if time.monotonic() > deadline:
        raise AssertionError("writer process too slow")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"writer ended early: {err}")
    return line.strip()


def test_killed_writer_loses_no_acknowledged_sample(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    proc = _spawn_writer(path, n=100000, delay=0.0)
    acked: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 60.0
        assert _read_line(proc, deadline) == "ready"
        while len(acked) < 40:
            idx, sid = map(int, _read_line(proc, deadline).split())
            acked[idx] = sid
        proc.send_signal(signal.SIGKILL)  # mid-run: the writer is inside its next append
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    with ReplayBuffer(path, maxsize=100000) as buf:
        stored = {s.id: s for s in buf.samples()}
        assert len(buf) >= len(acked)
        for idx, sid in acked.items():
            assert sid in stored, f"acknowledged sample {idx} (id {sid}) lost"
            s = stored[sid]
            image, labels = _sample(idx)
            np.testing.assert_array_equal(s.image, image)
            np.testing.assert_array_equal(s.labels, labels)
            np.testing.assert_array_equal(s.logits_summary, np.full(12, idx, np.float32))
            assert (s.timestamp, s.task_id, s.robot_id, s.model_version) == (float(idx), idx % 5, "r1", 7)
        # The reopened buffer still takes writes after the crash.
        new_id = buf.append(*_sample(0))
        assert new_id > max(acked.values())


def test_concurrent_writer_and_clearer_processes(tmp_path: Path) -> None:
    path = tmp_path / "replay.db"
    n = 30
    proc = _spawn_writer(path, n=n, delay=0.005)
    trained: list[int] = []
    try:
        deadline = time.monotonic() + 60.0
        assert _read_line(proc, deadline) == "ready"
        with ReplayBuffer(path, maxsize=100000) as buf:
            while proc.poll() is None and time.monotonic() < deadline:
                batch = buf.samples()
                ids = [s.id for s in batch]
                assert buf.clear(ids) == len(ids)  # only what we read; concurrent appends stay
                trained += ids
                time.sleep(0.01)
            assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
            rest = buf.ids()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert sorted(trained + rest) == list(range(1, n + 1))
    assert len(set(trained)) == len(trained)


def test_maxsize_drops_oldest(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path / "r.db", maxsize=3) as buf:
        ids = [buf.append(*_sample(i), timestamp=100.0 + i) for i in range(5)]
        assert len(buf) == 3
        kept = buf.samples()
        assert [s.id for s in kept] == ids[2:]
        np.testing.assert_array_equal(kept[0].image, _sample(2)[0])
        assert buf.oldest_timestamp() == 102.0
        assert [s.id for s in buf.samples(limit=2)] == ids[2:4]


def test_clear_ids_keeps_later_samples(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path / "r.db", maxsize=50) as buf:
        first = [buf.append(*_sample(i), robot_id="a") for i in range(4)]
        trained = [s.id for s in buf.samples()]
        later = [buf.append(*_sample(10 + i), robot_id="b") for i in range(2)]  # arrive during training
        assert buf.clear(trained) == 4
        assert buf.ids() == later
        assert [s.robot_id for s in buf.samples()] == ["b", "b"]
        assert first == trained
        assert buf.clear() == 2
        assert len(buf) == 0 and buf.oldest_timestamp() is None


def test_samples_filter_by_robot_and_label_dtypes(tmp_path: Path) -> None:
    with ReplayBuffer(tmp_path / "r.db") as buf:
        image = _sample(1)[0]
        buf.append(image, np.full((48, 64), 300, np.int64), robot_id="a")  # int64 -> uint16, value kept
        buf.append(image, np.full((48, 64), 70000, np.int32), robot_id="b")
        buf.append(image, np.full((48, 64), 255, np.uint8), robot_id="a")
        a = buf.samples(robot_id="a")
        assert [s.labels.dtype for s in a] == [np.uint16, np.uint8]
        assert int(a[0].labels[0, 0]) == 300 and int(a[1].labels[0, 0]) == 255
        (b,) = buf.samples(robot_id="b")
        assert b.labels.dtype == np.int32 and int(b.labels.max()) == 70000
        assert b.logits_summary is None


@pytest.mark.parametrize(
    ("image", "labels", "match"),
    [
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), "uint8"),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), np.uint8), "does not match"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), "integer"),
        (np.zeros((8, 8, 3), np.uint8), np.full((8, 8), -1, np.int64), "0..2"),
    ],
)
def test_append_validates(tmp_path: Path, image: np.ndarray, labels: np.ndarray, match: str) -> None:
    with ReplayBuffer(tmp_path / "r.db") as buf:
        with pytest.raises(ReplayError, match=match):
            buf.append(image, labels)
        assert len(buf) == 0


def test_corrupt_row_and_closed_buffer_raise(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    buf = ReplayBuffer(path)
    sid = buf.append(*_sample(3))
    with sqlite3.connect(path) as raw:  # flip the stored checksum behind the buffer's back
        raw.execute("UPDATE samples SET image_crc = image_crc + 1 WHERE id = ?", (sid,))
    with pytest.raises(ReplayError, match="CRC"):
        buf.samples()
    buf.close()
    with pytest.raises(ReplayError, match="closed"):
        len(buf)
    with pytest.raises(ConfigError, match="maxsize"):
        ReplayBuffer(path, maxsize=0)
