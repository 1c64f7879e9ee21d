"""laecips_msgs builds from a clean build directory and its generated Python types import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_build_interfaces_from_clean_dir(tmp_path: Path) -> None:
    build = tmp_path / "build" / "laecips_msgs"
    prefix = tmp_path / "install" / "laecips_msgs"
    env = dict(os.environ, BUILD_DIR=str(build), INSTALL_PREFIX=str(prefix))
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_msgs.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert (site / "laecips_msgs" / "msg" / "_segmentation_result.py").is_file()
    code = (
        "import laecips_msgs.msg as m, sys; "
        "assert m.__file__.startswith(sys.argv[1]), m.__file__; "
        "r = m.SegmentationResult(); r.class_fractions = [0.5, 0.5]; "
        "u = m.ModelUpdate(version=3, sha256='ab'); s = m.CloudStatus(); "
        "print(r.SOURCE_CLOUD, u.version, type(s).__name__)"
    )
    # Only the freshly built tree on the paths: proves the new build, not install/, is imported.
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = str(site)
    child_env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}:{child_env.get('LD_LIBRARY_PATH', '')}"
    out = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cloud", "3", "CloudStatus"]
