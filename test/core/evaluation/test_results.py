"""results.json, Table 1 / Table 2, the terminal summary and the targets, from a hand-written result."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from laecips_core.evaluation.results import (
    check_targets,
    format_summary,
    result_task_label,
    table1_markdown,
    table2_markdown,
    task_labels,
    write_results_json,
    write_tables,
)


def _method(miou: float, cur: float, latency: float) -> dict:
    parts = {"edge_s": 0.01, "upload_s": latency - 0.01, "cloud_s": 0.0, "download_s": 0.0}
    tasks = [{"task_id": t, "miou": miou + 0.01 * t, "cur": cur} for t in (0, 1)]
    return {
        "miou": miou,
        "dataset_miou": miou,
        "cur": cur,
        "latency_s": latency,
        "latency_parts_s": parts,
        "tasks": tasks,
    }


def _results() -> dict:
    methods = {
        "LAECIPS": _method(0.6, 0.3, 0.2),
        "EDGE": _method(0.45, 0.0, 0.01),
        "CLOUD": _method(0.62, 1.0, 0.5),
    }
    return {
        "methods": methods,
        "messages": ["a note"],
        "task_order": [0, 1],
        "latency": {
            "bandwidth_mbps": 4.0,
            "rtt_s": 0.02,
            "mean_upload_bytes": 2048,
            "upload_jpeg_quality": 75,
            "mean_download_bytes": 1024,
            "formula": "latency = ...",
        },
        "targets": check_targets(methods, {}),
    }


def test_task_labels_follow_how_the_source_counts():
    assert task_labels([0, 1, 2], pretrain_task=None, zero_based=None) == {
        0: "task 1",
        1: "task 2",
        2: "task 3",
    }
    # A bag whose task ids already count from 1, pre-trained on its task 1: streamed 2..5 stay 2..5.
    labels = task_labels([2, 3, 4, 5], pretrain_task=1, zero_based=None)
    assert list(labels.values()) == ["task 2", "task 3", "task 4", "task 5"]
    assert task_labels([1, 2], pretrain_task=0, zero_based=None) == {1: "task 2", 2: "task 3"}
    assert task_labels([1], pretrain_task=None, zero_based=True) == {1: "task 2"}
    assert result_task_label({"task_labels": {"1": "task 1"}}, 1) == "task 1"
    assert result_task_label({}, 1) == "task 2"


def test_check_targets_values_and_goals():
    targets = _results()["targets"]
    assert math.isclose(targets["laecips_minus_edge_points"]["value"], 15.0)
    assert targets["laecips_minus_edge_points"]["met"] is True
    assert targets["laecips_cur"] == {"value": 0.3, "goal": "<= 0.40", "met": True}
    assert targets["latency_ratio_laecips_cloud"]["value"] == 0.4
    assert (
        targets["laecips_minus_dcsb_points"]["value"] is None
        and targets["laecips_minus_dcsb_points"]["met"] is None
    )
    assert "fig8_neural_auc_minus_best_other" not in targets  # no Fig. 8 curves


def test_tables_summary_and_files(tmp_path: Path):
    results = _results()
    table1 = table1_markdown(results)
    assert "| LAECIPS | 0.600 | 0.600 | 30.00 % | 0.200 |" in table1 and "Note: a note" in table1
    assert "2.0 KiB (JPEG q75)" in table1
    table2 = table2_markdown(results)
    assert (
        "task 1 mIoU | task 1 CUR | task 2 mIoU" in table2 and "| EDGE | 0.450 | 0.00 % | 0.460 |" in table2
    )
    summary = format_summary(results)
    assert "target laecips_cur: 0.300 (goal <= 0.40) met=True" in summary and "note: a note" in summary
    write_tables(results, tmp_path)
    assert (tmp_path / "table1.md").read_text() == table1 and (tmp_path / "table2.md").read_text() == table2
    write_results_json({"path": tmp_path, "x": np.float32(0.5), "a": np.arange(2)}, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == {
        "path": str(tmp_path),
        "x": 0.5,
        "a": [0, 1],
    }
