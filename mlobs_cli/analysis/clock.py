"""Clock oddities of request summaries: times out of log order, backward clock jumps, future times.

Pure functions on the requests frame. Times are used as logged (mlobs never reorders or corrects
them); this only measures how far they stray so that commands can say so. Order is judged within one
source (files from different hosts interleave in time by design).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

CLOCK_JUMP = pd.Timedelta(seconds=1)  # a step back in time larger than this is a clock jump
FUTURE_SLACK = pd.Timedelta(minutes=5)  # later than now + this is "in the future"


@dataclass
class ClockReport:
    """Counts of times that go backwards within a source, clock jumps, and times in the future."""

    out_of_order: int = 0  # summaries logged earlier than the one before them in the same source
    clock_jumps: int = 0  # ... by more than CLOCK_JUMP
    largest_step_back_s: float = 0.0
    first_jump: str | None = None  # `source:line` of the first clock jump
    future: int = 0  # summaries timestamped after now + FUTURE_SLACK
    first_future: str | None = None
    no_time: int = 0  # summaries without a usable time (NaT)

    @property
    def notable(self) -> bool:
        return bool(self.clock_jumps or self.future)

    def as_dict(self) -> dict[str, object]:
        return {
            "out_of_order": self.out_of_order,
            "clock_jumps": self.clock_jumps,
            "largest_step_back_s": self.largest_step_back_s,
            "first_clock_jump": self.first_jump,
            "in_the_future": self.future,
            "first_in_the_future": self.first_future,
            "without_time": self.no_time,
        }


def clock_report(requests: pd.DataFrame, now: pd.Timestamp | None = None) -> ClockReport:
    """Measure the clock oddities of `requests` (columns `ts`, `source`, `line`)."""
    report = ClockReport()
    if requests.empty or "ts" not in requests.columns:
        return report
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    ts = requests["ts"]
    report.no_time = int(ts.isna().sum())
    future = ts > now + FUTURE_SLACK
    report.future = int(future.sum())
    if report.future:
        first = requests.loc[future].iloc[0]
        report.first_future = f"{first['source']}:{first['line']}"
    if "source" in requests.columns:
        step = ts.groupby(requests["source"], observed=True, sort=False).diff()
    else:
        step = ts.diff()
    back = step < pd.Timedelta(0)
    report.out_of_order = int(back.sum())
    if report.out_of_order:
        jumps = step < -CLOCK_JUMP
        report.clock_jumps = int(jumps.sum())
        report.largest_step_back_s = round(float(-step[back].min().total_seconds()), 6)
        if report.clock_jumps:
            first = requests.loc[jumps].iloc[0]
            report.first_jump = f"{first['source']}:{first['line']}"
    return report
