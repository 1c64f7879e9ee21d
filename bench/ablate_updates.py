"""Ablation of the update recipes of f and validation of the label-free gate against ground truth.

For every (seed, drifted task): the starting f0 meets a buffer of ``--buffer`` consecutive frames of
the task (the hard frames a robot would upload), the recipe trains on the oldest 80 %, the gate sees
the newest 20 %, and the ground-truth frame mIoU of f0 and of the candidate f' is measured on the
next ``--next`` unseen frames. Every candidate is one row of the gate validation (Pearson correlation
and sign agreement of each label-free signal with the ground-truth change).

    python bench/ablate_updates.py --seeds 101 102 103 --out runs/ablation

Writes ``<out>/ablation.json`` and prints the ablation and gate tables (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.metrics import frame_miou
from laecips_core.evaluation.start_model import model_from_bundle
from laecips_core.storage import bundle_loading
from laecips_core.storage.jobspec import RECIPES, TrainerConfig
from laecips_core.storage.replay import ReplaySample
from laecips_core.training.adaptation import (
    SourceFrames,
    Target,
    apply_recipe,
    gate_update,
    make_target,
    probabilities,
)
from laecips_core.training.fit import resize_labels
from laecips_core.training.pretraining import ensure_default_weights
from laecips_core.training.profiles import get_profile, profile_frames

from laecips_core import benchmark as bench

SIGNALS = ("consistency", "old_fused", "new_fused")


def _gt_miou(f: torch.nn.Module, target: Target, gt: np.ndarray, cfg: TrainerConfig, m: int) -> float:
    pred = probabilities(f, target.rgb, cfg).argmax(1)
    return float(np.nanmean([frame_miou(p, g, m) for p, g in zip(pred, gt)]))


def _samples(
    frames: list[Any], fuser: AssistedInference, f0: torch.nn.Module, cfg: TrainerConfig
) -> list[Any]:
    out = []
    rgb = np.stack([fr.image for fr in frames])
    probs = probabilities(f0, rgb, replace(cfg, input_size=rgb.shape[1:3]))
    for i, (fr, p) in enumerate(zip(frames, probs)):
        fused = fuser(fr.image, p, fr.labels)
        out.append(
            ReplaySample(i + 1, fr.image, fused.labels, None, fr.timestamp, fr.task_id, "", 0, fused.masks)
        )
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 3, 4], help="0-based drifted task indices")
    ap.add_argument(
        "--recipes",
        nargs="+",
        default=[*RECIPES, "paper:0.001:5"],
        help="recipe names, or name:lr:epochs (paper:0.001:5 = the old live trainer: a harmful candidate "
        "the gate must refuse)",
    )
    ap.add_argument("--lvm", default=None, help="LVM registry name (default: the project default)")
    ap.add_argument("--buffer", type=int, default=50)
    ap.add_argument("--next", type=int, default=30)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = args.weights or ensure_default_weights(profile="default")
    f0, _ = model_from_bundle(bundle_loading.load_bundle(path))
    m = int(f0.num_classes)
    prof = get_profile("default")
    lvm = args.lvm or prof.pretrain.lvm
    fuser = AssistedInference.build(lvm)
    cfg = TrainerConfig(lr=1e-4, epochs=3, input_size=prof.pretrain.input_size, num_threads=args.threads)
    if args.lr is not None or args.epochs is not None:
        cfg = replace(cfg, lr=args.lr or cfg.lr, epochs=args.epochs or cfg.epochs)
    src_train, _, _ = profile_frames(prof, progress=False)
    source = SourceFrames([fr.image for fr in src_train], [fr.labels for fr in src_train])
    rows: list[dict[str, Any]] = []
    per_task = args.buffer + args.next
    for seed in args.seeds:
        bcfg = bench.BenchmarkConfig(
            seed=seed,
            frames_per_task=per_task,
            width=prof.benchmark["width"],
            height=prof.benchmark["height"],
        )
        for task in args.tasks:
            t0 = time.perf_counter()
            frames = [bench.generate_frame(bcfg, task * per_task + i) for i in range(per_task)]
            buf, nxt = frames[: args.buffer], frames[args.buffer :]
            samples = _samples(buf, fuser, f0, cfg)
            n_hold = max(1, round(len(samples) * cfg.holdout_fraction))
            target = make_target(samples[:-n_hold], cfg.input_size)
            hold = make_target(samples[-n_hold:], cfg.input_size)
            nxt_t = make_target(_samples(nxt, fuser, f0, cfg), cfg.input_size)
            nxt_gt = resize_labels([fr.labels for fr in nxt], cfg.input_size)
            base = _gt_miou(f0, nxt_t, nxt_gt, cfg, m)
            fused_gt = float(np.nanmean([frame_miou(s, g, m) for s, g in zip(nxt_t.stored, nxt_gt)]))
            for variant in args.recipes:
                recipe, *opts = variant.split(":")
                f = copy.deepcopy(f0)
                rcfg = replace(cfg, recipe=recipe)
                if opts:
                    rcfg = replace(rcfg, lr=float(opts[0]), epochs=int(opts[1]))
                t1 = time.perf_counter()
                losses = apply_recipe(f, target, rcfg, source=source)
                secs = time.perf_counter() - t1
                gate = gate_update(f0, f, hold, rcfg)
                after = _gt_miou(f, nxt_t, nxt_gt, cfg, m)
                row = {
                    "seed": seed,
                    "task": task + 1,
                    "recipe": variant,
                    "f0": base,
                    "F0": fused_gt,
                    "after": after,
                    "gain": after - base,
                    "accepted": gate.accepted,
                    "reason": gate.reason,
                    "seconds": secs,
                    "loss_f": losses,
                    **{
                        k: gate.details[k]
                        for k in (*SIGNALS, "classes_old", "classes_new", "entropy_old", "entropy_new")
                    },
                }
                rows.append(row)
                print(
                    f"seed {seed} task {task + 1} {variant:13s} f0 {base:.3f} F0 {fused_gt:.3f} "
                    f"-> {after:.3f} "
                    f"({after - base:+.3f}) consistency {gate.details['consistency']:+.3f} "
                    f"accepted {gate.accepted} [{secs:.0f} s]",
                    flush=True,
                )
            print(f"  (seed {seed} task {task + 1}: {time.perf_counter() - t0:.0f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    (args.out / "ablation.json").write_text(
        json.dumps({"rows": rows, "summary": summary, "lvm": lvm}, indent=2)
    )
    print(json.dumps(summary, indent=2))
    return 0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ground-truth gain per recipe (and per task) and the gate's validation per signal."""
    out: dict[str, Any] = {"recipes": {}, "gate": {}}
    for recipe in sorted({r["recipe"] for r in rows}):
        sel = [r for r in rows if r["recipe"] == recipe]
        out["recipes"][recipe] = {
            "mean_gain": float(np.mean([r["gain"] for r in sel])),
            "mean_after": float(np.mean([r["after"] for r in sel])),
            "by_task": {
                str(t): float(np.mean([r["gain"] for r in sel if r["task"] == t]))
                for t in sorted({r["task"] for r in sel})
            },
            "accepted": int(sum(r["accepted"] for r in sel)),
            "n": len(sel),
            "worst_accepted_gain": float(min([r["gain"] for r in sel if r["accepted"]], default=math.nan)),
        }
    gains = np.array([r["gain"] for r in rows])
    for sig in SIGNALS:
        values = np.array([r[sig] for r in rows])
        out["gate"][sig] = {
            "pearson": _pearson(values, gains),
            "sign_agreement": float(np.mean(np.sign(values) == np.sign(gains))),
            "n": len(rows),
        }
    acc = [r for r in rows if r["accepted"]]
    out["gate"]["accepted"] = len(acc)
    out["gate"]["accepted_worst_gain"] = float(min([r["gain"] for r in acc], default=math.nan))
    out["gate"]["accepted_lowering_gt_over_1pt"] = int(sum(r["gain"] < -0.01 for r in acc))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
