"""``laecips eval``: LAECIPS and its baselines replayed on one stream, start to end, for the paper's
Table 1, Table 2 and Fig. 5, 8, 9: stream, starting f and h, delta per miner (Eq. 2), the replay with
Algorithm 2's updates, then results.json, the tables and the figures.

The steps live in config, sources, start_model, calibration, simulate and results; this module only
runs them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

import torch

from laecips_core.algo import fusion
from laecips_core.algo.assisted import AssistedInference
from laecips_core.evaluation.calibration import choose_deltas
from laecips_core.evaluation.results import build_results, task_labels, write_results_json, write_tables
from laecips_core.evaluation.run_config import SWEEP_MINERS, EvalConfig
from laecips_core.evaluation.simulate import simulate
from laecips_core.evaluation.sources import bag_source, benchmark_source, first_frame_size
from laecips_core.evaluation.start_model import prepare_start_model, working_size


def run_evaluation(cfg: EvalConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``laecips eval``: stream, starting model, thresholds, every method, then results and figures.

    Writes into ``cfg.out``: results.json, table1.md, table2.md and (with ``cfg.plots``)
    fig5_class_frequency.png, fig8_miou_vs_cur.png, fig9_per_task.png, qualitative.png.

    Args:
        cfg: What to evaluate.
        log: Called with progress lines (each step, one line per task and per method with the elapsed
            time); None = silent (the tqdm bars of ``cfg.progress`` only).

    Returns:
        The results dictionary that was written to results.json.
    """
    t_start = time.perf_counter()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _line: None)

    def step(what: str) -> None:
        say(f"eval: {what} (elapsed {time.perf_counter() - t_start:.1f} s)")

    source = bag_source(cfg) if cfg.bag is not None else benchmark_source(cfg)
    step(
        "preparing the starting f and h"
        + (f" (pre-training on task id {cfg.pretrain_task})" if cfg.pretrain_task is not None else "")
    )
    start, stream = prepare_start_model(cfg, source)
    start = replace(start, stream_norm_prior=cfg.stream_norm_prior)
    fuser = AssistedInference.build(cfg.lvm, cfg.lvm_kwargs, order=cast(fusion.MaskOrder, cfg.fusion_order))
    miners = [m for m in SWEEP_MINERS if m != "neural" or start.h is not None]
    step("choosing delta for the miners " + ", ".join(miners))
    deltas, threshold_info, calibration_conf = choose_deltas(cfg, start, stream, miners, fuser)
    trainer = replace(
        cfg.trainer, input_size=working_size(*first_frame_size(stream), max_pixels=cfg.train_max_pixels)
    )
    count = "all" if stream.total is None else str(stream.total)
    step(f"streaming {count} frames through {', '.join(cfg.methods)}")
    t_sim = time.perf_counter()
    sim = simulate(
        stream.frames(),
        start.f,
        start.h,
        start.num_classes,
        methods=cfg.methods,
        deltas=deltas,
        fuser=fuser,
        trainer=trainer,
        link=cfg.link,
        explore_rate=cfg.explore_rate,
        delta_window=cfg.delta_window,
        calibration_conf=calibration_conf,
        seed=cfg.seed,
        workdir=out,
        panels=cfg.panels,
        total=stream.total,
        progress=cfg.progress,
        stream_norm_prior=cfg.stream_norm_prior,
        log=log,
    )
    sim_s = time.perf_counter() - t_sim
    results = build_results(cfg, sim, start, stream, deltas, threshold_info)
    results["config"]["trainer"] = asdict(trainer)
    results["timing"]["simulate_wall_s"] = sim_s
    zero_based = True if source.description.get("kind") == "benchmark" else None
    labels = task_labels(sim.task_order, pretrain_task=cfg.pretrain_task, zero_based=zero_based)
    results["task_labels"] = {str(t): name for t, name in labels.items()}
    write_tables(results, out)
    if cfg.plots:
        from laecips_core.evaluation import plots

        step("writing the figures")
        plots.write_all(results, sim.panels, start.class_names, start.num_classes, out, progress=cfg.progress)
    step("done")
    results["timing"]["wall_s"] = time.perf_counter() - t_start
    write_results_json(results, out)
    return results
