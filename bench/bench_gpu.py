"""GPU figures of issue 13: SAM(x) everything mode, Algorithm 1's device path, f and h on CUDA.

Run once on a lent GPU (the device machine of this workplace; one prepared call):

    python3 bench/bench_gpu.py --out gpu.json       # needs CUDA; --smoke runs tiny sizes on the CPU

It measures, with CUDA events synchronised and medians over repeats after a warm-up:
- SAM ViT-B and ViT-H "segment everything" (``lvm.sam.SamLVM``, segment-anything's automatic mask
  generator, 32 x 32 point prompts decoded ``points_per_batch`` at a time) per 1024 px image, with
  RANDOM weights (no checkpoint can be downloaded here): the image encoder and the prompt decoder do
  the same arithmetic as with trained weights; the post-processing (thresholds, NMS, RLE on the CPU)
  keeps fewer masks than trained weights would, so it is a lower bound of that part;
- Algorithm 1 (``algo.fusion.assisted_inference``) on CUDA tensors, 19 classes, 100 masks, 1024x2048,
  against the numpy path on the same inputs (labels must be equal);
- f (the default edge model, random head) and h (MinerNet) and ``EdgePredictor.predict`` on CUDA at
  640x480.

The results of that run are recorded in bench/results/gpu.json (GPU name, date, commit). ``entries``
gives ``make bench`` the ``sam_vit_h_everything_s`` key: measured live when this machine has CUDA,
else the recorded figure with the GPU named and a note saying it was not re-measured here.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gpu.json"
"""The figures of the one GPU run (written by hand from --out; read by ``entries``)."""


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> list[float]:
    """Wall seconds of ``repeats`` calls of fn after one warm-up call, synchronising the device."""
    fn()
    sync()
    out = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - start)
    return out


def summary(seconds: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "n": float(len(seconds))}


def bench_sam(device: str, smoke: bool, keep_all: bool = False) -> dict[str, Any]:
    """Everything mode of SAM ViT-B / ViT-H (random weights) per 1024 px image, two prompt batch sizes.

    ``keep_all`` sets the IoU and stability thresholds to 0, so every decoded mask goes through the
    post-processing (NMS, RLE): with random weights the default thresholds keep almost none, which
    makes that part cheaper than with trained weights; keep_all bounds it from above."""
    import torch
    from laecips_core.benchmark import BenchmarkConfig, generate_frame
    from laecips_core.lvm.sam import SamLVM, build_tiny_sam

    if smoke:
        image = generate_frame(BenchmarkConfig(width=96, height=72), 3).image
        models: dict[str, Callable[[], Any]] = {"tiny": lambda: build_tiny_sam(seed=0)}
        batches, side, repeats = (16,), 4, 1
    else:
        from segment_anything import sam_model_registry

        image = generate_frame(BenchmarkConfig(width=1024, height=768), 3).image
        torch.manual_seed(0)
        models = {
            name: (lambda name=name: sam_model_registry[name](checkpoint=None)) for name in ("vit_b", "vit_h")
        }
        batches, side, repeats = (64, 256), 32, 3
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    out: dict[str, Any] = {"image": list(image.shape), "points_per_side": side, "keep_all": keep_all}
    for name, build in models.items():
        start = time.perf_counter()
        with torch.device(device):
            sam = build()
        sam = sam.to(device).eval()
        out[f"{name}_build_s"] = time.perf_counter() - start
        out[f"{name}_params"] = sum(p.numel() for p in sam.parameters())
        for batch in batches:
            thresholds = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0} if keep_all else {}
            lvm = SamLVM(sam, device=device, points_per_side=side, points_per_batch=batch, **thresholds)
            masks: list[int] = []

            def run(lvm: SamLVM = lvm, masks: list[int] = masks) -> None:
                masks.append(int(lvm.generate(image).shape[0]))

            res = summary(timed(run, repeats, sync))
            res["masks"] = float(masks[-1])
            out[f"{name}_everything_batch{batch}"] = res
            print(f"SAM {name} everything, {side}x{side} prompts, batch {batch}: {res}", flush=True)
        del sam
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return out


def bench_fusion(device: str, smoke: bool) -> dict[str, Any]:
    """Algorithm 1 on ``device`` tensors vs the numpy path (same labels), K masks, M classes."""
    import torch
    from laecips_core.algo.fusion import assisted_inference

    m, k, (h, w) = (5, 6, (32, 64)) if smoke else (19, 100, (1024, 2048))
    rng = np.random.default_rng(0)
    probs = rng.random((m, h, w), dtype=np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    masks = np.zeros((k, h, w), dtype=bool)
    for i in range(k):  # overlapping rectangles of random sizes, like an everything-mode mask set
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        masks[i, y0 : y0 + rng.integers(2, max(3, h // 3)), x0 : x0 + rng.integers(2, max(3, w // 3))] = True
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    want = assisted_inference(probs, masks)
    tp, tm = torch.from_numpy(probs).to(device), torch.from_numpy(masks).to(device)
    got = assisted_inference(tp, tm)
    equal = bool(np.array_equal(want, got.cpu().numpy()))
    repeats = 3 if smoke else 10
    dev = summary(timed(lambda: assisted_inference(tp, tm), repeats, sync))
    cpu = summary(timed(lambda: assisted_inference(probs, masks), 3 if smoke else 5, lambda: None))
    read = summary(timed(lambda: (tp.sum(), tm.sum()), repeats, sync))
    out = {"shape": [m, h, w], "masks": k, "labels_equal_numpy": equal, "device": dev, "numpy_cpu": cpu,
           "device_input_read": read}  # fmt: skip
    print(f"fusion on {device}: {dev}; numpy on this CPU: {cpu}; equal labels: {equal}", flush=True)
    return out


def bench_edge(device: str, smoke: bool) -> dict[str, Any]:
    """f, h and EdgePredictor.predict on ``device`` at 640x480 (random head weights: same compute)."""
    import torch
    from laecips_core.algo.mining import MinerNet, NeuralMiner
    from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
    from laecips_core.algo.models import build_edge_model
    from laecips_core.algo.predictor import EdgePredictor

    name = "tiny_fcn" if smoke else DEFAULT_EDGE_MODEL
    hh, ww = (48, 64) if smoke else (480, 640)
    torch.manual_seed(0)
    f = build_edge_model(name, 16, pretrained_backbone=False).to(device).eval()
    net = MinerNet(16).to(device).eval()
    x = torch.randn(1, 3, hh, ww, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    repeats = 3 if smoke else 50
    with torch.inference_mode():
        logits = f(x)
        f_s = summary(timed(lambda: f(x), repeats, sync))
        h_s = summary(timed(lambda: net(logits), repeats, sync))
    predictor = EdgePredictor(f, NeuralMiner(net), device=device)
    rgb = np.random.default_rng(0).integers(0, 256, (hh, ww, 3), dtype=np.uint8)
    p_s = summary(timed(lambda: predictor.predict(rgb), repeats, sync))
    out = {"model": name, "size": [hh, ww], "f": f_s, "h": h_s, "predict": p_s}
    print(f"edge on {device}: f {f_s}, h {h_s}, predict {p_s}", flush=True)
    return out


STEPS: tuple[tuple[str, Callable[[str, bool], dict[str, Any]]], ...] = (
    ("edge", bench_edge),
    ("fusion", bench_fusion),
    ("sam", bench_sam),
)
"""The measurements of one run, in order (the cheap ones first: a call brings back what it can)."""


def machine(device: str) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none (CPU smoke run)"
    commit = os.environ.get("LAECIPS_COMMIT", "")  # the device machine gets a copy of the tree, no .git
    if not commit:
        try:
            argv = ["git", "rev-parse", "--short", "HEAD"]
            run = subprocess.run(argv, capture_output=True, text=True, cwd=HERE, check=False, timeout=10)
            commit = run.stdout.strip()
        except OSError:
            commit = ""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    versions = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    return {"gpu": gpu, **versions, "date": now, "commit": commit}


def entries_from(result: dict[str, Any], note: str) -> dict[str, dict]:
    """bench.json entries of one bench_gpu result (``main``'s JSON): SAM, CUDA fusion, f/h/predict."""
    from benchjson import entry, target_entry

    sam = result["sam"]
    best = min(sam[k]["median_s"] for k in sam if k.startswith("vit_h_everything"))
    fusion, edge = result["fusion"], result["edge"]
    fuse_s, read_s = fusion["device"]["median_s"], fusion["device_input_read"]["median_s"]
    f_s, h_s, p_s = (edge[k]["median_s"] for k in ("f", "h", "predict"))
    equal = "same labels as numpy" if fusion["labels_equal_numpy"] else "LABELS DIFFER from numpy"
    return {
        "sam_vit_h_everything_s": target_entry("sam_vit_h_everything_s", best, note + "; best prompt batch"),
        "fusion_cuda_ms": entry(1000 * fuse_s, None, "ms", note=f"{note}; 19x1024x2048, 100 masks, {equal}"),
        "fusion_cuda_over_input_read": entry(fuse_s / read_s, 2.0, "x", note=note),
        "fusion_cuda_over_numpy": entry(fusion["numpy_cpu"]["median_s"] / fuse_s, None, "x",
                                        note=note + "; numpy on the GPU machine's CPU"),  # fmt: skip
        "f_cuda_ms_640x480": entry(1000 * f_s, None, "ms", note=note),
        "h_cuda_ms": entry(1000 * h_s, None, "ms", note=note),
        "edge_predict_over_networks_cuda": entry(p_s / (f_s + h_s), 1.15, "x", note=note),
    }


def entries(quick: bool = False) -> dict[str, dict]:
    """The GPU keys of bench.json: measured now with CUDA, else the recorded GPU run (GPU named)."""
    from benchjson import NO_GPU_NOTE, RECORDED_PREFIX, cuda_available, target_entry

    if cuda_available() and not quick:
        result = {"machine": machine("cuda"), **{name: fn("cuda", False) for name, fn in STEPS}}
        return entries_from(result, f"measured now on {result['machine']['gpu']} (random weights)")
    if not RESULTS.is_file():
        return {"sam_vit_h_everything_s": target_entry("sam_vit_h_everything_s", None, NO_GPU_NOTE)}
    rec = json.loads(RESULTS.read_text(encoding="utf-8"))
    where = rec["machine"]
    note = (
        f"{RECORDED_PREFIX}{where['gpu']} on {where['date'][:10]} (commit {where['commit']}, "
        "bench/bench_gpu.py, random weights); not re-measured here: no GPU"
    )
    return entries_from(rec, note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the raw figures")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the script)")
    parser.add_argument("--sam-keep-all", action="store_true", help="only SAM, every mask post-processed")
    args = parser.parse_args(argv)
    import torch

    device = "cpu" if args.smoke else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; run it on a GPU (or --smoke on the CPU)", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"machine": machine(device)}
    print(f"bench_gpu on {result['machine']['gpu']}", flush=True)
    steps = STEPS
    if args.sam_keep_all:
        steps = (("sam", lambda device, smoke: bench_sam(device, smoke, keep_all=True)),)
    for name, fn in steps:
        try:
            result[name] = fn(device, args.smoke)
        except Exception as err:  # report and go on: one device call must bring back what it can
            result[name] = {"error": repr(err)}
            print(f"bench_gpu: {name} failed: {err!r}", file=sys.stderr, flush=True)
        args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0 if all("error" not in result[name] for name, _ in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
