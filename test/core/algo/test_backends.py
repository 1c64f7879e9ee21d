"""Tests of the torch and ONNX Runtime backends of f and of the ONNX export."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from laecips_core.algo.backends import TorchBackend, backend_registry, build_backend, export_onnx
from laecips_core.algo.models import build_edge_model, preprocess
from laecips_core.algo.onnx_runtime import InferenceBackend, OnnxBackend
from laecips_core.errors import ConfigError, WeightsError


def _batch(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    return preprocess(rgb).numpy()


def _model(name: str, num_classes: int = 6) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_edge_model(name, num_classes, pretrained_backbone=False).eval()


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    model = _model("tiny_fcn")
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", 96, 128)
    return model, path


def _assert_agree(torch_logits: np.ndarray, onnx_logits: np.ndarray) -> None:
    assert onnx_logits.shape == torch_logits.shape and onnx_logits.dtype == np.float32
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4, rtol=1e-4)
    agree = (onnx_logits.argmax(1) == torch_logits.argmax(1)).mean()
    assert agree >= 0.999


def test_torch_backend_is_the_model_in_inference_mode():
    model = _model("tiny_fcn")
    backend = TorchBackend(model)
    assert isinstance(backend, InferenceBackend) and backend.fixed_hw is None
    x = _batch(2, 48, 64)
    out = backend.logits(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == (2, 6, 48, 64) and out.dtype == np.float32
    np.testing.assert_array_equal(out, ref)
    with pytest.raises(ConfigError, match=r"\(B,3,H,W\)"):
        backend.logits(np.zeros((3, 48, 64), np.float32))


def test_onnx_matches_torch_for_tiny_fcn_with_dynamic_shapes(tiny_export):
    model, path = tiny_export
    backend = OnnxBackend(path, threads=1)
    assert isinstance(backend, InferenceBackend)
    assert backend.fixed_hw is None and backend.fixed_batch is None  # dynamic batch, height, width
    for n, height, width in ((1, 96, 128), (3, 96, 128), (2, 64, 80)):
        x = _batch(n, height, width, seed=n)
        _assert_agree(TorchBackend(model).logits(x), backend.logits(x))


def test_onnx_matches_torch_for_lraspp(tmp_path):
    model = _model("lraspp_mobilenetv3")
    # A fixed-size graph: its export takes a third of the dynamic one (tested on tiny_fcn above).
    path = export_onnx(model, tmp_path / "lraspp.onnx", 96, 128, dynamic=False)
    x = _batch(2, 96, 128)
    _assert_agree(TorchBackend(model).logits(x), OnnxBackend(path, threads=1).logits(x))


def test_onnx_files_load_from_another_directory(tiny_export, tmp_path, monkeypatch):
    model, single = tiny_export
    assert not single.with_name(single.name + ".data").exists()  # self-contained by default
    # With external data the pair moves together and still loads from an unrelated working directory.
    split = export_onnx(model, tmp_path / "a" / "tiny.onnx", 96, 128, external_data=True)
    data = split.with_name("tiny.onnx.data")
    assert data.exists() and data.stat().st_size > split.stat().st_size
    moved = tmp_path / "b"
    moved.mkdir()
    shutil.move(split, moved / "tiny.onnx")
    shutil.move(data, moved / "tiny.onnx.data")
    shutil.copy(single, moved / "single.onnx")
    elsewhere = tmp_path / "c"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    x = _batch(1, 96, 128)
    ref = TorchBackend(model).logits(x)
    _assert_agree(ref, OnnxBackend(moved / "tiny.onnx").logits(x))
    _assert_agree(ref, OnnxBackend("../b/single.onnx").logits(x))
    # Without its data file the model cannot load, and the error says what to do.
    (moved / "tiny.onnx.data").unlink()
    with pytest.raises(WeightsError, match=r"\.onnx\.data"):
        OnnxBackend(moved / "tiny.onnx")


def test_fixed_size_export_refuses_other_sizes(tmp_path):
    model = _model("tiny_fcn")
    path = export_onnx(model, tmp_path / "fixed.onnx", 64, 96, dynamic=False)
    backend = OnnxBackend(path, threads=1)
    assert backend.fixed_hw == (64, 96) and backend.fixed_batch == 1
    x = _batch(2, 64, 96)  # batch 2 on a batch-1 graph runs frame by frame
    _assert_agree(TorchBackend(model).logits(x), backend.logits(x))
    with pytest.raises(ConfigError, match="64x96.*input_size"):
        backend.logits(_batch(1, 96, 128))


def test_registry_and_tensorrt_message(tiny_export):
    assert set(backend_registry) == {"torch", "onnxruntime", "tensorrt"}
    model, path = tiny_export
    assert isinstance(build_backend("torch", model), TorchBackend)
    assert isinstance(build_backend("onnxruntime", path), OnnxBackend)
    with pytest.raises(ConfigError, match="JetPack on a Jetson.*onnxruntime"):
        build_backend("tensorrt", model)
    with pytest.raises(ConfigError, match="unknown inference backend 'openvino'"):
        build_backend("openvino", model)


def test_miner_network_exports_with_its_channel_count(tmp_path):
    """h through ONNX Runtime: MinerNet exported at its in_size with M input channels."""
    import onnxruntime as ort
    from laecips_core.algo.mining import MinerNet

    torch.manual_seed(0)
    h = MinerNet(5, in_size=(32, 32)).eval()
    path = export_onnx(h, tmp_path / "h.onnx", 32, 32, dynamic=False, channels=5)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 5, 32, 32]
    logits = torch.randn(1, 5, 32, 32)
    (out,) = session.run(None, {session.get_inputs()[0].name: logits.numpy()})
    with torch.inference_mode():
        want = h(logits)
    np.testing.assert_allclose(np.asarray(out).reshape(-1), want.numpy(), rtol=0, atol=1e-5)
