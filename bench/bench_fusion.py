"""Benchmark of Algorithm 1: vectorised fusion vs the loop oracle vs one full read of the scores."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from laecips_core.algo import fusion
from laecips_core.algo.fusion import assisted_inference, assisted_inference_loop

SPEEDUP_TARGET = 50.0
"""Fusion must be at least this many times faster than the per-mask, per-class loop."""
READ_RATIO_TARGET = 3.0
"""Fusion must cost at most this many full reads of the (M, H, W) score tensor."""


def make_masks(rng: np.random.Generator, k: int, height: int, width: int) -> np.ndarray:
    """K overlapping masks, half rectangles, half ellipses, areas log-uniform in ~0.05 %-25 % of the image.

    Returns:
        (K, H, W) bool.
    """
    masks = np.zeros((k, height, width), dtype=bool)
    for i in range(k):
        area = height * width * 10 ** rng.uniform(-3.3, -0.6)
        aspect = 10 ** rng.uniform(-0.5, 0.5)
        bh = int(min(height, max(2, np.sqrt(area / aspect))))
        bw = int(min(width, max(2, np.sqrt(area * aspect))))
        y0, x0 = int(rng.integers(0, height - bh + 1)), int(rng.integers(0, width - bw + 1))
        if i % 2 == 0:
            masks[i, y0 : y0 + bh, x0 : x0 + bw] = True
        else:
            yy, xx = np.ogrid[:bh, :bw]
            ellipse = ((yy - bh / 2 + 0.5) / (bh / 2)) ** 2 + ((xx - bw / 2 + 0.5) / (bw / 2)) ** 2 <= 1.0
            masks[i, y0 : y0 + bh, x0 : x0 + bw] = ellipse
    return masks


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls, in seconds (time.perf_counter)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _stage_times(probs: np.ndarray, masks: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds per stage of the numpy path (internal functions of laecips_core.algo.fusion)."""
    m, h, w = probs.shape
    n = h * w
    flat = probs.reshape(m, n)
    mask_list = list(masks)
    packed = fusion._pack_masks(mask_list, n)
    starts = fusion._run_starts(packed)
    lengths = np.diff(starts, append=n)
    sums = np.add.reduceat(flat, starts, axis=1)
    run_label, covered = fusion._label_runs(packed[:, starts], lengths, sums, len(mask_list), "area")
    idx = fusion._run_pixels(starts[~covered], lengths[~covered])
    return {
        "pack membership bits": median_seconds(lambda: fusion._pack_masks(mask_list, n), repeats),
        "find runs": median_seconds(lambda: fusion._run_starts(packed), repeats),
        "run sums (reduceat)": median_seconds(lambda: np.add.reduceat(flat, starts, axis=1), repeats),
        "resolve runs": median_seconds(
            lambda: fusion._label_runs(packed[:, starts], lengths, sums, len(mask_list), "area"), repeats
        ),
        "runs to pixels": median_seconds(lambda: np.repeat(run_label.astype(np.uint8), lengths), repeats),
        "edge argmax, uncovered": median_seconds(
            lambda: fusion._first_argmax(np.take(flat, idx, axis=1)), repeats
        ),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the two ratios with their targets; returns 0.

    Args:
        argv: Command-line options (see --help); None means the defaults (as bench/run_all.py calls it).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--masks", type=int, default=100)
    parser.add_argument(
        "--oracle-masks", type=int, default=0, help="masks given to the slow oracle (0: all; fewer: scaled)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args([] if argv is None else argv)
    rng = np.random.default_rng(args.seed)
    m, h, w, k = args.classes, args.height, args.width, args.masks
    probs = rng.random((m, h, w), dtype=np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    masks = make_masks(rng, k, h, w)
    coverage = float(masks.any(axis=0).mean())
    print(
        f"probs ({m}, {h}, {w}) float32 = {probs.nbytes / 2**20:.0f} MiB; masks ({k}, {h}, {w}) bool = "
        f"{masks.nbytes / 2**20:.0f} MiB; covered pixels {coverage:.1%}; "
        f"mean masks per pixel {masks.sum() / (h * w):.2f}; torch threads {torch.get_num_threads()}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times inflate under load)"
    )
    t_sum = median_seconds(lambda: probs.sum(), args.repeats)
    t_argmax = median_seconds(lambda: np.argmax(probs, axis=0), args.repeats)
    t_fused = median_seconds(lambda: assisted_inference(probs, masks), args.repeats)
    for stage, seconds in _stage_times(probs, masks, args.repeats).items():
        print(f"  stage {stage:<22s} {seconds * 1e3:8.1f} ms")

    # Oracle once on the first k_o masks (all by default); with fewer, its per-mask part (time minus
    # the edge argmax) is scaled linearly to K masks.
    k_o = k if args.oracle_masks <= 0 else min(k, args.oracle_masks)
    start = time.perf_counter()
    oracle_labels = assisted_inference_loop(probs, masks[:k_o])
    t_oracle_part = time.perf_counter() - start
    t_oracle = t_oracle_part if k_o == k else t_argmax + (t_oracle_part - t_argmax) * k / max(k_o, 1)
    same = bool(np.array_equal(assisted_inference(probs, masks[:k_o]), oracle_labels))

    speedup = t_oracle / t_fused
    print(f"probs.sum() (one full read)         {t_sum * 1e3:8.1f} ms")
    print(f"np.argmax(probs, 0) (one full read) {t_argmax * 1e3:8.1f} ms")
    print(f"assisted_inference (vectorised)     {t_fused * 1e3:8.1f} ms  (median of {args.repeats})")
    print(
        f"assisted_inference_loop (oracle)    {t_oracle * 1e3:8.1f} ms  (timed once on {k_o} masks"
        + (f": {t_oracle_part * 1e3:.0f} ms, per-mask part scaled linearly to {k}" if k_o < k else "")
        + f"); same labels as the vectorised fusion: {same}"
    )
    print(
        f"speedup vs oracle: {speedup:.1f}x (target >= {SPEEDUP_TARGET:.0f}x: "
        f"{'met' if speedup >= SPEEDUP_TARGET else 'NOT met'})"
    )
    for name, ref in (("np.argmax", t_argmax), ("probs.sum", t_sum)):
        ratio = t_fused / ref
        print(
            f"fusion / one full read ({name}): {ratio:.2f}x (target <= {READ_RATIO_TARGET:.0f}x: "
            f"{'met' if ratio <= READ_RATIO_TARGET else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
