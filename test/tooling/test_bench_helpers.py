"""bench/bench_fusion.py, bench_link.py, bench_cloud.py: the pure helpers behind the bench.json entries."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_cloud
import bench_fusion
import bench_link


def test_entry_met_follows_the_direction_and_is_none_without_a_target_or_value() -> None:
    assert bench_fusion.entry(60.0, 50.0, "x", True, "n")["met"] is True
    assert bench_fusion.entry(40.0, 50.0, "x", True, "n")["met"] is False
    assert bench_fusion.entry(2.5, 2.0, "x", False, "n")["met"] is False
    assert bench_fusion.entry(1.5, 2.0, "x", False, "n") == {
        "value": 1.5, "target": 2.0, "unit": "x", "met": True, "note": "n"
    }  # fmt: skip
    assert bench_fusion.entry(None, 2.0, "x", False, "n")["met"] is None
    assert bench_fusion.entry(3.0, None, "ms", False, "n")["met"] is None


def test_choose_quality_takes_the_fewest_bytes_within_half_a_point_of_lossless() -> None:
    curve = {50: (10.0, 0.470), 75: (15.0, 0.496), 90: (30.0, 0.502), 95: (40.0, 0.499)}
    assert bench_link.choose_quality(curve, 0.500) == 75  # 0.496 >= 0.495; 50 misses by 3 points
    assert bench_link.choose_quality(curve, 0.510) is None  # nothing within 0.5 points of 0.51
    assert bench_link.choose_quality({80: (20.0, 0.6), 60: (12.0, 0.6)}, 0.6) == 60


def test_parse_rtt_reads_the_probe_line_or_gives_zero() -> None:
    assert bench_link._parse_rtt("noise\nrtt_s 0.00125\n") == 0.00125
    assert bench_link._parse_rtt("") == 0.0


def test_throughput_counts_frames_and_flags_a_starved_robot() -> None:
    rate, counts, starved = bench_cloud.throughput([{"ok": 10}, {"ok": 10}], 5.0)
    assert (rate, counts, starved) == (4.0, [10, 10], False)
    assert bench_cloud.throughput([{"ok": 19}, {"ok": 1}], 5.0)[2] is True
    assert bench_cloud.throughput([{"ok": 0}], 5.0)[2] is True


def test_growth_table_has_one_key_per_size_and_mask_count() -> None:
    table = bench_fusion.growth_tables(1, sizes=((16, 12),), mask_counts=(3,))
    assert set(table) == {"fusion_ms_16x12", "fusion_ms_k3"}
    assert all(ms > 0 for ms in table.values())


def test_zenoh_file_turns_scouting_and_shared_memory_off(tmp_path: Path) -> None:
    import json

    path = bench_cloud.zenoh_file(tmp_path / "z.json5", connect=["tcp/127.0.0.1:7447"])
    config = json.loads(Path(path).read_text())
    assert config["scouting"]["multicast"]["enabled"] is False
    assert config["transport"]["shared_memory"]["enabled"] is False
    assert config["connect"]["endpoints"] == ["tcp/127.0.0.1:7447"]
