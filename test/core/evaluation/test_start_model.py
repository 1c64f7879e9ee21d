"""The starting f and h: from a bundle, its checks against the stream, the training resolution."""

from __future__ import annotations

import numpy as np
import pytest
from bundle_helpers import write_tiny_bundle
from laecips_core.algo import mining
from laecips_core.errors import ConfigError
from laecips_core.evaluation.run_config import EvalConfig
from laecips_core.evaluation.sources import StreamFrame, StreamSource, benchmark_source
from laecips_core.evaluation.start_model import model_from_bundle, prepare_start_model, working_size
from laecips_core.storage import bundle_loading


def test_working_size_keeps_the_aspect_under_the_pixel_budget():
    assert working_size(48, 64) == (48, 64)  # small frames keep their size
    h, w = working_size(960, 1280, max_pixels=240 * 320)
    assert (h, w) == (240, 320)
    assert working_size(4, 4000, max_pixels=100) == (8, 316)  # never below 8 pixels a side


def test_model_from_bundle_with_and_without_h(tmp_path):
    with_h = bundle_loading.load_bundle(write_tiny_bundle(tmp_path / "a.safetensors", 1, 3))
    f, h = model_from_bundle(with_h)
    assert isinstance(h, mining.MinerNet) and not f.training and not h.training
    f_only = bundle_loading.load_bundle(write_tiny_bundle(tmp_path / "b.safetensors", 1, 3, with_h=False))
    assert model_from_bundle(f_only)[1] is None


def test_prepare_start_model_from_weights_checks_the_class_count(tmp_path):
    names = ["a", "b", "c"]
    path = write_tiny_bundle(tmp_path / "w.safetensors", 4, 3, class_names=names)
    frame = StreamFrame(0, 0, 0.0, np.zeros((20, 30, 3), np.uint8), None)
    source = StreamSource(lambda: iter([frame]), 1, None, {"kind": "rosbag2"})
    start, stream = prepare_start_model(EvalConfig(weights=path, progress=False), source)
    assert stream is source and start.num_classes == 3 and start.class_names == names
    assert start.calibration == [] and start.description["kind"] == "bundle"
    with pytest.raises(ConfigError, match="--num-classes 5 but the weights are for M=3"):
        prepare_start_model(EvalConfig(weights=path, num_classes=5), source)
    with pytest.raises(ConfigError, match="use --pretrain-task K"):
        prepare_start_model(EvalConfig(weights=path), benchmark_source(EvalConfig(width=32, height=24)))
