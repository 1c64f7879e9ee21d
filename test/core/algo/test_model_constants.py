"""Tests of the constants of f: the default edge model and the input normalisation, and who uses them."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.algo import frames, model_constants
from laecips_core.algo.models import preprocess


def test_constants_are_imagenet_and_preprocess_uses_them():
    assert model_constants.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert model_constants.IMAGENET_STD == (0.229, 0.224, 0.225)
    black_white = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    x = preprocess(black_white).numpy()[0]
    pairs = zip(model_constants.IMAGENET_MEAN, model_constants.IMAGENET_STD, strict=True)
    for c, (mean, std) in enumerate(pairs):
        assert x[c, 0, 0] == pytest.approx(-mean / std, abs=1e-6)
        assert x[c, 0, 1] == pytest.approx((1 - mean) / std, abs=1e-6)
    np.testing.assert_array_equal(frames.normalise(black_white[None]), x[None])


def test_default_edge_model_is_registered():
    from laecips_core.algo.models import edge_model_registry

    assert model_constants.DEFAULT_EDGE_MODEL in edge_model_registry
