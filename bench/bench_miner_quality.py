"""Miner quality: how well h(f(x)) and MESS/SM/SPP separate the paper's EASY from HARD frames (AUROC).

HARD (paper, pre-training label): frame mIoU(F(x)) - mIoU(f(x)) >= 0.1 against ground truth, with F the
fusion of f's scores and the default LVM's masks (``AssistedInference``, as the cloud builds it). f and h
are built from the bundle exactly as the edge builds them (``bundles.build_models``: h at the
bundle's ``miner_in_size``), and f runs with the edge's per-frame BatchNorm statistics
(``streamnorm``, ``--stream-norm-prior``, default the edge node's). The headline number is the
AUROC averaged within tasks (each task's frames ranked among themselves), over several stream seeds.
AUROC 0.5 is chance; below 0.5 the confidence ranks frames the wrong way round (confident frames
gain MORE from the cloud). Frames come from a seed the default weights never saw, spread over the 5
tasks, so task 1 is in-distribution and tasks 2-5 drift.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from laecips_core.algo import mining
from laecips_core.algo.assisted import AssistedInference
from laecips_core.algo.bundles import build_models
from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR
from laecips_core.algo.metrics import auroc
from laecips_core.algo.streamnorm import with_stream_norm
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.training.pretrain_stages import hard_labels
from laecips_core.training.pretraining import ensure_default_weights
from laecips_core.training.profiles import get_profile

from laecips_core import benchmark as data


def main(argv: list[str] | None = None) -> None:
    """Print per-task AUROC (EASY vs HARD) of the default h and of MESS, SM, SPP, for each seed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames-per-task", type=int, default=40, help="fresh frames per task")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[2024], help="benchmark seeds (weights: 1000)"
    )
    parser.add_argument("--weights", default=None, help="bundle (default: the cached default weights)")
    parser.add_argument(
        "--stream-norm-prior",
        type=float,
        default=DEFAULT_STREAM_NORM_PRIOR,
        help="BatchNorm prior N of f as the edge runs it (0 = stored statistics only)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    bundle_path = args.weights or ensure_default_weights(profile="default", progress=False)
    f, h = build_models(load_bundle(bundle_path))
    f = with_stream_norm(f, args.stream_norm_prior)
    prof = get_profile("default").pretrain
    fuser = AssistedInference.build(prof.lvm, dict(prof.lvm_kwargs))
    print(
        f"weights {bundle_path}; LVM {prof.lvm}; "
        f"h input {tuple(h.in_size) if hasattr(h, 'in_size') else '?'}; "
        f"f's BatchNorm prior N = {args.stream_norm_prior:g}"
    )
    means: dict[str, list[float]] = {}
    for seed in args.seeds:
        cfg = data.BenchmarkConfig(seed=seed, frames_per_task=args.frames_per_task, width=320, height=240)
        frames = list(data.generate_stream(cfg))
        source, stats = hard_labels(f, frames, fuser, prof, False)
        with torch.inference_mode():
            logits = torch.cat(
                [source(np.arange(s, min(s + 8, len(frames)))) for s in range(0, len(frames), 8)]
            )
            conf = {"h (neural)": h.eval()(logits).reshape(-1).numpy()}
        probs = torch.softmax(logits, dim=1).numpy()
        conf["MESS"] = np.asarray(mining.mess_confidence(probs))
        conf["SM"] = np.asarray(mining.sm_confidence(probs))
        conf["SPP"] = np.asarray(mining.spp_confidence(probs))
        easy = ~stats.hard
        tasks = np.array([fr.task_id for fr in frames])
        print(f"seed {seed}: {len(frames)} fresh frames at 320x240; AUROC for EASY vs HARD (0.5 = chance)")
        header = "".join(f"{data.task_label(t):>9}" for t in range(cfg.num_tasks))
        print(f"  {'':<11}{header}    within      all")
        hard_rates = "".join(f"{stats.hard[tasks == t].mean():>9.2f}" for t in range(cfg.num_tasks))
        print(f"  {'hard rate':<11}{hard_rates}{'':>10}{stats.hard.mean():>9.2f}")
        for name, values in conf.items():
            per = [auroc(values[tasks == t], easy[tasks == t]) for t in range(cfg.num_tasks)]
            within = float(np.nanmean(per))
            means.setdefault(name, []).append(within)
            cells = "".join(f"{v:>9.3f}" for v in per)
            print(f"  {name:<11}{cells}{within:>10.3f}{auroc(values, easy):>9.3f}")
    print("mean within-task AUROC over seeds " + ", ".join(str(s) for s in args.seeds) + ":")
    for name, values in means.items():
        print(f"  {name:<11}{np.mean(values):.3f}  (each seed: {', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
