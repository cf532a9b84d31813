"""The recording format shared by the recorder, the replayer and the audit.

One message a line, ``<local receive time, integer ns> <raw JSON as received>``,
gzip or plain: the format of hftbacktest's Binance collector and of
../shared/data/binance-usdm. Stream messages are combined-stream wrappers::

    1723161255030314667 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate",...}}

and a REST depth snapshot is a bare line::

    1723161255950000000 {"lastUpdateId":5123107852948,"E":..,"T":..,"bids":[...],"asks":[...]}
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
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
    Trade,
    snapshot_decoder,
    stream_message_decoder,
)

# Kinds of recorded message.
DEPTH = "depth"
SNAPSHOT = "snapshot"
TRADE = "trade"
AGG_TRADE = "aggTrade"
BOOK_TICKER = "bookTicker"
FILTERS = "filters"
OTHER = "other"

_EVENT_KINDS = {
    "depthUpdate": DEPTH,
    "trade": TRADE,
    "aggTrade": AGG_TRADE,
    "bookTicker": BOOK_TICKER,
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

RecordedData = DepthUpdate | BookTicker | AggTrade | Trade | DepthSnapshot | SymbolFiltersLine | dict[str, Any]

_KIND_OF_TYPE: dict[type, str] = {
    DepthUpdate: DEPTH,
    BookTicker: BOOK_TICKER,
    AggTrade: AGG_TRADE,
    Trade: TRADE,
    DepthSnapshot: SNAPSHOT,
}


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    ts_recv_ns: int  # local receive time
    kind: str  # one of DEPTH, SNAPSHOT, TRADE, AGG_TRADE, BOOK_TICKER, OTHER
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
    if "lastUpdateId" in obj or "symbolFilters" in obj:
        return None
    return OTHER, None, obj


def open_recording(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a recording, gzip or plain, for reading bytes."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_recording(
    paths: Iterable[str | os.PathLike[str]], stats: ReadStats | None = None
) -> Iterator[RecordedMessage]:
    """Every message of ``paths`` in file order; several files of one symbol given
    in order read as one continuous stream (a day boundary). Garbage lines are
    counted in ``stats`` and skipped."""
    stats = stats if stats is not None else ReadStats()
    paths = list(paths)
    stats.bytes_total += sum(os.path.getsize(p) for p in paths)
    for path in paths:
        raw_size_before = stats.bytes_read
        with open_recording(path) as fh:
            underlying = getattr(fh, "fileobj", fh)
            for line in fh:
                stats.lines += 1
                if stats.lines % 4096 == 0:
                    stats.bytes_read = raw_size_before + _tell(underlying)
                line = line.strip()
                if not line:
                    continue
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
                    continue
                kind, stream, data = decoded
                stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
                yield RecordedMessage(ts, kind, stream, data, payload)
        stats.bytes_read = raw_size_before + os.path.getsize(path)


def _tell(fh: Any) -> int:
    try:
        return int(fh.tell())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 0


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
    for n, msg in enumerate(read_recording([path])):
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
