"""The built-in drifting benchmark: tasks of an industrial scene rendered with exact ground-truth labels.

This package's public face is the stream API below; the parts live in its modules: ``tasks`` (the task
table, the config, index -> task), ``scene`` and ``layout`` (one scene and its painting, with ``props``,
``conveyor`` and ``actors``), ``raster`` (the material map), ``shading`` (textures and camera) and
``generator`` (frames and the stream).
"""

from laecips_core.benchmark.generator import (
    GENERATOR_VERSION,
    SEGMENT_SECONDS,
    Frame,
    generate_frame,
    generate_stream,
)
from laecips_core.benchmark.tasks import (
    TASK_STYLES,
    BenchmarkConfig,
    TaskStyle,
    class_frequencies,
    task_label,
    task_of,
)
from laecips_core.classes import CLASSES, NUM_CLASSES

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "NUM_CLASSES",
    "SEGMENT_SECONDS",
    "TASK_STYLES",
    "BenchmarkConfig",
    "Frame",
    "TaskStyle",
    "class_frequencies",
    "generate_frame",
    "generate_stream",
    "task_label",
    "task_of",
]
