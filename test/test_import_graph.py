"""laecips_core's import graph has layers: no cycle, and the runtime services never reach offline code.

Every module of laecips_core is parsed with ast (nothing is imported or executed). An edge A -> B is any
``import laecips_core.B`` / ``from laecips_core import B`` / ``from laecips_core.B import x`` / relative
import in A, wherever it stands: at the top, inside a function, or under ``if TYPE_CHECKING:``. Checks on
what a service "imports" use the transitive closure: a lazy import two modules down still loads the file.
Implicit loads of a parent package's ``__init__`` (``from laecips_core.pkg.sub import x``) are not edges.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = SRC / "laecips_core" / "laecips_core"
ROOT = "laecips_core"

LAYERS: dict[str, int] = {
    "": 0,
    "errors": 0,
    "logs": 0,
    "classes": 0,
    "files": 0,
    "imaging": 0,
    "image_arrays": 0,
    "image_codecs": 0,
    "robots": 0,
    "benchmark": 1,
    "algo": 2,
    "lvm": 2,
    "storage": 3,
    "transport": 4,
    "services": 5,
    "training": 6,
    "evaluation": 7,
    "cli": 8,
}
"""Layer of each top-level module or subpackage: a module imports only from its own layer or below.

0 shared leaves, 1 the benchmark generator, 2 the algorithms (f, h, Algorithm 1, F(x), SAM(x)),
3 what is on disk, 4 the edge-cloud link, 5 the runtime services, 6 offline training, 7 evaluation,
8 the command line."""
OFFLINE = frozenset({"training", "evaluation", "benchmark"})
"""Offline subpackages: the training process and recipes, evaluation and figures, the benchmark generator."""
EDGE_NODE = SRC / "laecips_edge" / "laecips_edge" / "edge_node.py"


def module_name(path: Path) -> str:
    """Dotted name relative to laecips_core ("" for the package itself, "pkg" for pkg/__init__.py)."""
    parts = list(path.relative_to(CORE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Module name -> source file, for every .py under laecips_core (subpackages included)."""
    return {module_name(p): p for p in sorted(CORE.rglob("*.py")) if "__pycache__" not in p.parts}


def _resolve(dotted: str) -> str | None:
    """The laecips_core module of an absolute dotted name (its longest existing prefix), or None."""
    if dotted != ROOT and not dotted.startswith(ROOT + "."):
        return None
    parts = dotted.split(".")[1:]
    while parts and ".".join(parts) not in modules():
        parts.pop()
    return ".".join(parts)


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def imports_of(tree: ast.AST, name: str | None) -> set[str]:
    """laecips_core modules that a parsed file imports anywhere in its body.

    Args:
        tree: The parsed file.
        name: Its module name inside laecips_core (for relative imports), or None for a file outside it.
    """
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets: Iterable[str | None] = (_resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                assert name is not None, "relative import outside laecips_core"
                package = name.split(".") if name and _is_package(name) else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([ROOT, *[p for p in package if p], *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            resolved = _resolve(base)
            if resolved is None:
                continue
            targets = []
            for alias in node.names:
                sub = f"{resolved}.{alias.name}" if resolved else alias.name
                targets.append(sub if sub in modules() else resolved)
        else:
            continue
        found.update(t for t in targets if t is not None)
    if name is not None:
        found.discard(name)
    return found


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the laecips_core modules it imports directly."""
    return {
        name: frozenset(imports_of(ast.parse(path.read_text(encoding="utf-8"), str(path)), name))
        for name, path in modules().items()
    }


def closure(roots: Iterable[str]) -> dict[str, list[str]]:
    """Every module reachable from roots -> one import chain that reaches it (roots included)."""
    chains = {root: [root] for root in roots}
    todo = list(chains)
    while todo:
        current = todo.pop()
        for target in sorted(graph()[current]):
            if target not in chains:
                chains[target] = [*chains[current], target]
                todo.append(target)
    return chains


def cycles() -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph()[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph()[node]:
                found.append(sorted(component))

    for node in sorted(graph()):
        if node not in index:
            visit(node)
    return found


def top(name: str) -> str:
    """The top-level module or subpackage a module belongs to ("algo" for "algo.models")."""
    return name.split(".")[0]


def services() -> list[str]:
    """The runtime service modules: every module of services/ and of transport/."""
    return sorted(name for name in modules() if top(name) in {"services", "transport"})


def _chain(chain: list[str]) -> str:
    return " -> ".join(f"{ROOT}.{m}" if m else ROOT for m in chain)


# -------------------------------------------------------------------------------------------- tests


def test_the_parser_sees_every_import_form() -> None:
    """Absolute, from-package, submodule, relative, lazy and TYPE_CHECKING imports all become edges."""
    source = (
        "import laecips_core.errors\n"
        "from laecips_core import files, __version__\n"
        "from laecips_core.algo.models import preprocess\n"
        "from laecips_core.storage import weights as w\n"
        "from . import fusion\n"
        "from .metrics import auroc\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from laecips_core.evaluation.pipeline import Panel\n"
        "def f():\n"
        "    import laecips_core\n"
        "    from laecips_core.benchmark.generator import CLASSES\n"
        "import numpy\n"
    )
    found = imports_of(ast.parse(source), "algo.assisted")
    assert found == {
        "errors", "files", "", "algo.models", "storage.weights", "algo.fusion", "algo.metrics",
        "evaluation.pipeline", "benchmark.generator",
    }  # fmt: skip
    known = {"errors", "storage.weights", "algo.models", "evaluation.pipeline", "evaluation.plots"}
    assert known <= set(graph())


def test_no_import_cycle() -> None:
    """No two laecips_core modules import each other, directly or through others (lazy imports included)."""
    assert cycles() == [], "import cycles (break each one: move the shared piece down a layer)"


def test_every_module_has_a_layer() -> None:
    """A new top-level module or subpackage must be given its place in LAYERS."""
    missing = sorted({top(name) for name in modules()} - set(LAYERS))
    assert not missing, f"add these to LAYERS in test/test_import_graph.py: {missing}"


def test_imports_point_down_the_layers() -> None:
    """No module imports from a higher layer (e.g. storage never imports services or training)."""
    bad = [
        f"{ROOT}.{a} (layer {LAYERS[top(a)]}) imports {ROOT}.{b} (layer {LAYERS[top(b)]})"
        for a, targets in graph().items()
        for b in sorted(targets)
        if LAYERS[top(b)] > LAYERS[top(a)]
    ]
    assert not bad, "imports that point up:\n" + "\n".join(bad)


def test_the_layer_check_finds_an_upward_import() -> None:
    found = imports_of(ast.parse("from laecips_core.services import edge_service\n"), "storage.weights")
    assert found == {"services.edge_service"}
    assert LAYERS[top("services.edge_service")] > LAYERS[top("storage.weights")]


def test_services_never_reach_offline_code() -> None:
    """Edge, offload, cloud, trainer and transport code never loads training, evaluation or the benchmark."""
    names = services()
    assert {"services.edge_service", "services.cloud_service", "services.trainer_service"} <= set(names)
    assert any(top(n) == "transport" for n in names)
    bad = []
    for service in names:
        for module, chain in closure([service]).items():
            if top(module) in OFFLINE:
                bad.append(_chain(chain))
    assert not bad, "services import offline modules:\n" + "\n".join(bad)


def test_the_edge_runtime_does_not_import_the_benchmark_generator() -> None:
    """The edge services and the ROS edge node never load the benchmark generator."""
    node = imports_of(ast.parse(EDGE_NODE.read_text(encoding="utf-8")), None)
    edge = {"services.edge_config", "services.edge_models", "services.edge_uploads", "services.edge_service"}
    assert edge <= node
    chains = closure({"services.offload", *node})
    bad = [_chain(chain) for module, chain in chains.items() if top(module) == "benchmark"]
    assert not bad, "the edge loads the benchmark: " + "; ".join(bad)


def test_trainer_service_does_not_import_cloud_service() -> None:
    """The trainer and the cloud are separate processes: neither service imports the other."""
    cloud_modules = ("services.cloud_config", "services.cloud_robots", "services.cloud_service")
    trainer, cloud = closure(["services.trainer_service"]), closure(cloud_modules)
    for name in cloud_modules:
        assert name not in trainer, _chain(trainer[name])
    assert "services.trainer_service" not in cloud, _chain(cloud["services.trainer_service"])


def test_laecips_cloud_does_not_depend_on_laecips_edge() -> None:
    """The cloud package needs no edge package: not in package.xml, not in its Python imports."""
    package = SRC / "laecips_cloud"
    root = ET.parse(package / "package.xml").getroot()
    depends = {e.text.strip() for e in root if e.tag.endswith("depend") and e.text}
    assert "laecips_edge" not in depends, "laecips_cloud/package.xml depends on laecips_edge"
    for path in sorted((package / "laecips_cloud").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            bad = [n for n in names if n.split(".")[0] == "laecips_edge"]
            assert not bad, f"{path.name} imports {bad}: take node plumbing from laecips_common"
