"""Same seed, same market; and the market looks like the real recordings."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
import websockets

from exchange_sim import SimConfig, SimExchange
from exchange_sim.market import SymbolMarket
from exchange_sim.protocol import DepthAggregator, StreamKey, depth_event
from exchange_sim.realism import (
    REAL,
    RECORDING_FILES,
    RECORDINGS,
    measure,
    measure_real,
    outside_band,
    ratios,
    report,
)
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


# What converges in two simulated minutes (the ten-minute report holds the rest:
# levels discovered after 345 s, 60 s moves, 5-minute ranges).
CONVERGING = ("trades_per_s", "trade_qty_pcts", "changes_per_event", "delete_share", "spread_1tick_share",
              "spread_mean_ticks", "level_size_pcts", "top10_depth_pcts", "book_tickers_per_s")


@pytest.fixture(scope="module")
def two_minutes() -> dict[str, dict[str, Any]]:
    return {s: measure(s, seconds=120, warmup_s=30) for s in ("btcusdt", "ethusdt")}


@pytest.mark.parametrize("symbol", ["btcusdt", "ethusdt"])
def test_two_volatile_minutes_match_the_recordings_within_30_percent(
    two_minutes: dict[str, dict[str, Any]], symbol: str
) -> None:
    """Measured by the code that measures the real files (exchange_sim.realism), at the
    recording's price, in the volatile regime: every figure that converges in two
    minutes is within +/-30 % of the real one."""
    sim = two_minutes[symbol]
    ratio = ratios(sim, REAL[symbol])
    assert outside_band(ratio, CONVERGING) == [], report(symbol, sim, REAL[symbol])
    assert 0.7 <= ratio["mid_std_bps"][0] <= 1.3, report(symbol, sim, REAL[symbol])  # 1 s moves: 120 samples
    assert 19.0 <= sim["depth_events_per_s"] <= 20.1  # one event per 50 ms engine batch that changed the book


@pytest.mark.parametrize("symbol", ["btcusdt", "ethusdt"])
def test_the_real_figures_are_what_the_measuring_code_gives_on_the_recordings(symbol: str) -> None:
    """The table the report falls back to is the measurement of the real files."""
    path = RECORDINGS / RECORDING_FILES[symbol]
    if not path.exists():
        pytest.skip(f"real recording missing: {path}")
    real = measure_real(symbol)
    for key, value in REAL[symbol].items():
        got = real[key]
        if isinstance(value, tuple):
            assert got == pytest.approx(value, rel=0.01, abs=0.002), key
        else:
            assert got == pytest.approx(value, rel=0.01), key


def test_calm_regime_is_quiet_and_volatile_is_busy() -> None:
    calm = measure("btcusdt", seconds=30, warmup_s=10, regime="calm")
    busy = measure("btcusdt", seconds=30, warmup_s=10, regime="volatile")
    assert calm["mid_std_bps"][0] < 0.4 < 1.0 < busy["mid_std_bps"][0]
    assert calm["trades_per_s"] < 0.6 * busy["trades_per_s"]
    assert calm["changes_per_event"][1] < 0.6 * busy["changes_per_event"][1]
