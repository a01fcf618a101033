"""The typer application and the `command` decorator that maps errors to exit codes.

Every command is registered with `@command(name)` from this module: it wraps the function so that a
`MlobsError` becomes one line on stderr and its exit code, Ctrl-C becomes exit 130, a closed pipe ends
quietly, and anything unexpected becomes one clear line and exit 2, never a traceback.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from mlobs_cli.entry import quiet_broken_pipe
from mlobs_cli.errors import ExitCode, MlobsError
from mlobs_cli.overview import APP_HELP, COMMANDS, OPTIONS, render_overview, version_line
from mlobs_cli.terminal import error_line

F = TypeVar("F", bound=Callable[..., Any])

# Write failures of stdout or a report: a clear message and exit 2, not "unexpected failure".
OUTPUT_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})

_OPTION_HELP = dict(OPTIONS)


class MlobsGroup(TyperGroup):
    """The top-level group: prints the same plain help as the entry point's fast path (overview.py)."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        formatter.write(render_overview(ctx.command_path))

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        # Bare `mlobs`: help on stdout and exit 2, as typer prints its own rich help (which it does
        # while building the error, so a plain format_help would otherwise print nothing).
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(int(ExitCode.USAGE))
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="mlobs",
    cls=MlobsGroup,
    help=APP_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help=_OPTION_HELP["--version"],
        callback=_version_callback,
        is_eager=True,
    ),
    no_cache: bool = typer.Option(
        False,
        "--no-cache",
        help=_OPTION_HELP["--no-cache"],
    ),
) -> None:
    """mlobs: how fast is each model version, is it getting worse, and why was this request slow?"""
    from mlobs_cli.cachedir import set_enabled

    set_enabled(not no_cache)


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler (a CI timeout, `kill`): unwinds like Ctrl-C, so temp report
    files are removed, and exits 143."""


def guarded(fn: F) -> F:
    """Wrap a command body with the error-to-exit-code contract."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except MlobsError as exc:
            error_line(str(exc), keep_newlines=True)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):  # SIGTERM: 128 + 15, as the shell reports it
                sys.stderr.write("mlobs: terminated\n")
                raise typer.Exit(128 + 15) from None
            sys.stderr.write("mlobs: interrupted\n")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            quiet_broken_pipe()
            raise typer.Exit(0) from None
        except OSError as exc:
            if exc.errno not in OUTPUT_FULL_ERRNOS:
                return _unexpected(exc)
            error_line(f"cannot write the output: {exc.strerror}")
            quiet_broken_pipe()  # the unwritten rest must not fail again at exit
            raise typer.Exit(int(ExitCode.USAGE)) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
            return _unexpected(exc)

    return wrapper  # type: ignore[return-value]


def _unexpected(exc: Exception) -> Any:
    if os.environ.get("MLOBS_DEBUG"):
        raise exc
    error_line(
        f"unexpected failure: {type(exc).__name__}: {exc} "
        "(set MLOBS_DEBUG=1 for a traceback, and please report it)"
    )
    raise typer.Exit(int(ExitCode.USAGE)) from None


def command(name: str, **kwargs: Any) -> Callable[[F], F]:
    """Register a function as the mlobs command `name`, guarded by the exit-code contract.

    Its one-line help comes from `overview.COMMANDS`, the table `mlobs --help` lists.
    """
    if name not in COMMANDS:
        raise LookupError(f"command {name!r} is missing from the COMMANDS table in mlobs_cli/overview.py")

    def decorator(fn: F) -> F:
        app.command(name, short_help=COMMANDS[name], **kwargs)(guarded(fn))
        return fn

    return decorator
