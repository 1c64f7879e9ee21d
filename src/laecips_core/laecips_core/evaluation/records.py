"""What ``simulate`` records per method and frame: CUR (Eq. 26), mIoU (Eq. 25), latency (Eq. 27), versions.

``MethodRun`` is one method's state while the stream replays (its f, h, delta of Eq. 2, Algorithm 2's
replay buffer and clock); ``TaskAccumulator`` sums a method's frames per task; ``SharedFrame`` is the
per-frame work all methods share (f0(x), h, SAM(x), F(x)) and ``MethodOutput`` one method's answer;
``StreamRecord`` collects the rest (Fig. 5 class pixels, Fig. 8 per-frame arrays, Fig. 3 panels) into
the ``Simulation``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from laecips_core.algo import metrics, thresholds
from laecips_core.algo.frames import EdgeResult
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.evaluation.sources import StreamFrame
from laecips_core.storage.replay import ReplayBuffer


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
        target_rate: with a tracking delta, the upload rate to keep; tracker: the ``thresholds.TrackingDelta``
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
    tracker: thresholds.TrackingDelta | None = None
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

    def record(
        self,
        task_id: int,
        uploaded: bool,
        miou: float | None,
        conf: np.ndarray | None,
        parts: metrics.LatencyParts,
        confidence: float,
    ) -> None:
        """Append one frame: the delta and version it ran with, upload flag, frame mIoU (None when
        unlabelled), confusion matrix, latency parts and the miner's confidence (NaN without a miner)."""
        self.deltas.append(self.delta)
        self.uploaded.append(uploaded)
        self.versions.append(self.version)
        self.frame_miou.append(math.nan if miou is None else miou)
        self.confidence.append(confidence)
        self.latency.append(parts.total)
        self.total.add(uploaded, miou, parts, conf)
        self.tasks.setdefault(task_id, TaskAccumulator()).add(uploaded, miou, parts, conf)


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


@dataclass(frozen=True)
class SharedFrame:
    """The work that all methods share for one frame, done once with the starting f0.

    Attributes:
        base: f0's EdgeResult (labels, probs, logits, compute_s).
        conf, h_s: miner name -> its confidence on f0's logits, and the seconds it took.
        masks: SAM(x), (K, H, W) bool; lvm_s: the seconds they took.
        fused: F(x) = Algorithm 1(f0(x), SAM(x)), (H, W) uint8; fusion_s: its seconds.
        upload_bytes: the frame as JPEG (``UPLOAD_JPEG_QUALITY``); download_bytes: ``fused`` encoded.
    """

    base: EdgeResult
    conf: dict[str, float]
    h_s: dict[str, float]
    masks: np.ndarray
    lvm_s: float
    fused: np.ndarray
    fusion_s: float
    upload_bytes: int
    download_bytes: int

    @property
    def f_s(self) -> float:
        """Seconds of f0 on the robot for this frame."""
        return float(self.base.compute_s)


@dataclass(frozen=True)
class MethodOutput:
    """One method's answer for one frame: the delivered labels (f(x) or F(x)), f's labels on the robot,
    whether the frame was uploaded, its latency parts (Eq. 27) and the miner's confidence (NaN: none)."""

    out: np.ndarray
    edge: np.ndarray
    uploaded: bool
    parts: metrics.LatencyParts
    confidence: float


def frame_score(
    pred: np.ndarray, gt: np.ndarray | None, num_classes: int
) -> tuple[float | None, np.ndarray | None]:
    """(frame mIoU, (M, M) confusion matrix) of ``pred`` against ``gt``; (None, None) when unlabelled."""
    if gt is None:
        return None, None
    return (
        float(metrics.frame_miou(pred, gt, num_classes)),
        metrics.confusion_matrix(pred, gt, num_classes),
    )


class StreamRecord:
    """What ``simulate`` records besides the methods: task order, class pixels (Fig. 5), the starting f's
    per-frame mIoU and confidences (Fig. 8), compute seconds and bytes, and the qualitative panels."""

    def __init__(self, miners: Sequence[str], panels: int, panel_method: str) -> None:
        self.frames = 0
        self.task_order: list[int] = []
        self.class_pixels: dict[int, np.ndarray] = {}
        self.sums = {"f_s": 0.0, "lvm_s": 0.0, "fusion_s": 0.0, "upload_bytes": 0.0, "download_bytes": 0.0}
        self.miner_s = dict.fromkeys(miners, 0.0)
        self.base: dict[str, list[float]] = {"edge_miou": [], "fused_miou": []}
        for name in miners:
            self.base[f"conf_{name}"] = []
        self.panels: list[Panel] = []
        self._max_panels = panels
        self._panel_method = panel_method
        self._panel_tasks: set[int] = set()

    def count(self, frame: StreamFrame, num_classes: int) -> None:
        """A new frame: its task (in stream order) and its ground-truth pixels per class."""
        self.frames += 1
        if frame.task_id not in self.task_order:
            self.task_order.append(frame.task_id)
        gt = frame.labels
        if gt is not None:
            valid = gt[gt != 255].astype(np.int64)
            counts = np.bincount(valid[valid < num_classes], minlength=num_classes)
            self.class_pixels[frame.task_id] = self.class_pixels.get(frame.task_id, 0) + counts

    def add_shared(self, shared: SharedFrame, gt: np.ndarray | None, num_classes: int) -> None:
        """The shared work's seconds and bytes, each miner's confidence, f0(x)'s and F(x)'s frame mIoU."""
        for name, secs in shared.h_s.items():
            self.miner_s[name] += secs
            self.base[f"conf_{name}"].append(shared.conf[name])
        self.sums["f_s"] += shared.f_s
        self.sums["lvm_s"] += shared.lvm_s
        self.sums["fusion_s"] += shared.fusion_s
        self.sums["upload_bytes"] += shared.upload_bytes
        self.sums["download_bytes"] += shared.download_bytes
        edge_miou, _ = frame_score(shared.base.labels, gt, num_classes)
        fused_miou, _ = frame_score(shared.fused, gt, num_classes)
        self.base["edge_miou"].append(math.nan if edge_miou is None else edge_miou)
        self.base["fused_miou"].append(math.nan if fused_miou is None else fused_miou)

    def maybe_keep_panel(self, method: str, frame: StreamFrame, output: MethodOutput) -> None:
        """Keep the first uploaded labelled frame of each task of the panel method (up to ``panels``)."""
        if (
            output.uploaded
            and frame.labels is not None
            and len(self.panels) < self._max_panels
            and frame.task_id not in self._panel_tasks
            and method == self._panel_method
        ):
            self.panels.append(
                Panel(frame.index, frame.task_id, method, frame.image, frame.labels, output.edge, output.out)
            )
            self._panel_tasks.add(frame.task_id)

    def simulation(self, runs: dict[str, MethodRun]) -> Simulation:
        """The Simulation: means per frame of the seconds and bytes, the per-frame arrays."""
        denom = max(self.frames, 1)
        timing = {
            "f_s": self.sums["f_s"] / denom,
            "lvm_s": self.sums["lvm_s"] / denom,
            "fusion_s": self.sums["fusion_s"] / denom,
        }
        timing.update({f"h_s_{k}": v / denom for k, v in self.miner_s.items()})
        return Simulation(
            methods=runs,
            task_order=self.task_order,
            num_frames=self.frames,
            class_pixels=self.class_pixels,
            base={k: np.asarray(v, dtype=np.float64) for k, v in self.base.items()},
            timing=timing,
            bytes={
                "upload_bytes": self.sums["upload_bytes"] / denom,
                "download_bytes": self.sums["download_bytes"] / denom,
            },
            panels=self.panels,
        )
