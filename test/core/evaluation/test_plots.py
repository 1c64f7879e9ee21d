"""plots draws what evaluation records without importing evaluation (the Panel protocol)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from laecips_core.evaluation import plots
from laecips_core.evaluation.records import Panel


def test_qualitative_figure_from_evaluation_panels(tmp_path: Path) -> None:
    """records.Panel fits plots.QualitativePanel: write_all draws Fig. 3 rows from Simulation.panels."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (24, 32), dtype=np.uint8)
    image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    panels = [Panel(i, i, "LAECIPS", image, labels, labels.T.T, labels[::-1]) for i in range(2)]
    path = plots.plot_qualitative(panels, 3, tmp_path / "q.png", {"1": "drift"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
