"""The drifting benchmark's five tasks: their class mix and appearance (the data drift of the paper's Fig. 5),
the stream configuration and frame index -> task mapping.

The class set (M = NUM_CLASSES) is the shipped one of ``laecips_core.classes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from laecips_core.classes import CLASSES, NUM_CLASSES
from laecips_core.errors import ConfigError

CLASS_ID: Mapping[str, int] = {name: i for i, name in enumerate(CLASSES)}
"""Class name -> class id (its index in CLASSES)."""

_MAX_SIDE = 8192
_MAX_PIXELS = 4096 * 4096


def _presence(**probs: float) -> tuple[float, ...]:
    """Per-class scene presence probabilities (M,), floor, wall and conveyor_belt always 1."""
    out = [0.0] * NUM_CLASSES
    for name in ("floor", "wall", "conveyor_belt"):
        out[CLASS_ID[name]] = 1.0
    for name, p in probs.items():
        out[CLASS_ID[name]] = p
    return tuple(out)


@dataclass(frozen=True)
class TaskStyle:
    """How one task (a stretch of the stream) looks: its class mix and its appearance shift.

    Attributes:
        name: Short name of the task.
        description: What changes compared with task 1.
        presence: (M,) probability that a scene contains class c (the class sampling probabilities).
        part_mix: Relative weights of metal_part, plastic_part and crate among parts on the belt.
        belt_load: Probability that a belt slot carries a part.
        defect_rate: Fraction of parts that carry a defect in a scene that has defects.
        crowd: Largest number of people in one scene.
        fleet: Largest number of AGVs / forklifts in one scene.
        clutter: Multiplier of the number of floor objects (pallets, crate stacks, tools, cables).
        gain: Global lighting gain (1 = task 1).
        colour_temperature: Per-channel (R, G, B) gains of the illuminant.
        texture_scale: Frequency multiplier of surface textures (stripes, slats, noise).
        object_scale: Size multiplier of objects.
        motion_blur_px: Horizontal motion blur length in pixels at 640x480 (0 = none).
        noise_std: Standard deviation of sensor noise in 8-bit intensity units.
    """

    name: str
    description: str
    presence: tuple[float, ...]
    part_mix: tuple[float, float, float]
    belt_load: float
    defect_rate: float
    crowd: int
    fleet: int
    clutter: float
    gain: float
    colour_temperature: tuple[float, float, float]
    texture_scale: float
    object_scale: float
    motion_blur_px: float
    noise_std: float


TASK_STYLES: tuple[TaskStyle, ...] = (
    TaskStyle(
        name="baseline",
        description="day shift, neutral light, metal parts, every class present (defects, spills rare)",
        presence=_presence(
            machine=0.7,
            rack=0.6,
            pallet=0.5,
            crate=0.6,
            metal_part=0.9,
            plastic_part=0.45,
            tool=0.35,
            person=0.3,
            agv=0.2,
            cable=0.5,
            floor_marking=0.7,
            defect=0.2,
            spill=0.12,
        ),
        part_mix=(0.6, 0.3, 0.1),
        belt_load=0.75,
        defect_rate=0.5,
        crowd=2,
        fleet=1,
        clutter=1.0,
        gain=1.0,
        colour_temperature=(1.0, 1.0, 1.0),
        texture_scale=1.0,
        object_scale=1.0,
        motion_blur_px=0.0,
        noise_std=3.0,
    ),
    TaskStyle(
        name="shift_change",
        description="crowded aisle (more people, more tools), dim warm light, larger objects",
        presence=_presence(
            machine=0.6,
            rack=0.5,
            pallet=0.4,
            crate=0.5,
            metal_part=0.85,
            plastic_part=0.4,
            tool=0.6,
            person=0.95,
            agv=0.15,
            cable=0.5,
            floor_marking=0.6,
            defect=0.2,
            spill=0.1,
        ),
        part_mix=(0.6, 0.3, 0.1),
        belt_load=0.6,
        defect_rate=0.5,
        crowd=4,
        fleet=1,
        clutter=1.0,
        gain=0.72,
        colour_temperature=(1.15, 0.98, 0.78),
        texture_scale=1.0,
        object_scale=1.15,
        motion_blur_px=0.0,
        noise_std=5.0,
    ),
    TaskStyle(
        name="product_change",
        description="new product: mostly plastic parts, many defects; cold bright light, fine textures, "
        "smaller objects",
        presence=_presence(
            machine=0.7,
            rack=0.6,
            pallet=0.4,
            crate=0.75,
            metal_part=0.3,
            plastic_part=0.95,
            tool=0.3,
            person=0.25,
            agv=0.15,
            cable=0.6,
            floor_marking=0.7,
            defect=0.7,
            spill=0.1,
        ),
        part_mix=(0.15, 0.7, 0.15),
        belt_load=0.85,
        defect_rate=0.6,
        crowd=2,
        fleet=1,
        clutter=1.0,
        gain=1.18,
        colour_temperature=(0.86, 0.98, 1.18),
        texture_scale=1.8,
        object_scale=0.8,
        motion_blur_px=0.0,
        noise_std=3.0,
    ),
    TaskStyle(
        name="logistics",
        description="AGVs and forklifts, pallets, frequent spills; green fluorescent light, coarse textures, "
        "motion blur",
        presence=_presence(
            machine=0.5,
            rack=0.7,
            pallet=0.9,
            crate=0.8,
            metal_part=0.7,
            plastic_part=0.4,
            tool=0.3,
            person=0.35,
            agv=0.9,
            cable=0.4,
            floor_marking=0.9,
            defect=0.15,
            spill=0.6,
        ),
        part_mix=(0.4, 0.2, 0.4),
        belt_load=0.6,
        defect_rate=0.5,
        crowd=2,
        fleet=2,
        clutter=1.2,
        gain=0.92,
        colour_temperature=(0.94, 1.1, 0.92),
        texture_scale=0.65,
        object_scale=1.1,
        motion_blur_px=7.0,
        noise_std=6.0,
    ),
    TaskStyle(
        name="night_clutter",
        description="night shift: cluttered floor (pallets, crates, tools, cables), dark bluish light, "
        "strong sensor noise",
        presence=_presence(
            machine=0.9,
            rack=0.9,
            pallet=0.9,
            crate=0.9,
            metal_part=0.8,
            plastic_part=0.6,
            tool=0.85,
            person=0.5,
            agv=0.45,
            cable=0.9,
            floor_marking=0.9,
            defect=0.3,
            spill=0.3,
        ),
        part_mix=(0.45, 0.35, 0.2),
        belt_load=0.9,
        defect_rate=0.5,
        crowd=2,
        fleet=1,
        clutter=2.2,
        gain=0.58,
        colour_temperature=(0.9, 0.97, 1.15),
        texture_scale=1.35,
        object_scale=0.9,
        motion_blur_px=2.0,
        noise_std=11.0,
    ),
)
"""One style per task (task ids 0..4 = the paper's tasks 1..5), applied in chronological order."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """The drifting benchmark stream: num_tasks tasks of frames_per_task frames each.

    Attributes:
        seed: Scene seed (int >= 0); frames with equal (seed, index) are byte-identical.
        frames_per_task: Frames per task (>= 1).
        width: Frame width in pixels (16..8192).
        height: Frame height in pixels (16..8192).
        num_tasks: Number of tasks (1..len(TASK_STYLES)); task t uses TASK_STYLES[t].
        fps: Frame rate in frames per second; frame i is stamped i / fps seconds.
    """

    seed: int = 0
    frames_per_task: int = 200
    width: int = 640
    height: int = 480
    num_tasks: int = 5
    fps: float = 10.0

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            ConfigError: When a field has the wrong type or is out of range.
        """
        for name in ("seed", "frames_per_task", "width", "height", "num_tasks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"BenchmarkConfig.{name} must be an int, got {value!r}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"BenchmarkConfig.seed must be in [0, 2**63), got {self.seed}")
        if self.frames_per_task < 1:
            raise ConfigError(f"BenchmarkConfig.frames_per_task must be >= 1, got {self.frames_per_task}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if not 16 <= value <= _MAX_SIDE:
                raise ConfigError(f"BenchmarkConfig.{name} must be in [16, {_MAX_SIDE}] pixels, got {value}")
        if self.width * self.height > _MAX_PIXELS:
            raise ConfigError(
                f"BenchmarkConfig width*height = {self.width * self.height} exceeds {_MAX_PIXELS} pixels; "
                "use a smaller frame size"
            )
        if not 1 <= self.num_tasks <= len(TASK_STYLES):
            raise ConfigError(
                f"BenchmarkConfig.num_tasks must be in [1, {len(TASK_STYLES)}], got {self.num_tasks}"
            )
        if isinstance(self.fps, bool) or not isinstance(self.fps, int | float) or not 0 < self.fps <= 1000:
            raise ConfigError(f"BenchmarkConfig.fps must be a number in (0, 1000], got {self.fps!r}")

    @property
    def num_frames(self) -> int:
        """Total number of frames in the stream (num_tasks * frames_per_task)."""
        return self.num_tasks * self.frames_per_task


def task_label(task_id: int) -> str:
    """The paper's name of a 0-based task id: task id 0 is "task 1" (figures and tables number from 1)."""
    return f"task {int(task_id) + 1}"


def task_of(cfg: BenchmarkConfig, index: int) -> int:
    """Task id (0-based) of frame index; tasks follow each other in chronological order.

    Raises:
        ConfigError: When index is outside [0, cfg.num_frames).
    """
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise ConfigError(f"frame index must be an int, got {index!r}")
    if not 0 <= index < cfg.num_frames:
        raise ConfigError(
            f"frame index {index} is outside the stream [0, {cfg.num_frames}); raise num_tasks or "
            "frames_per_task to make the stream longer"
        )
    return int(index) // cfg.frames_per_task


def class_frequencies(cfg: BenchmarkConfig, task_id: int) -> np.ndarray:
    """Class sampling probabilities of a task (the data drift of the paper's Fig. 5).

    Entry c is the probability that a scene of the task contains class c (before occlusion and
    objects leaving the view); over the task the share of scenes with c converges to it quickly
    because presence follows a low-discrepancy sequence.

    Returns:
        (M,) float64 probabilities in [0, 1].

    Raises:
        ConfigError: When task_id is outside [0, cfg.num_tasks).
    """
    if (
        isinstance(task_id, bool)
        or not isinstance(task_id, int | np.integer)
        or not (0 <= task_id < cfg.num_tasks)
    ):
        raise ConfigError(f"task_id must be an int in [0, {cfg.num_tasks}), got {task_id!r}")
    return np.array(TASK_STYLES[task_id].presence, dtype=np.float64)
