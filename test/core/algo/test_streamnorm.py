"""Tests of per-frame BatchNorm statistics (laecips_core.algo.streamnorm) and their use in EdgePredictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo.mining import MessMiner
from laecips_core.algo.predictor import EdgePredictor
from laecips_core.algo.streamnorm import (
    StreamBatchNorm2d,
    check_prior,
    count_stream_layers,
    with_stream_norm,
)
from laecips_core.errors import ConfigError
from torch import nn


class _Toy(nn.Module):
    """conv -> BN -> ReLU -> 1x1 conv to M=3 classes, with BN statistics of dark-ish frames."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 3, 1)
        self.train()
        with torch.no_grad():  # stored statistics: frames around 0.2 intensity
            for _ in range(20):
                self(torch.rand(4, 3, 32, 32) * 0.4)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))))


def _bn_out(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.bn(model.conv(x))


def test_prior_zero_is_plain_f_and_f_is_never_changed() -> None:
    f = _Toy()
    assert with_stream_norm(f, 0) is f
    g = with_stream_norm(f, 16)
    assert g is not f
    assert type(f.bn) is nn.BatchNorm2d and count_stream_layers(f) == 0
    assert isinstance(g.bn, StreamBatchNorm2d) and count_stream_layers(g) == 1
    assert list(g.state_dict()) == list(f.state_dict())  # weights load into it as into f
    g.load_state_dict(f.state_dict())


def test_each_frame_is_normalised_on_its_own() -> None:
    g = with_stream_norm(_Toy(), 4)
    x = torch.rand(3, 3, 32, 32)
    x[1] *= 0.1
    with torch.no_grad():
        batch = g(x)
        singles = torch.cat([g(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-5, atol=1e-5)


def test_blend_matches_the_formula_and_follows_a_shifted_frame() -> None:
    f = _Toy()
    n = 4.0
    g = with_stream_norm(f, n)
    bright = torch.rand(1, 3, 32, 32) * 0.4 + 0.6  # a light change the stored statistics never saw
    with torch.no_grad():
        z = f.conv(bright)
    mean = (n * f.bn.running_mean + z.mean((0, 2, 3))) / (n + 1)
    var = (n * f.bn.running_var + z.var((0, 2, 3), unbiased=False)) / (n + 1)
    want = (z - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + f.bn.eps)
    want = want * f.bn.weight[None, :, None, None] + f.bn.bias[None, :, None, None]
    torch.testing.assert_close(_bn_out(g, bright), want, rtol=1e-4, atol=1e-4)
    # With an even prior the shifted frame's activations move back toward the stored operating point
    # (about half the shift is left); with stored statistics only, all of it stays.
    g1 = with_stream_norm(f, 1.0)
    with torch.no_grad():
        plain_shift = float((_bn_out(f, bright).mean((0, 2, 3)) - f.bn.bias).abs().mean())
        stream_shift = float((_bn_out(g1, bright).mean((0, 2, 3)) - f.bn.bias).abs().mean())
    assert stream_shift < 0.7 * plain_shift


def test_a_strong_prior_tends_to_the_stored_statistics() -> None:
    f = _Toy()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        far = (with_stream_norm(f, 1e6)(x) - f(x)).abs().max()
        near = (with_stream_norm(f, 1.0)(x) - f(x)).abs().max()
    assert float(far) < 1e-3 < float(near)


def test_training_mode_is_plain_batchnorm() -> None:
    f = _Toy()
    g = with_stream_norm(f, 16)
    f.train()
    g.train()
    x = torch.rand(4, 3, 16, 16)
    torch.testing.assert_close(g(x), f(x))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "x"])
def test_bad_prior_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="stream_norm_prior"):
        check_prior(bad)  # type: ignore[arg-type]


def test_edge_predictor_runs_the_stream_copy_and_keeps_model_plain() -> None:
    f = _Toy()
    rgb = np.random.default_rng(0).integers(150, 255, (32, 32, 3), dtype=np.uint8)
    stream = EdgePredictor(f, MessMiner(), stream_norm_prior=2)
    stored = EdgePredictor(f, MessMiner(), stream_norm_prior=0)
    assert count_stream_layers(stream.model) == 0  # the trainer gets plain BatchNorm
    a, b = stream.predict(rgb), stored.predict(rgb)
    assert not np.allclose(a.logits, b.logits)
    # A weight swap keeps the normalisation.
    stream.set_weights(f.state_dict())
    np.testing.assert_allclose(stream.predict(rgb).logits, a.logits, rtol=1e-5, atol=1e-5)


def test_onnx_export_carries_the_per_frame_statistics() -> None:
    pytest.importorskip("onnxruntime")
    f = _Toy()
    rgb = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    torch_p = EdgePredictor(f, MessMiner(), stream_norm_prior=2)
    ort_p = EdgePredictor(f, MessMiner(), backend="onnxruntime", input_size=(32, 32), stream_norm_prior=2)
    np.testing.assert_allclose(ort_p.predict(rgb).logits, torch_p.predict(rgb).logits, rtol=1e-4, atol=1e-4)


def test_fused_inference_path_equals_the_differentiable_path() -> None:
    """Without autograd one batch_norm kernel normalises; with it, elementwise ops that carry gradients."""
    g = with_stream_norm(_Toy(), 16)
    x = torch.rand(2, 3, 24, 40)
    with torch.inference_mode():
        fused = g(x)
    x_grad = x.clone().requires_grad_(True)
    graded = g(x_grad)
    torch.testing.assert_close(graded.detach(), fused, rtol=1e-5, atol=1e-5)
    graded.sum().backward()
    assert x_grad.grad is not None and torch.isfinite(x_grad.grad).all() and x_grad.grad.abs().sum() > 0
