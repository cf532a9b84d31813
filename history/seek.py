"""The book at any recorded moment, and frames rebuilt from the recording.

Both start the same way: the last member of the raw segments (docs/recording.md)
that begins with a checkpoint at or before the moment; the checkpoint is loaded
into a fresh validator (in sync at its update id), then the recorded events after it
are applied through the same sync code as live data (a gap or a restart in between
makes it resync from the next recorded snapshot, exactly as it did live). Only that
member and the ones after it are decompressed, and a seek decodes only their lines
that rebuild the book (checkpoints, depth events, snapshots); the bookTickers and
trades between them are passed over by their receive time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sortedcontainers import SortedDict

from config import Settings, SymbolSpec
from data_ingestion.feed import SymbolFeed
from data_ingestion.recording import (
    BOOK_KINDS,
    CHECKPOINT,
    BookCheckpointLine,
    IndexEntry,
    ReadStats,
    RecordedMessage,
    index_path,
    read_index,
    read_member,
    read_member_until,
    segments_of,
    symbol_dir,
)
from features.engine import SymbolFeatures
from features.frame import Frame, HistoryState
from features.frame import encode as encode_frame
from orderbook.book_state import BookState, MalformedLevel
from orderbook.sequence_validator import SequenceValidator, SyncState
from wire.binance import AggTrade, DepthSnapshot, DepthUpdate, Trade

log = logging.getLogger("history")

COVERAGE_JOIN_S = 2.0  # members of one run closer than this read as one covered range
HOUR_NS = 3_600_000_000_000
_NEVER_NS = 1 << 63  # a moment after every receive time


@dataclass(frozen=True, slots=True)
class Member:
    """One gzip member of a segment: about a minute of one symbol."""

    segment: Path
    offset: int
    length: int | None  # None: the segment's unindexed tail (still written, or cut by a crash)
    t0_ns: int
    t1_ns: int
    checkpoint_u: int | None
    cut: bool = False  # the tail ends in an incomplete member and no one writes it: cut short by a crash


# Index entries of the segments seen, kept while their index file keeps its size
# and modification time: an index only grows, by whole lines.
_indexes: dict[Path, tuple[tuple[int, int], list[IndexEntry]]] = {}
_indexes_lock = threading.Lock()


def _index_of(segment: Path) -> list[IndexEntry]:
    """:func:`read_index` of ``segment``, read again only when its index has changed."""
    try:
        st = index_path(segment).stat()
    except FileNotFoundError:
        with _indexes_lock:
            _indexes.pop(segment, None)
        return []
    stamp = (st.st_size, st.st_mtime_ns)
    with _indexes_lock:
        known = _indexes.get(segment)
    if known is not None and known[0] == stamp:
        return known[1]
    entries = read_index(segment)
    with _indexes_lock:
        _indexes[segment] = (stamp, entries)
    return entries


def _forget_indexes(directory: Path, kept: list[Path]) -> None:
    """Drop the kept indexes of ``directory``'s segments that are gone (retention)."""
    keep = set(kept)
    with _indexes_lock:
        for seg in [p for p in _indexes if p.parent == directory and p not in keep]:
            del _indexes[seg]


# Segments found cut short, by path, with the size they had: each is logged once
# (again only if it changes), not on every coverage poll, seek or history client.
_cut_reported: dict[Path, int] = {}


def _report_cut(segment: Path, size: int) -> None:
    with _indexes_lock:
        if _cut_reported.get(segment) == size:
            return
        _cut_reported[segment] = size
    log.warning("%s: ends in an incomplete gzip member (cut short, e.g. by a crash); read up to its last "
                "complete line", segment.name)


def members_of(data_dir: Path, symbol: str, writing: Collection[Path] = ()) -> list[Member]:
    """Every member of ``symbol``'s segments, oldest first; an unindexed tail is
    read (its book lines decoded, the others only timed) to learn its span and
    whether it starts with a checkpoint. ``writing``: the segments this process is
    writing (the recorder's open ones), whose last member is unfinished by design;
    the tail of any other segment that ends mid-member was cut short: it is marked
    ``cut`` and logged once."""
    out: list[Member] = []
    segments = segments_of(data_dir, symbol)
    _forget_indexes(symbol_dir(data_dir, symbol), segments)
    for seg in segments:
        entries = _index_of(seg)
        end = 0
        for e in entries:
            out.append(Member(seg, e.offset, e.length, e.t0_ns, e.t1_ns, e.checkpoint_u))
            end = e.offset + e.length
        try:
            size = seg.stat().st_size
        except OSError:
            continue
        if size > end:
            stats = ReadStats()
            tail = read_member_until(seg, end, None, _NEVER_NS, frozenset({CHECKPOINT}), stats, report=False)
            cut = stats.truncated > 0 and seg not in writing
            if cut:
                _report_cut(seg, size)
            checkpoint_u = None
            if tail.messages and isinstance(tail.messages[0].data, BookCheckpointLine):
                checkpoint_u = tail.messages[0].data.last_update_id
            if tail.first_ts_ns is not None and tail.last_ts_ns is not None:
                out.append(Member(seg, end, None, tail.first_ts_ns, tail.last_ts_ns, checkpoint_u, cut))
    return out


def truncated_of(members: list[Member]) -> list[str]:
    """File names of the segments cut short (a crash), oldest first."""
    return list(dict.fromkeys(m.segment.name for m in members if m.cut))


def covered_ranges(members: list[Member]) -> list[list[float]]:
    """Time ranges (seconds) with recorded data: members of one run closer than
    COVERAGE_JOIN_S joined, two runs never."""
    ranges: list[list[float]] = []
    prev: Member | None = None
    for m in sorted(members, key=lambda m: m.t0_ns):
        t0, t1 = m.t0_ns / 1e9, m.t1_ns / 1e9
        # A new run starts a new segment: the time before it is a gap however short.
        # The one other reason for a new segment is the hour: joined across it.
        same_run = prev is not None and (prev.segment == m.segment or m.t0_ns % HOUR_NS < int(COVERAGE_JOIN_S * 1e9))
        if ranges and same_run and t0 - ranges[-1][1] <= COVERAGE_JOIN_S:
            ranges[-1][1] = max(ranges[-1][1], t1)
        else:
            ranges.append([t0, t1])
        prev = m
    return [[round(a, 3), round(b, 3)] for a, b in ranges]


def _start_index(members: list[Member], at_ns: int) -> int | None:
    """Index of the last member starting with a checkpoint at or before ``at_ns``."""
    best = None
    for i, m in enumerate(members):
        if m.t0_ns > at_ns:
            break
        if m.checkpoint_u is not None:
            best = i
    return best


def _messages_from(members: list[Member], start: int) -> Iterator[RecordedMessage]:
    for m in members[start:]:  # a cut tail was reported by members_of
        yield from read_member(m.segment, m.offset, m.length, report=False)


@dataclass(slots=True)
class BookAt:
    """The book of ``symbol`` as it was at ``at`` (seconds since the epoch)."""

    symbol: str
    at: float
    state: str
    reason: str
    last_update_id: int | None
    last_message_ts: float | None  # receive time of the last message applied
    checkpoint_ts: float
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)
    events_applied: int = 0
    truncated: list[str] = field(default_factory=list)  # segments cut short (a crash), read up to their last line

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "at": self.at, "state": self.state, "reason": self.reason,
            "in_sync": self.state == SyncState.SYNCED.value, "last_update_id": self.last_update_id,
            "last_message_ts": self.last_message_ts, "checkpoint_ts": self.checkpoint_ts,
            "events_applied": self.events_applied, "truncated": self.truncated,
            "bids": [[p, q] for p, q in self.bids], "asks": [[p, q] for p, q in self.asks],
        }


class UnorderedBook(BookState):
    """A book whose levels are held in plain dicts while events are applied to it,
    by the same rules (BookState's), and put in price order once by :meth:`ordered`.
    Applying a level to a dict takes a fraction of the time of a SortedDict, which
    keeps its keys in order for readers that :func:`book_at` only has at the end."""

    __slots__ = ()

    def __init__(self, symbol: str, tick_size: float, price_decimals: int | None = None) -> None:
        super().__init__(symbol, tick_size, price_decimals)
        self.bids = {}
        self.asks = {}

    def ordered(self) -> None:
        """Put the levels in price order: every read of BookState works from here on."""
        self.bids = SortedDict(self.bids)
        self.asks = SortedDict(self.asks)


class Rebuilder:
    """A book and its validator driven by recorded messages from a checkpoint on."""

    def __init__(self, symbol: str, spec: SymbolSpec, book: BookState | None = None) -> None:
        self.symbol = symbol.lower()
        self.book = book if book is not None else BookState(self.symbol, spec.tick_size, spec.price_decimals)
        self.validator = SequenceValidator(self.symbol, self.book)
        self.started = False
        self.events_applied = 0

    def apply(self, msg: RecordedMessage) -> bool:
        """Apply one recorded message; True when it was a depth event or snapshot."""
        data = msg.data
        if isinstance(data, DepthUpdate):
            before = self.validator.counters.events_applied
            self.validator.on_depth_event(data)
            self.events_applied += self.validator.counters.events_applied - before
            return True
        if isinstance(data, BookCheckpointLine):
            if not self.validator.in_sync:  # the first one, or a newer one after a gap
                try:
                    self.validator.resume_from_checkpoint(data.last_update_id, data.bids, data.asks)
                    self.started = True
                except MalformedLevel:
                    pass
            return True
        if isinstance(data, DepthSnapshot):
            self.validator.on_snapshot(data)
            return True
        return False


def book_at(
    data_dir: Path, symbol: str, spec: SymbolSpec, at: float, depth: int | None = None, writing: Collection[Path] = (),
) -> BookAt | None:
    """The book at ``at``, or None when no recorded member covers that moment.
    ``writing``: as for :func:`members_of`."""
    at_ns = int(at * 1e9)
    members = members_of(data_dir, symbol, writing)
    start = _start_index(members, at_ns)
    if start is None or at_ns > members[-1].t1_ns + int(COVERAGE_JOIN_S * 1e9):
        return None
    book = UnorderedBook(symbol, spec.tick_size, spec.price_decimals)
    rebuilt = Rebuilder(symbol, spec, book)
    last_ts: int | None = None
    for m in members[start:]:
        # Only the lines that rebuild the book are decoded; the others are timed.
        part = read_member_until(m.segment, m.offset, m.length, at_ns, BOOK_KINDS, report=False)
        for msg in part.messages:
            rebuilt.apply(msg)
        if part.last_ts_ns is not None:
            last_ts = part.last_ts_ns
        if part.passed:
            break
    book.ordered()
    v = rebuilt.validator
    n = depth if depth is not None else max(len(book.bids), len(book.asks))
    bids, asks = book.top(n) if v.in_sync else ([], [])
    return BookAt(
        symbol=symbol.lower(), at=at, state=v.state.value, reason=v.reason,
        last_update_id=book.last_update_id or None,
        last_message_ts=None if last_ts is None else last_ts / 1e9,
        checkpoint_ts=members[start].t0_ns / 1e9, bids=bids, asks=asks, events_applied=rebuilt.events_applied,
        truncated=truncated_of(members),
    )


async def history_frames(
    data_dir: Path, symbol: str, spec: SymbolSpec, settings: Settings, start: float, speed: float,
    warmup_s: float = 60.0, writing: Collection[Path] = (),
) -> AsyncGenerator[bytes, None]:
    """Frames of ``symbol`` rebuilt from the recording from ``start`` on, one per push
    interval of recorded time, paced at ``speed`` x real time (0: as fast as the
    reader takes them), each marked with its history state. The features are warmed
    on the ``warmup_s`` before ``start`` (so OFI and the detectors are not cold).
    Ends after the last recorded message (a last frame says ``finished``).
    ``writing``: as for :func:`members_of`."""
    start_ns = int(start * 1e9)
    members = members_of(data_dir, symbol, writing)
    first = _start_index(members, start_ns - int(warmup_s * 1e9))
    if first is None:
        first = _start_index(members, start_ns)
    if first is None and members and start_ns >= members[0].t0_ns:
        # inside the recording, before its first checkpoint (a run's first minute): the
        # frames start where the book can first be rebuilt
        first = next((i for i, m in enumerate(members) if m.checkpoint_u is not None), None)
    if first is None:
        return
    features = SymbolFeatures(symbol, settings, spec)
    feed = SymbolFeed(symbol, spec, settings, features)
    rebuilt = Rebuilder(symbol, spec)
    interval_ns = int(settings.push_interval_s * 1e9)
    gap_ns = max(5 * interval_ns, 5_000_000_000)
    next_frame_ns = start_ns
    wall0 = time.monotonic()
    shown_ns = 0  # recorded time shown so far (paces the frames)
    last_ts = start_ns
    for n, msg in enumerate(_messages_from(members, first), 1):
        ts = msg.ts_recv_ns
        if ts >= next_frame_ns and rebuilt.started:
            if ts - next_frame_ns > gap_ns:  # nothing recorded for a while: jump, no frames of a frozen book
                next_frame_ns += (ts - next_frame_ns) // interval_ns * interval_ns
            while next_frame_ns <= ts:  # every frame time passed: the book as it stood then
                if speed > 0:
                    ahead = shown_ns / 1e9 / speed - (time.monotonic() - wall0)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                yield _frame(features, rebuilt, next_frame_ns, speed, finished=False)
                shown_ns += interval_ns
                next_frame_ns += interval_ns
        last_ts = ts
        if n % 2048 == 0:
            await asyncio.sleep(0)
        data = msg.data
        if isinstance(data, DepthUpdate):
            applied = rebuilt.validator.counters.events_applied
            rebuilt.apply(msg)
            if rebuilt.validator.counters.events_applied > applied:
                features.on_depth_applied(rebuilt.book, ts, data.event_time_ms or None)
        elif isinstance(data, AggTrade | Trade):
            feed.on_trade(data, ts)
        elif not feed.on_context(data, ts):  # liquidations, mark price, open interest
            rebuilt.apply(msg)
    if rebuilt.started:
        yield _frame(features, rebuilt, max(last_ts, start_ns), speed, finished=True)


def _frame(features: SymbolFeatures, rebuilt: Rebuilder, ts_ns: int, speed: float, finished: bool) -> bytes:
    v = rebuilt.validator
    sync = {"state": v.state.value, "reason": v.reason, "last_update_id": rebuilt.book.last_update_id or None,
            "last_message_age_s": None}
    frame: Frame = features.build_frame(rebuilt.book, ts_ns, sync, {})
    frame.history = HistoryState(time=ts_ns / 1e9, speed=speed, finished=finished)
    return encode_frame(frame)
