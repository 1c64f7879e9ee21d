"""bench/benchjson.py: entries (direction, met), the not-measured and no-GPU notes, the atomic bench.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import benchjson


def test_met_follows_the_direction_and_is_none_without_a_value_or_target() -> None:
    assert benchjson.entry(1.1, 1.15, "x", "<=")["met"] is True
    assert benchjson.entry(1.2, 1.15, "x", "<=")["met"] is False
    assert benchjson.entry(31.0, 30.0, "frames/s", ">=")["met"] is True
    assert benchjson.entry(29.0, 30.0, "frames/s", ">=")["met"] is False
    assert benchjson.entry(30.0, 30.0, "frames/s", ">=")["met"] is True  # the target itself is met
    assert benchjson.entry(None, 30.0, "frames/s", ">=", "why")["met"] is None
    assert benchjson.entry(3.0, None, "ms")["met"] is None
    want = {"value": 2.0, "target": 1.0, "unit": "x", "met": True, "note": "n"}
    assert benchjson.entry(2, 1, "x", ">=", "n") == want
    with pytest.raises(benchjson.BenchJsonError, match="direction"):
        benchjson.entry(1.0, 1.0, "x", "<")
    with pytest.raises(benchjson.BenchJsonError, match="finite"):
        benchjson.entry(float("nan"), 1.0, "x")


def test_target_entries_take_the_issue_table() -> None:
    fps = benchjson.target_entry("f_ort_fps_640x480", 25.0, "n")
    assert (fps["target"], fps["unit"], fps["met"]) == (30.0, "frames/s", False)
    assert benchjson.target_entry("h_over_f", 0.1, "n")["met"] is True
    missing = benchjson.not_measured("hard_frame_over_physical", "no netns")
    assert missing["value"] is None and missing["met"] is None
    assert missing["note"] == "not measured: no netns" and missing["target"] == 1.2


def test_fill_missing_names_every_key_and_says_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchjson, "cuda_available", lambda: False)
    measured = {
        "h_over_f": benchjson.target_entry("h_over_f", 0.1, "n"),
        "sam_vit_h_everything_s": benchjson.target_entry("sam_vit_h_everything_s", 0.5, "n"),
        "fusion_cuda_ms": benchjson.entry(3.0, None, "ms"),
    }
    out = benchjson.fill_missing(measured, {"upload_bytes_over_raw": "bench/bench_link.py is missing"})
    assert set(benchjson.TARGETS) <= set(out)
    assert out["h_over_f"] == measured["h_over_f"]
    for key in ("sam_vit_h_everything_s", "fusion_cuda_ms"):  # GPU figures, whatever a bench said
        assert out[key]["value"] is None and out[key]["met"] is None
        assert out[key]["note"] == benchjson.NO_GPU_NOTE
    assert out["upload_bytes_over_raw"]["note"] == "not measured: bench/bench_link.py is missing"
    assert out["cloud_frames_per_s"]["note"].startswith("not measured")
    monkeypatch.setattr(benchjson, "cuda_available", lambda: True)
    assert benchjson.fill_missing(measured)["sam_vit_h_everything_s"]["value"] == 0.5


def test_a_figure_recorded_on_a_named_gpu_is_kept_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchjson, "cuda_available", lambda: False)
    note = benchjson.RECORDED_PREFIX + "NVIDIA H200 on 2026-11-27; not re-measured here: no GPU"
    recorded = {"sam_vit_h_everything_s": benchjson.target_entry("sam_vit_h_everything_s", 0.5, note)}
    out = benchjson.fill_missing(recorded)["sam_vit_h_everything_s"]
    assert out["value"] == 0.5 and out["met"] is True and "H200" in out["note"]


def test_write_is_atomic_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs" / "bench" / "bench.json"
    entries = benchjson.fill_missing({"h_over_f": benchjson.target_entry("h_over_f", 0.1, "n")})
    machine = benchjson.machine_info((0.5, 0.4, 0.3))
    assert machine["cpu_count"] == os.cpu_count() and machine["load_average_before"] == [0.5, 0.4, 0.3]
    assert {"torch_version", "onnxruntime_version", "date", "load_average_after", "gpu"} <= set(machine)
    benchjson.write_bench_json(entries, machine, path)
    got, got_machine = benchjson.read_bench_json(path)
    assert got == entries and got_machine["cpu_count"] == os.cpu_count()
    assert json.loads(path.read_text())["h_over_f"]["value"] == 0.1

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Exception, match="disk full"):  # files.atomic_write_bytes wraps it
        benchjson.write_bench_json({}, machine, path)
    assert benchjson.read_bench_json(path)[0] == entries  # the old file is whole
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temp file left behind


def test_malformed_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(benchjson.BenchJsonError, match="keys"):
        benchjson.write_bench_json({"x": {"value": 1.0}}, {}, tmp_path / "b.json")
    with pytest.raises(benchjson.BenchJsonError, match="reserved"):
        benchjson.write_bench_json({"machine": benchjson.entry(1.0, None, "x")}, {}, tmp_path / "b.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(benchjson.BenchJsonError, match="object"):
        benchjson.read_bench_json(tmp_path / "bad.json")
    assert "NOT met" in benchjson.format_entry("h_over_f", benchjson.target_entry("h_over_f", 0.2, "n"))
