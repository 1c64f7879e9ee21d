"""SAM(x) of the paper: segment-anything's automatic mask generator over a user-supplied SAM checkpoint.

Also the safe checkpoint loading shared by the SAM-family LVMs (.safetensors, or .pth with
weights_only=True), the .safetensors export, a tiny random SAM for tests and box prompts (box_grid).
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from laecips_core.errors import ConfigError, WeightsError
from laecips_core.lvm.base import (
    _check_image,
    _check_positive_int,
    _check_unit,
    _empty_masks,
    _require,
    _torch_device,
)

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

__all__ = [
    "SamLVM",
    "box_grid",
    "build_tiny_sam",
    "export_sam_safetensors",
    "load_state_dict_file",
    "load_state_dict_strict",
    "sam_arch_registry",
]

_STATE_DICT_SUFFIXES = (".safetensors", ".pth", ".pt")


# --------------------------------------------------------------------------------------------------
# checkpoints (user-supplied SAM files; LiteMedSAM's shipped file uses the same loaders)


def _unwrap_state(obj: object, source: str) -> dict[str, torch.Tensor]:
    """Accept a plain state dict or one nested under "model"/"state_dict"; check every value is a tensor."""
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{source}: expected a non-empty state dict of tensors, got {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(
            f"{source}: entries that are not named tensors: {bad[:5]}; save model.state_dict()"
        )
    return dict(obj)


def load_state_dict_file(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Read a state dict from a user-supplied checkpoint file, safely.

    .safetensors is read with safetensors; .pth/.pt (e.g. the official sam_vit_h_4b8939.pth) only with
    torch.load(map_location=device, weights_only=True), which refuses arbitrary pickled objects.

    Args:
        path: checkpoint file (.safetensors preferred, or .pth / .pt).
        device: where the tensors are put ("cpu" works on every host).

    Returns:
        name -> tensor mapping.

    Raises:
        ConfigError: the file does not exist or has an unknown suffix.
        WeightsError: the file cannot be parsed as a tensor-only state dict.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"checkpoint {str(file)!r} not found; pass the path of an existing .safetensors or .pth file "
            "(SAM: e.g. sam_vit_h_4b8939.pth, converted once with export_sam_safetensors)"
        )
    suffix = file.suffix.lower()
    if suffix not in _STATE_DICT_SUFFIXES:
        raise ConfigError(
            f"checkpoint {str(file)!r}: unknown suffix {suffix!r}; use one of {_STATE_DICT_SUFFIXES}"
        )
    dev = _torch_device(device)
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: object = load_file(str(file), device=str(dev))
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"{file}: not a readable safetensors file ({err}); re-export it") from err
    else:
        try:
            state = torch.load(str(file), map_location=dev, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
            raise WeightsError(
                f"{file}: not a weights_only-loadable state dict ({type(err).__name__}: {str(err)[:200]}); "
                "save only model.state_dict(), or convert it to .safetensors in a trusted environment"
            ) from err
    return _unwrap_state(state, str(file))


def load_state_dict_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load state into model requiring identical keys and shapes.

    Raises:
        WeightsError: naming the missing and unexpected keys (first few) or the shape mismatches, so the
            user can tell a wrong model_type from a damaged file.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{source}: checkpoint does not match the model ({len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}); check model_type and the file"
        )
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise WeightsError(
            f"{source}: {len(wrong)} tensors have the wrong shape, e.g. {wrong[:3]}; check model_type"
        )
    model.load_state_dict(state, strict=True)


def export_sam_safetensors(checkpoint: str | os.PathLike[str] | Sam, path: str | os.PathLike[str]) -> None:
    """Write a SAM state dict as .safetensors (atomically), e.g. to convert sam_vit_h_4b8939.pth once.

    Args:
        checkpoint: a .pth/.pt/.safetensors file (read with load_state_dict_file) or a built Sam model.
        path: output file, should end in .safetensors.
    """
    from safetensors.torch import save

    from laecips_core.files import atomic_write_bytes

    if isinstance(checkpoint, torch.nn.Module):
        state = checkpoint.state_dict()
    else:
        state = load_state_dict_file(checkpoint, device="cpu")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    atomic_write_bytes(path, save(tensors, metadata={"format": "pt", "producer": "laecips_core.lvm"}))


# --------------------------------------------------------------------------------------------------
# SAM


def _segment_anything() -> Any:
    """Import segment_anything (which imports torchvision) or say what to install."""
    return _require("segment_anything", "segment-anything==1.0", "The SAM-family LVMs")


def build_tiny_sam(seed: int = 0, image_size: int = 256) -> Sam:
    """A tiny randomly initialised SAM (~90k parameters) for tests of the mask-generator code paths.

    Same classes as SAM ViT-H (segment_anything.modeling: ImageEncoderViT with windowed + global
    attention, PromptEncoder, MaskDecoder with a TwoWayTransformer), only smaller: 2 encoder blocks,
    embed dim 32, patch 16. Random weights produce meaningless masks.

    Args:
        seed: torch seed for the initialisation (same seed -> same weights).
        image_size: encoder input side in pixels, a multiple of 64 (so the 16-pixel-patch grid is a
            multiple of the attention window 4).

    Returns:
        Sam in eval mode on the CPU.
    """
    if image_size < 64 or image_size % 64:
        raise ConfigError(f"build_tiny_sam: image_size must be a multiple of 64 (>= 64), got {image_size}")
    modeling = _segment_anything().modeling
    embed_dim = 32
    grid = image_size // 16
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sam = modeling.Sam(
            image_encoder=modeling.ImageEncoderViT(
                img_size=image_size,
                patch_size=16,
                embed_dim=embed_dim,
                depth=2,
                num_heads=2,
                mlp_ratio=2.0,
                out_chans=embed_dim,
                qkv_bias=True,
                norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=4,
                global_attn_indexes=(1,),
            ),
            prompt_encoder=modeling.PromptEncoder(
                embed_dim=embed_dim,
                image_embedding_size=(grid, grid),
                input_image_size=(image_size, image_size),
                mask_in_chans=4,
            ),
            mask_decoder=modeling.MaskDecoder(
                num_multimask_outputs=3,
                transformer=modeling.TwoWayTransformer(
                    depth=1, embedding_dim=embed_dim, mlp_dim=64, num_heads=2
                ),
                transformer_dim=embed_dim,
                iou_head_depth=2,
                iou_head_hidden_dim=32,
            ),
        )
    finally:
        torch.random.set_rng_state(generator_state)
    return sam.eval()


def _sam_from_registry(model_type: str) -> Sam:
    """An untrained SAM of an official size, built by segment-anything's own builder (no checkpoint)."""
    sam: Sam = _segment_anything().sam_model_registry[model_type](checkpoint=None)
    return sam


sam_arch_registry: dict[str, Callable[[], Sam]] = {
    "vit_h": functools.partial(_sam_from_registry, "vit_h"),
    "vit_l": functools.partial(_sam_from_registry, "vit_l"),
    "vit_b": functools.partial(_sam_from_registry, "vit_b"),
    "tiny": build_tiny_sam,
}
"""model_type -> builder of an untrained SAM architecture; SamLVM loads the checkpoint into it."""


class SamLVM:
    """SAM(x) of the paper: segment-anything's SamAutomaticMaskGenerator over a SAM checkpoint.

    The checkpoint is a user-supplied file (no SAM weights ship on PyPI): the official .pth (read with
    weights_only=True and map_location=device) or a .safetensors export. The architecture is built first
    and the state dict loaded strictly (WeightsError names missing/unexpected keys).

    Args:
        checkpoint: path to .safetensors / .pth, or an already-built Sam model (used as is).
        model_type: "vit_h", "vit_l", "vit_b" or "tiny" (build_tiny_sam, tests); ignored for a Sam model.
        device: torch device, "cpu" by default.
        points_per_side: point grid side; points_per_side**2 point prompts per crop.
        points_per_batch: point prompts decoded at once.
        pred_iou_thresh: keep masks whose predicted IoU >= this, in [0, 1].
        stability_score_thresh: keep masks whose stability score >= this, in [0, 1].
        box_nms_thresh: box IoU above which duplicate masks are suppressed, in [0, 1].
        crop_n_layers: extra crop layers (0: whole image only).
        min_mask_region_area: > 0 removes holes/islands smaller than this (pixels); needs opencv (cv2).
    """

    needs_labels = False

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | Sam,
        model_type: str = "vit_h",
        device: str = "cpu",
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        min_mask_region_area: int = 0,
    ) -> None:
        sa = _segment_anything()
        if crop_n_layers < 0 or min_mask_region_area < 0:
            raise ConfigError(
                "crop_n_layers and min_mask_region_area must be >= 0, "
                f"got {crop_n_layers}, {min_mask_region_area}"
            )
        if min_mask_region_area > 0:
            _require(
                "cv2",
                "opencv-python-headless",
                "SamLVM(min_mask_region_area > 0)",
                "set min_mask_region_area=0",
            )
        self.device = _torch_device(device)
        if isinstance(checkpoint, torch.nn.Module):
            model = checkpoint
            self.model_type = "custom"
        else:
            if model_type not in sam_arch_registry:
                raise ConfigError(
                    f"unknown SAM model_type {model_type!r}; choose one of {sorted(sam_arch_registry)}"
                )
            state = load_state_dict_file(checkpoint, device=self.device)  # fail fast, before building
            model = sam_arch_registry[model_type]()
            load_state_dict_strict(model, state, f"{checkpoint} (model_type={model_type})")
            self.model_type = model_type
        self.model: Sam = model.to(self.device).eval()
        self.name = f"sam_{self.model_type}"
        self.generator = sa.SamAutomaticMaskGenerator(
            self.model,
            points_per_side=_check_positive_int("points_per_side", points_per_side),
            points_per_batch=_check_positive_int("points_per_batch", points_per_batch),
            pred_iou_thresh=_check_unit("pred_iou_thresh", pred_iou_thresh),
            stability_score_thresh=_check_unit("stability_score_thresh", stability_score_thresh),
            box_nms_thresh=_check_unit("box_nms_thresh", box_nms_thresh),
            crop_n_layers=int(crop_n_layers),
            min_mask_region_area=int(min_mask_region_area),
            output_mode="binary_mask",
        )

    def generate(self, image_rgb_uint8: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (K, H, W) bool masks (segment-anything's NMS order, not sorted)."""
        image = _check_image(image_rgb_uint8, self.name)
        with torch.inference_mode():
            records = self.generator.generate(image)
        if not records:
            return _empty_masks(*image.shape[:2])
        return np.stack([np.asarray(r["segmentation"], dtype=bool) for r in records])


# --------------------------------------------------------------------------------------------------
# box prompts (LiteMedSAM's "segment everything")


def box_grid(height: int, width: int, grid: tuple[int, int], box_sizes: Sequence[float]) -> np.ndarray:
    """Box prompts for "segment everything" with a box-prompted model.

    Boxes are centred on a (rows, cols) grid of cell centres; a box of size s spans s * width by
    s * height pixels, clipped to the image. Duplicates after clipping are removed.

    Args:
        height, width: image size in pixels.
        grid: (rows, cols) of box centres.
        box_sizes: box sizes as fractions (0, 1] of the image side.

    Returns:
        (N, 4) float32 boxes XYXY in pixels, N <= rows * cols * len(box_sizes).
    """
    rows, cols = grid
    cy = (np.arange(rows) + 0.5) * height / rows
    cx = (np.arange(cols) + 0.5) * width / cols
    boxes = []
    for size in box_sizes:
        half_w, half_h = size * width / 2.0, size * height / 2.0
        for y in cy:
            for x in cx:
                boxes.append((x - half_w, y - half_h, x + half_w, y + half_h))
    arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    arr[:, 0::2] = arr[:, 0::2].clip(0, width - 1)
    arr[:, 1::2] = arr[:, 1::2].clip(0, height - 1)
    _, first = np.unique(np.round(arr, 2), axis=0, return_index=True)
    return arr[np.sort(first)]
