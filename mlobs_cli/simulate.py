"""A deterministic generator of the JSON-lines logs of the seed recommendation service.

`iter_log_chunks(config)` yields the log as bytes, in time order across all requests, one chunk at a
time (memory does not grow with the request count). Lines are built as numpy byte matrices, one
fixed-layout group at a time, so the generator stays vectorized; no per-request Python code runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from mlobs_cli import linebytes as lb
from mlobs_cli.errors import UsageError
from mlobs_cli.linebytes import US_PER_S

CHUNK = 16384  # requests generated per batch
US_PER_H = 3_600 * US_PER_S
INFERENCE_TIMEOUT_MS = 1_000.0
# (error name, HTTP status, share of the errors). All of them are raised by the inference step.
ERROR_KINDS: tuple[tuple[str, int, float], ...] = (
    ("InferenceTimeout", 503, 0.40),
    ("ModelRuntimeError", 500, 0.35),
    ("CUDAOutOfMemoryError", 500, 0.15),
    ("ModelUnavailable", 503, 0.10),
)
RECOMMENDATION_COUNTS = (3, 5, 10)
RECOMMENDATION_SHARES = (0.15, 0.70, 0.15)
FAST_PATH_MISS_SHARE = 0.03  # feature-cache misses the backing store still answers fast
PODS_PER_VERSION = 3
MAX_STEP_MS = 3_600_000.0  # a feature fetch or an inference never lasts more than an hour
LAST_US = 253_402_300_799_000_000 - 3 * 3_600 * US_PER_S  # 9999-12-31T23:59:59Z minus 3 steps
CATALOG_SIZE = 20_000  # items item_10000 ... item_29999
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_POD_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for pod suffixes


@dataclass(frozen=True)
class LatencyDist:
    """An inference-latency distribution in ms: `uniform`, `lognormal`, `normal` or `const`."""

    kind: str
    params: tuple[float, ...]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        if self.kind == "uniform":
            return rng.uniform(p[0], p[1], n)
        if self.kind == "lognormal":
            return rng.lognormal(np.log(p[0]), p[1], n)
        if self.kind == "normal":
            return rng.normal(p[0], p[1], n)
        return np.full(n, p[0], dtype=np.float64)


# The seed service sleeps random.uniform(0.05, 0.2) s; v2.1 gets a lognormal with a heavier tail.
DEFAULT_LATENCY = {
    "v2.0": LatencyDist("uniform", (50.0, 200.0)),
    "v2.1": LatencyDist("lognormal", (90.0, 0.45)),
}
FALLBACK_LATENCY = LatencyDist("uniform", (50.0, 200.0))


@dataclass(frozen=True)
class Slowdown:
    """Make one version slower: inference ms * factor + add_ms."""

    version: str
    factor: float = 1.0
    add_ms: float = 0.0


@dataclass(frozen=True)
class Spike:
    """Between start_us and start_us + duration_us (epoch µs), latencies and error rate * factor."""

    start_us: int
    duration_us: int
    factor: float


@dataclass(frozen=True)
class Drift:
    """A linear drift of one version's inference latency, in ms per hour since the start."""

    version: str
    ms_per_hour: float


@dataclass(frozen=True)
class SimConfig:
    requests: int = 10_000
    rate: float = 50.0
    start: datetime = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)
    versions: tuple[tuple[str, float], ...] = (("v2.1", 1.0),)
    latency: dict[str, LatencyDist] = field(default_factory=dict)
    slowdowns: tuple[Slowdown, ...] = ()
    error_rate: float = 0.005
    slow_features: float = 0.0
    spikes: tuple[Spike, ...] = ()
    drifts: tuple[Drift, ...] = ()
    seed: int | None = None
    stages: bool = True

    def latency_for(self, version: str) -> LatencyDist:
        return self.latency.get(version) or DEFAULT_LATENCY.get(version) or FALLBACK_LATENCY


def epoch_us(moment: datetime) -> int:
    delta = moment.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def host_names(version: str) -> list[str]:
    """Stable pod names of a version's deployment, like `predict-7c9d-x4kqz`."""
    digest = hashlib.sha256(version.encode()).digest()
    names = []
    for pod in range(PODS_PER_VERSION):
        suffix = "".join(_POD_ALPHABET[b % len(_POD_ALPHABET)] for b in digest[8 + 5 * pod :][:5])
        names.append(f"predict-{digest[:2].hex()}-{suffix}")
    return names


# ----------------------------------------------------------------------------- the request model


@dataclass
class _Batch:
    t: np.ndarray  # (n, 4) int64 epoch µs: received, features fetched, inference end, response sent
    version: np.ndarray  # int index into config.versions
    failed: np.ndarray  # bool
    error_kind: np.ndarray  # int index into ERROR_KINDS (meaningful where failed)
    cache_miss: np.ndarray  # bool
    user: np.ndarray
    rec_count: np.ndarray  # index into RECOMMENDATION_COUNTS
    items: np.ndarray  # (n, max count) indices into the item catalog
    host: np.ndarray  # int index into the version's pods
    ids: np.ndarray  # (n, 24) uint8 random bytes: 8 request id, 16 trace id


def _recommended_items(rng: np.random.Generator, n: int) -> np.ndarray:
    """Catalog indices; popular (low) items are recommended more often."""
    shares = rng.random((n, max(RECOMMENDATION_COUNTS)))
    return (CATALOG_SIZE * shares * shares).astype(np.int64)


def _simulate(cfg: SimConfig, rng: np.random.Generator, arrivals: np.ndarray) -> _Batch:
    with np.errstate(over="ignore", invalid="ignore"):  # huge factors saturate at MAX_STEP_MS
        return _simulate_batch(cfg, rng, arrivals)


def _simulate_batch(cfg: SimConfig, rng: np.random.Generator, arrivals: np.ndarray) -> _Batch:
    n = len(arrivals)
    start = epoch_us(cfg.start)
    weights = np.array([w for _, w in cfg.versions], dtype=np.float64)
    version = rng.choice(len(weights), n, p=weights / weights.sum())
    inference = np.empty(n)
    for i, (name, _) in enumerate(cfg.versions):
        mask = version == i
        inference[mask] = cfg.latency_for(name).sample(rng, int(mask.sum()))
    hours = (arrivals - start) / US_PER_H
    for i, (name, _) in enumerate(cfg.versions):
        mask = version == i
        for slow in cfg.slowdowns:
            if slow.version == name:
                inference[mask] = inference[mask] * slow.factor + slow.add_ms
        for drift in cfg.drifts:
            if drift.version == name:
                inference[mask] += drift.ms_per_hour * hours[mask]
    # Feature fetch: a cache hit takes ~1-4 ms; the slow path (cache miss to the store) 40-120 ms.
    slow = rng.random(n) < cfg.slow_features
    fetch = np.clip(rng.lognormal(np.log(2.0), 0.3, n), 0.8, 6.0)
    fetch[slow] = rng.uniform(40.0, 120.0, int(slow.sum()))
    cache_miss = slow | (rng.random(n) < FAST_PATH_MISS_SHARE)
    factor = np.ones(n)
    for spike in cfg.spikes:
        inside = (arrivals >= spike.start_us) & (arrivals < spike.start_us + spike.duration_us)
        factor[inside] *= spike.factor
    inference *= factor
    fetch *= factor
    failed = rng.random(n) < np.minimum(cfg.error_rate * factor, 1.0)
    shares = np.array([s for _, _, s in ERROR_KINDS])
    error_kind = rng.choice(len(ERROR_KINDS), n, p=shares / shares.sum())
    timeout = failed & (error_kind == 0)
    inference[timeout] = INFERENCE_TIMEOUT_MS + rng.uniform(0.0, 5.0, int(timeout.sum()))
    crash = failed & ~timeout
    inference[crash] *= rng.uniform(0.05, 1.0, int(crash.sum()))
    pre = rng.uniform(0.2, 0.8, n)  # parse the request before fetching features
    post = rng.uniform(0.1, 0.6, n)  # serialize the response
    inference = np.clip(np.nan_to_num(inference, nan=MAX_STEP_MS), 0.5, MAX_STEP_MS)
    fetch = np.clip(np.nan_to_num(fetch, nan=MAX_STEP_MS), 0.0, MAX_STEP_MS)
    steps = np.stack([pre + fetch, inference, post], axis=1)
    steps_us = np.maximum(np.rint(steps * 1000.0).astype(np.int64), 1)
    t = np.empty((n, 4), dtype=np.int64)
    t[:, 0] = arrivals
    t[:, 1:] = arrivals[:, None] + np.cumsum(steps_us, axis=1)
    return _Batch(
        t=t,
        version=version,
        failed=failed,
        error_kind=error_kind,
        cache_miss=cache_miss,
        user=rng.integers(10_000, 100_000, n),
        rec_count=rng.choice(len(RECOMMENDATION_COUNTS), n, p=RECOMMENDATION_SHARES),
        items=_recommended_items(rng, n),
        host=rng.integers(0, PODS_PER_VERSION, n),
        ids=np.frombuffer(rng.bytes(24 * n), dtype=np.uint8).reshape(n, 24),
    )


# ----------------------------------------------------------------------------- lines


def _int_widths(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.floor(np.log10(np.maximum(values, 1))).astype(np.int64) + 1, 1)


def _ms_text(us: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """µs counts -> right-aligned `<ms>.<3 decimals>` in an (n, 4 + max width) matrix."""
    top = int(widths.max(initial=1))
    out = np.empty((len(us), top + 4), dtype=np.uint8)
    out[:, :top] = lb.decimal(us // 1000, top)
    out[:, top] = ord(".")
    out[:, top + 1 :] = lb.decimal(us % 1000, 3)
    return out


class _Renderer:
    """Builds the lines of one batch; constant parts are prepared once."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        names = [h.encode() for v, _ in cfg.versions for h in host_names(v)]
        hosts = np.frombuffer(b"".join(names), dtype=np.uint8).reshape(len(names), -1)
        self.hosts = lb.void_rows(hosts.copy())
        catalog = "".join(f'"item_{10_000 + i}",' for i in range(CATALOG_SIZE)).encode()
        self.catalog = lb.void_rows(np.frombuffer(catalog, dtype=np.uint8).reshape(-1, 13).copy())

    def render(self, b: _Batch, first: int) -> list[lb.LineSet]:
        """Line sets of the batch; `first` is the global index of its first request."""
        n = len(b.version)
        seq = (first + np.arange(n, dtype=np.int64)) * 5
        ids = lb.hexdigits(b.ids)  # 16 hex request id, then 32 hex trace id
        rid, trace = lb.void_rows(ids, 0, 16), lb.void_rows(ids, 16, 32)
        ts_sent = lb.void_rows(lb.timestamps(b.t[:, 3]))
        sets = self._summaries(b, rid, trace, ts_sent, seq + 4)
        if not self.cfg.stages:
            return sets
        events = ("request_received", "features_fetched", "inference_done", "response_sent")
        for col, event in enumerate(events):
            ts = ts_sent if col == 3 else lb.void_rows(lb.timestamps(b.t[:, col]))
            groups = b.version * 2 + (b.failed if col == 2 else 0)
            for key in np.unique(groups):
                idx = np.flatnonzero(groups == key)
                failed = bool(key % 2)
                name = "inference_failed" if failed else event
                parts = [
                    '{"ts":"', ts,
                    f'","level":"{"error" if failed else "info"}","event":"{name}",'
                    '"request_id":"req-', rid, '","trace_id":"', trace,
                    f'","model_version":"{self.cfg.versions[key // 2][0]}"}}\n',
                ]  # fmt: skip
                lines = lb.assemble(parts, idx, len(idx))
                sets.append(lb.LineSet(lines, b.t[idx, col], seq[idx] + col))
        return sets

    def _summaries(
        self, b: _Batch, rid: np.ndarray, trace: np.ndarray, ts: np.ndarray, seq: np.ndarray
    ) -> list[lb.LineSet]:
        n, top = b.items.shape
        lat_us, inf_us = b.t[:, 3] - b.t[:, 0], b.t[:, 2] - b.t[:, 1]
        lat_w, inf_w = _int_widths(lat_us // 1000), _int_widths(inf_us // 1000)
        lat, inf = _ms_text(lat_us, lat_w), _ms_text(inf_us, inf_w)
        # The ms numbers of each digit count, and the prediction lists of each length.
        lat_v = {w: lb.void_rows(lat, lat.shape[1] - 4 - w, w + 4) for w in np.unique(lat_w)}
        inf_v = {w: lb.void_rows(inf, inf.shape[1] - 4 - w, w + 4) for w in np.unique(inf_w)}
        items = self.catalog[b.items].view(np.uint8).reshape(n, top * 13)
        items_v = {c: lb.void_rows(items, 0, c * 13 - 1) for c in RECOMMENDATION_COUNTS}
        user = lb.void_rows(lb.decimal(b.user, 5))
        hosts = self.hosts[b.version * PODS_PER_VERSION + b.host]
        kind = np.where(b.failed, b.error_kind + 1, 0)
        # One group per line layout; the ms numbers have at most 8 digits (steps <= MAX_STEP_MS).
        key = (((b.version * 5 + kind) * 3 + b.rec_count) * 2 + b.cache_miss) * 16 + lat_w
        key = key * 16 + inf_w
        order = np.argsort(key, kind="stable")
        sets = []
        for idx in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
            i = idx[0]
            v, k, miss = int(b.version[i]), int(kind[i]), bool(b.cache_miss[i])
            count = RECOMMENDATION_COUNTS[b.rec_count[i]]
            if k:
                name, status, _ = ERROR_KINDS[k - 1]
                tail = [f',"status":{status},"error":"{name}","predictions":[]']
            else:
                tail = [',"status":200,"predictions":[', items_v[count], "]"]
            parts = [
                '{"ts":"', ts,
                f'","level":"{"error" if k else "info"}","event":"prediction","request_id":"req-',
                rid, '","trace_id":"', trace,
                f'","model_version":"{self.cfg.versions[v][0]}","user_id":"user_', user,
                f'","num_recommendations":{count},"latency_ms":', lat_v[lat_w[i]],
                ',"inference_ms":', inf_v[inf_w[i]], *tail, ',"host":"', hosts,
                f'","route":"/predict","feature_cache":"{"miss" if miss else "hit"}"}}\n',
            ]  # fmt: skip
            lines = lb.assemble(parts, idx, len(idx))
            sets.append(lb.LineSet(lines, b.t[idx, 3], seq[idx]))
        return sets


# ----------------------------------------------------------------------------- time-ordered stream


def iter_log_chunks(cfg: SimConfig) -> Iterator[memoryview]:
    """Yield the whole log as byte chunks; lines are sorted by time across requests.

    Arrivals come from their own random stream, one batch ahead, so each batch knows the first
    arrival of the next one: every line before it is final, the rest waits for the next merge.
    """
    arrivals_seq, model_seq = np.random.SeedSequence(cfg.seed).spawn(2)
    arrival_rng, rng = np.random.default_rng(arrivals_seq), np.random.default_rng(model_seq)
    renderer = _Renderer(cfg)
    start = epoch_us(cfg.start)
    clock = 0.0  # seconds since start, float, carried across batches

    def next_arrivals(count: int) -> np.ndarray:
        nonlocal clock
        offsets = clock + np.cumsum(arrival_rng.exponential(1.0 / cfg.rate, count))
        if count:
            clock = float(offsets[-1])
            if start + clock * US_PER_S > LAST_US:
                raise UsageError(
                    "the simulated traffic would run past the year 9999",
                    "raise --rate, lower --requests or move --start",
                )
        return start + np.rint(offsets * US_PER_S).astype(np.int64)

    held: list[lb.LineSet] = []
    done = 0
    arrivals = next_arrivals(min(CHUNK, cfg.requests))
    while len(arrivals):
        upcoming = next_arrivals(min(CHUNK, cfg.requests - done - len(arrivals)))
        sets = renderer.render(_simulate(cfg, rng, arrivals), done)
        before = int(upcoming[0]) if len(upcoming) else None
        chunk, held = lb.write_sorted(held + sets, before)
        yield chunk
        done += len(arrivals)
        arrivals = upcoming
