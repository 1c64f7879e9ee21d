"""Benchmark of Algorithm 1 (assisted inference F): vectorised fusion vs the loop oracle vs one input read.

Keys for runs/bench/bench.json (``entries``): ``fusion_over_loop`` (>= 50), ``fusion_over_input_read``
(<= 2: fusion / (one ``probs.sum()`` + one ``np.count_nonzero(masks)``), measured interleaved so that
load on the machine hits both alike) and the growth tables ``fusion_ms_<W>x<H>`` (100 masks) and
``fusion_ms_k<K>`` (640x480).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from laecips_core.algo import fusion
from laecips_core.algo.fusion import assisted_inference, assisted_inference_loop

SPEEDUP_TARGET = 50.0
"""Fusion must be at least this many times faster than the per-mask, per-class loop."""
READ_RATIO_TARGET = 2.0
"""Fusion must cost at most this many reads of its inputs (the scores once plus the masks once)."""
SIZES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))
"""(W, H) of the growth table over image size."""
MASK_COUNTS = (10, 50, 100, 200, 400)
"""K of the growth table over the number of masks (at 640x480)."""


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
    return {
        "pack membership bits": median_seconds(lambda: fusion._pack_masks(mask_list, n), repeats),
        "find runs": median_seconds(lambda: fusion._run_starts(packed), repeats),
        "run sums (reduceat)": median_seconds(lambda: np.add.reduceat(flat, starts, axis=1), repeats),
        "resolve runs": median_seconds(
            lambda: fusion._label_runs(packed[:, starts], lengths, sums, len(mask_list), "area"), repeats
        ),
        "runs to pixels": median_seconds(lambda: np.repeat(run_label.astype(np.uint8), lengths), repeats),
        "edge argmax, uncovered": median_seconds(
            lambda: fusion._first_argmax(fusion._gather_runs(flat, starts[~covered], lengths[~covered])),
            repeats,
        ),
    }


def entry(value: float | None, target: float | None, unit: str, higher_is_better: bool, note: str) -> dict:
    """One bench.json entry: value, target, unit, met (None when either is None) and a note."""
    met = None
    if value is not None and target is not None:
        met = bool(value >= target) if higher_is_better else bool(value <= target)
    return {"value": value, "target": target, "unit": unit, "met": met, "note": note}


def load_note() -> str:
    """The 1-minute load average and the CPU count, for every note (wall times inflate under load)."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def make_inputs(seed: int, m: int, h: int, w: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax-like scores (M, H, W) float32 and K masks (K, H, W) bool from ``make_masks``."""
    rng = np.random.default_rng(seed)
    probs = rng.random((m, h, w), dtype=np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    return probs, make_masks(rng, k, h, w)


def interleaved_ratio(
    fn: Callable[[], object], ref: Callable[[], object], repeats: int
) -> tuple[float, float, float]:
    """Median of per-repeat ratios fn / ref, each pair timed back to back; also the medians of both (s)."""
    ratios, fn_times, ref_times = [], [], []
    for _ in range(repeats):
        t_ref = median_seconds(ref, 1)
        t_fn = median_seconds(fn, 1)
        ratios.append(t_fn / t_ref)
        fn_times.append(t_fn)
        ref_times.append(t_ref)
    return statistics.median(ratios), statistics.median(fn_times), statistics.median(ref_times)


def growth_tables(repeats: int, sizes: tuple[tuple[int, int], ...] = SIZES,
                  mask_counts: tuple[int, ...] = MASK_COUNTS) -> dict[str, float]:  # fmt: skip
    """Median fusion milliseconds per image size (100 masks, 19 classes) and per mask count (640x480)."""
    cases = [(f"fusion_ms_{w}x{h}", (1, 19, h, w, 100)) for w, h in sizes]
    cases += [(f"fusion_ms_k{k}", (2, 19, 480, 640, k)) for k in mask_counts]
    table = {}
    for key, shape in cases:
        inputs = make_inputs(*shape)
        table[key] = 1e3 * median_seconds(functools.partial(assisted_inference, *inputs), repeats)
    return table


def entries(quick: bool = False) -> dict[str, dict]:
    """The fusion keys of runs/bench/bench.json (see the module docstring).

    Args:
        quick: Fewer repeats, the oracle on 10 masks (its per-mask part scaled to 100) and a smaller
            growth table; the figures are then rougher (the note says so).
    """
    repeats = 3 if quick else 7
    probs, masks = make_inputs(0, 19, 1024, 2048, 100)
    fused = assisted_inference(probs, masks)
    t_fused = median_seconds(lambda: assisted_inference(probs, masks), repeats)
    k_o = 10 if quick else len(masks)
    start = time.perf_counter()
    oracle = assisted_inference_loop(probs, masks[:k_o])
    t_part = time.perf_counter() - start
    if k_o < len(masks):
        t_argmax = median_seconds(lambda: np.argmax(probs, axis=0), 1)
        t_oracle = t_argmax + (t_part - t_argmax) * len(masks) / k_o
        same = bool(np.array_equal(assisted_inference(probs, masks[:k_o]), oracle))
    else:
        t_oracle, same = t_part, bool(np.array_equal(fused, oracle))
    read_ratio, t_interleaved, t_read = interleaved_ratio(
        lambda: assisted_inference(probs, masks),
        lambda: (probs.sum(), np.count_nonzero(masks)),
        repeats,
    )
    setting = "19 classes, 100 masks, 1024x2048"
    out = {
        "fusion_over_loop": entry(
            t_oracle / t_fused, SPEEDUP_TARGET, "x", True,
            f"{setting}: fusion {t_fused * 1e3:.1f} ms, loop {t_oracle * 1e3:.0f} ms"
            + (f" (timed on {k_o} masks, scaled)" if k_o < len(masks) else "")
            + f"; same labels: {same}; {load_note()}",
        ),
        "fusion_over_input_read": entry(
            read_ratio, READ_RATIO_TARGET, "x", False,
            f"{setting}: median of {repeats} back-to-back pairs; fusion {t_interleaved * 1e3:.1f} ms, "
            f"probs.sum() + np.count_nonzero(masks) {t_read * 1e3:.1f} ms; {load_note()}",
        ),
    }  # fmt: skip
    sizes, counts = (SIZES[:2], MASK_COUNTS[:3]) if quick else (SIZES, MASK_COUNTS)
    for key, ms in growth_tables(max(1, repeats // 2), sizes, counts).items():
        what = "100 masks, 19 classes" if "x" in key[10:] else "640x480, 19 classes"
        out[key] = entry(ms, None, "ms", False, f"{what}; {load_note()}")
    return out


def print_entries(results: dict[str, dict]) -> None:
    """One line per key: value, target, met, note."""
    for key, item in results.items():
        value = "n/a" if item["value"] is None else f"{item['value']:.3g}"
        target = "" if item["target"] is None else f" target {item['target']:g}"
        met = {True: " met", False: " NOT met", None: ""}[item["met"]]
        print(f"{key:<28s} {value:>9s} {item['unit']:<4s}{target}{met}  ({item['note']})")


def main(argv: list[str] | None = None) -> int:
    """Print the bench.json entries (medians, load average), then the per-stage times; returns 0.

    Args:
        argv: ``--quick`` for the rough version; None means the full run (as bench/run_all.py calls it).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args([] if argv is None else argv)
    print_entries(entries(args.quick))
    probs, masks = make_inputs(0, 19, 1024, 2048, 100)
    for stage, seconds in _stage_times(probs, masks, 3).items():
        print(f"  stage {stage:<22s} {seconds * 1e3:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
