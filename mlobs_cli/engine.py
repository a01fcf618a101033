"""Engine: read sources as partitions, `parse a partition -> partial -> merge -> finalize`.

A partition is a whole source or a byte range of a large plain file (cut at a line start). Parsing one
gives a `Partial`: the pre-finish frames of the events it holds (only the kinds and request fields the
command needs), its skip reports, field statistics and physical line count. Partials merge in input
order (line numbers shifted) into one `FrameBuilder`, which finalizes the `Dataset`. The two-core cold
path shares the byte ranges of a large file with one forked worker (`parallel.py`); the cache
(`cache.py`) stores partials of byte ranges; a cluster would only change who runs the partitions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlobs_cli.config import Settings
from mlobs_cli.records import FieldStats, RecordParser, SkipReport, paused_gc
from mlobs_cli.request_columns import ColumnBatches
from mlobs_cli.scan import feed_blocks, summary_needles
from mlobs_cli.sources import (
    RangeReader,
    Source,
    TruncatedInputError,
    iter_raw_blocks,
    open_source,
)

if TYPE_CHECKING:
    from mlobs_cli.frame import Dataset, FrameBuilder

ALL_KINDS = frozenset({"requests", "milestones", "spans"})
PARALLEL_MIN_BYTES = 48 * 1024 * 1024  # below this, a second process costs more than it saves
RANGE_BYTES = 12 * 1024 * 1024  # a unit of work for the two processes reading one large file
CHUNK_EVENTS = 65_536  # raw rows held before they are typed into compact columns


@dataclass(frozen=True)
class Need:
    """What a command needs from the logs, so that the engine reads no more than that.

    `kinds`: event kinds to keep (None: all). `fields`: request columns beyond the always-kept
    ones (None: all). `prefilter`: leave out lines that cannot be request summaries (only used when
    `kinds` is exactly requests; see `scan`); when no summary is found at all, the input is read again
    in full so that requests can be made from spans or stage events.
    """

    kinds: frozenset[str] | None = None
    fields: frozenset[str] | None = None
    prefilter: bool = False

    @classmethod
    def requests(cls, fields: list[str] | set[str] | None = None, *, prefilter: bool = True) -> Need:
        return cls(frozenset({"requests"}), None if fields is None else frozenset(fields), prefilter)

    @property
    def filters(self) -> bool:
        return self.prefilter and self.kinds == frozenset({"requests"})


EVERYTHING = Need()


@dataclass
class Partial:
    """The parsed content of one partition: pre-finish frames plus what the parser counted."""

    builder: FrameBuilder  # or, from a worker reading summaries only, `ColumnBatches` until merged
    skipped: SkipReport
    stats: FieldStats
    records: int  # records read (a multi-line object counts once): `Dataset.lines`
    physical_lines: int
    open_state: bool = False  # ended inside a multi-line object or a split envelope line
    source_order: dict[str, int] = field(default_factory=dict)

    def shift(self, offset: int) -> None:
        """Renumber lines: the partition started `offset` lines into its source."""
        if not offset:
            return
        for report in (self.skipped, self.builder.extra_skips):
            report.examples = [(s, n + offset, r) for s, n, r in report.examples]
        for frames in (self.builder._requests, self.builder._milestones, self.builder._spans):
            for frame in frames:
                frame["line"] += offset


def _new_parser(settings: Settings, need: Need) -> RecordParser:
    return RecordParser(settings.overrides, keep=need.kinds, fields=need.fields)


def parse_stream(
    parser: RecordParser,
    builder: FrameBuilder,
    name: str,
    stream: object,
    settings: Settings,
    need: Need,
    *,
    first_line_no: int = 1,
    last: bool = True,
    sink: Callable[[FrameBuilder], None] | None = None,
) -> int:
    """Parse one stream into `parser`/`builder`; returns the physical lines read.

    `sink`, when given, receives the builder after every chunk of events (e.g. to write its frames
    to the cache and drop them), so memory stays bounded whatever the input size."""
    needles = summary_needles(settings.overrides) if need.filters else None

    def flush() -> None:
        if parser.pending_events >= CHUNK_EVENTS:
            builder.add(parser.take())
            if sink is not None:
                sink(builder)

    blocks = iter_raw_blocks(stream, max_line_bytes=settings.max_line_bytes)  # type: ignore[arg-type]
    line_no = first_line_no
    try:
        line_no = feed_blocks(
            parser,
            name,
            blocks,
            needles=needles,
            max_line_bytes=settings.max_line_bytes,
            first_line_no=first_line_no,
            on_block=flush,
        )
        if last:
            parser.finish_source(name)
    except TruncatedInputError:
        parser.finish_source(name, truncated=True, line_no=line_no)
    return line_no - first_line_no


def parse_partition(
    source: Source,
    settings: Settings,
    need: Need,
    start: int = 0,
    end: int | None = None,
    *,
    last: bool = True,
    sink: Callable[[FrameBuilder], None] | None = None,
    frames: bool = True,
) -> Partial:
    """Parse a whole source, or bytes `[start, end)` of a plain file, into a `Partial`.

    With `sink`, frames go to the sink chunk by chunk and the partial keeps none of them. With
    `frames=False` (summaries only), the partial holds numpy columns (`ColumnBatches`), not frames,
    and pandas is not imported."""
    parser = _new_parser(settings, need)
    builder: FrameBuilder | ColumnBatches
    if frames or not columns_only(need):
        from mlobs_cli.frame import FrameBuilder

        builder = FrameBuilder()
    else:
        builder = ColumnBatches()
    if end is None:
        stream = open_source(source)
    else:
        assert source.path is not None
        stream = RangeReader(source.path, start, end)
    try:
        with paused_gc():  # millions of acyclic rows: a collection would walk them all, again and again
            physical = parse_stream(
                parser, builder, source.name, stream, settings, need, last=last, sink=sink
            )
    finally:
        stream.close()  # type: ignore[attr-defined]
    open_state = parser.in_open_state(source.name)
    builder.add(parser.take())
    if sink is not None:
        sink(builder)
    return Partial(builder, parser.skipped, parser.stats, parser.lines, physical, open_state)


def columns_only(need: Need) -> bool:
    """Whether partials may hold numpy columns instead of frames (summaries only: see `parallel`)."""
    return need.kinds == frozenset({"requests"})


def _can_split(source: Source) -> bool:
    if source.path is None or (os.cpu_count() or 1) < 2 or not hasattr(os, "fork"):
        return False
    if threading.active_count() > 1:  # forking a threaded process can deadlock the child
        return False
    try:
        if source.path.stat().st_size < PARALLEL_MIN_BYTES:
            return False
        with open(source.path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return False
    return not (head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")))


def partials_of(source: Source, settings: Settings, need: Need, *, parallel: bool = True) -> list[Partial]:
    """Parse one source as one partition, or as byte ranges in two processes (a large plain file)."""
    if parallel and _can_split(source):
        from mlobs_cli.parallel import byte_ranges, parallel_partials

        assert source.path is not None
        ranges = byte_ranges(source.path, RANGE_BYTES)
        parts = parallel_partials(source, settings, need, ranges) if len(ranges) > 1 else None
        if parts is not None:
            return parts
    return [parse_partition(source, settings, need)]


def merge_partials(
    partials: list[Partial], settings: Settings, need: Need
) -> tuple[RecordParser, FrameBuilder]:
    """One parser state and one builder holding every partial, in input order."""
    from mlobs_cli.frame import FrameBuilder

    parser = _new_parser(settings, need)
    builder = FrameBuilder()
    for part in partials:
        parser.skipped.merge(part.skipped)
        parser.stats.merge(part.stats)
        parser.lines += part.records
        builder.absorb(part.builder)
    builder.compact_requests()
    return parser, builder


def dataset_from_sources(
    specs: list[str],
    settings: Settings | None = None,
    need: Need = EVERYTHING,
    *,
    parallel: bool = True,
    use_cache: bool = True,
    build_cache: bool | None = None,
) -> Dataset:
    """Read every source as partitions, merge the partials, and finish the `Dataset`.

    With `use_cache` (and the cache enabled), files with a cache entry are read from it (appended
    bytes parsed and stored); `build_cache` (default: when everything is needed) also creates
    entries for files that have none. Otherwise a file is parsed cold, reading only what `need` asks.
    """
    from mlobs_cli import cache
    from mlobs_cli.sources import expand_sources, take_notes

    settings = settings or Settings()
    if build_cache is None:
        build_cache = need.kinds is None and need.fields is None
    take_notes()
    sources = expand_sources(specs)
    notes = take_notes()
    partials: list[Partial] = []
    for source in sources:
        found = cache.cached_partials(source, settings, need, build=build_cache) if use_cache else None
        if found is not None:
            partials.extend(found[0])
        else:
            partials.extend(partials_of(source, settings, need, parallel=parallel))
    parser, builder = merge_partials(partials, settings, need)
    for i, source in enumerate(sources):
        parser._source_order.setdefault(source.name, i)
    data = builder.finish(parser)
    data.notes = notes
    if need.filters and data.requests_from == "summaries" and data.requests.empty and data.lines:
        # No summary at all: requests come from spans or stage events, which need every line.
        return dataset_from_sources(specs, settings, EVERYTHING, parallel=parallel, use_cache=use_cache)
    return data
