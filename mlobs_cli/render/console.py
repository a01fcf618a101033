"""Human output with rich: one way to make consoles, tables and numbers.

Every log-derived string is shown through `cell()` (a `rich.text.Text`, never a markup string), so a
value like `[bold red]` or an escape sequence is displayed inert.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlobs_cli.terminal import inert_text

if TYPE_CHECKING:  # rich is imported where it is used: machine formats (json, csv) never load it
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

PIPED_WIDTH = 160  # output going to a file or a pipe: wide enough that tables keep every column


MIN_WIDTH = 20  # narrower than this, nothing readable fits: COLUMNS=1 is treated as 20


def make_console(*, stderr: bool = False, width: int | None = None) -> Console:
    """A console with markup, emoji and auto-highlighting off; honours NO_COLOR and COLUMNS.

    When the output is not a terminal (and COLUMNS is not set), lines may be up to `PIPED_WIDTH`
    wide instead of rich's 80, so `mlobs slow > report.txt` keeps every column.
    """
    env_width = os.environ.get("COLUMNS")
    if width is None and env_width and env_width.isdigit() and int(env_width) > 0:
        width = max(MIN_WIDTH, int(env_width))
    if width is None:
        stream = sys.stderr if stderr else sys.stdout
        try:
            piped = not stream.isatty()
        except (AttributeError, ValueError):
            piped = True
        if piped:
            width = PIPED_WIDTH
        elif env_width is not None:  # COLUMNS=0 or junk: rich would read it too and print nothing
            try:
                width = max(MIN_WIDTH, os.get_terminal_size(stream.fileno()).columns)
            except (OSError, ValueError, AttributeError):
                width = 80
    from rich.console import Console

    return Console(
        stderr=stderr,
        width=width,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
    )


def cell(value: Any, *, style: str | None = None, max_len: int | None = 120) -> Text:
    """An inert rich Text for an untrusted value (log content, file names, user input)."""
    from rich.text import Text

    if value is None:
        return Text("—", style="dim")
    if isinstance(value, float) and math.isnan(value):
        return Text("—", style="dim")
    return Text(inert_text(value, max_len=max_len), style=style or "")


def _finite(value: Any) -> float | None:
    """`value` as a float, or None when it is missing, not a number, or NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def fmt_ms(value: Any, digits: int = 1) -> str:
    """Milliseconds with a unit: `12.3 ms`; `—` for missing."""
    v = _finite(value)
    return "—" if v is None else f"{v:,.{digits}f} ms"


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage: 0.0123 -> `1.23%`; `—` for missing."""
    v = _finite(value)
    return "—" if v is None else f"{v * 100:.{digits}f}%"


def fmt_count(value: Any) -> str:
    """An integer with thousands separators."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


def simple_table(
    title: str | None,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
) -> Table:
    """A table whose cells are made inert with `cell()` unless they already are `Text`."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    for i, h in enumerate(headers):
        table.add_column(h, justify="right" if i in numeric else "left", no_wrap=i in numeric)
    for row in rows:
        table.add_row(*(c if isinstance(c, Text) else cell(c) for c in row))
    return table
