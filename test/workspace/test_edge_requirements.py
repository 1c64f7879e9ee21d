"""requirements-edge.txt (the torch-free edge of issue 13) and scripts/edge_env.sh, without building a venv.

The venv itself is made and checked by ``bash scripts/edge_venv.sh`` (it fails when torch imports).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a robot running f and h through ONNX Runtime must not carry, and what it cannot run without.
FORBIDDEN = (
    "torch torchvision timm segment-anything scikit-image matplotlib onnx onnxscript mypy pytest triton"
).split()
REQUIRED = (
    "numpy onnxruntime eclipse-zenoh ros-rclpy ros-rmw-fastrtps-cpp cryptography safetensors simplejpeg"
    " zstandard ros-sensor-msgs ros-diagnostic-msgs"
).split()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    """Package name (normalised) -> the whole pin line, for every non-comment line of ``path``."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pins[_norm(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0])] = line
    return pins


def test_every_edge_pin_is_the_same_line_as_in_requirements_txt() -> None:
    edge = _pins(ROOT / "requirements-edge.txt")
    full = _pins(ROOT / "requirements.txt")
    assert edge
    assert all("==" in line for line in edge.values()), "pin every package exactly (name==version)"
    differing = {name: line for name, line in edge.items() if full.get(name) != line}
    assert not differing, f"copy these lines from requirements.txt unchanged: {differing}"


def test_edge_requirements_leave_out_torch_and_the_cloud_tools() -> None:
    edge = _pins(ROOT / "requirements-edge.txt")
    assert not set(FORBIDDEN) & set(edge)
    assert not [name for name in edge if name.startswith(("nvidia-", "cuda-"))]
    assert set(REQUIRED) <= set(edge), sorted(set(REQUIRED) - set(edge))


def test_edge_env_points_python_and_ament_at_the_edge_venv(tmp_path: Path) -> None:
    venv = tmp_path / "edge-venv"
    main_venv = ROOT / ".venv"
    script = 'source scripts/edge_env.sh; printf "%s\\n" "$VIRTUAL_ENV" "$PATH" "$AMENT_PREFIX_PATH"'
    env = dict(os.environ, LAECIPS_EDGE_VENV=str(venv), PATH=f"{main_venv}/bin:/usr/bin:/bin")
    env.pop("AMENT_PREFIX_PATH", None)
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=True
    )
    virtual_env, path, ament = done.stdout.splitlines()
    assert virtual_env == str(venv)
    assert path.split(":")[0] == f"{venv}/bin"
    assert f"{main_venv}/bin" not in path.split(":")
    assert ament.split(":") == [str(ROOT / "install" / "laecips_msgs"), str(venv)]
    assert "edge_venv.sh" in done.stderr  # the missing venv is reported with what to run
