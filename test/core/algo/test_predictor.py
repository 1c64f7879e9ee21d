"""Tests of EdgePredictor: shapes and dtypes, working size, batching, backends and weight swaps."""

from __future__ import annotations

import platform
import sys
import threading

import numpy as np
import pytest
import torch
from laecips_core.algo.frames import DEFAULT_STREAM_NORM_PRIOR, EdgeResult
from laecips_core.algo.mining import MessMiner, MinerNet, NeuralMiner
from laecips_core.algo.model_constants import DEFAULT_EDGE_MODEL
from laecips_core.algo.models import build_edge_model, preprocess
from laecips_core.algo.predictor import EdgePredictor, miner_network, normalise
from laecips_core.algo.streamnorm import with_stream_norm
from laecips_core.benchmark import NUM_CLASSES, BenchmarkConfig, generate_frame
from laecips_core.errors import ConfigError, ImageError, WeightsError
from laecips_core.storage.bundle_loading import load_bundle
from laecips_core.storage.weights import save_bundle
from torch import nn

M = 6


def _f(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_edge_model("tiny_fcn", M, pretrained_backbone=False)


def _h(seed: int = 0) -> MinerNet:
    torch.manual_seed(seed)
    return MinerNet(M, in_size=(32, 32))


def _edge(f: torch.nn.Module) -> torch.nn.Module:
    """f as the predictor runs it by default: per-frame BatchNorm statistics (``streamnorm``)."""
    return with_stream_norm(f.eval(), DEFAULT_STREAM_NORM_PRIOR).eval()


def _image(height: int = 60, width: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    img[: height // 2] = (200, 30, 30)  # some structure so the labels are not all one class
    return img


def test_predict_shapes_dtypes_and_values():
    f = _f()
    predictor = EdgePredictor(f, NeuralMiner(_h()))
    assert predictor.num_classes == M and predictor.version == 0
    img = _image()
    res = predictor.predict(img)
    assert isinstance(res, EdgeResult)
    assert res.labels.shape == (60, 80) and res.labels.dtype == np.uint8
    assert res.probs.shape == (M, 60, 80) and res.probs.dtype == np.float32
    assert res.logits.shape == (M, 60, 80) and res.logits.dtype == np.float32
    np.testing.assert_allclose(res.probs.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(res.labels, res.probs.argmax(axis=0))
    assert isinstance(res.confidence, float) and 0.0 <= res.confidence <= 1.0
    assert res.compute_s > 0 and res.version == 0
    # The logits are f's, and the confidence is h(f(x)) on them.
    with torch.inference_mode():
        ref = _edge(f)(preprocess(img))[0].numpy()
    np.testing.assert_allclose(res.logits, ref, atol=1e-5)
    assert res.confidence == pytest.approx(float(NeuralMiner(predictor.miner.net).confidence(ref)[0]))


def test_working_size_gives_logits_small_and_probs_at_full_size():
    predictor = EdgePredictor(_f(), MessMiner(0.5), input_size=(48, 64))
    res = predictor.predict(_image(96, 128))
    assert res.logits.shape == (M, 48, 64)
    assert res.probs.shape == (M, 96, 128) and res.labels.shape == (96, 128)
    assert res.confidence == pytest.approx(float(MessMiner(0.5).confidence(res.logits)[0]))
    with pytest.raises(ConfigError, match="input_size"):
        EdgePredictor(_f(), MessMiner(), input_size=(8, 8))


def test_predict_batch_equals_single_predictions():
    predictor = EdgePredictor(_f(), NeuralMiner(_h()))
    images = [_image(seed=s) for s in range(3)]
    batch = predictor.predict_batch(images)
    assert len(batch) == 3
    for img, res in zip(images, batch):
        single = predictor.predict(img)
        np.testing.assert_allclose(res.logits, single.logits, atol=1e-5)
        assert res.confidence == pytest.approx(single.confidence, abs=1e-5)
    # Mixed sizes at native resolution still work (one frame at a time).
    mixed = predictor.predict_batch([_image(40, 56), _image(60, 80)])
    assert [r.labels.shape for r in mixed] == [(40, 56), (60, 80)]
    assert predictor.predict_batch([]) == []


@pytest.mark.parametrize("bad", [np.zeros((60, 80), np.uint8), np.zeros((60, 80, 3), np.float32), "frame"])
def test_bad_images_raise_image_error(bad):
    predictor = EdgePredictor(_f(), MessMiner())
    with pytest.raises(ImageError):
        predictor.predict(bad)


def test_set_weights_changes_outputs_and_version():
    predictor = EdgePredictor(_f(seed=0), NeuralMiner(_h(seed=0)))
    img = _image()
    before = predictor.predict(img)
    other_f, other_h = _f(seed=1).eval(), _h(seed=1).eval()
    assert predictor.set_weights(other_f.state_dict(), other_h.state_dict(), version=7) == 7
    after = predictor.predict(img)
    assert after.version == predictor.version == 7
    assert not np.allclose(before.logits, after.logits)
    with torch.inference_mode():
        ref = _edge(other_f)(preprocess(img))[0].numpy()
    np.testing.assert_allclose(after.logits, ref, atol=1e-5)
    assert after.confidence == pytest.approx(float(NeuralMiner(other_h).confidence(ref)[0]), abs=1e-6)
    assert after.confidence != pytest.approx(before.confidence, abs=1e-6)
    # f only: h is kept, the version counts up by one.
    assert predictor.set_weights(_f(seed=2).state_dict()) == 8
    assert predictor.miner.net is miner_network(predictor.miner)


def test_bad_weights_are_refused_and_the_old_ones_stay():
    predictor = EdgePredictor(_f(), NeuralMiner(_h()), version=3)
    img = _image()
    before = predictor.predict(img)
    wrong_f = build_edge_model("tiny_fcn", M + 1).state_dict()
    with pytest.raises(WeightsError, match="shape mismatches"):
        predictor.set_weights(wrong_f)
    with pytest.raises(WeightsError, match="h"):
        predictor.set_weights(_f().state_dict(), MinerNet(M + 2, in_size=(32, 32)).state_dict())
    mess = EdgePredictor(_f(), MessMiner())
    with pytest.raises(WeightsError, match="no network"):
        mess.set_weights(_f().state_dict(), _h().state_dict())
    assert predictor.version == 3
    np.testing.assert_array_equal(predictor.predict(img).logits, before.logits)


def test_set_bundle_round_trip(tmp_path):
    src_f, src_h = _f(seed=5), _h(seed=5)
    meta = {"model_name": "tiny_fcn", "num_classes": M, "version": 12}
    save_bundle(tmp_path / "b.safetensors", src_f, src_h, meta)
    predictor = EdgePredictor(_f(seed=0), NeuralMiner(_h(seed=0)))
    assert predictor.set_bundle(load_bundle(tmp_path / "b.safetensors")) == 12
    img = _image()
    with torch.inference_mode():
        ref = _edge(src_f)(preprocess(img))[0].numpy()
    np.testing.assert_allclose(predictor.predict(img).logits, ref, atol=1e-5)
    save_bundle(tmp_path / "c.safetensors", build_edge_model("tiny_fcn", 4), None, {**meta, "num_classes": 4})
    with pytest.raises(WeightsError, match="M=4"):
        predictor.set_bundle(load_bundle(tmp_path / "c.safetensors"))
    assert predictor.version == 12


class _GatedMiner:
    """Wraps a real miner and holds the frame inside h until the test releases it."""

    def __init__(self, inner: NeuralMiner) -> None:
        self.net = inner.net
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def confidence(self, logits: torch.Tensor) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(20), "test did not release the frame"
        return NeuralMiner(self.net).confidence(logits)


def test_frame_in_progress_finishes_with_the_old_weights():
    old_f = _f(seed=0).eval()
    gated = _GatedMiner(NeuralMiner(_h()))
    predictor = EdgePredictor(old_f, gated)
    img = _image()
    with torch.inference_mode():
        old_ref = _edge(old_f)(preprocess(img))[0].numpy()
    out: list[EdgeResult] = []
    worker = threading.Thread(target=lambda: out.append(predictor.predict(img)), daemon=True)
    worker.start()
    try:
        assert gated.entered.wait(20)
        new_f = _f(seed=1).eval()
        # The swap completes while the frame is held inside h: it does not wait for the frame.
        assert predictor.set_weights(new_f.state_dict(), version=1) == 1
    finally:
        gated.release.set()
        worker.join(20)
    assert not worker.is_alive() and len(out) == 1
    assert out[0].version == 0
    np.testing.assert_allclose(out[0].logits, old_ref, atol=1e-5)
    # The old module was not modified in place; the next frame uses the new weights.
    np.testing.assert_allclose(_edge(old_f)(preprocess(img))[0].detach().numpy(), old_ref, atol=1e-6)
    nxt = predictor.predict(img)
    assert nxt.version == 1 and not np.allclose(nxt.logits, old_ref)


def test_onnxruntime_backend_matches_torch_and_follows_set_weights():
    with EdgePredictor(
        _f(), NeuralMiner(_h()), backend="onnxruntime", input_size=(48, 64), threads=1
    ) as ort_pred:
        img = _image(96, 128)
        torch_res = EdgePredictor(_f(), NeuralMiner(_h()), input_size=(48, 64)).predict(img)
        ort_res = ort_pred.predict(img)
        assert ort_res.logits.shape == (M, 48, 64)
        assert (ort_res.labels == torch_res.labels).mean() >= 0.999
        np.testing.assert_allclose(ort_res.logits, torch_res.logits, atol=1e-4)
        assert ort_res.confidence == pytest.approx(torch_res.confidence, abs=1e-4)
        first_export = ort_pred.backend.path
        ort_pred.set_weights(_f(seed=3).state_dict())
        swapped = ort_pred.predict(img)
        assert swapped.version == 1 and not np.allclose(swapped.logits, ort_res.logits)
        assert not first_export.exists() and ort_pred.backend.path.exists()
    assert not ort_pred.backend.path.exists()  # close() removed the private exports


def test_tensorrt_and_unknown_backends_are_config_errors():
    with pytest.raises(ConfigError, match="Jetson"):
        EdgePredictor(_f(), MessMiner(), backend="tensorrt")
    with pytest.raises(ConfigError, match="unknown inference backend"):
        EdgePredictor(_f(), MessMiner(), backend="tflite")


# ----------------------------------------------------------------------- the fast path vs the old path


class _OldStreamBatchNorm2d(nn.BatchNorm2d):
    """The per-frame BatchNorm of streamnorm as first written (torch.var, four elementwise passes)."""

    prior = DEFAULT_STREAM_NORM_PRIOR

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.running_mean is not None and self.running_var is not None and not self.training
        keep = self.prior / (self.prior + 1.0)
        mean = keep * self.running_mean + (1.0 - keep) * x.mean(dim=(2, 3))
        var = keep * self.running_var + (1.0 - keep) * x.var(dim=(2, 3), unbiased=False)
        y = (x - mean[:, :, None, None]) * torch.rsqrt(var + self.eps)[:, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def _reference_predict(
    f: torch.nn.Module, miner: NeuralMiner, rgb: np.ndarray, old_norm: bool
) -> tuple[np.ndarray, ...]:
    """The slow path EdgePredictor took before issue 13: (labels, probs, logits, confidence).

    preprocess, f, h, a full-resolution softmax and numpy's argmax of the probabilities; with
    ``old_norm`` f's per-frame BatchNorm is the first version's (_OldStreamBatchNorm2d), else today's.
    """
    g = with_stream_norm(f, DEFAULT_STREAM_NORM_PRIOR).eval()
    if old_norm:
        for module in g.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.__class__ = _OldStreamBatchNorm2d
    with torch.inference_mode():
        logits = g(preprocess(rgb))
        confidence = miner.confidence(logits)
        probs = torch.softmax(logits, dim=1).numpy()
    return probs.argmax(axis=1).astype(np.uint8)[0], probs[0], logits.numpy()[0], confidence


@pytest.fixture(scope="module")
def bench_setup() -> tuple[torch.nn.Module, NeuralMiner, list[np.ndarray]]:
    """The default f (ImageNet backbone from its wheel, random head), a random h, 10 benchmark frames."""
    torch.manual_seed(0)
    f = build_edge_model(DEFAULT_EDGE_MODEL, NUM_CLASSES, pretrained_backbone=True).eval()
    miner = NeuralMiner(MinerNet(NUM_CLASSES).eval())
    cfg = BenchmarkConfig(width=160, height=120, frames_per_task=2, num_tasks=5)
    return f, miner, [generate_frame(cfg, i).image for i in range(10)]  # two frames of each task


def _predict_all(predictor: EdgePredictor, frames: list[np.ndarray]) -> list[EdgeResult]:
    return predictor.predict_batch(frames[:2]) + [predictor.predict(rgb) for rgb in frames[2:]]


def test_fast_path_gives_the_old_labels_and_confidences_on_benchmark_frames(bench_setup):
    """Same f: the predictor's table lookup, logits argmax and lazy softmax change no output."""
    f, miner, frames = bench_setup
    for rgb, res in zip(frames, _predict_all(EdgePredictor(f, miner), frames), strict=True):
        labels, probs, logits, confidence = _reference_predict(f, miner, rgb, old_norm=False)
        assert len(np.unique(labels)) > 1  # a frame with structure, not one class everywhere
        np.testing.assert_array_equal(res.labels, labels)
        assert abs(res.confidence - float(confidence[0])) <= 1e-6
        np.testing.assert_allclose(res.logits, logits, rtol=0, atol=1e-5)
        np.testing.assert_allclose(res.probs, probs, rtol=0, atol=1e-6)


def test_fast_stream_norm_changes_only_float_rounding(bench_setup):
    """The two-pass variance and fused batch_norm vs the first per-frame BatchNorm, through the whole f.

    Logits move by rounding only (~1e-5 here; the old path itself moves by ~8e-6 between 1 and 2
    threads), so labels are identical wherever the old top-2 logits are more than 1e-4 apart; a pixel
    closer than that to a tie may go either way, as it does between thread counts.
    """
    f, miner, frames = bench_setup
    near_ties = flips = 0
    for rgb, res in zip(frames, _predict_all(EdgePredictor(f, miner), frames), strict=True):
        labels, probs, logits, confidence = _reference_predict(f, miner, rgb, old_norm=True)
        top2 = np.sort(logits, axis=0)[-2:]
        decided = top2[1] - top2[0] > 1e-4
        np.testing.assert_array_equal(res.labels[decided], labels[decided])
        near_ties += int((~decided).sum())
        flips += int((res.labels != labels).sum())
        assert abs(res.confidence - float(confidence[0])) <= 1e-6
        np.testing.assert_allclose(res.logits, logits, rtol=0, atol=1e-4)
        np.testing.assert_allclose(res.probs, probs, rtol=0, atol=1e-5)
    assert flips <= near_ties < 0.001 * 10 * frames[0].shape[0] * frames[0].shape[1]


def test_normalise_is_the_frames_table_as_a_tensor():
    rgb = np.random.default_rng(3).integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    assert torch.equal(normalise(rgb), preprocess(rgb))


def test_probs_are_computed_on_first_use_only():
    predictor = EdgePredictor(_f(), NeuralMiner(_h()))
    res = predictor.predict(_image())
    assert res._probs is None  # nobody asked: no full-resolution softmax was computed
    probs = res.probs
    assert res.probs is probs  # kept
    np.testing.assert_array_equal(probs.argmax(axis=0), res.labels)


def test_retain_freed_memory_is_set_once_on_glibc():
    from laecips_core.algo.predictor import retain_freed_memory

    EdgePredictor(_f(), NeuralMiner(_h()))  # the constructor calls it
    assert retain_freed_memory() is retain_freed_memory()  # once per process (cached)
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert retain_freed_memory() is True
