"""Choose the requests a command looks at: `--since`/`--until` time bounds and a `--where` filter.

Bounds are half-open, `since <= ts < until`; relative bounds (`15m`) count back from the newest
request. With a bound, requests without a timestamp cannot be placed in time and are left out.
"""

from __future__ import annotations

import pandas as pd

from mlobs_cli.analysis.where import Where
from mlobs_cli.durations import parse_time_bound


def select_requests(
    requests: pd.DataFrame,
    *,
    since: str | None = None,
    until: str | None = None,
    where: Where | None = None,
) -> pd.DataFrame:
    """The rows of `requests` inside the time bounds that match `where` (index kept)."""
    if since is None and until is None and where is None:
        return requests
    mask = pd.Series(True, index=requests.index)
    if since is not None or until is not None:
        ts = requests["ts"]
        newest = ts.max() if len(ts) else pd.NaT
        if since is not None:
            mask &= (ts >= parse_time_bound(since, newest)).fillna(False).astype(bool)
        if until is not None:
            mask &= (ts < parse_time_bound(until, newest)).fillna(False).astype(bool)
    if where is not None:
        mask &= where.mask(requests)
    return requests[mask]
