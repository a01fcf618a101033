"""Start-up stays light: `mlobs --help`, `--version` and every command's `--help` import no pandas.

`--version` and the top-level help are answered by `mlobs_cli.entry` before typer is imported; their
text must be the very text the typer app prints, and list every registered command exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mlobs_cli import __version__
from mlobs_cli.cli import app, app_for
from mlobs_cli.entry import fast_answer
from mlobs_cli.overview import COMMANDS, OPTIONS, render_overview

PROBE = r"""
import sys
from typer.testing import CliRunner
from mlobs_cli.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
heavy = sorted(m for m in ("pandas", "numpy", "orjson", "prometheus_client") if m in sys.modules)
print(",".join(heavy))
"""

# Runs the console script's entry point as `mlobs ARGS...`, then reports on stderr what was imported.
ENTRY_PROBE = r"""
import json, sys
from mlobs_cli.entry import main
sys.argv = ["mlobs", *sys.argv[1:]]
try:
    main()
    code = 0
except SystemExit as done:
    code = done.code
sys.stdout.flush()
loaded = sorted(m for m in ("typer", "click", "rich", "pandas", "numpy", "orjson") if m in sys.modules)
sys.stderr.write(json.dumps({"code": code, "loaded": loaded}))
"""

# The console script pip writes for `[project.scripts] mlobs = "mlobs_cli.entry:main"`.
CONSOLE_SCRIPT = """import sys
from mlobs_cli.entry import main
if __name__ == "__main__":
    sys.exit(main())
"""

ROOT = Path(__file__).resolve().parents[1]
COMMAND_NAMES = sorted(c.name for c in app.registered_commands if c.name)
FAST = [["--version"], ["--help"], ["-h"], []]


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def _run(args: list[str], *, stdout=subprocess.PIPE, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60, env=_env(**env)
    )


def _typer_output(argv: list[str], prog: str = "mlobs"):
    return CliRunner().invoke(app, argv, prog_name=prog, catch_exceptions=False)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *[[c, "--help"] for c in COMMAND_NAMES]])
def test_help_and_version_import_no_pandas(argv):
    out = _run(["-c", PROBE, *argv])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{argv} imported {out.stdout.strip()}"


@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_fast_path_imports_neither_typer_nor_rich_nor_pandas(argv):
    out = _run(["-c", ENTRY_PROBE, *argv])
    report = json.loads(out.stderr)
    assert report["loaded"] == [], f"mlobs {' '.join(argv)} imported {report['loaded']}"
    assert report["code"] == (2 if not argv else 0)
    expected = f"mlobs {__version__}" if argv == ["--version"] else render_overview("mlobs")
    assert out.stdout == expected + "\n"


@pytest.mark.parametrize("argv", [["--help"], ["-h"], [], ["--no-cache", "--help"], ["--help", "latency"]])
def test_typer_prints_the_same_top_level_help(argv):
    result = _typer_output(argv, prog="mlobs")
    assert result.output == render_overview("mlobs") + "\n"
    assert result.exit_code == (2 if not argv else 0)


@pytest.fixture
def console_script(tmp_path: Path) -> Path:
    script = tmp_path / "mlobs"
    script.write_text(CONSOLE_SCRIPT)
    return script


@pytest.mark.parametrize(
    "argv", [["--version"], ["--help"], ["-h"], [], ["--version", "extra"]], ids=" ".join
)
def test_console_script_and_typer_app_agree(console_script, argv):
    """The installed `mlobs` script (fast path) prints what the typer app prints, with its exit code."""
    fast = _run([str(console_script), *argv])
    typed = _run(["-c", "import sys; from mlobs_cli.cli import main; sys.argv[0] = 'mlobs'; main()", *argv])
    assert fast.stderr == typed.stderr == ""
    assert fast.returncode == typed.returncode == (2 if not argv else 0)
    assert fast.stdout == typed.stdout
    assert fast.stdout.startswith(
        f"mlobs {__version__}\n" if "--version" in argv else "Usage: mlobs [OPTIONS]"
    )


def test_python_dash_m_names_itself_as_click_does():
    fast = _run(["-m", "mlobs_cli", "--help"])
    typed = _run(["-m", "mlobs_cli", "--no-cache", "--help"])  # not a fast path: through typer
    assert fast.returncode == typed.returncode == 0
    assert fast.stdout == typed.stdout == render_overview("python -m mlobs_cli") + "\n"
    assert "Run `python -m mlobs_cli COMMAND --help`" in fast.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--version", "extra"],
        ["--help", "latency"],
        ["-h", "-h"],
        ["--no-cache", "--help"],
        ["--no-cache"],
        ["latency", "--help"],
        ["--VERSION"],
        ["help"],
    ],
    ids=" ".join,
)
def test_other_command_lines_fall_through_to_typer(argv):
    assert fast_answer(argv) is None
    out = _run(["-c", ENTRY_PROBE, *argv])
    report = json.loads(out.stderr[out.stderr.rindex("{") :])
    assert "typer" in report["loaded"]
    assert report["code"] == _typer_output(argv).exit_code


def test_help_lists_every_registered_command_once_with_its_table_help():
    registered = {c.name: c for c in app.registered_commands}
    assert list(registered) == list(COMMANDS)  # same commands, registered in the order listed
    text = render_overview("mlobs", width=78)
    commands = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    for name, info in registered.items():
        assert info.short_help == COMMANDS[name]
        starts = [ln for ln in commands.splitlines() if ln.split()[0] == name and not ln.startswith("    ")]
        assert len(starts) == 1, name
    # each help, unwrapped, follows its name
    entries = " ".join(commands.split())
    for name, help_text in COMMANDS.items():
        assert entries.count(f"{name} {help_text}") == 1, name


def test_option_list_matches_the_group_options():
    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="mlobs", **group.context_settings)
    declared = {", ".join(sorted(p.opts, key=len)): p.help for p in group.get_params(ctx)}  # -h first
    assert declared == dict(OPTIONS)


@pytest.mark.parametrize("columns", ["40", "50", "80", "200"])
def test_help_wraps_to_the_terminal_width(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    text, _ = fast_answer(["-h"])
    width = max(40, min(int(columns) - 2, 78))
    too_long = [ln for ln in text.splitlines() if len(ln) > width and not ln.startswith("Usage:")]
    assert too_long == []
    assert " ".join(text.split()).count(COMMANDS["latency"]) == 1
    assert _typer_output(["--help"], prog="mlobs").output == render_overview("mlobs") + "\n"


def test_subcommand_help_stays_typers():
    result = _typer_output(["latency", "--help"])
    assert result.exit_code == 0
    assert "Usage: mlobs latency [OPTIONS]" in result.output
    assert "─ Options ─" in result.output and "--by-version" in result.output  # rich panels


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["--version", "extra"]], ids=" ".join)
def test_full_disk_is_one_error_line_and_exit_2(argv):
    with open("/dev/full", "w") as full:
        out = _run(["-m", "mlobs_cli", *argv], stdout=full)
    assert out.returncode == 2
    assert out.stderr == "mlobs: error: cannot write the output: No space left on device\n"


@pytest.mark.parametrize("argv", [["--help"], []], ids=" ".join)
def test_closed_pipe_ends_quietly(argv):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before mlobs writes
    try:
        out = _run(["-m", "mlobs_cli", *argv], stdout=write_end)
    finally:
        os.close(write_end)
    assert out.stderr == ""
    assert out.returncode == (0 if argv else 2)


@pytest.mark.parametrize(
    "argv",
    [
        ["latency", "--help"],
        ["--no-cache", "latency"],
        ["latency", "--bogus"],
        ["--no-cache", "schema", "--help"],
        ["slow", "--version"],
        ["cache", "info", "--format", "json"],
        ["--help", "latency"],  # the top-level help is the overview, whatever is registered
        *[[c, "--help"] for c in COMMAND_NAMES],
    ],
    ids=" ".join,
)
def test_running_only_the_named_command_changes_nothing(argv):
    name = next(a for a in argv if not a.startswith("-"))
    lean = app_for(argv)
    assert [c.name for c in lean.registered_commands] == [name]
    assert [c.name for c in app.registered_commands] == list(COMMANDS)  # the app itself is untouched
    full, part = _typer_output(argv), CliRunner().invoke(lean, argv, prog_name="mlobs")
    assert (part.exit_code, part.stdout, part.stderr) == (full.exit_code, full.stdout, full.stderr)


@pytest.mark.parametrize("argv", [[], ["--help"], ["--no-cache"], ["latenc"], ["-x", "latency"]])
def test_command_lines_without_a_known_command_get_the_full_app(argv):
    assert app_for(argv) is app


def test_top_level_options_are_flags():
    """app_for takes the first word that is not a top-level option as the command: no option takes a value."""
    group = typer.main.get_command(app)
    assert all(p.is_flag for p in group.params if p.name != "help")


def test_a_command_run_through_the_entry_point_matches_the_app():
    sample = ROOT / "sample_logs" / "predict-service.jsonl"
    argv = ["--no-cache", "latency", str(sample), "--format", "json"]
    out = _run(["-m", "mlobs_cli", *argv])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(_typer_output(argv).stdout)


@pytest.mark.parametrize("fmt", ["json", "csv", "ndjson", "markdown"])
def test_machine_formats_of_latency_load_no_rich(fmt):
    sample = ROOT / "sample_logs" / "predict-service.jsonl"
    out = _run(["-c", ENTRY_PROBE, "--no-cache", "latency", str(sample), "--format", fmt])
    report = json.loads(out.stderr[out.stderr.rindex("{") :])
    assert report["code"] == 0, out.stderr
    assert "pandas" in report["loaded"] and "rich" not in report["loaded"]
    assert out.stdout.strip()


def test_every_command_has_help_text():
    for command in app.registered_commands:
        assert command.short_help or (command.callback and command.callback.__doc__), command.name
