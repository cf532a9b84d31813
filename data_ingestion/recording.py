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
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

# Kinds of recorded message.
DEPTH = "depth"
SNAPSHOT = "snapshot"
TRADE = "trade"
AGG_TRADE = "aggTrade"
BOOK_TICKER = "bookTicker"
OTHER = "other"

_EVENT_KINDS = {
    "depthUpdate": DEPTH,
    "trade": TRADE,
    "aggTrade": AGG_TRADE,
    "bookTicker": BOOK_TICKER,
}


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    ts_recv_ns: int  # local receive time
    kind: str  # one of DEPTH, SNAPSHOT, TRADE, AGG_TRADE, BOOK_TICKER, OTHER
    stream: str | None  # combined-stream name, None for a snapshot
    data: dict[str, Any]  # the raw event (the "data" part) or the snapshot body


@dataclass(slots=True)
class ReadStats:
    lines: int = 0
    garbage: int = 0  # lines that are not "<ns> <json object>"
    first_garbage: str | None = None
    bytes_read: int = 0  # of the underlying (compressed) files
    bytes_total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


def classify(payload: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """Kind, stream name and event of one decoded message (wrapped or raw)."""
    if "stream" in payload and isinstance(payload.get("data"), dict):
        data = payload["data"]
        return _EVENT_KINDS.get(data.get("e"), OTHER), payload["stream"], data
    if "lastUpdateId" in payload and "bids" in payload:
        return SNAPSHOT, None, payload
    return _EVENT_KINDS.get(payload.get("e"), OTHER), None, payload  # type: ignore[arg-type]


def open_recording(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a recording, gzip or plain, for reading bytes."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def parse_line(line: bytes) -> tuple[int, dict[str, Any]] | None:
    """``(ts_ns, decoded json)`` of one line, or None when it is garbage."""
    sep = line.find(b" ")
    if sep <= 0:
        return None
    try:
        ts = int(line[:sep])
        payload = orjson.loads(line[sep + 1 :])
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    return ts, payload


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
                parsed = parse_line(line)
                if parsed is None:
                    stats.garbage += 1
                    if stats.first_garbage is None:
                        stats.first_garbage = line[:120].decode("utf-8", "replace")
                    continue
                ts, payload = parsed
                kind, stream, data = classify(payload)
                stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
                yield RecordedMessage(ts, kind, stream, data)
        stats.bytes_read = raw_size_before + os.path.getsize(path)


def _tell(fh: Any) -> int:
    try:
        return int(fh.tell())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return 0


def symbol_of(message: RecordedMessage) -> str | None:
    """Lower-case symbol of a stream message (None for snapshots, which carry none)."""
    s = message.data.get("s")
    if isinstance(s, str):
        return s.lower()
    if message.stream:
        return message.stream.split("@", 1)[0].lower()
    return None
