"""Per-frame BatchNorm statistics (``streamnorm``) against ground truth, offline, per task.

For each seed and task of the benchmark stream (5 tasks x 50 frames at 320x240, the eval's stream):
ground-truth frame mIoU of the default f0 on every second frame, for each prior N, and of f whose
stored statistics are the PREVIOUS task's last 21 frames (what an update trained on the task that just
ended carries, and what EDGE-TTA holds after a switch).

    python bench/bench_stream_norm.py --seeds 7 --priors 0 16

Prints one JSON line per (seed, task); docs/evaluation.md quotes them.
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import torch
from laecips_core.algo.metrics import frame_miou
from laecips_core.algo.streamnorm import with_stream_norm
from laecips_core.evaluation.start_model import model_from_bundle
from laecips_core.storage import bundle_loading
from laecips_core.storage.jobspec import TrainerConfig
from laecips_core.training.adaptation import adapt_batchnorm, probabilities
from laecips_core.training.pretraining import ensure_default_weights
from torch import nn

from laecips_core import benchmark as data


def _score(f: nn.Module, rgb: np.ndarray, gt: np.ndarray, cfg: TrainerConfig, m: int) -> float:
    pred = np.concatenate([probabilities(f, rgb[i : i + 1], cfg).argmax(1) for i in range(len(rgb))])
    return float(np.nanmean([frame_miou(p, g, m) for p, g in zip(pred, gt)]))


def main(argv: list[str] | None = None) -> int:
    """Print the per-task table rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7])
    ap.add_argument("--priors", type=float, nargs="+", default=[0.0, 16.0])
    ap.add_argument("--weights", default=None, help="bundle (default: the cached default weights)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = args.weights or ensure_default_weights(profile="default")
    f0, _ = model_from_bundle(bundle_loading.load_bundle(start))
    m = int(f0.num_classes)
    cfg = TrainerConfig(input_size=(240, 320), num_threads=args.threads)
    per_task, window = 50, 21
    for seed in args.seeds:
        bc = data.BenchmarkConfig(seed=seed, frames_per_task=per_task, width=320, height=240)
        frames = [data.generate_frame(bc, i) for i in range(bc.num_frames)]
        rgb = np.stack([fr.image for fr in frames])
        gt = np.stack([fr.labels for fr in frames])
        for task in range(bc.num_tasks):
            idx = np.arange(task * per_task, (task + 1) * per_task, 2)
            row: dict[str, float | int] = {"seed": seed, "task": task + 1}
            for n in args.priors:
                row[f"f0_N{n:g}"] = _score(with_stream_norm(f0, n), rgb[idx], gt[idx], cfg, m)
            if task:
                stale = copy.deepcopy(f0)
                adapt_batchnorm(stale, rgb[task * per_task - window : task * per_task], cfg)
                for n in args.priors:
                    row[f"stale_N{n:g}"] = _score(with_stream_norm(stale, n), rgb[idx], gt[idx], cfg, m)
            print(
                json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
