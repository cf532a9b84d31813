"""``/ws/{symbol}`` with real websocket clients: history then frames in order, the
fan-out to a fast client unaffected by a stalled one (whose drops are counted),
unknown and upper-case symbols."""

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
from tests.stack import StackHandle, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

PUSH = 0.1


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h() -> AsyncIterator[StackHandle]:
    # Big frames (500 levels a side) so that a client which never reads fills its
    # socket buffers within a second or two.
    async with running_stack(push_interval_s=PUSH, ws_client_queue=2, frame_levels=500) as handle:
        await handle.wait_synced(30)
        yield handle


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
    async with ws_connect(f"{h.ws_url}/ws/btcusdt") as ws:
        history = await recv_json(ws)
        frames = [f for _, f in await recv_frames(ws, 10, timeout=10)]
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
    assert abs(time.time() - stamps[-1]) < 2.0


async def test_history_grows_to_the_buffer() -> None:
    # A fresh stack with a 1 s buffer at 0.1 s: history grows from (almost) nothing to 10 frames.
    async with running_stack(symbols=("ethusdt",), push_interval_s=PUSH, buffer_seconds=1.0) as h:
        lengths: list[int] = []
        deadline = time.monotonic() + 15
        while not lengths or lengths[-1] < 10:
            assert time.monotonic() < deadline, lengths
            async with ws_connect(f"{h.ws_url}/ws/ethusdt") as ws:
                history = await recv_json(ws)
            lengths.append(len(history["frames"]))
            seqs = [f["seq"] for f in history["frames"]]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
            await asyncio.sleep(PUSH)
        assert lengths == sorted(lengths), lengths
        assert lengths[0] < 10 and max(lengths) == 10
        # Full: stays at 10, the newest 10.
        async with ws_connect(f"{h.ws_url}/ws/ethusdt") as ws:
            history = await recv_json(ws)
            (_, live), = await recv_frames(ws, 1)
        assert len(history["frames"]) == 10
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
    slow = await stalled_client(f"{h.ws_url}/ws/btcusdt")
    try:
        async with ws_connect(f"{h.ws_url}/ws/btcusdt") as fast, httpx.AsyncClient(base_url=h.api_url) as http:
            await recv_json(fast)  # history
            received: list[tuple[float, dict]] = []
            stats: dict = {}
            deadline = time.monotonic() + 20
            # Keep reading until the stalled client has lost frames, and at least 3 s more.
            seen_drops_at = None
            while seen_drops_at is None or time.monotonic() < seen_drops_at + 3.0:
                assert time.monotonic() < deadline, f"no drops counted for the stalled client: {stats}"
                received += await recv_frames(fast, 1, timeout=2)
                if seen_drops_at is None and len(received) % 5 == 0:
                    stats = (await http.get("/stats")).json()
                    if any(c["dropped"] > 0 for c in stats["slow_clients"]):
                        seen_drops_at = time.monotonic()
            stats = (await http.get("/stats")).json()
    finally:
        slow.close()
    # The fast client got every frame, in order, on time.
    seqs = [f["seq"] for _, f in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the fast client missed frames"
    lags = sorted(t - f["timestamp"] for t, f in received)
    assert lags[len(lags) // 2] < 0.05 and lags[-1] < 0.5, lags[-5:]
    # The publisher kept its cadence (ingestion loop not delayed).
    stamps = [f["timestamp"] for _, f in received]
    assert max(b - a for a, b in zip(stamps, stamps[1:], strict=False)) < 5 * PUSH
    # The stalled client's drops are in /stats.
    slow_entries = [c for c in stats["slow_clients"] if c["symbol"] == "btcusdt"]
    assert len(slow_entries) == 1 and slow_entries[0]["dropped"] > 0
    assert slow_entries[0]["remote"] == "127.0.0.1"
    assert stats["frames_dropped"] > dropped_before
    assert h.feed("btcusdt").in_sync
    # Its handler ends once it is gone.
    await h.wait_for(lambda: h.stack.hub.client_count == 0, 10, "both clients gone")


async def test_every_subscriber_gets_the_same_bytes(h: StackHandle) -> None:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(ws_connect(f"{h.ws_url}/ws/ethusdt")) for _ in range(3)]
        for ws in clients:
            await recv_json(ws)
        first = [await asyncio.wait_for(ws.recv(), 5) for ws in clients]
        # Align on the same seq, then compare the raw text.
        seqs = [orjson.loads(m)["seq"] for m in first]
        target = max(seqs) + 1
        raws = []
        for ws in clients:
            while True:
                raw = await asyncio.wait_for(ws.recv(), 5)
                if orjson.loads(raw)["seq"] == target:
                    raws.append(raw)
                    break
    assert raws[0] == raws[1] == raws[2]
