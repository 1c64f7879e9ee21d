"""Tests of the ONNX graphs of f and h a bundle carries: what they compute and what they refuse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import build_edge_model
from laecips_core.algo.onnx_export import onnx_graphs, onnx_metadata
from laecips_core.algo.onnx_runtime import OnnxBackend
from laecips_core.algo.streamnorm import with_stream_norm
from laecips_core.errors import ConfigError


def test_graphs_compute_f_with_stream_norm_and_h():
    torch.manual_seed(1)
    f = build_edge_model("tiny_fcn", 4, pretrained_backbone=False).eval()
    h = MinerNet(4, in_size=(32, 32)).eval()
    graphs = onnx_graphs(f, h, 2.0, (48, 64))
    x = torch.randn(1, 3, 48, 64)
    with torch.inference_mode():
        f_ref, plain = with_stream_norm(f, 2.0)(x).numpy(), f(x).numpy()
        h_ref = h(torch.from_numpy(f_ref[:, :, :32, :32].copy())).numpy()
    f_out = OnnxBackend(graphs["f"]).logits(x.numpy())
    np.testing.assert_allclose(f_out, f_ref, atol=1e-4)
    assert np.abs(f_ref - plain).max() > 1e-3  # the prior is in the graph, not stored statistics only
    h_out = OnnxBackend(graphs["h"]).logits(np.ascontiguousarray(f_ref[:, :, :32, :32]))
    np.testing.assert_allclose(h_out.reshape(-1), h_ref, atol=1e-5)
    assert onnx_metadata(2) == {"onnx_stream_norm_prior": "2.0"}


def test_export_refuses_a_miner_without_network_and_bad_priors():
    f = build_edge_model("tiny_fcn", 4, pretrained_backbone=False).eval()
    with pytest.raises(ConfigError, match="MinerNet"):
        onnx_graphs(f, torch.nn.Identity(), 16.0)
    with pytest.raises(ConfigError, match="stream_norm_prior"):
        onnx_graphs(f, MinerNet(4), -1.0)
