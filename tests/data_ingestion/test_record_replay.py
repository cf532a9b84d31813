"""Record from the simulated exchange, replay the recording: the same book. With
``--record DIR`` and history on, the metric database is in DIR too, under its lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.assembly import Stack
from api.services import SourceInfo
from config import load_settings
from data_ingestion.audit import audit_files
from data_ingestion.recorder import DataDirLocked, Recorder
from data_ingestion.recording import DEPTH, HISTORY_DB, SNAPSHOT, read_recording, segments_of
from tests.stack import book_mismatches, running_stack
from tests.waiting import wait_until


async def replay_books(files: list[str], symbols: tuple[str, ...]) -> Stack:
    settings = load_settings(environ={}, source="replay", replay_files=tuple(files), replay_speed=0.0,
                             api_port=0, symbols=symbols)
    stack = Stack(settings, SourceInfo("replay", "REPLAY", "test"), replay_files=files)
    await stack.start()
    await wait_until(lambda: bool(stack.runtime.replay and stack.runtime.replay.finished), 120, "the replay's end")
    return stack


async def test_record_then_replay_gives_the_same_book(tmp_path: Path) -> None:
    async with running_stack(symbols=("btcusdt",), record_dir=str(tmp_path)) as h:
        await h.wait_synced()
        feed = h.feed("btcusdt")
        applied = feed.validator.counters.events_applied
        await h.wait_for(lambda: feed.validator.counters.events_applied >= applied + 80, what="8 s of events")
        # Freeze the market, let the client take what is in flight (up to the last
        # event the exchange sent), then stop.
        h.sim.pause()
        await h.settled("btcusdt")
        assert book_mismatches(feed, h.sim) == []
        live_bids, live_asks = dict(feed.book.bids), dict(feed.book.asks)
        live_u = feed.book.last_update_id
    files = [str(p) for p in segments_of(tmp_path, "btcusdt")]
    assert files, "nothing was recorded"
    kinds = [m.kind for m in read_recording(files)]
    assert kinds.count(SNAPSHOT) >= 1 and kinds.count(DEPTH) >= 80
    stack = await replay_books(files, ("btcusdt",))
    try:
        replayed = stack.runtime.feeds["btcusdt"]
        assert replayed.in_sync and replayed.display_state() == "synced"
        assert replayed.book.last_update_id == live_u
        assert dict(replayed.book.bids) == live_bids
        assert dict(replayed.book.asks) == live_asks
    finally:
        await stack.stop()


async def test_real_recording_replays_to_the_audit_book(btc_file: Path) -> None:
    audit = audit_files([str(btc_file)])["btcusdt"]
    stack = await replay_books([str(btc_file)], ("btcusdt",))
    try:
        feed = stack.runtime.feeds["btcusdt"]
        assert feed.in_sync
        assert feed.book.last_update_id == audit.book.last_update_id
        assert dict(feed.book.bids) == dict(audit.book.bids)
        assert dict(feed.book.asks) == dict(audit.book.asks)
        # The live cross-check ran on the replayed stream too, and found nothing wrong.
        assert feed.ticker_check.checks == 629 and feed.ticker_check.failures == 0
        health = stack.runtime.replay.as_dict() if stack.runtime.replay else {}
        assert health["finished"] is True
    finally:
        await stack.stop()


async def test_record_dir_holds_the_metric_history_under_its_lock(tmp_path: Path) -> None:
    record, data = tmp_path / "record", tmp_path / "data"
    async with running_stack(symbols=("btcusdt",), history=True, data_dir=str(data), record_dir=str(record)) as h:
        await h.wait_synced()
        store = h.stack.history
        assert store is not None and store.path == record / HISTORY_DB
        await h.wait_for(lambda: store.rows_written >= 2, what="two seconds of metric history")
        assert (record / HISTORY_DB).is_file() and segments_of(record, "btcusdt")
        assert not data.exists()  # --record DIR is the data directory for everything
        with pytest.raises(DataDirLocked):
            Recorder(record)
