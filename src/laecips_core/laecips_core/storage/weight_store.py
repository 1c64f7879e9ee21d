"""The versions of f and h on disk (Algorithm 2's published models): one bundle file per version.

The trainer puts each accepted version here, the cloud and the edge put the versions they fetch;
nothing is ever overwritten, so older versions stay for rollback.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from laecips_core.errors import ConfigError, WeightsError
from laecips_core.files import StrPath, fsync_dir, write_temp


class WeightStore:
    """A directory of bundle files, one per version, never overwritten (older versions kept for rollback).

    Files are ``bundle_v<version:08d>.safetensors``. ``put`` writes a temp file, fsyncs it and
    hard-links it to the final name, which fails if that name exists: two writers can never replace a
    published version, and readers never see a partial file.

    Args:
        directory: created if needed.
    """

    _NAME = re.compile(r"bundle_v(\d{8})\.safetensors")

    def __init__(self, directory: StrPath) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, version: int) -> Path:
        """File path of a version (whether or not it exists)."""
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 10**8:
            raise ConfigError(f"version must be an int in [0, 1e8), got {version!r}")
        return self.directory / f"bundle_v{version:08d}.safetensors"

    def put(self, bundle_bytes: bytes | bytearray | memoryview, version: int) -> Path:
        """Store a version's bundle bytes atomically.

        Returns:
            The new file's path.

        Raises:
            WeightsError: that version exists already (choose a new version number) or the write failed.
        """
        final = self.path(version)
        if final.exists():
            raise WeightsError(f"version {version} exists at {final}; versions are never overwritten")
        try:
            tmp = write_temp(self.directory, final.name, bundle_bytes, 0o644)
        except OSError as err:
            raise WeightsError(f"cannot write {final}: {err}") from err
        try:
            os.link(tmp, final)
        except FileExistsError as err:
            raise WeightsError(
                f"version {version} exists at {final}; versions are never overwritten"
            ) from err
        except OSError as err:
            raise WeightsError(f"cannot publish {final}: {err}") from err
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        fsync_dir(self.directory)
        return final

    def versions(self) -> list[int]:
        """Stored versions, ascending (temp files of interrupted writes are ignored)."""
        found = (self._NAME.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> int | None:
        """Highest stored version, or None when the store is empty."""
        versions = self.versions()
        return versions[-1] if versions else None

    def prune(self, keep: int) -> list[int]:
        """Delete all but the ``keep`` newest versions; returns the deleted version numbers."""
        if keep < 1:
            raise ConfigError(f"keep must be >= 1, got {keep}")
        old = self.versions()[:-keep]
        for version in old:
            with contextlib.suppress(FileNotFoundError):
                self.path(version).unlink()
        return old
