"""No code from data: expressions are parsed, never evaluated; settings are TOML data; nothing in a
log line can make mlobs run code, open a file of its choosing, a URL or a process.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlobs_cli.cli import app

PACKAGE = Path(__file__).resolve().parents[1] / "mlobs_cli"
PAYLOAD = "__import__('os').system('touch {flag}')"


def _run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    lines = []
    for i in range(40):
        lines.append(
            {"ts": f"2026-11-26T10:00:{i:02d}Z", "event": "prediction", "request_id": f"r{i}",
             "model_version": "v1" if i % 2 else "__import__('os').system('id')",
             "latency_ms": 10 + i, "status": 200, "user_id": "{{7*7}}${7*7}$(id)`id`"}
        )  # fmt: skip
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


@pytest.mark.parametrize(
    "expr",
    [
        PAYLOAD,
        "status >= 500 or __import__('os').system('touch {flag}')",
        "(lambda: 1)()",
        "model_version.__class__.__mro__",
        "open('{flag}', 'w')",
        "latency_ms > 1; import os",
    ],
)
def test_where_with_python_is_a_syntax_error(expr: str, log: Path, tmp_path: Path) -> None:
    flag = tmp_path / "pwned"
    result = _run("latency", log, "--where", expr.format(flag=flag))
    assert result.exit_code == 2, result.stdout
    assert "invalid --where expression" in result.stderr
    assert not flag.exists()


def test_rule_with_python_is_a_syntax_error(log: Path, tmp_path: Path) -> None:
    flag = tmp_path / "pwned"
    for rule in (PAYLOAD.format(flag=flag) + " < 1", f"p99 < {PAYLOAD.format(flag=flag)}"):
        result = _run("check", log, "-a", rule)
        assert result.exit_code == 2
        assert "mlobs: error:" in result.stderr
    assert not flag.exists()


def test_code_in_log_values_is_only_text(log: Path) -> None:
    # a version literally named like Python code is matched as a string, nothing more
    result = _run(
        "latency", log, "--where", "model_version == \"__import__('os').system('id')\"", "-f", "json"
    )
    assert result.exit_code == 0
    rows = json.loads(result.stdout)["rows"]
    assert [r["model_version"] for r in rows] == ["__import__('os').system('id')"]
    assert rows[0]["requests"] == 20


def test_settings_file_is_toml_data_never_python(log: Path, tmp_path: Path) -> None:
    flag = tmp_path / "pwned"
    cfg = tmp_path / "mlobs.toml"
    cfg.write_text(f"import os\nos.system('touch {flag}')\n")
    result = _run("latency", log, "--config", cfg)
    assert result.exit_code == 2 and "not valid TOML" in result.stderr
    cfg.write_text(f'[fields]\nlatency_ms = "{PAYLOAD.format(flag=flag)}"\n')
    result = _run("latency", log, "--config", cfg)  # a key name like any other: read, never run
    assert "Traceback" not in result.stderr
    assert not flag.exists()


def test_a_log_line_cannot_choose_the_file_explain_re_reads(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET\n")
    line = {
        "ts": "2026-11-26T10:00:01Z",
        "event": "prediction",
        "request_id": "r1",
        "model_version": "v1",
        "latency_ms": 5,
        "source": str(secret),
        "line": 1,
        "path": str(secret),
        "file": str(secret),
    }
    log = tmp_path / "a.jsonl"
    log.write_text(json.dumps(line) + "\n")
    result = _run("explain", "r1", log, "--raw")
    assert result.exit_code == 0
    assert "TOP-SECRET" not in result.stdout
    assert f"{log}:1:" in result.stdout  # the raw line comes from the file named on the command line


# Calls and imports that would run code or reach outside: none anywhere in the package.
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint", "input"}
FORBIDDEN_MODULES = {
    "pickle", "cPickle", "shelve", "marshal", "dill", "subprocess", "pty", "socket", "urllib",
    "http", "ftplib", "webbrowser", "importlib", "runpy", "code", "ctypes", "yaml",
}  # fmt: skip
FORBIDDEN_ATTRS = {"system", "popen", "execv", "execve", "execvp", "spawnv", "spawnl", "startfile", "fork"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{where}: {node.func.id}()")
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
            if isinstance(node.value, ast.Name) and node.value.id in {"os", "posix"}:
                found.append(f"{where}: os.{node.attr}")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where}: import {alias.name}")
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{where}: from {node.module} import")
    return found


# The allowed places, each for a reason that involves no log data:
ALLOWED = {
    # the parallel reader forks a worker of its own and gets its parsed columns back through a pipe
    # it created a moment before: a pickle written and read only by mlobs itself, never a file
    ("parallel.py", "import pickle"),
    ("parallel.py", "os.fork"),
    ("cache.py", "os.fork"),
    # glibc's malloc_trim(0), a constant call with no data, so that memory freed while request chunks
    # are joined goes back to the system (peak RSS at 5M lines: 350 -> 298 MiB)
    ("frame.py", "import ctypes"),
}


def test_no_eval_exec_pickle_or_processes_in_the_package() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    found = [v for f in files for v in _violations(f)]
    unexpected = [v for v in found if (v.split(":")[0], v.split(": ", 1)[1]) not in ALLOWED]
    assert unexpected == []


def test_the_source_scan_would_see_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text("import subprocess\nimport os\nos.system('x')\neval('1')\nimport pickle as p\n")
    assert len(_violations(bad)) == 4
