"""Algorithm 2 inside the replay: a method's hard frames, its retraining (Eq. 13, Eq. 14) and weight swap.

``append_and_maybe_train`` stores (x, F(x), SAM(x)) in the method's replay buffer, trains f and h with
ContinualTrainer when the trigger fires and swaps the accepted weights in between frames;
``edge_tta_step`` is the cloud-less EDGE-TTA row (f's BatchNorm statistics re-estimated on the robot).
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import numpy as np
from torch import nn

from laecips_core.algo import mining, state
from laecips_core.algo.frames import EdgeResult
from laecips_core.algo.predictor import EdgePredictor, miner_network
from laecips_core.evaluation.miners import NoMiner, UnusedMiner, timed
from laecips_core.evaluation.records import MethodRun
from laecips_core.evaluation.run_config import PAPER_RECIPE
from laecips_core.evaluation.sources import StreamFrame
from laecips_core.storage.jobspec import TrainerConfig, should_train
from laecips_core.training.adaptation import ContinualTrainer, adapt_batchnorm
from laecips_core.training.fit import resize_images


def edge_tta_step(
    run: MethodRun, image: np.ndarray, f0: nn.Module, base: EdgeResult, trainer: TrainerConfig, prior: float
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
                copy.deepcopy(f0), NoMiner(), version=run.version, stream_norm_prior=prior
            )
        run.version = run.predictor.set_weights(f.state_dict(), None)
        run.f = run.predictor.model
    return labels, secs


def append_and_maybe_train(
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
        run.h = run.h if run.h is not None else UnusedMiner()
        h = run.h
    assert h is not None
    samples = run.buffer.samples()
    cfg = replace(trainer, **PAPER_RECIPE) if run.name == "LAECIPS-paper" else trainer
    result, secs = timed(ContinualTrainer(cfg).run, f, h, samples, False)
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
