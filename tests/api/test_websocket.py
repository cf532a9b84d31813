"""``/ws/{symbol}`` with real websocket clients: history then frames in order, the
fan-out to a fast client unaffected by a stalled one (whose drops are counted),
unknown and upper-case symbols. Every wait is for frames or counts, never for time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.api.wsclient import FRAME_FIELDS, expect_close, recv_frames, recv_json, stalled_client, ws_connect
from tests.stack import StackHandle, book_mismatches, running_stack
from tests.waiting import CEILING_S

pytestmark = pytest.mark.asyncio(loop_scope="module")

PUSH = 0.1


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h() -> AsyncIterator[StackHandle]:
    # Big frames (500 levels a side) so that a client which never reads fills its
    # socket buffers within a second or two.
    async with running_stack(push_interval_s=PUSH, ws_client_queue=2, frame_levels=500) as handle:
        await handle.wait_synced()
        yield handle


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def clean_start(h: StackHandle) -> AsyncIterator[None]:
    """Each test starts with no client left over and the books in sync."""
    await h.wait_for(lambda: h.stack.hub.client_count == 0, what="no client left")
    await h.wait_synced()
    yield
    h.leave_clean()


def check_frame(frame: dict, symbol: str, synced: bool = True) -> None:
    """The fields of docs/frames.md; with ``synced``, the book figures too."""
    missing = [f for f in FRAME_FIELDS if f not in frame]
    assert not missing, missing
    assert frame["type"] == "frame" and frame["symbol"] == symbol
    if not synced:
        return
    assert frame["sync"]["state"] == "synced"
    bids, asks = frame["bid_levels"], frame["ask_levels"]
    assert bids and asks
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    best_bid, best_ask = bids[0][0], asks[0][0]
    assert best_bid < best_ask
    assert frame["mid_price"] == pytest.approx((best_bid + best_ask) / 2, rel=1e-12)
    assert frame["spread"] == pytest.approx(best_ask - best_bid, rel=1e-9, abs=1e-9)
    assert -1.0 <= frame["imbalance"] <= 1.0
    assert best_bid <= frame["microprice"] <= best_ask
    assert frame["total_bid_volume"] > 0 and frame["total_ask_volume"] > 0


async def test_history_then_frames_in_order(h: StackHandle) -> None:
    connected_at = time.time()
    direct_before = h.stack.hub.stats.frames_direct
    async with ws_connect(f"{h.ws_url}/ws/btcusdt") as ws:
        history = await recv_json(ws)
        received = await recv_frames(ws, 10)
    # A client that keeps up is written to straight from the hub (its frames built once
    # for every client), the others through their queue: the order is the same.
    assert h.stack.hub.stats.frames_direct > direct_before
    frames = [f for _, f in received]
    assert history["type"] == "history" and history["symbol"] == "btcusdt"
    assert history["frames"], "history is empty"
    seqs = [f["seq"] for f in history["frames"]] + [f["seq"] for f in frames]
    # Consecutive from the oldest buffered frame through the live ones: nothing lost,
    # nothing repeated between history and the first live frame.
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    for f in history["frames"]:  # the oldest may be from before the first sync
        check_frame(f, "btcusdt", synced=f["sync"]["state"] == "synced")
    for f in frames:
        check_frame(f, "btcusdt")
    stamps = [f["timestamp"] for f in frames]
    assert stamps == sorted(stamps)
    # Wall-clock stamps of when each live frame was built: after the client connected,
    # before it arrived (however long either took).
    for (arrived, f) in received:
        assert connected_at <= f["timestamp"] <= arrived, (connected_at, f["timestamp"], arrived)


async def test_history_grows_to_the_buffer() -> None:
    # A fresh stack with a 1 s buffer at 0.1 s: the history is the newest min(n, 10)
    # of the n frames built so far (seq counts them from 1), however late the client
    # comes; it grows with each new frame until it holds 10, then stays at 10.
    capacity = 10
    async with running_stack(symbols=("ethusdt",), push_interval_s=PUSH, buffer_seconds=1.0) as h:
        lengths: list[int] = []
        while not lengths or lengths[-1] < capacity:
            async with ws_connect(f"{h.ws_url}/ws/ethusdt") as ws:
                history = await recv_json(ws)
            published = h.stack.hub.stats.frames_published
            seqs = [f["seq"] for f in history["frames"]]
            if seqs:
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
                assert len(seqs) == min(seqs[-1], capacity), seqs
            lengths.append(len(seqs))
            def next_frame(before: int = published) -> bool:
                return h.stack.hub.stats.frames_published > before

            await h.wait_for(next_frame, what="the next frame")
        assert lengths == sorted(lengths), lengths
        assert max(lengths) == capacity
        # Full: stays at 10, the newest 10.
        async with ws_connect(f"{h.ws_url}/ws/ethusdt") as ws:
            history = await recv_json(ws)
            (_, live), = await recv_frames(ws, 1)
        assert len(history["frames"]) == capacity
        assert history["frames"][-1]["seq"] + 1 == live["seq"]


async def test_upper_case_symbol(h: StackHandle) -> None:
    async with ws_connect(f"{h.ws_url}/ws/ETHUSDT") as ws:
        history = await recv_json(ws)
        (_, frame), = await recv_frames(ws, 1)
    assert history["symbol"] == "ethusdt"
    check_frame(frame, "ethusdt")


async def test_unknown_symbol_is_closed_with_1008(h: StackHandle) -> None:
    async with ws_connect(f"{h.ws_url}/ws/dogeusdt") as ws:
        code, reason = await expect_close(ws)
    assert code == 1008
    assert "unknown symbol" in reason and "btcusdt" in reason


async def test_stalled_client_does_not_delay_a_fast_one(h: StackHandle) -> None:
    dropped_before = h.stack.hub.stats.frames_dropped
    feed = h.feed("btcusdt")
    slow = await stalled_client(f"{h.ws_url}/ws/btcusdt")
    try:
        async with ws_connect(f"{h.ws_url}/ws/btcusdt") as fast, httpx.AsyncClient(base_url=h.api_url) as http:
            await recv_json(fast)  # history
            received: list[tuple[float, dict]] = []

            def stalled_drops() -> int:
                return sum(s.dropped for s in h.stack.hub.subscribers())

            # Read the fast client until the stalled one has lost frames, then on
            # until it has lost 20 more: counted, not timed.
            while stalled_drops() == 0:
                received += await recv_frames(fast, 1)
            target = stalled_drops() + 20
            applied = feed.validator.counters.events_applied
            while stalled_drops() < target:
                received += await recv_frames(fast, 1)
            stats = (await http.get("/stats")).json()
            # Ingestion went on meanwhile: the book moved, in sync, equal to the exchange's.
            assert feed.validator.counters.events_applied > applied
            assert feed.in_sync and book_mismatches(feed, h.sim) == []
    finally:
        slow.close()
    # The fast client got every frame, in order: with a queue of 2 frames, falling
    # behind by more than that would have cost it frames too.
    seqs = [f["seq"] for _, f in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the fast client missed frames"
    stamps = [f["timestamp"] for _, f in received]
    assert stamps == sorted(stamps)
    # Only the stalled client lost frames, and its drops are in /stats.
    slow_entries = [c for c in stats["slow_clients"] if c["symbol"] == "btcusdt"]
    assert len(stats["slow_clients"]) == 1 and len(slow_entries) == 1 and slow_entries[0]["dropped"] >= 20
    assert slow_entries[0]["remote"] == "127.0.0.1"
    assert stats["frames_dropped"] >= dropped_before + 20
    # Its handler ends once it is gone.
    await h.wait_for(lambda: h.stack.hub.client_count == 0, what="both clients gone")


async def test_every_subscriber_gets_the_same_bytes(h: StackHandle) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(ws_connect(f"{h.ws_url}/ws/ethusdt")) for _ in range(3)]
        for ws in clients:
            await recv_json(ws)
        first = [await asyncio.wait_for(ws.recv(), CEILING_S) for ws in clients]
        # Align on the same seq, then compare the raw text.
        seqs = [orjson.loads(m)["seq"] for m in first]
        target = max(seqs) + 1
        raws = []
        for ws in clients:
            while True:
                raw = await asyncio.wait_for(ws.recv(), CEILING_S)
                if orjson.loads(raw)["seq"] == target:
                    raws.append(raw)
                    break
    assert raws[0] == raws[1] == raws[2]
