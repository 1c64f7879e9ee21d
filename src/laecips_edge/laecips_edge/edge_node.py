"""ROS 2 edge node of LAECIPS: a thin rclpy adapter over laecips_core's edge_config/models/uploads/service.

Camera topic in; ~/labels, ~/overlay, ~/result and /diagnostics out; parameters with descriptors; the
work (f and h, the cloud round trip, verifying and swapping model updates) is laecips_core's.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import zenoh
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from laecips_common.node_support import (
    close_session,
    declare_config,
    diagnostic_status,
    publish_diagnostics,
    run_node,
    set_parameters_result,
)
from laecips_core.algo.frames import EdgeResult
from laecips_core.algo.thresholds import TrackingDelta
from laecips_core.errors import ConfigError, ImageError, LaecipsError
from laecips_core.services.edge_config import (
    EDGE_PARAMS,
    EdgeConfig,
    class_names_for,
    parse_palette,
    resolve_defaults,
    robot_id_from_namespace,
)
from laecips_core.services.edge_models import (
    ModelSlot,
    OperatorLoad,
    UpdateRequest,
    check_operator_path,
    load_candidate,
    prepare_request,
    untrained_candidate,
)
from laecips_core.services.edge_service import EdgeCounters, class_summary, classes_json, diagnostic_values
from laecips_core.services.edge_uploads import CloudAnswer, EdgeUploads
from laecips_core.services.offload import LatestQueue, UploadBudget, tracked_upload_decision, upload_decision
from laecips_core.services.supervision import Supervisor
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from laecips_core import image_codecs, imaging, transport
from laecips_msgs.msg import SegmentationResult

NODE_NAME = "edge_node"


@dataclass
class _Frame:
    """A camera message as received, with its arrival time (time.monotonic(), seconds)."""

    msg: Image | CompressedImage
    arrival: float


@dataclass
class _Job:
    """One processed frame: what every later publication of it needs."""

    frame_no: int
    header: Header
    stamp: float
    rgb: np.ndarray
    labels: np.ndarray
    edge: EdgeResult
    confidence: float
    threshold: float
    hard: bool
    uploaded: bool
    version: int
    edge_s: float
    arrival: float


def _stamp_seconds(stamp: TimeMsg) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def _image_msg(header: Header, ros_fields: imaging.RosImageFields) -> Image:
    """sensor_msgs/Image from imaging's ``*_to_ros_fields`` (height, width, encoding, step, data)."""
    return Image(header=header, **ros_fields)


# ---------------------------------------------------------------------------------------------- node


class EdgeNode(Node):
    """The robot side of LAECIPS (Algorithm 2): y = f(x) if h(f(x)) > delta else F(x) from the cloud.

    The camera topic is ``image_topic`` (relative by default: ``<namespace>/camera/image_raw``, and
    remappable); ``robot_id`` defaults to the namespace's last part and ``num_classes`` to the bundle's M.
    The class names go out on ``~/classes`` (std_msgs/String JSON, transient-local, like a bag's
    classes topic) whenever the model changes. Timers and /diagnostics stamps follow the node's clock,
    so ``use_sim_time`` with a ``/clock`` (``laecips play-bag --clock``) works; result headers are the
    camera's.

    Every camera frame is answered at once with f's labels on ``~/labels`` (mono8/mono16),
    ``~/overlay`` (rgb8) and ``~/result`` (SegmentationResult, source=edge). Hard frames
    (h(f(x)) <= delta, plus a random exploration share of easy ones) are JPEG-encoded and sent to the
    cloud by a pool of at most ``max_in_flight`` workers; the fused labels F(x) are then published
    again with source=cloud, or the edge labels with source=fallback when the deadline passes, the
    cloud is down or its reply is invalid. Model updates announced over Zenoh are fetched, verified
    (sha256, Ed25519 signature over the whole announcement when a trusted key is set, versions only
    going up), loaded into new instances of f and h and swapped in between frames. Every worker thread
    is supervised: one that dies is restarted and /diagnostics turns WARN with the reason.

    Args:
        node_name: ROS node name.
        kwargs: passed to rclpy.node.Node (parameter_overrides, namespace, context...).

    Raises:
        ConfigError: a parameter is invalid or the start-up bundle fails verification.
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._internal = threading.local()
        self._counters = EdgeCounters()
        self._stop = threading.Event()
        self._session: zenoh.Session | None = None
        self._listener: transport.AnnouncementListener | None = None
        self._uploads: EdgeUploads[_Job] | None = None
        self._supervisor = Supervisor("laecips", on_death=self._on_worker_death)
        self._rng = random.Random()
        self._tracking: TrackingDelta | None = None
        self._delta = float("nan")
        self._rate_now = float("nan")
        self._frame_no = 0
        self._last_diag = (self._now(), 0)  # (node-clock seconds, frames) of the last /diagnostics

        self._cfg = self._declare_and_read().validate()
        cfg = self._cfg
        self._palette = parse_palette(cfg.palette, cfg.num_classes)
        self._budget = UploadBudget(cfg.max_in_flight)

        # The model running at start: a verified bundle, or an untrained f (version 0).
        if cfg.edge_model_path:
            try:
                first = load_candidate(cfg, cfg.edge_model_path, origin="start")
            except LaecipsError as err:
                raise ConfigError(f"edge_model.path {cfg.edge_model_path!r} refused: {err}") from err
        else:
            self.get_logger().warning(
                f"edge_model.path is empty: running an untrained {cfg.edge_model_name} (version 0) until "
                "the trainer publishes weights; run `laecips pretrain` for usable defaults"
            )
            first = untrained_candidate(cfg)
        self._models = ModelSlot(first)
        self._set_internal({"edge_model.version": first.version})

        # ROS interfaces: explicit QoS (sensor data in, reliable out).
        out_qos = QoSProfile(
            depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE
        )
        self._pub_labels = self.create_publisher(Image, "~/labels", out_qos)
        self._pub_overlay = self.create_publisher(Image, "~/overlay", out_qos)
        self._pub_result = self.create_publisher(SegmentationResult, "~/result", out_qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", out_qos)
        latched = QoSProfile(
            depth=1,
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._pub_classes = self.create_publisher(String, "~/classes", latched)
        self._class_names = class_names_for(cfg, cfg.edge_model_path or None)
        self._publish_classes(first.version)
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
        zconf = cfg.zenoh()
        self._updates: LatestQueue[UpdateRequest] = LatestQueue(4)  # announcements and operator files
        self._uploads = EdgeUploads(
            cfg.max_in_flight,
            config=lambda: self._cfg,
            session=lambda: self._session,
            counters=self._counters,
            on_cloud=self._publish_cloud,
            on_fallback=self._publish_fallback,
            on_death=lambda worker, reason: self._log_death(f"upload worker {worker}", reason),
            budget=self._budget,
        )
        self._supervisor.spawn("zenoh", lambda: self._zenoh_loop(zconf))
        self._supervisor.spawn("infer", self._inference_loop)
        self._supervisor.spawn("update", self._update_loop)
        self._diag_timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if not cfg.trusted_public_key:
            self.get_logger().warning(
                "trusted_public_key is empty: model updates are checked by sha256 only; set it to the "
                "trainer's .pub file to require signed weights"
            )
        self.get_logger().info(
            f"edge node up: robot {cfg.robot_id}, {cfg.edge_model_name} v{first.version} ({cfg.backend}), "
            f"M={cfg.num_classes}, miner {cfg.miner}, "
            + (
                f"target upload rate {cfg.target_upload_rate}"
                if cfg.target_upload_rate > 0
                else f"fixed delta={cfg.threshold}"
            )
            + f", camera {self._sub.topic_name} ({cfg.image_transport}, {cfg.image_qos}), deadline "
            f"{cfg.deadline_s} s, {cfg.max_in_flight} in flight"
        )

    # -------------------------------------------------------------------------------- parameters

    def _declare_and_read(self) -> EdgeConfig:
        """Declare every parameter with its descriptor and freeze the values into an EdgeConfig.

        robot_id's default is the namespace's last part; num_classes 0 means the bundle's M (the
        parameter keeps reading 0; ~/classes and every result carry M).
        """
        namespace = self.get_namespace()
        defaults = replace(EdgeConfig(), robot_id=robot_id_from_namespace(namespace))
        return resolve_defaults(EdgeConfig(**declare_config(self, EDGE_PARAMS, defaults)), namespace)

    def _set_internal(self, values: dict[str, Any]) -> None:
        """Set parameters on behalf of the node itself (accepted even where operators are refused)."""
        self._internal.active = True
        try:
            self.set_parameters([Parameter(name, value=value) for name, value in values.items()])
        finally:
            self._internal.active = False

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """The one runtime-change hook (executor thread): checks only, through the shared helper.

        A new edge_model.path is checked cheaply (check_operator_path) and handed to the update worker,
        which verifies, loads and offers it like an announced update; the parameter then follows the
        running model (set back if the worker refuses the file). edge_model.version is refused.
        """
        if getattr(self._internal, "active", False):
            return SetParametersResult(successful=True)
        return set_parameters_result(params, EDGE_PARAMS, self._reconfigure)

    def _reconfigure(self, changes: dict[str, Any]) -> None:
        """Validate and adopt runtime changes (raises ConfigError to refuse them all)."""
        if "edge_model_version" in changes:
            raise ConfigError(
                "edge_model.version is set by the node when it loads weights; "
                "set edge_model.path to load a bundle file instead"
            )
        new_path = changes.pop("edge_model_path", None)
        new_cfg = replace(self._cfg, **changes).validate()
        load = OperatorLoad(check_operator_path(new_cfg, new_path)) if new_path is not None else None
        if new_cfg.palette != self._cfg.palette:
            self._palette = parse_palette(new_cfg.palette, new_cfg.num_classes)
        self._cfg = new_cfg
        if load is not None:
            self.get_logger().info(f"edge_model.path {load.path}: queued for verification and loading")
            self._enqueue_update(load)

    # ------------------------------------------------------------------------------------- models

    def _maybe_swap(self) -> None:
        """Install a pending model between two frames and publish its version as a parameter."""
        old = self._models.current.version
        candidate = self._models.swap()
        if candidate is None:
            return
        values: dict[str, Any] = {"edge_model.version": candidate.version}
        if candidate.path:  # an update or an operator's file: the parameter names the running bundle
            values["edge_model.path"] = candidate.path
            self._cfg = replace(
                self._cfg, edge_model_path=candidate.path, edge_model_version=candidate.version
            )
        else:
            self._cfg = replace(self._cfg, edge_model_version=candidate.version)
        self._set_internal(values)
        if self._tracking is not None:  # new f and h: the old confidences say nothing about theirs
            self._tracking.reset()
        names = class_names_for(self._cfg, candidate.path or None)
        if not names[0].startswith("class_") or self._class_names[0].startswith("class_"):
            self._class_names = names  # an update without names keeps the names it was trained for
        self._publish_classes(candidate.version)
        self._count(updates_applied=1)
        self.get_logger().info(
            f"model v{old} -> v{candidate.version} ({candidate.origin}, sha256 {candidate.sha256[:12]}, "
            f"{candidate.path})"
        )

    def _tracker(self, cfg: EdgeConfig) -> TrackingDelta:
        """The tracking delta for the current target rate and window (rebuilt when they change)."""
        t = self._tracking
        if t is None or t.target_rate != cfg.target_upload_rate or t.window.maxlen != cfg.rate_window:
            t = self._tracking = TrackingDelta(cfg.target_upload_rate, cfg.rate_window)
        return t

    # ------------------------------------------------------------------------------------- camera

    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Camera callback: enqueue only (newest wins when f is slower than the camera).

        The arrival time is time.monotonic() on purpose, also under use_sim_time: the cloud deadline,
        the latency fields of ~/result and UploadBudget's frame period measure real compute and network
        time, which a bag's clock does not; what a frame is stamped with is the camera header's.
        """
        if self._frames.put(_Frame(msg, time.monotonic())) is not None:
            self._count(dropped_input=1)

    def _to_rgb(self, msg: Image | CompressedImage) -> np.ndarray:
        """(H, W, 3) uint8 RGB of a camera message; ImageError says what is wrong with it."""
        if isinstance(msg, CompressedImage):
            fmt = msg.format.lower()
            if "jpeg" not in fmt and "jpg" not in fmt:
                raise ImageError(f"CompressedImage format {msg.format!r} is not supported: publish jpeg")
            return image_codecs.decode_jpeg(bytes(msg.data))
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
        model = self._models.current
        try:
            result = model.predictor.predict(rgb)
        except ImageError as err:
            self._count(bad_input=1, error=f"bad camera frame at {stamp:.3f}: {err}")
            self.get_logger().error(f"dropping camera frame (stamp {stamp:.3f}): {err}")
            return
        confidence = float(result.confidence)
        self._budget.frame(frame.arrival, float(result.compute_s))
        if cfg.target_upload_rate > 0:
            tracker = self._tracker(cfg)
            rate = self._budget.rate(cfg.target_upload_rate, cfg.exploration_rate, cfg.latency_budget_s)
            self._rate_now = rate
            hard, uploaded, delta = tracked_upload_decision(
                confidence, tracker, cfg.exploration_rate, self._rng, target_rate=rate
            )
        else:
            hard, uploaded = upload_decision(confidence, cfg.threshold, cfg.exploration_rate, self._rng)
            delta = cfg.threshold
        self._delta = delta
        self._frame_no += 1
        job = _Job(
            frame_no=self._frame_no,
            header=msg.header,
            stamp=stamp,
            rgb=rgb,
            labels=np.asarray(result.labels),
            edge=result,
            confidence=confidence,
            threshold=float(delta),
            hard=hard,
            uploaded=uploaded,
            version=model.version,
            edge_s=float(result.compute_s),
            arrival=frame.arrival,
        )
        self._count(frames=1, hard=int(hard), uploaded=int(uploaded))
        self._publish(job, job.labels, SegmentationResult.SOURCE_EDGE)
        if uploaded and self._uploads is not None:
            self._uploads.submit(job)

    # ------------------------------------------------------------------------------------- upload

    def _publish_cloud(self, job: _Job, answer: CloudAnswer) -> None:
        """Upload worker: publish F(x) from the cloud (EdgeUploads did the round trip and the counting)."""
        assert answer.labels is not None  # EdgeUploads hands over answers with labels only
        self._publish(
            job,
            answer.labels,
            SegmentationResult.SOURCE_CLOUD,
            upload_s=answer.upload_s,
            cloud_s=answer.cloud_s,
            download_s=answer.download_s,
        )

    def _publish_fallback(self, job: _Job, status: str, reason: str) -> None:
        """Publish the edge labels again with source=fallback (no usable cloud result; reason logged)."""
        self.get_logger().debug(f"frame {job.frame_no}: fallback ({status}: {reason})")
        self._publish(job, job.labels, SegmentationResult.SOURCE_FALLBACK)

    # ------------------------------------------------------------------------------------ publish

    def _publish_classes(self, version: int) -> None:
        """~/classes: the class names of the running model (latched; JSON as a bag's classes topic)."""
        body = classes_json(self._class_names, robot_id=self._cfg.robot_id, model_version=version)
        self._pub_classes.publish(String(data=body))

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
        fractions, scores = class_summary(labels, job.edge.label_probs(labels), cfg.num_classes)
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

    def _zenoh_loop(self, zconf: Any) -> None:
        """Worker: open the session (retrying while the router is down), then listen for model updates.

        The node serves frames from the start: until the session is open every hard frame falls back.
        Each step is done once, so a restart by the supervisor continues where the loop died.
        """
        cfg = self._cfg
        attempt = 0
        while self._session is None and not self._stop.is_set():
            try:
                self._session = transport.open_session(zconf)
            except ConfigError as err:
                attempt += 1
                if attempt == 1 or attempt % 30 == 0:
                    self.get_logger().warning(f"zenoh not reachable yet ({err}); retrying every 1 s")
                self._count(cloud_status="unreachable")
                self._stop.wait(1.0)
        session = self._session
        if session is None or self._listener is not None:
            return
        self._listener = transport.AnnouncementListener(session, cfg.robot_id, self._on_announcement)
        self.get_logger().info(
            f"zenoh session open (zid {session.zid()}), listening on {transport.update_key(cfg.robot_id)}"
        )
        latest = transport.query_latest_announcement(
            session, cfg.robot_id, timeout_s=1.0, public_key=cfg.trusted_public_key or None
        )
        if latest is not None:
            self._enqueue_update(latest)

    def _on_announcement(self, robot_id: str, announcement: transport.ModelAnnouncement) -> None:
        """Zenoh thread: enqueue only."""
        self._enqueue_update(announcement)

    def _enqueue_update(self, request: UpdateRequest) -> None:
        """Hand an announcement or an operator's file to the update worker (newest wins when it is busy)."""
        dropped = self._updates.put(request)
        if dropped is not None:
            self._update_refused(dropped, "dropped: newer update requests came while the worker was busy")

    def _update_loop(self) -> None:
        """Worker: verify and load announced bundles and operators' files (swapped in between frames)."""
        while not self._stop.is_set():
            request = self._updates.get(0.2)
            if request is None:
                continue
            try:
                self._apply_update(request)
            except LaecipsError as err:
                self._update_refused(request, f"refused: {err}")
            except Exception as err:  # keep serving frames with the old model whatever happens
                self._update_refused(request, f"failed: {type(err).__name__}: {err}")

    def _apply_update(self, request: UpdateRequest) -> None:
        """Fetch (announcements) and verify one request (edge_models.prepare_request); offer it."""
        if isinstance(request, transport.ModelAnnouncement):
            self.get_logger().info(
                f"model update v{request.version} announced (sha256 {request.sha256[:12]}), fetching"
            )
        candidate = prepare_request(self._session, self._cfg, self._models, request)
        if candidate is None:  # prepare_request: only for an announcement of a version already here
            assert isinstance(request, transport.ModelAnnouncement)
            self.get_logger().info(f"ignoring model update v{request.version}: it is already loaded")
            return
        self._models.offer(candidate)

    def _update_refused(self, request: UpdateRequest, why: str) -> None:
        """Count and log a refused request; a refused operator file sets edge_model.path back."""
        if isinstance(request, OperatorLoad):
            self._count(updates_refused=1, error=f"operator bundle {request.path} {why}")
            self.get_logger().error(f"edge_model.path {request.path} {why}")
            running = self._models.newest().path or self._cfg.edge_model_path
            self._set_internal({"edge_model.path": running})
            return
        self._count(updates_refused=1, error=f"update v{request.version} {why}")
        self.get_logger().error(f"model update v{request.version} {why}")

    # -------------------------------------------------------------------------------- diagnostics

    def _count(self, error: str | None = None, cloud_status: str | None = None, **increments: int) -> None:
        self._counters.count(error=error, cloud_status=cloud_status, **increments)

    def _on_worker_death(self, worker: str, reason: str) -> None:
        """Supervisor: a node thread died (it is restarted); counted for /diagnostics and logged."""
        self._counters.worker_died(f"{worker} worker: {reason}")
        self._log_death(f"{worker} worker", reason)

    def _log_death(self, worker: str, reason: str) -> None:
        self.get_logger().error(f"{worker} died and is restarted: {reason}")

    def counters(self) -> dict[str, Any]:
        """A snapshot of the diagnostics counters (frames, uploaded, fallback, errors, ...)."""
        return self._counters.snapshot()

    def _now(self) -> float:
        """The node's clock in seconds: the bag's time under use_sim_time, else the system time."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish_diagnostics(self) -> None:
        """Timer: frame rate, CUR, cloud availability, model version and errors on /diagnostics.

        Timer, stamp and frame rate follow the node's clock (frames per second of the bag's time under
        use_sim_time; a clock that went back, as when a replayed bag starts over, counts one period).
        """
        now = self._now()
        snap = self.counters()
        cfg = self._cfg
        budget = self._budget.state(cfg.target_upload_rate, cfg.exploration_rate, cfg.latency_budget_s)
        extra = {
            "upload_rate_now": f"{self._rate_now:.4f}",
            "upload_capacity": f"{budget.capacity:.4f}",
            "cloud_busy_s": f"{budget.busy_s:.4f}",
            "frame_period_s": f"{budget.frame_period_s:.4f}",
        }
        last_t, last_frames = self._last_diag
        self._last_diag = (now, snap["frames"])
        period = cfg.diagnostics_period_s
        warn, message, values = diagnostic_values(
            snap,
            rate_hz=(snap["frames"] - last_frames) / (now - last_t if now > last_t else period),
            version=self._models.current.version,
            in_flight=self._uploads.in_flight if self._uploads else 0,
            threshold=self._delta,
            extra=extra,
        )
        level = DiagnosticStatus.WARN if warn else DiagnosticStatus.OK
        robot = self._cfg.robot_id
        publish_diagnostics(
            self, self._pub_diag, [diagnostic_status(f"laecips_edge: {robot}", robot, level, message, values)]
        )

    # --------------------------------------------------------------------------------- lifecycle

    def destroy_node(self) -> None:
        """Stop the workers (bounded waits), close Zenoh, then destroy the ROS interfaces."""
        self._stop.set()
        self._supervisor.stop(timeout_s=5.0)
        if self._uploads is not None:
            self._uploads.close(timeout_s=min(10.0, self._cfg.deadline_s + 1.0))
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
