"""Algorithm 1 (assisted inference F): the vectorised fusion against the plain-loop oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from laecips_core.algo import fusion
from laecips_core.algo.fusion import assisted_inference, assisted_inference_loop
from laecips_core.errors import ConfigError


def _random_masks(rng: np.random.Generator, k: int, h: int, w: int) -> np.ndarray:
    """Overlapping rectangles and blobs, some empty, some full-image, some duplicated (area ties)."""
    masks = np.zeros((k, h, w), dtype=bool)
    for i in range(k):
        kind = rng.integers(0, 6)
        if kind == 0:
            continue  # empty
        if kind == 1:
            masks[i] = True  # full image
        elif kind == 2 and i > 0:
            masks[i] = masks[rng.integers(0, i)]  # duplicate: equal areas
        elif kind == 3:
            masks[i] = rng.random((h, w)) < rng.uniform(0.05, 0.6)  # scattered blob
        else:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            y1, x1 = rng.integers(y0 + 1, h + 1), rng.integers(x0 + 1, w + 1)
            masks[i, y0:y1, x0:x1] = True
    return masks


def _random_scores(rng: np.random.Generator, m: int, h: int, w: int) -> np.ndarray:
    if rng.random() < 0.5:
        # multiples of 1/8: exact ties between classes at pixels and in mask sums (exact in float32)
        return (rng.integers(0, 3, size=(m, h, w)) / 8).astype(np.float32)
    scores = rng.random((m, h, w), dtype=np.float32)
    return scores / scores.sum(axis=0, keepdims=True)


@pytest.mark.parametrize("seed", range(40))
def test_fusion_equals_loop_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 30)), int(rng.integers(1, 37))  # H*W mostly not a multiple of 8
    m = int(rng.integers(1, 12))
    k = int(rng.choice([0, 1, 3, 9, 17, 70]))  # 70: more than 64 masks, 9 membership bytes
    probs = _random_scores(rng, m, h, w)
    masks = _random_masks(rng, k, h, w)
    for order in ("area", "input"):
        expected = assisted_inference_loop(probs, masks, order=order)
        assert expected.dtype == np.uint8 and expected.shape == (h, w)
        got = assisted_inference(probs, masks, order=order)
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == np.uint8
        # list input and the torch (device) path on CPU tensors give the same labels
        np.testing.assert_array_equal(assisted_inference(probs, list(masks), order=order), expected)
        via_torch = fusion._assisted_inference_torch(torch.from_numpy(probs), torch.from_numpy(masks), order)
        assert via_torch.dtype == torch.uint8
        np.testing.assert_array_equal(via_torch.numpy(), expected)


def test_fusion_both_argmax_strategies_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    probs = _random_scores(rng, 5, 24, 31)
    masks = _random_masks(rng, 12, 24, 31)
    expected = assisted_inference_loop(probs, masks)
    for fraction in (0.0, 1.0):  # 0.0: whole-image argmax, 1.0: argmax over uncovered pixels only
        monkeypatch.setattr(fusion, "_GATHER_MAX_FRACTION", fraction)
        np.testing.assert_array_equal(assisted_inference(probs, masks), expected)


def test_first_argmax_equals_numpy_argmax_with_ties_infinities_and_nan() -> None:
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 3, size=(6, 500)).astype(np.float32)  # many exact ties
    scores[:, 0] = -np.inf
    scores[2:, 1] = np.inf
    np.testing.assert_array_equal(fusion._first_argmax(scores), np.argmax(scores, axis=0))
    scores[3, 7] = np.nan  # falls back to np.argmax, which reports the first NaN
    np.testing.assert_array_equal(fusion._first_argmax(scores), np.argmax(scores, axis=0))
    wide = rng.random((300, 40), dtype=np.float32)
    np.testing.assert_array_equal(fusion._first_argmax(wide), np.argmax(wide, axis=0))


def test_smaller_mask_overrides_bigger_one() -> None:
    # 1 x 6 image, 3 classes; the edge says class 0 everywhere.
    probs = np.zeros((3, 1, 6), dtype=np.float32)
    probs[0] = 0.5
    probs[1, 0, :] = [0.4, 0.4, 0.4, 0.4, 0.0, 0.0]
    probs[2, 0, :] = [0.0, 0.0, 0.0, 0.0, 0.45, 0.45]
    big = np.array([[1, 1, 1, 1, 1, 0]], dtype=bool)  # sums: c0 2.5, c1 1.6, c2 0.45 -> 0
    small = np.array([[0, 0, 0, 0, 1, 1]], dtype=bool)  # sums: c0 1.0, c1 0.0, c2 0.9 -> 0
    tiny = np.array([[0, 0, 1, 1, 0, 0]], dtype=bool)  # sums: c0 1.0, c1 0.8 -> 0
    probs[1, 0, 2:4] = 0.6  # now tiny: c0 1.0, c1 1.2 -> 1; big: c0 2.5, c1 2.0 -> 0
    # Given small-first, "area" order still applies big (5 px) first and the 2-px masks after it.
    labels = assisted_inference(probs, np.stack([tiny, big, small]))
    np.testing.assert_array_equal(labels, [[0, 0, 1, 1, 0, 0]])
    # Applied as given, big comes after tiny and overwrites it.
    labels = assisted_inference(probs, np.stack([tiny, big, small]), order="input")
    np.testing.assert_array_equal(labels, [[0, 0, 0, 0, 0, 0]])


def test_whole_mask_sum_decides_not_the_majority_of_pixels() -> None:
    probs = np.zeros((2, 1, 4), dtype=np.float32)
    probs[0, 0] = [0.9, 0.9, 0.9, 0.0]
    probs[1, 0] = [0.1, 0.1, 0.1, 1.0]  # class 0 wins 3 of 4 pixels but class 1 ... 1.3 < 2.7
    probs[1, 0, 3] = 3.0  # raw scores are summed as given: class 1 now has 3.3 > 2.7
    labels = assisted_inference(probs, [np.ones((1, 4), dtype=bool)])
    np.testing.assert_array_equal(labels, [[1, 1, 1, 1]])


def test_ties_pick_lowest_class_and_equal_areas_keep_input_order() -> None:
    probs = np.full((3, 2, 2), 0.25, dtype=np.float32)
    probs[2, 0, 0] = 0.5  # edge: pixel (0,0) -> 2, the rest are three-way ties -> 0
    np.testing.assert_array_equal(assisted_inference(probs, np.zeros((0, 2, 2), bool)), [[2, 0], [0, 0]])
    probs[1, 1, :] = 0.5  # edge: bottom row -> 1
    top = np.array([[1, 1], [0, 0]], dtype=bool)  # sums c0 0.5, c1 0.5, c2 0.75 -> 2
    bottom = np.array([[0, 0], [1, 1]], dtype=bool)  # sums c0 0.5, c1 1.0 -> 1
    left = np.array([[1, 0], [1, 0]], dtype=bool)  # sums c0 0.5, c1 0.75, c2 0.75: tie -> 1
    np.testing.assert_array_equal(assisted_inference(probs, np.stack([top, left])), [[1, 2], [1, 1]])
    # equal areas: the later one in the input wins where they overlap
    np.testing.assert_array_equal(assisted_inference(probs, np.stack([left, top])), [[2, 2], [1, 1]])
    np.testing.assert_array_equal(
        assisted_inference(probs, np.stack([left, bottom])), assisted_inference_loop(probs, [left, bottom])
    )


def test_empty_masks_and_no_masks_keep_edge_argmax() -> None:
    rng = np.random.default_rng(3)
    probs = rng.random((6, 9, 11), dtype=np.float32)
    edge = probs.argmax(axis=0)
    np.testing.assert_array_equal(assisted_inference(probs, []), edge)
    np.testing.assert_array_equal(assisted_inference(probs, np.zeros((4, 9, 11), dtype=bool)), edge)
    full = np.ones((1, 9, 11), dtype=bool)
    winner = int(probs.reshape(6, -1).sum(axis=1).argmax())
    np.testing.assert_array_equal(assisted_inference(probs, full), np.full((9, 11), winner))


def test_more_than_255_classes_gives_int32() -> None:
    rng = np.random.default_rng(11)
    probs = rng.random((300, 6, 10), dtype=np.float32)
    masks = _random_masks(rng, 8, 6, 10)
    got = assisted_inference(probs, masks)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, assisted_inference_loop(probs, masks))
    assert got.max() > 255 or assisted_inference_loop(probs, []).max() > 255
    assert fusion._assisted_inference_torch(torch.from_numpy(probs), masks, "area").dtype == torch.int32


def test_torch_input_returns_torch_and_integer_masks_are_accepted() -> None:
    rng = np.random.default_rng(5)
    probs = torch.softmax(torch.from_numpy(rng.standard_normal((4, 12, 13)).astype(np.float32)), dim=0)
    masks = torch.from_numpy(_random_masks(rng, 6, 12, 13).astype(np.uint8))
    got = assisted_inference(probs.double(), masks)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
    expected = assisted_inference_loop(probs.numpy(), masks.numpy().astype(bool))
    np.testing.assert_array_equal(got.numpy(), expected)
    assert isinstance(assisted_inference_loop(probs, masks), torch.Tensor)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_matches_oracle() -> None:
    rng = np.random.default_rng(9)
    probs = _random_scores(rng, 7, 40, 50)
    masks = _random_masks(rng, 30, 40, 50)
    got = assisted_inference(torch.from_numpy(probs).cuda(), torch.from_numpy(masks).cuda())
    assert got.device.type == "cuda"
    np.testing.assert_array_equal(got.cpu().numpy(), assisted_inference_loop(probs, masks))


def test_bad_inputs_raise_config_error() -> None:
    probs = np.zeros((3, 4, 5), dtype=np.float32)
    with pytest.raises(ConfigError, match=r"\(H, W\) = \(4, 5\)"):
        assisted_inference(probs, np.zeros((2, 5, 4), dtype=bool))
    with pytest.raises(ConfigError, match=r"masks \[1\] has shape"):
        assisted_inference(probs, [np.zeros((4, 5), bool), np.zeros((4, 6), bool)])
    with pytest.raises(ConfigError, match="threshold soft masks"):
        assisted_inference(probs, np.zeros((1, 4, 5), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"\(M, H, W\)"):
        assisted_inference(probs[0], [])
    with pytest.raises(ConfigError, match="float scores"):
        assisted_inference(probs.astype(np.int64), [])
    with pytest.raises(ConfigError, match="order"):
        assisted_inference(probs, [], order="random")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\(H, W\) = \(4, 5\)"):
        fusion._assisted_inference_torch(torch.from_numpy(probs), [np.zeros((3, 5), bool)], "area")


@pytest.mark.parametrize("seed", range(12))
def test_fusion_randomized_layouts_equal_loop_in_numpy_and_torch(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random shapes, orders, overlapping masks and mask layouts (bool, uint8, non-contiguous, list),
    both uncovered-pixel gathers (slices and np.take): numpy and torch-on-CPU labels equal the loop's."""
    rng = np.random.default_rng(1000 + seed)
    h, w = int(rng.integers(1, 48)), int(rng.integers(1, 64))
    m = int(rng.integers(1, 20))
    masks = _random_masks(rng, int(rng.integers(0, 40)), h, w)
    probs = _random_scores(rng, m, h, w)
    order = ("area", "input")[seed % 2]
    expected = assisted_inference_loop(probs, masks, order=order)
    layouts = [masks, masks.astype(np.uint8), np.asfortranarray(masks), list(masks[::-1])[::-1]]
    for min_run in (1, 10**9):  # every gather as slices, then every gather through np.take
        monkeypatch.setattr(fusion, "_SLICE_MIN_MEAN_RUN", min_run)
        for layout in layouts:
            np.testing.assert_array_equal(assisted_inference(probs, layout, order=order), expected)
    strided = torch.from_numpy(np.ascontiguousarray(np.repeat(masks, 2, axis=2)))[:, :, ::2]
    for torch_masks in (torch.from_numpy(masks), strided, [torch.from_numpy(x) for x in masks]):
        got = fusion._assisted_inference_torch(torch.from_numpy(probs), torch_masks, order)
        np.testing.assert_array_equal(got.numpy(), expected)
    assert masks.dtype == np.bool_  # the torch path packs bits without writing into the caller's masks
