"""What an evaluation run is: the methods of Table 1, the link model of Eq. 27 and ``laecips eval``'s options.

The method table says which miner h (Eq. 2) decides easy/hard for each method and which methods run
Algorithm 2's updates; ``LinkModel`` is the robot's link in the latency of Eq. 27.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR, check_prior
from laecips_core.errors import ConfigError
from laecips_core.lvm.registry import DEFAULT_LVM
from laecips_core.storage import bags
from laecips_core.storage.jobspec import TrainerConfig

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
        weights_profile: pre-training profile (``profiles.get_profile``: "default", "test").
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


def config_dict(cfg: EvalConfig) -> dict[str, Any]:
    """``cfg`` as plain data for results.json (the trainer settings as a dict too)."""
    d = asdict(cfg)
    d["trainer"] = asdict(cfg.trainer)
    return d
