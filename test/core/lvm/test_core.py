"""Tests of laecips_core.lvm.core, the transitional public face: it re-exports the moved names unchanged."""

from __future__ import annotations

import importlib

from laecips_core.lvm import core

HOME = {
    "DEFAULT_LVM": "registry",
    "LVM": "base",
    "FelzenszwalbLVM": "classical",
    "OracleLVM": "oracle",
    "build_lvm": "registry",
    "lvm_registry": "registry",
    "masks_from_label_map": "base",
    "segment_purity": "base",
}
"""Every name core re-exports -> the lvm module that defines it (the map for the importers' rewrite)."""


def test_core_reexports_each_name_from_its_module():
    assert sorted(core.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(core, name) is getattr(importlib.import_module(f"laecips_core.lvm.{module}"), name)


def test_core_defines_nothing_of_its_own():
    own = {
        name
        for name, value in vars(core).items()
        if not name.startswith("__") and getattr(value, "__module__", None) == core.__name__
    }
    assert own == set()
