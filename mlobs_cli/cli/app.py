"""The typer application and the `command` decorator that maps errors to exit codes.

Every command is registered with `@command()` from this module: it wraps the function so that a
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

from mlobs_cli import __version__
from mlobs_cli.errors import ExitCode, MlobsError
from mlobs_cli.terminal import error_line

F = TypeVar("F", bound=Callable[..., Any])

# Write failures of stdout or a report: a clear message and exit 2, not "unexpected failure".
OUTPUT_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})

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


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler (a CI timeout, `kill`): unwinds like Ctrl-C, so temp report
    files are removed, and exits 143."""


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


def finish_stdout() -> int | None:
    """Flush stdout before exit; returns an exit code when that fails (pipe closed, disk full)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
        return int(ExitCode.OK)
    except OSError as exc:
        quiet_broken_pipe()
        error_line(f"cannot write the output: {exc.strerror or exc}")
        return int(ExitCode.USAGE)
    except (ValueError, AttributeError):  # stdout closed or replaced
        return None
    return None


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """Register a function as an mlobs command, guarded by the exit-code contract."""

    def decorator(fn: F) -> F:
        app.command(*args, **kwargs)(guarded(fn))
        return fn

    return decorator
