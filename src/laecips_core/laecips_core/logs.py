"""The logger the services take: any object with info/warning/error (rclpy's or the logging module's)."""

from __future__ import annotations

from typing import Any, Protocol


class Logger(Protocol):
    """The logging calls the services make (rclpy's RcutilsLogger and logging.Logger both fit)."""

    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...

    def error(self, message: str) -> Any: ...
