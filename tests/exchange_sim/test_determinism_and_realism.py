"""Same seed, same market; and the market looks like the real recordings (loosely)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import websockets

from exchange_sim import SimConfig, SimExchange
from exchange_sim.market import SymbolMarket
from exchange_sim.protocol import DepthAggregator, StreamKey, depth_event
from exchange_sim.realism import measure
from exchange_sim.settings import mid_price_for, spec_for
from tests.exchange_sim.conftest import wait_for
from tests.waiting import CEILING_S


def events_of(seed: int, n: int) -> list[dict]:
    cfg = SimConfig(symbols=("ethusdt",))
    market = SymbolMarket("ethusdt", spec_for(cfg, "ethusdt"), mid_price_for(cfg, "ethusdt"),
                          random.Random(f"{seed}:ethusdt"), 1_700_000_000_000)
    agg = DepthAggregator(100, market.update_id)
    out: list[Any] = []
    while len(out) < n:
        window = agg.add(market.step())
        if window is not None:
            out.append(depth_event(market, window))
    return out


def test_same_seed_same_events_in_process() -> None:
    assert events_of(4, 50) == events_of(4, 50)
    assert events_of(4, 5) != events_of(5, 5)


async def test_same_seed_same_events_over_sockets() -> None:
    """Two exchanges, same seed and start time: the same events, every field included
    (E/T come from simulated time). Each market is held before its first step until
    the client is subscribed, so both clients see the stream from the same event
    whenever their connections happen to open."""
    got: list[list[dict]] = []
    for _ in range(2):
        sim = SimExchange(SimConfig(symbols=("btcusdt",), seed=9, start_ms=1_700_000_000_000, warmup_s=10.0,
                                    episodes=False))
        await sim.start(port=0)
        sim.pause()  # start() returns before the clock's first step
        steps = sim.steps
        try:
            assert sim.urls is not None
            async with websockets.connect(sim.urls.ws_public_url + "/ws/btcusdt@depth@100ms") as ws:
                def subscribed(venue: SimExchange = sim) -> bool:
                    return venue.hub.has(StreamKey("btcusdt", "depth", 100))

                await wait_for(subscribed, what="the subscription")
                assert sim.steps == steps
                sim.resume()
                events = [json.loads(await asyncio.wait_for(ws.recv(), CEILING_S)) for _ in range(15)]
        finally:
            await sim.stop()
        got.append(events)
    assert [e["u"] for e in got[0]] == [e["u"] for e in got[1]]
    assert got[0] == got[1]


def test_realism_figures_loosely_match_the_recordings() -> None:
    fig = measure("btcusdt", seconds=60)
    assert fig["spread_1tick_share"] > 0.9
    assert min(fig["levels_a_side"]) > 1000
    assert 1.0 <= fig["trades_per_s"] <= 100
    assert 9.0 <= fig["depth_events_per_s_100ms"] <= 10.5
    assert 15 <= fig["depth_events_per_s_0ms"] <= 21
    assert fig["changes_per_event"][0] >= 10
    p10, p50, p90, p99, _ = fig["level_size_pcts"]
    assert p90 / p10 > 20  # sizes spread over orders of magnitude
    assert 0.05 < fig["delete_share"] < 0.4
