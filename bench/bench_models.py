"""Benchmark of the edge model f (torch eager vs ONNX Runtime) and of the miner h's cost relative to f."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from laecips_core.algo.backends import OnnxBackend, TorchBackend, export_onnx
from laecips_core.algo.mining import MinerNet, NeuralMiner
from laecips_core.algo.models import DEFAULT_EDGE_MODEL, build_edge_model, count_params, preprocess
from laecips_core.algo.predictor import EdgePredictor
from torch.utils.flop_counter import FlopCounterMode

LOOP_BUDGET_S = 20.0
"""Each of the four timing loops stops early after this many seconds (the run stays under ~2 min)."""


class Timing(NamedTuple):
    """Wall times of repeated calls, in seconds (time.perf_counter)."""

    median: float
    best: float
    n: int

    def __str__(self) -> str:
        return f"{self.median * 1e3:7.1f} ms median, {self.best * 1e3:7.1f} ms best (n={self.n})"


def time_calls(fn: Callable[[], object], repeats: int, budget_s: float = LOOP_BUDGET_S) -> Timing:
    """Time up to ``repeats`` calls after one warm-up call, stopping once ``budget_s`` has passed."""
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if start > deadline:
            break
    return Timing(statistics.median(times), min(times), len(times))


def flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Floating point operations of one forward pass (torch's FlopCounterMode, 2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(x)
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    """Print f's latency with torch and ONNX Runtime, and h's cost as a fraction of f's."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=DEFAULT_EDGE_MODEL, help="edge model registry key")
    parser.add_argument("--num-classes", type=int, default=19, help="M (default 19)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = f"{args.width}x{args.height}"
    f = build_edge_model(args.model, args.num_classes).eval()
    h = MinerNet(args.num_classes).eval()
    rgb = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    x = preprocess(rgb).numpy()
    print(
        f"f = {args.model} (M={args.num_classes}, {count_params(f) / 1e6:.2f}M params), {size}, batch 1, "
        f"{args.threads} threads, up to {args.repeats} calls per line"
    )

    torch_backend = TorchBackend(f)
    t_torch = time_calls(lambda: torch_backend.logits(x), args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        t0 = time.perf_counter()
        path = export_onnx(f, Path(tmp) / "f.onnx", args.height, args.width, dynamic=False)
        export_s = time.perf_counter() - t0
        ort_backend = OnnxBackend(path, threads=args.threads)
        t_ort = time_calls(lambda: ort_backend.logits(x), args.repeats)
        ort_out, torch_out = ort_backend.logits(x), torch_backend.logits(x)
    agree = float((ort_out.argmax(1) == torch_out.argmax(1)).mean())
    print(f"f torch eager : {t_torch}")
    print(f"f ONNX Runtime: {t_ort}  (fixed-size export took {export_s:.1f} s)")
    print(
        f"  torch / ORT: {t_torch.median / t_ort.median:.2f}x median, {t_torch.best / t_ort.best:.2f}x best; "
        f"max |logit diff| {float(np.abs(ort_out - torch_out).max()):.1e}; labels agree {agree * 100:.3f} %"
    )

    logits = torch.from_numpy(torch_out)
    miner = NeuralMiner(h)
    t_h = time_calls(lambda: miner.confidence(logits), args.repeats)
    flops_f, flops_h = flops(f, torch.from_numpy(x)), flops(h, logits)
    print(f"h = MinerNet(in_size={h.in_size}) on f's logits: {t_h}, {count_params(h) / 1e6:.2f}M params")
    print(
        f"  h / f: time {t_h.median / t_torch.median:.3f} (torch f), "
        f"{t_h.median / t_ort.median:.3f} (ORT f); "
        f"FLOPs {flops_h / 1e9:.2f} / {flops_f / 1e9:.2f} G = {flops_h / flops_f:.3f}; "
        f"params {count_params(h) / count_params(f):.2f}"
    )

    predictor = EdgePredictor(f, miner)
    t_pred = time_calls(lambda: predictor.predict(rgb), args.repeats)
    print(f"EdgePredictor.predict (torch f + h + softmax/argmax at {size}): {t_pred}")
    print(f"  predict / (f + h): {t_pred.median / (t_torch.median + t_h.median):.2f}x median")
    print(f"(bench_models: {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
