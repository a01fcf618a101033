"""The typer application and the `command` decorator that maps errors to exit codes.

Every command is registered with `@command()` from this module: it wraps the function so that a
`MlobsError` becomes one line on stderr and its exit code, Ctrl-C becomes exit 130, a closed pipe ends
quietly, and anything unexpected becomes one clear line and exit 2, never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from mlobs_cli import __version__
from mlobs_cli.errors import ExitCode, MlobsError
from mlobs_cli.terminal import error_line

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="mlobs",
    help="Latency percentiles, request timelines and CI checks from the JSON logs of model-serving services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mlobs {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_version_callback,
        is_eager=True,
    ),
    no_cache: bool = typer.Option(
        False,
        "--no-cache",
        help="Parse the logs afresh: neither read nor update the cache (see `mlobs cache`).",
    ),
) -> None:
    """mlobs: how fast is each model version, is it getting worse, and why was this request slow?"""
    from mlobs_cli.cachedir import set_enabled

    set_enabled(not no_cache)


def quiet_broken_pipe() -> None:
    """After stdout's reader went away (`| head`): point stdout at /dev/null so exit is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


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
        except KeyboardInterrupt:
            sys.stderr.write("mlobs: interrupted\n")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            quiet_broken_pipe()
            raise typer.Exit(0) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
            if os.environ.get("MLOBS_DEBUG"):
                raise
            error_line(
                f"unexpected failure: {type(exc).__name__}: {exc} "
                "(set MLOBS_DEBUG=1 for a traceback, and please report it)"
            )
            raise typer.Exit(int(ExitCode.USAGE)) from None

    return wrapper  # type: ignore[return-value]


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """Register a function as an mlobs command, guarded by the exit-code contract."""

    def decorator(fn: F) -> F:
        app.command(*args, **kwargs)(guarded(fn))
        return fn

    return decorator
