"""Resolve a launch file's substitutions statically against a colcon install tree (no launch_ros here).

Reads a ``*.launch.py`` with ``ast`` and evaluates the substitutions our launch files use the way
launch_ros would in that install: ``FindPackageShare("p")`` / ``FindPackagePrefix("p")`` through the
ament index markers of the install's prefixes, ``PathJoinSubstitution``, ``ThisLaunchFileDir``,
``LaunchConfiguration`` (the declared default, recursively), string constants and names assigned in
the file. Anything else (PythonExpression, ...) is reported as dynamic, never guessed.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path


class UnresolvedError(AssertionError):
    """A substitution that cannot be resolved in the given install tree (missing package, argument...)."""


class Dynamic(str):
    """A value only known at launch time (PythonExpression, an argument without a default)."""


def ament_prefixes(install: Path) -> dict[str, Path]:
    """Package -> prefix, from the ament index markers of an isolated colcon install (install/<pkg>)."""
    found: dict[str, Path] = {}
    for marker in sorted(install.glob("*/share/ament_index/resource_index/packages/*")):
        found.setdefault(marker.name, marker.parents[4])
    return found


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _first_string(call: ast.Call) -> str:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    raise UnresolvedError(f"{ast.unparse(call)}: first argument must be a literal string")


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


@dataclass
class ResolvedLaunch:
    """What a launch file refers to, resolved in one install tree."""

    path: Path
    arguments: dict[str, str] = field(default_factory=dict)
    """Declared argument -> resolved default (Dynamic when it has none or depends on launch time)."""
    paths: list[tuple[str, str]] = field(default_factory=list)
    """(source text, resolved path) of every path substitution in the file."""
    nodes: list[tuple[str, str, Path]] = field(default_factory=list)
    """(package, executable, where launch_ros looks for it: <prefix>/lib/<package>/<executable>)."""
    includes: list[tuple[Path, set[str]]] = field(default_factory=list)
    """(included launch file, argument names passed to it)."""


class LaunchResolver:
    """Evaluates the substitutions of launch files installed under `install` (a colcon install base).

    Args:
        install: colcon install base (isolated layout: ``install/<package>/...``).
    """

    def __init__(self, install: Path) -> None:
        self.install = install
        self.prefixes = ament_prefixes(install)

    def prefix(self, package: str) -> Path:
        """Install prefix of `package`, found as ament_index does (its packages marker)."""
        if package not in self.prefixes:
            raise UnresolvedError(
                f"package {package!r} has no ament index marker in {self.install} "
                f"(have {sorted(self.prefixes)})"
            )
        return self.prefixes[package]

    def resolve(self, path: Path) -> ResolvedLaunch:
        """Resolve every declared argument, path substitution, Node and include of one launch file."""
        tree = ast.parse(path.read_text())
        assigned = {
            t.id: n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        defaults = {
            _first_string(c): _kw(c, "default_value") for c in calls if _name(c) == "DeclareLaunchArgument"
        }
        out = ResolvedLaunch(path)

        def value(expr: ast.expr | None, seen: frozenset[str] = frozenset()) -> str:
            if expr is None:
                return Dynamic("")
            if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                return expr.value
            if isinstance(expr, ast.Name) and expr.id in assigned:
                return value(assigned[expr.id], seen)
            if isinstance(expr, ast.List | ast.Tuple):
                parts = [value(e, seen) for e in expr.elts]
                joined = "".join(parts)
                return Dynamic(joined) if any(isinstance(p, Dynamic) for p in parts) else joined
            if isinstance(expr, ast.Call):
                kind = _name(expr)
                if kind == "FindPackageShare":
                    package = _first_string(expr)
                    return str(self.prefix(package) / "share" / package)
                if kind == "FindPackagePrefix":
                    return str(self.prefix(_first_string(expr)))
                if kind == "ThisLaunchFileDir":
                    return str(path.parent)
                if kind == "PathJoinSubstitution":
                    (items,) = expr.args
                    assert isinstance(items, ast.List | ast.Tuple), ast.unparse(expr)
                    parts = [value(e, seen) for e in items.elts]
                    joined = os.path.join(*parts)
                    return Dynamic(joined) if any(isinstance(p, Dynamic) for p in parts) else joined
                if kind == "LaunchConfiguration":
                    name = _first_string(expr)
                    if name not in defaults:
                        raise UnresolvedError(f"{path.name}: LaunchConfiguration({name!r}) is not declared")
                    if name in seen:
                        raise UnresolvedError(f"{path.name}: argument {name!r} defaults to itself")
                    return value(defaults[name], seen | {name})
            return Dynamic(ast.unparse(expr))

        for name, default in defaults.items():
            out.arguments[name] = value(default) if default is not None else Dynamic("")
        for call in calls:
            kind = _name(call)
            if kind in ("PathJoinSubstitution", "FindPackageShare", "FindPackagePrefix"):
                out.paths.append((ast.unparse(call), value(call)))
            elif kind == "Node":
                package, executable = value(_kw(call, "package")), value(_kw(call, "executable"))
                if isinstance(package, Dynamic) or isinstance(executable, Dynamic):
                    raise UnresolvedError(f"{path.name}: Node needs a literal package and executable")
                out.nodes.append((package, executable, self.prefix(package) / "lib" / package / executable))
            elif kind == "IncludeLaunchDescription":
                (source,) = call.args
                assert isinstance(source, ast.Call) and source.args, ast.unparse(call)
                target = Path(value(source.args[0]))
                passed = _kw(call, "launch_arguments")
                mapping = passed.func.value if isinstance(passed, ast.Call) else passed  # {...}.items()
                keys = {str(value(k)) for k in mapping.keys} if isinstance(mapping, ast.Dict) else set()
                out.includes.append((target, keys))
        return out
