"""Tests of laecips_core.logs: the Logger protocol the services take (info/warning/error of one message)."""

from __future__ import annotations

import ast
import inspect
import logging
from pathlib import Path
from typing import Any

import pytest
from laecips_core.logs import Logger
from log_helpers import RecordingLog

import laecips_core

PACKAGE = Path(laecips_core.__file__).parent
METHODS = ("info", "warning", "error")



def _protocol_methods() -> set[str]:
    return {n for n, v in vars(Logger).items() if inspect.isfunction(v) and not n.startswith("_")}


def _fits(obj: Any) -> bool:
    """Every protocol method exists on obj and takes one positional message."""
    for name in _protocol_methods():
        method = getattr(obj, name, None)
        if not callable(method):
            return False
        try:
            inspect.signature(method).bind("message")
        except TypeError:
            return False
    return True


def test_the_protocol_is_info_warning_error_of_one_message() -> None:
    assert _protocol_methods() == set(METHODS)
    for name in METHODS:
        params = list(inspect.signature(getattr(Logger, name)).parameters)
        assert params == ["self", "message"]


def test_logging_loggers_and_own_objects_fit_and_partial_ones_do_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: Logger = logging.getLogger("laecips-test-logs")
    assert _fits(log)
    with caplog.at_level(logging.INFO, logger="laecips-test-logs"):
        log.info("started")
        log.warning("slow")
        log.error("failed; retry")
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING", "ERROR"]
    recorder = RecordingLog()
    assert _fits(recorder)
    own: Logger = recorder
    own.error("boom")
    assert recorder.lines == [("error", "boom")]

    class _NoError:
        def info(self, message: str) -> None: ...

        def warning(self, message: str) -> None: ...

    assert not _fits(_NoError())


def test_rclpy_logger_fits() -> None:
    rcutils_logger = pytest.importorskip("rclpy.impl.rcutils_logger")
    assert _fits(rcutils_logger.RcutilsLogger("laecips_test_logs"))


def _logger_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Parameters of a function annotated ``Logger``."""
    args = function.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return {
        a.arg
        for a in params
        if (isinstance(a.annotation, ast.Name) and a.annotation.id == "Logger")
        or (isinstance(a.annotation, ast.Constant) and a.annotation.value == "Logger")
    }


def _logger_calls(tree: ast.Module) -> list[ast.Attribute]:
    """Attribute uses on ``self.log`` and on parameters annotated ``Logger``."""
    uses: list[ast.Attribute] = []
    for node in ast.walk(tree):
        value = node.value if isinstance(node, ast.Attribute) else None
        if (
            isinstance(node, ast.Attribute)
            and isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id == "self"
            and value.attr == "log"
        ):
            uses.append(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = _logger_names(node)
            uses += [
                inner
                for inner in ast.walk(node)
                if names
                and isinstance(inner, ast.Attribute)
                and isinstance(inner.value, ast.Name)
                and inner.value.id in names
            ]
    return uses


def test_services_call_only_the_protocol_methods_on_their_logger() -> None:
    """Code typed with Logger may call nothing else on it (rclpy's and logging's both have debug, a
    caller's own object need not)."""
    marker = "from laecips_core.logs import Logger"
    users = [p for p in sorted(PACKAGE.rglob("*.py")) if marker in p.read_text(encoding="utf-8")]
    assert {p.stem for p in users} >= {"cloud_service", "trainer_service"}
    for path in users:
        uses = _logger_calls(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        assert uses, f"{path.name} imports Logger but never logs through it"
        for use in uses:
            assert use.attr in METHODS, f"{path.name}:{use.lineno} calls log.{use.attr}"


def test_the_logger_scan_sees_a_call_outside_the_protocol() -> None:
    tree = ast.parse(
        "class S:\n"
        "    def run(self, log: Logger) -> None:\n"
        "        self.log.info('a')\n"
        "        log.debug('b')\n"
    )
    assert sorted(use.attr for use in _logger_calls(tree)) == ["debug", "info"]
