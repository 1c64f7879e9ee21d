"""`make bench`: the performance benches side by side in one run, every figure beside its target, bench.json.

Each module of PERF_BENCHES that defines ``entries(quick=False) -> dict[str, dict]`` (``benchjson.entry``
dicts) is asked for its entries; one without ``entries`` has its ``main()`` run and prints only. The
merged entries, every key of issue 13's table (``benchjson.TARGETS``) included, go to
runs/bench/bench.json with the machine and the load average before and after. A bench module that is
missing or fails is reported, and its keys are written as not measured with the reason; GPU keys say
"not measured: no GPU" without CUDA.

The slow quality and ablation benches (QUALITY_BENCHES: f vs F per LVM, the miners' AUROC, stream
normalisation, update ablations; tens of minutes) are not part of ``make bench``: run
``make bench-quality`` (``python bench/run_all.py --quality``).

    python bench/run_all.py [--quick] [--out runs/bench/bench.json] [--only bench_models ...]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the bench modules import each other by name (benchjson, bench_fusion)
    sys.path.insert(0, str(HERE))

import benchjson  # noqa: E402

PERF_BENCHES: dict[str, tuple[str, ...]] = {
    "bench_models": ("edge_predict_over_networks", "edge_node_over_predict", "f_ort_fps_640x480", "h_over_f"),
    "bench_fusion": ("fusion_over_loop", "fusion_over_input_read"),
    "bench_link": ("upload_bytes_over_raw", "hard_frame_over_physical"),
    "bench_cloud": ("cloud_frames_per_s",),
    "bench_gpu": (
        "sam_vit_h_everything_s",
        "fusion_cuda_ms",
        "fusion_cuda_over_input_read",
        "fusion_cuda_over_numpy",
        "f_cuda_ms_640x480",
        "h_cuda_ms",
        "edge_predict_over_networks_cuda",
    ),
}
"""Performance bench modules (bench/<name>.py) and the keys of issue 13's table each one measures."""

QUALITY_BENCHES = (
    "bench_lvm_quality",
    "bench_lvm_masks",
    "bench_miner_quality",
    "bench_stream_norm",
    "ablate_updates",
)
"""Slow quality and ablation benches: only with --quality (``make bench-quality``)."""


def call_main(name: str) -> None:
    """Run bench/<name>.py's main() with no arguments (an argv list where it takes one, else a bare argv)."""
    main_fn = importlib.import_module(name).main
    saved, sys.argv = sys.argv, [str(HERE / f"{name}.py")]
    try:
        main_fn([]) if inspect.signature(main_fn).parameters else main_fn()
    finally:
        sys.argv = saved


def run_module(name: str, quick: bool) -> tuple[dict[str, dict], str | None]:
    """Import bench/<name>.py and collect its entries: (entries, None) or ({}, why it gave none)."""
    if not (HERE / f"{name}.py").is_file():
        return {}, f"bench/{name}.py is missing"
    try:
        module = importlib.import_module(name)
        entries_fn = getattr(module, "entries", None)
        if entries_fn is None:
            call_main(name)
            return {}, f"bench/{name}.py has no entries() (its main() ran and printed only)"
        found: dict[str, dict] = dict(entries_fn(quick=quick))
    except Exception as err:  # one failing bench must not hide the others' figures
        traceback.print_exc()
        return {}, f"bench/{name}.py failed: {type(err).__name__}: {str(err)[:200]}"
    for key, item in found.items():
        benchjson.check_entry(key, item)
    return found, None


def run_quality(names: tuple[str, ...]) -> list[str]:
    """Run the quality benches' main() one after another; returns the names of those that failed."""
    failed = []
    for name in names:
        print(f"\n=== {name} (quality) ===", flush=True)
        start = time.perf_counter()
        try:
            call_main(name)
        except Exception as err:  # report and go on with the other benchmarks
            traceback.print_exc()
            failed.append(f"{name}: {type(err).__name__}: {err}")
        print(f"({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    return failed


def run(names: list[str], quick: bool, out: Path) -> tuple[dict[str, dict], list[str]]:
    """Run the perf benches, write bench.json; returns (all entries, problems: missing or failed benches)."""
    load_before = os.getloadavg()
    rough = " (quick run: rough figures)" if quick else ""
    before = " ".join(f"{v:.2f}" for v in load_before)
    print(f"load average before: {before} on {os.cpu_count()} CPUs{rough}", flush=True)
    merged: dict[str, dict] = {}
    why: dict[str, str] = {}
    problems: list[str] = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        found, problem = run_module(name, quick)
        for key, item in found.items():
            print(benchjson.format_entry(key, item), flush=True)
        if problem is not None:
            print(f"{name}: {problem}", file=sys.stderr, flush=True)
            problems.append(problem)
            why.update({key: problem for key in PERF_BENCHES.get(name, ())})
        merged.update(found)
        print(f"({name}: {time.perf_counter() - start:.1f} s)", flush=True)
    for name in set(PERF_BENCHES) - set(names):
        why.update({key: f"bench/{name}.py was not run (--only)" for key in PERF_BENCHES[name]})
    entries = benchjson.fill_missing(merged, why)
    machine: dict[str, Any] = benchjson.machine_info(load_before)
    machine["quick"] = quick
    path = benchjson.write_bench_json(entries, machine, out)
    print("\n=== issue 13 targets ===")
    for key in benchjson.TARGETS:
        print(benchjson.format_entry(key, entries[key]))
    after = machine["load_average_after"]
    print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}; wrote {path}")
    return entries, problems


def main(argv: list[str] | None = None) -> int:
    """Returns 1 when a bench failed (a missing bench module is reported, not a failure), else 0."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=benchjson.BENCH_JSON, help="bench.json path")
    parser.add_argument("--only", nargs="+", choices=sorted(PERF_BENCHES), help="run only these benches")
    parser.add_argument("--quality", action="store_true", help="run the slow quality benches instead")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quality:
        failed = run_quality(QUALITY_BENCHES)
        for line in failed:
            print(f"failed: {line}", file=sys.stderr)
        return 1 if failed else 0
    _, problems = run(args.only or list(PERF_BENCHES), args.quick, args.out)
    return 1 if any("failed" in p for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
