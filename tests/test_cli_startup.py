"""Start-up stays light: `mlobs --help`, `--version` and every command's `--help` import no pandas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlobs_cli.cli import app

PROBE = r"""
import sys
from typer.testing import CliRunner
from mlobs_cli.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
assert result.exit_code == 0, result.output
heavy = sorted(m for m in ("pandas", "numpy", "orjson", "prometheus_client") if m in sys.modules)
print(",".join(heavy))
"""

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(c.name for c in app.registered_commands if c.name)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *[[c, "--help"] for c in COMMANDS]])
def test_help_and_version_import_no_pandas(argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"{argv} imported {out.stdout.strip()}"


def test_every_command_has_help_text():
    for command in app.registered_commands:
        assert command.short_help or (command.callback and command.callback.__doc__), command.name
