"""Tests of files: atomic writes keep the old file on failure, bounded reads refuse devices and liars."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from laecips_core.errors import WeightsError
from laecips_core.files import atomic_write_bytes

from laecips_core import files


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

    with pytest.raises(WeightsError, match="not a regular file"):
        files.read_limited("/dev/zero", 1024)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opened without O_NONBLOCK this would block forever (no writer)
    with pytest.raises(WeightsError, match="not a regular file"):
        files.read_limited(fifo, 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    assert files.read_limited(big, 5000) == b"x" * 5000
    read_sizes: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        chunk = real_read(fd, n)
        read_sizes.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "read", counting_read)
    with pytest.raises(WeightsError, match="more than max_bytes"):
        files.read_limited(big, 4999)
    assert sum(read_sizes) == 0  # refused from fstat, nothing read
    # a regular file whose st_size lies (procfs says 0): the read itself stops at max + 1 bytes
    proc = Path("/proc/self/status")
    assert proc.stat().st_size == 0 and len(proc.read_bytes()) > 200
    with pytest.raises(WeightsError, match="grew past"):
        files.read_limited(proc, 100)
    assert 0 < sum(read_sizes) <= 101
    link = tmp_path / "link"
    link.symlink_to(big)
    with pytest.raises(WeightsError, match="cannot read"):
        files.read_limited(link, 10_000, follow_symlinks=False)
