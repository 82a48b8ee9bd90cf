"""The one exception type users see: a single line that names the input and the problem."""

from __future__ import annotations

from pathlib import Path


class IotlakeError(Exception):
    """A user-facing error: `where` names the file (and line) or object, `problem` says what is wrong."""

    def __init__(self, where: str | Path, problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


class BadCaptureError(IotlakeError):
    """A capture file that cannot be ingested (not a capture, empty, unsupported link type)."""


class ConfigError(IotlakeError):
    """A configuration file or value that is malformed."""
