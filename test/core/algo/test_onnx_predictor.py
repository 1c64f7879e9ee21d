"""Tests of OnnxEdgePredictor (the lean edge): the same labels and confidences as torch's EdgePredictor,
batches, sizes, and graphs that do not belong together."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo.frames import FramePredictor
from laecips_core.algo.mining import MinerNet, NeuralMiner
from laecips_core.algo.models import build_edge_model
from laecips_core.algo.onnx_export import onnx_graphs
from laecips_core.algo.onnx_predictor import OnnxEdgePredictor
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.errors import ConfigError, ImageError, WeightsError

M = 5


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    f = build_edge_model("tiny_fcn", M, pretrained_backbone=False).eval()
    h = MinerNet(M, in_size=(32, 32)).eval()
    return f, h, onnx_graphs(f, h, 16.0, (48, 64))


def _frames(n: int, shape: tuple[int, int] = (60, 80)) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("input_size", [None, (48, 64), (96, 128)])
def test_same_labels_and_confidence_as_the_torch_predictor(models, input_size):
    f, h, graphs = models
    lean = OnnxEdgePredictor(
        graphs["f"], graphs["h"], num_classes=M, miner_in_size=(32, 32), input_size=input_size
    )
    ref = EdgePredictor(f, NeuralMiner(h), input_size=input_size, stream_norm_prior=16.0)
    assert isinstance(lean, FramePredictor) and lean.num_classes == M
    for a, b in zip(lean.predict_batch(_frames(3)), ref.predict_batch(_frames(3)), strict=True):
        assert a.labels.shape == (60, 80) and a.labels.dtype == np.uint8
        assert (a.labels == b.labels).mean() >= 0.999
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)


def test_frames_of_different_sizes_and_bad_frames(models):
    _, _, graphs = models
    lean = OnnxEdgePredictor(graphs["f"], graphs["h"], num_classes=M, miner_in_size=(32, 32), version=7)
    small, large = _frames(1, (40, 56))[0], _frames(1, (72, 90))[0]
    out = lean.predict_batch([small, large])
    assert [r.labels.shape for r in out] == [(40, 56), (72, 90)] and {r.version for r in out} == {7}
    assert lean.predict_batch([]) == []
    assert lean.warmup(48, 64) > 0
    with pytest.raises(ImageError, match=r"\(H, W, 3\) uint8"):
        lean.predict(np.zeros((40, 56, 3), np.float32))


def test_graphs_that_do_not_belong_together_are_refused(models):
    f, _, graphs = models
    other_h = onnx_graphs(f, MinerNet(M, in_size=(32, 32)), 16.0, (48, 64))["h"]
    with pytest.raises(WeightsError, match="do not belong together"):
        OnnxEdgePredictor(graphs["f"], other_h, num_classes=M + 1, miner_in_size=(32, 32))
    with pytest.raises(WeightsError, match="do not belong together"):
        OnnxEdgePredictor(graphs["f"], graphs["h"], num_classes=M, miner_in_size=(64, 64))
    with pytest.raises(ConfigError, match="input_size"):
        OnnxEdgePredictor(graphs["f"], graphs["h"], num_classes=M, miner_in_size=(32, 32), input_size=(8, 8))


def test_a_fixed_size_f_graph_sets_the_working_size(models, tmp_path):
    from laecips_core.algo.backends import export_onnx
    from laecips_core.algo.streamnorm import with_stream_norm

    f, _, graphs = models
    fixed = export_onnx(with_stream_norm(f, 16.0), tmp_path / "f.onnx", 48, 64, dynamic=False).read_bytes()
    lean = OnnxEdgePredictor(fixed, graphs["h"], num_classes=M, miner_in_size=(32, 32))
    assert lean.backend.fixed_hw == (48, 64)
    assert lean.predict(_frames(1)[0]).labels.shape == (60, 80)  # resized to 48x64 and back
    with pytest.raises(ConfigError, match="runs at 48x64 only"):
        OnnxEdgePredictor(fixed, graphs["h"], num_classes=M, miner_in_size=(32, 32), input_size=(96, 128))
