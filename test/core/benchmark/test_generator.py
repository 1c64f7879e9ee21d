"""Tests of the drifting shop-floor benchmark: determinism, exact labels, drift between tasks, any size."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.benchmark import generator as data
from laecips_core.benchmark.generator import CLASSES, NUM_CLASSES, BenchmarkConfig, generate_frame
from laecips_core.errors import ConfigError

SMALL = BenchmarkConfig(seed=0, frames_per_task=400, width=160, height=120)


def _task_frames(cfg: BenchmarkConfig, task: int, stride: int = 10) -> list[data.Frame]:
    """One frame per scene (scenes last 10 frames at 10 fps) of one task."""
    start = task * cfg.frames_per_task
    return [generate_frame(cfg, i) for i in range(start + 3, start + cfg.frames_per_task, stride)]


def _presence(frames: list[data.Frame]) -> np.ndarray:
    """(M,) share of frames in which each class has at least one pixel."""
    hits = [np.bincount(f.labels.ravel(), minlength=NUM_CLASSES) > 0 for f in frames]
    return np.mean(hits, axis=0)


def _edge_alignment(image: np.ndarray, labels: np.ndarray) -> float:
    """Mean horizontal image gradient across label boundaries over the mean elsewhere."""
    grad = np.abs(np.diff(image.astype(np.float32).mean(axis=2), axis=1))
    boundary = labels[:, 1:] != labels[:, :-1]
    return float(grad[boundary].mean() / grad[~boundary].mean())


def _explained_variance(image: np.ndarray, labels: np.ndarray) -> float:
    """R^2 of the pixel colours predicted by their class's mean colour."""
    x = image.reshape(-1, 3).astype(np.float64)
    lab = labels.ravel()
    count = np.maximum(np.bincount(lab, minlength=NUM_CLASSES), 1)
    means = np.stack([np.bincount(lab, weights=x[:, c], minlength=NUM_CLASSES) / count for c in range(3)], 1)
    return float(1.0 - ((x - means[lab]) ** 2).sum() / ((x - x.mean(axis=0)) ** 2).sum())


def test_classes_and_styles_are_consistent():
    assert 12 <= NUM_CLASSES == len(CLASSES) == len(set(CLASSES)) <= 16
    assert {"floor", "wall", "conveyor_belt", "person", "defect", "spill"} <= set(CLASSES)
    assert len(data.TASK_STYLES) == 5
    for style in data.TASK_STYLES:
        assert len(style.presence) == NUM_CLASSES
        assert all(0.0 <= p <= 1.0 for p in style.presence)


def test_same_seed_and_index_give_identical_bytes_and_seeds_differ():
    cfg = BenchmarkConfig(seed=5, frames_per_task=20, width=96, height=72)
    a = generate_frame(cfg, 27)
    b = generate_frame(cfg, 27)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.labels.tobytes() == b.labels.tobytes()
    other = generate_frame(BenchmarkConfig(seed=6, frames_per_task=20, width=96, height=72), 27)
    assert other.image.tobytes() != a.image.tobytes()
    assert other.labels.tobytes() != a.labels.tobytes()


def test_frame_alone_equals_the_stream_element():
    cfg = BenchmarkConfig(seed=1, frames_per_task=8, width=64, height=48, num_tasks=2)
    stream = list(data.generate_stream(cfg, start=5, stop=12))
    assert [f.index for f in stream] == list(range(5, 12))
    for frame in stream:
        alone = generate_frame(cfg, frame.index)
        assert np.array_equal(alone.image, frame.image)
        assert np.array_equal(alone.labels, frame.labels)
        assert alone.task_id == frame.task_id == data.task_of(cfg, frame.index)
        assert alone.timestamp == pytest.approx(frame.index / cfg.fps)
    assert len(list(data.generate_stream(cfg))) == cfg.num_frames == 16


@pytest.mark.parametrize(("width", "height"), [(160, 120), (641, 479), (40, 32), (300, 90)])
def test_any_size_gives_valid_image_and_labels(width, height):
    cfg = BenchmarkConfig(seed=2, frames_per_task=10, width=width, height=height)
    frame = generate_frame(cfg, 13)
    assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
    assert frame.labels.shape == (height, width) and frame.labels.dtype == np.uint8
    assert frame.image.flags.c_contiguous
    assert int(frame.labels.max()) < NUM_CLASSES
    present = set(np.unique(frame.labels).tolist())
    assert {CLASSES.index("floor"), CLASSES.index("conveyor_belt")} <= present
    assert frame.image.std() > 10  # a textured scene, not a flat fill


def test_labels_are_drawn_with_the_image_polygons():
    cfg = BenchmarkConfig(seed=0, frames_per_task=50, width=320, height=240)
    for index in (3, 24, 47):  # task 0: no motion blur
        frame = generate_frame(cfg, index)
        aligned = _edge_alignment(frame.image, frame.labels)
        shifted = _edge_alignment(frame.image, np.roll(frame.labels, 3, axis=1))
        assert aligned > 3.0, f"frame {index}: label boundaries do not sit on image edges ({aligned:.2f})"
        assert shifted < aligned / 2
        explained = _explained_variance(frame.image, frame.labels)
        assert 0.2 < explained < 0.95  # classes differ in colour but are not a colour lookup
        assert _explained_variance(frame.image, np.roll(frame.labels, (9, 9), axis=(0, 1))) < explained - 0.05


def test_class_mean_colours_differ():
    frame = generate_frame(BenchmarkConfig(seed=0, frames_per_task=50, width=320, height=240), 3)
    lab = frame.labels.ravel()
    big = [c for c in range(NUM_CLASSES) if (lab == c).sum() >= 300]
    assert len(big) >= 3
    means = np.array([frame.image.reshape(-1, 3)[lab == c].mean(axis=0) for c in big])
    dist = np.linalg.norm(means[:, None] - means[None], axis=2)
    assert dist[np.triu_indices(len(big), 1)].min() > 5.0


def test_every_class_appears_in_task_1():
    seen = _presence(_task_frames(SMALL, 0))
    missing = [CLASSES[c] for c in range(NUM_CLASSES) if seen[c] == 0]
    assert not missing, f"classes never drawn in task 1: {missing}"
    rare = [CLASSES.index("defect"), CLASSES.index("spill")]
    assert (seen[rare] < 0.5).all()  # rare classes stay rare


def test_tasks_drift_in_classes_and_appearance():
    freq = np.stack([data.class_frequencies(SMALL, t) for t in range(SMALL.num_tasks)])
    assert freq.shape == (5, NUM_CLASSES) and freq.dtype == np.float64
    assert freq[:, CLASSES.index("floor")].tolist() == [1.0] * 5
    person, agv, plastic = CLASSES.index("person"), CLASSES.index("agv"), CLASSES.index("plastic_part")
    assert (
        freq[1, person] > freq[0, person]
        and freq[3, agv] > freq[0, agv]
        and freq[2, plastic] > freq[0, plastic]
    )
    frames = {t: _task_frames(SMALL, t, stride=20) for t in range(5)}
    seen = {t: _presence(f) for t, f in frames.items()}
    assert seen[1][person] > seen[0][person] + 0.3
    assert seen[3][agv] > seen[0][agv] + 0.3
    assert seen[2][plastic] > seen[0][plastic] + 0.3
    # the sampled presence follows the declared probabilities
    for t in range(5):
        assert abs(seen[t][person] - freq[t, person]) < 0.3
    mean = {t: np.mean([f.image.reshape(-1, 3).mean(axis=0) for f in fr], axis=0) for t, fr in frames.items()}
    assert mean[4].mean() < 0.8 * mean[0].mean()  # night shift is darker
    assert mean[2][2] / mean[2][0] > 1.15 * mean[0][2] / mean[0][0]  # colder light in task 3
    assert mean[1][0] / mean[1][2] > 1.15 * mean[0][0] / mean[0][2]  # warmer light in task 2


def test_objects_drift_coherently_inside_a_scene():
    cfg = BenchmarkConfig(seed=4, frames_per_task=40, width=160, height=120)
    a, b = generate_frame(cfg, 21), generate_frame(cfg, 22)  # same 1 s scene
    assert not np.array_equal(a.image, b.image)
    assert (a.labels == b.labels).mean() > 0.9
    cut = generate_frame(cfg, 20)  # first frame of the scene after 10..19
    assert (generate_frame(cfg, 19).labels == cut.labels).mean() < (a.labels == b.labels).mean()


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


def test_indices_and_tasks_are_validated():
    cfg = BenchmarkConfig(frames_per_task=4, num_tasks=2, width=32, height=32)
    assert [data.task_of(cfg, i) for i in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ConfigError, match="outside the stream"):
        generate_frame(cfg, 8)
    with pytest.raises(ConfigError, match="outside the stream"):
        data.task_of(cfg, -1)
    with pytest.raises(ConfigError, match="task_id"):
        data.class_frequencies(cfg, 2)
    with pytest.raises(ConfigError, match="range"):
        list(data.generate_stream(cfg, 3, 9))


def test_fill_polygon_matches_even_odd_rule():
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:40, 0:50].astype(np.float64)
    for _ in range(30):
        n = int(rng.integers(3, 12))
        xs, ys = rng.uniform(-10, 60, n), rng.uniform(-10, 50, n)
        inside = np.zeros((40, 50), bool)
        for xa, ya, xb, yb in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1), strict=True):
            crosses = (ya > rows) != (yb > rows)
            with np.errstate(divide="ignore", invalid="ignore"):
                inside ^= crosses & (cols < xa + (xb - xa) / (yb - ya) * (rows - ya))
        got = np.zeros((40, 50), bool)
        rr, cc = data.fill_polygon(xs, ys, (40, 50))
        got[rr, cc] = True
        assert np.array_equal(got, inside)
