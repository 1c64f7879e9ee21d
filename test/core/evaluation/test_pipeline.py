"""run_evaluation end to end: bag replays equal the in-memory stream; unlabelled, compressed, foreign bags."""

from __future__ import annotations

import json

import numpy as np
from bag_helpers import raw_image
from laecips_core.evaluation.pipeline import run_evaluation
from laecips_core.evaluation.run_config import EvalConfig
from laecips_core.storage import bags
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from laecips_core import benchmark as data

# ----------------------------------------------------------------------------------- bag replays


def _quick(tmp_path, name: str, **kw) -> EvalConfig:
    opts = {"frames_per_task": 3, "num_tasks": 3, "plots": False, "progress": False, "out": tmp_path / name}
    opts.update(kw)
    return EvalConfig.from_options(quick=True, **opts)


def _numbers(results: dict) -> dict:
    return {
        name: (
            m["miou"],
            m["cur"],
            m["final_version"],
            [(t["task_id"], t["miou"], t["cur"]) for t in m["tasks"]],
        )
        for name, m in results["methods"].items()
    }


def test_recorded_bag_gives_the_same_numbers_as_the_in_memory_stream(tmp_path):
    memory = run_evaluation(_quick(tmp_path, "memory"))
    cfg = _quick(tmp_path, "unused")
    bench = data.BenchmarkConfig(
        seed=cfg.seed, frames_per_task=3, width=cfg.width, height=cfg.height, num_tasks=3
    )
    bag = bags.write_benchmark_bag(tmp_path / "bag", bench, storage="sqlite3", progress=False)
    replay = run_evaluation(_quick(tmp_path, "replay", bag=bag))
    assert replay["stream"]["kind"] == "rosbag2" and memory["stream"]["kind"] == "benchmark"
    assert replay["thresholds"]["deltas"] == memory["thresholds"]["deltas"]
    assert _numbers(replay) == _numbers(memory)
    assert replay["latency"]["mean_upload_bytes"] == memory["latency"]["mean_upload_bytes"]
    assert memory["miou_available"] and len(memory["methods"]["LAECIPS"]["tasks"]) == 3
    on_disk = json.loads((tmp_path / "replay" / "results.json").read_text())
    assert _numbers(on_disk) == _numbers(replay)
    assert (tmp_path / "replay" / "table1.md").read_text().count("| LAECIPS |") == 1


def test_compressed_image_bag(tmp_path):
    cfg = _quick(tmp_path, "unused")
    bench = data.BenchmarkConfig(seed=1, frames_per_task=3, width=cfg.width, height=cfg.height, num_tasks=2)
    bag = bags.write_benchmark_bag(tmp_path / "bag", bench, compressed=True, progress=False)
    results = run_evaluation(_quick(tmp_path, "out", bag=bag, methods=("LAECIPS", "EDGE", "CLOUD")))
    assert set(results["methods"]) == {"LAECIPS", "EDGE", "CLOUD"}
    for m in results["methods"].values():
        assert 0.0 <= m["miou"] <= 1.0 and len(m["tasks"]) == 2
    assert results["methods"]["CLOUD"]["cur"] == 1.0 and results["methods"]["EDGE"]["cur"] == 0.0


def test_bag_without_labels_reports_cur_and_latency_but_no_miou(tmp_path):
    frames = [
        fr._replace(labels=None)
        for fr in data.generate_stream(
            data.BenchmarkConfig(frames_per_task=3, width=64, height=48, num_tasks=2)
        )
    ]
    bag = bags.write_frames_bag(tmp_path / "bag", frames, data.CLASSES, progress=False)
    results = run_evaluation(_quick(tmp_path, "out", bag=bag, plots=True))
    assert results["miou_available"] is False
    assert any("mIoU" in msg and "unavailable" in msg for msg in results["messages"])
    for name, m in results["methods"].items():
        assert m["miou"] is None and m["dataset_miou"] is None
        assert m["cur"] is not None and m["latency_s"] is not None and m["latency_s"] >= 0
        assert all(t["miou"] is None for t in m["tasks"]), name
    assert results["methods"]["CLOUD"]["cur"] == 1.0
    assert results["fig8"] == {}
    for png in ("fig5_class_frequency.png", "fig8_miou_vs_cur.png", "fig9_per_task.png", "qualitative.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000


def test_foreign_bag_with_pretrain_task(tmp_path):
    """A bag not made by record-bag: other topics, bgr8, 7 classes, 50x38 frames, tasks by time."""
    ts = get_typestore(Stores.ROS2_KILTED)
    rng = np.random.default_rng(5)
    h, w = 38, 50
    colours = rng.integers(0, 256, (7, 3))
    path = tmp_path / "foreign"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        cam = writer.add_connection("/front/color", "sensor_msgs/msg/Image", typestore=ts)
        sem = writer.add_connection("/front/semantics", "sensor_msgs/msg/Image", typestore=ts)
        for i in range(18):  # 2 Hz; tasks by time: [0, 3) s, [3, 6) s, [6, 9) s
            task = i // 6
            labels = np.zeros((h, w), np.uint8)
            for k in range(4):  # vertical stripes of classes drawn from the task's range
                labels[:, k * w // 4 :] = (task * 2 + k + i) % 7
            rgb = colours[labels].astype(np.uint8)
            stamp = 5 * 10**9 + i * 500_000_000
            img = raw_image(ts, stamp, rgb[:, :, ::-1], "bgr8")
            lab = raw_image(ts, stamp, labels, "mono8")
            writer.write(cam, stamp, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
            writer.write(sem, stamp, ts.serialize_cdr(lab, "sensor_msgs/msg/Image"))
    cfg = _quick(
        tmp_path,
        "out",
        bag=path,
        image_topic="/front/color",
        label_topic="/front/semantics",
        task_boundaries=(3.0, 6.0),
        pretrain_task=1,
        num_classes=7,
    )
    results = run_evaluation(cfg)
    assert results["model"]["kind"] == "pretrain_task" and results["model"]["num_classes"] == 7
    assert results["task_order"] == [0, 2] and results["num_frames"] == 12
    assert len(results["class_names"]) == 7
    for m in results["methods"].values():
        assert 0.0 <= m["miou"] <= 1.0
    assert (tmp_path / "out" / "pretrain" / "pretrain-task1.safetensors").is_file()


def test_bag_counting_tasks_from_1_without_classes_topic_gets_task_numbers_and_the_bundles_names(tmp_path):
    """Table 2 says task 1, task 2 (not task 2, task 3); the class names come from the weights' card."""
    frames = [
        fr._replace(task_id=fr.task_id + 1)
        for fr in data.generate_stream(
            data.BenchmarkConfig(frames_per_task=3, width=64, height=48, num_tasks=2)
        )
    ]
    bag = bags.write_frames_bag(tmp_path / "bag", frames, data.CLASSES, progress=False)
    lines: list[str] = []
    cfg = _quick(tmp_path, "out", bag=bag, classes_topic="/no/classes", methods=("LAECIPS", "EDGE"))
    results = run_evaluation(cfg, log=lines.append)
    assert results["task_order"] == [1, 2]
    assert results["task_labels"] == {"1": "task 1", "2": "task 2"}
    table2 = (tmp_path / "out" / "table2.md").read_text()
    assert "task 1 mIoU" in table2 and "task 2 mIoU" in table2 and "task 3" not in table2
    assert results["class_names"] == list(data.CLASSES)  # the test profile's card: benchmark classes
    # --no-progress lines: each task's start, then one line per method with its time.
    assert sum(line.startswith("eval: task id ") and "starts at frame" in line for line in lines) == 2
    for task in (1, 2):
        for method in ("LAECIPS", "EDGE"):
            assert any(line.startswith(f"eval: task id {task} {method}: 3 frames in ") for line in lines), (
                lines
            )
    assert all("elapsed" in line for line in lines) and lines[-1].startswith("eval: done")
