"""The trainer side of LAECIPS without ROS: watch replay buffers, run Algorithm 2 in a separate process.

``TrainerService`` checks each robot's replay buffer with the trigger of Algorithm 2 (size > maxsize or
age > maxtime), runs ``laecips_core.training.job`` (Eq. 13 then Eq. 14) in a child process, stores the
accepted bundle signed with Ed25519 in the robot's WeightStore and announces it over Zenoh. The rclpy
node laecips_cloud.trainer_node only adapts it (parameters, ~/model_update, /diagnostics).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zenoh

from laecips_core import transport
from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR
from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
from laecips_core.algo.models import edge_model_registry
from laecips_core.errors import ConfigError, LaecipsError, WeightsError
from laecips_core.files import sha256_bytes
from laecips_core.logs import Logger
from laecips_core.services.params import (
    SERVER_EDGE_MODEL_PARAMS,
    ZENOH_PARAMS,
    ParamSpec,
    ZenohFields,
    check_ranges,
    check_robot_ids,
)
from laecips_core.services.stores import replay_path, reports_dir, seed_store, store_dir
from laecips_core.storage.bundle_loading import load_bundle, parse_bundle
from laecips_core.storage.jobspec import JobSpec, TrainerConfig, should_train
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.storage.signing import generate_keypair, sign_digest, write_signature
from laecips_core.storage.weight_store import WeightStore

DEFAULT_KEY_NAME = "trainer"
FAILURE_BACKOFF_S = (5.0, 300.0)
"""After a failed training job (crash, timeout, publish error) a robot waits this long before its next
job: the first value, doubled after each further failure in a row, at most the second. A failure
leaves the buffer full, so without the wait the same check() would start the same job again at once."""
"""<weights_dir>/keys/trainer.key (and .pub) are created when signing_key is ''."""


_DEFAULTS = TrainerConfig()
"""One source of the training defaults: the trainer node, the evaluation and the demo share them."""


@dataclass(frozen=True)
class TrainerNodeConfig(ZenohFields):
    """Frozen parameters of the trainer node (one field per ROS parameter).

    Attributes:
        robot_ids: Robots whose replay buffers are watched (one WeightStore each).
        zenoh_config: json5 Zenoh config file ("" = Zenoh defaults, peer mode).
        zenoh_mode: "peer", "client", "router" or "" (the file's).
        zenoh_listen: Endpoints to listen on (empty = the file's).
        zenoh_connect: Endpoints to connect to (empty = the file's).
        zenoh_open_timeout_s: How long to retry opening the session (a client needs its router).
        replay_dir: Root of the per-robot replay buffers (written by the cloud node).
        weights_dir: Root of the per-robot WeightStores; reports go to <weights_dir>/<robot>/reports.
        edge_model_name: Registry name of f (checked against the bundles).
        edge_model_path: Bundle the edges start from; seeds empty stores ("" = the store must hold one).
        signing_key: Ed25519 private key (PEM) signing each bundle's sha256 ("" =
            <weights_dir>/keys/trainer.key,
            created on first start; give the edges <weights_dir>/keys/trainer.pub).
        signer: Name of the key carried in the announcements.
        export_onnx: Ship ONNX graphs of f and h inside each new bundle (signed with it), so a lean
            edge (backend onnxruntime) runs them without torch (``algo.onnx_export``).
        onnx_stream_norm_prior: N of ``streamnorm`` baked into f's ONNX graph; the lean edge runs the
            graphs only when its stream_norm_prior is the same.
        lr: Learning rate eta (Eq. 13, 14); defaults of this and the next fields are TrainerConfig's,
            the same the evaluation and the demo use.
        epochs: Epochs per update.
        batch_size: Frames per step.
        beta: Weight of -log h in Eq. 14.
        recipe: Update recipe of f (``storage.jobspec.RECIPES``; "paper" = Eq. 13 as printed).
        gate: Label-free acceptance signal (``storage.jobspec.GATES``).
        validation_bag: Optional small labelled rosbag2 (images + labels topics of
            ``laecips_core.storage.bags.DEFAULT_TOPICS``); when given, updates are gated on its ground truth.
        maxsize: Train when a buffer holds more than this many samples (Algorithm 2).
        maxtime_s: ... or when this long passed since the last training and the buffer is not empty.
        holdout_fraction: Share of the newest samples held back to gate the update.
        min_improvement: Gate signal an update needs to be published (see adaptation.gate_update).
        input_height: Training height (pixels).
        input_width: Training width (pixels).
        seed: Seed of the training run.
        train_threads: torch threads of the training process.
        max_samples: Most samples one job reads.
        check_period_s: Period of the trigger check (seconds).
        job_timeout_s: A training process running longer is killed (seconds).
        max_parallel_jobs: Training processes at once (over all robots).
        serve_versions: Newest versions per robot kept fetchable over Zenoh.
        republish_on_start: Announce each robot's newest trained version at start (restarted trainer).
        diagnostics_period_s: Period of /diagnostics (seconds).
    """

    robot_ids: tuple[str, ...] = ("robot1",)
    replay_dir: str = "runs/cloud/replay"
    weights_dir: str = "runs/cloud/weights"
    edge_model_name: str = DEFAULT_EDGE_MODEL
    edge_model_path: str = ""
    signing_key: str = ""
    signer: str = "laecips-trainer"
    export_onnx: bool = True
    onnx_stream_norm_prior: float = DEFAULT_STREAM_NORM_PRIOR
    lr: float = _DEFAULTS.lr
    epochs: int = _DEFAULTS.epochs
    batch_size: int = _DEFAULTS.batch_size
    beta: float = _DEFAULTS.beta
    recipe: str = _DEFAULTS.recipe
    gate: str = _DEFAULTS.gate
    validation_bag: str = ""
    maxsize: int = 100
    maxtime_s: float = 600.0
    holdout_fraction: float = _DEFAULTS.holdout_fraction
    min_improvement: float = _DEFAULTS.min_improvement
    input_height: int = 240
    input_width: int = 320
    seed: int = 0
    train_threads: int = 1
    max_samples: int = 1000
    check_period_s: float = 2.0
    job_timeout_s: float = 1800.0
    max_parallel_jobs: int = 1
    serve_versions: int = 3
    republish_on_start: bool = True
    diagnostics_period_s: float = 1.0

    def trainer_config(self) -> TrainerConfig:
        """The laecips_core TrainerConfig of the next job (raises ConfigError when invalid)."""
        return TrainerConfig(
            lr=self.lr,
            epochs=self.epochs,
            batch_size=self.batch_size,
            beta=self.beta,
            recipe=self.recipe,
            gate=self.gate,
            maxsize=self.maxsize,
            maxtime_s=self.maxtime_s,
            holdout_fraction=self.holdout_fraction,
            min_improvement=self.min_improvement,
            input_size=(self.input_height, self.input_width),
            seed=self.seed,
            num_threads=self.train_threads,
        )

    def validate(self) -> TrainerNodeConfig:
        """Check every field (raises ConfigError naming the parameter); returns self."""
        check_robot_ids(self.robot_ids)
        self.check_zenoh()
        if self.edge_model_path and not Path(self.edge_model_path).expanduser().is_file():
            raise ConfigError(
                f"edge_model.path {self.edge_model_path!r} does not exist: give the edge's bundle"
            )
        if self.signing_key and not Path(self.signing_key).expanduser().is_file():
            raise ConfigError(
                f"signing_key {self.signing_key!r} does not exist: create one with `laecips keygen DIR` or "
                "leave it '' to use <weights_dir>/keys/trainer.key"
            )
        if not self.signer:
            raise ConfigError("signer must name the signing key (e.g. laecips-trainer)")
        if self.edge_model_name not in edge_model_registry:
            raise ConfigError(
                f"edge_model.name {self.edge_model_name!r} is not a known edge model: use one of "
                f"{sorted(edge_model_registry)} (the edge's bundle names its model)"
            )
        check_ranges(self, TRAINER_PARAMS)
        self.trainer_config()
        return self


TRAINER_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("robot_ids", "robot_ids", "robots whose replay buffers are watched"),
    *ZENOH_PARAMS,
    ParamSpec("replay_dir", "replay_dir", "root of the per-robot replay buffers (written by the cloud node)"),
    ParamSpec("weights_dir", "weights_dir", "root of the per-robot weight stores and training reports"),
    *SERVER_EDGE_MODEL_PARAMS,
    ParamSpec("signing_key", "signing_key", "Ed25519 private key (PEM); '' = <weights_dir>/keys/trainer.key"),
    ParamSpec("signer", "signer", "name of the signing key carried in announcements"),
    ParamSpec("export_onnx", "export_onnx", "ship ONNX graphs of f and h in each bundle", mutable=True),
    ParamSpec(
        "onnx_stream_norm_prior",
        "onnx_stream_norm_prior",
        "stream_norm_prior N baked into f's ONNX graph (lean edges must use the same)",
        0.0,
        1e6,
        True,
    ),
    ParamSpec("lr", "lr", "learning rate eta of Eq. 13 and 14", 1e-8, 10.0, True),
    ParamSpec("epochs", "epochs", "epochs per update", 1, 10000, True),
    ParamSpec("batch_size", "batch_size", "frames per optimiser step", 1, 4096, True),
    ParamSpec("beta", "beta", "weight of -log h in Eq. 14", 1e-6, 1e6, True),
    ParamSpec("recipe", "recipe", "update recipe of f: paper, bn, refuse, ema or rehearsal", mutable=True),
    ParamSpec("gate", "gate", "label-free gate signal: consistency, old_fused or new_fused", mutable=True),
    ParamSpec(
        "validation_bag",
        "validation_bag",
        "labelled rosbag2 to gate updates on ('' = label-free)",
        mutable=True,
    ),
    ParamSpec("maxsize", "maxsize", "train when the buffer holds more samples than this", 1, 10**7, True),
    ParamSpec(
        "maxtime_s", "maxtime_s", "or when this long passed since the last training (s)", 1.0, 1e9, True
    ),
    ParamSpec(
        "holdout_fraction", "holdout_fraction", "newest share held back to gate updates", 0.01, 0.99, True
    ),
    ParamSpec("min_improvement", "min_improvement", "gate signal needed to publish", -1.0, 1.0, True),
    ParamSpec("input_height", "input_height", "training height (pixels)", 8, 4096, True),
    ParamSpec("input_width", "input_width", "training width (pixels)", 8, 4096, True),
    ParamSpec("seed", "seed", "seed of each training run", 0, 2**31 - 1, True),
    ParamSpec("train_threads", "train_threads", "torch threads of the training process", 1, 256, True),
    ParamSpec("max_samples", "max_samples", "most samples one job reads", 2, 10**7, True),
    ParamSpec(
        "check_period_s", "check_period_s", "period of the Algorithm 2 trigger check (s)", 0.05, 3600.0
    ),
    ParamSpec(
        "job_timeout_s", "job_timeout_s", "kill a training process after this long (s)", 1.0, 1e6, True
    ),
    ParamSpec("max_parallel_jobs", "max_parallel_jobs", "training processes at once", 1, 64, True),
    ParamSpec("serve_versions", "serve_versions", "newest versions kept fetchable per robot", 1, 1000),
    ParamSpec("republish_on_start", "republish_on_start", "announce the newest trained versions at start"),
    ParamSpec("diagnostics_period_s", "diagnostics_period_s", "period of /diagnostics (s)", 0.05, 3600.0),
)


# ----------------------------------------------------------------------------------- the service


@dataclass
class _RunningJob:
    popen: subprocess.Popen[bytes]
    folder: Path
    started: float

    @property
    def result_path(self) -> Path:
        return self.folder / "result.json"

    @property
    def progress_path(self) -> Path:
        return self.folder / "progress.json"


@dataclass
class RobotTraining:
    """State of one robot: its buffer, store, running job, served publications and counters."""

    buffer: ReplayBuffer
    store: WeightStore
    seed_version: int
    last_train: float
    job: _RunningJob | None = None
    publications: collections.deque[transport.ModelPublication] = field(default_factory=collections.deque)
    jobs_started: int = 0
    published: int = 0
    refused: int = 0
    failed: int = 0
    last_version: int = 0
    last_reason: str = ""
    failures_in_row: int = 0
    retry_after: float = 0.0  # time.monotonic() before which no new job starts (FAILURE_BACKOFF_S)

    def job_failed(self, reason: str) -> float:
        """Count a failed job and set the back-off; returns the wait in seconds."""
        self.failed += 1
        self.failures_in_row += 1
        first, most = FAILURE_BACKOFF_S
        wait = min(most, first * 2.0 ** (self.failures_in_row - 1))
        self.retry_after = time.monotonic() + wait
        self.last_reason = reason
        return wait

    def job_finished(self) -> None:
        """A job ran to a result (accepted or refused): the back-off starts over."""
        self.failures_in_row = 0
        self.retry_after = 0.0


class TrainerService:
    """Algorithm 2's training half without ROS: trigger, training process, signing, publication.

    check() (called periodically) polls running jobs and starts new ones where should_train fires.
    A job is ``python -m laecips_core.training.job`` in its own session (the cloud keeps serving); an
    accepted bundle is signed (sha256, Ed25519), served over Zenoh (publish_model) and reported to
    on_published; the trained sample ids are then cleared from the buffer (refused updates clear them
    too: Algorithm 2 empties the buffer after every training, and a refused batch would otherwise
    re-trigger at once).

    Args:
        cfg: Validated configuration.
        session: Open Zenoh session.
        log: Logger.
        on_published: Called with (robot_id, announcement) after each publication.
        clock: Seconds for Algorithm 2's maxtime trigger (the trainer node passes its ROS clock, which
            follows use_sim_time). Job timeouts stay on time.monotonic() (real compute time), and the
            signed announcement's stamp stays wall-clock (when the weights were made, for humans).
    """

    def __init__(
        self,
        cfg: TrainerNodeConfig,
        session: zenoh.Session,
        log: Logger,
        on_published: Callable[[str, transport.ModelAnnouncement], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.session = session
        self.log = log
        self.on_published = on_published
        self._lock = threading.Lock()
        self.key_path, self.public_key_path = self._signing_key()
        self.robots: dict[str, RobotTraining] = {}
        seed_version = load_bundle(cfg.edge_model_path).version if cfg.edge_model_path else 0
        now = clock()
        for robot in cfg.robot_ids:
            store = WeightStore(store_dir(cfg.weights_dir, robot))
            if cfg.edge_model_path:
                seed_store(store, cfg.edge_model_path)
            elif store.latest() is None:
                raise ConfigError(
                    f"weight store {store.directory} is empty and edge_model.path is '': give the bundle "
                    "the edges start from"
                )
            buffer = ReplayBuffer(replay_path(cfg.replay_dir, robot), maxsize=10**9)
            self.robots[robot] = RobotTraining(
                buffer, store, seed_version, now, last_version=store.latest() or 0
            )

    def _signing_key(self) -> tuple[Path, Path | None]:
        if self.cfg.signing_key:
            key = Path(self.cfg.signing_key).expanduser()
            pub = key.with_suffix(".pub")
            return key, pub if pub.is_file() else None
        folder = Path(self.cfg.weights_dir) / "keys"
        key, pub = folder / f"{DEFAULT_KEY_NAME}.key", folder / f"{DEFAULT_KEY_NAME}.pub"
        if not key.is_file():
            key, pub = generate_keypair(folder, name=DEFAULT_KEY_NAME)
            self.log.info(f"created signing key {key}; give the edges trusted_public_key={pub}")
        return key, pub

    # ------------------------------------------------------------------------------- lifecycle

    def republish(self) -> None:
        """Announce each robot's newest trained version (after a restart, for late edges and clouds)."""
        for robot, state in self.robots.items():
            latest = state.store.latest()
            if latest is not None and latest > state.seed_version:
                try:
                    self._publish(robot, latest)
                except LaecipsError as err:
                    self.log.error(f"{robot}: cannot republish version {latest}: {err}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Kill running training processes, stop serving, close the buffers."""
        for robot, state in self.robots.items():
            if state.job is not None:
                self.log.warning(f"{robot}: stopping the running training job")
                _kill_job(state.job, timeout_s)
                state.job = None
            while state.publications:
                state.publications.popleft().close()
            state.buffer.close()

    # ------------------------------------------------------------------------------- the timer

    def check(self, now: float | None = None) -> None:
        """Poll running jobs, then start jobs where Algorithm 2's trigger fires (bounded in number).

        Args:
            now: Seconds on the service's clock (``clock()`` when None): the node passes its ROS clock,
                so maxtime follows ``use_sim_time``. A clock that reads 0 (sim time before the first
                /clock) or went back (a replayed bag started over) restarts the maxtime window.
        """
        now = self.clock() if now is None else now
        with self._lock:
            for robot, state in self.robots.items():
                if now < state.last_train or state.last_train <= 0.0:
                    state.last_train = now
                if state.job is not None:
                    self._poll(robot, state, now)
            running = sum(state.job is not None for state in self.robots.values())
            for robot, state in self.robots.items():
                if running >= self.cfg.max_parallel_jobs or state.job is not None:
                    continue
                if time.monotonic() < state.retry_after:
                    continue  # backing off after a failed job
                size = len(state.buffer)
                if should_train(size, state.last_train, now, self.cfg.trainer_config()):
                    self._start(robot, state, size)
                    running += 1

    def _start(self, robot: str, state: RobotTraining, size: int) -> None:
        cfg = self.cfg
        folder = store_dir(cfg.weights_dir, robot) / "job"
        folder.mkdir(parents=True, exist_ok=True)
        for stale in ("result.json", "progress.json"):
            (folder / stale).unlink(missing_ok=True)
        trainer = cfg.trainer_config()
        spec = JobSpec(
            robot_id=robot,
            replay_path=str(replay_path(cfg.replay_dir, robot)),
            store_dir=str(state.store.directory),
            reports_dir=str(reports_dir(cfg.weights_dir, robot)),
            trainer={
                "lr": trainer.lr,
                "epochs": trainer.epochs,
                "batch_size": trainer.batch_size,
                "beta": trainer.beta,
                "recipe": trainer.recipe,
                "gate": trainer.gate,
                "maxsize": trainer.maxsize,
                "maxtime_s": trainer.maxtime_s,
                "holdout_fraction": trainer.holdout_fraction,
                "min_improvement": trainer.min_improvement,
                "input_size": list(trainer.input_size),
                "seed": trainer.seed,
                "num_threads": trainer.num_threads,
            },
            max_samples=cfg.max_samples,
            validation_bag=cfg.validation_bag,
            progress_path=str(folder / "progress.json"),
        )
        (folder / "spec.json").write_text(spec.to_json(), encoding="utf-8")
        argv = [
            sys.executable, "-m", "laecips_core.training.job",
            "--spec", str(folder / "spec.json"),
            "--result", str(folder / "result.json"),
            "--threads", str(cfg.train_threads),
        ]  # fmt: skip
        if cfg.export_onnx:
            argv += ["--onnx-prior", repr(float(cfg.onnx_stream_norm_prior))]
        with open(folder / "job.log", "ab") as log:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        state.job = _RunningJob(popen, folder, time.monotonic())
        state.jobs_started += 1
        self.log.info(
            f"{robot}: Algorithm 2 trigger at {size} replay samples: training process {popen.pid} "
            f"(log {folder / 'job.log'})"
        )

    def _poll(self, robot: str, state: RobotTraining, now: float) -> None:
        job = state.job
        assert job is not None
        code = job.popen.poll()
        if code is None:
            if time.monotonic() - job.started > self.cfg.job_timeout_s:
                _kill_job(job, 2.0)
                state.job, state.last_train = None, now
                wait = state.job_failed(f"training exceeded job_timeout_s={self.cfg.job_timeout_s}; killed")
                self.log.error(f"{robot}: {state.last_reason}; next try in {wait:.0f} s")
            return
        state.job, state.last_train = None, now
        try:
            result = json.loads(job.result_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            result = {"error": f"no readable result (exit code {code}): {err}; see {job.folder / 'job.log'}"}
        if code != 0 or "error" in result:
            wait = state.job_failed(str(result.get("error", f"exit code {code}")))
            self.log.error(f"{robot}: training job failed: {state.last_reason}; next try in {wait:.0f} s")
            return
        trained_ids = [int(i) for i in result.get("trained_ids", [])]
        if result.get("accepted"):
            try:
                self._publish(robot, int(result["version"]), expected_sha256=str(result["sha256"]))
            except LaecipsError as err:
                wait = state.job_failed(f"publishing version {result['version']} failed: {err}")
                self.log.error(f"{robot}: {state.last_reason}; next try in {wait:.0f} s")
                return
            state.last_reason = str(result.get("reason", ""))
        else:
            state.refused += 1
            state.last_reason = f"update refused, not published: {result.get('reason', '')}"
            self.log.warning(f"{robot}: {state.last_reason} (report {result.get('report_path')})")
        state.job_finished()
        removed = state.buffer.clear(trained_ids)
        self.log.info(f"{robot}: trained on {len(trained_ids)} samples; cleared {removed} from the buffer")

    def _publish(self, robot: str, version: int, expected_sha256: str | None = None) -> None:
        state = self.robots[robot]
        data = state.store.path(version).read_bytes()
        digest = sha256_bytes(data)
        if expected_sha256 is not None and digest != expected_sha256:
            raise WeightsError(
                f"stored version {version} has sha256 {digest}, the job reported {expected_sha256}"
            )
        bundle = parse_bundle(data, source=str(state.store.path(version)))
        if bundle.model_name != self.cfg.edge_model_name:
            raise WeightsError(
                f"bundle is {bundle.model_name!r}, edge_model.name is {self.cfg.edge_model_name!r}"
            )
        unsigned = transport.ModelAnnouncement(
            version=version,
            sha256=digest,
            uri="",
            signer=self.cfg.signer,
            signature="",
            model_name=bundle.model_name,
            num_classes=bundle.num_classes,
            stamp=time.time(),  # wall clock on purpose: signed, read by humans only (not sim time)
        )
        # the signature covers every field of the announcement and the robot (not only the sha256)
        announcement = transport.sign_announcement(unsigned, robot, self.key_path)
        # sidecar next to the stored bundle (its sha256, signed): operators can copy both for rollbacks
        write_signature(state.store.path(version), sign_digest(self.key_path, digest))
        publication = transport.publish_model(self.session, robot, version, data, announcement)
        state.publications.append(publication)
        while len(state.publications) > self.cfg.serve_versions:
            state.publications.popleft().close()
        state.published += 1
        state.last_version = version
        self.log.info(
            f"{robot}: published version {version} (sha256 {digest[:12]}...) on "
            f"{publication.announcement.uri}"
        )
        if self.on_published is not None:
            self.on_published(robot, publication.announcement)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per-robot status for the diagnostics."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for robot, state in self.robots.items():
                phase = "idle"
                if state.job is not None:
                    try:
                        phase = json.loads(state.job.progress_path.read_text(encoding="utf-8")).get(
                            "phase", "?"
                        )
                    except (OSError, json.JSONDecodeError):
                        phase = "starting"
                out[robot] = {
                    "phase": phase,
                    "replay_size": len(state.buffer),
                    "jobs_started": state.jobs_started,
                    "published": state.published,
                    "refused": state.refused,
                    "failed": state.failed,
                    "version": state.last_version,
                    "last_reason": state.last_reason,
                }
        return out

    def reconfigure(self, cfg: TrainerNodeConfig) -> None:
        """Adopt new hyper-parameters (used from the next job on)."""
        with self._lock:
            self.cfg = cfg


def _kill_job(job: _RunningJob, timeout_s: float) -> None:
    """SIGTERM the job's process group, SIGKILL after timeout_s, and reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(job.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            job.popen.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue
