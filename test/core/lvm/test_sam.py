"""Tests of laecips_core.lvm.sam: SAM checkpoint loading and export, the tiny SAM, SamLVM, box_grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.lvm.base import LVM
from laecips_core.lvm.sam import (
    SamLVM,
    box_grid,
    build_tiny_sam,
    export_sam_safetensors,
    load_state_dict_file,
    load_state_dict_strict,
    sam_arch_registry,
)
from lvm_helpers import shapes_image
from safetensors import safe_open
from safetensors.torch import save_file

# SAM's default thresholds keep nothing from random weights: open them so masks come out.
_OPEN = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


@pytest.fixture(scope="module")
def tiny_sam_state() -> dict[str, torch.Tensor]:
    # seed 7, while model_type="tiny" builds seed 0: equal weights prove the file was loaded
    return build_tiny_sam(seed=7).state_dict()


def _assert_weights(lvm: SamLVM, state: dict[str, torch.Tensor]) -> None:
    loaded = lvm.model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def _check_masks(masks: np.ndarray, height: int, width: int) -> None:
    assert masks.dtype == np.bool_
    assert masks.ndim == 3 and masks.shape[1:] == (height, width)
    assert len(masks) > 0
    assert all(m.any() for m in masks)


def test_tiny_sam_is_seeded_and_checks_its_size():
    a, b = build_tiny_sam(seed=3).state_dict(), build_tiny_sam(seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = torch.random.get_rng_state()
    build_tiny_sam(seed=5)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left as it was
    with pytest.raises(ConfigError, match="multiple of 64"):
        build_tiny_sam(image_size=100)
    assert set(sam_arch_registry) == {"vit_h", "vit_l", "vit_b", "tiny"}


def test_missing_checkpoint_file_says_what_to_pass(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        SamLVM(tmp_path / "sam_vit_h_4b8939.pth", model_type="tiny")
    wrong = tmp_path / "weights.bin"
    wrong.write_bytes(b"x")
    with pytest.raises(ConfigError, match="unknown suffix '.bin'"):
        load_state_dict_file(wrong)


def test_unknown_model_type_and_bad_thresholds(tmp_path: Path, tiny_sam_state):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam_state, path)
    with pytest.raises(ConfigError, match="vit_h"):
        SamLVM(path, model_type="vit_xxl")
    with pytest.raises(ConfigError, match="pred_iou_thresh"):
        SamLVM(path, model_type="tiny", pred_iou_thresh=1.5)
    with pytest.raises(ConfigError, match="crop_n_layers"):
        SamLVM(path, model_type="tiny", crop_n_layers=-1)


def test_sam_from_pth_checkpoint(tmp_path: Path, tiny_sam_state):
    path = tmp_path / "tiny_sam.pth"
    torch.save({"model": tiny_sam_state}, path)  # nested under "model", as some checkpoints are
    lvm = SamLVM(path, model_type="tiny", **_OPEN)
    assert isinstance(lvm, LVM) and lvm.name == "sam_tiny" and lvm.needs_labels is False
    _assert_weights(lvm, tiny_sam_state)
    assert not torch.equal(
        build_tiny_sam(seed=0).state_dict()["image_encoder.patch_embed.proj.weight"],
        tiny_sam_state["image_encoder.patch_embed.proj.weight"],
    )
    image, _ = shapes_image(48, 64)
    _check_masks(lvm.generate(image), 48, 64)


def test_sam_from_safetensors_equals_pth(tmp_path: Path, tiny_sam_state):
    pth = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam_state, pth)
    st = tmp_path / "tiny_sam.safetensors"
    export_sam_safetensors(pth, st)
    with safe_open(str(st), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt", "producer": "laecips_core.lvm"}
    loaded = load_state_dict_file(st)
    assert loaded.keys() == tiny_sam_state.keys()
    image, _ = shapes_image(40, 56)
    from_st = SamLVM(st, model_type="tiny", **_OPEN)
    _assert_weights(from_st, tiny_sam_state)
    a = SamLVM(pth, model_type="tiny", **_OPEN).generate(image)
    b = from_st.generate(image)
    _check_masks(b, 40, 56)
    np.testing.assert_array_equal(a, b)


def test_sam_accepts_a_built_model():
    lvm = SamLVM(build_tiny_sam(seed=1), **_OPEN)
    assert lvm.name == "sam_custom"
    image, _ = shapes_image(32, 48)
    _check_masks(lvm.generate(image), 32, 48)
    nothing = SamLVM(build_tiny_sam(seed=1), points_per_side=2).generate(image)  # default thresholds
    assert nothing.shape == (0, 32, 48) and nothing.dtype == np.bool_


def test_checkpoint_with_wrong_keys_names_them(tmp_path: Path, tiny_sam_state):
    state = dict(tiny_sam_state)
    state["mask_decoder.extra_head.weight"] = torch.zeros(2)
    del state["image_encoder.pos_embed"]
    path = tmp_path / "wrong.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(WeightsError, match=r"image_encoder\.pos_embed.*mask_decoder\.extra_head\.weight"):
        SamLVM(path, model_type="tiny")


def test_checkpoint_with_wrong_shapes_or_arch(tmp_path: Path):
    path = tmp_path / "bigger.pth"
    torch.save(build_tiny_sam(image_size=128).state_dict(), path)
    with pytest.raises(WeightsError, match="shape"):
        SamLVM(path, model_type="tiny")  # "tiny" is 256 px: pos_embed/rel_pos sizes differ
    with pytest.raises(WeightsError, match="shape"):
        load_state_dict_strict(build_tiny_sam(), load_state_dict_file(path), "bigger")


def test_official_architecture_rejects_a_tiny_checkpoint(tmp_path: Path):
    path = tmp_path / "tiny_sam.safetensors"
    export_sam_safetensors(build_tiny_sam(), path)
    with pytest.raises(WeightsError, match=r"model_type=vit_b.*missing keys.*image_encoder\.blocks\.10\."):
        SamLVM(path, model_type="vit_b")  # segment-anything's own vit_b builder, 12 blocks


def test_pickled_object_is_refused(tmp_path: Path):
    path = tmp_path / "evil.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a whole module: needs unsafe unpickling
    with pytest.raises(WeightsError, match="weights_only"):
        load_state_dict_file(path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="safetensors"):
        load_state_dict_file(garbage)
    not_tensors = tmp_path / "numbers.pth"
    torch.save({"a": 1}, not_tensors)
    with pytest.raises(WeightsError, match="not named tensors"):
        load_state_dict_file(not_tensors)


def test_min_mask_region_area_needs_cv2():
    pytest.importorskip("segment_anything")
    try:
        import cv2  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="opencv"):
            SamLVM(build_tiny_sam(), min_mask_region_area=10)
    else:
        pytest.skip("cv2 is installed here; the early error cannot be shown")


def test_box_grid_inside_image():
    boxes = box_grid(60, 80, (2, 3), (0.25, 0.5))
    assert boxes.shape == (12, 4) and boxes.dtype == np.float32
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert boxes[:, 0::2].min() >= 0 and boxes[:, 0::2].max() <= 79 and boxes[:, 1::2].max() <= 59
    whole = box_grid(60, 80, (2, 2), (2.0, 3.0))  # every box clips to the whole image: one left
    np.testing.assert_array_equal(whole, [[0, 0, 79, 59]])
