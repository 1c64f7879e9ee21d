"""Tests of laecips_core.errors: one family of error classes under LaecipsError, raised with a message."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from laecips_core.errors import (
    BagError,
    ConfigError,
    ImageError,
    LaecipsError,
    ReplayError,
    WeightsError,
    WireFormatError,
)

import laecips_core
from laecips_core import errors

PACKAGE = Path(laecips_core.__file__).parent
ERROR_CLASSES = [
    cls for _, cls in inspect.getmembers(errors, inspect.isclass) if cls.__module__ == errors.__name__
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_errors_defines_the_documented_families() -> None:
    assert {cls.__name__ for cls in ERROR_CLASSES} == {
        "LaecipsError",
        "ConfigError",
        "ImageError",
        "WeightsError",
        "WireFormatError",
        "BagError",
        "ReplayError",
    }


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_is_a_laecips_error_with_a_docstring(cls: type[Exception]) -> None:
    assert issubclass(cls, LaecipsError) and issubclass(cls, Exception)
    assert cls.__doc__ and len(cls.__doc__.split()) >= 4, f"{cls.__name__} needs a docstring saying when"


def test_value_errors_stay_catchable_as_value_error() -> None:
    """Bad values (config, image bytes, wire messages) are ValueErrors too; the I/O families are not."""
    for cls in (ConfigError, ImageError, WireFormatError):
        with pytest.raises(ValueError, match="lr must be > 0"):
            raise cls("lr must be > 0")
    for cls in (WeightsError, BagError, ReplayError):
        assert not issubclass(cls, ValueError)
    with pytest.raises(LaecipsError) as caught:
        raise WeightsError("bad hash; re-download the bundle")
    assert str(caught.value) == "bad hash; re-download the bundle"


def test_every_error_class_of_the_package_derives_from_laecips_error() -> None:
    """Error classes defined outside errors.py (e.g. cli.CommandError) join the same family."""
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Exception")):
                module = importlib.import_module(_module_name(path))
                cls = getattr(module, node.name)
                assert issubclass(cls, LaecipsError), f"{path.name}: {node.name} is no LaecipsError"
                found.append(node.name)
    assert "CommandError" in found and len(found) >= len(ERROR_CLASSES) + 1


def test_every_project_error_is_raised_with_a_message() -> None:
    """``raise ConfigError(...)`` always says what went wrong: no bare class, no empty call."""
    names = {cls.__name__ for cls in ERROR_CLASSES} | {"CommandError"}
    raises = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc
            if isinstance(exc, ast.Name) and exc.id in names:
                pytest.fail(f"{path.name}:{node.lineno} raises {exc.id} without a message")
            if isinstance(exc, ast.Call) and isinstance(exc.func, ast.Name) and exc.func.id in names:
                raises += 1
                assert exc.args, f"{path.name}:{node.lineno} raises {exc.func.id}() without a message"
                first = exc.args[0]
                if isinstance(first, ast.Constant):
                    assert isinstance(first.value, str) and first.value.strip(), f"{path.name}:{node.lineno}"
    assert raises > 100  # the scan saw the package's raises
