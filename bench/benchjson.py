"""runs/bench/bench.json: issue 13's performance keys, each a value beside its target, and the machine.

Every bench module returns entries ``{"value": float | None, "target": float | None, "unit": str,
"met": bool | None, "note": str}`` (``entry``); ``write_bench_json`` merges them with the machine's
description (CPU count, load average before and after, torch / onnxruntime versions, date) and
replaces the file atomically. A key that was not measured has value None, met None and a note that
says why (``not_measured``); GPU keys say "not measured: no GPU" when torch sees no CUDA device.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from laecips_core.files import atomic_write_bytes

BENCH_JSON = Path("runs/bench/bench.json")
"""Where ``make bench`` writes its figures (relative to the repository root)."""

NO_GPU_NOTE = "not measured: no GPU"
RECORDED_PREFIX = "recorded on "
"""Notes of GPU figures measured once on a lent GPU (bench/results/gpu.json) start with this; they are
kept on a machine without CUDA, with the GPU named in the note."""

# key -> (target, direction, unit, what): the table of issue 13. Direction "<=" means lower is better.
TARGETS: dict[str, tuple[float | None, str, str, str]] = {
    "edge_predict_over_networks": (1.15, "<=", "x", "EdgePredictor.predict / (f + h), same backend, 640x480"),
    "edge_node_over_predict": (1.15, "<=", "x", "Image message in -> labels, overlay, result / predict"),
    "f_ort_fps_640x480": (30.0, ">=", "frames/s", "default f through ONNX Runtime, 2 threads"),
    "h_over_f": (0.15, "<=", "x", "h / f wall time, both through ONNX Runtime"),
    "fusion_over_loop": (50.0, ">=", "x", "vectorised Algorithm 1 / per-mask loop, same labels"),
    "fusion_over_input_read": (2.0, "<=", "x", "fusion / one read of scores and masks"),
    "upload_bytes_over_raw": (0.10, "<=", "x", "bytes per hard frame / raw RGB at the chosen JPEG quality"),
    "hard_frame_over_physical": (1.2, "<=", "x", "hard-frame total over a 4 Mbit/s link / physical floor"),
    "cloud_frames_per_s": (None, ">=", "frames/s", "cloud throughput, default CPU LVM, 1/2/4 robots"),
    "sam_vit_h_everything_s": (1.0, "<=", "s", "SAM ViT-H everything mode per 1024 px image on a GPU"),
}
GPU_KEYS = frozenset({"sam_vit_h_everything_s"})
"""Keys that only a GPU can measure (and any key whose name says cuda or gpu)."""


class BenchJsonError(ValueError):
    """An entry or a bench.json file that does not have the documented shape."""


def entry(
    value: float | None, target: float | None, unit: str, direction: str = "<=", note: str = ""
) -> dict:
    """One bench.json entry; ``met`` is value <= target (direction "<=") or value >= target (">=").

    Args:
        value: the measured figure, or None when it was not measured (then say why in ``note``).
        target: the issue's target, or None for a figure that is only reported.
        unit: "x" for ratios, "ms", "s", "frames/s", ...
        direction: "<=" (lower is better) or ">=".
        note: how it was measured (medians of how many repeats, sizes, load average) or why not.

    Returns:
        ``{"value", "target", "unit", "met", "note"}``; met is None without a value or a target.

    Raises:
        BenchJsonError: an unknown direction, or a value that is not a finite number.
    """
    if direction not in ("<=", ">="):
        raise BenchJsonError(f"direction must be '<=' or '>=', got {direction!r}")
    if value is not None:
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise BenchJsonError(f"value must be a finite number or None, got {value!r} ({note})")
    met = None
    if value is not None and target is not None:
        met = value <= target if direction == "<=" else value >= target
    return {
        "value": value,
        "target": None if target is None else float(target),
        "unit": unit,
        "met": met,
        "note": note,
    }


def target_entry(key: str, value: float | None, note: str) -> dict:
    """An entry of one of issue 13's keys with its target, direction and unit from ``TARGETS``."""
    target, direction, unit, _ = TARGETS[key]
    return entry(value, target, unit, direction, note)


def not_measured(key: str, why: str) -> dict:
    """A key of ``TARGETS`` that was not measured: value None, met None, note "not measured: <why>"."""
    return target_entry(key, None, why if why.startswith("not measured") else f"not measured: {why}")


def is_gpu_key(key: str) -> bool:
    """Whether a key is a GPU figure (listed in GPU_KEYS, or named ..._cuda... / ..._gpu...)."""
    return key in GPU_KEYS or "cuda" in key.split("_") or "gpu" in key.split("_")


def cuda_available() -> bool:
    """torch.cuda.is_available(), False where torch is missing."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def fill_missing(entries: Mapping[str, dict], why: Mapping[str, str] | None = None) -> dict[str, dict]:
    """All of ``entries`` plus every key of TARGETS they lack, as not measured (``why[key]`` if given).

    Without CUDA every GPU key is replaced by "not measured: no GPU", whatever a bench returned for it,
    except a figure recorded on a named GPU (note starting with ``RECORDED_PREFIX``, bench_gpu.entries).
    """
    why = why or {}
    out = dict(entries)
    gpu = cuda_available()
    for key in TARGETS:
        if key not in out:
            out[key] = not_measured(key, why.get(key, "no bench in this run produced it"))
    for key in out:
        if is_gpu_key(key) and not gpu and not str(out[key]["note"]).startswith(RECORDED_PREFIX):
            out[key] = entry(None, out[key]["target"], out[key]["unit"], _direction(key), NO_GPU_NOTE)
    return out


def _direction(key: str) -> str:
    return TARGETS[key][1] if key in TARGETS else "<="


def check_entry(key: str, item: object) -> None:
    """Raise BenchJsonError unless ``item`` has the shape ``entry`` returns."""
    want = {"value", "target", "unit", "met", "note"}
    if not isinstance(item, dict) or set(item) != want:
        got = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise BenchJsonError(f"bench.json entry {key!r} must have the keys {sorted(want)}, has {got}")


def machine_info(load_before: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """CPU count, load averages (before the benches and now), versions, date, and the GPU if any."""
    versions: dict[str, str] = {}
    for module in ("torch", "onnxruntime", "numpy"):
        try:
            versions[module] = str(__import__(module).__version__)
        except ImportError:
            versions[module] = "not installed"
    gpu = "none"
    if cuda_available():
        import torch

        gpu = torch.cuda.get_device_name(0)
    return {
        "cpu_count": os.cpu_count(),
        "load_average_before": list(load_before) if load_before is not None else None,
        "load_average_after": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": gpu,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **{f"{name}_version": version for name, version in versions.items()},
    }


def write_bench_json(
    entries: Mapping[str, dict], machine: Mapping[str, Any], path: str | os.PathLike[str] = BENCH_JSON
) -> Path:
    """Write ``{key: entry, ..., "machine": machine}`` atomically (a reader never sees half a file).

    Raises:
        BenchJsonError: an entry without the documented shape, or an entry named "machine".
    """
    if "machine" in entries:
        raise BenchJsonError("'machine' is reserved for the machine description")
    for key, item in entries.items():
        check_entry(key, item)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = {**{key: entries[key] for key in sorted(entries)}, "machine": dict(machine)}
    return atomic_write_bytes(out, (json.dumps(body, indent=2) + "\n").encode())


def read_bench_json(path: str | os.PathLike[str] = BENCH_JSON) -> tuple[dict[str, dict], dict[str, Any]]:
    """(entries, machine) of a bench.json file.

    Raises:
        BenchJsonError: not a JSON object, or an entry without the documented shape.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BenchJsonError(f"cannot read {path}: {err}; run `make bench` to write it") from err
    if not isinstance(data, dict):
        raise BenchJsonError(f"{path} must hold a JSON object")
    machine = data.pop("machine", {})
    for key, item in data.items():
        check_entry(key, item)
    return data, machine


def format_entry(key: str, item: Mapping[str, Any]) -> str:
    """One printed line: key, value, unit, direction and target, met / NOT met, note."""
    value = "n/a" if item["value"] is None else f"{item['value']:.4g}"
    target = "" if item["target"] is None else f"{_direction(key)} {item['target']:g}"
    met = {True: "met", False: "NOT met", None: ""}[item["met"]]
    return f"{key:<30s} {value:>9s} {item['unit']:<9s} {target:<8s} {met:<7s}  {item['note']}"
