"""Tests of the benchmark's task table, stream configuration and index -> task mapping."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.benchmark import tasks
from laecips_core.benchmark.tasks import TASK_STYLES, BenchmarkConfig, class_frequencies, task_label, task_of
from laecips_core.errors import ConfigError

from laecips_core import classes


def test_the_benchmark_uses_the_shipped_class_set():
    assert 12 <= classes.NUM_CLASSES == len(classes.CLASSES) == len(set(classes.CLASSES)) <= 16
    assert {"floor", "wall", "conveyor_belt", "person", "defect", "spill"} <= set(classes.CLASSES)
    assert [tasks.CLASS_ID[name] for name in classes.CLASSES] == list(range(classes.NUM_CLASSES))


def test_every_style_gives_one_probability_per_class():
    assert len(TASK_STYLES) == 5
    always = [tasks.CLASS_ID[name] for name in ("floor", "wall", "conveyor_belt")]
    for style in TASK_STYLES:
        assert len(style.presence) == classes.NUM_CLASSES
        assert all(0.0 <= p <= 1.0 for p in style.presence)
        assert [style.presence[c] for c in always] == [1.0, 1.0, 1.0]
        assert abs(sum(style.part_mix) - 1.0) < 0.5 and min(style.part_mix) >= 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"height": 10_000}, "height"),
        ({"width": 8000, "height": 8000}, "exceeds"),
        ({"num_tasks": 6}, "num_tasks"),
        ({"num_tasks": 0}, "num_tasks"),
        ({"frames_per_task": 0}, "frames_per_task"),
        ({"fps": 0.0}, "fps"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"width": True}, "width"),
    ],
)
def test_config_is_validated(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        BenchmarkConfig(**kwargs)


def test_frames_follow_the_tasks_in_order():
    cfg = BenchmarkConfig(frames_per_task=4, num_tasks=2, width=32, height=32)
    assert cfg.num_frames == 8
    assert [task_of(cfg, i) for i in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert task_of(cfg, np.int64(5)) == 1
    for bad in (-1, 8, True, 2.0):
        with pytest.raises(ConfigError, match="frame index"):
            task_of(cfg, bad)


def test_class_frequencies_drift_between_tasks():
    cfg = BenchmarkConfig()
    freq = np.stack([class_frequencies(cfg, t) for t in range(cfg.num_tasks)])
    assert freq.shape == (5, classes.NUM_CLASSES) and freq.dtype == np.float64
    assert freq[:, tasks.CLASS_ID["floor"]].tolist() == [1.0] * 5
    person, agv, plastic = (tasks.CLASS_ID[n] for n in ("person", "agv", "plastic_part"))
    assert freq[1, person] > freq[0, person]
    assert freq[3, agv] > freq[0, agv]
    assert freq[2, plastic] > freq[0, plastic]
    short = BenchmarkConfig(num_tasks=2)
    for bad in (2, -1, True):
        with pytest.raises(ConfigError, match="task_id"):
            class_frequencies(short, bad)


def test_task_labels_number_from_one():
    assert [task_label(t) for t in range(3)] == ["task 1", "task 2", "task 3"]
    assert task_label(np.int64(4)) == "task 5"
