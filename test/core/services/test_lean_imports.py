"""The lean edge imports no torch: the edge node and the ONNX predictor load with torch blocked, and a
bundle's graphs run (the real torch-free venv is test/edge/test_lean_edge.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bundle_helpers import add_onnx_graphs
from edge_helpers import bundle

BLOCKED = ("torch", "torchvision", "timm", "segment_anything", "skimage", "matplotlib", "scipy", "onnx")

PROGRAM = """
import importlib.abc, sys
BLOCKED = {blocked!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("blocked in the lean edge: " + name)
        return None

sys.meta_path.insert(0, Block())
import numpy as np
import laecips_edge.edge_node  # noqa: F401  (the whole node module)
from laecips_core.services.edge_config import EdgeConfig
from laecips_core.services.edge_models import load_candidate, torch_available
assert not torch_available()
cfg = EdgeConfig(edge_model_name="tiny_fcn", num_classes=6, robot_id="robot1", backend="onnxruntime",
                 allow_unsigned_weights=True).validate()
candidate = load_candidate(cfg, {path!r}, origin="operator")
labels = candidate.predictor.predict(np.zeros((32, 48, 3), np.uint8)).labels
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(type(candidate.predictor).__name__, int(labels.max()), loaded)
"""


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory) -> Path:
    return add_onnx_graphs(bundle(tmp_path_factory.mktemp("lean") / "v3.safetensors", 3, label=4))


def test_edge_node_and_lean_predictor_import_no_torch(onnx_bundle: Path):
    program = PROGRAM.format(blocked=BLOCKED, path=str(onnx_bundle))
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["OnnxEdgePredictor", "4", "[]"]
