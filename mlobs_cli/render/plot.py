"""Terminal plots without a plotting library: braille line charts and block-character histograms.

`line_chart(series, ...)` draws one coloured line per series (e.g. p99 per model version over time)
on a braille canvas (2x4 dots per character); `histograms(edges, counts, ...)` draws one small
histogram per group on shared log-spaced bins. Both fit the given width and return rich `Text`.
Labels that come from logs (version names) go through `inert_text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rich.text import Text

from mlobs_cli.terminal import inert_text

PALETTE = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_white", "bright_cyan")
_DOTS = (
    (0x01, 0x08),
    (0x02, 0x10),
    (0x04, 0x20),
    (0x40, 0x80),
)  # [row][col] bits of a braille cell
_BLOCKS = " ▁▂▃▄▅▆▇█"


def fmt_axis_ms(value: float) -> str:
    """Compact ms labels: 0.42 ms, 12.3 ms, 1,234 ms."""
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value:.2g} ms"


class BrailleCanvas:
    """A grid of braille dots (2 x 4 per character), one colour per character cell."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.bits = [[0] * width for _ in range(height)]
        self.colour: list[list[str | None]] = [[None] * width for _ in range(height)]

    def dot(self, x: int, y: int, colour: str) -> None:
        """Set dot (x, y); x in [0, 2*width), y in [0, 4*height) from the top."""
        if 0 <= x < self.width * 2 and 0 <= y < self.height * 4:
            row, col = y // 4, x // 2
            self.bits[row][col] |= _DOTS[y % 4][x % 2]
            self.colour[row][col] = colour

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: str) -> None:
        """Bresenham's line between two dots."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.dot(x0, y0, colour)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def row_text(self, row: int) -> Text:
        text = Text()
        for col in range(self.width):
            bits = self.bits[row][col]
            text.append(chr(0x2800 + bits) if bits else " ", style=self.colour[row][col] or "")
        return text


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    width: int,
    height: int = 10,
    title: str = "",
    x_labels: tuple[str, str] = ("", ""),
) -> Text:
    """Lines of (x, y) points per series on shared axes; y spans the values (ms), padded 5%."""
    points = [(x, y) for pts in series.values() for x, y in pts if not math.isnan(y)]
    out = Text()
    if title:
        out.append(title + "\n", style="bold")
    if not points:
        out.append("(nothing to plot)\n", style="dim")
        return out
    lo, hi = min(y for _, y in points), max(y for _, y in points)
    pad = (hi - lo) * 0.05 or max(abs(hi) * 0.1, 1.0)
    y_lo, y_hi = max(0.0, lo - pad), hi + pad
    x_min = min(x for x, _ in points)
    x_span = (max(x for x, _ in points) - x_min) or 1.0
    dots_h = height * 4 - 1

    def value_at(row: int) -> float:  # the value at the middle of a character row
        return y_hi - min(dots_h, row * 4 + 1.5) / dots_h * (y_hi - y_lo)

    labels = {
        0: fmt_axis_ms(y_hi),
        height // 2: fmt_axis_ms(value_at(height // 2)),
        height - 1: fmt_axis_ms(y_lo),
    }
    label_w = max(len(v) for v in labels.values())
    plot_w = max(10, width - label_w - 2)
    canvas = BrailleCanvas(plot_w, height)
    dots_w = plot_w * 2 - 1
    legend = Text()
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        legend.append("━━ ", style=colour).append(inert_text(name, max_len=30) + "  ")
        prev: tuple[int, int] | None = None
        for x, y in pts:
            if math.isnan(y):
                prev = None
                continue
            px = round((x - x_min) / x_span * dots_w)
            py = dots_h - round((y - y_lo) / (y_hi - y_lo) * dots_h)
            if prev is None:
                canvas.dot(px, py, colour)
            else:
                canvas.line(prev[0], prev[1], px, py, colour)
            prev = (px, py)
    for row in range(height):
        label = labels.get(row, "")
        out.append(label.rjust(label_w) + " ┤", style="dim")
        out.append_text(canvas.row_text(row))
        out.append("\n")
    left, right = x_labels
    gap = max(1, plot_w - len(left) - len(right))
    out.append(" " * (label_w + 2) + left + " " * gap + right + "\n", style="dim")
    out.append(" " * (label_w + 2)).append_text(legend).append("\n")
    return out


def histograms(
    edges: Sequence[float],
    counts: Mapping[str, Sequence[int]],
    *,
    width: int,
    height: int = 4,
    markers: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "",
) -> Text:
    """One block histogram per group over shared bins; `markers` e.g. {"v1": {"p50": 12.0}}."""
    out = Text()
    if title:
        out.append(title + "\n", style="bold")
    n_bins = len(edges) - 1
    if not counts or n_bins <= 0:
        out.append("(nothing to plot)\n", style="dim")
        return out
    name_w = min(24, max(len(inert_text(n)) for n in counts))
    cols = max(10, min(n_bins, width - name_w - 3))
    for i, (name, raw) in enumerate(counts.items()):
        colour = PALETTE[i % len(PALETTE)]
        merged = _merge_bins(list(raw), cols)
        peak = max(merged) or 1
        levels = [c / peak * height * 8 for c in merged]
        for row in range(height):
            label = inert_text(name, max_len=name_w) if row == height - 1 else ""
            out.append(label.rjust(name_w) + " │", style="bold" if label else "dim")
            floor = (height - 1 - row) * 8
            bar = "".join(
                _BLOCKS[max(0, min(8, math.ceil(lv - floor)))] if lv > floor else " " for lv in levels
            )
            out.append(bar + "\n", style=colour)
        marks = (markers or {}).get(name, {})
        if marks:
            line = [" "] * cols
            for label, value in marks.items():
                pos = _bin_of(edges, value, n_bins) * cols // n_bins
                for j, ch in enumerate("▲" + label):
                    if pos + j < cols and line[pos + j] == " ":
                        line[pos + j] = ch
            out.append(" " * name_w + " │" + "".join(line) + "\n", style="dim")
        out.append(" " * name_w + f" │ peak {peak:,} requests per bar\n", style="dim")
    lo, hi = fmt_axis_ms(edges[0]), fmt_axis_ms(edges[-1])
    mid = fmt_axis_ms(math.sqrt(edges[0] * edges[-1])) if edges[0] > 0 else ""
    inner = max(1, cols - len(lo) - len(hi) - len(mid))
    axis = lo + " " * (inner // 2) + mid + " " * (inner - inner // 2) + hi
    out.append(" " * name_w + " └" + "─" * cols + "\n", style="dim")
    out.append(" " * (name_w + 2) + axis + "  (log scale)\n", style="dim")
    return out


def _merge_bins(counts: list[int], cols: int) -> list[int]:
    if len(counts) <= cols:
        return counts
    merged = [0] * cols
    for i, c in enumerate(counts):
        merged[i * cols // len(counts)] += c
    return merged


def _bin_of(edges: Sequence[float], value: float, n_bins: int) -> int:
    for i in range(n_bins):
        if value < edges[i + 1]:
            return i
    return n_bins - 1
