"""The class set of the shipped default model: the benchmark's 16 industrial classes, names and M.

The edge and the weight cards take class names from here (or from the bundle), never from the
benchmark generator; the benchmark (``laecips_core.benchmark``) draws its scenes with this class set.
"""

from __future__ import annotations

CLASSES: tuple[str, ...] = (
    "floor",
    "wall",
    "conveyor_belt",
    "machine",
    "rack",
    "pallet",
    "crate",
    "metal_part",
    "plastic_part",
    "tool",
    "person",
    "agv",
    "cable",
    "floor_marking",
    "defect",
    "spill",
)
"""Class names; the class id of a label pixel is its index here."""

NUM_CLASSES: int = len(CLASSES)
"""M of the default model (the edge's ``num_classes`` when neither a bundle nor class_names says)."""
