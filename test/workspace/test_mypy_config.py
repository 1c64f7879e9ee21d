"""mypy.ini: strict for laecips_core, nothing silenced wholesale, every checked package listed."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRICT_FLAGS = {
    "disallow_any_generics",
    "disallow_subclassing_any",
    "disallow_untyped_calls",
    "disallow_untyped_defs",
    "disallow_incomplete_defs",
    "check_untyped_defs",
    "disallow_untyped_decorators",
    "warn_return_any",
    "no_implicit_reexport",
    "extra_checks",
}


def _config() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "mypy.ini")
    return config


def _modules(section: str) -> set[str]:
    return {m.strip() for m in section.removeprefix("mypy-").split(",")}


def test_all_of_laecips_core_is_strict() -> None:
    config = _config()
    core = config["mypy-laecips_core.*"]
    assert {flag for flag in STRICT_FLAGS if core.getboolean(flag)} == STRICT_FLAGS
    assert config["mypy"].getboolean("warn_unused_ignores") and config["mypy"].getboolean("strict_equality")
    relaxed = [s for s in config.sections() if s.startswith("mypy-") and any(
        config[s].get(flag) == "False" for flag in STRICT_FLAGS
    )]
    assert relaxed == [], f"strict flags turned off for {relaxed}"


def test_nothing_is_silenced_wholesale() -> None:
    """No global ignore_missing_imports, no ignore_errors; missing imports only for listed packages."""
    config = _config()
    ours = {p.parent.name for p in (ROOT / "src").glob("*/*/__init__.py")}  # laecips_msgs is generated
    assert "ignore_missing_imports" not in config["mypy"]
    for section in config.sections():
        assert "ignore_errors" not in config[section], f"[{section}] ignore_errors"
        assert "disable_error_code" not in config[section], f"[{section}] disable_error_code"
        if config[section].getboolean("ignore_missing_imports", fallback=False):
            for module in _modules(section):
                assert module.split(".")[0] not in ours | {"*"}, f"[{section}] hides our own {module}"


def test_every_python_package_is_checked() -> None:
    files = {f.strip() for f in _config()["mypy"]["files"].split(",")}
    for package in sorted(p.parent for p in (ROOT / "src").glob("*/*/__init__.py")):
        where = str(package.relative_to(ROOT))
        assert where in files, f"add {where} to files in mypy.ini"
