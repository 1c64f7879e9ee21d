"""The spec of one training job: the trainer service writes it as JSON, the training process reads it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from laecips_core.errors import ConfigError
from laecips_core.training import TrainerConfig
from laecips_core.transport import validate_robot_id


@dataclass(frozen=True)
class JobSpec:
    """What one training process does (written as JSON by the trainer node, read by ``main``).

    Attributes:
        robot_id: Robot whose buffer and store are used.
        replay_path: Its replay buffer (stores.replay_path()).
        store_dir: Its WeightStore folder (stores.store_dir()); its newest version is the update's parent.
        reports_dir: Where the report JSON and loss PNG go.
        trainer: TrainerConfig fields (lr, epochs, batch_size, beta, maxsize, maxtime_s, input_size, ...).
        max_samples: At most this many (oldest) samples are read (memory bound).
        validation_bag: Labelled rosbag2 to gate on ("" = the label-free gate).
        progress_path: JSON file updated at each phase ("" for none).
    """

    robot_id: str
    replay_path: str
    store_dir: str
    reports_dir: str
    trainer: dict[str, Any] = field(default_factory=dict)
    max_samples: int = 1000
    validation_bag: str = ""
    progress_path: str = ""

    def to_json(self) -> str:
        """Serialise for the child process."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        """Parse a spec written by to_json.

        Raises:
            ConfigError: not a JSON object with the fields of JobSpec.
        """
        try:
            data = json.loads(text)
            spec = cls(**data)
        except (json.JSONDecodeError, TypeError) as err:
            raise ConfigError(f"training job spec is not valid: {err}") from err
        validate_robot_id(spec.robot_id)
        if not isinstance(spec.max_samples, int) or spec.max_samples < 2:
            raise ConfigError(f"max_samples must be an int >= 2, got {spec.max_samples!r}")
        return spec

    def trainer_config(self) -> TrainerConfig:
        """The TrainerConfig of this job (validated by TrainerConfig itself)."""
        fields = dict(self.trainer)
        if "input_size" in fields:
            try:
                fields["input_size"] = tuple(int(v) for v in fields["input_size"])
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"input_size in the job spec must be [height, width] integers, got "
                    f"{fields['input_size']!r}"
                ) from err
        try:
            return TrainerConfig(**fields)
        except TypeError as err:
            raise ConfigError(f"unknown TrainerConfig field in the job spec: {err}") from err
