"""Tests of algo.assisted: F(x) = Algorithm 1 over f's scores and SAM(x)'s masks, mask confidence."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.algo.assisted import AssistedInference, Fused, mask_confidence
from laecips_core.algo.fusion import assisted_inference_loop
from laecips_core.errors import ConfigError
from laecips_core.lvm.classical import FelzenszwalbLVM
from laecips_core.lvm.oracle import OracleLVM

H, W = 4, 6


class _FixedLVM:
    """An LVM that always answers the same masks (a stand-in for SAM's "segment everything")."""

    name = "fixed"

    def __init__(self, masks: np.ndarray) -> None:
        self.fixed = masks
        self.calls = 0

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert image_rgb_uint8.shape == (H, W, 3)
        return self.fixed


def _probs() -> np.ndarray:
    """(3, H, W): f says class 0 on columns 0-3, class 2 on columns 4-5 (ties nowhere)."""
    probs = np.full((3, H, W), 0.1, np.float32)
    probs[0, :, :4] = 0.8
    probs[2, :, 4:] = 0.8
    return probs


def _masks() -> np.ndarray:
    """A mask over the whole image and a small 2x2 one on class 2's columns (they overlap)."""
    whole = np.ones((H, W), bool)
    small = np.zeros((H, W), bool)
    small[:2, W - 2 :] = True
    return np.stack([small, whole])  # input order: small first


def _rgb() -> np.ndarray:
    return np.zeros((H, W, 3), np.uint8)


def test_call_fuses_the_lvm_masks_with_algorithm_1() -> None:
    lvm = _FixedLVM(_masks())
    fuser = AssistedInference(lvm)
    out = fuser(_rgb(), _probs())
    assert isinstance(out, Fused) and lvm.calls == 1
    np.testing.assert_array_equal(out.masks, _masks())
    np.testing.assert_array_equal(out.labels, assisted_inference_loop(_probs(), _masks(), order="area"))
    assert out.labels.shape == (H, W) and out.labels.dtype == np.uint8
    assert out.lvm_s >= 0.0 and out.fusion_s >= 0.0


def test_fusion_order_decides_which_overlapping_mask_wins() -> None:
    """The whole-image mask sums to class 0 (16 x 0.8 + 8 x 0.1 > 16 x 0.1 + 8 x 0.8), the small mask to
    class 2. "area" applies the large mask first, so the small one keeps class 2 on its pixels; "input"
    applies them as given, so the whole mask, applied last, wins everywhere."""
    area = AssistedInference(_FixedLVM(_masks()), order="area")(_rgb(), _probs()).labels
    given = AssistedInference(_FixedLVM(_masks()), order="input")(_rgb(), _probs()).labels
    expected_area = np.zeros((H, W), np.uint8)
    expected_area[:2, W - 2 :] = 2
    np.testing.assert_array_equal(area, expected_area)
    np.testing.assert_array_equal(given, np.zeros((H, W), np.uint8))
    np.testing.assert_array_equal(given, assisted_inference_loop(_probs(), _masks(), order="input"))


def test_fuse_without_masks_is_f_own_argmax() -> None:
    fuser = AssistedInference(_FixedLVM(np.zeros((0, H, W), bool)))
    np.testing.assert_array_equal(fuser(_rgb(), _probs()).labels, _probs().argmax(0))


def test_build_by_registry_name_with_options() -> None:
    fuser = AssistedInference.build("felzenszwalb", {"work_size": 32, "min_size": 5}, order="input")
    assert isinstance(fuser.lvm, FelzenszwalbLVM) and fuser.order == "input"
    assert fuser.lvm.work_size == 32 and not fuser.needs_labels
    rng = np.random.default_rng(0)
    rgb = np.kron(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), np.ones((6, 6, 1), np.uint8))
    probs = rng.random((3, 36, 48)).astype(np.float32)
    out = fuser(rgb, probs)
    assert out.masks.ndim == 3 and out.masks.shape[1:] == (36, 48) and len(out.masks) > 1
    np.testing.assert_array_equal(out.labels, assisted_inference_loop(probs, out.masks, order="input"))


@pytest.mark.parametrize(
    ("lvm", "kwargs", "order", "match"),
    [
        ("sam9", None, "area", "unknown LVM"),
        ("felzenszwalb", {"no_such_option": 1}, "area", "felzenszwalb"),
        ("felzenszwalb", None, "random", "fusion order"),
    ],
)
def test_build_refuses_unknown_names_options_and_orders(
    lvm: str, kwargs: dict[str, int] | None, order: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        AssistedInference.build(lvm, kwargs, order=order)  # type: ignore[arg-type]


def test_the_oracle_gets_the_ground_truth_others_do_not() -> None:
    fuser = AssistedInference.build("oracle")
    assert isinstance(fuser.lvm, OracleLVM) and fuser.needs_labels
    gt = np.zeros((H, W), np.int64)
    gt[:, 3:] = 1
    masks = fuser.masks(_rgb(), gt)
    assert masks.shape == (2, H, W) and masks.sum() == H * W
    out = fuser(_rgb(), _probs(), gt)
    np.testing.assert_array_equal(out.labels, np.where(gt == 1, 2, 0))  # f's majority per gt region
    with pytest.raises(ConfigError):
        fuser.masks(_rgb())  # the oracle refuses without labels


def test_mask_confidence_is_the_deciding_masks_winning_share() -> None:
    probs = _probs()
    masks = _masks()
    fused = assisted_inference_loop(probs, masks)
    conf = mask_confidence(probs, masks, fused, order="area")
    assert conf.shape == (H, W) and conf.dtype == np.float32
    whole_share = (16 * 0.8 + 8 * 0.1) / 24  # class 0 over the whole image
    small_share = 0.8  # class 2 over the small mask
    expected = np.full((H, W), whole_share, np.float32)
    expected[:2, W - 2 :] = small_share
    np.testing.assert_allclose(conf, expected, rtol=1e-6)
    given = mask_confidence(probs, masks, fused, order="input")  # the whole mask decides everywhere
    np.testing.assert_allclose(given, np.full((H, W), whole_share), rtol=1e-6)
    assert ((0.0 <= conf) & (conf <= 1.0)).all()


def test_mask_confidence_without_a_covering_mask_is_f_top_probability() -> None:
    probs = _probs()
    fused = probs.argmax(0)
    np.testing.assert_allclose(mask_confidence(probs, np.zeros((0, H, W), bool), fused), probs.max(0))
    corner = np.zeros((1, H, W), bool)
    corner[0, 0, 0] = True
    conf = mask_confidence(probs, corner, fused)
    assert conf[0, 0] == pytest.approx(0.8) and conf[3, 5] == pytest.approx(0.8)
    empty = np.zeros((1, H, W), bool)  # a mask of no pixel decides nothing
    np.testing.assert_allclose(mask_confidence(probs, empty, fused), probs.max(0))


def test_mask_confidence_refuses_mismatched_shapes() -> None:
    probs = _probs()
    with pytest.raises(ConfigError, match="do not match"):
        mask_confidence(probs, np.zeros((1, H + 1, W), bool), np.zeros((H, W), np.uint8))
    with pytest.raises(ConfigError, match="do not match"):
        mask_confidence(probs[0], _masks(), np.zeros((H, W), np.uint8))
