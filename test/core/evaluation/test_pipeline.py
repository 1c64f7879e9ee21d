"""Offline evaluation: method semantics on hand-built streams, Fig. 8 sweep, and bag replays end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from laecips_core.algo import mining, models
from laecips_core.algo.assisted import AssistedInference
from laecips_core.benchmark import generator as data
from laecips_core.errors import ConfigError
from laecips_core.evaluation import pipeline as evaluation
from laecips_core.evaluation.pipeline import EvalConfig, LinkModel, StreamFrame
from laecips_core.storage import bags
from laecips_core.storage.jobspec import TrainerConfig
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

M = 3
SIZE = 32


class HalvesLVM:
    """A stand-in LVM for hand-built frames: two masks, the left and the right half of the image."""

    name = "halves"

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        h, w = image_rgb_uint8.shape[:2]
        left = np.zeros((h, w), bool)
        left[:, : w // 2] = True
        return np.stack([left, ~left])


def _mini_stream(n: int = 6) -> list[StreamFrame]:
    """Left half class 0 (red), right half class 1 or 2 (blue / green) depending on the task."""
    frames = []
    for i in range(n):
        task = 0 if i < n // 2 else 1
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        labels = np.zeros((SIZE, SIZE), np.uint8)
        img[:, : SIZE // 2] = (200, 30, 30)
        img[:, SIZE // 2 :] = (30, 30, 200) if task == 0 else (30, 200, 30)
        labels[:, SIZE // 2 :] = 1 if task == 0 else 2
        img = np.clip(img.astype(int) + (7 * i) % 13, 0, 255).astype(np.uint8)
        frames.append(StreamFrame(i, task, 0.1 * i, img, labels))
    return frames


@pytest.fixture()
def start_models():
    torch.manual_seed(0)
    f0 = models.build_edge_model("tiny_fcn", M, pretrained_backbone=False).eval()
    h0 = mining.MinerNet(M, in_size=(64, 64)).eval()  # 2x2 after ResNet: batch-1 BatchNorm is fine
    return f0, h0


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _simulate(f0, h0, deltas, *, explore_rate=0.0, maxsize=2):
    trainer = TrainerConfig(
        epochs=1,
        maxsize=maxsize,
        batch_size=2,
        min_improvement=-1.0,  # accept every finite update: these tests check the bookkeeping
        min_class_ratio=0.0,
        min_entropy_ratio=0.0,
        input_size=(SIZE, SIZE),
    )
    return evaluation.simulate(
        _mini_stream(),
        f0,
        h0,
        M,
        deltas=deltas,
        fuser=AssistedInference(HalvesLVM()),
        trainer=trainer,
        link=LinkModel(bandwidth_mbps=4.0, rtt_ms=10.0),
        explore_rate=explore_rate,
        progress=False,
    )


def test_methods_on_a_hand_built_stream(start_models):
    f0, h0 = start_models
    before_f, before_h = _state(f0), _state(h0)
    # neural: every confidence in [0, 1] is <= 2 -> LAECIPS and DCSB upload every frame;
    # mess/sm/spp: no confidence is <= -1 -> MESS, SM, SPP never upload.
    sim = _simulate(f0, h0, {"neural": 2.0, "mess": -1.0, "sm": -1.0, "spp": -1.0})
    runs = sim.methods
    assert set(runs) == set(evaluation.METHODS)
    assert sim.task_order == [0, 1] and sim.num_frames == 6

    assert runs["EDGE"].uploaded == [False] * 6
    assert runs["EDGE"].total.latency[1:].sum() == 0.0  # no upload, cloud or download time
    assert runs["CLOUD"].uploaded == [True] * 6
    assert runs["CLOUD"].total.latency[0] == 0.0  # the robot computes nothing

    # DCSB uploads like LAECIPS but its weights never change.
    assert runs["DCSB"].uploaded == [True] * 6
    assert runs["DCSB"].versions == [0] * 6 and runs["DCSB"].f is None and not runs["DCSB"].train_events

    # LAECIPS: buffer 1, 2, 3 > maxsize=2 after frame 2 -> train -> new weights from frame 3 on.
    lae = runs["LAECIPS"]
    assert lae.versions == [0, 0, 0, 1, 1, 1]
    assert [e["frame"] for e in lae.train_events] == [2, 5]
    assert all(e["accepted"] and e["samples"] == 3 for e in lae.train_events)
    assert lae.version == 2
    changed = [
        k for k, v in lae.f.state_dict().items() if v.is_floating_point() and not torch.equal(v, before_f[k])
    ]
    assert changed, "LAECIPS's f must differ from the starting f after accepted updates"
    assert any(
        not torch.equal(v, before_h[k]) for k, v in lae.h.state_dict().items() if v.is_floating_point()
    )

    for name in ("MESS", "SM", "SPP"):
        assert runs[name].uploaded == [False] * 6 and runs[name].versions == [0] * 6

    # LAECIPS-paper: the same trigger, the paper's Eq. 13 recipe, no gate.
    paper = runs["LAECIPS-paper"]
    assert paper.versions == [0, 0, 0, 1, 1, 1] and all(e["accepted"] for e in paper.train_events)
    assert not torch.equal(paper.f.state_dict()["head.cbr.0.weight"], lae.f.state_dict()["head.cbr.0.weight"])

    # EDGE-TTA never uploads; its BatchNorm statistics follow the stream every maxsize frames.
    tta = runs["EDGE-TTA"]
    assert tta.uploaded == [False] * 6 and tta.total.latency[1:].sum() == 0.0
    assert tta.versions == [0, 0, 0, 1, 1, 2]
    tta_state = tta.f.state_dict()
    assert all(
        torch.equal(v, before_f[k])
        for k, v in tta_state.items()
        if "running_" not in k and "num_batches" not in k
    )
    assert any(not torch.equal(v, before_f[k]) for k, v in tta_state.items() if "running_mean" in k)

    # The shared starting models are never modified.
    assert all(torch.equal(v, before_f[k]) for k, v in f0.state_dict().items())
    assert all(torch.equal(v, before_h[k]) for k, v in h0.state_dict().items())

    # Frame mIoU of the fused output with a perfect LVM: CLOUD's F(x) is at least as good as EDGE's f(x)
    # wherever the edge result is wrong inside a half (Algorithm 1 takes a majority per mask).
    assert np.all(np.isfinite(runs["CLOUD"].frame_miou))
    summary = lae.total.summary()
    assert summary["cur"] == 1.0 and 0.0 <= summary["miou"] <= 1.0


def test_exploration_only_for_updating_methods(start_models):
    f0, h0 = start_models
    sim = _simulate(
        f0, h0, {"neural": -1.0, "mess": -1.0, "sm": -1.0, "spp": -1.0}, explore_rate=1.0, maxsize=100
    )
    assert sim.methods["DCSB"].uploaded == [False] * 6  # no update, so no exploration
    for name in ("LAECIPS", "MESS", "SM", "SPP"):
        assert sim.methods[name].uploaded == [True] * 6
        assert sim.methods[name].versions == [0] * 6  # maxsize 100 never triggers


def test_latency_accounting_follows_the_link_model(start_models):
    f0, h0 = start_models
    sim = _simulate(f0, h0, {"neural": 2.0, "mess": -1.0, "sm": -1.0, "spp": -1.0})
    link = LinkModel(bandwidth_mbps=4.0, rtt_ms=10.0)
    cloud = sim.methods["CLOUD"].total.summary()["latency_parts_s"]
    assert cloud["upload_s"] == pytest.approx(link.upload_s(sim.bytes["upload_bytes"]))
    assert cloud["download_s"] == pytest.approx(link.download_s(sim.bytes["download_bytes"]))
    assert cloud["cloud_s"] == pytest.approx(sim.timing["f_s"] + sim.timing["lvm_s"] + sim.timing["fusion_s"])
    assert link.upload_s(500_000) == pytest.approx(1.0 + 0.01)  # 4 Mbit at 4 Mbit/s + 10 ms
    for run in sim.methods.values():
        assert run.total.summary()["latency_s"] == pytest.approx(np.mean(run.latency))


def test_sweep_curves_end_points_and_oracle():
    rng = np.random.default_rng(1)
    edge = rng.uniform(0.2, 0.6, 50)
    gain = rng.uniform(-0.05, 0.3, 50)
    base = {
        "edge_miou": edge,
        "fused_miou": edge + gain,
        "conf_neural": -gain + rng.normal(0, 0.01, 50),  # nearly perfect ranking
        "conf_spp": rng.uniform(0, 1, 50),  # random ranking
    }
    curves = evaluation.sweep_curves(base, ["neural", "spp"], points=21)
    for name in ("neural", "spp"):
        c = curves[name]
        assert c["cur"][0] == 0.0 and c["miou"][0] == pytest.approx(edge.mean())
        assert c["cur"][-1] == 1.0 and c["miou"][-1] == pytest.approx((edge + gain).mean())
        assert np.all(np.diff(c["cur"]) >= 0)
    assert curves["ORACLE"]["auc"] >= curves["neural"]["auc"] >= curves["spp"]["auc"]
    assert (
        evaluation.sweep_curves({"edge_miou": np.full(3, np.nan), "fused_miou": np.full(3, np.nan)}, [], 5)
        == {}
    )


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown method"):
        EvalConfig(methods=("LAECIPS", "FOO"))
    with pytest.raises(ConfigError, match="bandwidth"):
        EvalConfig(bandwidth_mbps=0.0)
    cfg = EvalConfig.from_options(quick=True, epochs=2, cur_budget=None, methods=None)
    assert cfg.quick and cfg.trainer.epochs == 2 and cfg.weights_profile == "test"
    assert cfg.cur_budget == 0.35 and cfg.methods == evaluation.METHODS


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
    memory = evaluation.run_evaluation(_quick(tmp_path, "memory"))
    cfg = _quick(tmp_path, "unused")
    bench = data.BenchmarkConfig(
        seed=cfg.seed, frames_per_task=3, width=cfg.width, height=cfg.height, num_tasks=3
    )
    bag = bags.write_benchmark_bag(tmp_path / "bag", bench, storage="sqlite3", progress=False)
    replay = evaluation.run_evaluation(_quick(tmp_path, "replay", bag=bag))
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
    results = evaluation.run_evaluation(
        _quick(tmp_path, "out", bag=bag, methods=("LAECIPS", "EDGE", "CLOUD"))
    )
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
    results = evaluation.run_evaluation(_quick(tmp_path, "out", bag=bag, plots=True))
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
    Image = ts.types["sensor_msgs/msg/Image"]
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
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
            header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id="front")
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            img = Image(
                header=header,
                height=h,
                width=w,
                encoding="bgr8",
                is_bigendian=0,
                step=3 * w,
                data=bgr.reshape(-1),
            )
            lab = Image(
                header=header,
                height=h,
                width=w,
                encoding="mono8",
                is_bigendian=0,
                step=w,
                data=labels.reshape(-1),
            )
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
    results = evaluation.run_evaluation(cfg)
    assert results["model"]["kind"] == "pretrain_task" and results["model"]["num_classes"] == 7
    assert results["task_order"] == [0, 2] and results["num_frames"] == 12
    assert len(results["class_names"]) == 7
    for m in results["methods"].values():
        assert 0.0 <= m["miou"] <= 1.0
    assert (tmp_path / "out" / "pretrain" / "pretrain-task1.safetensors").is_file()


def test_tracking_delta_follows_the_budget_quantile_of_recent_confidences(start_models):
    f0, h0 = start_models
    seed = {"neural": np.array([0.1, 0.2, 0.8, 0.9]), "mess": np.array([0.0, 0.0, 0.0, 0.0])}
    seed.update(sm=seed["mess"], spp=seed["mess"])
    deltas = {"neural": 0.5, "mess": -1.0, "sm": -1.0, "spp": -1.0}
    sim = evaluation.simulate(
        _mini_stream(),
        f0,
        h0,
        M,
        methods=("DCSB", "EDGE"),
        deltas=deltas,
        fuser=AssistedInference(HalvesLVM()),
        trainer=TrainerConfig(epochs=1, maxsize=100, input_size=(SIZE, SIZE)),
        delta_window=3,
        calibration_conf=seed,
        progress=False,
    )
    run = sim.methods["DCSB"]
    assert run.target_rate == 0.5  # the starting delta 0.5 uploads half of the seed confidences
    window = list(seed["neural"][:3])
    for conf, delta, uploaded in zip(run.confidence, run.deltas, run.uploaded, strict=True):
        assert delta == mining.threshold_for_cur(np.asarray(window), 0.5)
        assert uploaded == (conf <= delta)
        window = (window + [conf])[-3:]


def test_upload_rate_after_an_update_stays_in_the_budget_band(start_models):
    """Eq. 14 changes h (its confidences can all move toward 1): the tracking delta keeps the CUR."""
    f0, h0 = start_models
    rng = np.random.default_rng(0)
    calibration = {"neural": rng.uniform(0.3, 0.7, 10)}
    calibration.update(mess=calibration["neural"], sm=calibration["neural"], spp=calibration["neural"])
    sim = evaluation.simulate(
        _mini_stream(60),
        f0,
        h0,
        M,
        methods=("LAECIPS",),
        deltas={"neural": float(np.median(calibration["neural"]))},
        fuser=AssistedInference(HalvesLVM()),
        trainer=TrainerConfig(
            epochs=2,
            maxsize=8,
            batch_size=4,
            lr=1e-2,
            beta=0.01,  # Eq. 14 optimum min(1, beta / l): far from the starting h
            min_improvement=-1.0,
            min_class_ratio=0.0,
            min_entropy_ratio=0.0,
            input_size=(SIZE, SIZE),
        ),
        delta_window=10,
        calibration_conf=calibration,
        progress=False,
    )
    run = sim.methods["LAECIPS"]
    assert run.target_rate == pytest.approx(0.5)
    first = run.versions.index(1)
    assert first < 40 and run.tracker is not None and run.tracker.resets >= 1
    after = np.asarray(run.uploaded[first:], float)
    assert 0.3 <= after.mean() <= 0.7, (after.mean(), run.versions)


def test_task_labels_follow_how_the_source_counts():
    assert evaluation.task_labels([0, 1, 2], pretrain_task=None, zero_based=None) == {
        0: "task 1",
        1: "task 2",
        2: "task 3",
    }
    # A bag whose task ids already count from 1, pre-trained on its task 1: streamed 2..5 stay 2..5.
    labels = evaluation.task_labels([2, 3, 4, 5], pretrain_task=1, zero_based=None)
    assert list(labels.values()) == ["task 2", "task 3", "task 4", "task 5"]
    assert evaluation.task_labels([1, 2], pretrain_task=0, zero_based=None) == {1: "task 2", 2: "task 3"}
    assert evaluation.task_labels([1], pretrain_task=None, zero_based=True) == {1: "task 2"}


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
    results = evaluation.run_evaluation(cfg, log=lines.append)
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
