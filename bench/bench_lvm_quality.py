"""Pseudo-label quality and cost: mIoU of f alone vs F = fusion(f, LVM) for CPU segmenters and LiteMedSAM."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from laecips_core.algo import fusion, metrics, models
from laecips_core.evaluation import start_model as evaluation
from laecips_core.lvm.registry import build_lvm
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.training.pretraining import ensure_default_weights

from laecips_core import benchmark as data


def main(argv: list[str] | None = None) -> None:
    """Print frame mIoU against ground truth for f, F(felzenszwalb), F(slic) and F(litemedsam)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3, help="frames, spread over the 5 tasks")
    parser.add_argument("--no-litemedsam", action="store_true", help="skip LiteMedSAM (slow on CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    bundle_path = ensure_default_weights(profile="default", progress=False)
    f, _ = evaluation.model_from_bundle(load_bundle(bundle_path))
    cfg = data.BenchmarkConfig(seed=7, frames_per_task=10, width=320, height=240)
    indices = np.linspace(0, cfg.num_frames - 1, args.frames).round().astype(int)
    names = ["felzenszwalb", "slic"] + ([] if args.no_litemedsam else ["litemedsam"])
    lvms = {name: build_lvm(name) for name in names}
    scores: dict[str, list[float]] = {"f": [], **{f"F({n})": [] for n in names}}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for index in indices:
        frame = data.generate_frame(cfg, int(index))
        with torch.inference_mode():
            logits = f(models.preprocess(frame.image))[0]
        probs = torch.softmax(logits, dim=0).numpy()
        m = len(data.CLASSES)
        scores["f"].append(metrics.frame_miou(probs.argmax(0), frame.labels, m))
        for name, model in lvms.items():
            start = time.perf_counter()
            masks = model.generate(frame.image)
            seconds[name].append(time.perf_counter() - start)
            fused = fusion.assisted_inference(probs, masks)
            scores[f"F({name})"].append(metrics.frame_miou(fused, frame.labels, m))
    tasks = [data.task_of(cfg, int(i)) + 1 for i in indices]
    print(f"default f ({bundle_path.name}), {len(indices)} frames at 320x240, tasks {tasks}")
    for key, values in scores.items():
        print(f"  {key:<16} frame mIoU {np.mean(values):.3f}  per frame {[round(v, 3) for v in values]}")
    for name, values in seconds.items():
        print(f"  {name:<16} LVM time {np.median(values):.2f} s/frame (median)")


if __name__ == "__main__":
    main()
