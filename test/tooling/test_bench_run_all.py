"""bench/run_all.py: every bench's entries merged into bench.json, missing and failing benches reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import benchjson  # noqa: E402
import run_all  # noqa: E402

FAKES = {
    "fake_ok_bench": (
        "from benchjson import target_entry, entry\n"
        "def entries(quick=False):\n"
        "    return {'h_over_f': target_entry('h_over_f', 0.1 if quick else 0.2, 'fake'),\n"
        "            'edge_f_ms_640x480': entry(12.0, None, 'ms', '<=', 'fake')}\n"
    ),
    "fake_print_bench": "def main(argv=None):\n    print('printed only')\n    return 0\n",
    "fake_broken_bench": "def entries(quick=False):\n    raise RuntimeError('no device')\n",
}


@pytest.fixture
def fake_benches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, body in FAKES.items():
        (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    monkeypatch.setattr(
        run_all,
        "PERF_BENCHES",
        {
            "fake_ok_bench": ("h_over_f",),
            "fake_print_bench": ("f_ort_fps_640x480",),
            "fake_broken_bench": ("fusion_over_loop",),
            "fake_missing_bench": ("upload_bytes_over_raw",),
        },
    )
    monkeypatch.setattr(benchjson, "cuda_available", lambda: False)
    return tmp_path


def test_run_all_merges_entries_and_reports_missing_and_failing_benches(fake_benches: Path, capsys) -> None:
    out = fake_benches / "runs" / "bench.json"
    assert run_all.main(["--quick", "--out", str(out)]) == 1  # a bench failed
    entries, machine = benchjson.read_bench_json(out)
    assert set(benchjson.TARGETS) <= set(entries)
    assert entries["h_over_f"]["value"] == 0.1 and entries["h_over_f"]["met"] is True  # quick was passed on
    assert entries["edge_f_ms_640x480"]["value"] == 12.0  # extra figures are kept
    assert "has no entries()" in entries["f_ort_fps_640x480"]["note"]
    assert "failed: RuntimeError: no device" in entries["fusion_over_loop"]["note"]
    assert "fake_missing_bench.py is missing" in entries["upload_bytes_over_raw"]["note"]
    assert entries["sam_vit_h_everything_s"]["note"] == benchjson.NO_GPU_NOTE
    assert entries["cloud_frames_per_s"]["value"] is None
    assert machine["quick"] is True and len(machine["load_average_before"]) == 3
    printed = capsys.readouterr().out
    assert "printed only" in printed and "load average before" in printed and "issue 13 targets" in printed
    for key in benchjson.TARGETS:  # every figure printed next to its target
        assert key in printed.split("issue 13 targets")[1]


def test_only_runs_the_named_benches(fake_benches: Path) -> None:
    out = fake_benches / "bench.json"
    assert run_all.main(["--only", "fake_ok_bench", "--out", str(out)]) == 0
    entries = json.loads(out.read_text())
    assert entries["h_over_f"]["value"] == 0.2
    note = entries["fusion_over_loop"]["note"]
    assert note == "not measured: bench/fake_broken_bench.py was not run (--only)"


@pytest.mark.slow
def test_make_bench_quick_writes_every_key(tmp_path: Path) -> None:
    """The real benches in quick mode (minutes on 2 cores): bench.json has every key of the issue."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "bench_models", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    entries, _ = benchjson.read_bench_json(out)
    assert set(benchjson.TARGETS) <= set(entries)
    for key in run_all.PERF_BENCHES["bench_models"]:
        assert entries[key]["value"] is not None and entries[key]["value"] > 0
