"""Tests of the torch-free frame steps around f and h: input table, resizing, argmax, softmax, EdgeResult."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from laecips_core.algo import frames
from laecips_core.algo.models import preprocess
from laecips_core.errors import ConfigError, ImageError


def test_normalise_equals_preprocess_bitwise():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    np.testing.assert_array_equal(frames.normalise(rgb), preprocess(rgb).numpy())
    view = rgb[:, ::2, 1:]  # strided views too
    np.testing.assert_array_equal(frames.normalise(view), preprocess(view).numpy())


@pytest.mark.parametrize("size", [(20, 31), (80, 100), (37, 60), (12, 53), (64, 64), (37, 53)])
@pytest.mark.parametrize("mode", frames.RESIZE_MODES)
def test_resize_matches_torch_interpolate(size, mode):
    x = np.random.default_rng(1).standard_normal((2, 5, 37, 53)).astype(np.float32)
    t = torch.from_numpy(x)
    if mode == "area":
        ref = F.interpolate(t, size=size, mode="area")
    else:
        aa = mode == "bilinear_aa"
        ref = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=aa)
    out = frames.resize(x.copy(), size, mode)
    assert out.shape == (2, 5, *size) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref.numpy(), atol=5e-5, rtol=0)


def test_resize_refuses_bad_modes_and_sizes():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ConfigError, match="resize mode"):
        frames.resize(x, (2, 2), "nearest")
    with pytest.raises(ConfigError, match="at least 1x1"):
        frames.resize(x, (0, 2))


def test_argmax_labels_equals_numpy_argmax_with_ties_and_many_classes():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((2, 7, 31, 17)).astype(np.float32)
    scores[:, 3] = scores[:, 5]  # exact ties go to the lower class, like numpy's argmax
    labels = frames.argmax_labels(scores)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, scores.argmax(axis=1))
    wide = rng.standard_normal((1, 300, 4, 5)).astype(np.float32)
    assert frames.argmax_labels(wide).dtype == np.uint16
    np.testing.assert_array_equal(frames.argmax_labels(wide), wide.argmax(axis=1))


def test_softmax_matches_torch_and_keeps_its_input():
    logits = (10 * np.random.default_rng(2).standard_normal((6, 9, 11))).astype(np.float32)
    before = logits.copy()
    probs = frames.softmax(logits)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(logits), dim=0).numpy(), atol=1e-6)
    np.testing.assert_array_equal(logits, before)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


def test_edge_result_computes_probs_once_and_only_when_asked():
    logits = np.random.default_rng(4).standard_normal((3, 8, 10)).astype(np.float32)
    calls: list[int] = []

    def counting(x: np.ndarray) -> np.ndarray:
        calls.append(1)
        return frames.softmax(x)

    res = frames.EdgeResult(frames.argmax_labels(logits[None])[0], logits, 0.5, 0.01, 3, softmax_fn=counting)
    assert not calls
    assert res.probs is res.probs and len(calls) == 1
    np.testing.assert_array_equal(res.probs.argmax(axis=0), res.labels)
    assert "version=3" in repr(res)


def test_check_image_and_check_prior_say_what_is_wrong():
    with pytest.raises(ImageError, match=r"\(H, W, 3\) uint8"):
        frames.check_image(np.zeros((10, 10), np.uint8))
    with pytest.raises(ImageError, match="too small"):
        frames.check_image(np.zeros((4, 10, 3), np.uint8))
    rgb = np.zeros((10, 10, 3), np.uint8)
    assert frames.check_image(rgb) is rgb
    assert frames.check_prior(3) == 3.0
    for bad in (-1.0, float("nan"), float("inf"), "x"):
        with pytest.raises(ConfigError, match="stream_norm_prior"):
            frames.check_prior(bad)  # type: ignore[arg-type]


def test_label_probs_is_the_softmax_at_the_labels_without_the_planes():
    from laecips_core.algo.predictor import torch_label_probs

    rng = np.random.default_rng(6)
    logits = (5 * rng.standard_normal((7, 12, 9))).astype(np.float32)
    labels = rng.integers(0, 7, (12, 9)).astype(np.uint8)  # any labels (the cloud's), not only the argmax
    expected = np.take_along_axis(frames.softmax(logits), labels[None].astype(np.intp), axis=0)[0]
    np.testing.assert_allclose(frames.label_probs(logits, labels), expected, atol=1e-6)
    np.testing.assert_allclose(torch_label_probs(logits, labels), expected, atol=1e-6)
    own, top = frames.argmax_and_max(logits[None])
    np.testing.assert_array_equal(top[0], logits.max(axis=0))
    np.testing.assert_array_equal(own, frames.argmax_labels(logits[None]))
    for fn in (frames.label_probs, torch_label_probs):  # with the maximum the argmax already found
        np.testing.assert_allclose(fn(logits, labels, top[0]), expected, atol=1e-6)
    fresh = frames.EdgeResult(labels, logits, 0.5, 0.01)
    np.testing.assert_allclose(fresh.label_probs(labels), expected, atol=1e-6)
    assert fresh._probs is None  # no probability planes were made for it
    assert fresh.probs.shape == logits.shape  # once the planes exist, they are used
    np.testing.assert_allclose(fresh.label_probs(labels), expected, atol=1e-6)
