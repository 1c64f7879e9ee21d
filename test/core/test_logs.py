"""Tests of laecips_core.logs: the Logger protocol the services take (info/warning/error of one message)."""

from __future__ import annotations

import ast
import inspect
import logging
from pathlib import Path
from typing import Any

import pytest
from laecips_core.logs import Logger

import laecips_core

PACKAGE = Path(laecips_core.__file__).parent
METHODS = ("info", "warning", "error")


class _Recorder:
    """A logger of its own: anything with the three methods fits the protocol."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


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
    recorder = _Recorder()
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


def test_services_call_only_the_protocol_methods_on_their_logger() -> None:
    """A service typed with Logger may call nothing else on it (rclpy's and logging's both have debug,
    a caller's own object need not)."""
    marker = "from laecips_core.logs import Logger"
    users = [p for p in sorted(PACKAGE.glob("*.py")) if marker in p.read_text(encoding="utf-8")]
    assert {p.stem for p in users} >= {"cloud_service", "trainer_service"}
    for path in users:
        calls = 0
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"
                and node.value.attr == "log"
            ):
                calls += 1
                assert node.attr in METHODS, f"{path.name}:{node.lineno} calls log.{node.attr}"
        assert calls > 0, f"{path.name} imports Logger but never logs through self.log"
