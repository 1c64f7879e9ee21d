"""Transitional public face of the LVM subpackage (SAM(x)): re-exports what code outside lvm/ imports.

The code lives in lvm.base (LVM Protocol, masks_from_label_map, segment_purity), lvm.classical,
lvm.hierarchy, lvm.oracle, lvm.sam, lvm.medsam and lvm.registry (lvm_registry, build_lvm, DEFAULT_LVM).
Import from those modules in new code; this module goes once every importer has moved.
"""

from __future__ import annotations

from laecips_core.lvm.base import LVM, masks_from_label_map, segment_purity
from laecips_core.lvm.classical import FelzenszwalbLVM
from laecips_core.lvm.oracle import OracleLVM
from laecips_core.lvm.registry import DEFAULT_LVM, build_lvm, lvm_registry

__all__ = [
    "DEFAULT_LVM",
    "LVM",
    "FelzenszwalbLVM",
    "OracleLVM",
    "build_lvm",
    "lvm_registry",
    "masks_from_label_map",
    "segment_purity",
]
