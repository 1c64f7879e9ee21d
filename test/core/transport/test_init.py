"""laecips_core.transport re-exports every public name of its modules (callers use transport.X)."""

from __future__ import annotations

import importlib

import pytest

from laecips_core import transport

MODULES = ("announcement", "client", "config", "keys", "updates", "wire")


def test_every_public_name_of_every_module_is_reachable_as_transport_x():
    """transport.__all__ is the union of the modules' __all__, each name the very object of its module."""
    union: set[str] = set()
    for name in MODULES:
        module = importlib.import_module(f"laecips_core.transport.{name}")
        assert module.__doc__, f"transport.{name} has no docstring"
        for attr in module.__all__:
            assert getattr(transport, attr) is getattr(module, attr), f"transport.{attr} is not {name}'s"
        union |= set(module.__all__)
    assert set(transport.__all__) == union
    with pytest.raises(AttributeError, match="no attribute"):
        _ = transport.no_such_name  # type: ignore[attr-defined]


def test_modules_stay_small():
    for name in MODULES:
        module = importlib.import_module(f"laecips_core.transport.{name}")
        assert module.__file__ is not None
        with open(module.__file__, encoding="utf-8") as file:
            assert sum(1 for _ in file) <= 400, f"transport/{name}.py grew past 400 lines: split it"
