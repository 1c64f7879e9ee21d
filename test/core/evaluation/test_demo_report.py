"""The demo's monitor and report (scripts/demo.py) on hand-made SegmentationResult messages."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from laecips_msgs.msg import SegmentationResult

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("laecips_demo", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _result(stamp_s: int, labels: np.ndarray, source: str, version: int, uploaded: bool, total_s: float):
    msg = SegmentationResult()
    msg.header.stamp.sec = stamp_s
    msg.labels.height, msg.labels.width = labels.shape
    msg.labels.encoding, msg.labels.step = "mono8", labels.shape[1]
    msg.labels.data = labels.astype(np.uint8).tobytes()
    msg.source, msg.model_version, msg.uploaded, msg.total_s = source, version, uploaded, total_s
    return msg


def test_report_scores_final_outputs_per_source_and_pass(demo) -> None:
    gt = np.zeros((4, 4), np.uint8)
    gt[:, 2:] = 1  # two classes, half the image each
    wrong = np.zeros((4, 4), np.uint8)  # IoU class 0 = 0.5, class 1 = 0 -> mIoU 0.25
    monitor = demo.Monitor({1_000_000_000: gt, 2_000_000_000: gt, 3_000_000_000: gt})
    # frame 1: easy, edge wrong; frame 2: uploaded, cloud right; frame 3: uploaded, fallback wrong.
    monitor.on_result(_result(1, wrong, "edge", 0, False, 0.01))
    monitor.on_result(_result(2, wrong, "edge", 0, True, 0.01))
    monitor.on_result(_result(3, wrong, "edge", 1, True, 0.02))
    monitor.on_result(_result(2, gt, "cloud", 0, True, 0.5))
    monitor.on_result(_result(3, wrong, "fallback", 1, True, 2.0))
    monitor.on_result(_result(9, wrong, "edge", 1, False, 0.01))  # no ground truth: not scored
    # second pass over the same stamps: a new frame record, easy this time
    monitor.on_result(_result(2, gt, "edge", 1, False, 0.03))
    report = demo.summarise(monitor, {"wall_s": 1.0})
    assert report["frames"] == 4 and report["cur"] == pytest.approx(0.5)
    assert report["miou"]["edge"] == pytest.approx((0.25 + 1.0) / 2)
    assert report["miou"]["cloud"] == pytest.approx(1.0)
    assert report["miou"]["fallback"] == pytest.approx(0.25)
    assert report["miou"]["all"] == pytest.approx((0.25 + 1.0 + 0.25 + 1.0) / 4)
    assert report["miou_f_alone"] == pytest.approx((0.25 * 3 + 1.0) / 4)
    assert report["miou_cloud_answered"] == {"f": pytest.approx(0.25), "F": pytest.approx(1.0), "frames": 1}
    assert report["model_versions"] == [0, 1]
    assert report["miou_by_model_version"] == {"0": pytest.approx(0.625), "1": pytest.approx(0.625)}
    assert report["counts"]["results_not_matched"] == 1 and report["counts"]["cloud"] == 1
    assert report["latency_s"]["p50"] == pytest.approx(np.percentile([0.01, 0.5, 2.0, 0.03], 50))
    json.dumps(report)  # plain JSON (NaN-free)
    assert "frames" in demo.format_report({**report, "wall_s": 1.0})
    diag = {"frames": "3", "dropped_input": "1"}  # 6 published: 2 lost on the link, 1 dropped by the edge
    text = demo.format_report({**report, "frames_published": 6, "edge_diagnostics": diag})
    assert "not received by the edge 2" in text and "newest-wins queue 1" in text


def test_report_without_cloud_frames_has_null_fallback(demo) -> None:
    gt = np.ones((2, 2), np.uint8)
    monitor = demo.Monitor({5_000_000_000: gt})
    monitor.on_result(_result(5, gt, "edge", 0, False, 0.01))
    report = demo.summarise(monitor, {"wall_s": 0.5})
    assert report["miou"]["fallback"] is None and report["miou"]["cloud"] is None
    assert report["miou"]["all"] == pytest.approx(1.0)


def test_report_has_update_gain_and_dropped_uploads(demo) -> None:
    gt = np.ones((2, 2), np.uint8)
    monitor = demo.Monitor({5_000_000_000: gt})
    monitor.on_result(_result(5, gt, "edge", 0, True, 0.01))
    monitor.on_diagnostics(_diagnostics({"uploaded": "20", "dropped_upload": "1", "frames": "50"}))
    report = demo.summarise(monitor, {"wall_s": 0.5})
    assert report["update_gain"] == {"frames": 0, "miou_before": None, "miou_after": None}
    drops = report["dropped_upload"]
    assert drops == {"count": 1, "uploads": 20, "share": pytest.approx(0.05), "bound": 0.1, "met": True}
    gain = {"frames": 4, "miou_before": 0.25, "miou_after": 0.5}
    report = demo.summarise(monitor, {"wall_s": 0.5, "update_gain": gain})
    assert report["update_gain"] == gain
    text = demo.format_report(report)
    assert (
        "0.250 -> with the weights the edge ran 0.500" in text and "1 of 20 (5.0 %, bound 10 %: met)" in text
    )
    json.dumps(report)


def _diagnostics(values: dict[str, str]):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(name="laecips_edge: robot1")
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return DiagnosticArray(status=[status])


def test_score_update_uses_the_version_the_edge_ran_per_frame(demo, tmp_path: Path, monkeypatch) -> None:
    from bundle_helpers import write_tiny_bundle
    from laecips_core.storage import signing, weight_store

    from laecips_core import files

    classes = demo.NUM_CLASSES
    hw = (48, 64)
    priv, pub = signing.generate_keypair(tmp_path / "keys")
    start = write_tiny_bundle(tmp_path / "factory" / "start.safetensors", 0, classes, label=2)
    store = weight_store.WeightStore(tmp_path / "weights" / "robot1")
    v1 = store.put(write_tiny_bundle(tmp_path / "v1.safetensors", 1, classes, label=5).read_bytes(), 1)
    for path in (start, v1):
        signing.write_signature(path, signing.sign_digest(priv, files.sha256_file(path)))
    gt = np.full(hw, 5, np.uint8)
    gt[:, :16] = 2  # f v0 (all 2): mIoU 0.125; f v1 (all 5): 0.375
    monitor = demo.Monitor({s * 1_000_000_000: gt for s in (1, 2, 3)})
    v0_labels, v1_labels = np.full(hw, 2, np.uint8), np.full(hw, 5, np.uint8)
    monitor.on_result(_result(1, v0_labels, "edge", 0, False, 0.01))  # before the update: not scored
    monitor.on_result(_result(2, v1_labels, "edge", 1, True, 0.01))
    monitor.on_result(_result(2, gt, "cloud", 1, True, 0.5))  # F(x) is not what update_gain scores
    monitor.on_result(_result(3, v1_labels, "edge", 1, False, 0.01))
    rng = np.random.default_rng(1)
    images = {s * 1_000_000_000: rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for s in (1, 2, 3)}
    asked: list[set[int]] = []

    def fake_bag_images(bag: Path, stamps: set[int]) -> dict[int, np.ndarray]:
        asked.append(stamps)
        return {s: images[s] for s in stamps}

    monkeypatch.setattr(demo, "bag_images", fake_bag_images)
    gain, detail = demo.score_update(
        monitor, start_bundle=start, stores=[store.directory], bag=tmp_path, input_size=hw, public_key=pub
    )
    assert asked == [{2_000_000_000, 3_000_000_000}]
    assert gain.as_report() == {
        "frames": 2,
        "miou_before": pytest.approx(0.125),
        "miou_after": pytest.approx(0.375),
    }
    assert detail["start_version"] == 0 and detail["frames_by_version"] == {"1": 2}
    assert detail["bundles"] == {"0": start, "1": v1}
    assert detail["miou_after_published_f"] == pytest.approx(0.375)  # the edge's own f labels agree
