"""The edge side of LAECIPS without ROS: parameters, loading f and h, the cloud round trip of a hard frame.

The rclpy node laecips_edge.edge_node adapts these pieces (camera topic, publishers, parameter
callback, threads); everything here is plain Python so it is tested and reused without a ROS runtime:

- ``EdgeConfig`` / ``EDGE_PARAMS``: the node's parameters and their checks;
- ``load_candidate``: verify a safetensors bundle (sha256, Ed25519 signature, architecture) and build
  new instances of f and h from it; ``ModelSlot`` swaps it in between frames (Algorithm 2's update);
- ``check_update`` / ``prepare_update``: which announced versions to take (versions only go up) and
  fetching + verifying one into the weight store and a ready-to-swap candidate;
- ``check_operator_path`` / ``OperatorLoad`` / ``prepare_request``: an operator's runtime edge_model.path
  is only checked on the parameter callback, then verified and loaded by the same update worker (and
  swapped the same way) as an announced update;
- ``ask_cloud``: one hard frame to the cloud (JPEG, through the session's one CloudClient, within its
  deadline) and what came back;
- ``EdgeUploads``: the upload workers, sharing one CloudClient per Zenoh session (transport.CloudLink);
  every hard frame ends in a cloud result or a fallback, whatever the cloud sends, and a worker that
  dies is restarted and reported;
- ``EdgeCounters`` and ``diagnostic_values``: what /diagnostics shows (frame rate, CUR, cloud state,
  worker restarts).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import zenoh

from laecips_core import imaging, transport, weights
from laecips_core.classes import NUM_CLASSES
from laecips_core.errors import ConfigError, LaecipsError, WeightsError
from laecips_core.models import DEFAULT_EDGE_MODEL
from laecips_core.offload import (
    DEFAULT_CUR_BUDGET,
    UploadBudget,
    UploadScheduler,
    classify_fallback,
    remaining_s,
    split_network,
)
from laecips_core.params import (
    ParamSpec,
    check_choice,
    check_trusted_key,
    check_zenoh_fields,
    zenoh_from_fields,
)
from laecips_core.predictor import EdgePredictor
from laecips_core.streamnorm import DEFAULT_STREAM_NORM_PRIOR

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
        edge_model_name: registry name of f (laecips_core.models.edge_model_registry).
        edge_model_path: safetensors bundle of f and h loaded at start ("" = untrained f, version 0).
        edge_model_version: version of the running weights (set by the node only).
        num_classes: M; 0 = the bundle's (``edge_model_path``), or the length of ``class_names``.
        class_names: the M class names published on ``~/classes``; empty = the bundle's
            (``weights.bundle_class_names``), else ``class_<i>``.
        input_height: height f runs at (pixels; 0 = the camera's).
        input_width: width f runs at (pixels; 0 = the camera's).
        stream_norm_prior: N of ``streamnorm``: f normalises each frame with (N * stored + the frame's
            own BatchNorm statistics) / (N + 1), so f follows light and scene changes with no lag;
            0 = stored statistics only (the paper's f). The cloud runs f the same way.
        miner: hard-input miner h: "neural" (the bundle's MinerNet), "mess", "sm" or "spp" (Eq. 22-24).
        threshold: fixed delta, used only when ``target_upload_rate`` is 0: a frame is hard when
            h(f(x)) <= delta. A fixed delta works only for the h and the stream it was calibrated on.
        target_upload_rate: wanted cloud upload rate (CUR, the evaluation's budget 0.35 by default):
            delta follows the ``rate_window`` latest confidences (``mining.TrackingDelta``, ties shared
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
        from laecips_core.models import edge_model_registry

        choices = {
            "image_transport": (self.image_transport, IMAGE_TRANSPORTS),
            "image_qos": (self.image_qos, IMAGE_QOS),
            "backend": (self.backend, BACKENDS),
            "miner": (self.miner, MINERS),
            "edge_model.name": (self.edge_model_name, tuple(edge_model_registry)),
        }
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
                meta = weights.read_bundle_metadata(Path(cfg.edge_model_path).expanduser())
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
            names = weights.bundle_class_names(bundle_path, weights.read_bundle_metadata(bundle_path))
        except WeightsError:
            names = None
    if names is not None and len(names) == cfg.num_classes:
        return names
    return [f"class_{i}" for i in range(cfg.num_classes)]


def classes_json(names: list[str], *, robot_id: str, model_version: int) -> str:
    """The ``~/classes`` message body: the JSON of a bag's classes topic (``bags.BagTopics.classes``)."""
    return json.dumps(
        {
            "classes": names,
            "num_classes": len(names),
            "robot_id": robot_id,
            "model_version": model_version,
            "producer": "laecips edge_node",
        },
        sort_keys=True,
    )


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


# ---------------------------------------------------------------------------------------- outputs


def class_summary(
    labels: np.ndarray, probs: np.ndarray | None, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class fractions of `labels` and mean softmax score of f over each class's pixels.

    Args:
        labels: (H, W) integer class ids < M.
        probs: (M, H, W) float32 softmax of f at the same size, or None.
        num_classes: M.

    Returns:
        (fractions, scores): two (M,) float32 arrays; fractions sum to 1, scores are 0 where a class
        is absent (or when probs do not match labels).
    """
    flat = labels.reshape(-1).astype(np.int64)
    counts = np.bincount(flat, minlength=num_classes)[:num_classes].astype(np.float64)
    fractions = (counts / max(1, flat.size)).astype(np.float32)
    scores = np.zeros(num_classes, dtype=np.float32)
    if (
        probs is not None
        and probs.ndim == 3
        and probs.shape[1:] == labels.shape
        and probs.shape[0] == num_classes
    ):
        picked = np.take_along_axis(probs, labels[None].astype(np.int64), axis=0)[0]
        sums = np.bincount(flat, weights=picked.reshape(-1), minlength=num_classes)[:num_classes]
        scores = (sums / np.maximum(counts, 1.0)).astype(np.float32)
    return fractions, scores


# ---------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelCandidate:
    """A verified f + h, ready to be swapped in between frames.

    Attributes:
        predictor: EdgePredictor over new instances of f and h.
        version: Bundle version (0 = untrained f).
        sha256: Hex digest of the bundle file ("" for the untrained f).
        path: Bundle file ("" for the untrained f).
        origin: "start", "operator", "update" or "untrained" (for logs).
    """

    predictor: EdgePredictor
    version: int
    sha256: str
    path: str
    origin: str


def build_predictor(cfg: EdgeConfig, bundle: weights.Bundle | None) -> EdgePredictor:
    """New instances of f and h, with the bundle's weights (strictly), wrapped in an EdgePredictor.

    Args:
        cfg: Edge parameters (model name, M, miner, backend, input size).
        bundle: Verified bundle, or None for an untrained f (ImageNet backbone) and h.

    Raises:
        WeightsError: The bundle does not fit f/h, or carries no h while miner=neural.
    """
    from laecips_core.bundles import build_models
    from laecips_core.mining import MinerNet, NeuralMiner, build_miner
    from laecips_core.models import build_edge_model, has_pretrained_backbone

    if bundle is None:
        f = build_edge_model(
            cfg.edge_model_name,
            cfg.num_classes,
            pretrained_backbone=has_pretrained_backbone(cfg.edge_model_name),
        ).eval()
        h = MinerNet(cfg.num_classes).eval()
        version = 0
    else:
        if cfg.miner == "neural" and not bundle.h_state:
            raise WeightsError(
                "bundle carries no miner weights h but miner=neural: load a bundle from `laecips pretrain` "
                "or the trainer, or set miner to mess, sm or spp"
            )
        f, h = build_models(bundle)
        version = bundle.version
    miner = NeuralMiner(h) if cfg.miner == "neural" else build_miner(cfg.miner, cfg.num_classes)
    return EdgePredictor(
        f,
        miner,
        backend=cfg.backend,
        input_size=cfg.input_size,
        version=version,
        stream_norm_prior=cfg.stream_norm_prior,
    )


def untrained_candidate(cfg: EdgeConfig) -> ModelCandidate:
    """Version 0: f with its ImageNet backbone and an untrained h, until the trainer publishes weights."""
    return ModelCandidate(build_predictor(cfg, None), 0, "", "", "untrained")


def load_candidate(
    cfg: EdgeConfig,
    path: str | Path,
    *,
    origin: str,
    expected_sha256: str | None = None,
    signature: str | None = None,
    expected_version: int | None = None,
) -> ModelCandidate:
    """Verify a bundle file and build a ready-to-swap f + h from it.

    Args:
        cfg: Edge parameters (the trusted key, the model name and M the bundle must match).
        path: Safetensors bundle.
        origin: "start", "operator" or "update" (for logs).
        expected_sha256: Hex digest it must have (from the announcement).
        signature: ``.sig`` text (a digest signature or a signed announcement record); read from
            ``<path>.sig`` when None.
        expected_version: Version the metadata must state (from the announcement).

    Raises:
        WeightsError: Missing file, hash or signature mismatch, a signed announcement for another robot,
            wrong architecture or class count.
    """
    key = cfg.trusted_public_key or None
    if key is not None and signature is None:
        signature = weights.read_signature(path)
        if signature is None:
            raise WeightsError(
                f"{path} has no signature file {path}{weights.SIGNATURE_SUFFIX} and trusted_public_key "
                "is set: load a signed bundle (the node keeps one .sig per received version)"
            )
    if key is not None and signature is not None:
        record = weights.parse_signature_record(signature)
        if record is not None and record[0]["robot_id"] != cfg.robot_id:
            raise WeightsError(
                f"{path} was announced for robot {record[0]['robot_id']!r}, not {cfg.robot_id!r}; "
                "do not load another robot's weights"
            )
    bundle = weights.load_bundle(
        path,
        expected_sha256=expected_sha256,
        public_key=key,
        signature=signature if key is not None else None,
    )
    if bundle.model_name != cfg.edge_model_name or bundle.num_classes != cfg.num_classes:
        raise WeightsError(
            f"bundle is {bundle.model_name} with M={bundle.num_classes} but this node runs "
            f"{cfg.edge_model_name} with M={cfg.num_classes}: pick a matching bundle"
        )
    if expected_version is not None and bundle.version != expected_version:
        raise WeightsError(
            f"bundle metadata says version {bundle.version} but it was announced as {expected_version}"
        )
    digest = expected_sha256 or weights.sha256_file(path)
    return ModelCandidate(build_predictor(cfg, bundle), bundle.version, digest, str(path), origin)


class ModelSlot:
    """The running f + h and at most one verified successor, swapped in between two frames.

    Any thread may ``offer`` a candidate; the inference thread calls ``swap`` before each frame, so
    a frame is always served by one consistent model (the paper's parameter update without stopping).
    """

    def __init__(self, first: ModelCandidate) -> None:
        self._lock = threading.Lock()
        self._current = first
        self._pending: ModelCandidate | None = None

    @property
    def current(self) -> ModelCandidate:
        """The model serving frames now."""
        return self._current

    def newest_version(self) -> int:
        """The highest version running or waiting to be swapped in."""
        return self.newest().version

    def newest(self) -> ModelCandidate:
        """The model of the highest version running or waiting to be swapped in (the running one on ties)."""
        with self._lock:
            pending = self._pending
            if pending is not None and pending.version > self._current.version:
                return pending
            return self._current

    def offer(self, candidate: ModelCandidate) -> None:
        """Queue a verified model (replacing one not yet swapped in)."""
        with self._lock:
            self._pending = candidate

    def swap(self) -> ModelCandidate | None:
        """Install the pending model, if any; returns it (None when nothing changed)."""
        with self._lock:
            candidate, self._pending = self._pending, None
            if candidate is not None:
                self._current = candidate
        return candidate


# ---------------------------------------------------------------------------------------- updates


def check_update(
    announcement: transport.ModelAnnouncement, slot: ModelSlot, *, allow_rollback: bool = False
) -> bool:
    """Whether an announced version is to be fetched: versions only go up.

    Args:
        announcement: Parsed announcement (its signature is checked by prepare_update).
        slot: The running model and its pending successor.
        allow_rollback: Take a lower version too (an operator's explicit choice).

    Returns:
        True to fetch it; False when it is the version already running or waiting, with the same sha256
        (a repeated announcement: nothing to do).

    Raises:
        WeightsError: a lower version (unless allow_rollback), or the same version with another sha256.
    """
    newest = slot.newest()
    if announcement.version == newest.version:
        if announcement.sha256 == newest.sha256:
            return False
        raise WeightsError(
            f"announced v{announcement.version} has sha256 {announcement.sha256[:12]}... but "
            f"v{newest.version} here has {newest.sha256[:12] or 'none'}: a version number is never reused "
            "for other weights"
        )
    if announcement.version < newest.version and not allow_rollback:
        raise WeightsError(
            f"announced v{announcement.version} is older than v{newest.version} here: versions only go up "
            "(an operator rolls back by setting edge_model.path)"
        )
    return True


def prepare_update(
    session: zenoh.Session,
    cfg: EdgeConfig,
    announcement: transport.ModelAnnouncement,
    *,
    max_bytes: int = transport.DEFAULT_MAX_BUNDLE_BYTES,
    allow_rollback: bool = False,
) -> ModelCandidate:
    """Fetch an announced bundle into the weight store, verify it and build the candidate to swap in.

    With a trusted key, the whole announcement must be signed for this robot (transport.fetch_into_store);
    the stored ``.sig`` (the signed announcement) is verified again when the file is loaded.

    Raises:
        WeightsError: refused (signature, uri, size, version order, hash, metadata) or not served.
        ConfigError: the weight store folder cannot be created.
    """
    path, _ = transport.fetch_into_store(
        session,
        cfg.robot_id,
        announcement,
        weights.WeightStore(cfg.weights_path),
        model_name=cfg.edge_model_name,
        num_classes=cfg.num_classes,
        public_key=cfg.trusted_public_key or None,
        timeout_s=cfg.update_timeout_s,
        max_bytes=max_bytes,
        allow_rollback=allow_rollback,
    )
    return load_candidate(
        cfg,
        path,
        origin="update",
        expected_sha256=announcement.sha256,
        expected_version=announcement.version,
    )


@dataclass(frozen=True)
class OperatorLoad:
    """An operator set edge_model.path at run time: a local bundle for the update worker to load.

    Verified like any bundle (load_candidate: sha256, signature, architecture, M); its version may be
    lower than the running one (a rollback is the operator's explicit choice).

    Attributes:
        path: The bundle file (checked by check_operator_path).
    """

    path: str


UpdateRequest = transport.ModelAnnouncement | OperatorLoad
"""What the edge's update worker takes: an announced update or an operator's bundle file."""


def check_operator_path(cfg: EdgeConfig, value: object) -> str:
    """The cheap checks of an edge_model.path set at run time; nothing is read but file metadata.

    Run on the parameter callback (the executor thread): the bundle itself is verified and loaded by
    the update worker (prepare_request), so camera callbacks never wait on it.

    Args:
        cfg: The running edge parameters (a trusted key requires a ``.sig`` beside the file).
        value: The new parameter value.

    Returns:
        The path, ``~`` expanded.

    Raises:
        ConfigError: not a string, empty, not a ``.safetensors`` file, cannot read it, or no ``.sig``
            while trusted_public_key is set; the message says what to give instead.
    """
    if not isinstance(value, str):
        raise ConfigError(f"edge_model.path must be a string (a bundle file), got {type(value).__name__}")
    if not value:
        raise ConfigError("edge_model.path cannot be emptied: give a bundle file to load")
    path = Path(value).expanduser()
    if path.suffix != ".safetensors":
        raise ConfigError(f"edge_model.path {value!r} is not a .safetensors bundle: give one")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"edge_model.path {value!r}: cannot read it (no such readable file)")
    signature = Path(f"{path}{weights.SIGNATURE_SUFFIX}")
    if cfg.trusted_public_key and not signature.is_file():
        raise ConfigError(
            f"edge_model.path {value!r} has no signature file {signature} and trusted_public_key is set: "
            "load a signed bundle (the node keeps one .sig per received version)"
        )
    return str(path)


def prepare_request(
    session: zenoh.Session | None, cfg: EdgeConfig, slot: ModelSlot, request: UpdateRequest
) -> ModelCandidate | None:
    """The update worker's step for one request: a verified candidate to offer to the slot.

    Args:
        session: The Zenoh session announced bundles are fetched over (None: not open yet).
        cfg: Edge parameters.
        slot: The running model and its pending successor (versions of announcements only go up).
        request: An announcement (check_update, then prepare_update) or an OperatorLoad (load_candidate).

    Returns:
        The candidate, or None for an announcement of the version already running or waiting.

    Raises:
        WeightsError: refused (see check_update, prepare_update, load_candidate) or no session yet.
    """
    if isinstance(request, OperatorLoad):
        return load_candidate(cfg, request.path, origin="operator")
    if not check_update(request, slot):
        return None
    if session is None:
        raise WeightsError(
            f"no Zenoh session yet to fetch v{request.version}; the latest announcement is asked for "
            "once it opens"
        )
    return prepare_update(session, cfg, request)


# ----------------------------------------------------------------------------------------- cloud


@dataclass(frozen=True)
class CloudAnswer:
    """What the cloud did with one hard frame.

    Attributes:
        labels: F(x) (H, W) class ids, or None when the frame falls back to f's labels.
        status: "ok", or the fallback reason ("timeout", "unreachable", "error", a cloud status...).
        error: Why there are no labels ("" when ok).
        bytes_sent: JPEG bytes uploaded (0 when nothing was sent).
        bytes_received: Reply payload bytes as received (the encoded labels).
        upload_s: Upload share of the network time (Eq. 27), seconds.
        cloud_s: Cloud compute time reported by the cloud (LVM + fusion), seconds.
        download_s: Download share of the network time, seconds.
    """

    labels: np.ndarray | None
    status: str
    error: str = ""
    bytes_sent: int = 0
    bytes_received: int = 0
    upload_s: float = 0.0
    cloud_s: float = 0.0
    download_s: float = 0.0


def ask_cloud(
    client: transport.CloudClient | None,
    cfg: EdgeConfig,
    *,
    frame_id: int,
    stamp: float,
    version: int,
    rgb: np.ndarray,
    remaining_s: float,
) -> CloudAnswer:
    """Send one hard frame (JPEG) to ``laecips/<robot_id>/infer`` and wait at most ``remaining_s``.

    Never raises for the link or the cloud: every failure is a CloudAnswer without labels whose
    status says what happened, so the caller publishes f's labels as the fallback.

    Args:
        client: The session's CloudClient (its querier is reused), or None while no session is open
            (then the answer is "unreachable").
        cfg: Edge parameters (robot id, M, JPEG quality).
        frame_id: The edge's frame number.
        stamp: Camera stamp (seconds).
        version: Version of f that produced the edge scores.
        rgb: (H, W, 3) uint8 frame.
        remaining_s: Time left of the frame's deadline (seconds, > 0).
    """
    if remaining_s <= 0.0:
        return CloudAnswer(None, "timeout", "deadline passed while waiting for a free upload slot")
    if client is None:
        return CloudAnswer(None, "unreachable", "no zenoh session")
    try:
        jpeg = imaging.encode_jpeg(rgb, quality=cfg.jpeg_quality)
        request = transport.InferRequest(
            robot_id=cfg.robot_id,
            frame_id=frame_id,
            stamp=stamp,
            model_version=version,
            num_classes=cfg.num_classes,
            width=int(rgb.shape[1]),
            height=int(rgb.shape[0]),
            jpeg=jpeg,
        )
        sent = time.monotonic()
        reply = client.infer(request, timeout_s=remaining_s)
        round_trip = time.monotonic() - sent
    except LaecipsError as err:
        return CloudAnswer(None, "error", f"cannot send frame: {err}")
    except Exception as err:  # never out of an upload worker: the frame falls back with the reason
        return CloudAnswer(None, "error", f"cloud round trip failed: {type(err).__name__}: {err}"[:2000])
    if not reply.ok or reply.labels is None:
        return CloudAnswer(None, reply.status, reply.error, bytes_sent=len(jpeg))
    upload_s, download_s = split_network(round_trip, float(reply.cloud_s), len(jpeg), reply.payload_bytes)
    return CloudAnswer(
        np.asarray(reply.labels),
        "ok",
        bytes_sent=len(jpeg),
        bytes_received=reply.payload_bytes,
        upload_s=upload_s,
        cloud_s=float(reply.cloud_s),
        download_s=download_s,
    )


class UploadJob(Protocol):
    """What the upload workers need of a hard frame (the node's job record has more)."""

    @property
    def frame_no(self) -> int:
        """The edge's frame number (frame_id on the wire)."""
        ...

    @property
    def stamp(self) -> float:
        """Camera stamp (seconds)."""
        ...

    @property
    def version(self) -> int:
        """Version of the f that scored the frame."""
        ...

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 frame."""
        ...

    @property
    def arrival(self) -> float:
        """Arrival time (time.monotonic(), seconds); the deadline counts from here."""
        ...


J = TypeVar("J", bound=UploadJob)


DEADLINE_GRACE_S = 0.05
"""Slack after a frame's deadline before its fallback is published without the cloud call."""


class _UploadCall:
    """One cloud round trip on its own thread, so its frame can fall back at the deadline while a
    stalled link still blocks the send. Exactly one of the waiter (in time) or the thread (after
    ``abandon``) finishes the bookkeeping."""

    def __init__(self, owner: EdgeUploads[Any], token: int) -> None:
        self._owner = owner
        self._token = token
        self._lock = threading.Lock()
        self._abandoned = False
        self.answer: CloudAnswer | None = None
        self.done = threading.Event()

    def run(self, session: zenoh.Session | None, cfg: EdgeConfig, job: Any, left: float) -> None:
        try:
            # the session's one client (declared on first use, then reused), got here: a stalled link
            # must not block the worker
            client = self._owner.link.client(session, cfg.robot_id, cfg.deadline_s)
            answer = ask_cloud(
                client,
                cfg,
                frame_id=job.frame_no,
                stamp=job.stamp,
                version=job.version,
                rgb=job.rgb,
                remaining_s=left,
            )
        except BaseException as err:  # ask_cloud never raises; a bad client or a bug must not leak the slot
            answer = CloudAnswer(None, "error", f"upload call failed: {type(err).__name__}: {err}"[:2000])
        with self._lock:
            self.answer = answer
            abandoned = self._abandoned
            self.done.set()
        self._owner._call_finished(self._token, answer, abandoned)

    def abandon(self) -> bool:
        """Give up on the call (its answer will be ignored); False when it finished meanwhile."""
        with self._lock:
            if self.done.is_set():
                return False
            self._abandoned = True
        self._owner._call_abandoned()
        return True


class EdgeUploads(Generic[J]):
    """The edge's upload workers without ROS: each hard frame ends in exactly one cloud result or fallback.

    At most ``max_in_flight`` frames are with the cloud at once (offload.UploadScheduler, newest wins),
    all through one CloudClient per Zenoh session (``link``, a transport.CloudLink: one querier declared
    on first use and reused; a reopened session or a new deadline_s gets a new one; close() undeclares it).
    A frame whose round trip fails in any way -- a timeout, an unreachable cloud, a reply that is
    invalid, not UTF-8 or nested too deep, even a bug -- is handed to ``on_fallback`` with the reason,
    and the worker takes the next frame. A worker thread that dies anyway (``on_fallback`` itself
    raised) is restarted and counted in the counters (``worker_restarts``, ``last_worker_death``), so
    /diagnostics turns WARN with the reason.

    Args:
        max_in_flight: Upload workers, i.e. concurrent cloud requests.
        config: Returns the current EdgeConfig (robot id, deadline, JPEG quality; may change at run time).
        session: Returns the Zenoh session, or None while it is not open yet (a new session object, e.g.
            after a reconnect, gets a new client).
        counters: Where uploads, fallbacks, bytes, errors and worker deaths are counted.
        on_cloud: Publishes a frame's cloud result (job, answer with labels).
        on_fallback: Publishes a frame's edge labels as the fallback (job, status, reason).
        on_death: Also told of each worker death (worker, reason), e.g. to log it.
        budget: Told when each upload starts and ends (``offload.UploadBudget.begin``/``end``), so the
            upload rate follows what the workers can finish.
        pending: Frames allowed to wait for a free worker.
        name: Thread name prefix.
    """

    def __init__(
        self,
        max_in_flight: int,
        *,
        config: Callable[[], EdgeConfig],
        session: Callable[[], zenoh.Session | None],
        counters: EdgeCounters,
        on_cloud: Callable[[J, CloudAnswer], None],
        on_fallback: Callable[[J, str, str], None],
        on_death: Callable[[str, str], None] | None = None,
        budget: UploadBudget | None = None,
        pending: int = 1,
        name: str = "laecips-upload",
    ) -> None:
        self._budget = budget
        self._config = config
        self._session = session
        self.link = transport.CloudLink()
        self._stall_lock = threading.Lock()
        self._stalled = 0  # calls still blocked in the link after their frame fell back
        self._max_stalled = max(1, int(max_in_flight))
        self._counters = counters
        self._on_cloud = on_cloud
        self._on_fallback = on_fallback
        self._on_death = on_death
        self._scheduler: UploadScheduler[J] = UploadScheduler(
            max_in_flight,
            self._upload,
            self._dropped,
            pending=pending,
            name=name,
            on_error=self._failed,
            on_death=self._died,
        )

    @property
    def in_flight(self) -> int:
        """Frames with the cloud now."""
        return self._scheduler.in_flight

    @property
    def max_seen_in_flight(self) -> int:
        """Most frames that were with the cloud at once."""
        return self._scheduler.max_seen_in_flight

    @property
    def stalled_calls(self) -> int:
        """Cloud calls still blocked in the link after their frame already fell back at its deadline."""
        with self._stall_lock:
            return self._stalled

    def submit(self, job: J) -> None:
        """Queue a hard frame (never blocks; a frame pushed out falls back at once as "dropped")."""
        self._scheduler.submit(job)

    def health(self) -> Any:
        """The workers' supervision.WorkerHealth (live threads, restarts, last death)."""
        return self._scheduler.health()

    def close(self, timeout_s: float) -> list[J]:
        """Stop the workers (bounded wait) and undeclare the cloud client; returns the frames never sent."""
        unsent = self._scheduler.close(timeout_s)
        self.link.close()
        return unsent

    def fallback(self, job: J, status: str, reason: str) -> None:
        """Count a fallback and hand the frame to on_fallback (also used for frames never sent)."""
        cloud_status, is_error = classify_fallback(status)
        self._counters.count(fallback=1, cloud_status=cloud_status)
        if is_error:
            self._counters.count(error=f"frame {job.frame_no}: cloud {status}: {reason}")
        self._on_fallback(job, status, reason)

    def _upload(self, job: J) -> None:
        cfg = self._config()
        left = remaining_s(cfg.deadline_s, job.arrival, time.monotonic())
        with self._stall_lock:
            stalled = self._stalled
        if stalled >= self._max_stalled:
            self.fallback(
                job, "timeout", f"the link is stalled: {stalled} earlier uploads are still blocked in send"
            )
            return
        token = self._budget.begin() if self._budget is not None else 0
        call = _UploadCall(self, token)
        threading.Thread(
            target=call.run,
            args=(self._session(), cfg, job, left),
            name=f"{threading.current_thread().name}-call",
            daemon=True,
        ).start()
        # ask_cloud bounds its own wait by the deadline, but a stalled link can block the send itself
        # (Zenoh's congestion control, seconds): the frame falls back at its deadline regardless.
        if not call.done.wait(max(left, 0.0) + DEADLINE_GRACE_S):
            if call.abandon():
                self.fallback(
                    job,
                    "timeout",
                    f"no cloud answer within the {cfg.deadline_s:g} s deadline (the upload is still "
                    "blocked in the link; its answer will be ignored)",
                )
                return
        answer = call.answer
        assert answer is not None
        self._counters.count(bytes_sent=answer.bytes_sent)
        if answer.labels is None:
            self.fallback(job, answer.status, answer.error)
            return
        self._counters.count(cloud_ok=1, bytes_received=answer.bytes_received, cloud_status="available")
        self._on_cloud(job, answer)

    def _call_finished(self, token: int, answer: CloudAnswer, abandoned: bool) -> None:
        """Bookkeeping when an upload call returns (in time, or after its frame already fell back)."""
        if self._budget is not None:
            self._budget.end(token, record=answer.status != "unreachable")
        if abandoned:
            with self._stall_lock:
                self._stalled -= 1

    def _call_abandoned(self) -> None:
        with self._stall_lock:
            self._stalled += 1

    def _failed(self, job: J, reason: str) -> None:
        self.fallback(job, "error", f"upload worker error: {reason}")

    def _dropped(self, job: J) -> None:
        self._counters.count(dropped_upload=1)
        self.fallback(job, "dropped", "a newer hard frame replaced it while the link was busy")

    def _died(self, worker: str, reason: str) -> None:
        self._counters.worker_died(f"upload worker {worker}: {reason}")
        if self._on_death is not None:
            self._on_death(worker, reason)


# ----------------------------------------------------------------------------------- diagnostics


@dataclass
class _Counts:
    frames: int = 0
    uploaded: int = 0
    hard: int = 0
    cloud_ok: int = 0
    fallback: int = 0
    dropped_input: int = 0
    dropped_upload: int = 0
    bad_input: int = 0
    errors: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    updates_applied: int = 0
    updates_refused: int = 0
    worker_restarts: int = 0
    cloud_status: str = "unknown"
    last_error: str = ""
    last_worker_death: str = ""


COUNTER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(_Counts))
"""Keys of ``EdgeCounters.snapshot()``."""


class EdgeCounters:
    """Thread-safe counts and last values of the edge (frames, uploads, fallbacks, errors, bytes...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = _Counts()

    def count(self, error: str | None = None, cloud_status: str | None = None, **increments: int) -> None:
        """Add ``increments`` (names from COUNTER_NAMES); an ``error`` also counts in ``errors``."""
        with self._lock:
            for key, value in increments.items():
                setattr(self._counts, key, getattr(self._counts, key) + value)
            if error:
                self._counts.errors += 1
                self._counts.last_error = error[:500]
            if cloud_status:
                self._counts.cloud_status = cloud_status

    def worker_died(self, reason: str) -> None:
        """Count a worker thread that died (and was restarted); the reason is shown in /diagnostics."""
        with self._lock:
            self._counts.worker_restarts += 1
            self._counts.errors += 1
            self._counts.last_worker_death = reason[:500]
            self._counts.last_error = reason[:500]

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every counter."""
        with self._lock:
            return {name: getattr(self._counts, name) for name in COUNTER_NAMES}


def diagnostic_values(
    snap: dict[str, Any],
    *,
    rate_hz: float,
    version: int,
    in_flight: int,
    threshold: float,
    extra: dict[str, str] | None = None,
) -> tuple[bool, str, dict[str, str]]:
    """What /diagnostics says about the edge: (warn, message, key -> value).

    Args:
        snap: ``EdgeCounters.snapshot()``.
        rate_hz: Frames per second since the last report.
        version: Version of the running model.
        in_flight: Hard frames waiting on the cloud.
        threshold: delta now.
        extra: More key -> value pairs (e.g. the upload rate kept now and the delays behind it).

    Returns:
        warn is True after a worker thread died (restarted; the message gives the reason), on bad input,
        refused updates or an unreachable/slow cloud; CUR (Eq. 26) is uploaded / frames.
    """
    cur = snap["uploaded"] / snap["frames"] if snap["frames"] else 0.0
    values = {
        "frame_rate_hz": f"{rate_hz:.2f}",
        "cur": f"{cur:.4f}",
        "cloud": snap["cloud_status"],
        "model_version": str(version),
        "in_flight": str(in_flight),
        "threshold": str(threshold),
        **(extra or {}),
        **{k: str(v) for k, v in snap.items() if k != "cloud_status"},
    }
    if snap["worker_restarts"]:
        return True, f"worker died and was restarted: {snap['last_worker_death']}", values
    if snap["bad_input"] or snap["updates_refused"]:
        return True, snap["last_error"] or "errors", values
    if snap["cloud_status"] in ("unreachable", "timeout"):
        return True, f"cloud {snap['cloud_status']}: hard frames fall back to f", values
    return False, "running", values
