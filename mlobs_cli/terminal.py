"""Make untrusted text inert before it reaches a terminal, and write diagnostics to stderr.

Log content is untrusted: a field value must never move the cursor, clear the screen, set a hyperlink or
the clipboard, or be read as rich markup. Human-facing output passes every log-derived string through
`inert_text`; machine formats (json, ndjson, csv) keep the exact value.
"""

from __future__ import annotations

import re
import sys

# C0 controls (but not tab/newline handled by callers), DEL, C1 controls, lone surrogates, and the
# invisible characters that reorder or hide text (bidi embeddings/overrides/isolates, LRM/RLM/ALM,
# line/paragraph separators): a value must not make the text around it read differently.
_INVISIBLE = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\ud800-\\udfff{_INVISIBLE}]")
_CONTROL_WITH_NL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff{_INVISIBLE}]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def inert_text(value: object, *, keep_newlines: bool = False, max_len: int | None = None) -> str:
    """Return `value` as text with control characters shown as `\\xNN` escapes.

    The result is safe to print raw to a terminal. It is *not* yet safe as rich markup: pass it to rich
    as `rich.text.Text(...)` (never as a markup string), or through `rich.markup.escape`.
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _CONTROL if keep_newlines else _CONTROL_WITH_NL
    text = pattern.sub(_escape, text)
    if max_len is not None and len(text) > max_len:
        text = text[: max(0, max_len - 1)] + "…"
    return text


def warn(message: str) -> None:
    """Write one diagnostic line to stderr (`mlobs: <message>`), inert."""
    sys.stderr.write(f"mlobs: {inert_text(message)}\n")
    sys.stderr.flush()


def error_line(message: str, *, keep_newlines: bool = False) -> None:
    """Write the error a failing command prints: `mlobs: error: <message>`.

    One line, unless `keep_newlines` (for messages built to span lines, like an expression with a
    caret under the error): other control characters are escaped either way.
    """
    text = inert_text(message, keep_newlines=keep_newlines)
    if keep_newlines:
        # Continuation lines are indented: a value with a newline in it (a file name, say) cannot
        # forge a line of its own such as "mlobs: nothing skipped".
        first, *rest = text.split("\n")
        text = "\n".join([first, *(ln if not ln or ln[0].isspace() else "  " + ln for ln in rest)])
    sys.stderr.write(f"mlobs: error: {text}\n")
    sys.stderr.flush()
