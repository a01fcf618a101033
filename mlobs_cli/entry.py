"""The `mlobs` console script: `--version` and the top-level help answered before typer is imported.

Exactly `mlobs --version`, `mlobs --help`, `mlobs -h` and a bare `mlobs` (help, exit 2, as typer's
`no_args_is_help` does) take the fast path; every other command line goes to the typer app unchanged.
Also here, because both paths need them without typer: how stdout ends (closed pipe, full disk).
"""

from __future__ import annotations

import os
import sys

HELP_FLAGS = ("--help", "-h")
EXIT_OK, EXIT_USAGE = 0, 2  # as errors.ExitCode (not imported: enum costs this path a few ms)


def program_name() -> str:
    """How mlobs was invoked, as click names it: `mlobs`, or `python -m mlobs_cli`."""
    main = sys.modules.get("__main__")
    path = sys.argv[0] if sys.argv and sys.argv[0] else "mlobs"
    package = getattr(main, "__package__", None)
    if not package:  # a script or entry point
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    module = package if name == "__main__" else f"{package}.{name}"
    return f"python -m {module.lstrip('.')}"


def fast_answer(args: list[str]) -> tuple[str, int] | None:
    """(text, exit code) for the command lines answered without typer; None for all others."""
    if args == ["--version"]:
        from mlobs_cli.overview import version_line

        return version_line(), EXIT_OK
    if not args or (len(args) == 1 and args[0] in HELP_FLAGS):
        from mlobs_cli.overview import render_overview

        return render_overview(program_name()), EXIT_OK if args else EXIT_USAGE
    return None


def quiet_broken_pipe() -> None:
    """After stdout's reader went away (`| head`): point stdout at /dev/null so exit is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def finish_stdout(text: str = "") -> int | None:
    """Write `text`, flush stdout; returns an exit code when that fails (pipe closed, disk full)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_broken_pipe()
        return EXIT_OK
    except OSError as exc:
        from mlobs_cli.terminal import error_line

        quiet_broken_pipe()  # the unwritten rest must not fail again at exit
        error_line(f"cannot write the output: {exc.strerror or exc}")
        return EXIT_USAGE
    except (ValueError, AttributeError):  # stdout closed or replaced
        return None
    return None


def main() -> None:
    """Entry point of the `mlobs` console script and of `python -m mlobs_cli`."""
    answer = fast_answer(sys.argv[1:])
    if answer is None:
        from mlobs_cli.cli import main as run_app

        run_app()
        return
    text, code = answer
    failed = finish_stdout(text + "\n")
    sys.exit(failed or code)  # a closed pipe (0) keeps the exit code of a bare `mlobs` (2)
