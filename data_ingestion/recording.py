"""The recording format shared by the recorder, the replayer and the audit.

One message a line, ``<local receive time, integer ns> <raw JSON as received>``,
gzip or plain: the format of hftbacktest's Binance collector and of
../shared/data/binance-usdm. Stream messages are combined-stream wrappers::

    1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",...}}

and a REST depth snapshot is a bare line::

    1723161255950000000 {"lastUpdateId":5123107852948,"E":..,"T":..,"bids":[...],"asks":[...]}

This project's recorder adds two kinds of its own, which other readers skip: a
filters line (the symbol's tick and step) and a book checkpoint line. It writes a
data directory of segments (docs/recording.md)::

    <data_dir>/raw/<symbol>/<symbol>_<YYYYMMDD>T<HHMMSS>Z.gz       one per symbol, run and UTC hour
    <data_dir>/raw/<symbol>/<symbol>_<YYYYMMDD>T<HHMMSS>Z.gz.idx   one JSON line per closed gzip member

A segment is a multi-member gzip file, one member per UTC minute, each starting with
the filters and checkpoint lines. Every reader here reads a file cut short (a
crash) up to its last complete line, counts it in :class:`ReadStats` and logs it.
"""

from __future__ import annotations

import calendar
import functools
import gzip
import io
import logging
import os
import re
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson
from msgspec import Struct, field

from wire.binance import (
    AggTrade,
    BookTicker,
    DecodeError,
    DepthSnapshot,
    DepthUpdate,
    ForceOrder,
    Level,
    MarkPriceUpdate,
    OpenInterest,
    Trade,
    open_interest_decoder,
    snapshot_decoder,
    stream_message_decoder,
)

log = logging.getLogger("recording")

# Kinds of recorded message.
DEPTH = "depth"
SNAPSHOT = "snapshot"
TRADE = "trade"
AGG_TRADE = "aggTrade"
BOOK_TICKER = "bookTicker"
FORCE_ORDER = "forceOrder"
MARK_PRICE = "markPrice"
OPEN_INTEREST = "openInterest"  # a REST body, recorded as received
FILTERS = "filters"
CHECKPOINT = "checkpoint"
OTHER = "other"

_EVENT_KINDS = {
    "depthUpdate": DEPTH,
    "trade": TRADE,
    "aggTrade": AGG_TRADE,
    "bookTicker": BOOK_TICKER,
    "forceOrder": FORCE_ORDER,
    "markPriceUpdate": MARK_PRICE,
}


class SymbolFiltersLine(Struct, frozen=True):
    """The symbol's exchange filters, as this project's recorder writes them at the
    head of every file it opens (readers that do not know the line skip it)::

        1764201600000000000 {"symbolFilters":{"symbol":"BTCUSDT","tickSize":"0.1","stepSize":"0.001",
                             "priceDecimals":1,"qtyDecimals":3,"pricePrecision":2,"quantityPrecision":3,
                             "source":"exchangeInfo"}}
    """

    symbol: str
    tick_size: str = field(name="tickSize")
    step_size: str = field(name="stepSize")
    price_decimals: int = field(name="priceDecimals")  # decimals of the tick
    qty_decimals: int = field(name="qtyDecimals")  # decimals of the step
    price_precision: int | None = field(name="pricePrecision", default=None)  # exchangeInfo's, when known
    quantity_precision: int | None = field(name="quantityPrecision", default=None)
    source: str = "exchangeInfo"  # exchangeInfo, configured or inferred

    def encode(self) -> bytes:
        return msgspec.json.encode(_FiltersEnvelope(self))


class _FiltersEnvelope(Struct, frozen=True):
    filters: SymbolFiltersLine = field(name="symbolFilters")


_filters_decoder = msgspec.json.Decoder(_FiltersEnvelope)


class BookCheckpointLine(Struct, frozen=True):
    """A symbol's whole rebuilt book, written by the recorder at the head of every
    gzip member (once a minute) so that a reader can start there without the
    messages before it. Readers that do not use it skip it::

        1764201600000000000 {"bookCheckpoint":{"symbol":"BTCUSDT","lastUpdateId":1415772332446,
                             "E":1764201599987,"bids":[["96997.7","1.599"],...],"asks":[["96997.8","0.927"],...]}}

    The book is the one in force before the line's first following message is
    applied: the messages after the line continue it (through the usual sync rules).
    """

    symbol: str  # upper case, as the exchange spells it
    last_update_id: int = field(name="lastUpdateId")  # the book's last applied update id
    event_time_ms: int = field(name="E")  # event time of the last applied event, 0 when unknown
    bids: list[Level]  # best first, [price, quantity] strings as the exchange prints them
    asks: list[Level]

    def encode(self) -> bytes:
        return msgspec.json.encode(_CheckpointEnvelope(self))


class _CheckpointEnvelope(Struct, frozen=True):
    checkpoint: BookCheckpointLine = field(name="bookCheckpoint")


class _CheckpointId(Struct, frozen=True):
    last_update_id: int = field(name="lastUpdateId")


class _CheckpointIdEnvelope(Struct, frozen=True):
    checkpoint: _CheckpointId = field(name="bookCheckpoint")


_checkpoint_decoder = msgspec.json.Decoder(_CheckpointEnvelope)
_checkpoint_id_decoder = msgspec.json.Decoder(_CheckpointIdEnvelope)


def checkpoint_update_id(payload: bytes) -> int | None:
    """``lastUpdateId`` of a checkpoint line's JSON (the levels are skipped, not
    built); None when it is not a well-formed checkpoint."""
    try:
        return _checkpoint_id_decoder.decode(payload).checkpoint.last_update_id
    except DecodeError:
        return None


RecordedData = (
    DepthUpdate | BookTicker | AggTrade | Trade | ForceOrder | MarkPriceUpdate | OpenInterest | DepthSnapshot
    | SymbolFiltersLine | BookCheckpointLine | dict[str, Any]
)

_KIND_OF_TYPE: dict[type, str] = {
    DepthUpdate: DEPTH,
    BookTicker: BOOK_TICKER,
    AggTrade: AGG_TRADE,
    Trade: TRADE,
    ForceOrder: FORCE_ORDER,
    MarkPriceUpdate: MARK_PRICE,
    DepthSnapshot: SNAPSHOT,
}


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    ts_recv_ns: int  # local receive time
    kind: str  # DEPTH, SNAPSHOT, TRADE, AGG_TRADE, BOOK_TICKER, FORCE_ORDER, MARK_PRICE, OPEN_INTEREST,
    # FILTERS, CHECKPOINT or OTHER
    stream: str | None  # combined-stream name, None for a snapshot
    data: RecordedData  # the typed event or snapshot; the decoded JSON for OTHER
    raw: bytes = b""  # the JSON as recorded


@dataclass(slots=True)
class ReadStats:
    lines: int = 0
    # lines that are not "<ns> <json object>", or a known message that does not
    # decode (a depth event without its ids, ...): counted and skipped
    garbage: int = 0
    first_garbage: str | None = None
    bytes_read: int = 0  # of the underlying (compressed) files
    bytes_total: int = 0
    by_kind: dict[str, int] = dc_field(default_factory=dict)
    # files (or members) whose end could not be read: cut short by a crash, or
    # damaged; read up to their last complete line, the rest skipped
    truncated: int = 0
    truncated_files: list[str] = dc_field(default_factory=list)  # "name: what was wrong"


def decode_payload(payload: bytes) -> tuple[str, str | None, RecordedData] | None:
    """Kind, stream name and typed data of one recorded JSON message (a combined
    stream message or a bare snapshot body); the decoded JSON as OTHER when it is
    neither; None when it is not a JSON object at all or a known message that
    does not decode (a depth event without ids, ...)."""
    try:
        if payload.startswith(b'{"stream"'):
            msg = stream_message_decoder.decode(payload)
            return _KIND_OF_TYPE[type(msg.data)], msg.stream, msg.data
        if payload.startswith(b'{"lastUpdateId"'):
            return SNAPSHOT, None, snapshot_decoder.decode(payload)
        if payload.startswith(b'{"symbolFilters"'):
            return FILTERS, None, _filters_decoder.decode(payload).filters
        if payload.startswith(b'{"bookCheckpoint"'):
            return CHECKPOINT, None, _checkpoint_decoder.decode(payload).checkpoint
    except DecodeError:
        pass
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    if "stream" in obj and isinstance(obj.get("data"), dict):
        data = obj["data"]
        if data.get("e") in _EVENT_KINDS:
            return None  # a known event that does not decode: malformed
        return OTHER, obj["stream"], data
    if "lastUpdateId" in obj or "symbolFilters" in obj or "bookCheckpoint" in obj:
        return None
    if "openInterest" in obj:  # a GET /fapi/v1/openInterest body (its keys come in any order)
        try:
            return OPEN_INTEREST, None, open_interest_decoder.decode(payload)
        except DecodeError:
            return None
    return OTHER, None, obj


GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 16


def open_recording(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a recording, gzip or plain, for reading bytes. (A gzip file cut short
    raises EOFError at its end through this object; :func:`read_recording` does not.)"""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    magic = raw.read(2)
    raw.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _parse_line(line: bytes, stats: ReadStats) -> RecordedMessage | None:
    """One ``<ns> <json>`` line as a typed message; None (counted as garbage) when it
    is not one, or for an empty line."""
    line = line.strip()
    if not line:
        return None
    sep = line.find(b" ")
    decoded = None
    if sep > 0:
        try:
            ts = int(line[:sep])
        except ValueError:
            ts = -1
        if ts >= 0:
            payload = line[sep + 1 :]
            decoded = decode_payload(payload)
    if decoded is None:
        stats.garbage += 1
        if stats.first_garbage is None:
            stats.first_garbage = line[:120].decode("utf-8", "replace")
        return None
    kind, stream, data = decoded
    stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
    return RecordedMessage(ts, kind, stream, data, payload)


def _note_truncated(stats: ReadStats, path: str | os.PathLike[str], what: str, report: bool) -> None:
    stats.truncated += 1
    name = Path(path).name
    stats.truncated_files.append(f"{name}: {what}")
    if report:
        log.warning("%s: %s; read up to its last complete line", name, what)


def _gzip_lines(
    fh: IO[bytes], path: str | os.PathLike[str], stats: ReadStats, one_member: bool = False, limit: int | None = None,
    report: bool = True,
) -> Iterator[bytes]:
    """The lines (without their newline) of the gzip members read from ``fh``, at
    most ``limit`` compressed bytes, only the first member when ``one_member``.

    Members follow each other (zero padding between them is skipped). A member
    cut short (the file of a process that was killed) ends the reading at its
    last complete line, and so does damaged data (a CRC or deflate error): both
    are counted in ``stats`` and logged, never raised."""
    left = limit
    decomp = zlib.decompressobj(31)  # 16 + 15: a gzip member, its header and trailer (CRC) checked
    fed = False  # the current member has been given input
    pending = b""  # the incomplete line at the end of what was decompressed

    def read() -> bytes:
        nonlocal left
        if left is None:
            return fh.read(_READ_CHUNK)
        chunk = fh.read(min(_READ_CHUNK, left)) if left > 0 else b""
        left -= len(chunk)
        return chunk

    data = read()
    while data:
        if not fed:
            stripped = data.lstrip(b"\x00")  # padding between members
            if not stripped:
                data = read()
                continue
            data = stripped
        fed = True
        try:
            out = decomp.decompress(data)
        except zlib.error as exc:
            _note_truncated(stats, path, f"damaged gzip data ({exc})", report)
            return
        if out:
            if pending:
                out = pending + out
            lines = out.split(b"\n")
            pending = lines.pop()
            yield from lines
        if decomp.eof:
            if pending:  # a member whose last line has no newline (other tools)
                yield pending
                pending = b""
            if one_member:
                return
            data = decomp.unused_data
            decomp = zlib.decompressobj(31)
            fed = False
            if not data:
                data = read()
            continue
        data = read()
    if fed:
        _note_truncated(stats, path, "ends in an incomplete gzip member (cut short, e.g. by a crash)", report)


def read_recording(
    paths: Iterable[str | os.PathLike[str]], stats: ReadStats | None = None, report: bool = True
) -> Iterator[RecordedMessage]:
    """Every message of ``paths`` in file order; several files of one symbol given
    in order (the segments of a data directory, or daily files) read as one
    continuous stream. Garbage lines are counted in ``stats`` and skipped; a file
    cut short is read up to its last complete line, counted as truncated and (with
    ``report``) logged."""
    stats = stats if stats is not None else ReadStats()
    paths = list(paths)
    stats.bytes_total += sum(os.path.getsize(p) for p in paths)
    for path in paths:
        raw_size_before = stats.bytes_read
        with open(path, "rb") as fh:
            magic = fh.read(2)
            fh.seek(0)
            gzipped = bool(magic) and GZIP_MAGIC.startswith(magic)  # (a gzip file cut after one byte, too)
            lines: Iterable[bytes] = _gzip_lines(fh, path, stats, report=report) if gzipped else fh
            for line in lines:
                stats.lines += 1
                if stats.lines % 4096 == 0:
                    stats.bytes_read = raw_size_before + _tell(fh)
                msg = _parse_line(line, stats)
                if msg is not None:
                    yield msg
        stats.bytes_read = raw_size_before + os.path.getsize(path)


def _tell(fh: Any) -> int:
    try:
        return int(fh.tell())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 0


# --- segments of a data directory (written by data_ingestion/recorder.py) ----------------------
RAW_DIR = "raw"
LOCK_FILE = ".lock"
HISTORY_DB = "history.sqlite"  # the metric history (history/store.py), next to raw/
# The database's files on disk: itself, its write-ahead log and the log's index (WAL mode).
HISTORY_DB_FILES = (HISTORY_DB, f"{HISTORY_DB}-wal", f"{HISTORY_DB}-shm")
INDEX_SUFFIX = ".idx"
_SEGMENT_NAME = re.compile(r"^(?P<symbol>[a-z0-9_]+)_(?P<stamp>\d{8}T\d{6}Z)\.gz$")


def symbol_dir(data_dir: str | os.PathLike[str], symbol: str) -> Path:
    """Where the segments of ``symbol`` are: ``<data_dir>/raw/<symbol>``."""
    return Path(data_dir) / RAW_DIR / symbol.lower()


def segment_name(symbol: str, start_s: int) -> str:
    """``btcusdt_20261125T140000Z.gz`` for a segment starting at ``start_s`` (epoch s, UTC)."""
    return f"{symbol.lower()}_{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(start_s))}.gz"


def segment_start_ns(path: str | os.PathLike[str]) -> int | None:
    """The start time a segment's name carries (UTC, whole seconds, in ns); None when
    the name is not a segment's."""
    m = _SEGMENT_NAME.match(Path(path).name)
    if m is None:
        return None
    return calendar.timegm(time.strptime(m["stamp"], "%Y%m%dT%H%M%SZ")) * 1_000_000_000


def segments_of(data_dir: str | os.PathLike[str], symbol: str) -> list[Path]:
    """The segments of ``symbol`` in ``data_dir``, oldest first (the order to read them in)."""
    directory = symbol_dir(data_dir, symbol)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    sym = symbol.lower()
    found = [n for n in names if (m := _SEGMENT_NAME.match(n)) is not None and m["symbol"] == sym]
    return [directory / n for n in sorted(found)]


def index_path(segment: str | os.PathLike[str]) -> Path:
    """The index next to a segment: ``<segment>.idx``."""
    return Path(os.fspath(segment) + INDEX_SUFFIX)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One closed gzip member of a segment, as its index line gives it::

        {"offset":0,"length":812345,"t0_ns":1764201600012345678,"t1_ns":1764201659998877665,
         "lines":10234,"checkpoint_u":1415772332446}
    """

    offset: int  # byte offset of the member's first byte in the .gz file
    length: int  # bytes of the member
    t0_ns: int  # receive time of its first line (the filters line, stamped like the message after it)
    t1_ns: int  # receive time of its last line
    lines: int  # lines in the member, its head lines (filters, checkpoint) included
    checkpoint_u: int | None  # lastUpdateId of its checkpoint line; None without one

    def encode(self) -> bytes:
        return orjson.dumps({"offset": self.offset, "length": self.length, "t0_ns": self.t0_ns,
                             "t1_ns": self.t1_ns, "lines": self.lines, "checkpoint_u": self.checkpoint_u})


def read_index(segment: str | os.PathLike[str]) -> list[IndexEntry]:
    """The index entries of ``segment`` in file order; [] without an index. A line
    cut short (a crash while appending) or otherwise unreadable is skipped. The last
    member of a segment whose process died has no entry: read it with
    :func:`read_member` from the end of the last entry."""
    try:
        text = index_path(segment).read_bytes()
    except FileNotFoundError:
        return []
    entries: list[IndexEntry] = []
    for line in text.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            u = obj["checkpoint_u"]
            entries.append(IndexEntry(int(obj["offset"]), int(obj["length"]), int(obj["t0_ns"]), int(obj["t1_ns"]),
                                      int(obj["lines"]), int(u) if u is not None else None))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("%s: unreadable index line skipped: %.120r", index_path(segment).name, line)
    return entries


def read_member(
    segment: str | os.PathLike[str], offset: int, length: int | None = None, stats: ReadStats | None = None,
    report: bool = True,
) -> Iterator[RecordedMessage]:
    """The messages of the one gzip member starting at byte ``offset`` of ``segment``
    (an index entry's offset and length; ``length`` None reads on to the member's
    end, or to the end of a file cut short). Nothing before the offset is read. A
    member cut short is read up to its last complete line, counted in ``stats`` and
    (with ``report``) logged."""
    stats = stats if stats is not None else ReadStats()
    with open(segment, "rb") as fh:
        fh.seek(offset)
        for line in _gzip_lines(fh, segment, stats, one_member=True, limit=length, report=report):
            stats.lines += 1
            msg = _parse_line(line, stats)
            if msg is not None:
                yield msg


# The kinds that rebuild a book: what a seek decodes; the other lines are only timed.
BOOK_KINDS = frozenset({DEPTH, SNAPSHOT, CHECKPOINT})
_STREAM_PREFIX = b'{"stream":"'
# A combined stream's kind by the start of its name after the symbol:
# btcusdt@depth@100ms, btcusdt@bookTicker, btcusdt@aggTrade, btcusdt@trade, btcusdt@forceOrder,
# btcusdt@markPrice@1s.
_STREAM_NAME_KINDS = {b"depth": DEPTH, b"bookTicker": BOOK_TICKER, b"aggTrade": AGG_TRADE, b"trade": TRADE,
                      b"forceOrder": FORCE_ORDER, b"markPrice": MARK_PRICE}


@functools.lru_cache(maxsize=16)
def _names_not_of(kinds: frozenset[str]) -> tuple[bytes, ...]:
    """The stream name parts (after the symbol) of the kinds not in ``kinds``."""
    return tuple(name for name, kind in _STREAM_NAME_KINDS.items() if kind not in kinds)


def _undecoded_ts(line: bytes, skipped: tuple[bytes, ...]) -> int | None:
    """The receive time of a combined-stream line whose stream name, after the
    symbol, starts with one of ``skipped``: such a line is not decoded. None for any
    other line (the caller decodes it). Per line of a member, so kept to a few
    byte comparisons."""
    sep = line.find(b" ")
    if sep <= 0 or not line.startswith(_STREAM_PREFIX, sep + 1):
        return None
    at = line.find(b"@", sep + 1 + len(_STREAM_PREFIX))
    if at < 0 or not line.startswith(skipped, at + 1):
        return None
    try:
        ts = int(line[:sep])
    except ValueError:
        return None
    return ts if ts >= 0 else None


@dataclass(slots=True)
class MemberPrefix:
    """What :func:`read_member_until` read of a member."""

    messages: list[RecordedMessage]  # of the kinds asked for, received at or before the moment, in order
    first_ts_ns: int | None  # receive time of the member's first line
    last_ts_ns: int | None  # receive time of its last line at or before the moment
    passed: bool  # a line received after the moment was met: the later members need not be read


def read_member_until(
    segment: str | os.PathLike[str], offset: int, length: int | None, until_ns: int,
    kinds: frozenset[str] = BOOK_KINDS, stats: ReadStats | None = None, report: bool = True,
) -> MemberPrefix:
    """The messages of ``kinds`` of the member at ``offset`` (as :func:`read_member`)
    received at or before ``until_ns``; the reading stops at the first line received
    after it. Stream lines of other kinds (told by their stream name) are not
    decoded, only their receive time is read: a seek passes over the bookTickers and
    trades (a dozen or more for each depth event) at that cost. They count in
    ``stats.lines`` only, and one that would not decode is not seen as garbage. A
    member cut short is counted in ``stats`` and (with ``report``) logged."""
    stats = stats if stats is not None else ReadStats()
    out = MemberPrefix([], None, None, False)
    skipped = _names_not_of(kinds)
    with open(segment, "rb") as fh:
        fh.seek(offset)
        for line in _gzip_lines(fh, segment, stats, one_member=True, limit=length, report=report):
            stats.lines += 1
            msg = None
            ts = _undecoded_ts(line, skipped)
            if ts is None:
                msg = _parse_line(line, stats)
                if msg is None:
                    continue
                ts = msg.ts_recv_ns
            if ts > until_ns:
                out.passed = True
                break
            if out.first_ts_ns is None:
                out.first_ts_ns = ts
            out.last_ts_ns = ts
            if msg is not None and msg.kind in kinds:
                out.messages.append(msg)
    return out


def symbol_of(message: RecordedMessage) -> str | None:
    """Lower-case symbol of a stream message (None for snapshots, which carry none)."""
    data = message.data
    if isinstance(data, SymbolFiltersLine):
        return data.symbol.lower()
    s = data.get("s") if isinstance(data, dict) else getattr(data, "symbol", None)
    if isinstance(s, str) and s:
        return s.lower()
    if message.stream:
        return message.stream.split("@", 1)[0].lower()
    return None


@dataclass(slots=True)
class RecordingHead:
    """What the start of a recording says about its symbol."""

    symbol: str | None = None
    filters: SymbolFiltersLine | None = None
    prices: list[str] = dc_field(default_factory=list)  # of the first snapshot and depth events
    qtys: list[str] = dc_field(default_factory=list)


def scan_head(path: str | os.PathLike[str], depth_events: int = 50, max_lines: int = 50_000) -> RecordingHead:
    """The symbol, the filters line (when the recorder wrote one) and the price and
    quantity strings of the first snapshot and ``depth_events`` depth events."""
    head = RecordingHead()
    seen_depth = 0
    snapshot = False
    for n, msg in enumerate(read_recording([path], report=False)):
        data = msg.data
        if head.symbol is None:
            head.symbol = symbol_of(msg)
        if isinstance(data, SymbolFiltersLine):
            head.filters = head.filters or data
            continue
        if isinstance(data, DepthSnapshot) and not snapshot:
            snapshot = True
            levels = data.bids + data.asks
        elif isinstance(data, DepthUpdate) and seen_depth < depth_events:
            seen_depth += 1
            levels = data.bids + data.asks
        else:
            levels = []
        for p, q in levels:
            head.prices.append(p)
            head.qtys.append(q)
        if head.filters is not None and head.symbol is not None:
            break  # the line says it all
        if (snapshot and seen_depth >= depth_events) or n >= max_lines:
            break
    return head
