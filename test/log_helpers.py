"""A Logger (laecips_core.logs) for tests: it keeps every (level, message) line."""

from __future__ import annotations


class RecordingLog:
    """Anything with info/warning/error fits laecips_core.logs.Logger; this one records the lines."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))

    def text(self, level: str) -> str:
        """Every message of one level, one per line."""
        return "\n".join(m for lvl, m in self.lines if lvl == level)

    def count(self, level: str, text: str) -> int:
        """How many messages of one level contain text."""
        return sum(1 for lvl, m in self.lines if lvl == level and text in m)
