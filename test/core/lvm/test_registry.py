"""Tests of laecips_core.lvm.registry: lvm_registry, build_lvm and the default LVM."""

from __future__ import annotations

import numpy as np
import pytest
from laecips_core.errors import ConfigError
from laecips_core.lvm.base import LVM
from laecips_core.lvm.classical import FelzenszwalbLVM, SlicLVM
from laecips_core.lvm.hierarchy import HierarchicalLVM
from laecips_core.lvm.medsam import LiteMedSamLVM
from laecips_core.lvm.oracle import OracleLVM
from laecips_core.lvm.registry import DEFAULT_LVM, build_lvm, lvm_registry
from laecips_core.lvm.sam import SamLVM


def test_registry_maps_names_to_the_implementations():
    assert lvm_registry == {
        "sam": SamLVM,
        "litemedsam": LiteMedSamLVM,
        "felzenszwalb": FelzenszwalbLVM,
        "slic": SlicLVM,
        "hierarchy": HierarchicalLVM,
        "oracle": OracleLVM,
    }


def test_default_is_the_hierarchy_and_needs_nothing():
    assert DEFAULT_LVM == "hierarchy"
    lvm = build_lvm(DEFAULT_LVM)
    assert isinstance(lvm, HierarchicalLVM) and isinstance(lvm, LVM)
    assert lvm.generate(np.zeros((16, 16, 3), np.uint8)).shape[1:] == (16, 16)


def test_keyword_arguments_reach_the_builder():
    lvm = build_lvm("slic", n_segments=7, work_size=None)
    assert isinstance(lvm, SlicLVM) and lvm.n_segments == 7 and lvm.work_size is None


def test_unknown_name_lists_known_names():
    with pytest.raises(ConfigError, match="felzenszwalb.*sam|sam.*felzenszwalb"):
        build_lvm("segment_everything_9000")


def test_wrong_keyword_is_config_error():
    with pytest.raises(ConfigError, match="n_segments"):
        build_lvm("felzenszwalb", n_segments=10)


def test_sam_without_checkpoint_argument_is_config_error():
    with pytest.raises(ConfigError, match="checkpoint"):
        build_lvm("sam")


def test_only_the_oracle_needs_labels():
    assert all(
        getattr(lvm_registry[name], "needs_labels", None) is False
        for name in ("sam", "litemedsam", "felzenszwalb", "slic", "hierarchy")
    )
    assert lvm_registry["oracle"].needs_labels is True  # type: ignore[attr-defined]
