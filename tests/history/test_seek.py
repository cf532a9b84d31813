"""Seeking into the recording: the book at a moment, rebuilt from the last checkpoint
before it, equals the book rebuilt independently from the start of the raw recording
(no checkpoint used) at that moment; frames rebuilt from history show the same book;
a stop of the app is a gap, never filled in; a segment cut short is listed and
logged once, the one being written never."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio

from data_ingestion.recording import read_index, read_recording, segments_of
from history.seek import book_at, covered_ranges, members_of
from orderbook.book_state import BookState
from orderbook.sequence_validator import SequenceValidator
from tests.api.wsclient import expect_close, recv_json, ws_connect
from tests.stack import StackHandle, running_stack
from wire.binance import DepthSnapshot, DepthUpdate

pytestmark = pytest.mark.asyncio(loop_scope="module")

SYM = "btcusdt"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def recorded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[StackHandle, Path]]:
    data = tmp_path_factory.mktemp("data")
    async with running_stack(push_interval_s=0.25, history=True, data_dir=str(data), checkpoint_interval_s=1.0) as h:
        await h.wait_synced()

        def checkpointed_members() -> int:
            return sum(e.checkpoint_u is not None for seg in segments_of(data, SYM) for e in read_index(seg))

        await h.wait_for(lambda: checkpointed_members() >= 4, what="four members with a checkpoint")
        yield h, data


def independent_book(data: Path, at_ns: int) -> tuple[BookState, SequenceValidator]:
    """The book at ``at_ns`` from the very start of the raw recording: its snapshot
    and every depth event, through a fresh validator; checkpoints ignored."""
    book = BookState(SYM, 0.1, 1)
    validator = SequenceValidator(SYM, book)
    for msg in read_recording(segments_of(data, SYM), report=False):
        if msg.ts_recv_ns > at_ns:
            break
        if isinstance(msg.data, DepthUpdate):
            validator.on_depth_event(msg.data)
        elif isinstance(msg.data, DepthSnapshot):
            validator.on_snapshot(msg.data)
    return book, validator


async def test_the_book_at_a_moment_equals_the_book_rebuilt_from_the_start(
        recorded: tuple[StackHandle, Path]) -> None:
    h, data = recorded
    spec = h.stack.runtime.specs[SYM]
    members = await asyncio.to_thread(members_of, data, SYM)
    checkpointed = [m for m in members if m.checkpoint_u is not None]
    assert len(checkpointed) >= 4
    # Moments inside members that start with a checkpoint, and one in the unindexed tail.
    moments = [m.t0_ns + (m.t1_ns - m.t0_ns) // 2 for m in checkpointed[1:4]]
    moments.append(members[-1].t1_ns)
    for moment_ns in moments:
        at = moment_ns / 1e9
        at_ns = int(at * 1e9)  # the moment as the seek reads it (a float of seconds)
        seek = await asyncio.to_thread(book_at, data, SYM, spec, at)
        assert seek is not None and seek.state == "synced", seek
        book, validator = await asyncio.to_thread(independent_book, data, at_ns)
        assert validator.in_sync and seek.last_update_id == book.last_update_id
        assert seek.bids == [(book.price(k), q) for k, q in reversed(book.bids.items())]
        assert seek.asks == [(book.price(k), q) for k, q in book.asks.items()]
        assert seek.checkpoint_ts * 1e9 <= at_ns and seek.events_applied > 0


async def test_history_book_endpoint(recorded: tuple[StackHandle, Path]) -> None:
    h, data = recorded
    members = await asyncio.to_thread(members_of, data, SYM)
    at = members[2].t0_ns / 1e9 + 0.5
    spec = h.stack.runtime.specs[SYM]
    expected = await asyncio.to_thread(book_at, data, SYM, spec, at, 5)
    assert expected is not None
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        body = (await http.get(f"/history/{SYM}/book", params={"at": at, "depth": 5})).json()
        assert body["last_update_id"] == expected.last_update_id and body["in_sync"] is True
        assert body["bids"] == [list(x) for x in expected.bids] and len(body["asks"]) == 5
        before = await http.get(f"/history/{SYM}/book", params={"at": members[0].t0_ns / 1e9 - 3600})
        assert before.status_code == 404 and "recorded:" in before.json()["detail"]
        bad = await http.get(f"/history/{SYM}/book", params={"at": "soon"})
        assert bad.status_code == 422
        assert body["truncated"] == []  # the segment being written is not cut short
        cov = (await http.get(f"/history/{SYM}/coverage")).json()
        # The same ranges as read before, the last one grown by what was recorded since.
        ranges = covered_ranges(members)
        assert len(cov["book_ranges"]) == len(ranges) and cov["book_ranges"][:-1] == ranges[:-1]
        assert cov["book_ranges"][-1][0] == ranges[-1][0] and cov["book_ranges"][-1][1] >= ranges[-1][1]
        assert cov["truncated"] == []


async def test_a_cut_segment_is_listed_and_logged_once(
        recorded: tuple[StackHandle, Path], caplog: pytest.LogCaptureFixture) -> None:
    h, data = recorded
    caplog.set_level(logging.WARNING, logger="history")
    live = segments_of(data, SYM)[-1]
    first = read_index(live)[0]
    # A member cut short in a segment of an earlier run: what a kill -9 leaves behind.
    with open(live, "rb") as fh:
        fh.seek(first.offset)
        head = fh.read(first.length - 200)
    cut = live.with_name(f"{SYM}_20200101T000000Z.gz")
    cut.write_bytes(head)
    try:
        at = next(e for e in read_index(live) if e.checkpoint_u is not None).t0_ns / 1e9 + 0.5
        async with httpx.AsyncClient(base_url=h.api_url) as http:
            for _ in range(3):
                cov = (await http.get(f"/history/{SYM}/coverage")).json()
                assert cov["truncated"] == [cut.name]
                book = (await http.get(f"/history/{SYM}/book", params={"at": at, "depth": 1})).json()
                assert book["in_sync"] is True and book["truncated"] == [cut.name]
    finally:
        cut.unlink()
    # One line for the cut file; none for the live segment, polled six times.
    warned = [m for r in caplog.records if r.levelno >= logging.WARNING and ".gz" in (m := r.getMessage())]
    assert len(warned) == 1 and cut.name in warned[0] and "cut short" in warned[0]


async def test_frames_rebuilt_from_history_show_the_recorded_book(recorded: tuple[StackHandle, Path]) -> None:
    h, data = recorded
    members = await asyncio.to_thread(members_of, data, SYM)
    start = members[2].t0_ns / 1e9 + 0.1
    spec = h.stack.runtime.specs[SYM]
    frames = []
    async with ws_connect(f"{h.ws_url}/ws/{SYM}?from={start}&speed=0") as ws:
        first = await recv_json(ws)
        assert first == {"type": "history", "symbol": SYM, "frames": []}
        for _ in range(6):
            frames.append(await recv_json(ws))
    times = [f["history"]["time"] for f in frames]
    assert times == pytest.approx([start + 0.25 * i for i in range(6)], abs=1e-6)
    assert all(f["history"]["finished"] is False and f["history"]["speed"] == 0 for f in frames)
    for f in frames[:3]:
        seek = await asyncio.to_thread(book_at, data, SYM, spec, f["history"]["time"] - 1e-9, 50)
        assert seek is not None
        assert f["sync"]["state"] == "synced" and f["sync"]["last_update_id"] == seek.last_update_id
        assert [list(x) for x in seek.bids[:10]] == f["bid_levels"][:10]


async def test_frames_from_before_the_first_checkpoint_start_at_it(recorded: tuple[StackHandle, Path]) -> None:
    """A moment of the recording's first member, before any checkpoint (the book was not
    in sync yet): the frames start where the book can first be rebuilt."""
    h, data = recorded
    members = await asyncio.to_thread(members_of, data, SYM)
    assert members[0].checkpoint_u is None, "the run's first member starts before the book is in sync"
    first_checkpoint = next(m for m in members if m.checkpoint_u is not None)
    start = members[0].t0_ns / 1e9 + 0.001
    async with ws_connect(f"{h.ws_url}/ws/{SYM}?from={start}&speed=0") as ws:
        assert (await recv_json(ws))["type"] == "history"
        frame = await recv_json(ws)
    assert frame["history"]["time"] >= start and frame["sync"]["state"] == "synced"
    assert frame["history"]["time"] <= first_checkpoint.t1_ns / 1e9 + 0.25


async def test_bad_history_websocket_requests(recorded: tuple[StackHandle, Path]) -> None:
    h, _ = recorded
    for query, words in (("from=abc", "from must be a number"), ("from=1&speed=500", "speed must be from 0 to 100"),
                         ("from=1000", "nothing recorded")):
        async with ws_connect(f"{h.ws_url}/ws/{SYM}?{query}") as ws:
            with contextlib.suppress(Exception):
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                assert msg["type"] == "history"
            code, reason = await expect_close(ws)
        assert code == 1008 and words in reason, (query, code, reason)


async def test_a_stopped_app_is_a_gap(tmp_path: Path) -> None:
    """Two runs on one data directory: the time between them is a gap in the metric
    history and in the recorded book, never filled in."""
    for _ in range(2):
        async with running_stack((SYM,), push_interval_s=0.25, history=True, data_dir=str(tmp_path),
                                 checkpoint_interval_s=1.0) as h:  # only SYM's history is read
            await h.wait_synced()
            running = h.stack.history
            assert running is not None
            await h.wait_for(lambda: running.rows_written >= 4, what="rows")  # noqa: B023
    from data_ingestion.recording import HISTORY_DB
    from history.store import HistoryStore

    store = HistoryStore(tmp_path / HISTORY_DB, retain_s=1e9)
    try:
        cov = store.coverage(SYM)
    finally:
        store.close()
    assert any(g["reason"] == "no data (not running)" for g in cov["gaps"]), cov
    ranges = covered_ranges(members_of(tmp_path, SYM))
    assert len(ranges) == 2 and ranges[0][1] < ranges[1][0]
