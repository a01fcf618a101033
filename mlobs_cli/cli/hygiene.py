"""After loading: count true duplicate lines once, and say so on stderr when the input is odd.

Every command calls `tidy_dataset` right after `load_dataset`. It drops summaries, stage events and
spans that repeat an earlier one exactly (see `analysis/duplicates.py`), keeps requests that merely
share an id, and notes on stderr (never stdout) duplicates, clock jumps and times in the future
(`analysis/clock.py`). The reports are kept on the dataset for `mlobs schema`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlobs_cli.frame import Dataset


def tidy_dataset(data: Dataset, *, quiet: bool = False) -> Dataset:
    """Drop exact duplicates from `data` (in place), attach the reports, and note oddities."""
    from mlobs_cli.analysis.clock import clock_report
    from mlobs_cli.analysis.duplicates import duplicate_report

    dups, req_mask, ms_mask, sp_mask = duplicate_report(data.requests, data.milestones, data.spans)
    if req_mask.any():
        data.requests = data.requests.loc[~req_mask].reset_index(drop=True)
    if ms_mask is not None and ms_mask.any():
        data.milestones = data.milestones.loc[~ms_mask].reset_index(drop=True)
    if sp_mask is not None and sp_mask.any():
        data.spans = data.spans.loc[~sp_mask].reset_index(drop=True)
    clock = clock_report(data.requests)
    for name, value in (("duplicates", dups), ("clock", clock)):
        try:
            setattr(data, name, value)
        except AttributeError:  # a Dataset with __slots__: `reports_of` recomputes them
            pass
    if not quiet:
        note_oddities(dups, clock)
    return data


def note_oddities(dups: Any, clock: Any) -> None:
    """Say on stderr what the duplicate and clock reports found (nothing when all is well)."""
    from mlobs_cli.analysis.clock import CLOCK_JUMP
    from mlobs_cli.terminal import warn

    if dups.true_duplicates:
        examples = ", ".join(dups.examples_true[:3])
        warn(
            f"note: duplicate lines: {dups.true_duplicates:,} request summaries (e.g. {examples}) "
            "counted once"
        )
    if dups.duplicate_events:
        warn(f"note: duplicate lines: {dups.duplicate_events:,} stage events/spans counted once")
    if dups.reused_ids:
        warn(
            f"note: {dups.reused_ids:,} request id(s) appear on {dups.reused_rows:,} different summaries "
            f"(e.g. {', '.join(dups.examples_reused[:3])}): kept as separate requests"
        )
    if clock.clock_jumps:
        warn(
            f"note: time goes back by more than {CLOCK_JUMP.total_seconds():g} s {clock.clock_jumps:,} "
            f"time(s) within a file (largest {clock.largest_step_back_s:,.3f} s, first at "
            f"{clock.first_jump}): times are used as logged"
        )
    if clock.future:
        warn(
            f"note: {clock.future:,} request(s) are timestamped in the future (first at "
            f"{clock.first_future}): times are used as logged"
        )


def reports_of(data: Dataset) -> tuple[Any, Any]:
    """The duplicate and clock reports `tidy_dataset` attached (recomputed when it could not)."""
    from mlobs_cli.analysis.clock import clock_report
    from mlobs_cli.analysis.duplicates import duplicate_report

    dups = getattr(data, "duplicates", None)
    clock = getattr(data, "clock", None)
    if dups is None:
        dups = duplicate_report(data.requests, data.milestones, data.spans)[0]
    if clock is None:
        clock = clock_report(data.requests)
    return dups, clock
