"""Tooling for the demo and the tests (not part of any installed package).

``scripts/demo.py`` imports it as a sibling (Python puts a script's folder first on ``sys.path``);
``test/conftest.py`` puts ``scripts/`` on ``sys.path`` for the tests. It may import laecips_core,
never the other way round.
"""
