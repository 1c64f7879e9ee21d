"""The registry of SAM(x) builders (like segment-anything's sam_model_registry) and build_lvm.

Imports every implementation; nothing under lvm/ imports this module back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from laecips_core.errors import ConfigError
from laecips_core.lvm.base import LVM
from laecips_core.lvm.classical import FelzenszwalbLVM, SlicLVM
from laecips_core.lvm.hierarchy import HierarchicalLVM
from laecips_core.lvm.medsam import LiteMedSamLVM
from laecips_core.lvm.oracle import OracleLVM
from laecips_core.lvm.sam import SamLVM

__all__ = ["DEFAULT_LVM", "build_lvm", "lvm_registry"]

DEFAULT_LVM = "hierarchy"
"""The LVM used when none is configured: runs on any CPU without weights (classical, not SAM)."""


lvm_registry: dict[str, Callable[..., LVM]] = {
    "sam": SamLVM,
    "litemedsam": LiteMedSamLVM,
    "felzenszwalb": FelzenszwalbLVM,
    "slic": SlicLVM,
    "hierarchy": HierarchicalLVM,
    "oracle": OracleLVM,
}
"""name -> LVM builder (like segment-anything's sam_model_registry); keyword arguments as documented."""


def build_lvm(name: str, **kwargs: Any) -> LVM:
    """Build an LVM by registry name.

    Args:
        name: a key of lvm_registry ("sam", "litemedsam", "felzenszwalb", "slic", "hierarchy", or
            "oracle", the evaluation-only upper bound that needs ground truth).
        **kwargs: the builder's keyword arguments (e.g. checkpoint=... for "sam").

    Raises:
        ConfigError: unknown name (lists the known ones) or arguments the builder does not take.
    """
    if name not in lvm_registry:
        raise ConfigError(f"unknown LVM {name!r}; choose one of {sorted(lvm_registry)}")
    builder = lvm_registry[name]
    signature = inspect.signature(builder)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ConfigError(f"build_lvm({name!r}): {err}; it accepts {signature}") from err
    return builder(**kwargs)
