"""The workspace builds with colcon as on Humble and Jazzy, and the install tree is what ROS 2 needs.

For each setuptools that the distributions' apt ships (Ubuntu 22.04 / Humble: 59.6.0, Ubuntu 24.04 /
Jazzy: 68.1.2) a throwaway venv gets that setuptools and colcon from PyPI (test/workspace/
colcon-requirements.txt), then ``colcon build`` (plain and --symlink-install) builds our ament_python
packages into a temporary folder. laecips_msgs (ament_cmake) is left out: scripts/build_msgs.sh and
test_build_msgs.py cover it. The install tree is checked file by file, and every launch file is
resolved against it (test/launch_resolve.py) the way launch_ros would after ``source install/setup.bash``.
"""

from __future__ import annotations

import ast
import filecmp
import os
import subprocess
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from launch_resolve import Dynamic, LaunchResolver

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
REQUIREMENTS = Path(__file__).with_name("colcon-requirements.txt")
SETUPTOOLS = {"humble": "59.6.0", "jazzy": "68.1.2"}
"""setuptools of python3-setuptools in Ubuntu 22.04 (jammy) and 24.04 (noble) apt."""
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"

pytestmark = pytest.mark.slow


def ament_python_packages() -> dict[str, Path]:
    """Package name -> source folder of every ament_python package under src/."""
    found = {}
    for xml in sorted(SRC.glob("*/package.xml")):
        root = ET.parse(xml).getroot()
        if root.findtext("export/build_type") == "ament_python":
            found[root.findtext("name") or ""] = xml.parent
    return found


def console_scripts(setup_py: Path) -> set[str]:
    """Names of the console_scripts entry points of a setup.py (literal list)."""
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(e).split("=")[0].strip() for e in value.elts}
    return set()


def _pypi_unreachable() -> str | None:
    """Why PyPI cannot be reached, or None when it answers."""
    try:
        with urllib.request.urlopen("https://pypi.org/simple/colcon-core/", timeout=15):
            return None
    except (urllib.error.URLError, OSError) as err:
        return str(err)


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module", params=sorted(SETUPTOOLS), ids=lambda d: f"{d}-setuptools-{SETUPTOOLS[d]}")
def colcon_venv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the distribution's setuptools and the pinned colcon; its python."""
    venv = tmp_path_factory.mktemp(f"colcon-{request.param}")
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    setuptools = f"setuptools=={SETUPTOOLS[request.param]}"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(REQUIREMENTS), setuptools],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        reason = _pypi_unreachable()
        if reason:
            pytest.skip(f"PyPI is unreachable ({reason}): cannot install colcon and {setuptools}")
        pytest.fail(f"installing colcon and {setuptools} failed:\n{done.stderr[-4000:]}")
    version = _run([str(python), "-c", "import setuptools; print(setuptools.__version__)"], venv, 60)
    assert version.strip() == SETUPTOOLS[request.param], "pip replaced the pinned setuptools"
    return python


@pytest.fixture(scope="module", params=["", "--symlink-install"], ids=["install", "symlink"])
def install_tree(request: pytest.FixtureRequest, colcon_venv: Path, tmp_path_factory) -> Path:
    """``colcon build`` of src/ (laecips_msgs ignored) into a temporary folder; its install base."""
    work = tmp_path_factory.mktemp("ws")
    colcon = colcon_venv.parent / "colcon"
    cmd = [str(colcon), "build", "--base-paths", str(SRC), "--packages-ignore", "laecips_msgs",
           "--build-base", "build", "--install-base", "install"]  # fmt: skip
    if request.param:
        cmd.append(request.param)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLCON", "AMENT", "PYTHON"))}
    env["PATH"] = f"{colcon_venv.parent}{os.pathsep}{env.get('PATH', '')}"
    _run(cmd, work, 300, env)
    return work / "install"


def test_install_tree_has_what_ros2_needs(install_tree: Path) -> None:
    """Executables in lib/<pkg>, ament index markers, package.xml, launch/ and config/ in share/."""
    packages = ament_python_packages()
    ours = {"laecips_core", "laecips_common", "laecips_edge", "laecips_cloud", "laecips_bringup"}
    assert ours <= set(packages)
    executables = set()
    for name, source in packages.items():
        prefix = install_tree / name
        assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / name).is_file()
        assert filecmp.cmp(prefix / "share" / name / "package.xml", source / "package.xml", shallow=False)
        for exe in console_scripts(source / "setup.py"):
            script = prefix / "lib" / name / exe
            assert script.is_file() and os.access(script, os.X_OK), (
                f"{script} missing (ros2 run {name} {exe})"
            )
            executables.add(exe)
        assert not (prefix / "bin").exists(), f"{name} installed executables to bin/, not lib/{name}"
    assert {"edge_node", "bag_player", "cloud_node", "trainer_node", "zenoh_router", "laecips"} <= executables
    share = install_tree / "laecips_bringup" / "share" / "laecips_bringup"
    shipped = [
        p for folder in ("launch", "config") for p in (packages["laecips_bringup"] / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]  # fmt: skip
    assert len(shipped) >= 12
    for source in shipped:
        installed = share / source.relative_to(packages["laecips_bringup"])
        assert installed.is_file(), f"{installed} is not installed"
        assert filecmp.cmp(installed, source, shallow=False)
    for needed in ("launch/edge.launch.py", "launch/cloud.launch.py", "launch/demo.launch.py",
                   "config/edge.yaml", "config/cloud.yaml", "config/trainer.yaml", "config/edge.json5",
                   "config/cloud.json5", "config/router.json5", "config/fastdds_large_frames.xml",
                   "config/laecips.rviz", "config/tls/edge.json5"):  # fmt: skip
        assert (share / needed).is_file(), needed


def test_installed_code_runs_from_the_install_tree(install_tree: Path) -> None:
    """The installed `laecips` and `zenoh_router` scripts start and import our modules from install/."""
    packages = ("laecips_core", "laecips_common", "laecips_edge", "laecips_cloud")
    site = [str(install_tree / p / "lib" / PY / "site-packages") for p in packages]
    site += [str(install_tree.parent / "build" / p) for p in packages]  # --symlink-install: colcon's hook
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*site, os.environ.get("PYTHONPATH", "")]))
    for package, exe in (("laecips_core", "laecips"), ("laecips_cloud", "zenoh_router")):
        out = _run([sys.executable, str(install_tree / package / "lib" / package / exe), "--help"],
                   install_tree, 120, env)  # fmt: skip
        assert f"usage: {exe}" in out
    code = (
        "import laecips_cloud.router as m, laecips_common.node_support as c, importlib.metadata as md; "
        "print(m.__file__); print(c.__file__); print(md.version('laecips_cloud'))"
    )
    *origins, version = _run([sys.executable, "-c", code], install_tree, 120, env).split()
    assert version == "0.1.0"
    for origin in origins:  # laecips_common: the node plumbing of both node packages (not laecips_edge)
        assert Path(origin).is_relative_to(install_tree.parent), f"imported {origin}, not the colcon build"


def test_launch_files_resolve_against_the_install_tree(install_tree: Path) -> None:
    """Every substitution of the installed launch files resolves to an existing installed path."""
    resolver = LaunchResolver(install_tree)
    launch_dir = install_tree / "laecips_bringup" / "share" / "laecips_bringup" / "launch"
    files = sorted(launch_dir.glob("*.launch.py"))
    assert {p.name for p in files} == {"edge.launch.py", "cloud.launch.py", "demo.launch.py"}
    for path in files:
        resolved = resolver.resolve(path)
        for source, target in resolved.paths:
            assert not isinstance(target, Dynamic), f"{path.name}: {source} depends on launch time"
            assert Path(target).exists(), f"{path.name}: {source} -> {target} does not exist"
            assert Path(target).is_relative_to(install_tree), f"{path.name}: {source} leaves the install tree"
        for package, executable, exe in resolved.nodes:
            assert os.access(exe, os.X_OK), f"{path.name}: Node({package}, {executable}) -> {exe} missing"
        for name, value in resolved.arguments.items():
            if name.endswith(("params_file", "zenoh_config", "router_config")):
                assert Path(value).is_file(), f"{path.name}: default {name}:={value} does not exist"
            if name.endswith("params_file"):
                data = yaml.safe_load(Path(value).read_text())
                assert all("ros__parameters" in body for body in data.values()), value
        for target, passed in resolved.includes:
            assert target.is_file() and target.is_relative_to(install_tree), target
            declared = set(resolver.resolve(target).arguments)
            assert passed <= declared, f"{path.name} passes {sorted(passed - declared)} to {target.name}"
    edge = resolver.resolve(launch_dir / "edge.launch.py")
    assert {"robot_id", "namespace", "image_topic", "params_file", "zenoh_config", "backend", "model_path",
            "use_sim_time"} <= set(edge.arguments)  # fmt: skip
    assert edge.arguments["namespace"] == edge.arguments["robot_id"] == "robot1"
