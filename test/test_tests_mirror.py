"""The tests mirror laecips_core: every module has a test file named after it (``__init__.py`` aside).

A top-level module ``laecips_core/m.py`` needs a ``test_m.py`` anywhere under test/ (core, cloud, edge...);
a subpackage module ``laecips_core/pkg/x.py`` needs ``test/core/pkg/test_x.py``.
"""

from __future__ import annotations

from pathlib import Path

TEST = Path(__file__).resolve().parent
CORE = TEST.parent / "src" / "laecips_core" / "laecips_core"


def expected_test(module: Path, package: Path) -> str:
    """Where a module's test file must be, under test/: a glob for top-level modules, else one path."""
    rel = module.relative_to(package)
    name = f"test_{module.stem}.py"
    if len(rel.parts) == 1:
        return f"**/{name}"
    return str(Path("core", *rel.parts[:-1], name))


def missing_tests(package: Path, tests: Path) -> list[str]:
    """Modules of ``package`` (``__init__.py`` excluded) without their test file under ``tests``."""
    missing = []
    for module in sorted(package.rglob("*.py")):
        if module.name == "__init__.py" or "__pycache__" in module.parts:
            continue
        where = expected_test(module, package)
        found = any(tests.glob(where)) if where.startswith("**/") else (tests / where).is_file()
        if not found:
            missing.append(f"{module.relative_to(package)} (expected test/{where})")
    return missing


def test_every_laecips_core_module_has_its_test_file() -> None:
    modules = [m for m in CORE.rglob("*.py") if m.name != "__init__.py"]
    assert len(modules) > 30 and any(len(m.relative_to(CORE).parts) > 1 for m in modules)
    missing = missing_tests(CORE, TEST)
    assert not missing, "modules without a test file of their own: " + "; ".join(missing)


def test_the_check_finds_a_module_without_tests(tmp_path: Path) -> None:
    package, tests = tmp_path / "pkg", tmp_path / "test"
    for rel in ("__init__.py", "alpha.py", "beta.py", "sub/__init__.py", "sub/gamma.py", "sub/delta.py"):
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text('"""m."""\n')
    for rel in ("edge/test_alpha.py", "core/sub/test_gamma.py", "core/test_delta.py", "cloud/test_gamma.py"):
        (tests / rel).parent.mkdir(parents=True, exist_ok=True)
        (tests / rel).write_text('"""t."""\n')
    # beta has no test; delta's test is not in core/sub/ (a subpackage module's test mirrors its place)
    assert missing_tests(package, tests) == [
        "beta.py (expected test/**/test_beta.py)",
        "sub/delta.py (expected test/core/sub/test_delta.py)",
    ]
    (tests / "core" / "test_beta.py").write_text('"""t."""\n')
    (tests / "core" / "sub" / "test_delta.py").write_text('"""t."""\n')
    assert missing_tests(package, tests) == []


def test_test_file_names_are_unique() -> None:
    """pytest imports test files by basename (no __init__.py here): two test_x.py would collide, so two
    laecips_core modules in different subpackages may not share a name either."""
    names = sorted(p.name for p in TEST.rglob("test_*.py") if "__pycache__" not in p.parts)
    twice = sorted({n for n in names if names.count(n) > 1})
    assert not twice, f"test files with the same name: {twice} (rename one of the modules and its test)"
    modules = [m.stem for m in CORE.rglob("*.py") if m.name != "__init__.py" and "__pycache__" not in m.parts]
    assert len(modules) == len(set(modules)), sorted({m for m in modules if modules.count(m) > 1})
