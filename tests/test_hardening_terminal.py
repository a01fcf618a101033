"""Terminal safety: log content never drives the terminal, in any human output of any command.

A real simulated log is rewritten so that model versions, request ids, stage event names, stage
names and attributes (host, user_id) carry escape sequences (clear screen, cursor moves, OSC 8
hyperlinks, OSC 52 clipboard writes), C0/C1 controls, a bidi override and rich markup. Every human
output is rendered by a console forced into terminal mode (FORCE_COLOR, so rich emits its own SGR
colour codes): once those SGR codes are removed, no ESC, BEL, CSI, NUL or U+202E from the log may
remain, and markup shows as literal text. Machine formats keep the exact values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlobs_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_logs" / "predict-service.jsonl"

MARKUP = "[bold red]RED[/bold red][link=file:///etc/passwd]LNK[/link]"
ESCAPES = (
    "\x1b[2J\x1b[H\x1b[5A"  # clear screen, cursor home, cursor up
    "\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
    "\x1b]52;c;aGFjaw==\x07"  # OSC 52: set the clipboard
    "\x9b1m\x08\x7f\u202e"  # C1 CSI, backspace, DEL, right-to-left override
)
EVIL = MARKUP + ESCAPES
RID = "req-5fca08e8ca803038" + EVIL  # a request of the sample with all five stage events
# What rich itself writes in terminal mode: SGR colour/style codes, nothing else.
RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")
# ... and, for tail's live view only, what rich.live writes to redraw in place: hide/show the cursor,
# erase the line, one line up (measured on a benign log). A log's `\x1b[2J`, `\x1b[5A`... are not here.
RICH_LIVE = re.compile(r"\x1b\[\?25[lh]|\x1b\[2K|\x1b\[1A|\r")
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x00", "\x08", "\x7f", "\u202e")


@pytest.fixture(scope="module")
def evil_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = []
    for line in SAMPLE.read_text().splitlines():
        o = json.loads(line)
        if o.get("model_version") == "v2.1":
            o["model_version"] = "v2.1" + EVIL
        if o.get("request_id") == "req-5fca08e8ca803038":
            o["request_id"] = RID
        if o.get("event") == "features_fetched":
            o["event"] = "features_fetched" + EVIL
        if "host" in o:
            o["host"] = "h" + EVIL
            o["user_id"] = "u\x00" + EVIL
        out.append(json.dumps(o))
    # a stage-with-duration line whose stage name is hostile, for the same request
    out.append(
        json.dumps(
            {"ts": "2026-11-26T10:00:00.876721Z", "stage": "rank" + EVIL, "duration": 0.002,
             "request_id": RID, "model_version": "v2.0"}
        )
    )  # fmt: skip
    path = tmp_path_factory.mktemp("evil") / ("evil" + ".jsonl")
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A colour terminal, 250 columns wide: rich writes escape codes of its own."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "250")


def _run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_inert(text: str, *, live: bool = False) -> str:
    """Remove rich's own SGR codes; then nothing that drives a terminal may be left."""
    rest = RICH_SGR.sub("", text)
    if live:
        rest = RICH_LIVE.sub("", rest)
    for ch in FORBIDDEN:
        at = rest.find(ch)
        assert at < 0, f"{ch!r} reached the terminal: ...{rest[max(0, at - 60) : at + 20]!r}"
    # markup is shown as text, never applied: wherever RED is shown, its tags are shown too
    # (compared without spaces, line breaks and table borders, which wrapping puts in between)
    flat = re.sub(r"[\s\u2500-\u257f]+", "", rest)
    for m in re.finditer("RED", flat):
        assert flat[max(0, m.start() - 9) : m.start()] == "[boldred]", flat[m.start() - 40 : m.end() + 10]
    return rest


HUMAN = {
    "schema": ["schema", "{log}"],
    "latency": ["latency", "{log}"],
    "latency-by-host": ["latency", "{log}", "--by", "host", "--by", "user_id"],
    "latency-baseline": ["latency", "{log}", "--baseline", "v2.0"],
    "latency-plot": ["latency", "{log}", "--plot", "--every", "5m"],
    "latency-markdown": ["latency", "{log}", "--format", "markdown"],
    "explain": ["explain", RID, "{log}"],
    "explain-raw": ["explain", RID, "{log}", "--raw"],
    "slow": ["slow", "{log}", "--top", "20"],
    "slow-by-version": ["slow", "{log}", "--by-version"],
    "check": ["check", "{log}", "-a", "p99 < 1ms", "-a", "error_rate < 0.001%"],
    "check-markdown": ["check", "{log}", "-a", "p99 < 1ms", "--format", "markdown"],
    "spikes": ["spikes", "{log}", "--every", "1m", "--min-requests", "5", "--window", "5"],
    "spikes-plot": ["spikes", "{log}", "--every", "1m", "--min-requests", "5", "--plot"],
    "forecast": [
        "forecast",
        "{log}",
        "--every",
        "2m",
        "--min-requests",
        "5",
        "--slo",
        "p99 < 250ms",
        "--horizon",
        "20m",
    ],
}


@pytest.mark.parametrize("case", sorted(HUMAN))
def test_human_output_is_inert(case: str, evil_log: Path, terminal: None) -> None:
    args = [a.replace("{log}", str(evil_log)) for a in HUMAN[case]]
    result = _run(*args)
    assert result.exit_code in (0, 1), result.stderr
    assert result.stdout.strip(), result.stderr
    shown = assert_inert(result.stdout)
    assert_inert(result.stderr)
    if case != "latency-markdown" and case != "check-markdown":
        assert RICH_SGR.search(result.stdout), "the console was not in terminal mode: the test proves nothing"
    if case.startswith(("latency", "slow", "check")) and case != "latency-by-host":
        assert "v2.1[bold red]RED[/bold red]" in shown  # the hostile version, as literal text
    if case.startswith("explain"):
        assert "req-5fca08e8ca803038[bold red]RED[/bold red]" in shown
    if case.startswith(("latency", "explain", "slow")) and "markdown" not in case:
        assert "\\x1b[2J" in shown or "…" in shown  # the escape is shown as text (or cut short)


def test_explain_shows_hostile_names_as_text(evil_log: Path, terminal: None) -> None:
    result = _run("explain", RID, str(evil_log), "--raw")
    assert result.exit_code == 0, result.stderr
    shown = assert_inert(result.stdout)
    assert "features_fetched[bold red]RED[/bold red]" in shown
    assert "\\x1b]8;;http://evil.example" in shown  # the hyperlink is text, not a link


ERRORS = {
    "missing file": ["latency", "/nonexistent/a\x1b[2J[bold]b[/bold].log"],
    "unknown request": ["explain", "nope\x1b]52;c;aGk=\x07[bold]x[/bold]", "{log}"],
    "bad where": ["latency", "{log}", "--where", "host == '\x1b[2J' and \x1b[5A"],
    "bad rule": ["check", "{log}", "-a", "p99 < \x1b]8;;http://x\x1b\\1ms"],
    "bad field flag": ["latency", "{log}", "--field", "latency_ms=\x1b[2J:\x9bparsecs"],
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_messages_are_inert(case: str, evil_log: Path, terminal: None) -> None:
    args = [a.replace("{log}", str(evil_log)) for a in ERRORS[case]]
    result = _run(*args)
    assert result.exit_code in (1, 2)
    assert "mlobs: error:" in result.stderr
    shown = assert_inert(result.stderr)
    assert "\\x1b" in shown or "\\x9b" in shown  # the escape is named, not executed
    assert "Traceback" not in shown


def test_config_errors_are_inert(evil_log: Path, terminal: None, tmp_path: Path) -> None:
    cfg = tmp_path / "mlobs.toml"
    cfg.write_text('[fields]\nlatency_ms = "\\u001b[2J[bold]x[/bold]:\\u009bfortnights"\n')
    result = _run("latency", str(evil_log), "--config", str(cfg))
    assert result.exit_code == 2
    assert_inert(result.stderr)


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_machine_formats_keep_the_exact_value(fmt: str, evil_log: Path, terminal: None) -> None:
    result = _run("latency", str(evil_log), "--format", fmt)
    assert result.exit_code == 0
    if fmt == "json":
        versions = [r["model_version"] for r in orjson.loads(result.stdout)["rows"]]
    elif fmt == "ndjson":
        versions = [orjson.loads(line)["model_version"] for line in result.stdout.splitlines()]
    else:
        import csv
        import io

        versions = [r["model_version"] for r in csv.DictReader(io.StringIO(result.stdout))]
    assert "v2.1" + EVIL in versions


def test_slow_json_keeps_the_exact_request_id(evil_log: Path) -> None:
    result = _run("slow", str(evil_log), "--top", "2000", "--format", "json")
    assert result.exit_code == 0
    ids = {r["request_id"] for r in orjson.loads(result.stdout)["rows"]}
    assert RID in ids


def test_raw_escape_bytes_in_a_log_line_stay_inert(tmp_path: Path, terminal: None) -> None:
    # JSON forbids raw control characters inside strings, but a Kubernetes CRI prefix carries them
    # through: the raw line itself holds ESC and BEL bytes, and `explain --raw` prints it.
    log = tmp_path / "cri.log"
    log.write_bytes(
        b"2026-11-26T10:00:00.000Z\x1b[2J\x1b]52;c;aGk=\x07 stdout F "
        b'{"ts":"2026-11-26T10:00:00Z","event":"request_received","request_id":"rq1","model_version":"v1"}\n'
        b"2026-11-26T10:00:00.050Z stdout F "
        b'{"ts":"2026-11-26T10:00:00.05Z","event":"prediction","request_id":"rq1","model_version":"v1",'
        b'"latency_ms":50}\n'
    )
    result = _run("explain", "rq1", str(log), "--raw")
    assert result.exit_code == 0, result.stderr
    shown = assert_inert(result.stdout)
    assert "2026-11-26T10:00:00.000Z\\x1b[2J\\x1b]52;c;aGk=\\x07 stdout F" in shown


def test_a_newline_in_a_value_cannot_forge_a_line_of_its_own(tmp_path: Path) -> None:
    result = _run("latency", tmp_path / "x\nmlobs: all good, nothing skipped")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("mlobs: error: ")
    assert all(not ln.startswith("mlobs:") for ln in lines[1:]), lines


@pytest.mark.parametrize("mode", [[], ["--plain"], ["--alert", "p99 > 1ms"]])
def test_tail_views_are_inert(
    mode: list[str], evil_log: Path, terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlobs_cli.cli import tail_cmd

    if "--plain" not in mode:  # the live view, as on a terminal (CliRunner's stdout is no tty)
        monkeypatch.setattr(tail_cmd, "_output_mode", lambda fmt, plain: "live")
    args = ["tail", str(evil_log), "--from-start", "--intervals", "1", "--events", "--slow-over", "100ms"]
    result = _run(*args, *mode)
    assert result.exit_code == 0, result.stderr
    shown = assert_inert(result.stdout, live="--plain" not in mode)
    assert_inert(result.stderr)
    assert "v2.1[bold red]RED[/bold red]" in " ".join(shown.split())
    if not mode or mode[0] != "--plain":
        assert RICH_SGR.search(result.stdout)  # the live view, in terminal mode


def test_hostile_file_names_are_inert(tmp_path: Path, terminal: None) -> None:
    name = "svc\x1b[2J\x1b]8;;http:x\x1b\\[bold red]RED\u202e.jsonl"  # no "/" in a file name
    log = tmp_path / name
    lines = SAMPLE.read_text().splitlines()[:400]
    log.write_text("\n".join(lines[:10] + ["not json"] + lines[10:]) + "\n")  # one skip, named
    rid = json.loads(next(ln for ln in lines if '"prediction"' in ln))["request_id"]
    for args in (
        ["schema", str(log)],
        ["latency", str(log)],
        ["slow", str(log), "--top", "3"],
        ["explain", rid, str(log), "--raw"],
        ["check", str(log), "-a", "p99 < 1ms"],
    ):
        result = _run(*args)
        assert result.exit_code in (0, 1), result.stderr
        out, err = assert_inert(result.stdout), assert_inert(result.stderr)
        # the skipped line is named with its file (on stderr; in the table for schema), inert
        assert "\\x1b[2J" in (out if args[0] == "schema" else err)


@pytest.mark.parametrize("columns", ["0", "1", "-5", "wide"])
def test_odd_terminal_widths_still_show_the_results(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", columns)  # COLUMNS=0 made rich print nothing at all
    for args in (["latency", SAMPLE], ["slow", SAMPLE, "--top", "2"], ["check", SAMPLE, "-a", "p99 < 10s"]):
        result = _run(*args)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip(), (columns, args)
        if columns != "1":  # ignored (not a width): the full table
            assert "v2.0" in result.stdout, (columns, args, result.stdout)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", categories=None), max_size=60))
def test_any_string_in_a_cell_renders_inert(value: str) -> None:
    import io

    from rich.console import Console

    from mlobs_cli.render.console import cell, simple_table

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, color_system="truecolor", width=200, markup=False)
    console.print(simple_table("t", ["v"], [[cell(value)]]))
    console.print(cell(value))
    rest = RICH_SGR.sub("", buf.getvalue())
    assert not any(ch in rest for ch in FORBIDDEN)
    assert not any(0x80 <= ord(ch) <= 0x9F or ord(ch) < 0x20 and ch != "\n" for ch in rest)
