"""Tests of OnnxBackend: graphs of f and h from a file or from bytes, their checks and error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo.backends import export_onnx
from laecips_core.algo.mining import MinerNet
from laecips_core.algo.models import build_edge_model
from laecips_core.algo.onnx_runtime import OnnxBackend, check_batch
from laecips_core.errors import ConfigError, WeightsError


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ort")
    f = build_edge_model("tiny_fcn", 5, pretrained_backbone=False).eval()
    h = MinerNet(5, in_size=(32, 32)).eval()
    f_path = export_onnx(f, folder / "f.onnx", 48, 64)
    h_path = export_onnx(h, folder / "h.onnx", 32, 32, dynamic=False, channels=5)
    return f, h, f_path, h_path


def test_bytes_and_file_give_the_same_outputs(exports):
    f, h, f_path, h_path = exports
    x = np.random.default_rng(0).standard_normal((2, 3, 48, 64)).astype(np.float32)
    from_file, from_bytes = OnnxBackend(f_path), OnnxBackend(f_path.read_bytes(), name="f")
    assert from_bytes.path is None and from_bytes.name == "f" and from_bytes.channels == 3
    np.testing.assert_array_equal(from_file.logits(x), from_bytes.logits(x))
    with torch.inference_mode():
        np.testing.assert_allclose(from_bytes.logits(x), f(torch.from_numpy(x)).numpy(), atol=1e-4)
    miner = OnnxBackend(h_path.read_bytes(), name="h")
    assert miner.channels == 5 and miner.fixed_hw == (32, 32) and miner.fixed_batch == 1
    logits = np.random.default_rng(1).standard_normal((3, 5, 32, 32)).astype(np.float32)
    out = miner.logits(logits)  # a fixed batch of 1: run frame by frame
    with torch.inference_mode():
        np.testing.assert_allclose(out.reshape(-1), h(torch.from_numpy(logits)).numpy(), atol=1e-5)


def test_wrong_inputs_say_what_was_expected(exports):
    _, _, _, h_path = exports
    miner = OnnxBackend(h_path)
    with pytest.raises(ConfigError, match=r"\(B,5,H,W\)"):
        miner.logits(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ConfigError, match="exported for 32x32"):
        miner.logits(np.zeros((1, 5, 16, 16), np.float32))
    with pytest.raises(ConfigError, match="float32 array"):
        check_batch(np.zeros((3, 32, 32), np.float32))
    assert check_batch(np.zeros((1, 7, 2, 2), np.float64), None).dtype == np.float32


def test_missing_or_corrupt_graphs_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="export_onnx"):
        OnnxBackend(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(WeightsError, match="cannot load"):
        OnnxBackend(bad)
    with pytest.raises(WeightsError, match="cannot load h"):
        OnnxBackend(b"\x00garbage", name="h")


def test_intra_op_threads_do_not_spin_unless_asked(exports):
    _, _, f_path, _ = exports
    key = "session.intra_op.allow_spinning"
    quiet = OnnxBackend(f_path, threads=2).session.get_session_options()
    assert quiet.get_session_config_entry(key) == "0" and quiet.intra_op_num_threads == 2
    spinning = OnnxBackend(f_path, spin=True).session.get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):
        spinning.get_session_config_entry(key)  # ONNX Runtime's default: spinning
