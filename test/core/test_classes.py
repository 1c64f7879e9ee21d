"""The default class set the edge uses (laecips_core.classes) is the benchmark's (one definition, no copy)."""

from __future__ import annotations

import json
from pathlib import Path

from bundle_helpers import write_tiny_bundle
from laecips_core.storage import bundle_loading

from laecips_core import benchmark as data
from laecips_core import classes


def test_the_benchmark_draws_the_shipped_class_set() -> None:
    """The benchmark imports the class set from laecips_core.classes instead of keeping a copy."""
    assert data.CLASSES is classes.CLASSES
    assert classes.NUM_CLASSES == data.NUM_CLASSES == len(set(classes.CLASSES))


def test_a_benchmark_card_gives_the_benchmark_class_names(tmp_path: Path) -> None:
    """A bundle without names whose weight card says it was trained on the benchmark gets classes.CLASSES."""
    path = write_tiny_bundle(tmp_path / "b.safetensors", 1, classes.NUM_CLASSES)
    meta = bundle_loading.read_bundle_metadata(path)
    assert bundle_loading.bundle_class_names(path, meta) is None
    path.with_suffix(".json").write_text(json.dumps({"data": {"benchmark": "drifting"}}))
    assert bundle_loading.bundle_class_names(path, meta) == list(classes.CLASSES)
