"""Drifting shop-floor benchmark: a robot camera on a production line, exact labels, five drifting tasks.

The stream API: ``generate_frame`` / ``generate_stream`` give ``Frame``s of a ``BenchmarkConfig``. The
parts live in this subpackage: ``tasks`` (the task table, the config, index -> task), ``scene`` and
``layout`` (one scene and its painting, with ``props``, ``conveyor`` and ``actors``), ``raster`` (the
material map) and ``shading`` (textures and camera); the package (``laecips_core.benchmark``) exports
the public names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from laecips_core.benchmark.layout import paint_scene
from laecips_core.benchmark.scene import SALT_FRAME, Scene
from laecips_core.benchmark.shading import render
from laecips_core.benchmark.tasks import (
    TASK_STYLES,
    BenchmarkConfig,
    task_of,
)
from laecips_core.errors import ConfigError

__all__ = ["GENERATOR_VERSION", "SEGMENT_SECONDS", "Frame", "generate_frame", "generate_stream"]

GENERATOR_VERSION = 1
"""Version of the frames' content: bump it, and the pinned hashes in test/core/benchmark/test_generator.py,
on any deliberate change of what a (config, index) renders; it is the ``data_version`` in the pre-trained
weights' cache key."""

SEGMENT_SECONDS = 1.0
"""A scene (camera station and layout) lasts this long; objects drift coherently inside it."""


class Frame(NamedTuple):
    """One benchmark frame with its exact ground truth.

    Attributes:
        index: Position in the stream (0-based).
        task_id: Task of the frame (0-based; the paper's task t is task_id t - 1).
        timestamp: index / fps in seconds.
        image: (H, W, 3) uint8 RGB camera image.
        labels: (H, W) uint8 class ids in [0, NUM_CLASSES), drawn with the image's own polygons.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the contract's field name
    task_id: int
    timestamp: float
    image: np.ndarray
    labels: np.ndarray


def generate_frame(cfg: BenchmarkConfig, index: int) -> Frame:
    """Render frame index of the stream alone, deterministically from (cfg.seed, index).

    Args:
        cfg: Benchmark configuration.
        index: Frame index in [0, cfg.num_frames).

    Returns:
        The Frame; its image and labels depend only on cfg and index.

    Raises:
        ConfigError: When index is outside the stream.
    """
    task = task_of(cfg, index)
    style = TASK_STYLES[task]
    seg_len = max(1, round(cfg.fps * SEGMENT_SECONDS))
    local = int(index) - task * cfg.frames_per_task
    segment = local // seg_len
    t_rel = (local - segment * seg_len) / cfg.fps
    scene = Scene(cfg, style, task, segment, t_rel)
    paint_scene(scene)
    frame_rng = np.random.default_rng([cfg.seed, SALT_FRAME, int(index)])
    image, labels = render(scene.canvas, style, frame_rng, scene.unit)
    return Frame(int(index), task, int(index) / cfg.fps, image, labels)


def generate_stream(cfg: BenchmarkConfig, start: int = 0, stop: int | None = None) -> Iterator[Frame]:
    """Yield frames start..stop-1 in order (stop defaults to cfg.num_frames).

    Raises:
        ConfigError: When the range is outside the stream.
    """
    stop = cfg.num_frames if stop is None else stop
    if not 0 <= start <= stop <= cfg.num_frames:
        raise ConfigError(f"stream range [{start}, {stop}) must lie within [0, {cfg.num_frames}]")
    for index in range(start, stop):
        yield generate_frame(cfg, index)
