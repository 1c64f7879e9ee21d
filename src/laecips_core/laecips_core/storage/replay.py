"""Replay buffer of Algorithm 2: hard frames, their fused labels F(x) and SAM(x) masks, durable in sqlite."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np
import zstandard

from laecips_core.errors import ConfigError, ReplayError

SCHEMA_VERSION = 2
"""Stored in ``PRAGMA user_version``; version 1 files (no masks) are upgraded in place, others refused."""

MAX_MASKS = 4096
"""Most SAM(x) masks stored with one sample (a guard against corrupt or hostile input)."""

LABEL_DTYPES: tuple[str, ...] = ("uint8", "uint16", "int32")
"""Label map dtypes stored as they are (design.md: uint8, or uint16/int32 when M > 255)."""

MAX_SIDE = 16384
"""Largest image height or width accepted (pixels), a guard against corrupt or hostile input."""

_ZSTD_LEVEL = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp REAL NOT NULL,
    task_id INTEGER NOT NULL,
    robot_id TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    height INTEGER NOT NULL,
    width INTEGER NOT NULL,
    image BLOB NOT NULL,
    image_crc INTEGER NOT NULL,
    labels_dtype TEXT NOT NULL,
    labels BLOB NOT NULL,
    labels_crc INTEGER NOT NULL,
    summary BLOB,
    masks_count INTEGER NOT NULL DEFAULT 0,
    masks BLOB
);
CREATE INDEX IF NOT EXISTS samples_robot ON samples (robot_id, id);
"""

_UPGRADE_1_TO_2 = (
    "ALTER TABLE samples ADD COLUMN masks_count INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE samples ADD COLUMN masks BLOB",
)


class ReplaySample(NamedTuple):
    """One stored hard input of Algorithm 2 and its fused label F(x).

    Attributes:
        id: Row id, increasing in append order (the oldest sample has the smallest id).
        image: (H, W, 3) uint8 RGB frame x.
        labels: (H, W) uint8 / uint16 / int32 fused label map F(x) (255 = ignore when uint8).
        logits_summary: Small (K,) float32 summary of f's logits (e.g. per-class mean probability), or None.
        timestamp: Capture time of the frame in seconds (any clock the caller uses consistently).
        task_id: Task (drift phase) of the frame, -1 when unknown.
        robot_id: Robot that uploaded the frame ("" when unknown).
        model_version: Version of f that produced the edge result, -1 when unknown.
        masks: (K, H, W) bool masks SAM(x) that F(x) was fused from, or None when not stored; the
            trainer re-fuses them with the adapted f (``laecips_core.recipes``).
    """

    id: int
    image: np.ndarray
    labels: np.ndarray
    logits_summary: np.ndarray | None
    timestamp: float
    task_id: int
    robot_id: str
    model_version: int
    masks: np.ndarray | None = None


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ReplayError(f"image must be a numpy array (H, W, 3) uint8, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ReplayError(
            f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}; "
            "convert it with laecips_core.imaging first"
        )
    h, w = image.shape[:2]
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise ReplayError(f"image size {w}x{h} is outside 1..{MAX_SIDE} pixels per side")
    return np.ascontiguousarray(image)


def _check_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if not isinstance(labels, np.ndarray):
        raise ReplayError(f"labels must be a numpy array (H, W), got {type(labels).__name__}")
    if labels.shape != shape:
        raise ReplayError(f"labels shape {labels.shape} does not match the image's (H, W) = {shape}")
    if labels.dtype.name in LABEL_DTYPES:
        return np.ascontiguousarray(labels)
    if labels.dtype.kind not in "iu":
        raise ReplayError(f"labels must be an integer class map, got dtype {labels.dtype}")
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if lo < 0 or hi > np.iinfo(np.int32).max:
        raise ReplayError(f"label values must lie in 0..2**31-1, got {lo}..{hi}")
    # Other integer dtypes (e.g. int64 from argmax) are stored compactly, value-preserving.
    target = np.uint8 if hi <= 255 else np.uint16 if hi <= 65535 else np.int32
    return np.ascontiguousarray(labels.astype(target))


def _check_masks(masks: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if masks is None:
        return None
    if not isinstance(masks, np.ndarray) or masks.ndim != 3 or masks.shape[1:] != shape:
        got = getattr(masks, "shape", type(masks).__name__)
        raise ReplayError(f"masks must be (K, H, W) with (H, W) = {shape}, got {got}")
    if len(masks) > MAX_MASKS:
        raise ReplayError(f"{len(masks)} masks exceed the replay limit of {MAX_MASKS}")
    return masks.astype(bool, copy=False)


def _check_summary(summary: np.ndarray | None) -> np.ndarray | None:
    if summary is None:
        return None
    arr = np.asarray(summary)
    if arr.ndim != 1 or arr.size > 4096 or arr.dtype.kind not in "fiu":
        raise ReplayError(
            f"logits_summary must be a small 1-D numeric array (<= 4096 values), got shape {arr.shape} "
            f"dtype {arr.dtype}"
        )
    out = np.ascontiguousarray(arr.astype(np.float32))
    if not np.isfinite(out).all():
        raise ReplayError("logits_summary contains NaN or inf; store per-class mean probabilities instead")
    return out


class ReplayBuffer:
    """Bounded, durable replay buffer of Algorithm 2 (one sqlite row per sample).

    The file is in WAL mode with ``synchronous=FULL`` and each :meth:`append` is one transaction, so a
    sample is on disk once ``append`` returns and survives a killed writer. One writer process and one
    reader/clearer process may use the same file at the same time (``busy_timeout`` waits for locks);
    inside one process the object is thread-safe.

    Bounded: when more than ``maxsize`` samples are stored, the oldest (smallest id) are dropped in the
    same transaction as the append. Algorithm 2 trains once the size exceeds its own maxsize and then
    empties the buffer, so with the trainer's ``maxsize`` below this one the trigger fires before
    anything is dropped; dropping only protects the disk when training stalls.

    Images are stored raw + zstd (lossless, ~10x faster than PNG), labels as raw + zstd with their
    dtype, each with a CRC-32 of the raw bytes that is checked on read.

    Args:
        path: sqlite file; its parent directory is created.
        maxsize: Most samples kept (>= 1).
        busy_timeout_s: How long a statement waits for another process's lock before failing (s).
    """

    def __init__(
        self, path: str | os.PathLike[str], maxsize: int = 1000, busy_timeout_s: float = 30.0
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigError(f"maxsize must be an int >= 1, got {maxsize!r}")
        if not busy_timeout_s > 0:
            raise ConfigError(f"busy_timeout_s must be > 0 s, got {busy_timeout_s!r}")
        self.path = Path(path)
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._zc = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        self._zd = zstandard.ZstdDecompressor()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: every transaction below is explicit (BEGIN IMMEDIATE ... COMMIT).
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn = self._conn
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ReplayError(f"{self.path}: sqlite refused WAL mode ({mode}); use a local filesystem")
            conn.execute("PRAGMA synchronous = FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, SCHEMA_VERSION):
                raise ReplayError(
                    f"{self.path} has replay schema {version}, this code reads {SCHEMA_VERSION}; "
                    "use a new file or the matching laecips_core version"
                )
            conn.execute("BEGIN IMMEDIATE")
            if version == 1:
                for stmt in _UPGRADE_1_TO_2:
                    conn.execute(stmt)
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except (sqlite3.Error, ValueError) as err:  # ValueError: a damaged file's text is not UTF-8
            raise ReplayError(
                f"cannot open replay buffer {self.path}: {err}; check the path and permissions"
            ) from err

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database (idempotent); further use raises ReplayError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ReplayBuffer:
        self._db()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ReplayError(f"replay buffer {self.path} is closed; open a new ReplayBuffer")
        return self._conn

    # -- writing -----------------------------------------------------------------------------------
    def append(
        self,
        image: np.ndarray,
        labels: np.ndarray,
        *,
        logits_summary: np.ndarray | None = None,
        timestamp: float | None = None,
        task_id: int = -1,
        robot_id: str = "",
        model_version: int = -1,
        masks: np.ndarray | None = None,
    ) -> int:
        """Store one hard input x, its fused label F(x) and SAM(x); durable when this returns.

        Args:
            image: (H, W, 3) uint8 RGB frame.
            labels: (H, W) integer label map F(x); uint8 / uint16 / int32 are kept, other integer dtypes
                are stored in the smallest of those that holds the values.
            logits_summary: Optional small (K,) float array (e.g. per-class mean probability of f(x)).
            timestamp: Capture time in seconds; ``time.time()`` when None.
            task_id: Drift task of the frame (-1 unknown).
            robot_id: Uploading robot ("" unknown).
            model_version: Version of f on the robot (-1 unknown).
            masks: (K, H, W) bool masks SAM(x) that F(x) was fused from (bit-packed + zstd), or None.

        Returns:
            The new sample's id.

        Raises:
            ReplayError: Bad shapes/dtypes, or the database write failed.
        """
        image = _check_image(image)
        labels = _check_labels(labels, image.shape[:2])
        summary = _check_summary(logits_summary)
        mask_stack = _check_masks(masks, image.shape[:2])
        ts = time.time() if timestamp is None else float(timestamp)
        if not np.isfinite(ts):
            raise ReplayError(f"timestamp must be a finite number of seconds, got {timestamp!r}")
        if not isinstance(robot_id, str):
            raise ReplayError(f"robot_id must be a str, got {type(robot_id).__name__}")
        img_raw = image.tobytes()
        lab_raw = labels.tobytes()
        row = (
            ts,
            int(task_id),
            robot_id,
            int(model_version),
            int(image.shape[0]),
            int(image.shape[1]),
            self._zc.compress(img_raw),
            zlib.crc32(img_raw),
            labels.dtype.name,
            self._zc.compress(lab_raw),
            zlib.crc32(lab_raw),
            None if summary is None else summary.tobytes(),
            0 if mask_stack is None else len(mask_stack),
            None if mask_stack is None else self._zc.compress(np.packbits(mask_stack).tobytes()),
        )
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    cur = conn.execute(
                        "INSERT INTO samples (timestamp, task_id, robot_id, model_version, height, width, "
                        "image, image_crc, labels_dtype, labels, labels_crc, summary, masks_count, masks) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    new_id = int(cur.lastrowid or 0)
                    conn.execute(
                        "DELETE FROM samples WHERE id IN (SELECT id FROM samples ORDER BY id "
                        "LIMIT max(0, (SELECT COUNT(*) FROM samples) - ?))",
                        (self.maxsize,),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as err:
                raise ReplayError(
                    f"cannot append to {self.path}: {err}; is the disk full or locked?"
                ) from err
        return new_id

    def clear(self, ids: list[int] | tuple[int, ...] | None = None) -> int:
        """Remove samples: all of them (``ids=None``) or only the given ids.

        Algorithm 2 empties the buffer after training; pass the ids that were trained on so that
        samples appended while training ran are kept for the next round.

        Returns:
            Number of rows removed (unknown ids are ignored).
        """
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if ids is None:
                        removed = conn.execute("DELETE FROM samples").rowcount
                    else:
                        id_list = [int(i) for i in ids]
                        removed = 0
                        for start in range(0, len(id_list), 500):
                            chunk = id_list[start : start + 500]
                            marks = ",".join("?" * len(chunk))
                            removed += conn.execute(
                                f"DELETE FROM samples WHERE id IN ({marks})", chunk
                            ).rowcount
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as err:
                raise ReplayError(f"cannot clear {self.path}: {err}") from err
        return int(removed)

    # -- reading -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM samples", ())[0][0])

    def ids(self, robot_id: str | None = None) -> list[int]:
        """Ids of the stored samples, oldest first (optionally of one robot)."""
        if robot_id is None:
            rows = self._query("SELECT id FROM samples ORDER BY id", ())
        else:
            rows = self._query("SELECT id FROM samples WHERE robot_id = ? ORDER BY id", (robot_id,))
        return [int(r[0]) for r in rows]

    def oldest_timestamp(self) -> float | None:
        """Smallest stored timestamp in seconds, or None when the buffer is empty."""
        value = self._query("SELECT MIN(timestamp) FROM samples", ())[0][0]
        return None if value is None else float(value)

    def samples(self, limit: int | None = None, robot_id: str | None = None) -> list[ReplaySample]:
        """Decode stored samples, oldest first.

        Args:
            limit: At most this many (the oldest ones); None for all.
            robot_id: Only this robot's samples; None for all robots.

        Raises:
            ReplayError: A row is corrupt (CRC or size mismatch) or the read failed.
        """
        if limit is not None and (isinstance(limit, bool) or int(limit) < 0):
            raise ReplayError(f"limit must be None or >= 0, got {limit!r}")
        sql = (
            "SELECT id, timestamp, task_id, robot_id, model_version, height, width, image, image_crc, "
            "labels_dtype, labels, labels_crc, summary, masks_count, masks FROM samples"
        )
        params: tuple[object, ...] = ()
        if robot_id is not None:
            sql += " WHERE robot_id = ?"
            params = (robot_id,)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params = (*params, int(limit))
        return [self._decode(row) for row in self._query(sql, params)]

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._db()
            try:
                return conn.execute(sql, params).fetchall()
            except (sqlite3.Error, ValueError) as err:  # ValueError: text of a damaged file is not UTF-8
                raise ReplayError(f"cannot read {self.path}: {err}") from err

    def _decode(self, row: tuple[Any, ...]) -> ReplaySample:
        """One stored row as a ReplaySample; a row of wrong types (SQLite columns are not typed) is corrupt.

        Raises:
            ReplayError: the row does not decode (wrong types, sizes, CRC, compression).
        """
        try:
            return self._decode_row(row)
        except (TypeError, ValueError, OverflowError, MemoryError) as err:
            raise ReplayError(
                f"sample {row[0]} in {self.path} is corrupt ({type(err).__name__}: {err}); clear it "
                f"(clear([{row[0]}]))"
            ) from err

    def _decode_row(self, row: tuple[Any, ...]) -> ReplaySample:
        (sid, ts, task_id, robot_id, version, h, w, img_z, img_crc, lab_dtype, lab_z, lab_crc, summ) = row[
            :13
        ]
        n_masks, masks_z = row[13:15]
        if lab_dtype not in LABEL_DTYPES or not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
            raise ReplayError(f"sample {sid} in {self.path} has a corrupt header; clear it (clear([{sid}]))")
        dtype = np.dtype(lab_dtype)
        try:
            img_raw = self._zd.decompress(img_z, max_output_size=h * w * 3)
            lab_raw = self._zd.decompress(lab_z, max_output_size=h * w * dtype.itemsize)
        except zstandard.ZstdError as err:
            raise ReplayError(f"sample {sid} in {self.path} does not decompress: {err}; clear it") from err
        if (
            len(img_raw) != h * w * 3
            or len(lab_raw) != h * w * dtype.itemsize
            or zlib.crc32(img_raw) != img_crc
            or zlib.crc32(lab_raw) != lab_crc
        ):
            raise ReplayError(
                f"sample {sid} in {self.path} fails its size/CRC check; clear it (clear([{sid}]))"
            )
        image = np.frombuffer(img_raw, dtype=np.uint8).reshape(h, w, 3).copy()
        labels = np.frombuffer(lab_raw, dtype=dtype).reshape(h, w).copy()
        summary = None if summ is None else np.frombuffer(summ, dtype=np.float32).copy()
        masks = None
        if masks_z is not None:
            if not 0 <= int(n_masks) <= MAX_MASKS:
                raise ReplayError(f"sample {sid} in {self.path} has a corrupt mask count; clear it")
            bits = int(n_masks) * h * w
            try:
                packed = self._zd.decompress(masks_z, max_output_size=(bits + 7) // 8)
            except zstandard.ZstdError as err:
                raise ReplayError(f"sample {sid} in {self.path}: masks do not decompress: {err}") from err
            if len(packed) != (bits + 7) // 8:
                raise ReplayError(f"sample {sid} in {self.path}: masks have the wrong size; clear it")
            unpacked = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=bits)
            masks = unpacked.astype(bool).reshape(int(n_masks), h, w)
        return ReplaySample(
            int(sid), image, labels, summary, float(ts), int(task_id), str(robot_id), int(version), masks
        )
