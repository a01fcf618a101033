"""Synthetic request frames with exactly the dtypes of docs/DESIGN.md (for analysis unit tests)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def requests_frame(
    latency_ms: Sequence[float],
    *,
    versions: Sequence[str] | None = None,
    ts: Sequence[object] | None = None,
    status: Sequence[object] | None = None,
    error: Sequence[bool] | None = None,
    inference_ms: Sequence[float] | None = None,
    extra: dict[str, Sequence[object]] | None = None,
) -> pd.DataFrame:
    """A `requests` frame: ts datetime64[ns, UTC], model_version category, status Int64, ..."""
    n = len(latency_ms)
    if ts is None:
        start = pd.Timestamp("2026-11-26T10:00:00Z")
        ts = [start + pd.Timedelta(seconds=i) for i in range(n)]
    status_arr = pd.array(list(status) if status is not None else [200] * n, dtype="Int64")
    if error is None:
        error = (status_arr.fillna(0) >= 500).to_numpy(dtype=bool)
    frame = pd.DataFrame(
        {
            "ts": pd.Series(pd.to_datetime(list(ts), utc=True), dtype="datetime64[ns, UTC]"),
            "request_id": [f"req-{i}" for i in range(n)],
            "trace_id": [f"{i:032x}" for i in range(n)],
            "model_version": pd.Categorical(list(versions) if versions is not None else ["v1"] * n),
            "latency_ms": np.asarray(latency_ms, dtype=np.float64),
            "inference_ms": np.asarray(
                inference_ms if inference_ms is not None else [np.nan] * n, dtype=np.float64
            ),
            "status": status_arr,
            "error": np.asarray(error, dtype=bool),
            "source": pd.Categorical(["app.log"] * n),
            "line": np.arange(1, n + 1, dtype=np.int64),
        }
    )
    for key, values in (extra or {}).items():
        frame[key] = list(values)
    return frame
