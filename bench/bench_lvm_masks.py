"""LVM masks: how many masks, how pure, how fast, and how much F(x) gains over f(x), per LVM and task.

For each LVM (the classical "felzenszwalb" and "slic" over-segmenters, the SAM-like "hierarchy", and
the "oracle" whose masks are the connected ground-truth regions, an UPPER BOUND that needs labels)
and each of the 5 tasks: masks per frame (mean, max), segment purity (``lvm.segment_purity`` over all
masks), finest-region purity (purity of the partition Algorithm 1 actually applies: each pixel in the
smallest mask that covers it), LVM seconds per frame, and the frame-mIoU gain of F(x) =
Algorithm 1(f(x), masks) over f(x), with f the default pre-trained edge model (softmax scores).
Frames come from a data seed (4242) that neither the evaluation stream (0) nor pre-training (1000)
uses. Writes runs/bench/lvm_masks.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from laecips_core.algo import fusion, metrics, models
from laecips_core.evaluation import start_model as evaluation
from laecips_core.lvm.base import segment_purity
from laecips_core.lvm.registry import build_lvm, lvm_registry
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.training.pretraining import ensure_default_weights

from laecips_core import benchmark as data

ROOT = Path(__file__).resolve().parents[1]
LVMS = ("felzenszwalb", "slic", "hierarchy", "oracle")


class Row(NamedTuple):
    """One LVM on one frame."""

    lvm: str
    task_id: int  # 0-based (data.Frame.task_id); the summary numbers tasks from 1
    frame: int
    masks: int
    purity: float
    finest_purity: float
    seconds: float
    f_miou: float
    F_miou: float


def finest_region_purity(masks: np.ndarray, gt: np.ndarray, ignore_index: int = 255) -> float:
    """Purity of the regions Algorithm 1 applies: masks painted largest first, smaller ones on top.

    Args:
        masks: (K, H, W) bool masks.
        gt: (H, W) ground-truth class map.
        ignore_index: ground-truth value left out.

    Returns:
        fraction of covered valid pixels whose painted region's majority class is their own (nan if
        no mask covers a valid pixel).
    """
    painted = np.full(gt.shape, -1, dtype=np.int64)
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    for k in np.argsort(-areas, kind="stable"):
        painted[masks[k]] = k
    keep = (painted >= 0) & (gt != ignore_index)
    if not keep.any():
        return float("nan")
    ids, inverse = np.unique(painted[keep], return_inverse=True)
    classes = gt[keep].astype(np.int64)
    counts = np.zeros((len(ids), int(classes.max()) + 1), dtype=np.int64)
    np.add.at(counts, (inverse, classes), 1)
    return float(counts.max(axis=1).sum() / keep.sum())


def main(argv: list[str] | None = None) -> None:
    """Print the table (per LVM and task) and write it, with per-frame rows, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames-per-task", type=int, default=3, help="frames per task (spread over it)")
    parser.add_argument("--seed", type=int, default=4242, help="benchmark seed (eval: 0, pre-training: 1000)")
    parser.add_argument("--size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    parser.add_argument("--lvms", nargs="+", default=list(LVMS), choices=sorted(lvm_registry))
    parser.add_argument("--weights", default=None, help="bundle (default: the cached default weights)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "lvm_masks.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    bundle_path = Path(args.weights or ensure_default_weights(profile="default", progress=False))
    f, _ = evaluation.model_from_bundle(load_bundle(bundle_path))
    width, height = args.size
    per_task = 20
    cfg = data.BenchmarkConfig(seed=args.seed, frames_per_task=per_task, width=width, height=height)
    offsets = np.linspace(1, per_task - 2, args.frames_per_task).round().astype(int)
    num_classes = len(data.CLASSES)
    models_ = {name: build_lvm(name) for name in args.lvms}
    rows: list[Row] = []
    for task in range(cfg.num_tasks):
        for offset in offsets:
            frame = data.generate_frame(cfg, task * per_task + int(offset))
            with torch.inference_mode():
                probs = torch.softmax(f(models.preprocess(frame.image))[0], dim=0).numpy()
            f_miou = metrics.frame_miou(probs.argmax(0), frame.labels, num_classes)
            for name, model in models_.items():
                start = time.perf_counter()
                if getattr(model, "needs_labels", False):
                    masks = model.generate(frame.image, labels=frame.labels)  # type: ignore[call-arg]
                else:
                    masks = model.generate(frame.image)
                seconds = time.perf_counter() - start
                fused = fusion.assisted_inference(probs, masks)
                rows.append(
                    Row(
                        name,
                        task,
                        frame.index,
                        len(masks),
                        segment_purity(masks, frame.labels),
                        finest_region_purity(masks, frame.labels),
                        seconds,
                        f_miou,
                        metrics.frame_miou(fused, frame.labels, num_classes),
                    )
                )
    summary: dict[str, dict[str, dict[str, float]]] = {}
    print(
        f"f: {bundle_path.name}; seed {args.seed}, {width}x{height}, {args.frames_per_task} frames x "
        f"{cfg.num_tasks} tasks; gain = frame mIoU(F) - frame mIoU(f) in points"
    )
    print(f"{'LVM':<22} task  masks  max  purity  finest  s/frame   gain")
    for name in args.lvms:
        label = f"{name} (upper bound)" if getattr(models_[name], "needs_labels", False) else name
        summary[name] = {}
        for task in [*range(cfg.num_tasks), None]:
            sel = [r for r in rows if r.lvm == name and task in (None, r.task_id)]
            stat = {
                "masks_mean": float(np.mean([r.masks for r in sel])),
                "masks_max": max(r.masks for r in sel),
                "purity": float(np.nanmean([r.purity for r in sel])),
                "finest_purity": float(np.nanmean([r.finest_purity for r in sel])),
                "seconds_per_frame": float(np.mean([r.seconds for r in sel])),
                "gain_points": 100 * float(np.nanmean([r.F_miou - r.f_miou for r in sel])),
                "f_miou": float(np.nanmean([r.f_miou for r in sel])),
            }
            key = "all" if task is None else str(task + 1)  # the paper numbers tasks from 1
            summary[name][key] = stat
            print(
                f"{label:<22} {key:>4} {stat['masks_mean']:6.1f} "
                f"{stat['masks_max']:4d} {stat['purity']:7.3f} {stat['finest_purity']:7.3f} "
                f"{stat['seconds_per_frame']:8.3f} {stat['gain_points']:+6.1f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "weights": str(bundle_path),
        "benchmark": {"seed": args.seed, "width": width, "height": height, "frames_per_task": len(offsets)},
        "summary_tasks_numbered_from": 1,
        "upper_bound": [n for n in args.lvms if getattr(models_[n], "needs_labels", False)],
        "summary": summary,
        "frames": [r._asdict() for r in rows],
    }
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
