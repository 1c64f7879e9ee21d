"""What the edge reports besides labels, without ROS: the ~/classes body, counters and /diagnostics."""

from __future__ import annotations

import json
import threading

import numpy as np
from edge_helpers import M
from laecips_core.services.edge_service import EdgeCounters, classes_json, diagnostic_values


def test_classes_json_is_the_bags_classes_body():
    names = [f"n{i}" for i in range(M)]
    body = json.loads(classes_json(names, robot_id="robot4", model_version=3))
    assert body["classes"] == names and body["num_classes"] == M


def test_counters_and_diagnostics_say_what_is_wrong():
    counters = EdgeCounters()
    threads = [
        threading.Thread(target=lambda: [counters.count(frames=1) for _ in range(500)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    counters.count(uploaded=500)
    snap = counters.snapshot()
    assert snap["frames"] == 2000 and snap["errors"] == 0
    warn, message, values = diagnostic_values(snap, rate_hz=10.0, version=3, in_flight=1, threshold=0.4)
    assert not warn and message == "running" and values["cur"] == "0.2500" and values["model_version"] == "3"
    counters.count(cloud_status="unreachable")
    warn, message, _ = diagnostic_values(
        counters.snapshot(), rate_hz=0, version=3, in_flight=0, threshold=0.4
    )
    assert warn and "unreachable" in message
    counters.count(bad_input=1, error="bad camera frame: encoding 'foo'")
    warn, message, values = diagnostic_values(
        counters.snapshot(), rate_hz=0, version=3, in_flight=0, threshold=0.4
    )
    assert warn and "encoding 'foo'" in message and values["errors"] == "1"


def test_class_summary_fractions_and_mean_scores_per_class():
    from laecips_core.services.edge_service import class_summary

    labels = np.array([[0, 0, 2], [2, 2, 2]], np.uint8)
    scores_at_labels = np.array([[0.5, 0.7, 0.9], [0.8, 0.6, 0.5]], np.float32)
    fractions, scores = class_summary(labels, scores_at_labels, 4)
    np.testing.assert_allclose(fractions, [2 / 6, 0, 4 / 6, 0])
    np.testing.assert_allclose(scores, [0.6, 0.0, 0.7, 0.0], atol=1e-6)
    _, none = class_summary(labels, None, 4)
    _, mismatched = class_summary(labels, scores_at_labels[:1], 4)
    assert not none.any() and not mismatched.any()
