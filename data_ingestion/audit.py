"""Audit a recording: rebuild each book through the real sync rules and check it
against every bookTicker that names an applied depth event.

A bookTicker whose ``u`` equals the ``u`` of a depth event carries the best bid and
ask (price and quantity) of the exchange's book right after that event: an exact,
free oracle. The bookTicker stream is real time and usually arrives *before* the
batched depth event it matches, so checks run from whichever side comes second.

    python -m data_ingestion.audit FILE [FILE ...]

Prints one JSON summary per symbol. Exit status: 0 when every check matched and
every book ended in sync, 1 on any mismatch, 3 when a book ended out of sync (a gap
the recording has no later snapshot to repair), 2 on unreadable input (a file that
cannot be opened, or no stream message in any file).

A file cut short (the last segment of a recorder that was killed) is audited up to
its last complete line: the summary lists it under ``truncated_files`` and a warning
says so on stderr; the exit status is then that of what could be read. Segments of a
data directory given in order (``data/raw/btcusdt/*.gz``) are read as one stream; the
recorder's filters and checkpoint lines are not messages and are skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from config import DEFAULT_SYMBOL_SPECS
from data_ingestion.recording import (
    CHECKPOINT,
    FORCE_ORDER,
    MARK_PRICE,
    OPEN_INTEREST,
    SNAPSHOT,
    ReadStats,
    RecordedMessage,
    SymbolFiltersLine,
    read_recording,
    scan_head,
    symbol_of,
)
from data_ingestion.symbol_specs import spec_inferred
from orderbook.book_state import BookState
from orderbook.sequence_validator import EventOutcome, SequenceValidator
from orderbook.tick_inference import infer_step
from orderbook.ticker_check import TickerCrossCheck, TickerMismatch
from wire.binance import BookTicker, DepthSnapshot, DepthUpdate


@dataclass(slots=True)
class SymbolAudit:
    """Book, sync machine and bookTicker checks of one symbol."""

    symbol: str
    book: BookState
    validator: SequenceValidator
    ticker_check: TickerCrossCheck
    depth_events: int = 0
    snapshots: int = 0

    @classmethod
    def create(cls, symbol: str, tick_size: float) -> SymbolAudit:
        book = BookState(symbol, tick_size)
        return cls(symbol, book, SequenceValidator(symbol, book), TickerCrossCheck(book))

    @property
    def checks(self) -> int:
        return self.ticker_check.checks

    @property
    def mismatches(self) -> int:
        return self.ticker_check.failures

    @property
    def first_mismatch(self) -> TickerMismatch | None:
        return self.ticker_check.first_failure

    def on_message(self, msg: RecordedMessage) -> None:
        data = msg.data
        if isinstance(data, DepthUpdate):
            self.depth_events += 1
            if self.validator.on_depth_event(data) is EventOutcome.APPLIED and self.validator.in_sync:
                self.ticker_check.on_applied(data.final_update_id)
        elif isinstance(data, DepthSnapshot):
            self.snapshots += 1
            self.validator.on_snapshot(data)
            if self.validator.in_sync:
                self.ticker_check.reset()
                self.ticker_check.on_applied(self.book.last_update_id)
        elif isinstance(data, BookTicker):
            self.ticker_check.on_book_ticker(data)

    def summary(self) -> dict[str, Any]:
        c = self.validator.counters
        bids, asks = self.book.depth()
        first = self.first_mismatch
        return {
            "symbol": self.symbol,
            "depth_events": self.depth_events,
            "snapshots": self.snapshots,
            "applied": c.events_applied,
            "dropped_before_sync": c.dropped_before_sync,
            "dropped_stale": c.dropped_stale,
            "malformed": c.malformed,
            "gaps": c.gaps,
            "resyncs": c.resyncs,
            "book_ticker_checks": self.checks,
            "mismatches": self.mismatches,
            "first_mismatch": None
            if first is None
            else {"u": first.update_id, "book_ticker": first.book_ticker, "book": first.book},
            "state": self.validator.state.value,
            "reason": self.validator.reason,
            "final_last_update_id": self.book.last_update_id,
            "bid_levels": bids,
            "ask_levels": asks,
        }


# Lines the audit passes over: the checkpoint (the audit rebuilds the book itself) and the
# derivatives context (liquidations, mark price, open interest), which no book check uses.
_NOT_AUDITED = frozenset({CHECKPOINT, FORCE_ORDER, MARK_PRICE, OPEN_INTEREST})


def audit_messages(
    messages: Iterable[RecordedMessage], ticks: Mapping[str, float] | None = None
) -> dict[str, SymbolAudit]:
    """Run the audit over messages in file order; one SymbolAudit per symbol, at the
    tick of the recording's filters line, else ``ticks[symbol]``, else the finest
    step the first message prints (exact, only costlier).

    A snapshot line carries no symbol: it belongs to the symbol of the stream
    messages around it (a recording is one symbol a file)."""
    audits: dict[str, SymbolAudit] = {}
    known: dict[str, float] = dict(ticks or {})
    current: str | None = None
    early_snapshots: list[RecordedMessage] = []
    for msg in messages:
        if isinstance(msg.data, SymbolFiltersLine):
            known[msg.data.symbol.lower()] = float(msg.data.tick_size)
            continue
        if msg.kind in _NOT_AUDITED:
            continue
        if msg.kind == SNAPSHOT:
            if current is None:
                early_snapshots.append(msg)
            else:
                audits[current].on_message(msg)
            continue
        sym = symbol_of(msg)
        if sym is None:
            continue
        audit = audits.get(sym)
        if audit is None:
            tick = known.get(sym)
            if tick is None:
                data = msg.data
                sample: list[str] = []
                if isinstance(data, DepthUpdate):
                    sample = [p for p, _q in data.bids + data.asks]
                elif isinstance(data, BookTicker):
                    sample = [data.bid_price, data.ask_price]
                step = infer_step(sample, min_distinct=10**9)  # the finest printed step
                tick = step.step if step is not None else 1e-8
            audit = audits[sym] = SymbolAudit.create(sym, tick)
        current = sym
        if early_snapshots:
            for snap in early_snapshots:
                audit.on_message(snap)
            early_snapshots.clear()
        audit.on_message(msg)
    return audits


def recording_ticks(paths: Sequence[str]) -> dict[str, float]:
    """symbol -> tick of each recording: its filters line, else inferred from its
    first snapshot and depth events (logged)."""
    ticks: dict[str, float] = {}
    for path in paths:
        head = scan_head(path)
        if head.symbol is None or head.symbol in ticks:
            continue
        if head.filters is not None:
            ticks[head.symbol] = float(head.filters.tick_size)
        else:
            spec = spec_inferred(head.symbol, head.prices, head.qtys, DEFAULT_SYMBOL_SPECS.get(head.symbol))
            if spec is not None:
                ticks[head.symbol] = spec.tick_size
    return ticks


def audit_files(paths: Sequence[str], stats: ReadStats | None = None) -> dict[str, SymbolAudit]:
    return audit_messages(read_recording(paths, stats), recording_ticks(paths))


def _with_progress(messages: Iterable[RecordedMessage], stats: ReadStats) -> Iterable[RecordedMessage]:
    """Pass messages through, drawing a progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        yield from messages
        return
    last = -1
    for i, msg in enumerate(messages):
        if i % 2000 == 0 and stats.bytes_total:
            pct = int(100 * stats.bytes_read / stats.bytes_total)
            if pct != last:
                last = pct
                bar = "#" * (pct // 4)
                sys.stderr.write(f"\raudit [{bar:<25}] {pct:3d}% {stats.lines:,} lines")
                sys.stderr.flush()
        yield msg
    sys.stderr.write(f"\raudit [{'#' * 25}] 100% {stats.lines:,} lines\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_ingestion.audit",
        description="Rebuild books from recordings through the futures sync rules and "
        "check them against every bookTicker that names an applied depth event.",
    )
    parser.add_argument("files", nargs="+", help="recording files (<ns> <json> lines, gzip or plain), in order")
    args = parser.parse_args(argv)
    stats = ReadStats()
    try:
        audits = audit_messages(_with_progress(read_recording(args.files, stats), stats), recording_ticks(args.files))
    except OSError as exc:
        print(f"audit: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    status = 0
    for audit in audits.values():
        summary = audit.summary()
        summary["lines"] = stats.lines
        summary["garbage_lines"] = stats.garbage
        if stats.first_garbage is not None:
            summary["first_garbage_line"] = stats.first_garbage
        summary["truncated_files"] = stats.truncated_files
        print(orjson.dumps(summary).decode())
        if audit.mismatches:
            status = 1
        elif not audit.validator.in_sync and status == 0:
            status = 3
    if not audits:
        print(orjson.dumps({"error": "no stream messages found", "lines": stats.lines,
                            "garbage_lines": stats.garbage, "truncated_files": stats.truncated_files}).decode())
        return 2
    return status


if __name__ == "__main__":
    raise SystemExit(main())
