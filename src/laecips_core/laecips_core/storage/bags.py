"""rosbag2 files for LAECIPS: record the drifting benchmark, replay camera/label/task topics (rosbags)."""

from __future__ import annotations

import bisect
import io
import json
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from laecips_core import image_arrays, image_codecs, imaging
from laecips_core.errors import BagError, ImageError

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
STRING_TYPE = "std_msgs/msg/String"
TASK_TYPES = {
    "uint8": "std_msgs/msg/UInt8",
    "int32": "std_msgs/msg/Int32",
}
#: Message types whose integer ``data`` field is accepted as a task id when reading.
READABLE_TASK_TYPES = frozenset(
    f"std_msgs/msg/{name}"
    for name in ("UInt8", "Int8", "UInt16", "Int16", "UInt32", "Int32", "UInt64", "Int64")
)
CAMERA_TYPES = frozenset({IMAGE_TYPE, COMPRESSED_TYPE})
Storage = Literal["mcap", "sqlite3"]


@dataclass(frozen=True)
class BagTopics:
    """Topic names of a LAECIPS benchmark bag (all are plain ROS 2 topic names).

    Attributes:
        image: camera frames, sensor_msgs/msg/Image (rgb8) or CompressedImage (jpeg).
        labels: ground-truth class ids, sensor_msgs/msg/Image mono8 (mono16 when M > 255).
        task: the task id of each frame (std_msgs/msg/UInt8 or Int32), published before its frame.
        classes: std_msgs/msg/String JSON ``{"classes": [...], "num_classes": M, ...}``, written once
            at the start of the bag with transient-local (latched) QoS.
    """

    image: str = "/camera/image_raw"
    labels: str = "/camera/labels"
    task: str = "/laecips/task"
    classes: str = "/laecips/classes"


DEFAULT_TOPICS = BagTopics()


@dataclass(frozen=True)
class BagFrame:
    """One camera frame read from a bag, with its ground truth when the bag has it.

    Attributes:
        index: position in the replayed stream (0-based, in bag order).
        task_id: task the frame belongs to (from the task topic, the time boundaries, or 0).
        timestamp: header stamp of the image message in seconds.
        log_time: time the message was recorded, seconds since the epoch of the bag clock.
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) uint8 (uint16 for mono16) class ids matched by header stamp, or None.
    """

    index: int
    task_id: int
    timestamp: float
    log_time: float
    image: np.ndarray
    labels: np.ndarray | None


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag: its message type and how many messages it holds."""

    msgtype: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    """What a bag contains, enough to pick topics and to explain a wrong choice.

    Attributes:
        path: the bag directory or storage file.
        topics: topic name -> TopicSummary.
        start_s: log time of the first message, seconds.
        duration_s: log time span, seconds.
        class_names: from the classes topic (JSON metadata), or None when the bag has none.
    """

    path: Path
    topics: dict[str, TopicSummary]
    start_s: float
    duration_s: float
    class_names: list[str] | None = field(default=None)

    def topics_of_type(self, msgtypes: Iterable[str]) -> list[str]:
        """Names of the topics whose type is one of ``msgtypes``, sorted."""
        wanted = set(msgtypes)
        return sorted(name for name, info in self.topics.items() if info.msgtype in wanted)


def _typestore() -> Any:
    """The rosbags typestore of ROS 2 Kilted (the newest one rosbags knows when Kilted is missing)."""
    from rosbags.typesys import Stores, get_typestore

    store = getattr(Stores, "ROS2_KILTED", None) or Stores.LATEST
    return get_typestore(store)


def _stamp_ns(header: Any) -> int:
    """Nanoseconds of a std_msgs/Header stamp."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _header(typestore: Any, stamp_ns: int, frame_id: str) -> Any:
    """A std_msgs/msg/Header for ``stamp_ns`` (nanoseconds, >= 0)."""
    time_cls = typestore.types["builtin_interfaces/msg/Time"]
    header_cls = typestore.types["std_msgs/msg/Header"]
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return header_cls(stamp=time_cls(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _latched_qos() -> list[Any]:
    """Offered QoS of a latched topic: reliable, transient local, keep last 1."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(sec=0, nsec=0)
    return [
        Qos(
            history=QosHistory.KEEP_LAST,
            depth=1,
            reliability=QosReliability.RELIABLE,
            durability=QosDurability.TRANSIENT_LOCAL,
            deadline=zero,
            lifespan=zero,
            liveliness=QosLiveliness.AUTOMATIC,
            liveliness_lease_duration=zero,
            avoid_ros_namespace_conventions=False,
        )
    ]


def write_frames_bag(
    path: str | Path,
    frames: Iterable[Any],
    class_names: Sequence[str],
    *,
    storage: Storage = "mcap",
    topics: BagTopics = DEFAULT_TOPICS,
    compressed: bool = False,
    jpeg_quality: int = 90,
    task_type: Literal["uint8", "int32"] = "uint8",
    frame_id: str = "camera",
    metadata: dict[str, Any] | None = None,
    total: int | None = None,
    progress: bool = True,
) -> Path:
    """Write frames (anything with index, task_id, timestamp, image, labels) to a new rosbag2.

    Each frame becomes, at log time = header stamp = ``frame.timestamp``: a task message, the camera
    message and the label message (when ``frame.labels`` is not None). The class list is written
    once, first, as latched JSON on ``topics.classes``.

    Args:
        path: bag directory to create; it must not exist yet.
        frames: frames in stream order; ``image`` (H, W, 3) uint8 RGB, ``labels`` (H, W) class ids.
        class_names: the M class names; M <= 65535 (labels are mono8 when M <= 256, else mono16).
        storage: "mcap" (default) or "sqlite3".
        topics: topic names.
        compressed: write sensor_msgs/msg/CompressedImage "jpeg" instead of rgb8 Image (lossy).
        jpeg_quality: JPEG quality 1-100 when ``compressed``.
        task_type: "uint8" (std_msgs/msg/UInt8) or "int32" (std_msgs/msg/Int32) for the task topic.
        frame_id: header frame_id of the camera and label messages.
        metadata: extra JSON-serialisable keys stored with the class list.
        total: number of frames, for the progress bar only.
        progress: show a tqdm bar.

    Returns:
        The bag path.

    Raises:
        BagError: the path exists, the storage or task type is unknown, or a frame is unusable.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.rosbag2.errors import WriterError

    path = Path(path)
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise BagError(f"unknown bag storage {storage!r}: use 'mcap' or 'sqlite3'")
    if task_type not in TASK_TYPES:
        raise BagError(f"unknown task message type {task_type!r}: use one of {sorted(TASK_TYPES)}")
    if not 1 <= jpeg_quality <= 100:
        raise BagError(f"jpeg_quality={jpeg_quality} is outside 1..100")
    if path.exists():
        raise BagError(f"{path} exists already: choose a new bag path or delete the old bag first")
    num_classes = len(class_names)
    if not 1 <= num_classes <= 65535:
        raise BagError(f"{num_classes} classes cannot be stored as mono8/mono16 labels (1..65535 allowed)")
    ts = _typestore()
    image_cls = ts.types[IMAGE_TYPE]
    compressed_cls = ts.types[COMPRESSED_TYPE]
    task_cls = ts.types[TASK_TYPES[task_type]]
    string_cls = ts.types[STRING_TYPE]
    camera_type = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    task_max = 255 if task_type == "uint8" else 2**31 - 1
    meta = {"classes": list(class_names), "num_classes": num_classes, "producer": "laecips record-bag"}
    meta.update(metadata or {})
    try:
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=plugins[storage])
        with writer:
            conn_classes = writer.add_connection(
                topics.classes, STRING_TYPE, typestore=ts, offered_qos_profiles=_latched_qos()
            )
            conn_task = writer.add_connection(topics.task, TASK_TYPES[task_type], typestore=ts)
            conn_image = writer.add_connection(topics.image, camera_type, typestore=ts)
            conn_labels = writer.add_connection(topics.labels, IMAGE_TYPE, typestore=ts)
            first = True
            bar = tqdm(frames, total=total, desc="record-bag", unit="frame", disable=not progress)
            for frame in bar:
                stamp = int(round(float(frame.timestamp) * 1e9))
                if stamp < 0:
                    raise BagError(f"frame {frame.index} has a negative timestamp {frame.timestamp}")
                if first:
                    body = string_cls(data=json.dumps(meta, sort_keys=True))
                    writer.write(conn_classes, stamp, ts.serialize_cdr(body, STRING_TYPE))
                    first = False
                task_id = int(frame.task_id)
                if not 0 <= task_id <= task_max:
                    raise BagError(f"task id {task_id} does not fit std_msgs {task_type}: use 'int32'")
                task_msg = task_cls(data=task_id)
                writer.write(conn_task, stamp, ts.serialize_cdr(task_msg, TASK_TYPES[task_type]))
                header = _header(ts, stamp, frame_id)
                if compressed:
                    jpeg = image_codecs.encode_jpeg(frame.image, quality=jpeg_quality)
                    msg = compressed_cls(header=header, format="jpeg", data=np.frombuffer(jpeg, np.uint8))
                else:
                    msg = image_cls(header=header, **_image_fields(imaging.rgb_to_ros_fields(frame.image)))
                writer.write(conn_image, stamp, ts.serialize_cdr(msg, camera_type))
                if frame.labels is not None:
                    fields = _image_fields(
                        imaging.labels_to_ros_fields(np.asarray(frame.labels), num_classes)
                    )
                    label_msg = image_cls(header=header, **fields)
                    writer.write(conn_labels, stamp, ts.serialize_cdr(label_msg, IMAGE_TYPE))
    except WriterError as err:
        raise BagError(f"cannot write bag {path}: {err}") from err
    return path


def _image_fields(fields: imaging.RosImageFields) -> dict[str, Any]:
    """rosbags sensor_msgs/Image keyword arguments (no header): the fields with data as a uint8 array."""
    return {**fields, "data": np.frombuffer(fields["data"], dtype=np.uint8)}


def write_benchmark_bag(
    path: str | Path,
    cfg: Any,
    storage: Storage = "mcap",
    topics: BagTopics = DEFAULT_TOPICS,
    *,
    compressed: bool = False,
    jpeg_quality: int = 90,
    task_type: Literal["uint8", "int32"] = "uint8",
    progress: bool = True,
) -> Path:
    """Write the built-in drifting benchmark stream (laecips_core.benchmark.generator) to a rosbag2.

    Args:
        path: bag directory to create.
        cfg: a ``laecips_core.benchmark.generator.BenchmarkConfig`` (seed, frames per task, size, tasks).
        storage: "mcap" (default) or "sqlite3".
        topics: topic names.
        compressed: CompressedImage jpeg instead of rgb8 Image.
        jpeg_quality: JPEG quality when ``compressed``.
        task_type: "uint8" or "int32" task messages.
        progress: show a tqdm bar.

    Returns:
        The bag path.
    """
    from dataclasses import asdict

    from laecips_core import benchmark as data

    total = int(cfg.frames_per_task) * int(cfg.num_tasks)
    return write_frames_bag(
        path,
        data.generate_stream(cfg),
        data.CLASSES,
        storage=storage,
        topics=topics,
        compressed=compressed,
        jpeg_quality=jpeg_quality,
        task_type=task_type,
        metadata={"benchmark": asdict(cfg)},
        total=total,
        progress=progress,
    )


def _open_reader(path: Path) -> Any:
    """An opened-later rosbags AnyReader for a rosbag2 directory, .mcap or .db3 file."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    if not path.exists():
        raise BagError(f"bag {path} does not exist: give a rosbag2 directory or its .mcap/.db3 file")
    try:
        return AnyReader([path], default_typestore=_typestore())
    except (AnyReaderError, ValueError) as err:
        raise BagError(
            f"{path} is not a readable rosbag2 (a directory with metadata.yaml, .mcap or .db3): {err}"
        ) from err


def _parse_classes(text: str) -> list[str]:
    """Class names from the JSON of the classes topic: ``{"classes": [...]}`` or a bare list."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise BagError(f"class metadata is not JSON ({err}): expected {{'classes': [names]}}") from err
    names = value.get("classes") if isinstance(value, dict) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BagError("class metadata must hold a non-empty list of strings under 'classes'")
    return names


def inspect_bag(path: str | Path, classes_topic: str = DEFAULT_TOPICS.classes) -> BagInfo:
    """List the topics of a bag and read its class list when it has one.

    Args:
        path: rosbag2 directory, .mcap or .db3 file.
        classes_topic: std_msgs/msg/String topic with the class-list JSON.

    Returns:
        BagInfo.

    Raises:
        BagError: the bag cannot be opened.
    """
    from rosbags.highlevel import AnyReaderError

    path = Path(path)
    reader = _open_reader(path)
    try:
        with reader:
            topics = {
                name: TopicSummary(msgtype=info.msgtype or "", count=int(info.msgcount))
                for name, info in reader.topics.items()
            }
            class_names = None
            conns = [c for c in reader.connections if c.topic == classes_topic and c.msgtype == STRING_TYPE]
            # An empty connection list would mean "every topic" to rosbags: read only when present.
            for conn, _, raw in reader.messages(connections=conns) if conns else ():
                class_names = _parse_classes(reader.deserialize(raw, conn.msgtype).data)
                break
            start = reader.start_time if reader.message_count else 0
            duration = reader.duration if reader.message_count else 0
    except AnyReaderError as err:
        raise BagError(f"cannot read bag {path}: {err}") from err
    return BagInfo(path, topics, start / 1e9, duration / 1e9, class_names)


def _decode_camera(msg: Any, msgtype: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an Image (any common encoding) or CompressedImage (jpeg/png)."""
    if msgtype == IMAGE_TYPE:
        return imaging.ros_image_to_rgb(
            msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian)
        )
    fmt = str(msg.format).lower()
    raw = bytes(msg.data)
    if "jpeg" in fmt or "jpg" in fmt or raw[:3] == b"\xff\xd8\xff":
        return image_codecs.decode_jpeg(raw)
    if "png" in fmt or raw[:8] == b"\x89PNG\r\n\x1a\n":
        return _decode_png(raw)
    raise ImageError(f"CompressedImage format {msg.format!r} is not supported: record jpeg or png")


def _decode_png(raw: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB from PNG bytes (gray, palette and RGBA are converted)."""
    from PIL import Image as PilImage

    try:
        with PilImage.open(io.BytesIO(raw)) as img:
            if img.width * img.height > image_arrays.MAX_IMAGE_PIXELS:
                limit = image_arrays.MAX_IMAGE_PIXELS
                raise ImageError(f"PNG of {img.width}x{img.height} is over the {limit}-pixel limit")
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as err:
        raise ImageError(f"cannot decode PNG CompressedImage ({err}): check the recorder's format") from err


def _decode_labels(msg: Any) -> np.ndarray:
    """(H, W) class ids from a mono8 / mono16 (8UC1 / 16UC1) Image."""
    return imaging.ros_labels_to_array(
        msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian)
    )


def _pick_connections(reader: Any, topic: str, allowed: frozenset[str], role: str) -> list[Any]:
    """The reader's connections on ``topic``; BagError naming the usable topics when absent or mistyped."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        usable = sorted({c.topic for c in reader.connections if c.msgtype in allowed})
        raise BagError(f"the bag has no {role} topic {topic!r}; topics of a usable type: {usable or 'none'}")
    bad = sorted({c.msgtype for c in conns if c.msgtype not in allowed})
    if bad:
        raise BagError(f"{role} topic {topic!r} has type {bad[0]}; expected one of {sorted(allowed)}")
    return conns


def read_bag_frames(
    path: str | os.PathLike[str],
    image_topic: str = DEFAULT_TOPICS.image,
    label_topic: str | None = None,
    task_topic: str | None = None,
    task_boundaries: Sequence[float] | None = None,
    *,
    default_task: int = 0,
    max_frames: int | None = None,
    progress: bool = False,
) -> Iterator[BagFrame]:
    """Replay camera frames of a bag in recording order, with labels and task ids.

    Labels are matched to images by exact header stamp; an image without a label message gets
    ``labels=None``. The task of an image is, with ``task_topic``, the value of the last task message
    recorded at or before the image (the first task message for images before it); with
    ``task_boundaries`` (seconds since the bag's first message, ascending) it is the number of
    boundaries at or before the image's log time; otherwise ``default_task``.

    Args:
        path: rosbag2 directory, .mcap or .db3 file (any producer).
        image_topic: sensor_msgs/msg/Image (rgb8, bgr8, rgba8, bgra8, mono8, mono16, ...) or
            CompressedImage (jpeg, png) topic.
        label_topic: sensor_msgs/msg/Image mono8/mono16 ground-truth topic, or None.
        task_topic: std_msgs integer topic (UInt8, Int32, ...) with task ids, or None.
        task_boundaries: task start times in seconds since bag start; exclusive with task_topic.
        default_task: task id when neither source is given.
        max_frames: stop after this many frames (None: all).
        progress: show a tqdm bar over the camera messages.

    Yields:
        BagFrame in recording order.

    Raises:
        BagError: missing topics, wrong types, unreadable bag, both task sources given.
        ImageError: a message cannot be decoded (its encoding, size or bytes are wrong).
    """
    from rosbags.highlevel import AnyReaderError

    path = Path(path)
    if task_topic and task_boundaries is not None:
        raise BagError("give either a task topic or task boundaries, not both")
    bounds = sorted(float(b) for b in task_boundaries) if task_boundaries is not None else None
    reader = _open_reader(path)
    try:
        with reader:
            img_conns = _pick_connections(reader, image_topic, CAMERA_TYPES, "camera")
            lbl_conns = []
            if label_topic:
                lbl_conns = _pick_connections(reader, label_topic, frozenset({IMAGE_TYPE}), "label")
            task_conns = []
            if task_topic:
                task_conns = _pick_connections(reader, task_topic, READABLE_TASK_TYPES, "task")
            start_ns = int(reader.start_time)
            label_counts: Counter[int] = Counter()
            task_times: list[int] = []
            task_values: list[int] = []
            if lbl_conns or task_conns:
                for conn, log_ns, raw in reader.messages(connections=lbl_conns + task_conns):
                    msg = reader.deserialize(raw, conn.msgtype)
                    if conn.topic == label_topic:
                        label_counts[_stamp_ns(msg.header)] += 1
                    else:
                        task_times.append(int(log_ns))
                        task_values.append(int(msg.data))
                if task_conns and not task_values:
                    raise BagError(f"task topic {task_topic!r} has no messages: give task boundaries instead")
            total = sum(int(c.msgcount) for c in img_conns)
            if max_frames is not None:
                total = min(total, max_frames)
            bar = tqdm(total=total, desc="bag frames", unit="frame", disable=not progress)
            pending: deque[list[Any]] = deque()  # [stamp, log_ns, image, labels | None, ready]
            labels_by_stamp: dict[int, deque[np.ndarray]] = {}
            index = 0

            def task_for(log_ns: int) -> int:
                if task_values:
                    pos = bisect.bisect_right(task_times, log_ns) - 1
                    return task_values[max(pos, 0)]
                if bounds is not None:
                    return bisect.bisect_right(bounds, (log_ns - start_ns) / 1e9)
                return default_task

            for conn, log_ns, raw in reader.messages(connections=img_conns + lbl_conns):
                msg = reader.deserialize(raw, conn.msgtype)
                stamp = _stamp_ns(msg.header)
                if conn.topic == label_topic:
                    labels = _decode_labels(msg)
                    for item in pending:
                        if item[0] == stamp and not item[4]:
                            item[3], item[4] = labels, True
                            break
                    else:
                        labels_by_stamp.setdefault(stamp, deque()).append(labels)
                else:
                    image = _decode_camera(msg, conn.msgtype)
                    stored = labels_by_stamp.get(stamp)
                    matched: np.ndarray | None = stored.popleft() if stored else None
                    if stored is not None and not stored:
                        del labels_by_stamp[stamp]
                    # An image waits only for a label that is known to come later (pass 1 counted it).
                    expected = label_counts[stamp] > 0
                    if expected:
                        label_counts[stamp] -= 1
                    ready = matched is not None or not expected
                    pending.append([stamp, int(log_ns), image, matched, ready])
                while pending and pending[0][4]:
                    stamp_h, log_h, image_h, labels_h, _ = pending.popleft()
                    yield BagFrame(index, task_for(log_h), stamp_h / 1e9, log_h / 1e9, image_h, labels_h)
                    index += 1
                    bar.update(1)
                    if max_frames is not None and index >= max_frames:
                        bar.close()
                        return
            for stamp_h, log_h, image_h, labels_h, _ in pending:
                yield BagFrame(index, task_for(log_h), stamp_h / 1e9, log_h / 1e9, image_h, labels_h)
                index += 1
                bar.update(1)
                if max_frames is not None and index >= max_frames:
                    break
            bar.close()
    except AnyReaderError as err:
        raise BagError(f"cannot read bag {path}: {err}") from err


def parse_task_boundaries(text: str) -> list[float]:
    """``"t1,t2,..."`` (seconds since bag start, ascending) -> [t1, t2, ...].

    Raises:
        BagError: a value is not a number, is negative, or the list is not strictly ascending.
    """
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise BagError(f"task boundaries {text!r} must be comma-separated seconds, e.g. 30,60,90") from err
    if any(v < 0 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise BagError(f"task boundaries {text!r} must be non-negative and strictly ascending")
    return values
