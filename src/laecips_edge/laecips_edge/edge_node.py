"""ROS 2 edge node of LAECIPS: f and h on every camera frame, hard frames to the cloud, model updates."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from laecips_core.data import NUM_CLASSES
from laecips_core.errors import ConfigError, ImageError, LaecipsError, WeightsError
from laecips_core.offload import (
    LatestQueue,
    UploadScheduler,
    classify_fallback,
    remaining_s,
    split_network,
    upload_decision,
)
from laecips_core.params import ParamSpec, check_choice, check_zenoh_fields, field_changes, zenoh_from_fields
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from laecips_core import imaging, transport, weights
from laecips_edge.node_support import (
    close_session,
    declare_config,
    diagnostic_status,
    publish_diagnostics,
    run_node,
)
from laecips_msgs.msg import SegmentationResult

NODE_NAME = "edge_node"
IMAGE_TRANSPORTS = ("raw", "compressed")
IMAGE_QOS = ("sensor_data", "reliable")
BACKENDS = ("torch", "onnxruntime")
MINERS = ("neural", "mess", "sm", "spp")
ZENOH_MODES = ("", "peer", "client")


# ------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EdgeConfig:
    """Frozen parameters of the edge node (one field per ROS parameter; dots become underscores).

    Attributes:
        image_topic: camera topic (sensor_msgs/Image, or CompressedImage with image_transport=compressed).
        image_transport: "raw" (Image) or "compressed" (CompressedImage, jpeg).
        image_qos: "sensor_data" (best effort, default) or "reliable".
        queue_size: camera frames waiting for f; the oldest is dropped when full (newest wins).
        robot_id: this robot's id, one chunk of the Zenoh keys ``laecips/<robot_id>/...``.
        backend: inference backend of f, "torch" or "onnxruntime".
        edge_model_name: registry name of f (laecips_core.models.edge_model_registry).
        edge_model_path: safetensors bundle of f and h loaded at start ("" = untrained f, version 0).
        edge_model_version: version of the running weights (set by the node only).
        num_classes: M.
        input_height: height f runs at (pixels; 0 = the camera's).
        input_width: width f runs at (pixels; 0 = the camera's).
        miner: hard-input miner h: "neural" (the bundle's MinerNet), "mess", "sm" or "spp" (Eq. 22-24).
        threshold: delta; a frame is hard when h(f(x)) <= delta.
        exploration_rate: probability that an easy frame is uploaded anyway (keeps h calibrated).
        max_in_flight: most hard frames waiting on the cloud at once.
        deadline_s: seconds from a frame's arrival until its cloud result is given up (fallback).
        jpeg_quality: JPEG quality of uploaded frames (1-100).
        zenoh_config: json5 Zenoh config file ("" = Zenoh defaults, peer mode).
        zenoh_mode: "peer", "client" or "" (the file's).
        zenoh_connect: endpoints to connect to, replacing the file's (empty = the file's).
        trusted_public_key: Ed25519 public key (PEM); when set every bundle must carry a valid signature.
        weights_dir: where received bundles are kept (one file per version, for rollback).
        update_timeout_s: deadline of fetching a bundle over Zenoh (seconds).
        palette: "" (default palette) or comma-separated "#rrggbb" colours, one per class.
        overlay_alpha: weight of the colour mask in ~/overlay (0 = image only, 1 = mask only).
        diagnostics_period_s: period of /diagnostics (seconds).
    """

    image_topic: str = "/camera/image_raw"
    image_transport: str = "raw"
    image_qos: str = "sensor_data"
    queue_size: int = 2
    robot_id: str = "robot1"
    backend: str = "torch"
    edge_model_name: str = "lraspp_mobilenetv3"
    edge_model_path: str = ""
    edge_model_version: int = 0
    num_classes: int = NUM_CLASSES
    input_height: int = 0
    input_width: int = 0
    miner: str = "neural"
    threshold: float = 0.5
    exploration_rate: float = 0.02
    max_in_flight: int = 2
    deadline_s: float = 2.0
    jpeg_quality: int = 75
    zenoh_config: str = ""
    zenoh_mode: str = ""
    zenoh_connect: tuple[str, ...] = ()
    trusted_public_key: str = ""
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
        if not self.image_topic:
            raise ConfigError("parameter image_topic is empty: give the camera topic, e.g. /camera/image_raw")
        if (self.input_height == 0) != (self.input_width == 0):
            raise ConfigError("set both input_height and input_width (pixels), or both to 0 for camera size")
        if self.trusted_public_key and not Path(self.trusted_public_key).expanduser().is_file():
            raise ConfigError(
                f"trusted_public_key {self.trusted_public_key!r} does not exist: give the trainer's .pub file"
            )
        parse_palette(self.palette, self.num_classes)
        return self

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) f runs at, or None for the camera's size."""
        return (self.input_height, self.input_width) if self.input_height else None


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
    ParamSpec("robot_id", "robot_id", "robot id, one chunk of the Zenoh keys laecips/<robot_id>/..."),
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
    ParamSpec("num_classes", "num_classes", "M, number of classes of f", 2, 65535),
    ParamSpec("input_height", "input_height", "height f runs at in pixels (0 = camera's)", 0, 8192),
    ParamSpec("input_width", "input_width", "width f runs at in pixels (0 = camera's)", 0, 8192),
    ParamSpec("miner", "miner", "hard-input miner h: neural, mess, sm or spp"),
    ParamSpec("threshold", "threshold", "delta: a frame is hard when h(f(x)) <= delta", 0.0, 1.0, True),
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
        "weights_dir", "weights_dir", "folder keeping received bundles ('' = ~/.ros/laecips/<robot_id>)"
    ),
    ParamSpec("update_timeout_s", "update_timeout_s", "deadline of a bundle fetch (seconds)", 0.1, 3600.0),
    ParamSpec(
        "palette", "palette", "overlay colours: '' or comma-separated #rrggbb, one per class", mutable=True
    ),
    ParamSpec("overlay_alpha", "overlay_alpha", "weight of the colour mask in ~/overlay", 0.0, 1.0, True),
    ParamSpec("diagnostics_period_s", "diagnostics_period_s", "period of /diagnostics (s)", 0.05, 3600.0),
)
PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in EDGE_PARAMS)


@dataclass
class _Frame:
    """A camera message as received, with its arrival time (time.monotonic(), seconds)."""

    msg: Any
    arrival: float


@dataclass
class _Job:
    """One processed frame: what every later publication of it needs."""

    frame_no: int
    header: Header
    rgb: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    confidence: float
    threshold: float
    hard: bool
    uploaded: bool
    version: int
    edge_s: float
    arrival: float


@dataclass
class _Candidate:
    """A verified model ready to be swapped in between frames."""

    predictor: Any
    version: int
    sha256: str
    path: str
    origin: str


@dataclass
class _Counters:
    """Counts and last values shown in /diagnostics."""

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
    cloud_status: str = "unknown"
    last_error: str = ""


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


def _stamp_seconds(stamp: TimeMsg) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def _image_msg(header: Header, ros_fields: dict[str, Any]) -> Image:
    """sensor_msgs/Image from an imaging ``*_to_ros_fields`` dict (height, width, encoding, step, data)."""
    msg = Image()
    msg.header = header
    msg.height = int(ros_fields["height"])
    msg.width = int(ros_fields["width"])
    msg.encoding = str(ros_fields["encoding"])
    msg.is_bigendian = int(ros_fields.get("is_bigendian", 0))
    msg.step = int(ros_fields["step"])
    data = ros_fields["data"]
    msg.data = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return msg


# ---------------------------------------------------------------------------------------------- node


class EdgeNode(Node):
    """The robot side of LAECIPS (Algorithm 2): y = f(x) if h(f(x)) > delta else F(x) from the cloud.

    Every camera frame is answered at once with f's labels on ``~/labels`` (mono8/mono16),
    ``~/overlay`` (rgb8) and ``~/result`` (SegmentationResult, source=edge). Hard frames
    (h(f(x)) <= delta, plus a random exploration share of easy ones) are JPEG-encoded and sent to the
    cloud by a pool of at most ``max_in_flight`` workers; the fused labels F(x) are then published
    again with source=cloud, or the edge labels with source=fallback when the deadline passes, the
    cloud is down or its reply is invalid. Model updates announced over Zenoh are fetched, verified
    (sha256, Ed25519 signature when a trusted key is set), loaded into new instances of f and h and
    swapped in between frames.

    Args:
        node_name: ROS node name.
        kwargs: passed to rclpy.node.Node (parameter_overrides, namespace, context...).

    Raises:
        ConfigError: a parameter is invalid or the start-up bundle fails verification.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._internal = threading.local()
        self._counters = _Counters()
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._session: Any = None
        self._listener: Any = None
        self._uploader: UploadScheduler[_Job] | None = None
        self._threads: list[threading.Thread] = []
        self._rng = random.Random()
        self._frame_no = 0
        self._last_diag = (time.monotonic(), 0)

        self._cfg = self._declare_and_read().validate()
        cfg = self._cfg
        self._palette = parse_palette(cfg.palette, cfg.num_classes)
        self._weights_dir = (
            Path(cfg.weights_dir).expanduser()
            if cfg.weights_dir
            else (Path.home() / ".ros" / "laecips" / cfg.robot_id / "weights")
        )

        # The model running at start: a verified bundle, or an untrained f (version 0).
        self._swap_lock = threading.Lock()
        self._pending: _Candidate | None = None
        if cfg.edge_model_path:
            try:
                first = self._load_candidate(cfg.edge_model_path, origin="start")
            except LaecipsError as err:
                raise ConfigError(f"edge_model.path {cfg.edge_model_path!r} refused: {err}") from err
        else:
            self.get_logger().warning(
                f"edge_model.path is empty: running an untrained {cfg.edge_model_name} (version 0) until "
                "the trainer publishes weights; run `laecips pretrain` for usable defaults"
            )
            first = _Candidate(self._build_predictor(None), 0, "", "", "untrained")
        self._predictor = first.predictor
        self._version = first.version
        self._set_internal({"edge_model.version": first.version})

        # ROS interfaces: explicit QoS (sensor data in, reliable out).
        out_qos = QoSProfile(
            depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
        )
        self._pub_labels = self.create_publisher(Image, "~/labels", out_qos)
        self._pub_overlay = self.create_publisher(Image, "~/overlay", out_qos)
        self._pub_result = self.create_publisher(SegmentationResult, "~/result", out_qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", out_qos)
        in_qos = (
            qos_profile_sensor_data
            if cfg.image_qos == "sensor_data"
            else QoSProfile(
                depth=max(cfg.queue_size, 5),
                history=HistoryPolicy.KEEP_LAST,
                reliability=ReliabilityPolicy.RELIABLE,
            )
        )
        msg_type = Image if cfg.image_transport == "raw" else CompressedImage
        self._frames: LatestQueue[_Frame] = LatestQueue(cfg.queue_size)
        self._sub = self.create_subscription(msg_type, cfg.image_topic, self._on_image, in_qos)

        # Zenoh: one session for cloud requests and model updates, opened by a worker (retries).
        zconf = self._zenoh_config()
        self._updates: LatestQueue[transport.ModelAnnouncement] = LatestQueue(4)
        self._uploader = UploadScheduler(
            cfg.max_in_flight, self._upload, self._on_upload_dropped, pending=1, name="laecips-upload"
        )
        self._start_thread(lambda: self._zenoh_loop(zconf), "laecips-zenoh")
        self._start_thread(self._inference_loop, "laecips-infer")
        self._start_thread(self._update_loop, "laecips-update")
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if not cfg.trusted_public_key:
            self.get_logger().warning(
                "trusted_public_key is empty: model updates are checked by sha256 only; set it to the "
                "trainer's .pub file to require signed weights"
            )
        self.get_logger().info(
            f"edge node up: robot {cfg.robot_id}, {cfg.edge_model_name} v{self._version} ({cfg.backend}), "
            f"miner {cfg.miner}, delta={cfg.threshold}, camera {cfg.image_topic} ({cfg.image_transport}, "
            f"{cfg.image_qos}), deadline {cfg.deadline_s} s, {cfg.max_in_flight} in flight"
        )

    # -------------------------------------------------------------------------------- parameters

    def _declare_and_read(self) -> EdgeConfig:
        """Declare every parameter with its descriptor and freeze the values into an EdgeConfig."""
        return EdgeConfig(**declare_config(self, EDGE_PARAMS, EdgeConfig()))

    def _set_internal(self, values: dict[str, Any]) -> None:
        """Set parameters on behalf of the node itself (accepted even where operators are refused)."""
        self._internal.active = True
        try:
            self.set_parameters([Parameter(name, value=value) for name, value in values.items()])
        finally:
            self._internal.active = False

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """The one runtime-change hook: validates, loads edge_model.path, refuses edge_model.version."""
        if getattr(self._internal, "active", False):
            return SetParametersResult(successful=True)
        items = [(param.name, param.value) for param in params]
        if any(name == "edge_model.version" for name, _ in items):
            return SetParametersResult(
                successful=False,
                reason="edge_model.version is set by the node when it loads weights; "
                "set edge_model.path to load a bundle file instead",
            )
        new_path = next((str(value or "") for name, value in items if name == "edge_model.path"), None)
        try:
            changes = field_changes([item for item in items if item[0] != "edge_model.path"], EDGE_PARAMS)
            new_cfg = replace(self._cfg, **changes).validate()
        except (ConfigError, TypeError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        if new_path is not None:
            if not new_path:
                return SetParametersResult(
                    successful=False, reason="edge_model.path cannot be emptied: give a bundle file to load"
                )
            try:
                candidate = self._load_candidate(new_path, origin="operator")
            except LaecipsError as err:
                self._count(updates_refused=1, error=f"operator bundle {new_path} refused: {err}")
                self.get_logger().warning(f"edge_model.path {new_path} refused: {err}")
                return SetParametersResult(successful=False, reason=f"refused {new_path}: {err}")
            self._offer(candidate)
            new_cfg = replace(new_cfg, edge_model_path=new_path)
        if new_cfg.palette != self._cfg.palette:
            self._palette = parse_palette(new_cfg.palette, new_cfg.num_classes)
        self._cfg = new_cfg
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------------- models

    def _build_predictor(self, bundle: weights.Bundle | None) -> Any:
        """New instances of f and h (the bundle's weights, strictly) wrapped in an EdgePredictor."""
        from laecips_core.mining import MinerNet, NeuralMiner, build_miner
        from laecips_core.models import build_edge_model
        from laecips_core.predictor import EdgePredictor

        cfg = self._cfg
        f = build_edge_model(cfg.edge_model_name, cfg.num_classes, pretrained_backbone=bundle is None)
        h = MinerNet(cfg.num_classes) if cfg.miner == "neural" else None
        if bundle is not None:
            if h is None and bundle.h_state:
                h = MinerNet(cfg.num_classes)  # verified against h even when another miner runs
            weights.apply_bundle(bundle, f, h)
        f.eval()
        if cfg.miner == "neural":
            assert h is not None
            miner = NeuralMiner(h.eval())
        else:
            miner = build_miner(cfg.miner, cfg.num_classes)
        version = bundle.version if bundle is not None else 0
        return EdgePredictor(f, miner, backend=cfg.backend, input_size=cfg.input_size, version=version)

    def _load_candidate(
        self,
        path: str | Path,
        *,
        origin: str,
        expected_sha256: str | None = None,
        signature: str | None = None,
        expected_version: int | None = None,
    ) -> _Candidate:
        """Verify a bundle file and build a ready-to-swap model from it.

        Args:
            path: safetensors bundle.
            origin: "start", "operator" or "update" (for logs).
            expected_sha256: hex digest it must have (from the announcement).
            signature: base64 signature; read from ``<path>.sig`` when None.
            expected_version: version the metadata must state (from the announcement).

        Raises:
            WeightsError: missing file, hash or signature mismatch, wrong architecture/class count.
        """
        cfg = self._cfg
        key = cfg.trusted_public_key or None
        if key is not None and signature is None:
            signature = weights.read_signature(path)
            if signature is None:
                raise WeightsError(
                    f"{path} has no signature file {path}{weights.SIGNATURE_SUFFIX} and trusted_public_key "
                    "is set: load a signed bundle (the node keeps one .sig per received version)"
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
        predictor = self._build_predictor(bundle)
        digest = expected_sha256 or weights.sha256_file(path)
        return _Candidate(predictor, bundle.version, digest, str(path), origin)

    def _offer(self, candidate: _Candidate) -> None:
        """Hand a verified model to the inference thread, which swaps it in before the next frame."""
        with self._swap_lock:
            self._pending = candidate

    def _maybe_swap(self) -> None:
        """Install a pending model between two frames and publish its version as a parameter."""
        with self._swap_lock:
            candidate, self._pending = self._pending, None
        if candidate is None:
            return
        old = self._version
        self._predictor = candidate.predictor
        self._version = candidate.version
        values: dict[str, Any] = {"edge_model.version": candidate.version}
        if candidate.origin == "update":
            values["edge_model.path"] = candidate.path
            self._cfg = replace(
                self._cfg, edge_model_path=candidate.path, edge_model_version=candidate.version
            )
        else:
            self._cfg = replace(self._cfg, edge_model_version=candidate.version)
        self._set_internal(values)
        self._count(updates_applied=1)
        self.get_logger().info(
            f"model v{old} -> v{candidate.version} ({candidate.origin}, sha256 {candidate.sha256[:12]}, "
            f"{candidate.path})"
        )

    # ------------------------------------------------------------------------------------- camera

    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Camera callback: enqueue only (newest wins when f is slower than the camera)."""
        if self._frames.put(_Frame(msg, time.monotonic())) is not None:
            self._count(dropped_input=1)

    def _to_rgb(self, msg: Image | CompressedImage) -> np.ndarray:
        """(H, W, 3) uint8 RGB of a camera message; ImageError says what is wrong with it."""
        if isinstance(msg, CompressedImage):
            fmt = msg.format.lower()
            if "jpeg" not in fmt and "jpg" not in fmt:
                raise ImageError(f"CompressedImage format {msg.format!r} is not supported: publish jpeg")
            return imaging.decode_jpeg(bytes(msg.data))
        if msg.height == 0 or msg.width == 0:
            raise ImageError(f"image has zero size {msg.width}x{msg.height}")
        return imaging.ros_image_to_rgb(
            msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data), bool(msg.is_bigendian)
        )

    def _inference_loop(self) -> None:
        """Worker: swap models between frames, run f and h, publish, hand hard frames to the uploader."""
        while not self._stop.is_set():
            self._maybe_swap()
            frame = self._frames.get(0.1)
            if frame is None:
                continue
            try:
                self._process(frame)
            except Exception as err:  # the node keeps running whatever one frame does
                self._count(errors=1, error=f"frame failed: {type(err).__name__}: {err}")
                self.get_logger().error(f"frame processing failed: {type(err).__name__}: {err}")

    def _process(self, frame: _Frame) -> None:
        msg = frame.msg
        stamp = _stamp_seconds(msg.header.stamp)
        try:
            rgb = self._to_rgb(msg)
        except (ImageError, ValueError) as err:
            self._count(bad_input=1, error=f"bad camera frame at {stamp:.3f}: {err}")
            self.get_logger().error(f"dropping camera frame (stamp {stamp:.3f}): {err}")
            return
        cfg = self._cfg
        predictor, version = self._predictor, self._version
        try:
            result = predictor.predict(rgb)
        except ImageError as err:
            self._count(bad_input=1, error=f"bad camera frame at {stamp:.3f}: {err}")
            self.get_logger().error(f"dropping camera frame (stamp {stamp:.3f}): {err}")
            return
        confidence = float(result.confidence)
        hard, uploaded = upload_decision(confidence, cfg.threshold, cfg.exploration_rate, self._rng)
        self._frame_no += 1
        job = _Job(
            frame_no=self._frame_no,
            header=msg.header,
            rgb=rgb,
            labels=np.asarray(result.labels),
            probs=np.asarray(result.probs),
            confidence=confidence,
            threshold=float(cfg.threshold),
            hard=hard,
            uploaded=uploaded,
            version=version,
            edge_s=float(result.compute_s),
            arrival=frame.arrival,
        )
        self._count(frames=1, hard=int(hard), uploaded=int(uploaded))
        self._publish(job, job.labels, SegmentationResult.SOURCE_EDGE)
        if uploaded and self._uploader is not None:
            self._uploader.submit(job)

    # ------------------------------------------------------------------------------------- upload

    def _upload(self, job: _Job) -> None:
        """Worker: one hard frame to the cloud within its deadline, then publish cloud or fallback."""
        cfg = self._cfg
        remaining = remaining_s(cfg.deadline_s, job.arrival, time.monotonic())
        if remaining <= 0.0:
            self._fallback(job, "timeout", "deadline passed while waiting for a free upload slot")
            return
        if self._session is None:
            self._fallback(job, "unreachable", "no zenoh session")
            return
        try:
            jpeg = imaging.encode_jpeg(job.rgb, quality=cfg.jpeg_quality)
            request = transport.InferRequest(
                robot_id=cfg.robot_id,
                frame_id=job.frame_no,
                stamp=_stamp_seconds(job.header.stamp),
                model_version=job.version,
                num_classes=cfg.num_classes,
                width=int(job.rgb.shape[1]),
                height=int(job.rgb.shape[0]),
                jpeg=jpeg,
            )
            client = transport.CloudClient(self._session, cfg.robot_id, remaining)
            try:
                sent = time.monotonic()
                reply = client.infer(request)
                round_trip = time.monotonic() - sent
            finally:
                client.close()
        except LaecipsError as err:
            self._fallback(job, "error", f"cannot send frame: {err}")
            return
        self._count(bytes_sent=len(jpeg))
        if not reply.ok or reply.labels is None:
            self._fallback(job, reply.status, reply.error)
            return
        labels = np.asarray(reply.labels)
        down_bytes = len(imaging.encode_labels(labels))
        self._count(cloud_ok=1, bytes_received=down_bytes, cloud_status="available")
        upload_s, download_s = split_network(round_trip, float(reply.cloud_s), len(jpeg), down_bytes)
        self._publish(
            job,
            labels,
            SegmentationResult.SOURCE_CLOUD,
            upload_s=upload_s,
            cloud_s=float(reply.cloud_s),
            download_s=download_s,
        )

    def _on_upload_dropped(self, job: _Job) -> None:
        """A waiting hard frame pushed out by a newer one: answered at once with the edge labels."""
        self._count(dropped_upload=1)
        self._fallback(job, "dropped", "a newer hard frame replaced it while the link was busy")

    def _fallback(self, job: _Job, status: str, reason: str) -> None:
        """Publish the edge labels again with source=fallback (cloud missed the deadline or is down)."""
        cloud_status, is_error = classify_fallback(status)
        self._count(fallback=1, cloud_status=cloud_status)
        if is_error:
            self._count(error=f"frame {job.frame_no}: cloud {status}: {reason}")
        self.get_logger().debug(f"frame {job.frame_no}: fallback ({status}: {reason})")
        self._publish(job, job.labels, SegmentationResult.SOURCE_FALLBACK)

    # ------------------------------------------------------------------------------------ publish

    def _publish(
        self,
        job: _Job,
        labels: np.ndarray,
        source: str,
        *,
        upload_s: float = 0.0,
        cloud_s: float = 0.0,
        download_s: float = 0.0,
    ) -> None:
        """~/labels, ~/overlay and ~/result for one frame, all with the camera header."""
        if self._stop.is_set():
            return
        cfg = self._cfg
        labels_msg = _image_msg(job.header, imaging.labels_to_ros_fields(labels, cfg.num_classes))
        blended = imaging.overlay(job.rgb, labels, self._palette, alpha=cfg.overlay_alpha)
        overlay_msg = _image_msg(job.header, imaging.rgb_to_ros_fields(blended))
        fractions, scores = class_summary(labels, job.probs, cfg.num_classes)
        result = SegmentationResult()
        result.header = job.header
        result.labels = labels_msg
        result.source = source
        result.confidence = float(job.confidence)
        result.threshold = float(job.threshold)
        result.hard = bool(job.hard)
        result.uploaded = bool(job.uploaded)
        result.model_version = int(job.version)
        result.num_classes = int(cfg.num_classes)
        result.class_fractions = fractions.tolist()
        result.class_scores = scores.tolist()
        result.edge_compute_s = float(job.edge_s)
        result.upload_s = float(upload_s)
        result.cloud_compute_s = float(cloud_s)
        result.download_s = float(download_s)
        result.total_s = float(time.monotonic() - job.arrival)
        self._pub_labels.publish(labels_msg)
        self._pub_overlay.publish(overlay_msg)
        self._pub_result.publish(result)

    # ------------------------------------------------------------------------------------- zenoh

    def _zenoh_config(self) -> Any:
        """The Zenoh config from zenoh_config + zenoh_mode/zenoh_connect (multicast scouting forced off)."""
        cfg = self._cfg
        return zenoh_from_fields(cfg.zenoh_config, cfg.zenoh_mode, connect=cfg.zenoh_connect)

    def _zenoh_loop(self, zconf: Any) -> None:
        """Worker: open the session (retrying while the router is down), then listen for model updates.

        The node serves frames from the start: until the session is open every hard frame falls back.
        """
        cfg = self._cfg
        attempt = 0
        while not self._stop.is_set():
            try:
                session = transport.open_session(zconf)
                break
            except ConfigError as err:
                attempt += 1
                if attempt == 1 or attempt % 30 == 0:
                    self.get_logger().warning(f"zenoh not reachable yet ({err}); retrying every 1 s")
                self._count(cloud_status="unreachable")
                self._stop.wait(1.0)
        else:
            return
        self._listener = transport.AnnouncementListener(session, cfg.robot_id, self._on_announcement)
        self._session = session
        self.get_logger().info(
            f"zenoh session open (zid {session.zid()}), listening on {transport.update_key(cfg.robot_id)}"
        )
        latest = transport.query_latest_announcement(session, cfg.robot_id, timeout_s=1.0)
        if latest is not None:
            self._updates.put(latest)

    def _on_announcement(self, robot_id: str, announcement: transport.ModelAnnouncement) -> None:
        """Zenoh thread: enqueue only."""
        self._updates.put(announcement)

    def _update_loop(self) -> None:
        """Worker: fetch, verify and prepare announced bundles (the swap happens between frames)."""
        while not self._stop.is_set():
            announcement = self._updates.get(0.2)
            if announcement is None:
                continue
            try:
                self._apply_announcement(announcement)
            except LaecipsError as err:
                self._count(updates_refused=1, error=f"update v{announcement.version} refused: {err}")
                self.get_logger().error(f"model update v{announcement.version} refused: {err}")
            except Exception as err:  # keep serving frames with the old model whatever happens
                self._count(updates_refused=1, error=f"update v{announcement.version} failed: {err}")
                self.get_logger().error(
                    f"model update v{announcement.version} failed: {type(err).__name__}: {err}"
                )

    def _apply_announcement(self, ann: transport.ModelAnnouncement) -> None:
        cfg = self._cfg
        with self._swap_lock:
            newest = max(self._version, self._pending.version if self._pending else -1)
        if ann.version <= newest:
            self.get_logger().info(f"ignoring model update v{ann.version}: v{newest} is already loaded")
            return
        self.get_logger().info(f"model update v{ann.version} announced (sha256 {ann.sha256[:12]}), fetching")
        path, _ = transport.fetch_into_store(
            self._session,
            cfg.robot_id,
            ann,
            weights.WeightStore(self._weights_dir),
            model_name=cfg.edge_model_name,
            num_classes=cfg.num_classes,
            public_key=cfg.trusted_public_key or None,
            timeout_s=cfg.update_timeout_s,
        )
        candidate = self._load_candidate(
            path,
            origin="update",
            expected_sha256=ann.sha256,
            signature=ann.signature or None,
            expected_version=ann.version,
        )
        self._offer(candidate)

    # -------------------------------------------------------------------------------- diagnostics

    def _count(self, error: str | None = None, cloud_status: str | None = None, **increments: int) -> None:
        with self._count_lock:
            for key, value in increments.items():
                setattr(self._counters, key, getattr(self._counters, key) + value)
            if error:
                self._counters.errors += 1
                self._counters.last_error = error[:500]
            if cloud_status:
                self._counters.cloud_status = cloud_status

    def counters(self) -> dict[str, Any]:
        """A snapshot of the diagnostics counters (frames, uploaded, fallback, errors, ...)."""
        with self._count_lock:
            return {f.name: getattr(self._counters, f.name) for f in fields(self._counters)}

    def _publish_diagnostics(self) -> None:
        """Timer: frame rate, CUR, cloud availability, model version and errors on /diagnostics."""
        now = time.monotonic()
        snap = self.counters()
        last_t, last_frames = self._last_diag
        rate = (snap["frames"] - last_frames) / max(1e-6, now - last_t)
        self._last_diag = (now, snap["frames"])
        cur = snap["uploaded"] / snap["frames"] if snap["frames"] else 0.0
        uploader = self._uploader
        values = {
            "frame_rate_hz": f"{rate:.2f}",
            "cur": f"{cur:.4f}",
            "cloud": snap["cloud_status"],
            "model_version": str(self._version),
            "in_flight": str(uploader.in_flight if uploader else 0),
            "threshold": str(self._cfg.threshold),
            **{k: str(v) for k, v in snap.items() if k not in ("cloud_status",)},
        }
        if snap["bad_input"] or snap["updates_refused"]:
            level, message = DiagnosticStatus.WARN, snap["last_error"] or "errors"
        elif snap["cloud_status"] in ("unreachable", "timeout"):
            level, message = (
                DiagnosticStatus.WARN,
                f"cloud {snap['cloud_status']}: hard frames fall back to f",
            )
        else:
            level, message = DiagnosticStatus.OK, "running"
        robot = self._cfg.robot_id
        status = diagnostic_status(f"laecips_edge: {robot}", robot, level, message, values)
        publish_diagnostics(self, self._pub_diag, [status])

    # --------------------------------------------------------------------------------- lifecycle

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def destroy_node(self) -> None:
        """Stop the workers (bounded waits), close Zenoh, then destroy the ROS interfaces."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        if self._uploader is not None:
            self._uploader.close(timeout_s=min(10.0, self._cfg.deadline_s + 1.0))
        if self._listener is not None:
            self._listener.close()
        close_session(self._session, self)
        self._session = None
        super().destroy_node()


def main(args: Sequence[str] | None = None) -> None:
    """Console entry point ``edge_node``: spin the node until Ctrl-C or shutdown."""
    run_node(EdgeNode, NODE_NAME, args, fatal=(ConfigError,))


if __name__ == "__main__":
    main()
