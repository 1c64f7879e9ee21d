"""bench/bench_gpu.py: the prepared GPU script runs end to end at smoke sizes, and a GPU run it recorded
reaches bench.json with the GPU named where this machine has no CUDA."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_gpu
import benchjson


def test_smoke_run_writes_every_section_and_fusion_labels_match(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    assert bench_gpu.main(["--smoke", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {"machine", "edge", "fusion", "sam"} <= set(result)
    assert result["fusion"]["labels_equal_numpy"] is True
    assert result["sam"]["tiny_everything_batch16"]["median_s"] > 0
    assert result["edge"]["predict"]["n"] == 3


def test_entries_without_cuda_use_the_recorded_run_and_name_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchjson, "cuda_available", lambda: False)
    recorded = json.loads(bench_gpu.RESULTS.read_text())
    item = bench_gpu.entries()["sam_vit_h_everything_s"]
    best = min(v["median_s"] for k, v in recorded["sam"].items() if k.startswith("vit_h_everything"))
    assert item["value"] == best and item["target"] == 1.0
    assert item["note"].startswith(benchjson.RECORDED_PREFIX + recorded["machine"]["gpu"])
    assert benchjson.fill_missing({"sam_vit_h_everything_s": item})["sam_vit_h_everything_s"] == item


def test_entries_without_cuda_or_a_record_say_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(benchjson, "cuda_available", lambda: False)
    monkeypatch.setattr(bench_gpu, "RESULTS", tmp_path / "none.json")
    assert bench_gpu.entries()["sam_vit_h_everything_s"]["note"] == benchjson.NO_GPU_NOTE
