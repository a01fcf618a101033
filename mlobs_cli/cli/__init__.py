"""Command-line wiring: options -> pipeline -> renderer -> exit code. No parsing or maths here.

Each command lives in its own module and registers itself on `app` with `@command(name)` (its one-line
help comes from `mlobs_cli.overview.COMMANDS`); importing them here is all it takes to add one. Command
modules import pandas and the analysis modules lazily, inside the command function. The console script
(`mlobs_cli.entry`) answers `--version` and the top-level help without importing this package.
"""

from __future__ import annotations

import copy
import sys

import typer

from mlobs_cli.cli.app import OUTPUT_FULL_ERRNOS, Terminated, app
from mlobs_cli.entry import finish_stdout, quiet_broken_pipe
from mlobs_cli.errors import ExitCode
from mlobs_cli.overview import COMMANDS, OPTIONS
from mlobs_cli.terminal import error_line

# Command modules: importing one registers its command.
from mlobs_cli.cli import latency_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import explain_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import slow_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import check_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import tail_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import spikes_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import forecast_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import schema_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import simulate_cmd  # noqa: F401,E402  isort: skip
from mlobs_cli.cli import cache_cmd  # noqa: F401,E402  isort: skip


# The top-level options are all flags (tests/test_cli_startup.py checks), so the first other word of
# a command line is the command.
TOP_LEVEL_FLAGS = frozenset(flag for flags, _ in OPTIONS for flag in flags.split(", "))


def app_for(args: list[str]) -> typer.Typer:
    """The app to run `args` with: a copy of `app` holding only the command named in `args`, if any.

    typer builds the click command of every registered command before it parses anything (~25 ms for
    eleven, each signature inspected); only one runs. Anything else (no command, an unknown one, an
    unknown option first) gets the full `app`, so its errors and suggestions are typer's own.
    """
    name = next((arg for arg in args if arg not in TOP_LEVEL_FLAGS), None)
    if name not in COMMANDS:
        return app
    lean = copy.copy(app)
    lean.registered_commands = [c for c in app.registered_commands if c.name == name]
    return lean


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main() -> None:
    """Run the typer app on `sys.argv` (the `mlobs` script calls this after `entry.main`'s fast path)."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app_for(sys.argv[1:])()
    except KeyboardInterrupt:
        sys.stderr.write("mlobs: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        quiet_broken_pipe()
        sys.exit(0)
    except OSError as exc:  # stdout failed outside a command: `mlobs --version extra > /dev/full`
        if exc.errno not in OUTPUT_FULL_ERRNOS:
            raise
        quiet_broken_pipe()
        error_line(f"cannot write the output: {exc.strerror}")
        sys.exit(int(ExitCode.USAGE))
    except SystemExit as done:
        # Output still buffered is written here: a closed pipe or a full disk must end as quietly
        # (or as clearly) as the same failure during the command, never as "Exception ignored".
        failed = finish_stdout()
        if failed is not None and not done.code:
            sys.exit(failed)
        raise


__all__ = ["app", "app_for", "main"]
