"""Tests of the benchmark's stream API: determinism (pinned frame hashes), exact labels, drift between
tasks, any frame size, and the names the rest of laecips_core imports from ``benchmark.generator``."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from laecips_core.benchmark import CLASSES, NUM_CLASSES, BenchmarkConfig, generate_frame, tasks
from laecips_core.errors import ConfigError

from laecips_core import benchmark as data
from laecips_core import classes

SMALL = BenchmarkConfig(seed=0, frames_per_task=400, width=160, height=120)

PINNED_CFG = BenchmarkConfig(seed=0, frames_per_task=20, width=96, height=72)
PINNED: dict[int, tuple[int, str, str]] = {
    3: (
        0,
        "7ba92e663f84e763d0be21c28b8aeb02a32b8abe4ae498bdc5cea862746b1e1e",
        "a55408158e2cecc5d14db1e4464eb6c852f1399bc809f0d1cf56e960bc0f4884",
    ),
    27: (
        1,
        "ee8344ed71e1c74811b1199e38b36d6aeb183a37083b4661a5bfa1b68be2e9f1",
        "38237bc527ede5fe6fac049f24b1b10e6a432dcd766dcd0e978686f893ea0623",
    ),
    58: (
        2,
        "b08dc6c6f5a70af5053f17dbe4d65fbb0998bf36dfac46e8d433fa298e450300",
        "7d97e56914aa9ee05c16f16a8e81c4fb611a7fa2be200976030c9c215da2dafc",
    ),
    70: (
        3,
        "54a15f86cf37306358bf2ce57cd435d9baf70b493872d57de182b2f6bf29a97a",
        "e96ddcef8db3a0463448b002843823fd3496f1db10aaed5bfa3b18cc368079c8",
    ),
    99: (
        4,
        "7eb73cf91161957dc82ed190302e9b6a6301d8876ebbee62b56180dbe925f7b0",
        "56cfa9c9a8a0e6d490ac4eb99ac11b5adcdc893225894dc77d8580466a6aca84",
    ),
}
"""Frame index of PINNED_CFG -> (task id, sha256 of image bytes, sha256 of label bytes)."""


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


def test_frames_match_their_pinned_hashes():
    """Regression test of the generator's determinism: these frames are byte-identical to the ones the
    generator made before it was split into modules (issue 12), measured with the pinned numpy/scipy on
    x86-64 (AVX2, no AVX-512).

    A deliberate change of what the generator renders must bump ``generator.GENERATOR_VERSION`` (part of
    the pre-trained weights' cache key) and these values together. A mismatch without such a change is a
    bug: the frames, and every weight trained on them, silently differ from before.
    """
    assert data.GENERATOR_VERSION == 1
    for index, (task, image_sha, labels_sha) in PINNED.items():
        frame = generate_frame(PINNED_CFG, index)
        assert frame.task_id == task
        assert hashlib.sha256(frame.image.tobytes()).hexdigest() == image_sha, f"image of frame {index}"
        assert hashlib.sha256(frame.labels.tobytes()).hexdigest() == labels_sha, f"labels of frame {index}"


def test_generator_re_exports_what_the_rest_of_laecips_core_imports():
    assert CLASSES is classes.CLASSES and NUM_CLASSES == classes.NUM_CLASSES == len(CLASSES)
    assert data.BenchmarkConfig is tasks.BenchmarkConfig and data.task_of is tasks.task_of
    assert data.task_label is tasks.task_label and data.class_frequencies is tasks.class_frequencies
    assert data.TASK_STYLES is tasks.TASK_STYLES
    for name in data.__all__:
        assert hasattr(data, name), name


def test_frame_indices_and_stream_ranges_are_validated():
    cfg = BenchmarkConfig(frames_per_task=4, num_tasks=2, width=32, height=32)
    with pytest.raises(ConfigError, match="outside the stream"):
        generate_frame(cfg, 8)
    with pytest.raises(ConfigError, match="range"):
        list(data.generate_stream(cfg, 3, 9))
    with pytest.raises(ConfigError, match="range"):
        list(data.generate_stream(cfg, 5, 4))
