"""Shared pytest set-up: loopback-only ROS 2 is enforced, CPU threads are bounded."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: end-to-end test (still runs in CI)")
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("LAECIPS_TEST_THREADS", "1")))
    except ImportError:  # pragma: no cover - torch is pinned in requirements.txt
        pass
