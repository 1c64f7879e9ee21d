"""The threshold delta of Eq. 2 per miner, from a CUR budget or a latency budget (Eq. 9/10), and the
delta sweep of Fig. 8 (mIoU vs CUR of each miner with the starting f).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from laecips_core import image_codecs
from laecips_core.algo import thresholds
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.errors import ConfigError
from laecips_core.evaluation.miners import NoMiner, miner_for, timed
from laecips_core.evaluation.run_config import UPLOAD_JPEG_QUALITY, EvalConfig, LinkModel
from laecips_core.evaluation.sources import StreamFrame, StreamSource
from laecips_core.evaluation.start_model import StartModel


def starting_confidences(
    start: StartModel, frames: Iterable[StreamFrame], miners: Sequence[str], *, progress: bool = False
) -> dict[str, np.ndarray]:
    """Each miner's confidence h(f0(x)) on frames, with the starting f0 (miner name -> (N,) float64)."""
    predictor = EdgePredictor(start.f, NoMiner(), stream_norm_prior=start.stream_norm_prior)
    built = {name: miner_for(name, start.num_classes, start.h) for name in miners}
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
    calibration frames (``thresholds.threshold_for_cur``): a fraction c of those frames has confidence
    <= delta_m and would be uploaded. With a latency budget, Eq. 10 turns the budget into the largest
    admissible upload rate from the measured edge delay d1 and cloud delay d0 on the calibration frames
    (``thresholds.threshold_for_latency``). Calibration frames are held-out frames of f's pre-training
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
            m: float(thresholds.threshold_for_latency(conf[m], d1, d0, cfg.latency_budget_s)) for m in miners
        }
    else:
        info["cur_budget"] = cfg.cur_budget
        deltas = {m: float(thresholds.threshold_for_cur(conf[m], cfg.cur_budget)) for m in miners}
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
    predictor = EdgePredictor(start.f, NoMiner(), stream_norm_prior=start.stream_norm_prior)
    d1, d0 = [], []
    for frame in frames:
        res = predictor.predict(frame.image)
        masks, lvm_s = timed(fuser.masks, frame.image, frame.labels)
        fused, fusion_s = timed(fuser.fuse, res.probs, masks)
        jpeg = len(image_codecs.encode_jpeg(frame.image, quality=UPLOAD_JPEG_QUALITY))
        d1.append(res.compute_s)
        d0.append(
            res.compute_s
            + link.upload_s(jpeg)
            + res.compute_s
            + lvm_s
            + fusion_s
            + link.download_s(len(image_codecs.encode_labels(fused)))
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
