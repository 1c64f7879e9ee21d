"""Evaluation figures: Fig. 5 (class drift), Fig. 8 (mIoU vs CUR), Fig. 9 (per task), Fig. 3 panels."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from laecips_core import imaging
from laecips_core.benchmark import task_label
from laecips_core.files import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHOD_COLORS: dict[str, str] = {
    "LAECIPS": "tab:red",
    "LAECIPS-paper": "tab:pink",
    "DCSB": "tab:orange",
    "MESS": "tab:green",
    "SM": "tab:purple",
    "SPP": "tab:brown",
    "EDGE": "tab:gray",
    "EDGE-TTA": "tab:olive",
    "CLOUD": "tab:blue",
}


class QualitativePanel(Protocol):
    """One Fig. 3 row, as the evaluation records it (``evaluation.Panel`` fits): images are HxW(x3) uint8."""

    @property
    def index(self) -> int: ...
    @property
    def task_id(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def image(self) -> np.ndarray: ...
    @property
    def labels(self) -> np.ndarray: ...
    @property
    def edge(self) -> np.ndarray: ...
    @property
    def fused(self) -> np.ndarray: ...


MINER_STYLE: dict[str, tuple[str, str]] = {
    "neural": ("neural h (LAECIPS/DCSB)", "tab:red"),
    "mess": ("MESS (Eq. 22)", "tab:green"),
    "sm": ("SM (Eq. 23)", "tab:purple"),
    "spp": ("SPP (Eq. 24)", "tab:brown"),
}


def _figure(width: float, height: float) -> Figure:
    """A matplotlib Figure without pyplot (no global state, any thread, Agg canvas)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110)


def _save(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to PNG and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_class_frequency(
    class_frequency: dict[str, Sequence[float]],
    class_names: Sequence[str],
    path: Path,
    task_names: Mapping[str, str] | None = None,
) -> Path:
    """Fig. 5: share of ground-truth pixels of each class, one bar per task (the data drift).

    Args:
        class_frequency: task id (str) -> (M,) pixel fractions summing to 1.
        class_names: the M class names.
        path: PNG to write.
        task_names: task id (str) -> its name in the figure (default "task <id + 1>").
    """
    tasks = list(class_frequency)
    m = len(class_names)
    fig = _figure(max(8.0, 0.55 * m + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    if not tasks:
        ax.text(0.5, 0.5, "class frequency unavailable: the stream has no labels", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    width = 0.8 / max(len(tasks), 1)
    x = np.arange(m)
    cmap = _task_colors(len(tasks))
    for i, task in enumerate(tasks):
        values = np.asarray(class_frequency[task], dtype=np.float64)[:m]
        ax.bar(
            x + (i - (len(tasks) - 1) / 2) * width,
            100 * values,
            width,
            label=(task_names or {}).get(str(task), task_label(int(task))),
            color=cmap[i],
        )
    ax.set_xticks(x)
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of labelled pixels [%]")
    ax.set_title("Fig. 5: class frequency per task (ground truth of the evaluated stream)")
    ax.legend(fontsize=8, ncols=min(len(tasks), 5))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _task_colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(v) for v in np.linspace(0.05, 0.9, max(n, 1))]


def plot_miou_vs_cur(results: dict[str, Any], path: Path) -> Path:
    """Fig. 8: mIoU vs CUR of each miner while delta sweeps, all with the same starting edge model.

    Also drawn: the ORACLE curve (best possible order of uploads), EDGE (CUR 0) and CLOUD (CUR 1) of
    the starting f, and each miner's operating point at its calibrated delta.
    """
    curves = results.get("fig8") or {}
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    if not curves:
        ax.text(0.5, 0.5, "mIoU unavailable: the stream has no labels", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    deltas = results.get("thresholds", {}).get("deltas", {})
    for name, (label, color) in MINER_STYLE.items():
        curve = curves.get(name)
        if not curve:
            continue
        ax.plot(
            100 * np.asarray(curve["cur"]),
            curve["miou"],
            color=color,
            label=f"{label}, AUC {curve['auc']:.3f}",
            lw=1.6,
        )
        if name in deltas:
            cur, miou = _point_at(curve, deltas[name])
            ax.plot(100 * cur, miou, "o", color=color, ms=6, mec="black")
    oracle = curves.get("ORACLE")
    if oracle:
        ax.plot(
            100 * np.asarray(oracle["cur"]),
            oracle["miou"],
            "k--",
            lw=1,
            label=f"oracle, AUC {oracle['auc']:.3f}",
        )
        ax.plot(0, oracle["miou"][0], "s", color=METHOD_COLORS["EDGE"], ms=7, label="EDGE (f only)")
        ax.plot(100, oracle["miou"][-1], "s", color=METHOD_COLORS["CLOUD"], ms=7, label="CLOUD (F(x) always)")
    ax.set_xlabel("CUR: cloud upload rate [%]")
    ax.set_ylabel("mIoU (frame mean, Eq. 25)")
    ax.set_title("Fig. 8: mIoU vs CUR sweeping delta (starting f, no update)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_xlim(-2, 102)
    return _save(fig, path)


def _point_at(curve: dict[str, Any], delta: float) -> tuple[float, float]:
    """(CUR, mIoU) of a sweep curve at the largest swept delta <= ``delta``."""
    best = 0
    for i, d in enumerate(curve["delta"]):
        if d is None or d <= delta:
            best = i
    return float(curve["cur"][best]), float(curve["miou"][best])


def plot_per_task(results: dict[str, Any], path: Path) -> Path:
    """Fig. 9: mIoU and CUR of every method on each task, in stream order."""
    tasks = results["task_order"]
    fig = _figure(10.0, 4.0)
    ax_m = fig.add_subplot(1, 2, 1)
    ax_c = fig.add_subplot(1, 2, 2)
    x = np.arange(len(tasks))
    for name, method in results["methods"].items():
        by_task = {t["task_id"]: t for t in method["tasks"]}
        miou = [_nan(by_task.get(t, {}).get("miou")) for t in tasks]
        cur = [100 * _nan(by_task.get(t, {}).get("cur")) for t in tasks]
        color, width = METHOD_COLORS.get(name), 2.2 if name == "LAECIPS" else 1.3
        ax_m.plot(x, miou, label=name, color=color, marker="o", lw=width)
        ax_c.plot(x, cur, label=name, color=color, marker="o", lw=width)
    for ax, ylabel in ((ax_m, "mIoU (frame mean)"), (ax_c, "CUR [%]")):
        ax.set_xticks(x)
        ax.set_xticklabels([_task_name(results, t) for t in tasks])
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if not results.get("miou_available"):
        ax_m.text(
            0.5, 0.5, "mIoU unavailable (no labels)", ha="center", va="center", transform=ax_m.transAxes
        )
    ax_c.set_ylim(-3, 103)
    ax_c.legend(fontsize=8, loc="center right")
    fig.suptitle("Fig. 9: per-task mIoU and cloud upload rate of each method", fontsize=10)
    return _save(fig, path)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _task_name(results: dict[str, Any], task_id: int) -> str:
    """A task's name in the results (``task_labels``), "task <id + 1>" when they have none."""
    return str(results.get("task_labels", {}).get(str(task_id), task_label(task_id)))


def plot_qualitative(
    panels: Sequence[QualitativePanel],
    num_classes: int,
    path: Path,
    task_names: Mapping[str, str] | None = None,
) -> Path:
    """Fig. 3 style panels: image, ground truth, the edge model's f(x), the fused F(x) (Algorithm 1)."""
    rows = max(len(panels), 1)
    fig = _figure(11.0, 2.6 * rows)
    if not panels:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no uploaded labelled frame to show", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    pal = imaging.palette(num_classes)
    titles = ("image", "ground truth", "edge f(x)", "fused F(x)")
    for r, panel in enumerate(panels):
        images = (
            panel.image,
            imaging.colorize(panel.labels, pal),
            imaging.colorize(panel.edge, pal),
            imaging.colorize(panel.fused, pal),
        )
        for c, (img, title) in enumerate(zip(images, titles, strict=True)):
            ax = fig.add_subplot(rows, 4, r * 4 + c + 1)
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=10)
            if c == 0:
                name = (task_names or {}).get(str(panel.task_id), task_label(panel.task_id))
                ax.set_ylabel(f"{panel.method}\nframe {panel.index}\n{name}", fontsize=8)
    fig.suptitle(
        "Qualitative results (like the paper's Fig. 3): hard frames uploaded by LAECIPS", fontsize=10
    )
    return _save(fig, path)


def write_all(
    results: dict[str, Any],
    panels: Sequence[QualitativePanel],
    class_names: Sequence[str],
    num_classes: int,
    out: Path,
    *,
    progress: bool = True,
) -> list[Path]:
    """Write every figure of the evaluation into ``out`` and return their paths.

    Args:
        results: The evaluation's results (results.json's content).
        panels: Qualitative examples for the Fig. 3 style figure (``Simulation.panels``).
        class_names: The M class names (Fig. 5 legend).
        num_classes: M (palette size).
        out: Folder for the PNGs.
        progress: show a tqdm bar.
    """
    jobs: list[tuple[str, Callable[[Path], Path]]] = [
        (
            "fig5_class_frequency.png",
            lambda p: plot_class_frequency(
                results["class_frequency"], class_names, p, results.get("task_labels")
            ),
        ),
        ("fig8_miou_vs_cur.png", lambda p: plot_miou_vs_cur(results, p)),
        ("fig9_per_task.png", lambda p: plot_per_task(results, p)),
        (
            "qualitative.png",
            lambda p: plot_qualitative(panels, num_classes, p, results.get("task_labels")),
        ),
    ]
    written = []
    for name, job in tqdm(jobs, desc="figures", unit="png", disable=not progress, leave=False):
        written.append(job(out / name))
    return written
