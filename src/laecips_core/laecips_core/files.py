"""Files and hashes: SHA-256, size-bounded reads, atomic writes with fsync (weights, replay, reports)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from laecips_core.errors import WeightsError

StrPath = str | os.PathLike[str]


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: StrPath) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Raises:
        WeightsError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    return digest.hexdigest()


def read_limited(path: StrPath, max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """Read a regular file, at most ``max_bytes`` + 1 bytes, refusing devices, FIFOs and sockets.

    The file is opened non-blocking (a FIFO cannot hang the caller) and checked with fstat on the open
    descriptor, so what is read is what was checked.

    Args:
        path: The file.
        max_bytes: Largest size accepted (bytes, >= 0).
        follow_symlinks: False refuses a symbolic link as the last path component (O_NOFOLLOW).

    Returns:
        The content (at most ``max_bytes`` bytes).

    Raises:
        WeightsError: missing or unreadable, not a regular file, or longer than ``max_bytes``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError) as err:  # ValueError: an embedded NUL byte
        raise WeightsError(f"cannot read {path}: {err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise WeightsError(f"{path} is not a regular file; refusing to read it")
        if info.st_size > max_bytes:
            raise WeightsError(f"{path} is {info.st_size} bytes, more than max_bytes={max_bytes}")
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:  # the size may change after fstat: never read past max_bytes + 1
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err}") from err
    finally:
        os.close(fd)
    if total > max_bytes:
        raise WeightsError(f"{path} grew past max_bytes={max_bytes} while it was read; refusing it")
    return b"".join(chunks)


def fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename or link in it survives a crash (a no-op where not allowed)."""
    with contextlib.suppress(OSError):  # not every filesystem allows fsync on a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_temp(directory: Path, name: str, data: bytes | bytearray | memoryview, mode: int) -> Path:
    """Write data to a fresh, fsynced temp file in ``directory`` and return its path."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write_bytes(path: StrPath, data: bytes | bytearray | memoryview, mode: int = 0o644) -> Path:
    """Write a file so that readers see either the old content or all of the new one, never a part.

    A temp file in the same directory is written, fsynced and renamed over ``path`` with os.replace;
    the directory is fsynced after. If anything fails the temp file is removed and ``path`` is left as
    it was (a process killed mid-write can leave a hidden ``.<name>.*.tmp`` file, never a partial
    ``path``).

    Args:
        path: destination file; its directory must exist.
        data: the complete new content.
        mode: permission bits of the new file.

    Returns:
        ``path`` as a Path.

    Raises:
        WeightsError: the directory is missing or not writable.
    """
    target = Path(path)
    try:
        tmp = write_temp(target.parent, target.name, data, mode)
    except OSError as err:
        raise WeightsError(
            f"cannot write {target}: {err}; check that the directory exists and is writable"
        ) from err
    try:
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise WeightsError(f"cannot move the new {target} into place: {err}") from err
        raise
    fsync_dir(target.parent)
    return target
