"""ROS-free parameter plumbing shared by the LAECIPS nodes: parameter specs, checks and Zenoh fields."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zenoh

from laecips_core import transport
from laecips_core.errors import ConfigError

ZENOH_MODES: tuple[str, ...] = ("", "peer", "client", "router")
"""Values of a zenoh_mode parameter ("" = the config file's mode)."""


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter of a node: its name, config field, description, numeric range, mutability.

    Attributes:
        name: ROS parameter name (dots allowed, e.g. "edge_model.path").
        field: Field of the node's frozen config dataclass holding the value.
        description: One line shown by ``ros2 param describe``.
        lo: Smallest allowed value of a numeric parameter (None = no range).
        hi: Largest allowed value of a numeric parameter (None = no range).
        mutable: Whether it may change at run time (otherwise read-only).
    """

    name: str
    field: str
    description: str
    lo: float | None = None
    hi: float | None = None
    mutable: bool = False

    @property
    def ranged(self) -> bool:
        """Whether the parameter has a numeric range [lo, hi]."""
        return self.lo is not None and self.hi is not None


def check_range(name: str, value: Any, lo: float, hi: float) -> None:
    """Raise ConfigError unless value is a finite number with lo <= value <= hi.

    Args:
        name: Parameter name (for the message).
        value: The value (int or float; bool is refused).
        lo: Smallest allowed value.
        hi: Largest allowed value.

    Raises:
        ConfigError: naming the parameter and the allowed interval.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"parameter {name}={value!r} must be a finite number")
    if not lo <= value <= hi:
        raise ConfigError(f"parameter {name}={value} is outside [{lo}, {hi}]")


def check_ranges(config: Any, specs: Iterable[ParamSpec], fields: Collection[str] | None = None) -> None:
    """check_range for every ranged spec (or only those whose field is in `fields`) of a config.

    Args:
        config: Config dataclass instance holding one attribute per spec.field.
        specs: The node's parameter table.
        fields: Restrict the check to these fields (e.g. the ones changed at run time); None = all.

    Raises:
        ConfigError: the first value out of its range.
    """
    for spec in specs:
        if spec.ranged and (fields is None or spec.field in fields):
            assert spec.lo is not None and spec.hi is not None
            check_range(spec.name, getattr(config, spec.field), spec.lo, spec.hi)


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise ConfigError unless value is one of `allowed` (the message lists them)."""
    if value not in allowed:
        raise ConfigError(f"parameter {name}={value!r} is not one of {list(allowed)}")


def check_robot_ids(robot_ids: Sequence[str]) -> None:
    """Raise ConfigError unless robot_ids is a non-empty list of distinct, valid robot ids."""
    if not robot_ids or len(set(robot_ids)) != len(robot_ids):
        raise ConfigError(f"robot_ids {list(robot_ids)} must be a non-empty list of distinct ids")
    for robot_id in robot_ids:
        transport.validate_robot_id(robot_id)


def check_trusted_key(node: str, trusted_public_key: str, allow_unsigned_weights: bool) -> None:
    """Refuse to run a node that would accept unsigned model updates unless that was asked for explicitly.

    Args:
        node: "edge" or "cloud" (for the message).
        trusted_public_key: The trainer's Ed25519 public key file ("" = none).
        allow_unsigned_weights: The explicit insecure opt-in (demos on a closed network).

    Raises:
        ConfigError: no key and no opt-in, saying what to set.
    """
    if not trusted_public_key and not allow_unsigned_weights:
        raise ConfigError(
            f"the {node} node has no trusted_public_key: set it to the trainer's .pub file (the trainer "
            "writes <weights_dir>/keys/trainer.pub, or `laecips keygen`) so that only signed weights are "
            "accepted; for a demo on a closed network only, set allow_unsigned_weights: true instead "
            "(INSECURE: anyone who can publish on Zenoh can then change the model)"
        )


def zenoh_from_fields(
    config_path: str, mode: str, listen: Sequence[str] = (), connect: Sequence[str] = ()
) -> zenoh.Config:
    """The Zenoh config of a node from its zenoh_* parameters (multicast scouting forced off).

    Args:
        config_path: json5 file ("" = Zenoh defaults).
        mode: "peer", "client", "router" or "" (the file's).
        listen: Endpoints to listen on, replacing the file's (empty = the file's).
        connect: Endpoints to connect to, replacing the file's (empty = the file's).

    Raises:
        ConfigError: the file or an endpoint is malformed.
    """
    return transport.load_zenoh_config(
        config_path or None,
        mode=mode or None,
        listen=list(listen) if listen else None,
        connect=list(connect) if connect else None,
    )


def check_zenoh_fields(
    config_path: str,
    mode: str,
    listen: Sequence[str] = (),
    connect: Sequence[str] = (),
    modes: Sequence[str] = ZENOH_MODES,
) -> None:
    """Validate the zenoh_* parameters of a node: file present, mode allowed, config loadable.

    Raises:
        ConfigError: naming the parameter and what to give instead.
    """
    if config_path and not Path(config_path).expanduser().is_file():
        raise ConfigError(f"zenoh_config {config_path!r} does not exist: give a json5 file or ''")
    check_choice("zenoh_mode", mode, modes)
    zenoh_from_fields(config_path, mode, listen, connect)


def field_changes(items: Iterable[tuple[str, Any]], specs: Iterable[ParamSpec]) -> dict[str, Any]:
    """Config-field changes of a runtime parameter update (names not in `specs` are ignored).

    Args:
        items: (parameter name, new value) pairs.
        specs: The node's parameter table.

    Returns:
        field -> new value, for dataclasses.replace on the node's config.

    Raises:
        ConfigError: a parameter is read-only (the node must be restarted to change it).
    """
    by_name = {spec.name: spec for spec in specs}
    changes: dict[str, Any] = {}
    for name, value in items:
        spec = by_name.get(name)
        if spec is None:
            continue
        if not spec.mutable:
            raise ConfigError(f"{name} is read-only: restart the node")
        changes[spec.field] = value
    return changes


SERVER_EDGE_MODEL_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("edge_model.name", "edge_model_name", "edge model f (registry name); bundles must match"),
    ParamSpec("edge_model.path", "edge_model_path", "bundle the edges start from (seeds empty stores)"),
)
"""The edge model f as the cloud and the trainer know it: its registry name and the bundle every robot's
store is seeded with (both read-only)."""


ZENOH_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("zenoh_config", "zenoh_config", "Zenoh json5 config file ('' = Zenoh defaults, peer mode)"),
    ParamSpec("zenoh_mode", "zenoh_mode", "Zenoh mode: peer, client, router or '' (the file's)"),
    ParamSpec("zenoh_listen", "zenoh_listen", "Zenoh endpoints to listen on (empty = the file's)"),
    ParamSpec("zenoh_connect", "zenoh_connect", "Zenoh endpoints to connect to (empty = the file's)"),
    ParamSpec(
        "zenoh_open_timeout_s", "zenoh_open_timeout_s", "retry opening Zenoh this long (s)", 0.0, 3600.0
    ),
)
"""The zenoh_* parameters of the cloud-side nodes (fields of ZenohFields), spliced into their tables."""


@dataclass(frozen=True)
class ZenohFields:
    """The zenoh_* fields of a cloud-side node config (base of CloudConfig and TrainerNodeConfig).

    Attributes:
        zenoh_config: json5 Zenoh config file ("" = Zenoh defaults, peer mode).
        zenoh_mode: "peer", "client", "router" or "" (the file's).
        zenoh_listen: Endpoints to listen on, replacing the file's (empty = the file's).
        zenoh_connect: Endpoints to connect to, replacing the file's (empty = the file's).
        zenoh_open_timeout_s: How long to retry opening the session (seconds; a client needs its router).
    """

    zenoh_config: str = ""
    zenoh_mode: str = ""
    zenoh_listen: tuple[str, ...] = ()
    zenoh_connect: tuple[str, ...] = ()
    zenoh_open_timeout_s: float = 30.0

    def check_zenoh(self) -> None:
        """check_zenoh_fields on these fields (raises ConfigError)."""
        check_zenoh_fields(self.zenoh_config, self.zenoh_mode, self.zenoh_listen, self.zenoh_connect)

    def zenoh(self) -> zenoh.Config:
        """The Zenoh config of this node (multicast scouting forced off)."""
        return zenoh_from_fields(self.zenoh_config, self.zenoh_mode, self.zenoh_listen, self.zenoh_connect)
