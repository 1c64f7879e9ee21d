"""Miner quality: how well h(f(x)) and MESS/SM/SPP separate the paper's EASY from HARD frames (AUROC).

HARD (paper, pre-training label): frame mIoU(F(x)) - mIoU(f(x)) >= 0.1 against ground truth, with F the
fusion of f's scores and the CPU LVM's masks. AUROC 0.5 is chance; below 0.5 the confidence ranks
frames the wrong way round (confident frames gain MORE from the cloud). Frames come from a seed the
default weights never saw, spread over the 5 tasks, so task 1 is in-distribution and tasks 2-5 drift.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from laecips_core.evaluation import model_from_bundle
from laecips_core.lvm import build_lvm
from laecips_core.metrics import auroc
from laecips_core.pretraining import PretrainConfig, ensure_default_weights, hard_labels
from laecips_core.weights import load_bundle

from laecips_core import data, mining


def main(argv: list[str] | None = None) -> None:
    """Print per-task AUROC (EASY vs HARD) of the default h and of MESS, SM, SPP."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames-per-task", type=int, default=40, help="fresh frames per task")
    parser.add_argument("--seed", type=int, default=2024, help="benchmark seed (default weights: 1000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    bundle_path = ensure_default_weights(profile="default", progress=False)
    f, h = model_from_bundle(load_bundle(bundle_path))
    assert h is not None, "the default bundle carries h"
    cfg = data.BenchmarkConfig(seed=args.seed, frames_per_task=args.frames_per_task, width=320, height=240)
    frames = list(data.generate_stream(cfg))
    m = len(data.CLASSES)
    source, stats = hard_labels(f, frames, build_lvm("felzenszwalb"), PretrainConfig(num_classes=m), False)
    with torch.inference_mode():
        logits = torch.cat([source(np.arange(s, min(s + 8, len(frames)))) for s in range(0, len(frames), 8)])
        conf = {"h (neural)": h(logits).reshape(-1).numpy()}
    probs = torch.softmax(logits, dim=1).numpy()
    conf["MESS"] = np.asarray(mining.mess_confidence(probs))
    conf["SM"] = np.asarray(mining.sm_confidence(probs))
    conf["SPP"] = np.asarray(mining.spp_confidence(probs))
    easy = ~stats.hard
    tasks = np.array([fr.task_id for fr in frames])
    print(f"default weights {bundle_path.name}; {len(frames)} fresh frames (seed {args.seed}) at 320x240")
    print("AUROC of each confidence for EASY vs HARD (0.5 = chance):")
    header = (
        "  " + f"{'':<11}" + "".join(f"{data.task_label(t):>9}" for t in range(cfg.num_tasks)) + "      all"
    )
    print(header)
    hard_rates = "".join(f"{stats.hard[tasks == t].mean():>9.2f}" for t in range(cfg.num_tasks))
    print(f"  {'hard rate':<11}{hard_rates}{stats.hard.mean():>9.2f}")
    for name, values in conf.items():
        per_task = "".join(
            f"{auroc(values[tasks == t], easy[tasks == t]):>9.3f}" for t in range(cfg.num_tasks)
        )
        print(f"  {name:<11}{per_task}{auroc(values, easy):>9.3f}")


if __name__ == "__main__":
    main()
