"""A checkpoint of a book rebuilt from the real recording, resumed by a fresh
validator, then both fed the rest of the recording: the same book, level for level,
and every bookTicker of the rest agrees with the resumed one."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from config import load_settings
from data_ingestion.audit import recording_ticks
from data_ingestion.feed import SymbolFeed
from data_ingestion.recording import read_recording
from orderbook.book_state import BookState, MalformedLevel
from orderbook.sequence_validator import EventOutcome, SequenceValidator, SyncState
from orderbook.ticker_check import TickerCrossCheck
from wire.binance import BookTicker, DepthSnapshot, DepthUpdate


def _feed(symbol: str, tick: float) -> SymbolFeed:
    settings = load_settings(environ={})
    spec = settings.spec(symbol)
    assert spec.tick_size == tick
    return SymbolFeed(symbol, spec, settings)


@pytest.mark.parametrize("which", ["btc_file", "eth_file"])
def test_a_checkpoint_resumes_to_the_same_book(which: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(which)
    symbol, tick = next(iter(recording_ticks([str(path)]).items()))
    feed = _feed(symbol, tick)
    messages = list(read_recording([str(path)]))
    depth_seen = 0
    cut = None
    for i, msg in enumerate(messages):
        data = msg.data
        if isinstance(data, DepthSnapshot):
            feed.on_snapshot_body(data)
        elif isinstance(data, DepthUpdate):
            feed.on_depth(data, 0, msg.ts_recv_ns)
            depth_seen += feed.in_sync
            if depth_seen >= 200:  # well into the recording, in sync
                cut = i + 1
                break
    assert cut is not None and feed.in_sync
    line = feed.checkpoint_line()
    assert line is not None
    body = msgspec.json.decode(line)["bookCheckpoint"]
    assert body["symbol"] == symbol.upper() and body["lastUpdateId"] == feed.book.last_update_id

    resumed = BookState(symbol, tick)
    validator = SequenceValidator(symbol, resumed)
    validator.resume_from_checkpoint(body["lastUpdateId"], body["bids"], body["asks"])
    assert validator.state is SyncState.SYNCED
    assert dict(resumed.bids) == dict(feed.book.bids) and dict(resumed.asks) == dict(feed.book.asks)

    check = TickerCrossCheck(resumed)
    applied = 0
    for msg in messages[cut:]:
        data = msg.data
        if isinstance(data, DepthUpdate):
            feed.on_depth(data, 0, msg.ts_recv_ns)
            outcome = validator.on_depth_event(data)
            assert outcome in (EventOutcome.APPLIED, EventOutcome.DROPPED_STALE), outcome
            if outcome is EventOutcome.APPLIED:
                applied += 1
                check.on_applied(data.final_update_id)
        elif isinstance(data, BookTicker):
            check.on_book_ticker(data)
    assert applied > 100 and validator.state is SyncState.SYNCED
    assert dict(resumed.bids) == dict(feed.book.bids) and dict(resumed.asks) == dict(feed.book.asks)
    assert check.checks > 50 and check.failures == 0


def test_a_checkpoint_with_a_bad_level_is_refused() -> None:
    book = BookState("btcusdt", 0.1)
    validator = SequenceValidator("btcusdt", book)
    with pytest.raises(MalformedLevel):
        validator.resume_from_checkpoint(7, [("100.0", "x")], [])
    assert validator.state is SyncState.AWAITING_SNAPSHOT and not book.bids


def test_no_checkpoint_while_out_of_sync() -> None:
    feed = _feed("btcusdt", 0.1)
    assert feed.checkpoint_line() is None
