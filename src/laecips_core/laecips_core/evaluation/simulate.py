"""The replay of one stream through every method at once: Eq. 2's easy/hard split, F(x) for hard frames,
Algorithm 2's updates per method, and what Table 1/2 and Fig. 5, 8, 9 are computed from.

``simulate`` runs these named steps: ``miners_needed`` and ``make_runs`` once, then per frame
``shared_step`` (f0, every miner h, SAM(x) and Algorithm 1's F(x) once for all methods), and per method
``method_step`` (its answer and latency parts, Eq. 27), ``MethodRun.record`` and
``retrain.append_and_maybe_train`` (Algorithm 2).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from laecips_core import image_codecs
from laecips_core.algo import metrics, mining, thresholds
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.errors import ConfigError
from laecips_core.evaluation.miners import NoMiner, miner_for, timed
from laecips_core.evaluation.records import (
    MethodOutput,
    MethodRun,
    SharedFrame,
    Simulation,
    StreamRecord,
    frame_score,
)
from laecips_core.evaluation.retrain import append_and_maybe_train, edge_tta_step
from laecips_core.evaluation.run_config import (
    METHODS,
    MINER_OF,
    SWEEP_MINERS,
    UPDATING,
    UPLOAD_JPEG_QUALITY,
    LinkModel,
)
from laecips_core.evaluation.sources import StreamFrame
from laecips_core.storage.jobspec import TrainerConfig
from laecips_core.storage.replay import ReplayBuffer


@dataclass(frozen=True)
class Replay:
    """What every step of a replay needs besides the frame: the starting f0 and h0, M, F(x), the trainer
    settings, the link model and N of ``streamnorm``."""

    f0: nn.Module
    h0: nn.Module | None
    num_classes: int
    fuser: AssistedInference
    trainer: TrainerConfig
    link: LinkModel
    stream_norm_prior: float


def miners_needed(methods: Sequence[str], deltas: dict[str, float], h0: nn.Module | None) -> list[str]:
    """The miners run on every frame (those of ``methods`` and of the Fig. 8 sweep), sorted.

    Raises:
        ConfigError: an unknown method, a neural-miner method without h0, a mined method without delta.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}: choose from {METHODS}")
    needed = sorted({MINER_OF[m] for m in methods if m in MINER_OF} | set(SWEEP_MINERS))
    if h0 is None:
        needed = [m for m in needed if m != "neural"]
        if any(MINER_OF.get(m) == "neural" for m in methods):
            raise ConfigError("LAECIPS and DCSB need a MinerNet h: give weights that include h")
    missing = [MINER_OF[m] for m in methods if m in MINER_OF and MINER_OF[m] not in deltas]
    if missing:
        raise ConfigError(f"no threshold delta for miner(s) {sorted(set(missing))}")
    return needed


def make_runs(
    methods: Sequence[str],
    deltas: dict[str, float],
    trainer: TrainerConfig,
    delta_window: int,
    calibration_conf: dict[str, np.ndarray] | None,
) -> dict[str, MethodRun]:
    """One MethodRun per method with its starting delta (Eq. 2); with ``delta_window`` > 0 a mined method
    tracks the upload rate its delta gives on ``calibration_conf`` (``thresholds.TrackingDelta``).

    Raises:
        ConfigError: a tracking delta without the calibration confidences of its miner.
    """
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
            run.tracker = thresholds.TrackingDelta(run.target_rate, delta_window, seed_conf[:delta_window])
    return runs


def shared_step(
    frame: StreamFrame, predictor: EdgePredictor, miners: dict[str, mining.Miner], fuser: AssistedInference
) -> SharedFrame:
    """f0's result, every miner's confidence on f0's logits, the JPEG size, SAM(x) and F(x) with f0.

    Raises:
        ConfigError: the oracle LVM on a frame without ground truth.
    """
    base = predictor.predict(frame.image)
    conf: dict[str, float] = {}
    h_s: dict[str, float] = {}
    for name, miner in miners.items():
        conf_arr, secs = timed(miner.confidence, base.logits)
        conf[name] = float(np.asarray(conf_arr).reshape(-1)[0])
        h_s[name] = secs
    jpeg_bytes = len(image_codecs.encode_jpeg(frame.image, quality=UPLOAD_JPEG_QUALITY))
    if fuser.needs_labels and frame.labels is None:
        raise ConfigError("the oracle LVM needs ground-truth labels on every frame of the stream")
    masks, lvm_s = timed(fuser.masks, frame.image, frame.labels)
    fused, fusion_s = timed(fuser.fuse, base.probs, masks)
    down = len(image_codecs.encode_labels(fused))
    return SharedFrame(base, conf, h_s, masks, lvm_s, fused, fusion_s, jpeg_bytes, down)


def method_step(
    run: MethodRun, frame: StreamFrame, shared: SharedFrame, replay: Replay, explore: bool
) -> MethodOutput:
    """One method on one frame: EDGE answers f0(x); EDGE-TTA its adapted f(x); CLOUD uploads everything
    and answers F(x); a mined method uploads when h's confidence <= delta (Eq. 2) or, if it updates,
    when ``explore`` is drawn."""
    f_s, link = shared.f_s, replay.link
    if run.name == "EDGE":
        labels = shared.base.labels
        return MethodOutput(labels, labels, False, metrics.LatencyParts(f_s, 0.0, 0.0, 0.0), math.nan)
    if run.name == "EDGE-TTA":
        out, tta_s = edge_tta_step(
            run, frame.image, replay.f0, shared.base, replay.trainer, replay.stream_norm_prior
        )
        return MethodOutput(out, out, False, metrics.LatencyParts(tta_s, 0.0, 0.0, 0.0), math.nan)
    if run.name == "CLOUD":
        parts = metrics.LatencyParts(
            0.0,
            link.upload_s(shared.upload_bytes),
            f_s + shared.lvm_s + shared.fusion_s,
            link.download_s(shared.download_bytes),
        )
        return MethodOutput(shared.fused, shared.base.labels, True, parts, math.nan)
    return _mined_step(run, frame, shared, replay, explore)


def _mined_step(
    run: MethodRun, frame: StreamFrame, shared: SharedFrame, replay: Replay, explore: bool
) -> MethodOutput:
    """A mined method (LAECIPS, DCSB, MESS, SM, SPP): the shared f0 results until its first accepted
    update, then its own f and h; F(x) is recomputed with its own f's probabilities."""
    assert run.miner_name is not None
    if run.predictor is None:
        labels, probs, conf = shared.base.labels, shared.base.probs, shared.conf[run.miner_name]
        f_s, h_s = shared.f_s, shared.h_s[run.miner_name]
    else:
        res = run.predictor.predict(frame.image)
        labels, probs, conf = res.labels, res.probs, float(res.confidence)
        f_s, h_s = float(res.compute_s), 0.0
    if run.tracker is not None:
        run.delta = run.tracker.delta
        hard = run.tracker.decide(conf) or (run.updates and explore)
    else:
        hard = conf <= run.delta or (run.updates and explore)
    if not hard:
        return MethodOutput(labels, labels, False, metrics.LatencyParts(f_s + h_s, 0.0, 0.0, 0.0), conf)
    if run.predictor is None:
        out, fus_s, down = shared.fused, shared.fusion_s, shared.download_bytes
    else:
        out, fus_s = timed(replay.fuser.fuse, probs, shared.masks)
        down = len(image_codecs.encode_labels(out))
    link = replay.link
    parts = metrics.LatencyParts(
        f_s + h_s, link.upload_s(shared.upload_bytes), f_s + shared.lvm_s + fus_s, link.download_s(down)
    )
    return MethodOutput(out, labels, True, parts, conf)


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
            ``thresholds.threshold_for_cur`` of its last N confidences at the rate its starting delta gives
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
    needed = miners_needed(methods, deltas, h0)
    f0 = f0.eval()
    base_predictor = EdgePredictor(f0, NoMiner(), stream_norm_prior=stream_norm_prior)
    base_miners = {name: miner_for(name, num_classes, h0) for name in needed}
    runs = make_runs(methods, deltas, trainer, delta_window, calibration_conf)
    replay = Replay(f0, h0, num_classes, fuser, trainer, link, stream_norm_prior)
    rng = np.random.default_rng(seed)
    tmp = tempfile.TemporaryDirectory(prefix="laecips-replay-", dir=workdir)
    record = StreamRecord(needed, panels, panel_method(runs))
    try:
        for name, run in runs.items():
            if run.updates:
                run.buffer = ReplayBuffer(
                    Path(tmp.name) / f"{name}.sqlite", maxsize=max(10_000, trainer.maxsize * 4)
                )
        bar = tqdm(frames, total=total, desc="eval frames", unit="frame", disable=not progress)
        lines = _ProgressLines(log, list(runs))
        for frame in bar:
            record.count(frame, num_classes)
            lines.frame(frame.task_id, frame.index, runs)
            shared = shared_step(frame, base_predictor, base_miners, fuser)
            record.add_shared(shared, frame.labels, num_classes)
            explore = bool(rng.random() < explore_rate)
            for run in runs.values():
                t_method = time.perf_counter()
                uploaded = _run_method(run, frame, shared, replay, explore, record)
                lines.method(run.name, time.perf_counter() - t_method, uploaded)
            bar.set_postfix({k: r.version for k, r in runs.items() if r.updates}, refresh=False)
        lines.finish(runs)
    finally:
        for run in runs.values():
            if run.buffer is not None:
                run.buffer.close()
        tmp.cleanup()
    return record.simulation(runs)


def _run_method(
    run: MethodRun,
    frame: StreamFrame,
    shared: SharedFrame,
    replay: Replay,
    explore: bool,
    record: StreamRecord,
) -> bool:
    """One method on one frame: its answer, the record, a panel, and Algorithm 2 after an upload.
    Returns whether the frame was uploaded."""
    output = method_step(run, frame, shared, replay, explore)
    miou, conf = frame_score(output.out, frame.labels, replay.num_classes)
    run.record(frame.task_id, output.uploaded, miou, conf, output.parts, output.confidence)
    record.maybe_keep_panel(run.name, frame, output)
    if run.updates and output.uploaded:
        append_and_maybe_train(
            run,
            frame,
            output.out,
            shared.masks,
            replay.f0,
            replay.h0,
            replay.num_classes,
            replay.trainer,
            replay.stream_norm_prior,
        )
    return output.uploaded


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


def panel_method(runs: dict[str, MethodRun]) -> str:
    """The method whose hard frames become qualitative panels: LAECIPS, else the first mined one."""
    for name in ("LAECIPS", "DCSB", "MESS", "SM", "SPP", "CLOUD"):
        if name in runs:
            return name
    return ""
