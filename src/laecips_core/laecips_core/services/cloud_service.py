"""The cloud side of LAECIPS without ROS: Zenoh queryables per robot running f + LVM + Algorithm 1.

``CloudService`` answers each robot's hard frames (laecips/<robot_id>/infer) with F(x), the fusion
of the robot's current f scores and the LVM's class-agnostic masks (Algorithm 1), stores
(x, F(x)) in that robot's replay buffer, and fetches the signed weights the trainer announces so it
always fuses with the f the edge runs. The rclpy node laecips_cloud.cloud_node only adapts it
(parameters, ~/status, /diagnostics).
"""

from __future__ import annotations

import functools
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import zenoh

from laecips_core import transport
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.fusion import MaskOrder
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.errors import ConfigError, LaecipsError, ReplayError, WireFormatError
from laecips_core.image_arrays import resize_labels
from laecips_core.logs import Logger
from laecips_core.lvm.base import LVM
from laecips_core.lvm.registry import build_lvm
from laecips_core.services.cloud_config import CloudConfig
from laecips_core.services.cloud_robots import RequestEvent, RobotModel, RobotStats
from laecips_core.services.fairqueue import FairQueue
from laecips_core.services.stores import replay_path, seed_store, store_dir
from laecips_core.services.supervision import Supervisor, WorkerHealth
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.storage.weight_store import WeightStore

# ----------------------------------------------------------------------------------- the service


@dataclass
class _Job:
    robot_id: str
    query: zenoh.Query
    arrived: float


def _frame_id_of(attachment: bytes | None) -> int:
    """Best-effort frame_id of a request header (for error replies); -1 when unreadable."""
    try:
        value = json.loads(bytes(attachment or b"{}")).get("frame_id", -1)
    except (ValueError, AttributeError, RecursionError, TypeError):  # whatever a peer sent
        return -1
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= -1 else -1


class CloudService:
    """The cloud side of LAECIPS without ROS: queryables, worker pool, f copies, LVM, fusion, replay.

    The Zenoh callbacks only enqueue; `workers` threads decode the JPEG, run the robot's copy of f at the
    edge's version (softmax probabilities), the LVM, Algorithm 1 (fusion.assisted_inference), reply with
    the encoded labels, append (x, F(x), per-class mean probability, robot, version) to that robot's
    replay buffer and report a RequestEvent. Malformed requests get a status="error" reply.

    Args:
        cfg: Validated configuration.
        session: Open Zenoh session (closed by the caller after stop()).
        log: Logger.
        on_event: Called from worker threads with each RequestEvent (keep it short).
    """

    def __init__(
        self,
        cfg: CloudConfig,
        session: zenoh.Session,
        log: Logger,
        on_event: Callable[[RequestEvent], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.session = session
        self.log = log
        self.on_event = on_event
        self.stats = {robot: RobotStats() for robot in cfg.robot_ids}
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._jobs: FairQueue[_Job] = FairQueue(cfg.robot_ids, cfg.queue_size)
        self._fetches: queue.Queue[tuple[str, transport.ModelAnnouncement]] = queue.Queue(maxsize=16)
        self._supervisor = Supervisor("cloud", on_death=self._on_worker_death)
        self._caught_up = False
        self._queryables: list[zenoh.Queryable[None]] = []
        self._listeners: list[transport.AnnouncementListener] = []
        self.models: dict[str, RobotModel] = {}
        self.buffers: dict[str, ReplayBuffer] = {}
        self._lvms: list[LVM] = []
        self._prepare()

    # ------------------------------------------------------------------------------- set-up

    def _prepare(self) -> None:
        cfg = self.cfg
        for robot in cfg.robot_ids:
            store = WeightStore(store_dir(cfg.weights_dir, robot))
            if store.latest() is None and not cfg.edge_model_path:
                raise ConfigError(
                    f"weight store {store.directory} is empty and edge_model.path is '': give the bundle "
                    "the edge starts from (e.g. laecips pretrain's output)"
                )
            latest = seed_store(store, cfg.edge_model_path) if cfg.edge_model_path else store.latest()
            assert latest is not None
            model = RobotModel(store, latest, cfg.input_size)
            if model.model_name != cfg.edge_model_name:
                raise ConfigError(
                    f"robot {robot}: the store's f is {model.model_name!r} but edge_model.name is "
                    f"{cfg.edge_model_name!r}; make them agree"
                )
            if cfg.num_classes and model.num_classes != cfg.num_classes:
                raise ConfigError(
                    f"robot {robot}: the store's f has {model.num_classes} classes but num_classes is "
                    f"{cfg.num_classes}"
                )
            self.models[robot] = model
            self.stats[robot].model_version = latest
            buffer = ReplayBuffer(replay_path(cfg.replay_dir, robot), maxsize=cfg.replay_maxsize)
            self.buffers[robot] = buffer
            self.stats[robot].replay_size = len(buffer)
        self._lvms = [build_lvm(cfg.lvm, **cfg.lvm_kwargs()) for _ in range(cfg.workers)]

    def start(self) -> None:
        """Declare the queryables and listeners and start the worker and fetch threads."""
        for i, lvm in enumerate(self._lvms):
            self._supervisor.spawn(f"worker-{i}", functools.partial(self._work, lvm))
        self._supervisor.spawn("fetch", self._fetch_loop)
        for robot in self.cfg.robot_ids:
            self._queryables.append(
                self.session.declare_queryable(
                    transport.infer_key(robot), functools.partial(self._on_query, robot)
                )
            )
            self._listeners.append(transport.AnnouncementListener(self.session, robot, self._on_announcement))

    def _on_worker_death(self, worker: str, reason: str) -> None:
        """Supervisor: a worker thread died; it is restarted, and health() / the log say why."""
        self.log.error(f"cloud {worker} thread died and is restarted: {reason}")

    def health(self) -> WorkerHealth:
        """The worker and fetch threads: live count, restarts, last death reason (for /diagnostics)."""
        return self._supervisor.health()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Undeclare everything, stop the threads (bounded wait) and close the buffers."""
        self._stop.set()
        for queryable in self._queryables:
            try:
                queryable.undeclare()
            except zenoh.ZError:
                pass
        for listener in self._listeners:
            listener.close()
        self._supervisor.stop(timeout_s)
        while True:  # answer what is left so no edge waits for its timeout
            try:
                _, job = self._jobs.get_nowait()
            except queue.Empty:
                break
            self._reply_error(job.query, _frame_id_of(_bytes(job.query.attachment)), "cloud shutting down")
            job.query.drop()
        for buffer in self.buffers.values():
            buffer.close()

    # ------------------------------------------------------------------------------- zenoh callbacks

    def _on_query(self, robot: str, query: zenoh.Query) -> None:
        """Zenoh callback: enqueue, or answer 'busy' at once when the queue is full (never raises)."""
        try:
            with self._stats_lock:
                self.stats[robot].requests += 1
            try:
                self._jobs.put_nowait(robot, _Job(robot, query, time.perf_counter()))
            except queue.Full:
                with self._stats_lock:
                    self.stats[robot].busy += 1
                frame_id = _frame_id_of(_bytes(query.attachment))
                self._reply_error(
                    query,
                    frame_id,
                    f"cloud busy: {self.cfg.queue_size} requests of {robot} queued; retry later",
                )
                query.drop()
        except Exception as err:  # nothing escapes into Zenoh's callback thread
            self.log.error(f"{robot}: cannot take a request: {type(err).__name__}: {err}")

    def _on_announcement(self, robot: str, announcement: transport.ModelAnnouncement) -> None:
        """Zenoh callback: hand the announcement to the fetch thread (oldest dropped when full)."""
        for _ in range(3):  # bounded: another producer may refill the queue between the two calls
            try:
                self._fetches.put_nowait((robot, announcement))
                return
            except queue.Full:
                try:
                    self._fetches.get_nowait()
                except queue.Empty:
                    pass
        self.log.warning(f"{robot}: announcement v{announcement.version} dropped (fetch queue full)")

    # ------------------------------------------------------------------------------- workers

    def _work(self, lvm: LVM) -> None:
        while not self._stop.is_set():
            try:
                _, job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._serve(job, lvm)
            except Exception as err:  # a bug must not kill the worker: answer and keep serving
                self._internal_error(job, err)
            finally:
                try:
                    job.query.drop()
                except Exception as err:
                    self.log.warning(f"{job.robot_id}: could not finish a query: {type(err).__name__}: {err}")

    def _internal_error(self, job: _Job, err: Exception) -> None:
        """Answer a request whose serving raised, then log it (each step on its own: neither may raise)."""
        reason = f"{type(err).__name__}: {err}"
        try:
            self._reply_error(job.query, -1, f"internal cloud error: {reason}")
        except Exception as reply_err:
            reason += f" (and the error reply failed: {type(reply_err).__name__}: {reply_err})"
        try:
            with self._stats_lock:
                self.stats[job.robot_id].errors += 1
                self.stats[job.robot_id].last_error = f"internal error: {reason}"[:500]
            self.log.error(f"{job.robot_id}: internal error serving a request: {reason}")
        except Exception:  # a broken logger must not cost the worker
            pass

    def _serve(self, job: _Job, lvm: LVM) -> None:
        robot, query, cfg = job.robot_id, job.query, self.cfg
        frame_id = _frame_id_of(_bytes(query.attachment))
        waited = time.perf_counter() - job.arrived
        if waited > cfg.max_queue_wait_s:
            with self._stats_lock:
                self.stats[robot].expired += 1
            self._reply_error(query, frame_id, f"request expired after {waited:.2f} s in the cloud queue")
            return
        try:
            request, rgb, predictor = self._parse(robot, query)
        except Exception as err:  # whatever a peer sent: a wire-format error reply that says why
            reason = str(err) if isinstance(err, WireFormatError) else f"malformed request: {_describe(err)}"
            self._fail(robot, query, frame_id, reason)
            return
        full = (request.height, request.width)
        if rgb.shape[:2] != full:
            with self._stats_lock:
                self.stats[robot].downscaled += 1
        edge = predictor.predict(rgb)
        t0 = time.perf_counter()
        # F(x): the same AssistedInference object the trainer, the eval and pre-training use.
        fuser = AssistedInference(lvm, order=cast(MaskOrder, cfg.fusion_order))  # order validated
        masks = fuser.masks(rgb)
        t1 = time.perf_counter()
        fused = fuser.fuse(edge.probs, masks)
        t2 = time.perf_counter()
        fused = fused.astype(np.uint8 if predictor.num_classes <= 255 else np.uint16, copy=False)
        # durable first: an acknowledged sample must survive a crash right after the reply
        size = self._append(robot, rgb, fused, edge.probs, masks, predictor.version)
        labels = fused if fused.shape == full else resize_labels(fused, full)
        reply = transport.InferReply(
            status=transport.STATUS_OK,
            frame_id=request.frame_id,
            model_version=predictor.version,
            num_masks=int(masks.shape[0]),
            lvm_s=t1 - t0,
            fusion_s=t2 - t1,
            cloud_s=time.perf_counter() - job.arrived,
            labels=labels,
        )
        payload, attachment = reply.encode()
        query.reply(query.key_expr, payload, attachment=attachment)
        with self._stats_lock:
            stats = self.stats[robot]
            stats.ok += 1
            stats.model_version = predictor.version
            stats.replay_size = size
            stats.lvm_s_sum += reply.lvm_s
            stats.cloud_s_sum += reply.cloud_s
        self._emit(
            RequestEvent(
                robot,
                request.frame_id,
                reply.num_masks,
                predictor.version,
                reply.lvm_s,
                reply.fusion_s,
                reply.cloud_s,
                size,
            )
        )

    def _parse(
        self, robot: str, query: zenoh.Query
    ) -> tuple[transport.InferRequest, np.ndarray, EdgePredictor]:
        """Decode and check one request: (request, RGB fitted to max_pixels, f at the edge's version).

        Raises:
            WireFormatError: anything wrong with it (other exceptions are mapped by the caller).
        """
        cfg = self.cfg
        request = transport.InferRequest.decode(
            _bytes(query.payload), _bytes(query.attachment), max_bytes=cfg.max_request_bytes
        )
        if request.robot_id != robot:
            raise WireFormatError(f"request names robot {request.robot_id!r} but came on {robot!r}'s key")
        rgb = request.rgb(fit_pixels=cfg.max_pixels)
        try:
            predictor = self.models[robot].predictor(request.model_version, self.log)
        except LaecipsError as err:
            raise WireFormatError(f"request model_version {request.model_version}: {err}") from err
        if request.num_classes != predictor.num_classes:
            raise WireFormatError(
                f"request says M={request.num_classes}; the cloud's f has {predictor.num_classes} classes"
            )
        return request, rgb, predictor

    def _append(
        self,
        robot: str,
        rgb: np.ndarray,
        fused: np.ndarray,
        probs: np.ndarray,
        masks: np.ndarray,
        version: int,
    ) -> int:
        """Append (x, F(x), SAM(x)) to the robot's replay buffer; durable on return. Returns its size."""
        buffer = self.buffers[robot]
        summary = probs.reshape(probs.shape[0], -1).mean(axis=1).astype(np.float32)
        try:
            buffer.append(
                rgb, fused, logits_summary=summary, robot_id=robot, model_version=version, masks=masks
            )
            return len(buffer)
        except ReplayError as err:  # the robot still gets its answer; the sample is lost for training
            self.log.error(f"{robot}: replay buffer append failed: {err}")
            return self.stats[robot].replay_size

    def _fail(self, robot: str, query: zenoh.Query, frame_id: int, error: str) -> None:
        with self._stats_lock:
            self.stats[robot].errors += 1
            self.stats[robot].last_error = error
        self.log.warning(f"{robot}: refused request (frame {frame_id}): {error}")
        self._reply_error(query, frame_id, error)
        self._emit(RequestEvent(robot, frame_id, error=error, replay_size=self.stats[robot].replay_size))

    def _reply_error(self, query: zenoh.Query, frame_id: int, error: str) -> None:
        payload, attachment = transport.InferReply(
            status=transport.STATUS_ERROR,
            error=error.encode("utf-8", "replace").decode("utf-8"),
            frame_id=max(frame_id, -1),
        ).encode()
        try:
            query.reply(query.key_expr, payload, attachment=attachment)
        except zenoh.ZError as err:
            self.log.warning(f"could not send an error reply: {err}")

    def _emit(self, event: RequestEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # ------------------------------------------------------------------------------- model updates

    def _fetch_loop(self) -> None:
        if not self._caught_up:
            self._caught_up = True  # once: a restarted loop does not query again
            for robot in self.cfg.robot_ids:  # catch up on versions announced while this node was down
                if self._stop.is_set():
                    return
                latest = transport.query_latest_announcement(
                    self.session, robot, timeout_s=1.0, public_key=self.cfg.trusted_public_key or None
                )
                if latest is not None:
                    self._on_announcement(robot, latest)
        while not self._stop.is_set():
            try:
                robot, announcement = self._fetches.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                stored = self._store_announced(robot, announcement)
            except Exception as err:  # refused (LaecipsError) or anything else: count, log, keep going
                reason = str(err) if isinstance(err, LaecipsError) else f"{type(err).__name__}: {err}"
                with self._stats_lock:
                    self.stats[robot].updates_refused += 1
                    self.stats[robot].last_error = reason[:500]
                self.log.warning(f"{robot}: announced version {announcement.version} refused: {reason}")
                continue
            if stored:
                with self._stats_lock:
                    self.stats[robot].updates_stored += 1
                self.log.info(f"{robot}: stored announced f version {announcement.version}")

    def _store_announced(self, robot: str, announcement: transport.ModelAnnouncement) -> bool:
        """Fetch, verify and store an announced bundle unless the store has it (disk shared with trainer)."""
        _, fetched = transport.fetch_into_store(
            self.session,
            robot,
            announcement,
            self.models[robot].store,
            model_name=self.cfg.edge_model_name,
            num_classes=None,
            public_key=self.cfg.trusted_public_key or None,
            timeout_s=self.cfg.fetch_timeout_s,
        )
        return fetched

    # ------------------------------------------------------------------------------- runtime changes

    def reconfigure(self, cfg: CloudConfig) -> None:
        """Adopt the runtime-mutable fields (max_request_bytes, max_queue_wait_s, fusion_order)."""
        self.cfg = cfg

    def snapshot(self) -> dict[str, RobotStats]:
        """A copy of the per-robot counters."""
        with self._stats_lock:
            return {robot: replace(stats) for robot, stats in self.stats.items()}


def _bytes(value: zenoh.ZBytes | None) -> bytes | None:
    return None if value is None else value.to_bytes()


def _describe(err: BaseException) -> str:
    """``Type: message`` of an exception, cut to fit an error reply."""
    return f"{type(err).__name__}: {err}"[:500]
