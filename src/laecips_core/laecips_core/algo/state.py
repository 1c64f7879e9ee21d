"""A bundle of f and h in memory (Bundle) and applying it to the networks, strictly (all checks first)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from laecips_core.errors import WeightsError

if TYPE_CHECKING:  # torch only for types: reading a bundle's metadata and ONNX graphs needs no torch
    import torch
    from torch import nn

StateDict: TypeAlias = "dict[str, torch.Tensor]"


DEFAULT_MINER_IN_SIZE: tuple[int, int] = (64, 64)
"""in_size of MinerNet h when a bundle's metadata does not say (mining.MinerNet's default)."""


def miner_in_size(metadata: Mapping[str, str]) -> tuple[int, int]:
    """Read h's input size from bundle metadata ("miner_in_size": "[64, 64]", "64x64" or "64,64").

    Raises:
        WeightsError: the value is not two integers.
    """
    raw = metadata.get("miner_in_size")
    if not raw:
        return DEFAULT_MINER_IN_SIZE
    text = raw.strip().strip("[]()").replace("x", ",")
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError as err:
        raise WeightsError(f"bundle metadata miner_in_size={raw!r} is not 'H,W'") from err
    return height, width


class Bundle(NamedTuple):
    """The content of a bundle file: f's and h's state dicts and the string metadata.

    Attributes:
        f_state: edge model f, names without the "f." prefix.
        h_state: hard-input miner h (``MinerNet``), names without the "h." prefix; empty when the bundle
            carries no miner network (e.g. a MESS/SM/SPP miner).
        metadata: safetensors string metadata; always has model_name, num_classes, version, format.
        onnx: ONNX graphs of f and h ({"f": bytes, "h": bytes}) when the trainer exported them, else
            empty (``storage.weights.serialize_bundle``).
    """

    f_state: StateDict
    h_state: StateDict
    metadata: dict[str, str]
    onnx: Mapping[str, bytes] = {}

    @property
    def version(self) -> int:
        """Model version (monotonic integer chosen by the trainer)."""
        return int(self.metadata["version"])

    @property
    def num_classes(self) -> int:
        """M, the class count f was built for."""
        return int(self.metadata["num_classes"])

    @property
    def model_name(self) -> str:
        """Registry key of f (``models.edge_model_registry``)."""
        return self.metadata["model_name"]


def _describe_mismatch(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> list[str]:
    own = module.state_dict()
    problems: list[str] = []
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        problems.append(f"{len(missing)} missing keys in the weights (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys in the weights (e.g. {unexpected[:3]})")
    shapes = [
        f"{k}: weights {tuple(state[k].shape)} vs {what} {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches ({'; '.join(shapes[:3])})")
    return problems


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str = "model") -> None:
    """Load a state dict only if every key and shape matches; the module is untouched otherwise.

    Args:
        module: destination (f or h).
        state: tensors keyed like ``module.state_dict()``.
        what: name used in the error message ("f", "h").

    Raises:
        WeightsError: saying which keys are missing/unexpected and which shapes differ.
    """
    problems = _describe_mismatch(module, state, what)
    if problems:
        raise WeightsError(
            f"weights do not fit {what} ({type(module).__name__}): "
            + "; ".join(problems)
            + ". Build the model with the bundle's model_name and num_classes."
        )
    module.load_state_dict(dict(state), strict=True)


def apply_bundle(bundle: Bundle, f: nn.Module, h: nn.Module | None = None) -> None:
    """Load a bundle into f (and h), strictly: all checks pass before either module changes.

    Args:
        bundle: from ``load_bundle``/``parse_bundle``.
        f: edge model; if it has ``model_name``/``num_classes`` attributes (``models.EdgeSegmenter``)
            they must equal the bundle's metadata.
        h: miner network (``MinerNet``), or None when the miner has no weights (then the bundle must
            carry no h tensors).

    Raises:
        WeightsError: architecture, class count, key or shape mismatch (the message says which).
    """
    meta_name, meta_classes = bundle.metadata.get("model_name"), bundle.metadata.get("num_classes")
    f_name, f_classes = getattr(f, "model_name", None), getattr(f, "num_classes", None)
    if f_name is not None and meta_name is not None and f_name != meta_name:
        raise WeightsError(
            f"bundle is for edge model {meta_name!r} but f is {f_name!r}; "
            f"build f with models.build_edge_model({meta_name!r}, {meta_classes})"
        )
    if f_classes is not None and meta_classes is not None and int(meta_classes) != int(f_classes):
        raise WeightsError(
            f"bundle was trained for M={meta_classes} classes but f has M={f_classes}; "
            f"rebuild f with num_classes={meta_classes} or retrain for {f_classes} classes"
        )
    problems = _describe_mismatch(f, bundle.f_state, "f")
    if h is None and bundle.h_state:
        problems.append("the bundle carries miner weights h but no miner network was given")
    if h is not None:
        problems += [f"h: {p}" for p in _describe_mismatch(h, bundle.h_state, "h")]
    if problems:
        raise WeightsError(f"bundle {meta_name!r} (M={meta_classes}) does not fit: " + "; ".join(problems))
    f.load_state_dict(bundle.f_state, strict=True)
    if h is not None:
        h.load_state_dict(bundle.h_state, strict=True)
