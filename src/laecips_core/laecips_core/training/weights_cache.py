"""The cache of pre-trained f and h: its key (``profile_key`` over the recipe, the data and a fingerprint
of the training code), where it lives, when a cached bundle is valid, and the lock of concurrent makers."""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import laecips_core
from laecips_core import benchmark as bench
from laecips_core.errors import ConfigError, WeightsError
from laecips_core.files import sha256_file
from laecips_core.training.profiles import RECIPE_VERSION, Profile

__all__ = [
    "TRAINING_CODE",
    "card_path",
    "code_fingerprint",
    "default_cache_dir",
    "file_lock",
    "is_cached",
    "normalised_definitions",
    "profile_key",
    "training_code_files",
]

TRAINING_CODE: tuple[str, ...] = (
    "algo/assisted.py",
    "algo/fusion.py",
    "algo/metrics.py",
    "algo/mining.py",
    "algo/models.py",
    "algo/model_constants.py",
    "algo/thresholds.py",
    "benchmark",
    "lvm",
    "storage/jobspec.py",
    "training/fit.py",
    "training/pretrain_stages.py",
    "training/pretraining.py",
    "training/profiles.py",
)
"""Files and subpackages of laecips_core whose code determines pre-trained weights (part of the cache key)."""


class _DropDocstringsAndImports(ast.NodeTransformer):
    """Removes bare string statements (docstrings) and import statements, wherever they stand."""

    def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return node

    def visit_Import(self, node: ast.Import) -> None:
        return None

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return None


def normalised_definitions(source: str) -> list[str]:
    """The top-level statements of a module as ``ast.dump`` strings, without comments, docstrings,
    imports and layout.

    Two sources with the same result run the same code: editing a docstring or a comment, moving a
    definition to another listed module, or changing where an import comes from keeps the cache key.
    Type annotations are kept (they are code). The dump is Python-version specific, so another
    interpreter version trains its own weights once.
    """
    tree = _DropDocstringsAndImports().visit(ast.parse(source))
    return [ast.dump(stmt, include_attributes=False) for stmt in tree.body]


def training_code_files() -> list[Path]:
    """The .py files named by ``TRAINING_CODE`` (a subpackage stands for all its modules)."""
    pkg = Path(laecips_core.__file__).parent
    found: list[Path] = []
    for name in TRAINING_CODE:
        path = pkg / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def code_fingerprint() -> str:
    """Hex SHA-256 over the code of ``TRAINING_CODE`` (``normalised_definitions``, sorted): any change
    to the code that trains changes the cache key, so a cached bundle never outlives the code that
    made it; comments, docstrings, imports and moving a definition between these files do not."""
    statements: list[str] = []
    for path in training_code_files():
        if not path.is_file():
            raise ConfigError(f"training code {path} is missing: reinstall laecips_core")
        statements += normalised_definitions(path.read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for statement in sorted(statements):
        digest.update(statement.encode() + b"\0")
    return digest.hexdigest()


def profile_key(prof: Profile) -> str:
    """Hex SHA-256 over everything that determines a profile's weights (recipe, data, code source)."""
    recipe = prof.pretrain.to_json()
    recipe.pop("num_threads")  # how fast, not what: the same weights up to float rounding
    payload = {
        "recipe_version": RECIPE_VERSION,
        "code": code_fingerprint(),
        "pretrain": recipe,
        "benchmark": prof.benchmark,
        "eval_frames_per_task": prof.eval_frames_per_task,
        "classes": list(bench.CLASSES),
        "data_version": str(getattr(bench, "GENERATOR_VERSION", getattr(bench, "__version__", ""))),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its directory) inside the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def is_cached(bundle: Path, card: Path, key: str) -> bool:
    """Whether ``bundle`` and its ``card`` exist, the card carries ``key`` and the bundle's SHA-256."""
    if not (bundle.is_file() and card.is_file()):
        return False
    try:
        meta = json.loads(card.read_text())
        return bool(meta["data"]["key"] == key and meta["sha256"] == sha256_file(bundle))
    except (OSError, ValueError, KeyError, TypeError, WeightsError):
        return False


def default_cache_dir() -> Path:
    """Weights cache: ``$LAECIPS_WEIGHTS_CACHE``, else ``$XDG_CACHE_HOME/laecips/weights`` (~/.cache)."""
    env = os.environ.get("LAECIPS_WEIGHTS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "laecips" / "weights"


def card_path(bundle_path: str | os.PathLike[str]) -> Path:
    """The JSON card that belongs to a bundle (same stem, ``.json``)."""
    return Path(bundle_path).with_suffix(".json")
