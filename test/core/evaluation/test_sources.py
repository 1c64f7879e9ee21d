"""The evaluated stream: the benchmark and rosbag2 sources, restartable, and the scans over them."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.errors import BagError, ConfigError
from laecips_core.evaluation.run_config import EvalConfig
from laecips_core.evaluation.sources import (
    StreamFrame,
    StreamSource,
    as_stream_frame,
    bag_source,
    benchmark_source,
    first_frame_size,
    scan_num_classes,
)
from laecips_core.storage import bags

from laecips_core import benchmark as data


def _source(frames: list[StreamFrame]) -> StreamSource:
    return StreamSource(lambda: iter(frames), len(frames), None, {"kind": "test"})


def test_benchmark_source_restarts_and_stops_at_max_frames():
    cfg = EvalConfig(frames_per_task=2, num_tasks=2, width=32, height=24, max_frames=3)
    source = benchmark_source(cfg)
    first, again = list(source.frames()), list(source.frames())
    assert source.total == 3 and [f.index for f in first] == [0, 1, 2]
    assert [f.task_id for f in first] == [0, 0, 1]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert first[0].image.shape == (24, 32, 3) and first[0].labels is not None
    assert source.class_names == list(data.CLASSES) and source.description["kind"] == "benchmark"
    assert first_frame_size(source) == (24, 32)


def test_as_stream_frame_takes_any_frame_record_and_a_new_index():
    frame = next(iter(data.generate_stream(data.BenchmarkConfig(frames_per_task=1, width=24, height=16))))
    converted = as_stream_frame(frame, index=7)
    assert (
        converted.index == 7 and converted.task_id == frame.task_id and converted.image.shape == (16, 24, 3)
    )
    assert as_stream_frame(frame._replace(labels=None)).labels is None


def test_scan_num_classes_and_empty_streams():
    labels = np.full((4, 4), 255, np.uint8)
    labels[0, 0] = 4
    frame = StreamFrame(0, 0, 0.0, np.zeros((4, 4, 3), np.uint8), labels)
    assert scan_num_classes(_source([frame])) == 5
    with pytest.raises(ConfigError, match="--num-classes"):
        scan_num_classes(_source([StreamFrame(0, 0, 0.0, frame.image, None)]))
    with pytest.raises(BagError, match="no frames"):
        first_frame_size(_source([]))


def test_bag_source_reads_the_bag_again_and_refuses_missing_named_topics(tmp_path):
    cfg = data.BenchmarkConfig(frames_per_task=2, width=24, height=16, num_tasks=1)
    bag = bags.write_frames_bag(
        tmp_path / "bag", list(data.generate_stream(cfg)), data.CLASSES, progress=False
    )
    source = bag_source(EvalConfig(bag=bag))
    assert source.total == 2 and source.description["kind"] == "rosbag2"
    assert [f.index for f in source.frames()] == [0, 1] == [f.index for f in source.frames()]
    assert all(f.labels is not None for f in source.frames())
    unlabelled = bag_source(EvalConfig(bag=bag, use_labels=False))
    assert (
        unlabelled.description["label_topic"] is None
        and [f.labels for f in unlabelled.frames()] == [None] * 2
    )
    with pytest.raises(BagError, match="camera topic '/nope'"):
        bag_source(EvalConfig(bag=bag, image_topic="/nope"))
    with pytest.raises(BagError, match="label topic '/my/labels'"):
        bag_source(EvalConfig(bag=bag, label_topic="/my/labels"))
