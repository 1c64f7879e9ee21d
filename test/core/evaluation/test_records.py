"""What simulate records: per-task sums (CUR, mIoU, latency), per-frame lists, the shared record."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from laecips_core.algo import metrics
from laecips_core.evaluation.records import (
    MethodOutput,
    MethodRun,
    SharedFrame,
    StreamRecord,
    TaskAccumulator,
    frame_score,
)
from laecips_core.evaluation.sources import StreamFrame


def test_task_accumulator_summary():
    acc = TaskAccumulator()
    assert acc.summary()["cur"] is None and acc.summary()["miou"] is None
    conf = np.eye(2, dtype=np.int64)
    acc.add(True, 0.5, metrics.LatencyParts(0.1, 0.2, 0.3, 0.4), conf)
    acc.add(False, None, metrics.LatencyParts(0.1), None)  # an unlabelled easy frame
    s = acc.summary()
    assert s["frames"] == 2 and s["labelled"] == 1 and s["cur"] == 0.5 and s["miou"] == 0.5
    assert s["latency_s"] == pytest.approx((1.0 + 0.1) / 2)
    assert s["latency_parts_s"]["upload_s"] == pytest.approx(0.1) and s["dataset_miou"] == 1.0


def test_method_run_record_appends_one_frame_everywhere():
    run = MethodRun("DCSB", "neural", 0.4, False, version=2)
    run.record(7, True, 0.25, None, metrics.LatencyParts(0.5, 1.0), 0.3)
    run.record(8, False, None, None, metrics.LatencyParts(0.5), 0.9)
    assert run.deltas == [0.4, 0.4] and run.versions == [2, 2] and run.uploaded == [True, False]
    assert run.frame_miou[0] == 0.25 and math.isnan(run.frame_miou[1])
    assert run.latency == [1.5, 0.5] and run.confidence == [0.3, 0.9]
    assert set(run.tasks) == {7, 8} and run.total.frames == 2 and run.tasks[7].uploads == 1


def test_frame_score():
    gt = np.array([[0, 1], [1, 255]], np.uint8)
    miou, conf = frame_score(gt.clip(0, 1), gt, 2)
    assert miou == 1.0 and conf is not None and conf.sum() == 3
    assert frame_score(gt, None, 2) == (None, None)


def _frame(index: int, task: int, labels: np.ndarray | None) -> StreamFrame:
    return StreamFrame(index, task, 0.1 * index, np.zeros((2, 2, 3), np.uint8), labels)


def test_stream_record_counts_classes_keeps_panels_and_builds_the_simulation():
    record = StreamRecord(["mess"], panels=1, panel_method="LAECIPS")
    gt = np.array([[0, 1], [1, 255]], np.uint8)
    edge = np.zeros((2, 2), np.uint8)
    base = SimpleNamespace(labels=edge, probs=np.zeros((2, 2, 2), np.float32), compute_s=0.5)  # f0's result
    shared = SharedFrame(
        base, {"mess": 0.7}, {"mess": 0.25}, np.ones((1, 2, 2), bool), 1.0, gt.clip(0, 1), 2.0, 100, 10
    )
    for i, (task, labels) in enumerate([(3, gt), (3, None), (1, gt)]):
        frame = _frame(i, task, labels)
        record.count(frame, 2)
        record.add_shared(shared, labels, 2)
        out = MethodOutput(shared.fused, edge, True, metrics.LatencyParts(0.0), math.nan)
        record.maybe_keep_panel("DCSB", frame, out)  # not the panel method
        record.maybe_keep_panel("LAECIPS", frame, out)
    sim = record.simulation({})
    assert sim.task_order == [3, 1] and sim.num_frames == 3
    assert sim.class_pixels[3].tolist() == [1, 2] and sim.class_pixels[1].tolist() == [1, 2]
    assert sim.timing == {"f_s": 0.5, "lvm_s": 1.0, "fusion_s": 2.0, "h_s_mess": 0.25}
    assert sim.bytes == {"upload_bytes": 100.0, "download_bytes": 10.0}
    assert sim.base["conf_mess"].tolist() == [0.7] * 3
    assert sim.base["fused_miou"][0] == 1.0 and math.isnan(sim.base["fused_miou"][1])
    assert [(p.index, p.method) for p in sim.panels] == [(0, "LAECIPS")]  # at most ``panels``
