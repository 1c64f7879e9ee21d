"""results.json and the paper's tables: Table 1 (mIoU Eq. 25, CUR Eq. 26, latency Eq. 27 per method),
Table 2 (per task), the Fig. 8 curves and the issue's targets checked on them.
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from laecips_core import files
from laecips_core.algo import metrics
from laecips_core.benchmark import task_label
from laecips_core.evaluation.calibration import sweep_curves
from laecips_core.evaluation.records import Simulation
from laecips_core.evaluation.run_config import (
    LATENCY_FORMULA,
    SWEEP_MINERS,
    UPLOAD_JPEG_QUALITY,
    EvalConfig,
    config_dict,
)
from laecips_core.evaluation.sources import StreamSource
from laecips_core.evaluation.start_model import StartModel


def _json(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, tuples -> lists, Paths -> str."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def build_results(
    cfg: EvalConfig,
    sim: Simulation,
    start: StartModel,
    stream: StreamSource,
    deltas: dict[str, float],
    threshold_info: dict[str, Any],
) -> dict[str, Any]:
    """The results.json dictionary (schema in docs/evaluation.md)."""
    labelled = any(run.total.labelled for run in sim.methods.values())
    messages = list(stream.description.get("notes", [])) + list(threshold_info.get("notes", []))
    if not labelled:
        messages.append(
            "mIoU unavailable: the stream has no ground-truth labels (CUR and latency are computed)"
        )
    methods: dict[str, Any] = {}
    for name, run in sim.methods.items():
        entry = run.total.summary()
        entry["tasks"] = [{"task_id": t, **run.tasks[t].summary()} for t in sim.task_order if t in run.tasks]
        entry.update(
            {
                "miner": run.miner_name,
                "delta": deltas.get(run.miner_name) if run.miner_name else None,
                "delta_mean": float(np.mean(run.deltas)) if run.miner_name and run.deltas else None,
                "delta_last": run.delta if run.miner_name else None,
                "updates": run.updates,
                "final_version": run.version,
                "train_events": run.train_events,
                "train_s": run.train_s,
                "latency_percentiles_s": metrics.percentiles(run.latency, (50, 95)),
            }
        )
        methods[name] = entry
    curves = sweep_curves(sim.base, [m for m in SWEEP_MINERS if f"conf_{m}" in sim.base], cfg.sweep_points)
    results: dict[str, Any] = {
        "methods": methods,
        "dataset_miou": {name: m["dataset_miou"] for name, m in methods.items()},
        "miou_available": labelled,
        "messages": messages,
        "task_order": sim.task_order,
        "num_frames": sim.num_frames,
        "latency": {
            "formula": LATENCY_FORMULA,
            "bandwidth_mbps": cfg.bandwidth_mbps,
            "rtt_s": cfg.rtt_ms / 1e3,
            "upload_jpeg_quality": UPLOAD_JPEG_QUALITY,
            "mean_upload_bytes": sim.bytes["upload_bytes"],
            "mean_download_bytes": sim.bytes["download_bytes"],
            "mean_compute_s": sim.timing,
            "parts_s": {name: m["latency_parts_s"] for name, m in methods.items()},
        },
        "thresholds": threshold_info,
        "fig8": curves,
        "class_frequency": {
            str(t): (sim.class_pixels[t] / max(int(sim.class_pixels[t].sum()), 1)).tolist()
            for t in sim.task_order
            if t in sim.class_pixels
        },
        "class_names": start.class_names,
        "model": start.description,
        "stream": stream.description,
        "targets": check_targets(methods, curves),
        "config": config_dict(cfg),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        "timing": {},
    }
    return cast(dict[str, Any], _clean(results))


def check_targets(methods: dict[str, Any], curves: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets on the results: differences in mIoU points, CUR, latency ratio, Fig. 8 order."""

    def get(name: str, key: str) -> float | None:
        value = methods.get(name, {}).get(key)
        return None if value is None else float(value)

    checks: dict[str, Any] = {}

    def add(key: str, value: float | None, ok: Callable[[float], bool], goal: str) -> None:
        checks[key] = {"value": value, "goal": goal, "met": None if value is None else bool(ok(value))}

    lae, edge, dcsb, cloud = (get(n, "miou") for n in ("LAECIPS", "EDGE", "DCSB", "CLOUD"))
    tta = get("EDGE-TTA", "miou")
    add(
        "laecips_minus_edge_tta_points",
        None if lae is None or tta is None else 100 * (lae - tta),
        lambda v: v >= 2,
        ">= +2",
    )
    for name in ("MESS", "SM", "SPP"):
        other = get(name, "miou")
        add(
            f"laecips_minus_{name.lower()}_points",
            None if lae is None or other is None else 100 * (lae - other),
            lambda v: v > 0,
            "> 0",
        )
    lae_tasks = {t["task_id"]: t for t in methods.get("LAECIPS", {}).get("tasks", [])}
    dcsb_tasks = {t["task_id"]: t for t in methods.get("DCSB", {}).get("tasks", [])}
    gaps = [
        100 * (lae_tasks[t]["miou"] - dcsb_tasks[t]["miou"])
        for t in lae_tasks
        if t in dcsb_tasks and lae_tasks[t].get("miou") is not None and dcsb_tasks[t].get("miou") is not None
    ]
    add("laecips_minus_dcsb_worst_task_points", min(gaps) if gaps else None, lambda v: v >= -2, ">= -2")
    add(
        "laecips_minus_edge_points",
        None if lae is None or edge is None else 100 * (lae - edge),
        lambda v: v >= 10,
        ">= +10",
    )
    add(
        "laecips_minus_dcsb_points",
        None if lae is None or dcsb is None else 100 * (lae - dcsb),
        lambda v: v >= 3,
        ">= +3",
    )
    add(
        "cloud_minus_laecips_points",
        None if lae is None or cloud is None else 100 * (cloud - lae),
        lambda v: v <= 5,
        "<= 5",
    )
    add("laecips_cur", get("LAECIPS", "cur"), lambda v: v <= 0.40, "<= 0.40")
    lat_l, lat_c = get("LAECIPS", "latency_s"), get("CLOUD", "latency_s")
    add(
        "latency_ratio_laecips_cloud",
        None if not lat_l or not lat_c else lat_l / lat_c,
        lambda v: v <= 0.55,
        "<= 0.55",
    )
    if "neural" in curves:
        others = [curves[m]["auc"] for m in ("mess", "sm", "spp") if m in curves]
        margin = curves["neural"]["auc"] - max(others) if others else None
        add(
            "fig8_neural_auc_minus_best_other",
            margin,
            lambda v: v > 0,
            "> 0 (neural curve above MESS/SM/SPP)",
        )
    return checks


# --------------------------------------------------------------------------------------- tables and text


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table1_markdown(results: dict[str, Any]) -> str:
    """Table 1 of the paper: mIoU / CUR / latency per method over the whole stream."""
    lines = [
        "# Table 1: average performance over the stream",
        "",
        "mIoU = mean frame mIoU (Eq. 25); dataset mIoU = over the stream's confusion matrix; "
        "CUR = cloud upload rate (Eq. 26); latency = mean per-frame delay (Eq. 27, link model below).",
        "",
        "| Method | mIoU | dataset mIoU | CUR | latency (s) | edge (s) | upload (s) | cloud (s) "
        "| download (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results["methods"].items():
        p = m["latency_parts_s"]
        lines.append(
            f"| {name} | {_num(m['miou'])} | {_num(m['dataset_miou'])} | {_pct(m['cur'])} | "
            f"{_num(m['latency_s'])} | {_num(p['edge_s'], 4)} | {_num(p['upload_s'], 4)} | "
            f"{_num(p['cloud_s'], 4)} | {_num(p['download_s'], 4)} |"
        )
    lat = results["latency"]
    lines += [
        "",
        f"Link: {lat['bandwidth_mbps']} Mbit/s, RTT {1e3 * lat['rtt_s']:.0f} ms; mean upload "
        f"{lat['mean_upload_bytes'] / 1024:.1f} KiB (JPEG q{lat['upload_jpeg_quality']}), mean fused-label "
        f"download {lat['mean_download_bytes'] / 1024:.1f} KiB.",
        "",
        f"Formula: {lat['formula']}",
    ]
    if results["messages"]:
        lines += ["", *[f"Note: {msg}" for msg in results["messages"]]]
    return "\n".join(lines) + "\n"


def table2_markdown(results: dict[str, Any]) -> str:
    """Table 2 of the paper: mIoU and CUR of every method on each task, in stream order."""
    tasks = results["task_order"]
    names = {t: result_task_label(results, t) for t in tasks}
    head = "| Method | " + " | ".join(f"{names[t]} mIoU | {names[t]} CUR" for t in tasks) + " |"
    counted = all(names[t] == f"task {t + 1}" for t in tasks)
    lines = [
        "# Table 2: per-task mIoU and CUR",
        "",
        "Tasks are numbered from 1 as in the paper: "
        + (
            "task t is task id t - 1 in the stream or bag."
            if counted
            else "the bag's task ids already count from 1 and are used as they are."
        ),
        "",
        head,
        "|---|" + "---|---|" * len(tasks),
    ]
    for name, m in results["methods"].items():
        by_task = {t["task_id"]: t for t in m["tasks"]}
        cells = []
        for t in tasks:
            row = by_task.get(t, {})
            cells.append(f"{_num(row.get('miou'))} | {_pct(row.get('cur'))}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def result_task_label(results: dict[str, Any], task_id: int) -> str:
    """The name of a task id in a results dictionary (its ``task_labels``; "task <id + 1>" without)."""
    return str(results.get("task_labels", {}).get(str(task_id), task_label(task_id)))


def write_tables(results: dict[str, Any], out: Path) -> None:
    """Write table1.md and table2.md into ``out``."""
    files.atomic_write_bytes(out / "table1.md", table1_markdown(results).encode())
    files.atomic_write_bytes(out / "table2.md", table2_markdown(results).encode())


def format_summary(results: dict[str, Any]) -> str:
    """A few lines for the terminal: per method mIoU, CUR, latency, and the targets."""
    lines = [f"{'method':8s} {'mIoU':>7s} {'CUR':>8s} {'latency':>9s}"]
    for name, m in results["methods"].items():
        lines.append(f"{name:8s} {_num(m['miou']):>7s} {_pct(m['cur']):>8s} {_num(m['latency_s']):>8s}s")
    for msg in results["messages"]:
        lines.append(f"note: {msg}")
    for key, check in results["targets"].items():
        value = check["value"]
        shown = "n/a" if value is None else f"{value:.3f}"
        lines.append(f"target {key}: {shown} (goal {check['goal']}) met={check['met']}")
    return "\n".join(lines)


def task_labels(
    task_ids: Iterable[int], *, pretrain_task: int | None, zero_based: bool | None
) -> dict[int, str]:
    """The paper's names of the task ids of a run ("task 1", "task 2", ...).

    The built-in benchmark and time boundaries number tasks from 0 (task id 0 is "task 1"); a bag's task
    topic may already count from 1. Unless told (``zero_based``), ids are taken as 0-based when the
    smallest id of the run (the streamed ones and the pre-training task) is 0, else as the task numbers.

    Args:
        task_ids: The streamed task ids.
        pretrain_task: The task f and h were pre-trained on (not streamed), or None.
        zero_based: True/False when the source says how it counts; None to infer it.
    """
    ids = sorted(set(int(t) for t in task_ids))
    if zero_based is None:
        known = ids + ([int(pretrain_task)] if pretrain_task is not None else [])
        zero_based = not known or min(known) == 0
    return {t: f"task {t + 1}" if zero_based else f"task {t}" for t in ids}


def write_results_json(results: dict[str, Any], out: Path) -> None:
    """Write ``results`` to ``out``/results.json (indented; Paths and numpy values as plain JSON)."""
    files.atomic_write_bytes(
        out / "results.json", (json.dumps(results, indent=2, default=_json) + "\n").encode()
    )
