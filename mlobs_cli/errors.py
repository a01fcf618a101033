"""The exceptions mlobs expects, and the exit codes they map to.

Library modules raise these and never print or exit; only `mlobs_cli.cli` catches them and prints one
line to stderr: `mlobs: error: <message> (<hint>)`, then exits with the error's `exit_code`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit-code contract of every mlobs command."""

    OK = 0
    FAILED = 1  # a check or threshold failed, nothing matched, or --strict found bad input
    USAGE = 2  # bad flags, expressions, rules or unreadable input
    INTERRUPTED = 130


class MlobsError(Exception):
    """Base class: reaches the user as `mlobs: error: <message> (<hint>)`, exit 2."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(MlobsError):
    """A flag, expression, duration or rule the user gave does not parse: exit 2."""


class InputError(MlobsError):
    """A source cannot be opened or read (missing, permission denied, not a file): exit 2."""


class ConfigError(MlobsError):
    """`mlobs.toml` or `[tool.mlobs]` is not valid TOML or names unknown settings: exit 2."""


class NotFoundError(MlobsError):
    """What the user asked for is not in the logs (a request id, a version): exit 1."""

    exit_code = ExitCode.FAILED


class StrictError(MlobsError):
    """`--strict` was given and some input had to be skipped: exit 1."""

    exit_code = ExitCode.FAILED
