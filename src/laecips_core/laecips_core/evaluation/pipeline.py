"""Offline evaluation: LAECIPS and its baselines replayed on one stream; results.json, tables, figures."""

from __future__ import annotations

import copy
import json
import math
import platform
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from laecips_core import files, imaging
from laecips_core.algo import fusion, metrics, mining, models, state
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.predictor import EdgePredictor, miner_network
from laecips_core.algo.streamnorm import DEFAULT_STREAM_NORM_PRIOR, check_prior
from laecips_core.benchmark.generator import task_label
from laecips_core.errors import BagError, ConfigError
from laecips_core.lvm.core import DEFAULT_LVM
from laecips_core.storage import bags, bundle_loading
from laecips_core.storage.jobspec import TrainerConfig, should_train
from laecips_core.storage.replay import ReplayBuffer
from laecips_core.training.adaptation import ContinualTrainer, adapt_batchnorm
from laecips_core.training.fit import resize_images

METHODS: tuple[str, ...] = (
    "LAECIPS",
    "LAECIPS-paper",
    "DCSB",
    "MESS",
    "SM",
    "SPP",
    "EDGE",
    "EDGE-TTA",
    "CLOUD",
)
"""Every method of Table 1 in the paper's order (EDGE and CLOUD are the two extremes), plus
LAECIPS-paper (Algorithm 2 with the paper's Eq. 13 recipe and no gate: the reproduction) and EDGE-TTA
(f re-estimates its BatchNorm statistics from the stream on the robot: no cloud, no labels)."""

MINER_OF: dict[str, str] = {
    "LAECIPS": "neural",
    "LAECIPS-paper": "neural",
    "DCSB": "neural",
    "MESS": "mess",
    "SM": "sm",
    "SPP": "spp",
}
"""Miner (``mining.miner_registry`` key) deciding easy/hard for each mined method."""

UPDATING: frozenset[str] = frozenset({"LAECIPS", "LAECIPS-paper", "MESS", "SM", "SPP"})
"""Methods run inside the LAECIPS framework: hard frames go to the replay buffer and f (and h) is
retrained when Algorithm 2's trigger fires. DCSB uses the same neural miner but never updates."""

SWEEP_MINERS: tuple[str, ...] = ("neural", "mess", "sm", "spp")
UPLOAD_JPEG_QUALITY = 75
"""JPEG quality of the upload (the wire format's default); its byte count feeds the link model."""

LATENCY_FORMULA = (
    "latency = edge_s + hard * (upload_s + cloud_s + download_s); "
    "edge_s = f + h compute on the robot (measured; f only for EDGE, 0 for CLOUD); "
    "upload_s = 8 * len(jpeg_q75(x)) / bandwidth + RTT; "
    "cloud_s = f + LVM + fusion (Algorithm 1) compute on the cloud (measured on this machine); "
    "download_s = 8 * len(encode_labels(F(x))) / bandwidth; hard = 1 for uploaded frames, always for CLOUD"
)


# --------------------------------------------------------------------------------------- configuration

DEFAULT_TRAINER = TrainerConfig(lr=1e-4, epochs=3, maxsize=20)
"""Continual-training settings of the default evaluation (docs/evaluation.md "Trainer settings"): the
live trainer's recipe and gate (``TrainerConfig`` defaults), lr 1e-4 rather than the paper's 1e-3
(1e-3 overshoots on small pseudo-labelled buffers), 3 epochs and maxsize 20 so that updates come
several times per task within the 2-core time budget."""

PAPER_RECIPE: dict[str, Any] = {
    "recipe": "paper",
    "min_improvement": -1.0,
    "min_class_ratio": 0.0,
    "min_entropy_ratio": 0.0,
}
"""TrainerConfig changes of the LAECIPS-paper row: Eq. 13 on the stored F(x), every finite update kept
(Algorithm 2 as printed has no gate)."""


@dataclass(frozen=True)
class LinkModel:
    """The robot's wireless link as a rate and a round-trip time (the paper: WLAN at 4 Mbit/s).

    Attributes:
        bandwidth_mbps: Link rate in Mbit/s (10^6 bits per second), both directions.
        rtt_ms: Round-trip time in milliseconds, paid once per request.
    """

    bandwidth_mbps: float = 4.0
    rtt_ms: float = 20.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.bandwidth_mbps) and self.bandwidth_mbps > 0):
            raise ConfigError(f"bandwidth must be > 0 Mbit/s, got {self.bandwidth_mbps}")
        if not (math.isfinite(self.rtt_ms) and self.rtt_ms >= 0):
            raise ConfigError(f"RTT must be >= 0 ms, got {self.rtt_ms}")

    def upload_s(self, nbytes: int) -> float:
        """Seconds to send ``nbytes`` to the cloud, RTT included."""
        return 8.0 * nbytes / (self.bandwidth_mbps * 1e6) + self.rtt_ms / 1e3

    def download_s(self, nbytes: int) -> float:
        """Seconds to receive ``nbytes`` from the cloud (the RTT is counted in the upload)."""
        return 8.0 * nbytes / (self.bandwidth_mbps * 1e6)


@dataclass(frozen=True)
class EvalConfig:
    """Everything ``laecips eval`` needs; ``from_options`` fills unset options with the defaults.

    Attributes:
        bag: rosbag2 to replay (directory, .mcap or .db3); None uses the built-in benchmark.
        image_topic, label_topic, task_topic, classes_topic: bag topics; label/task None = absent.
        use_labels: read the label topic (False: evaluate CUR and latency only).
        task_boundaries: task start times in seconds since the bag's start (instead of a task topic).
        max_frames: stop the stream after this many frames.
        seed, frames_per_task, width, height, num_tasks: the benchmark stream (laecips_core.benchmark).
        weights: a safetensors bundle (f, h) to start from; None uses pre-trained default weights.
        weights_profile: pre-training profile (``pretraining.get_profile``: "default", "test").
        pretrain_task: pre-train f and h on this task's labelled frames; the other tasks are streamed.
        pretrain_max_frames: at most this many labelled frames of that task are used.
        num_classes: M; None takes it from the bag's class list, the weights, or the labels.
        methods: subset of METHODS.
        lvm, lvm_kwargs: the large vision model (``lvm.build_lvm``); "oracle" = upper bound only.
        fusion_order: Algorithm 1's mask order, as the cloud node's ``fusion_order``.
        stream_norm_prior: N of ``streamnorm`` for f on the robot and in the cloud, as the nodes'
            ``stream_norm_prior`` (0 = stored BatchNorm statistics only, the paper's f).
        cur_budget: target cloud upload rate when delta is chosen per miner.
        latency_budget_s: if set, delta comes from this mean-latency budget via Eq. 10 instead.
        calibrate_on: "calibration" (held-out frames of the pre-training distribution) or "stream"
            (the starting f's confidences on the evaluated stream itself; no labels used).
        delta_window: 0 keeps each miner's delta fixed (Eq. 2 as printed); N > 0 re-sets delta before
            every frame to the budget quantile of that method's own last N confidences (seeded with
            the calibration confidences), so every method keeps uploading at the budget even after
            its f and h change (see docs/evaluation.md).
        explore_rate: share of easy frames uploaded at random by the updating methods (counted in CUR).
        bandwidth_mbps, rtt_ms: link model.
        trainer: continual-training settings (Algorithm 2 trigger, Eq. 13/14); its input_size is
            replaced by the frame size scaled down to at most ``train_max_pixels`` pixels.
        train_max_pixels: pixel budget of the continual-training resolution (the CPU cost driver).
        sweep_points: delta values per miner for Fig. 8.
        panels: qualitative panels (Fig. 3 style) to draw.
        out: output folder.
        threads: torch CPU threads for the run (None keeps torch's default).
        plots: write the PNG figures.
        progress: tqdm bars.
        quick: the CI-sized run (recorded in results.json).
    """

    bag: Path | None = None
    image_topic: str = bags.DEFAULT_TOPICS.image
    label_topic: str | None = bags.DEFAULT_TOPICS.labels
    task_topic: str | None = bags.DEFAULT_TOPICS.task
    classes_topic: str = bags.DEFAULT_TOPICS.classes
    use_labels: bool = True
    task_boundaries: tuple[float, ...] | None = None
    max_frames: int | None = None
    seed: int = 0
    frames_per_task: int = 50
    width: int = 320
    height: int = 240
    num_tasks: int = 5
    weights: Path | None = None
    weights_profile: str = "default"
    pretrain_max_frames: int = 400
    pretrain_task: int | None = None
    num_classes: int | None = None
    methods: tuple[str, ...] = METHODS
    lvm: str = DEFAULT_LVM
    lvm_kwargs: dict[str, Any] = field(default_factory=dict)
    fusion_order: str = "area"
    stream_norm_prior: float = DEFAULT_STREAM_NORM_PRIOR
    cur_budget: float = 0.35
    latency_budget_s: float | None = None
    calibrate_on: Literal["calibration", "stream"] = "stream"
    calibration_frames: int = 40
    delta_window: int = 50
    explore_rate: float = 0.02
    bandwidth_mbps: float = 4.0
    rtt_ms: float = 20.0
    trainer: TrainerConfig = field(default_factory=lambda: DEFAULT_TRAINER)
    train_max_pixels: int = 240 * 320
    sweep_points: int = 41
    panels: int = 4
    out: Path = Path("eval_out")
    threads: int | None = None
    plots: bool = True
    progress: bool = True
    quick: bool = False

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"unknown method(s) {unknown}: choose from {','.join(METHODS)}")
        if not 0.0 <= self.cur_budget <= 1.0:
            raise ConfigError(f"cur_budget must be in [0, 1], got {self.cur_budget}")
        if self.delta_window < 0:
            raise ConfigError(f"delta_window must be >= 0 frames (0: fixed delta), got {self.delta_window}")
        if not 0.0 <= self.explore_rate <= 1.0:
            raise ConfigError(f"explore_rate must be in [0, 1], got {self.explore_rate}")
        if self.calibrate_on not in ("calibration", "stream"):
            raise ConfigError(f"calibrate_on must be 'calibration' or 'stream', got {self.calibrate_on!r}")
        if self.bag is None and self.task_boundaries is not None:
            raise ConfigError("task boundaries apply to a bag: give --bag or drop --task-boundaries")
        check_prior(self.stream_norm_prior)
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.num_classes is not None and not 2 <= self.num_classes <= 255:
            raise ConfigError(f"num_classes must be in 2..255 for mono8 labels, got {self.num_classes}")
        LinkModel(self.bandwidth_mbps, self.rtt_ms)

    @property
    def link(self) -> LinkModel:
        """The link model of this run."""
        return LinkModel(self.bandwidth_mbps, self.rtt_ms)

    @classmethod
    def from_options(cls, *, quick: bool = False, **options: Any) -> EvalConfig:
        """Build a config from CLI-style options; None means "default" (the quick default with ``quick``).

        Trainer options ``epochs``, ``maxsize``, ``maxtime_s`` update ``trainer``; ``sam_checkpoint``
        goes to ``lvm_kwargs["checkpoint"]``; ``weights_profile`` defaults to "test" with ``quick``.
        """
        base = quick_config() if quick else cls()
        trainer_opts = {k: options.pop(k) for k in ("epochs", "maxsize", "maxtime_s") if k in options}
        checkpoint = options.pop("sam_checkpoint", None)
        if options.get("task_boundaries") is not None:
            options["task_boundaries"] = tuple(options["task_boundaries"])
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(f"unknown evaluation option(s) {unknown}")
        explicit = {k: v for k, v in options.items() if v is not None}
        cfg = replace(base, **explicit)
        trainer_set = {k: v for k, v in trainer_opts.items() if v is not None}
        if trainer_set:
            cfg = replace(cfg, trainer=replace(cfg.trainer, **trainer_set))
        if checkpoint is not None:
            cfg = replace(cfg, lvm_kwargs={**cfg.lvm_kwargs, "checkpoint": str(checkpoint)})
        return replace(cfg, quick=quick)


def quick_config() -> EvalConfig:
    """The CI-sized configuration: 64x48 frames, 4 per task, the "test" weights, one-epoch updates."""
    return EvalConfig(
        frames_per_task=4,
        width=64,
        height=48,
        weights_profile="test",
        calibration_frames=6,
        trainer=TrainerConfig(epochs=1, maxsize=3, batch_size=4),
        sweep_points=11,
        panels=2,
        quick=True,
    )


# --------------------------------------------------------------------------------------- stream input


@dataclass(frozen=True)
class StreamFrame:
    """One frame of the evaluated stream (benchmark ``data.Frame`` and ``bags.BagFrame`` both fit).

    Attributes:
        index: position in the stream.
        task_id: task (drift phase) id.
        timestamp: capture time in seconds (the stream clock used by Algorithm 2's maxtime).
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) uint8 ground-truth class ids (255 = ignore), or None when unlabelled.
    """

    index: int
    task_id: int
    timestamp: float
    image: np.ndarray
    labels: np.ndarray | None


def _as_stream_frame(frame: Any, index: int | None = None) -> StreamFrame:
    labels = getattr(frame, "labels", None)
    return StreamFrame(
        index=int(frame.index if index is None else index),
        task_id=int(frame.task_id),
        timestamp=float(frame.timestamp),
        image=np.asarray(frame.image),
        labels=None if labels is None else np.asarray(labels),
    )


@dataclass
class StreamSource:
    """A re-iterable stream: ``frames()`` starts it again from the beginning each call.

    Attributes:
        frames: callable returning a fresh iterator of StreamFrame.
        total: number of frames, when known (progress bars only).
        class_names: the M class names, when the source knows them.
        description: what the stream is, for results.json.
    """

    frames: Callable[[], Iterator[StreamFrame]]
    total: int | None
    class_names: list[str] | None
    description: dict[str, Any]


def benchmark_source(cfg: EvalConfig, *, seed: int | None = None) -> StreamSource:
    """The built-in drifting benchmark (laecips_core.benchmark.generator) as a StreamSource."""
    from laecips_core.benchmark import generator as data

    bench = data.BenchmarkConfig(
        seed=cfg.seed if seed is None else seed,
        frames_per_task=cfg.frames_per_task,
        width=cfg.width,
        height=cfg.height,
        num_tasks=cfg.num_tasks,
    )

    stop = bench.num_frames if cfg.max_frames is None else min(cfg.max_frames, bench.num_frames)

    def frames() -> Iterator[StreamFrame]:
        for frame in data.generate_stream(bench, stop=stop):
            yield _as_stream_frame(frame)

    return StreamSource(
        frames,
        stop,
        list(data.CLASSES),
        {"kind": "benchmark", **asdict(bench)},
    )


def bag_source(cfg: EvalConfig) -> StreamSource:
    """A rosbag2 as a StreamSource; label/task topics that the bag lacks are dropped with a note.

    Raises:
        BagError: the bag, the camera topic or an explicitly named topic is missing.
    """
    assert cfg.bag is not None
    info = bags.inspect_bag(cfg.bag, cfg.classes_topic)
    notes: list[str] = []
    label_topic = cfg.label_topic if cfg.use_labels else None
    if label_topic and label_topic not in info.topics:
        if label_topic != bags.DEFAULT_TOPICS.labels:
            found = info.topics_of_type({bags.IMAGE_TYPE})
            raise BagError(f"label topic {label_topic!r} is not in {cfg.bag}; Image topics there: {found}")
        notes.append(f"no label topic {label_topic}: mIoU is unavailable, CUR and latency are computed")
        label_topic = None
    task_topic = cfg.task_topic if cfg.task_boundaries is None else None
    if task_topic and task_topic not in info.topics:
        if task_topic != bags.DEFAULT_TOPICS.task:
            raise BagError(f"task topic {task_topic!r} is not in {cfg.bag}; use --task-boundaries instead")
        notes.append(f"no task topic {task_topic} and no --task-boundaries: the whole bag is one task")
        task_topic = None
    if cfg.image_topic not in info.topics:
        found = info.topics_of_type(bags.CAMERA_TYPES)
        raise BagError(f"camera topic {cfg.image_topic!r} is not in {cfg.bag}; camera topics there: {found}")
    total = info.topics[cfg.image_topic].count
    if cfg.max_frames is not None:
        total = min(total, cfg.max_frames)
    bag = cfg.bag

    def frames() -> Iterator[StreamFrame]:
        for frame in bags.read_bag_frames(
            bag,
            cfg.image_topic,
            label_topic,
            task_topic,
            cfg.task_boundaries,
            max_frames=cfg.max_frames,
        ):
            yield _as_stream_frame(frame)

    description = {
        "kind": "rosbag2",
        "path": str(cfg.bag),
        "image_topic": cfg.image_topic,
        "label_topic": label_topic,
        "task_topic": task_topic,
        "task_boundaries": list(cfg.task_boundaries) if cfg.task_boundaries is not None else None,
        "frames": total,
        "notes": notes,
    }
    return StreamSource(frames, total, info.class_names, description)


# --------------------------------------------------------------------------------------- per-frame records


@dataclass
class TaskAccumulator:
    """Sums of one method over one task (or the whole stream)."""

    frames: int = 0
    uploads: int = 0
    labelled: int = 0
    miou_sum: float = 0.0
    latency: np.ndarray = field(default_factory=lambda: np.zeros(4))  # edge, upload, cloud, download
    conf: np.ndarray | None = None

    def add(
        self, uploaded: bool, miou: float | None, parts: metrics.LatencyParts, conf: np.ndarray | None
    ) -> None:
        """Count one frame: upload flag, frame mIoU (None when unlabelled), latency parts, confusion."""
        self.frames += 1
        self.uploads += int(uploaded)
        self.latency += (parts.edge_s, parts.upload_s, parts.cloud_s, parts.download_s)
        if miou is not None and math.isfinite(miou):
            self.labelled += 1
            self.miou_sum += miou
        if conf is not None:
            self.conf = conf.copy() if self.conf is None else self.conf + conf

    def summary(self) -> dict[str, Any]:
        """{"miou", "dataset_miou", "cur", "latency_s", "latency_parts_s", "frames", "labelled"}."""
        n = max(self.frames, 1)
        parts = self.latency / n
        return {
            "miou": self.miou_sum / self.labelled if self.labelled else None,
            "dataset_miou": float(metrics.dataset_miou(self.conf)) if self.conf is not None else None,
            "cur": self.uploads / n if self.frames else None,
            "latency_s": float(parts.sum()) if self.frames else None,
            "latency_parts_s": {
                "edge_s": float(parts[0]),
                "upload_s": float(parts[1]),
                "cloud_s": float(parts[2]),
                "download_s": float(parts[3]),
            },
            "frames": self.frames,
            "labelled": self.labelled,
        }


@dataclass
class MethodRun:
    """State and per-frame record of one method while the stream is replayed.

    Attributes:
        name: method name (METHODS).
        miner_name: miner key for mined methods, None for EDGE / CLOUD.
        delta: threshold; a frame is easy when h(f(x)) > delta (Eq. 2).
        updates: whether hard frames feed a replay buffer and trigger training (Algorithm 2).
        version: 0 while f, h are the starting ones; +1 per accepted update.
        f, h: the method's current f and h once it has its own weights (None: the starting f0, h0);
            for MESS/SM/SPP, h is the trainer's stand-in.
        predictor: the method's own EdgePredictor once it has its own weights (None: uses the shared f0).
        buffer: the replay buffer of an updating method; last_train_time: Algorithm 2's clock (s).
        target_rate: with a tracking delta, the upload rate to keep; tracker: the ``mining.TrackingDelta``
            (its window is reset at every accepted update, so a changed h or f is tracked at once).
        deltas, uploaded, versions, frame_miou, confidence: one entry per stream frame.
        train_events: one dict per trigger (frame index, accepted, report excerpt).
    """

    name: str
    miner_name: str | None
    delta: float
    updates: bool
    f: nn.Module | None = None
    h: nn.Module | None = None
    version: int = 0
    predictor: EdgePredictor | None = None
    buffer: ReplayBuffer | None = None
    last_train_time: float | None = None
    target_rate: float | None = None
    tracker: mining.TrackingDelta | None = None
    deltas: list[float] = field(default_factory=list)
    uploaded: list[bool] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    frame_miou: list[float] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    train_events: list[dict[str, Any]] = field(default_factory=list)
    train_s: float = 0.0
    tta_window: deque[np.ndarray] | None = None
    total: TaskAccumulator = field(default_factory=TaskAccumulator)
    tasks: dict[int, TaskAccumulator] = field(default_factory=dict)


@dataclass
class Panel:
    """One qualitative example (Fig. 3 style): image, ground truth, f's output, fused F(x)."""

    index: int
    task_id: int
    method: str
    image: np.ndarray
    labels: np.ndarray
    edge: np.ndarray
    fused: np.ndarray


@dataclass
class Simulation:
    """Everything ``simulate`` measured.

    Attributes:
        methods: name -> MethodRun.
        task_order: task ids in stream order.
        num_frames: frames replayed.
        class_pixels: task id -> (M,) int64 ground-truth pixel counts (Fig. 5).
        base: per-frame arrays of the starting f for Fig. 8: "edge_miou", "fused_miou", "conf_<miner>".
        timing: mean compute seconds per frame: "f_s", "lvm_s", "fusion_s", "h_s_<miner>".
        bytes: mean "upload_bytes" (JPEG) and "download_bytes" (CLOUD's fused labels) per frame.
        panels: qualitative examples.
    """

    methods: dict[str, MethodRun]
    task_order: list[int]
    num_frames: int
    class_pixels: dict[int, np.ndarray]
    base: dict[str, np.ndarray]
    timing: dict[str, float]
    bytes: dict[str, float]
    panels: list[Panel]


class _UnusedMiner(nn.Module):
    """Stand-in h for MESS/SM/SPP inside ContinualTrainer: their confidence has no weights to learn.

    ContinualTrainer always runs Eq. 14 on some h; with a single parameter that step costs nothing,
    while f is trained exactly as for LAECIPS.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, M, H, W) logits -> (B,) constant confidence sigmoid(bias)."""
        return torch.sigmoid(self.bias).expand(logits.shape[0])


class _NoMiner:
    """A miner that costs nothing: lets EdgePredictor time f alone (miners are timed separately)."""

    def confidence(self, logits: np.ndarray | torch.Tensor) -> np.ndarray:
        """(M, H, W) or (B, M, H, W) logits -> (B,) ones."""
        return np.ones(1 if logits.ndim == 3 else int(logits.shape[0]))


def _build_miner(name: str, num_classes: int, h: nn.Module | None) -> mining.Miner:
    if name == "neural":
        if h is None:
            raise ConfigError("the neural miner needs a MinerNet h: load weights that carry h")
        return mining.NeuralMiner(h)
    return mining.build_miner(name, num_classes)


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """(fn(*args), wall seconds it took)."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _frame_conf(
    pred: np.ndarray, gt: np.ndarray | None, num_classes: int
) -> tuple[float | None, np.ndarray | None]:
    if gt is None:
        return None, None
    return (
        float(metrics.frame_miou(pred, gt, num_classes)),
        metrics.confusion_matrix(pred, gt, num_classes),
    )


def simulate(
    frames: Iterable[StreamFrame],
    f0: nn.Module,
    h0: nn.Module | None,
    num_classes: int,
    *,
    methods: Sequence[str] = METHODS,
    deltas: dict[str, float],
    fuser: AssistedInference,
    trainer: TrainerConfig,
    link: LinkModel | None = None,
    explore_rate: float = 0.0,
    delta_window: int = 0,
    calibration_conf: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    workdir: str | Path | None = None,
    panels: int = 0,
    total: int | None = None,
    progress: bool = True,
    stream_norm_prior: float = DEFAULT_STREAM_NORM_PRIOR,
    log: Callable[[str], None] | None = None,
) -> Simulation:
    """Replay one stream through every method at once, in stream order (Algorithm 2 per method).

    What all methods share is computed once per frame: the starting f0's logits, every miner's
    confidence on them, the LVM masks SAM(x), the fused F(x) = Algorithm 1(f0(x), SAM(x)) and the JPEG.
    A method uses these until its first accepted update; from then on it runs its own f (and h).
    When Algorithm 2's trigger fires after a hard frame, ContinualTrainer trains on the method's
    replay buffer and, if the update is accepted, the new weights serve from the next frame on.
    Algorithm 2's clock is the stream's (frame timestamps), so runs are reproducible.

    Args:
        frames: the stream, in order.
        f0: starting edge model f (not modified).
        h0: starting MinerNet h (not modified); None when no method uses the neural miner.
        num_classes: M.
        methods: names from METHODS.
        deltas: miner name -> threshold delta (a frame is easy when its confidence > delta).
        fuser: F(x): the LVM producing class-agnostic masks and Algorithm 1 (its mask order).
        trainer: Algorithm 2 / Eq. 13-14 settings.
        link: bandwidth/RTT model (default 4 Mbit/s, 20 ms).
        explore_rate: probability that an easy frame is uploaded anyway by an updating method (the
            same random draws for every method).
        delta_window: 0: fixed deltas. N > 0: before each frame, a mined method's delta becomes
            ``mining.threshold_for_cur`` of its last N confidences at the rate its starting delta gives
            on ``calibration_conf`` (the window starts with the first N of those confidences).
        calibration_conf: miner name -> confidences of the starting f on the calibration frames
            (needed when ``delta_window`` > 0).
        seed: seed of the exploration draws.
        workdir: where the replay buffers live (a temporary folder when None).
        panels: how many qualitative examples to keep (first hard labelled frame of each task).
        total: number of frames, for the progress bar.
        progress: tqdm bar over frames.
        log: called with one line when a task starts and one per method when it ends (elapsed
            seconds, frames, CUR, model version): progress without tqdm (``laecips eval --no-progress``).
        stream_norm_prior: N of ``streamnorm``: every method's f on the robot (and the cloud's copy of
            it) normalises each frame with its own BatchNorm statistics blended with the stored ones;
            0 = stored statistics only (the paper's f).

    Returns:
        Simulation.
    """
    link = link or LinkModel()
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}: choose from {METHODS}")
    miners_needed = sorted({MINER_OF[m] for m in methods if m in MINER_OF} | set(SWEEP_MINERS))
    if h0 is None:
        miners_needed = [m for m in miners_needed if m != "neural"]
        if any(MINER_OF.get(m) == "neural" for m in methods):
            raise ConfigError("LAECIPS and DCSB need a MinerNet h: give weights that include h")
    missing = [MINER_OF[m] for m in methods if m in MINER_OF and MINER_OF[m] not in deltas]
    if missing:
        raise ConfigError(f"no threshold delta for miner(s) {sorted(set(missing))}")
    f0 = f0.eval()
    base_predictor = EdgePredictor(f0, _NoMiner(), stream_norm_prior=stream_norm_prior)
    base_miners = {name: _build_miner(name, num_classes, h0) for name in miners_needed}
    runs: dict[str, MethodRun] = {}
    for name in methods:
        runs[name] = MethodRun(
            name=name,
            miner_name=MINER_OF.get(name),
            delta=float(deltas.get(MINER_OF.get(name, ""), math.nan)),
            updates=name in UPDATING,
        )
        run = runs[name]
        if name == "EDGE-TTA":
            run.tta_window = deque(maxlen=trainer.maxsize + 1)
        if delta_window > 0 and run.miner_name is not None:
            if calibration_conf is None or run.miner_name not in calibration_conf:
                raise ConfigError("a tracking delta (delta_window > 0) needs the calibration confidences")
            seed_conf = np.asarray(calibration_conf[run.miner_name], dtype=np.float64)
            run.target_rate = float(np.mean(seed_conf <= run.delta))
            # The first N: with calibrate_on="stream" these are the stream's first frames (task 1).
            run.tracker = mining.TrackingDelta(run.target_rate, delta_window, seed_conf[:delta_window])
    rng = np.random.default_rng(seed)
    tmp = tempfile.TemporaryDirectory(prefix="laecips-replay-", dir=workdir)
    sums = {"f_s": 0.0, "lvm_s": 0.0, "fusion_s": 0.0, "upload_bytes": 0.0, "download_bytes": 0.0}
    miner_s = dict.fromkeys(miners_needed, 0.0)
    base_rec: dict[str, list[float]] = {"edge_miou": [], "fused_miou": []}
    for name in miners_needed:
        base_rec[f"conf_{name}"] = []
    class_pixels: dict[int, np.ndarray] = {}
    task_order: list[int] = []
    kept: list[Panel] = []
    panel_tasks: set[int] = set()
    n = 0
    try:
        for name, run in runs.items():
            if run.updates:
                run.buffer = ReplayBuffer(
                    Path(tmp.name) / f"{name}.sqlite", maxsize=max(10_000, trainer.maxsize * 4)
                )
        bar = tqdm(frames, total=total, desc="eval frames", unit="frame", disable=not progress)
        lines = _ProgressLines(log, list(runs))
        for frame in bar:
            n += 1
            lines.frame(frame.task_id, frame.index, runs)
            if frame.task_id not in task_order:
                task_order.append(frame.task_id)
            gt = frame.labels
            if gt is not None:
                valid = gt[gt != 255].astype(np.int64)
                counts = np.bincount(valid[valid < num_classes], minlength=num_classes)
                class_pixels[frame.task_id] = class_pixels.get(frame.task_id, 0) + counts
            # Shared work: f0, all miners on f0's logits, JPEG size, LVM masks, F(x) with f0.
            base = base_predictor.predict(frame.image)
            f_s = float(base.compute_s)
            base_conf: dict[str, float] = {}
            base_h_s: dict[str, float] = {}
            for name, miner in base_miners.items():
                conf_arr, secs = _timed(miner.confidence, base.logits)
                base_conf[name] = float(np.asarray(conf_arr).reshape(-1)[0])
                base_h_s[name] = secs
                miner_s[name] += secs
                base_rec[f"conf_{name}"].append(base_conf[name])
            jpeg_bytes = len(imaging.encode_jpeg(frame.image, quality=UPLOAD_JPEG_QUALITY))
            if fuser.needs_labels and gt is None:
                raise ConfigError("the oracle LVM needs ground-truth labels on every frame of the stream")
            masks, lvm_s = _timed(fuser.masks, frame.image, gt)
            fused0, fusion_s = _timed(fuser.fuse, base.probs, masks)
            down0 = len(imaging.encode_labels(fused0))
            sums["f_s"] += f_s
            sums["lvm_s"] += lvm_s
            sums["fusion_s"] += fusion_s
            sums["upload_bytes"] += jpeg_bytes
            sums["download_bytes"] += down0
            edge_miou0, _ = _frame_conf(base.labels, gt, num_classes)
            fused_miou0, _ = _frame_conf(fused0, gt, num_classes)
            base_rec["edge_miou"].append(math.nan if edge_miou0 is None else edge_miou0)
            base_rec["fused_miou"].append(math.nan if fused_miou0 is None else fused_miou0)
            explore = bool(rng.random() < explore_rate)
            up_s = link.upload_s(jpeg_bytes)
            for run in runs.values():
                t_method = time.perf_counter()
                if run.name == "EDGE":
                    out, uploaded, edge_out = base.labels, False, base.labels
                    parts = metrics.LatencyParts(f_s, 0.0, 0.0, 0.0)
                    conf_value = math.nan
                elif run.name == "EDGE-TTA":
                    out, tta_s = _edge_tta_step(run, frame.image, f0, base, trainer, stream_norm_prior)
                    uploaded, edge_out = False, out
                    parts = metrics.LatencyParts(tta_s, 0.0, 0.0, 0.0)
                    conf_value = math.nan
                elif run.name == "CLOUD":
                    out, uploaded, edge_out = fused0, True, base.labels
                    parts = metrics.LatencyParts(0.0, up_s, f_s + lvm_s + fusion_s, link.download_s(down0))
                    conf_value = math.nan
                else:
                    assert run.miner_name is not None
                    if run.predictor is None:
                        labels, probs, conf_value = base.labels, base.probs, base_conf[run.miner_name]
                        own_f_s, h_s = f_s, base_h_s[run.miner_name]
                    else:
                        res = run.predictor.predict(frame.image)
                        labels, probs, conf_value = res.labels, res.probs, float(res.confidence)
                        own_f_s, h_s = float(res.compute_s), 0.0
                    if run.tracker is not None:
                        run.delta = run.tracker.delta
                        hard = run.tracker.decide(conf_value) or (run.updates and explore)
                    else:
                        hard = conf_value <= run.delta or (run.updates and explore)
                    edge_out = labels
                    if hard:
                        if run.predictor is None:
                            out, fus_s, down = fused0, fusion_s, down0
                        else:
                            out, fus_s = _timed(fuser.fuse, probs, masks)
                            down = len(imaging.encode_labels(out))
                        parts = metrics.LatencyParts(
                            own_f_s + h_s, up_s, own_f_s + lvm_s + fus_s, link.download_s(down)
                        )
                    else:
                        out = labels
                        parts = metrics.LatencyParts(own_f_s + h_s, 0.0, 0.0, 0.0)
                    uploaded = bool(hard)
                miou, conf_mat = _frame_conf(out, gt, num_classes)
                run.deltas.append(run.delta)
                run.uploaded.append(uploaded)
                run.versions.append(run.version)
                run.frame_miou.append(math.nan if miou is None else miou)
                run.confidence.append(conf_value)
                run.latency.append(parts.total)
                run.total.add(uploaded, miou, parts, conf_mat)
                run.tasks.setdefault(frame.task_id, TaskAccumulator()).add(uploaded, miou, parts, conf_mat)
                if (
                    uploaded
                    and gt is not None
                    and len(kept) < panels
                    and frame.task_id not in panel_tasks
                    and run.name == _panel_method(runs)
                ):
                    kept.append(Panel(frame.index, frame.task_id, run.name, frame.image, gt, edge_out, out))
                    panel_tasks.add(frame.task_id)
                if run.updates and uploaded:
                    _append_and_maybe_train(
                        run, frame, out, masks, f0, h0, num_classes, trainer, stream_norm_prior
                    )
                lines.method(run.name, time.perf_counter() - t_method, uploaded)
            bar.set_postfix({k: r.version for k, r in runs.items() if r.updates}, refresh=False)
        lines.finish(runs)
    finally:
        for run in runs.values():
            if run.buffer is not None:
                run.buffer.close()
        tmp.cleanup()
    denom = max(n, 1)
    timing = {
        "f_s": sums["f_s"] / denom,
        "lvm_s": sums["lvm_s"] / denom,
        "fusion_s": sums["fusion_s"] / denom,
    }
    timing.update({f"h_s_{k}": v / denom for k, v in miner_s.items()})
    return Simulation(
        methods=runs,
        task_order=task_order,
        num_frames=n,
        class_pixels=class_pixels,
        base={k: np.asarray(v, dtype=np.float64) for k, v in base_rec.items()},
        timing=timing,
        bytes={
            "upload_bytes": sums["upload_bytes"] / denom,
            "download_bytes": sums["download_bytes"] / denom,
        },
        panels=kept,
    )


class _ProgressLines:
    """Progress of ``simulate`` as plain lines: a task's start, then one line per method when it ends."""

    def __init__(self, log: Callable[[str], None] | None, methods: list[str]) -> None:
        self._log = log
        self._t0 = time.perf_counter()
        self._task: int | None = None
        self._frames = 0
        self._secs = dict.fromkeys(methods, 0.0)
        self._uploads = dict.fromkeys(methods, 0)

    def frame(self, task_id: int, index: int, runs: dict[str, MethodRun]) -> None:
        """A frame of ``task_id`` is next: close the previous task when this one is new."""
        if self._log is None:
            return
        if task_id != self._task:
            self.finish(runs)
            self._task = task_id
            self._log(f"eval: task id {task_id} starts at frame {index} ({self._elapsed()})")
        self._frames += 1

    def method(self, name: str, seconds: float, uploaded: bool) -> None:
        """One method handled one frame in ``seconds``."""
        self._secs[name] += seconds
        self._uploads[name] += int(uploaded)

    def finish(self, runs: dict[str, MethodRun]) -> None:
        """One line per method for the task that just ended."""
        if self._log is None or self._task is None or not self._frames:
            return
        for name, secs in self._secs.items():
            cur = self._uploads[name] / self._frames
            self._log(
                f"eval: task id {self._task} {name}: {self._frames} frames in {secs:.1f} s, "
                f"CUR {100 * cur:.1f} %, model v{runs[name].version} ({self._elapsed()})"
            )
        self._frames = 0
        self._secs = dict.fromkeys(self._secs, 0.0)
        self._uploads = dict.fromkeys(self._uploads, 0)

    def _elapsed(self) -> str:
        return f"elapsed {time.perf_counter() - self._t0:.1f} s"


def _panel_method(runs: dict[str, MethodRun]) -> str:
    """The method whose hard frames become qualitative panels: LAECIPS, else the first mined one."""
    for name in ("LAECIPS", "DCSB", "MESS", "SM", "SPP", "CLOUD"):
        if name in runs:
            return name
    return ""


def _edge_tta_step(
    run: MethodRun, image: np.ndarray, f0: nn.Module, base: Any, trainer: TrainerConfig, prior: float
) -> tuple[np.ndarray, float]:
    """EDGE-TTA for one frame: f's labels; every ``maxsize`` frames its BatchNorm statistics are
    re-estimated on the last ``maxsize + 1`` frames (``adaptation.adapt_batchnorm``), as on a robot
    without a cloud. Returns (labels, edge seconds)."""
    assert run.tta_window is not None
    run.tta_window.append(resize_images([image], trainer.input_size)[0])
    if run.predictor is None:
        labels, secs = base.labels, float(base.compute_s)
    else:
        res = run.predictor.predict(image)
        labels, secs = res.labels, float(res.compute_s)
    if len(run.tta_window) > trainer.maxsize and len(run.uploaded) % trainer.maxsize == trainer.maxsize - 1:
        f = copy.deepcopy(run.f if run.f is not None else f0)
        t0 = time.perf_counter()
        adapt_batchnorm(f, np.stack(run.tta_window), trainer)
        run.train_s += time.perf_counter() - t0
        if run.predictor is None:
            run.predictor = EdgePredictor(
                copy.deepcopy(f0), _NoMiner(), version=run.version, stream_norm_prior=prior
            )
        run.version = run.predictor.set_weights(f.state_dict(), None)
        run.f = run.predictor.model
    return labels, secs


def _append_and_maybe_train(
    run: MethodRun,
    frame: StreamFrame,
    fused: np.ndarray,
    masks: np.ndarray,
    f0: nn.Module,
    h0: nn.Module | None,
    num_classes: int,
    trainer: TrainerConfig,
    prior: float,
) -> None:
    """Algorithm 2 after a hard frame: append (x, F(x), SAM(x)); train when the trigger fires; swap on
    accept. LAECIPS-paper trains with ``PAPER_RECIPE``."""
    assert run.buffer is not None
    run.buffer.append(
        frame.image,
        fused,
        timestamp=frame.timestamp,
        task_id=frame.task_id,
        model_version=run.version,
        masks=masks,
    )
    now = frame.timestamp
    if run.last_train_time is None:
        run.last_train_time = now
    if not should_train(len(run.buffer), run.last_train_time, now, trainer):
        return
    neural = run.miner_name == "neural"
    f = run.f if run.f is not None else f0
    if neural:
        h = run.h if run.h is not None else h0
    else:
        run.h = run.h if run.h is not None else _UnusedMiner()
        h = run.h
    assert h is not None
    samples = run.buffer.samples()
    cfg = replace(trainer, **PAPER_RECIPE) if run.name == "LAECIPS-paper" else trainer
    result, secs = _timed(ContinualTrainer(cfg).run, f, h, samples, False)
    run.train_s += secs
    run.buffer.clear([s.id for s in samples])
    run.last_train_time = now
    report = result.report
    run.train_events.append(
        {
            "frame": frame.index,
            "task_id": frame.task_id,
            "samples": len(samples),
            "accepted": bool(result.accepted),
            "signal": report.get("signal"),
            "gate": report.get("gate", {}),
            "reason": report.get("reason", ""),
            "seconds": secs,
        }
    )
    if not result.accepted:
        return
    if run.predictor is None:
        miner = (
            mining.NeuralMiner(copy.deepcopy(h))
            if neural
            else mining.build_miner(run.miner_name or "", num_classes)
        )
        run.predictor = EdgePredictor(copy.deepcopy(f0), miner, version=run.version, stream_norm_prior=prior)
    # Swapped between frames, as on the robot: the next frame is the first with the new weights.
    run.version = run.predictor.set_weights(result.f_state, result.h_state if neural else None)
    if run.tracker is not None:  # the new f and h give new confidences: delta follows them from now on
        run.tracker.reset()
    run.f = run.predictor.model
    if neural:
        run.h = miner_network(run.predictor.miner)
    else:
        state.load_state_strict(h, result.h_state, "h")


# --------------------------------------------------------------------------------------- starting model


@dataclass
class StartModel:
    """The starting edge model f (and MinerNet h) shared by every method, and where it came from.

    Attributes:
        f: edge model f (eval mode).
        h: MinerNet h, or None when the weights carry no miner network.
        num_classes: M.
        class_names: M names (generated "class_<i>" when the source has none).
        calibration: held-out frames of f's pre-training distribution (for delta), possibly empty.
        description: source of the weights, for results.json.
        stream_norm_prior: N of ``streamnorm`` with which the robot runs f (0 = stored statistics).
    """

    f: nn.Module
    h: nn.Module | None
    num_classes: int
    class_names: list[str]
    calibration: list[StreamFrame]
    description: dict[str, Any]
    stream_norm_prior: float = DEFAULT_STREAM_NORM_PRIOR


def model_from_bundle(bundle: state.Bundle) -> tuple[nn.Module, nn.Module | None]:
    """Build f (and h when the bundle has one) for a bundle and load it strictly."""
    f = models.build_edge_model(bundle.model_name, bundle.num_classes, pretrained_backbone=False)
    h = mining.MinerNet(bundle.num_classes) if bundle.h_state else None
    state.apply_bundle(bundle, f, h)
    f.eval()
    if h is not None:
        h.eval()
    return f, h


def _class_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    if names is not None and len(names) == num_classes:
        return list(names)
    return [f"class_{i}" for i in range(num_classes)]


def _benchmark_calibration(cfg: EvalConfig, height: int, width: int) -> list[StreamFrame]:
    """Held-out frames of the benchmark's first task (a seed the stream does not use), at (height, width)."""
    from laecips_core.benchmark import generator as data

    bench = data.BenchmarkConfig(
        seed=cfg.seed + CALIBRATION_SEED_OFFSET,
        frames_per_task=max(cfg.calibration_frames, 1),
        width=width,
        height=height,
        num_tasks=1,
    )
    return [_as_stream_frame(fr) for fr in data.generate_stream(bench)]


CALIBRATION_SEED_OFFSET = 7919
"""The calibration stream uses seed + this, so its frames are never frames of the evaluated stream."""


def _first_frame_size(source: StreamSource) -> tuple[int, int]:
    for frame in source.frames():
        return int(frame.image.shape[0]), int(frame.image.shape[1])
    raise BagError("the stream has no frames: check the camera topic and --max-frames")


def _scan_num_classes(source: StreamSource) -> int:
    """M from the ground truth: the largest label id (255 = ignore excluded) + 1."""
    top = -1
    for frame in source.frames():
        if frame.labels is not None:
            valid = frame.labels[frame.labels != 255]
            if valid.size:
                top = max(top, int(valid.max()))
    if top < 0:
        raise ConfigError("cannot tell the class count M: give --num-classes (no labels, no class metadata)")
    return max(top + 1, 2)


def working_size(height: int, width: int, max_pixels: int = 240 * 320) -> tuple[int, int]:
    """Training resolution (H, W) for frames of height x width: the frame size, scaled down to at most
    ``max_pixels`` pixels with the same aspect ratio (inference always runs at the frame's own size)."""
    scale = min(1.0, math.sqrt(max_pixels / float(height * width)))
    return max(8, round(height * scale)), max(8, round(width * scale))


def prepare_start_model(cfg: EvalConfig, source: StreamSource) -> tuple[StartModel, StreamSource]:
    """The starting f and h of every method, and the stream to evaluate (without the pre-training task).

    Order of precedence: ``--pretrain-task K`` (f and h pre-trained on task K's labelled frames with
    ``pretraining.pretrain``; its held-out validation block calibrates delta; task K is not streamed),
    then a ``--weights`` bundle, then the cached default weights of
    ``pretraining.ensure_default_weights(profile)`` (benchmark classes; calibration on held-out
    benchmark frames of the first task).

    Raises:
        ConfigError, WeightsError, BagError: inconsistent class counts, too few labelled frames in task K.
    """
    from laecips_core.training import pretraining  # imported here: only this step trains or fetches weights

    if cfg.pretrain_task is not None:
        return _pretrain_on_task(cfg, source)
    if cfg.weights is not None:
        path = Path(cfg.weights)
        bundle = bundle_loading.load_bundle(cfg.weights)
        description: dict[str, Any] = {"kind": "bundle", "path": str(cfg.weights), **bundle.metadata}
    else:
        path = pretraining.ensure_default_weights(profile=cfg.weights_profile, progress=cfg.progress)
        bundle = bundle_loading.load_bundle(path)
        description = {
            "kind": "default",
            "profile": cfg.weights_profile,
            "path": str(path),
            **bundle.metadata,
        }
    num_classes = bundle.num_classes
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise ConfigError(
            f"--num-classes {cfg.num_classes} but the weights are for M={num_classes}; "
            "drop --num-classes, or use --pretrain-task K to train for the new classes"
        )
    if source.class_names is not None and len(source.class_names) != num_classes:
        raise ConfigError(
            f"the stream has {len(source.class_names)} classes but the weights have M={num_classes}: "
            "use --pretrain-task K to pre-train on this data"
        )
    f, h = model_from_bundle(bundle)
    calibration: list[StreamFrame] = []
    if cfg.weights is None or source.description.get("kind") == "benchmark":
        height, width = _first_frame_size(source)
        calibration = _benchmark_calibration(cfg, height, width)
    # Names: the stream's classes topic, else the bundle's (its metadata or card), else class_<i>.
    names = _class_names(
        source.class_names or bundle_loading.bundle_class_names(path, bundle.metadata), num_classes
    )
    return StartModel(f, h, num_classes, names, calibration, description), source


def _pretrain_on_task(cfg: EvalConfig, source: StreamSource) -> tuple[StartModel, StreamSource]:
    """``--pretrain-task K``: pre-train f and h on task K's labelled frames, stream the other tasks."""
    from laecips_core.training import pretraining

    k = cfg.pretrain_task
    task_frames: list[StreamFrame] = []
    in_task = 0
    for fr in source.frames():
        if fr.task_id == k:
            in_task += 1
            if fr.labels is not None and len(task_frames) < cfg.pretrain_max_frames:
                task_frames.append(fr)
    if len(task_frames) < 3:
        raise ConfigError(
            f"task id {k} has {len(task_frames)} labelled frame(s); --pretrain-task needs >= 3 (better 50+): "
            "check the task source (--task-topic / --task-boundaries) and the label topic"
        )
    if cfg.num_classes is not None:
        num_classes = cfg.num_classes
    elif source.class_names is not None:
        num_classes = len(source.class_names)
    else:
        num_classes = _scan_num_classes(source)
    top = max(
        int(np.max(fr.labels, where=fr.labels != 255, initial=0))
        for fr in task_frames
        if fr.labels is not None
    )
    if top >= num_classes:
        raise ConfigError(
            f"task id {k} has label id {top} but M={num_classes}: give --num-classes {top + 1} or more"
        )
    profile = pretraining.get_profile(cfg.weights_profile)
    height, width = task_frames[0].image.shape[:2]
    pcfg = replace(
        profile.pretrain,
        num_classes=num_classes,
        input_size=working_size(height, width),
        seed=cfg.seed,
    )
    # Every frame kept has labels (filtered above), so they are pretraining.LabelledFrame.
    labelled = cast("list[pretraining.LabelledFrame]", task_frames)
    result = pretraining.pretrain(
        labelled,
        pcfg,
        Path(cfg.out) / "pretrain",
        cfg.progress,
        name=f"pretrain-task{k}",
        data_info={"source": source.description, "task": k, "frames": len(task_frames)},
    )
    f, h = model_from_bundle(bundle_loading.load_bundle(result.bundle_path))
    calibration = cast("list[StreamFrame]", pretraining.split_frames(labelled, pcfg)[2])

    def frames() -> Iterator[StreamFrame]:
        index = 0
        for fr in source.frames():
            if fr.task_id != k:
                yield replace(fr, index=index)
                index += 1

    total = None if source.total is None else source.total - in_task
    stream = StreamSource(frames, total, source.class_names, {**source.description, "pretrain_task": k})
    description = {
        "kind": "pretrain_task",
        "task": k,
        "frames": len(task_frames),
        "calibration_frames": len(calibration),
        "profile": cfg.weights_profile,
        "num_classes": num_classes,
        "bundle": str(result.bundle_path),
        "metrics": {key: result.metrics.get(key) for key in ("f_val", "miner_val", "n_frames")},
    }
    names = _class_names(source.class_names, num_classes)
    return StartModel(f, h, num_classes, names, list(calibration), description), stream


# --------------------------------------------------------------------------------------- thresholds


def starting_confidences(
    start: StartModel, frames: Iterable[StreamFrame], miners: Sequence[str], *, progress: bool = False
) -> dict[str, np.ndarray]:
    """Each miner's confidence h(f0(x)) on frames, with the starting f0 (miner name -> (N,) float64)."""
    predictor = EdgePredictor(start.f, _NoMiner(), stream_norm_prior=start.stream_norm_prior)
    built = {name: _build_miner(name, start.num_classes, start.h) for name in miners}
    out: dict[str, list[float]] = {name: [] for name in miners}
    for frame in tqdm(frames, desc="miner confidences", unit="frame", disable=not progress, leave=False):
        logits = predictor.predict(frame.image).logits
        for name, miner in built.items():
            out[name].append(float(np.asarray(miner.confidence(logits)).reshape(-1)[0]))
    return {name: np.asarray(v, dtype=np.float64) for name, v in out.items()}


def choose_deltas(
    cfg: EvalConfig,
    start: StartModel,
    stream: StreamSource,
    miners: Sequence[str],
    fuser: AssistedInference,
) -> tuple[dict[str, float], dict[str, Any], dict[str, np.ndarray]]:
    """delta per miner, so that every method is compared at the same budget (section "Threshold selection").

    With a CUR budget c, delta_m is the c-quantile of miner m's confidences of the starting f on the
    calibration frames (``mining.threshold_for_cur``): a fraction c of those frames has confidence
    <= delta_m and would be uploaded. With a latency budget, Eq. 10 turns the budget into the largest
    admissible upload rate from the measured edge delay d1 and cloud delay d0 on the calibration frames
    (``mining.threshold_for_latency``). Calibration frames are held-out frames of f's pre-training
    distribution, or the evaluated stream itself with ``calibrate_on="stream"`` (no labels used).

    Returns:
        (deltas, info, confidences): info records the budget, the frames used and the calibration CUR;
        confidences are each miner's values on the calibration frames (seed of a tracking delta).
    """
    info: dict[str, Any] = {"calibrate_on": cfg.calibrate_on, "notes": []}
    frames: Sequence[StreamFrame] | Iterable[StreamFrame]
    if cfg.calibrate_on == "calibration" and start.calibration:
        frames = start.calibration
        info["frames"] = len(start.calibration)
    else:
        if cfg.calibrate_on == "calibration":
            info["notes"].append(
                "no held-out pre-training frames for these weights: calibrated on the stream"
            )
        info["calibrate_on"] = "stream"
        frames = stream.frames()
    conf = starting_confidences(start, frames, miners, progress=cfg.progress)
    info["frames"] = int(len(next(iter(conf.values())))) if conf else 0
    link = cfg.link
    if cfg.latency_budget_s is not None:
        d1, d0 = _calibration_delays(start, start.calibration or [], fuser, link)
        info.update({"latency_budget_s": cfg.latency_budget_s, "d_edge_s": d1, "d_cloud_s": d0})
        deltas = {
            m: float(mining.threshold_for_latency(conf[m], d1, d0, cfg.latency_budget_s)) for m in miners
        }
    else:
        info["cur_budget"] = cfg.cur_budget
        deltas = {m: float(mining.threshold_for_cur(conf[m], cfg.cur_budget)) for m in miners}
    info["calibration_cur"] = {m: float(np.mean(conf[m] <= deltas[m])) for m in miners}
    info["deltas"] = deltas
    info["delta_window"] = cfg.delta_window
    return deltas, info, conf


def _calibration_delays(
    start: StartModel, frames: Sequence[StreamFrame], fuser: AssistedInference, link: LinkModel
) -> tuple[float, float]:
    """Mean measured delay d1 of an edge frame (f) and d0 of an uploaded one (f, upload, cloud f + LVM +
    fusion, download) on the calibration frames, seconds (Eq. 9/10)."""
    if not frames:
        raise ConfigError("a latency budget needs calibration frames: use --cur-budget with these weights")
    predictor = EdgePredictor(start.f, _NoMiner(), stream_norm_prior=start.stream_norm_prior)
    d1, d0 = [], []
    for frame in frames:
        res = predictor.predict(frame.image)
        masks, lvm_s = _timed(fuser.masks, frame.image, frame.labels)
        fused, fusion_s = _timed(fuser.fuse, res.probs, masks)
        jpeg = len(imaging.encode_jpeg(frame.image, quality=UPLOAD_JPEG_QUALITY))
        d1.append(res.compute_s)
        d0.append(
            res.compute_s
            + link.upload_s(jpeg)
            + res.compute_s
            + lvm_s
            + fusion_s
            + link.download_s(len(imaging.encode_labels(fused)))
        )
    return float(np.mean(d1)), float(np.mean(d0))


# --------------------------------------------------------------------------------------- Fig. 8 sweep


def sweep_curves(base: dict[str, np.ndarray], miners: Sequence[str], points: int) -> dict[str, Any]:
    """mIoU vs CUR of each miner with the starting f while delta sweeps (Fig. 8; no updates).

    For each delta, a frame's output is F(x) when its confidence <= delta, else f(x); the curve point
    is (fraction uploaded, mean frame mIoU). An ORACLE curve (upload the frames with the largest
    mIoU gain of F(x) over f(x) first) bounds what any miner can reach.

    Returns:
        {miner: {"delta": [...], "cur": [...], "miou": [...], "auc": float}, "ORACLE": {...}};
        empty when no frame has labels.
    """
    edge, fused = base["edge_miou"], base["fused_miou"]
    labelled = np.isfinite(edge) & np.isfinite(fused)
    if not labelled.any():
        return {}
    edge, fused = edge[labelled], fused[labelled]
    curves: dict[str, Any] = {}
    for name in miners:
        key = f"conf_{name}"
        if key not in base:
            continue
        conf = base[key][labelled]
        qs = np.unique(np.quantile(conf, np.linspace(0.0, 1.0, points)))
        deltas = np.concatenate([[-np.inf], qs])
        cur, miou = [], []
        for d in deltas:
            hard = conf <= d
            cur.append(float(hard.mean()))
            miou.append(float(np.where(hard, fused, edge).mean()))
        curves[name] = {
            "delta": [float(d) if np.isfinite(d) else None for d in deltas],
            "cur": cur,
            "miou": miou,
            "auc": _auc(cur, miou),
        }
    order = np.argsort(-(fused - edge), kind="stable")
    cur, miou = [0.0], [float(edge.mean())]
    for k in range(1, len(order) + 1):
        hard = np.zeros(len(order), bool)
        hard[order[:k]] = True
        cur.append(k / len(order))
        miou.append(float(np.where(hard, fused, edge).mean()))
    curves["ORACLE"] = {"cur": cur, "miou": miou, "auc": _auc(cur, miou)}
    return curves


def _auc(cur: Sequence[float], miou: Sequence[float]) -> float:
    """Area under mIoU(CUR) over CUR in [0, 1] (step-free linear interpolation; mean mIoU over budgets)."""
    x = np.asarray(cur, dtype=np.float64)
    y = np.asarray(miou, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    grid = np.linspace(0.0, 1.0, 101)
    return float(np.interp(grid, x, y).mean())


# --------------------------------------------------------------------------------------- the whole run


def task_labels(
    task_ids: Iterable[int], *, pretrain_task: int | None, zero_based: bool | None
) -> dict[int, str]:
    """The paper's names of the task ids of a run ("task 1", "task 2", ...).

    The built-in benchmark and time boundaries number tasks from 0 (task id 0 is "task 1"); a bag's task
    topic may already count from 1. Unless told (``zero_based``), ids are taken as 0-based when the
    smallest id of the run (the streamed ones and the pre-training task) is 0, else as the task numbers.

    Args:
        task_ids: The streamed task ids.
        pretrain_task: The task f and h were pre-trained on (not streamed), or None.
        zero_based: True/False when the source says how it counts; None to infer it.
    """
    ids = sorted(set(int(t) for t in task_ids))
    if zero_based is None:
        known = ids + ([int(pretrain_task)] if pretrain_task is not None else [])
        zero_based = not known or min(known) == 0
    return {t: f"task {t + 1}" if zero_based else f"task {t}" for t in ids}


def run_evaluation(cfg: EvalConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``laecips eval``: stream, starting model, thresholds, every method, then results and figures.

    Writes into ``cfg.out``: results.json, table1.md, table2.md and (with ``cfg.plots``)
    fig5_class_frequency.png, fig8_miou_vs_cur.png, fig9_per_task.png, qualitative.png.

    Args:
        cfg: What to evaluate.
        log: Called with progress lines (each step, one line per task and per method with the elapsed
            time); None = silent (the tqdm bars of ``cfg.progress`` only).

    Returns:
        The results dictionary that was written to results.json.
    """
    t_start = time.perf_counter()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _line: None)

    def step(what: str) -> None:
        say(f"eval: {what} (elapsed {time.perf_counter() - t_start:.1f} s)")

    source = bag_source(cfg) if cfg.bag is not None else benchmark_source(cfg)
    step(
        "preparing the starting f and h"
        + (f" (pre-training on task id {cfg.pretrain_task})" if cfg.pretrain_task is not None else "")
    )
    start, stream = prepare_start_model(cfg, source)
    start = replace(start, stream_norm_prior=cfg.stream_norm_prior)
    fuser = AssistedInference.build(cfg.lvm, cfg.lvm_kwargs, order=cast(fusion.MaskOrder, cfg.fusion_order))
    miners = [m for m in SWEEP_MINERS if m != "neural" or start.h is not None]
    step("choosing delta for the miners " + ", ".join(miners))
    deltas, threshold_info, calibration_conf = choose_deltas(cfg, start, stream, miners, fuser)
    trainer = replace(
        cfg.trainer, input_size=working_size(*_first_frame_size(stream), max_pixels=cfg.train_max_pixels)
    )
    count = "all" if stream.total is None else str(stream.total)
    step(f"streaming {count} frames through {', '.join(cfg.methods)}")
    t_sim = time.perf_counter()
    sim = simulate(
        stream.frames(),
        start.f,
        start.h,
        start.num_classes,
        methods=cfg.methods,
        deltas=deltas,
        fuser=fuser,
        trainer=trainer,
        link=cfg.link,
        explore_rate=cfg.explore_rate,
        delta_window=cfg.delta_window,
        calibration_conf=calibration_conf,
        seed=cfg.seed,
        workdir=out,
        panels=cfg.panels,
        total=stream.total,
        progress=cfg.progress,
        stream_norm_prior=cfg.stream_norm_prior,
        log=log,
    )
    sim_s = time.perf_counter() - t_sim
    results = build_results(cfg, sim, start, stream, deltas, threshold_info)
    results["config"]["trainer"] = asdict(trainer)
    results["timing"]["simulate_wall_s"] = sim_s
    zero_based = True if source.description.get("kind") == "benchmark" else None
    labels = task_labels(sim.task_order, pretrain_task=cfg.pretrain_task, zero_based=zero_based)
    results["task_labels"] = {str(t): name for t, name in labels.items()}
    write_tables(results, out)
    if cfg.plots:
        from laecips_core.evaluation import plots

        step("writing the figures")
        plots.write_all(
            results, sim.panels, start.class_names, start.num_classes, out, progress=cfg.progress
        )
    step("done")
    results["timing"]["wall_s"] = time.perf_counter() - t_start
    files.atomic_write_bytes(
        out / "results.json", (json.dumps(results, indent=2, default=_json) + "\n").encode()
    )
    return results


def _json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, Paths -> str."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def build_results(
    cfg: EvalConfig,
    sim: Simulation,
    start: StartModel,
    stream: StreamSource,
    deltas: dict[str, float],
    threshold_info: dict[str, Any],
) -> dict[str, Any]:
    """The results.json dictionary (schema in docs/evaluation.md)."""
    labelled = any(run.total.labelled for run in sim.methods.values())
    messages = list(stream.description.get("notes", [])) + list(threshold_info.get("notes", []))
    if not labelled:
        messages.append(
            "mIoU unavailable: the stream has no ground-truth labels (CUR and latency are computed)"
        )
    methods: dict[str, Any] = {}
    for name, run in sim.methods.items():
        entry = run.total.summary()
        entry["tasks"] = [{"task_id": t, **run.tasks[t].summary()} for t in sim.task_order if t in run.tasks]
        entry.update(
            {
                "miner": run.miner_name,
                "delta": deltas.get(run.miner_name) if run.miner_name else None,
                "delta_mean": float(np.mean(run.deltas)) if run.miner_name and run.deltas else None,
                "delta_last": run.delta if run.miner_name else None,
                "updates": run.updates,
                "final_version": run.version,
                "train_events": run.train_events,
                "train_s": run.train_s,
                "latency_percentiles_s": metrics.percentiles(run.latency, (50, 95)),
            }
        )
        methods[name] = entry
    curves = sweep_curves(sim.base, [m for m in SWEEP_MINERS if f"conf_{m}" in sim.base], cfg.sweep_points)
    results: dict[str, Any] = {
        "methods": methods,
        "dataset_miou": {name: m["dataset_miou"] for name, m in methods.items()},
        "miou_available": labelled,
        "messages": messages,
        "task_order": sim.task_order,
        "num_frames": sim.num_frames,
        "latency": {
            "formula": LATENCY_FORMULA,
            "bandwidth_mbps": cfg.bandwidth_mbps,
            "rtt_s": cfg.rtt_ms / 1e3,
            "upload_jpeg_quality": UPLOAD_JPEG_QUALITY,
            "mean_upload_bytes": sim.bytes["upload_bytes"],
            "mean_download_bytes": sim.bytes["download_bytes"],
            "mean_compute_s": sim.timing,
            "parts_s": {name: m["latency_parts_s"] for name, m in methods.items()},
        },
        "thresholds": threshold_info,
        "fig8": curves,
        "class_frequency": {
            str(t): (sim.class_pixels[t] / max(int(sim.class_pixels[t].sum()), 1)).tolist()
            for t in sim.task_order
            if t in sim.class_pixels
        },
        "class_names": start.class_names,
        "model": start.description,
        "stream": stream.description,
        "targets": check_targets(methods, curves),
        "config": _config_dict(cfg),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        "timing": {},
    }
    return cast(dict[str, Any], _clean(results))


def _config_dict(cfg: EvalConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["trainer"] = asdict(cfg.trainer)
    return d


def check_targets(methods: dict[str, Any], curves: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets on the results: differences in mIoU points, CUR, latency ratio, Fig. 8 order."""

    def get(name: str, key: str) -> float | None:
        value = methods.get(name, {}).get(key)
        return None if value is None else float(value)

    checks: dict[str, Any] = {}

    def add(key: str, value: float | None, ok: Callable[[float], bool], goal: str) -> None:
        checks[key] = {"value": value, "goal": goal, "met": None if value is None else bool(ok(value))}

    lae, edge, dcsb, cloud = (get(n, "miou") for n in ("LAECIPS", "EDGE", "DCSB", "CLOUD"))
    tta = get("EDGE-TTA", "miou")
    add(
        "laecips_minus_edge_tta_points",
        None if lae is None or tta is None else 100 * (lae - tta),
        lambda v: v >= 2,
        ">= +2",
    )
    for name in ("MESS", "SM", "SPP"):
        other = get(name, "miou")
        add(
            f"laecips_minus_{name.lower()}_points",
            None if lae is None or other is None else 100 * (lae - other),
            lambda v: v > 0,
            "> 0",
        )
    lae_tasks = {t["task_id"]: t for t in methods.get("LAECIPS", {}).get("tasks", [])}
    dcsb_tasks = {t["task_id"]: t for t in methods.get("DCSB", {}).get("tasks", [])}
    gaps = [
        100 * (lae_tasks[t]["miou"] - dcsb_tasks[t]["miou"])
        for t in lae_tasks
        if t in dcsb_tasks and lae_tasks[t].get("miou") is not None and dcsb_tasks[t].get("miou") is not None
    ]
    add("laecips_minus_dcsb_worst_task_points", min(gaps) if gaps else None, lambda v: v >= -2, ">= -2")
    add(
        "laecips_minus_edge_points",
        None if lae is None or edge is None else 100 * (lae - edge),
        lambda v: v >= 10,
        ">= +10",
    )
    add(
        "laecips_minus_dcsb_points",
        None if lae is None or dcsb is None else 100 * (lae - dcsb),
        lambda v: v >= 3,
        ">= +3",
    )
    add(
        "cloud_minus_laecips_points",
        None if lae is None or cloud is None else 100 * (cloud - lae),
        lambda v: v <= 5,
        "<= 5",
    )
    add("laecips_cur", get("LAECIPS", "cur"), lambda v: v <= 0.40, "<= 0.40")
    lat_l, lat_c = get("LAECIPS", "latency_s"), get("CLOUD", "latency_s")
    add(
        "latency_ratio_laecips_cloud",
        None if not lat_l or not lat_c else lat_l / lat_c,
        lambda v: v <= 0.55,
        "<= 0.55",
    )
    if "neural" in curves:
        others = [curves[m]["auc"] for m in ("mess", "sm", "spp") if m in curves]
        margin = curves["neural"]["auc"] - max(others) if others else None
        add(
            "fig8_neural_auc_minus_best_other",
            margin,
            lambda v: v > 0,
            "> 0 (neural curve above MESS/SM/SPP)",
        )
    return checks


# --------------------------------------------------------------------------------------- tables and text


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table1_markdown(results: dict[str, Any]) -> str:
    """Table 1 of the paper: mIoU / CUR / latency per method over the whole stream."""
    lines = [
        "# Table 1: average performance over the stream",
        "",
        "mIoU = mean frame mIoU (Eq. 25); dataset mIoU = over the stream's confusion matrix; "
        "CUR = cloud upload rate (Eq. 26); latency = mean per-frame delay (Eq. 27, link model below).",
        "",
        "| Method | mIoU | dataset mIoU | CUR | latency (s) | edge (s) | upload (s) | cloud (s) "
        "| download (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results["methods"].items():
        p = m["latency_parts_s"]
        lines.append(
            f"| {name} | {_num(m['miou'])} | {_num(m['dataset_miou'])} | {_pct(m['cur'])} | "
            f"{_num(m['latency_s'])} | {_num(p['edge_s'], 4)} | {_num(p['upload_s'], 4)} | "
            f"{_num(p['cloud_s'], 4)} | {_num(p['download_s'], 4)} |"
        )
    lat = results["latency"]
    lines += [
        "",
        f"Link: {lat['bandwidth_mbps']} Mbit/s, RTT {1e3 * lat['rtt_s']:.0f} ms; mean upload "
        f"{lat['mean_upload_bytes'] / 1024:.1f} KiB (JPEG q{lat['upload_jpeg_quality']}), mean fused-label "
        f"download {lat['mean_download_bytes'] / 1024:.1f} KiB.",
        "",
        f"Formula: {lat['formula']}",
    ]
    if results["messages"]:
        lines += ["", *[f"Note: {msg}" for msg in results["messages"]]]
    return "\n".join(lines) + "\n"


def table2_markdown(results: dict[str, Any]) -> str:
    """Table 2 of the paper: mIoU and CUR of every method on each task, in stream order."""
    tasks = results["task_order"]
    names = {t: result_task_label(results, t) for t in tasks}
    head = "| Method | " + " | ".join(f"{names[t]} mIoU | {names[t]} CUR" for t in tasks) + " |"
    counted = all(names[t] == f"task {t + 1}" for t in tasks)
    lines = [
        "# Table 2: per-task mIoU and CUR",
        "",
        "Tasks are numbered from 1 as in the paper: "
        + (
            "task t is task id t - 1 in the stream or bag."
            if counted
            else "the bag's task ids already count from 1 and are used as they are."
        ),
        "",
        head,
        "|---|" + "---|---|" * len(tasks),
    ]
    for name, m in results["methods"].items():
        by_task = {t["task_id"]: t for t in m["tasks"]}
        cells = []
        for t in tasks:
            row = by_task.get(t, {})
            cells.append(f"{_num(row.get('miou'))} | {_pct(row.get('cur'))}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def result_task_label(results: dict[str, Any], task_id: int) -> str:
    """The name of a task id in a results dictionary (its ``task_labels``; "task <id + 1>" without)."""
    return str(results.get("task_labels", {}).get(str(task_id), task_label(task_id)))


def write_tables(results: dict[str, Any], out: Path) -> None:
    """Write table1.md and table2.md into ``out``."""
    files.atomic_write_bytes(out / "table1.md", table1_markdown(results).encode())
    files.atomic_write_bytes(out / "table2.md", table2_markdown(results).encode())


def format_summary(results: dict[str, Any]) -> str:
    """A few lines for the terminal: per method mIoU, CUR, latency, and the targets."""
    lines = [f"{'method':8s} {'mIoU':>7s} {'CUR':>8s} {'latency':>9s}"]
    for name, m in results["methods"].items():
        lines.append(f"{name:8s} {_num(m['miou']):>7s} {_pct(m['cur']):>8s} {_num(m['latency_s']):>8s}s")
    for msg in results["messages"]:
        lines.append(f"note: {msg}")
    for key, check in results["targets"].items():
        value = check["value"]
        shown = "n/a" if value is None else f"{value:.3f}"
        lines.append(f"target {key}: {shown} (goal {check['goal']}) met={check['met']}")
    return "\n".join(lines)
