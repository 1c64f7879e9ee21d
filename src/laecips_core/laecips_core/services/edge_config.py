"""The edge node's parameters (f, h and delta of the paper's edge step) and what derives from them.

``EdgeConfig`` / ``EDGE_PARAMS``: one field and one descriptor per ROS parameter of
laecips_edge.edge_node and their checks; ``resolve_defaults``: robot_id from the namespace and M from
the bundle; ``class_names_for`` and ``parse_palette``: the class names and overlay colours published
with the results.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import zenoh

from laecips_core import imaging, transport
from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR
from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
from laecips_core.classes import NUM_CLASSES
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.services.offload import DEFAULT_CUR_BUDGET
from laecips_core.services.params import (
    ParamSpec,
    check_choice,
    check_trusted_key,
    check_zenoh_fields,
    zenoh_from_fields,
)
from laecips_core.storage import bundle_loading

IMAGE_TRANSPORTS = ("raw", "compressed")
IMAGE_QOS = ("sensor_data", "reliable")
BACKENDS = ("torch", "onnxruntime")
MINERS = ("neural", "mess", "sm", "spp")
ZENOH_MODES = ("", "peer", "client")
DEFAULT_ROBOT_ID = "robot1"
"""robot_id of an edge node at the root namespace with ``robot_id: ""``."""


# ----------------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class EdgeConfig:
    """Frozen parameters of the edge node (one field per ROS parameter; dots become underscores).

    Attributes:
        image_topic: camera topic (sensor_msgs/Image, or CompressedImage with image_transport=compressed);
            relative by default, so it follows the node's namespace and can be remapped.
        image_transport: "raw" (Image) or "compressed" (CompressedImage, jpeg).
        image_qos: "sensor_data" (best effort, default) or "reliable".
        queue_size: camera frames waiting for f; the oldest is dropped when full (newest wins).
        robot_id: this robot's id, one chunk of the Zenoh keys ``laecips/<robot_id>/...``; "" = the last
            part of the node's namespace (``/robot2`` -> robot2), or ``DEFAULT_ROBOT_ID`` at the root.
        backend: inference backend of f, "torch" or "onnxruntime".
        edge_model_name: registry name of f (laecips_core.algo.models.edge_model_registry).
        edge_model_path: safetensors bundle of f and h loaded at start ("" = untrained f, version 0).
        edge_model_version: version of the running weights (set by the node only).
        num_classes: M; 0 = the bundle's (``edge_model_path``), or the length of ``class_names``.
        class_names: the M class names published on ``~/classes``; empty = the bundle's
            (``bundle_loading.bundle_class_names``), else ``class_<i>``.
        input_height: height f runs at (pixels; 0 = the camera's).
        input_width: width f runs at (pixels; 0 = the camera's).
        stream_norm_prior: N of ``streamnorm``: f normalises each frame with (N * stored + the frame's
            own BatchNorm statistics) / (N + 1), so f follows light and scene changes with no lag;
            0 = stored statistics only (the paper's f). The cloud runs f the same way.
        miner: hard-input miner h: "neural" (the bundle's MinerNet), "mess", "sm" or "spp" (Eq. 22-24).
        threshold: fixed delta, used only when ``target_upload_rate`` is 0: a frame is hard when
            h(f(x)) <= delta. A fixed delta works only for the h and the stream it was calibrated on.
        target_upload_rate: wanted cloud upload rate (CUR, the evaluation's budget 0.35 by default):
            delta follows the ``rate_window`` latest confidences (``thresholds.TrackingDelta``, ties shared
            out by ``offload.tracked_upload_decision``) and restarts after every model update, so any
            stream and any h get uploads at this rate; 0 = fixed delta. The rate kept is lowered while
            the cloud or the link cannot finish that many uploads (``offload.UploadBudget``).
        latency_budget_s: delay_max of Eq. 10 in seconds: the upload rate is also kept at most
            (delay_max - d1) / (d0 - d1) with the measured delays; 0 = no latency budget.
        rate_window: frames the tracking delta looks back on.
        exploration_rate: probability that an easy frame is uploaded anyway (keeps h calibrated).
        max_in_flight: most hard frames waiting on the cloud at once.
        deadline_s: seconds from a frame's arrival until its cloud result is given up (fallback).
        jpeg_quality: JPEG quality of uploaded frames (1-100).
        zenoh_config: json5 Zenoh config file ("" = Zenoh defaults, peer mode).
        zenoh_mode: "peer", "client" or "" (the file's).
        zenoh_connect: endpoints to connect to, replacing the file's (empty = the file's).
        trusted_public_key: Ed25519 public key (PEM); when set every bundle must carry a valid signature.
            Required unless ``allow_unsigned_weights`` (the node refuses to start without either).
        allow_unsigned_weights: INSECURE, demos on a closed network only: run without
            ``trusted_public_key``, accepting any bundle whose sha256 matches its announcement.
        weights_dir: where received bundles are kept (one file per version, for rollback).
        update_timeout_s: deadline of fetching a bundle over Zenoh (seconds).
        palette: "" (default palette) or comma-separated "#rrggbb" colours, one per class.
        overlay_alpha: weight of the colour mask in ~/overlay (0 = image only, 1 = mask only).
        diagnostics_period_s: period of /diagnostics (seconds).
    """

    image_topic: str = "camera/image_raw"
    image_transport: str = "raw"
    image_qos: str = "sensor_data"
    queue_size: int = 2
    robot_id: str = ""
    backend: str = "torch"
    edge_model_name: str = DEFAULT_EDGE_MODEL
    edge_model_path: str = ""
    edge_model_version: int = 0
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    input_height: int = 0
    input_width: int = 0
    stream_norm_prior: float = DEFAULT_STREAM_NORM_PRIOR
    miner: str = "neural"
    threshold: float = 0.5
    target_upload_rate: float = DEFAULT_CUR_BUDGET
    latency_budget_s: float = 0.0
    rate_window: int = 50
    exploration_rate: float = 0.02
    max_in_flight: int = 2
    deadline_s: float = 2.0
    jpeg_quality: int = 75
    zenoh_config: str = ""
    zenoh_mode: str = ""
    zenoh_connect: tuple[str, ...] = ()
    trusted_public_key: str = ""
    allow_unsigned_weights: bool = False
    weights_dir: str = ""
    update_timeout_s: float = 30.0
    palette: str = ""
    overlay_alpha: float = 0.5
    diagnostics_period_s: float = 1.0

    def validate(self) -> EdgeConfig:
        """Check choices and cross-field rules the descriptors cannot express.

        Returns:
            self, for chaining.

        Raises:
            ConfigError: naming the parameter and what is allowed.
        """
        choices = {
            "image_transport": (self.image_transport, IMAGE_TRANSPORTS),
            "image_qos": (self.image_qos, IMAGE_QOS),
            "backend": (self.backend, BACKENDS),
            "miner": (self.miner, MINERS),
        }
        try:
            from laecips_core.algo.models import edge_model_registry
        except ImportError:  # a lean edge without torch: the bundle's graphs are checked when loaded
            pass
        else:
            choices["edge_model.name"] = (self.edge_model_name, tuple(edge_model_registry))
        for name, (value, allowed) in choices.items():
            check_choice(name, value, allowed)
        check_zenoh_fields(self.zenoh_config, self.zenoh_mode, connect=self.zenoh_connect, modes=ZENOH_MODES)
        transport.validate_robot_id(self.robot_id)
        if self.num_classes < 2:
            raise ConfigError(
                f"num_classes is {self.num_classes}: give M >= 2, or 0 with edge_model.path (the bundle's M)"
            )
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(
                f"class_names has {len(self.class_names)} names but num_classes is {self.num_classes}: "
                "give one name per class, or leave class_names empty"
            )
        if not self.image_topic:
            raise ConfigError("parameter image_topic is empty: give the camera topic, e.g. camera/image_raw")
        if (self.input_height == 0) != (self.input_width == 0):
            raise ConfigError("set both input_height and input_width (pixels), or both to 0 for camera size")
        if self.trusted_public_key and not Path(self.trusted_public_key).expanduser().is_file():
            raise ConfigError(
                f"trusted_public_key {self.trusted_public_key!r} does not exist: give the trainer's .pub file"
            )
        check_trusted_key("edge", self.trusted_public_key, self.allow_unsigned_weights)
        parse_palette(self.palette, self.num_classes)
        return self

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) f runs at, or None for the camera's size."""
        return (self.input_height, self.input_width) if self.input_height else None

    @property
    def weights_path(self) -> Path:
        """Folder of received bundles: weights_dir, or ~/.ros/laecips/<robot_id>/weights."""
        if self.weights_dir:
            return Path(self.weights_dir).expanduser()
        return Path.home() / ".ros" / "laecips" / self.robot_id / "weights"

    def zenoh(self) -> zenoh.Config:
        """The zenoh.Config from zenoh_config + zenoh_mode/zenoh_connect (multicast scouting forced off)."""
        return zenoh_from_fields(self.zenoh_config, self.zenoh_mode, connect=self.zenoh_connect)


def robot_id_from_namespace(namespace: str) -> str:
    """The robot id of a namespace: its last part (``/fleet/robot2`` -> robot2), else DEFAULT_ROBOT_ID."""
    parts = [part for part in namespace.split("/") if part]
    return parts[-1] if parts else DEFAULT_ROBOT_ID


def resolve_defaults(cfg: EdgeConfig, namespace: str = "/") -> EdgeConfig:
    """Fill what defaults from the surroundings: robot_id from the namespace, M from the bundle.

    Args:
        cfg: Parameters as declared (``robot_id: ""`` and ``num_classes: 0`` mean "derive").
        namespace: The node's namespace.

    Returns:
        cfg with robot_id and num_classes set (not yet validated).

    Raises:
        ConfigError: num_classes is 0 and the bundle's header cannot be read.
    """
    changes: dict[str, Any] = {}
    if not cfg.robot_id:
        changes["robot_id"] = robot_id_from_namespace(namespace)
    if cfg.num_classes == 0:
        if cfg.edge_model_path:
            try:
                meta = bundle_loading.read_bundle_metadata(Path(cfg.edge_model_path).expanduser())
            except WeightsError as err:
                raise ConfigError(f"num_classes 0 takes M from edge_model.path, but {err}") from err
            changes["num_classes"] = int(meta["num_classes"])
        else:
            changes["num_classes"] = len(cfg.class_names) or NUM_CLASSES
    return replace(cfg, **changes) if changes else cfg


def class_names_for(cfg: EdgeConfig, bundle_path: str | Path | None) -> list[str]:
    """The M class names published with the results: ``class_names``, the bundle's, or ``class_<i>``."""
    if cfg.class_names:
        return list(cfg.class_names)
    names = None
    if bundle_path:
        try:
            meta = bundle_loading.read_bundle_metadata(bundle_path)
            names = bundle_loading.bundle_class_names(bundle_path, meta)
        except WeightsError:
            names = None
    if names is not None and len(names) == cfg.num_classes:
        return names
    return [f"class_{i}" for i in range(cfg.num_classes)]


def parse_palette(text: str, num_classes: int) -> np.ndarray:
    """Colours of the overlay.

    Args:
        text: "" for imaging.palette(M), else comma-separated "#rrggbb" (or "rrggbb"), at least M.
        num_classes: M.

    Returns:
        (M, 3) uint8 RGB palette.

    Raises:
        ConfigError: a colour is malformed or fewer than M are given.
    """
    if not text.strip():
        return np.asarray(imaging.palette(num_classes), dtype=np.uint8)[:num_classes]
    colours = []
    for item in text.split(","):
        hexa = item.strip().lstrip("#")
        if len(hexa) != 6:
            raise ConfigError(f"palette colour {item!r} is not '#rrggbb'")
        try:
            colours.append([int(hexa[i : i + 2], 16) for i in (0, 2, 4)])
        except ValueError as err:
            raise ConfigError(f"palette colour {item!r} is not hexadecimal '#rrggbb'") from err
    if len(colours) < num_classes:
        raise ConfigError(
            f"palette has {len(colours)} colours but num_classes={num_classes}; give one per class"
        )
    return np.asarray(colours[:num_classes], dtype=np.uint8)


EDGE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("image_topic", "image_topic", "camera topic (sensor_msgs/Image or CompressedImage)"),
    ParamSpec(
        "image_transport", "image_transport", "raw (sensor_msgs/Image) or compressed (CompressedImage jpeg)"
    ),
    ParamSpec("image_qos", "image_qos", "camera QoS: sensor_data (best effort) or reliable"),
    ParamSpec("queue_size", "queue_size", "camera frames waiting for f; oldest dropped when full", 1, 64),
    ParamSpec(
        "robot_id", "robot_id", "robot id, a chunk of the Zenoh keys laecips/<robot_id>/... ('' = namespace)"
    ),
    ParamSpec("backend", "backend", "inference backend of f: torch or onnxruntime"),
    ParamSpec("edge_model.name", "edge_model_name", "edge model f (registry name)"),
    ParamSpec(
        "edge_model.path",
        "edge_model_path",
        "safetensors bundle of f and h; set at run time to load a file (rollback), verified first",
        mutable=True,
    ),
    ParamSpec(
        "edge_model.version",
        "edge_model_version",
        "version of the running weights; set by the node only (read-only for operators)",
        0,
        2**31 - 1,
        mutable=True,
    ),
    ParamSpec("num_classes", "num_classes", "M, number of classes of f (0 = the bundle's)", 0, 65535),
    ParamSpec("class_names", "class_names", "M class names for ~/classes (empty = the bundle's)"),
    ParamSpec("input_height", "input_height", "height f runs at in pixels (0 = camera's)", 0, 8192),
    ParamSpec("input_width", "input_width", "width f runs at in pixels (0 = camera's)", 0, 8192),
    ParamSpec(
        "stream_norm_prior",
        "stream_norm_prior",
        "BatchNorm prior N: each frame normalised with (N*stored + own)/(N+1); 0 = stored only",
        0.0,
        1e6,
    ),
    ParamSpec("miner", "miner", "hard-input miner h: neural, mess, sm or spp"),
    ParamSpec(
        "threshold",
        "threshold",
        "fixed delta (target_upload_rate 0): hard when h(f(x)) <= delta",
        0.0,
        1.0,
        True,
    ),
    ParamSpec(
        "target_upload_rate",
        "target_upload_rate",
        "CUR the tracking delta keeps (0 = fixed threshold)",
        0.0,
        1.0,
        True,
    ),
    ParamSpec(
        "latency_budget_s",
        "latency_budget_s",
        "Eq. 10 delay_max in seconds: caps the upload rate with the measured delays (0 = off)",
        0.0,
        3600.0,
        True,
    ),
    ParamSpec("rate_window", "rate_window", "frames the tracking delta looks back on", 1, 100000, True),
    ParamSpec(
        "exploration_rate", "exploration_rate", "probability of uploading an easy frame", 0.0, 1.0, True
    ),
    ParamSpec("max_in_flight", "max_in_flight", "most hard frames waiting on the cloud at once", 1, 64),
    ParamSpec(
        "deadline_s", "deadline_s", "seconds from frame arrival to give up on the cloud", 0.01, 600.0, True
    ),
    ParamSpec("jpeg_quality", "jpeg_quality", "JPEG quality of uploaded frames", 1, 100, True),
    ParamSpec("zenoh_config", "zenoh_config", "Zenoh json5 config file ('' = defaults)"),
    ParamSpec("zenoh_mode", "zenoh_mode", "Zenoh mode: peer, client or '' (the file's)"),
    ParamSpec("zenoh_connect", "zenoh_connect", "Zenoh endpoints to connect to (empty = the file's)"),
    ParamSpec(
        "trusted_public_key",
        "trusted_public_key",
        "Ed25519 public key (PEM); when set, bundles must be signed",
    ),
    ParamSpec(
        "allow_unsigned_weights",
        "allow_unsigned_weights",
        "INSECURE (demos only): start without trusted_public_key and accept unsigned bundles",
    ),
    ParamSpec(
        "weights_dir", "weights_dir", "folder keeping received bundles ('' = ~/.ros/laecips/<robot_id>)"
    ),
    ParamSpec("update_timeout_s", "update_timeout_s", "deadline of a bundle fetch (seconds)", 0.1, 3600.0),
    ParamSpec(
        "palette", "palette", "overlay colours: '' or comma-separated #rrggbb, one per class", mutable=True
    ),
    ParamSpec("overlay_alpha", "overlay_alpha", "weight of the colour mask in ~/overlay", 0.0, 1.0, True),
    ParamSpec("diagnostics_period_s", "diagnostics_period_s", "period of /diagnostics (s)", 0.05, 3600.0),
)
