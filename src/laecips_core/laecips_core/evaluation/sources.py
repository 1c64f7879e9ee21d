"""The evaluated stream x_1, x_2, ...: the built-in drifting benchmark or a rosbag2, frame by frame.

Both sources give ``StreamFrame`` records (image, ground truth, task id, timestamp: the clock of
Algorithm 2's maxtime trigger) and can be restarted from the beginning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from laecips_core.errors import BagError, ConfigError
from laecips_core.evaluation.run_config import EvalConfig
from laecips_core.storage import bags


@dataclass(frozen=True)
class StreamFrame:
    """One frame of the evaluated stream (benchmark ``data.Frame`` and ``bags.BagFrame`` both fit).

    Attributes:
        index: position in the stream.
        task_id: task (drift phase) id.
        timestamp: capture time in seconds (the stream clock used by Algorithm 2's maxtime).
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) uint8 ground-truth class ids (255 = ignore), or None when unlabelled.
    """

    index: int
    task_id: int
    timestamp: float
    image: np.ndarray
    labels: np.ndarray | None


def as_stream_frame(frame: Any, index: int | None = None) -> StreamFrame:
    """A benchmark ``data.Frame`` or ``bags.BagFrame`` as a StreamFrame (``index`` replaces its own)."""
    labels = getattr(frame, "labels", None)
    return StreamFrame(
        index=int(frame.index if index is None else index),
        task_id=int(frame.task_id),
        timestamp=float(frame.timestamp),
        image=np.asarray(frame.image),
        labels=None if labels is None else np.asarray(labels),
    )


@dataclass
class StreamSource:
    """A re-iterable stream: ``frames()`` starts it again from the beginning each call.

    Attributes:
        frames: callable returning a fresh iterator of StreamFrame.
        total: number of frames, when known (progress bars only).
        class_names: the M class names, when the source knows them.
        description: what the stream is, for results.json.
    """

    frames: Callable[[], Iterator[StreamFrame]]
    total: int | None
    class_names: list[str] | None
    description: dict[str, Any]


def benchmark_source(cfg: EvalConfig, *, seed: int | None = None) -> StreamSource:
    """The built-in drifting benchmark (laecips_core.benchmark.generator) as a StreamSource."""
    from laecips_core import benchmark as data

    bench = data.BenchmarkConfig(
        seed=cfg.seed if seed is None else seed,
        frames_per_task=cfg.frames_per_task,
        width=cfg.width,
        height=cfg.height,
        num_tasks=cfg.num_tasks,
    )

    stop = bench.num_frames if cfg.max_frames is None else min(cfg.max_frames, bench.num_frames)

    def frames() -> Iterator[StreamFrame]:
        for frame in data.generate_stream(bench, stop=stop):
            yield as_stream_frame(frame)

    return StreamSource(
        frames,
        stop,
        list(data.CLASSES),
        {"kind": "benchmark", **asdict(bench)},
    )


def bag_source(cfg: EvalConfig) -> StreamSource:
    """A rosbag2 as a StreamSource; label/task topics that the bag lacks are dropped with a note.

    Raises:
        BagError: the bag, the camera topic or an explicitly named topic is missing.
    """
    assert cfg.bag is not None
    info = bags.inspect_bag(cfg.bag, cfg.classes_topic)
    notes: list[str] = []
    label_topic = cfg.label_topic if cfg.use_labels else None
    if label_topic and label_topic not in info.topics:
        if label_topic != bags.DEFAULT_TOPICS.labels:
            found = info.topics_of_type({bags.IMAGE_TYPE})
            raise BagError(f"label topic {label_topic!r} is not in {cfg.bag}; Image topics there: {found}")
        notes.append(f"no label topic {label_topic}: mIoU is unavailable, CUR and latency are computed")
        label_topic = None
    task_topic = cfg.task_topic if cfg.task_boundaries is None else None
    if task_topic and task_topic not in info.topics:
        if task_topic != bags.DEFAULT_TOPICS.task:
            raise BagError(f"task topic {task_topic!r} is not in {cfg.bag}; use --task-boundaries instead")
        notes.append(f"no task topic {task_topic} and no --task-boundaries: the whole bag is one task")
        task_topic = None
    if cfg.image_topic not in info.topics:
        found = info.topics_of_type(bags.CAMERA_TYPES)
        raise BagError(f"camera topic {cfg.image_topic!r} is not in {cfg.bag}; camera topics there: {found}")
    total = info.topics[cfg.image_topic].count
    if cfg.max_frames is not None:
        total = min(total, cfg.max_frames)
    bag = cfg.bag

    def frames() -> Iterator[StreamFrame]:
        for frame in bags.read_bag_frames(
            bag,
            cfg.image_topic,
            label_topic,
            task_topic,
            cfg.task_boundaries,
            max_frames=cfg.max_frames,
        ):
            yield as_stream_frame(frame)

    description = {
        "kind": "rosbag2",
        "path": str(cfg.bag),
        "image_topic": cfg.image_topic,
        "label_topic": label_topic,
        "task_topic": task_topic,
        "task_boundaries": list(cfg.task_boundaries) if cfg.task_boundaries is not None else None,
        "frames": total,
        "notes": notes,
    }
    return StreamSource(frames, total, info.class_names, description)


def first_frame_size(source: StreamSource) -> tuple[int, int]:
    """(height, width) of the stream's first frame."""
    for frame in source.frames():
        return int(frame.image.shape[0]), int(frame.image.shape[1])
    raise BagError("the stream has no frames: check the camera topic and --max-frames")


def scan_num_classes(source: StreamSource) -> int:
    """M from the ground truth: the largest label id (255 = ignore excluded) + 1."""
    top = -1
    for frame in source.frames():
        if frame.labels is not None:
            valid = frame.labels[frame.labels != 255]
            if valid.size:
                top = max(top, int(valid.max()))
    if top < 0:
        raise ConfigError("cannot tell the class count M: give --num-classes (no labels, no class metadata)")
    return max(top + 1, 2)
