"""Shared pytest set-up: loopback-only ROS 2 is enforced, CPU threads are bounded, scripts/ importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The demo/test tooling (scripts/laecips_tooling: process groups, ports, ROS env) is no installed package.
_SCRIPTS = str(Path(__file__).resolve().parents[1] / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.insert(0, _SCRIPTS)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: end-to-end test (still runs in CI)")
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("LAECIPS_TEST_THREADS", "1")))
    except ImportError:  # pragma: no cover - torch is pinned in requirements.txt
        pass


@pytest.fixture(scope="module")
def initial_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 0 of f and h that edges, clouds and trainers start from (tiny_fcn, 4 classes)."""
    from cloud_harness import make_bundle

    return make_bundle(tmp_path_factory.mktemp("bundles") / "v0.safetensors", version=0)
