"""laecips_core is pure Python: no module imports ROS, and every module imports with ROS made unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import laecips_core

PACKAGE = Path(laecips_core.__file__).parent
ROS_ROOTS = ("rclpy", "rcl_interfaces", "rosidl_runtime_py", "laecips_msgs")
ROS_ROOTS += ("laecips_common", "laecips_edge", "laecips_cloud")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_imports_ros() -> None:
    modules = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(modules) > 40
    for path in modules:
        roots = _imported_roots(path)
        bad = {r for r in roots if r in ROS_ROOTS or r.endswith("_msgs")}
        where = path.relative_to(PACKAGE)
        assert not bad, f"{where} imports {sorted(bad)}: keep ROS in laecips_common / _edge / _cloud"


def test_every_module_imports_without_ros() -> None:
    names = [
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.stem != "__init__" and "__pycache__" not in p.parts
    ]
    blocker = "; ".join(f"sys.modules[{r!r}] = None" for r in ROS_ROOTS)
    code = f"import importlib, sys; {blocker}\n" + "".join(
        f"importlib.import_module('laecips_core.{name}')\n" for name in names
    )
    argv = [sys.executable, "-c", code]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
