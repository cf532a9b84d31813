"""The live path as Binance behaves today, each case played by the simulated exchange:
quiet symbols on live connections, liveness pings, bookTicker mismatches under RPI,
HTTP 451, exchangeInfo filters and status, silent streams, many streams a connection."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

import httpx
import orjson
import pytest

from config import SymbolSpec, load_settings
from data_ingestion.connection import StreamConnection, url_and_overflow
from data_ingestion.feed import SymbolFeed
from exchange_sim import SimConfig, SimExchange
from main import App
from sim_stack import WAIT_CEILING_S
from tests.conftest import REPO
from tests.stack import book_mismatches, running_stack
from wire.binance import event_decoder, snapshot_decoder

SPEC = SymbolSpec(0.1, 0.001, 1, 3, 20)


# --- quiet is not dead ----------------------------------------------------------------------
async def test_a_paused_market_is_quiet_not_stale_and_costs_no_resync() -> None:
    """The market stops for 15 s (three liveness pings answered at the default 5 s
    silence): no reconnect, no resync, the books stay served as quiet, and equal the
    exchange's once it moves again."""
    async with running_stack(symbols=("btcusdt", "ethusdt")) as h:
        await h.wait_synced()
        conns = h.stack.runtime.connections
        assert all(c._ws is not None and c._ws.ping_timeout == 60.0 for c in conns)  # keepalive: 60 s pong
        connects = [c.connects for c in conns]
        resyncs = {s: h.feed(s).validator.counters.resyncs for s in ("btcusdt", "ethusdt")}
        public = next(c for c in conns if c.name.startswith("public"))
        pongs = public.pongs_received
        h.sim.pause()
        try:
            await h.wait_for(lambda: public.pongs_received >= pongs + 3, 60, "three answered liveness pings")
            async with httpx.AsyncClient(base_url=h.api_url) as http:
                body = (await http.get("/health")).json()
                assert body["status"] == "healthy", body["sync"]
                for sym in ("btcusdt", "ethusdt"):
                    assert body["sync"][sym]["state"] == "quiet"
                    assert body["sync"][sym]["last_message_age_s"] >= h.settings.stale_after_s
                    assert (await http.get(f"/book/{sym}?depth=1")).status_code == 200
        finally:
            h.sim.resume()
        for sym in ("btcusdt", "ethusdt"):
            feed = h.feed(sym)
            start = feed.validator.counters.events_applied
            await h.wait_for(lambda f=feed, n=start: f.validator.counters.events_applied >= n + 5, 30,  # type: ignore[misc]
                             f"{sym} moving again")
            assert feed.validator.counters.resyncs == resyncs[sym]
            assert feed.display_state().value == "synced"
            assert book_mismatches(feed, h.sim) == []
        assert [c.connects for c in conns] == connects
        assert all(c.stale_closes == 0 for c in conns)


# --- bookTicker mismatches ------------------------------------------------------------------
def _decode(event: dict[str, Any]) -> Any:
    return event_decoder.decode(orjson.dumps(event))


def _synced_feed(**overrides: Any) -> SymbolFeed:
    settings = load_settings(environ={}, **overrides)
    feed = SymbolFeed("btcusdt", SPEC, settings)
    feed.on_depth(_decode({"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 95, "u": 101, "pu": 90,
                           "b": [["100.0", "1.000"]], "a": [["100.1", "1.000"]]}), 0, 0)
    feed.on_snapshot_body(snapshot_decoder.decode(
        b'{"lastUpdateId": 100, "bids": [["100.0", "2.000"]], "asks": [["100.1", "2.000"]]}'))
    assert feed.in_sync
    return feed


def _step(feed: SymbolFeed, u: int, bid_qty: str, ticker_bid_qty: str) -> None:
    """A bookTicker naming u (it comes first, as on Binance), then depth event u."""
    ticker = {"e": "bookTicker", "u": u, "s": "BTCUSDT", "b": "100.0", "B": ticker_bid_qty, "a": "100.1",
              "A": "1.000"}
    feed.on_book_ticker(_decode(ticker), f"raw-ticker-{u}")
    feed.on_depth(_decode({"e": "depthUpdate", "E": u, "s": "BTCUSDT", "U": u, "u": u, "pu": u - 1,
                           "b": [["100.0", bid_qty]], "a": []}), 0, 0, f"raw-depth-{u}")


def test_one_ticker_mismatch_keeps_the_book_two_in_a_row_resync(caplog: pytest.LogCaptureFixture) -> None:
    feed = _synced_feed()
    caplog.set_level(logging.ERROR, logger="feed")
    _step(feed, 102, "3.000", "3.001")  # one mismatch: logged, book kept
    assert feed.in_sync and feed.ticker_check.failures == 1
    assert "raw-ticker-102" in caplog.text and "raw-depth-102" in caplog.text
    assert feed.feed_info()["book_ticker_last_mismatch"]["update_id"] == 102
    _step(feed, 103, "4.000", "4.000")  # a match resets the run
    assert feed.in_sync and feed.ticker_check.consecutive_failures == 0
    _step(feed, 104, "5.000", "5.001")
    assert feed.in_sync
    _step(feed, 105, "6.000", "6.001")  # two in a row: resync
    assert not feed.in_sync
    assert feed.validator.counters.resyncs == 1
    last = feed.feed_info()["book_ticker_last_mismatch"]
    assert last["update_id"] == 105 and last["consecutive"] == 2 and last["resynced"] is True
    assert "2 times in a row" in feed.validator.reason


def test_count_only_ticker_check_never_resyncs() -> None:
    feed = _synced_feed(ticker_check_count_only=True)
    for u in range(102, 110):
        _step(feed, u, "3.000", "3.001")
    assert feed.in_sync and feed.ticker_check.failures == 8
    assert feed.feed_info()["book_ticker_last_mismatch"]["resynced"] is False


async def test_a_burst_of_wrong_tickers_resyncs_and_the_book_equals_the_exchange() -> None:
    async with running_stack(symbols=("btcusdt",), push_interval_s=0.5) as h:
        await h.wait_synced()
        feed = h.feed("btcusdt")
        resyncs = feed.validator.counters.resyncs
        # Wrong tickers until the resync, then cleared: on the livelier market only a few
        # per cent of depth events share their u with a bookTicker, so a fixed number of
        # wrong tickers could run out after a single check (one in a row keeps the book).
        h.sim.set_fault("btcusdt", "ticker_mismatch", count=100_000)
        await h.wait_for(lambda: feed.validator.counters.resyncs > resyncs, WAIT_CEILING_S, "a resync after mismatches")
        async with httpx.AsyncClient(base_url=h.api_url) as http:
            last = (await http.get("/health")).json()["monitoring"]["btcusdt"]["book_ticker_last_mismatch"]
        assert last["consecutive"] >= 2 and last["book_ticker"]["B"] != last["book"]["B"]
        h.sim.clear_faults()
        await h.wait_synced()
        start = feed.validator.counters.events_applied
        await h.wait_for(lambda: feed.validator.counters.events_applied >= start + 5, WAIT_CEILING_S,
                         "events after resync")
        assert book_mismatches(feed, h.sim) == []


# --- HTTP 451 ---------------------------------------------------------------------------------
async def test_restricted_location_with_source_binance_exits_2_in_one_line() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, episodes=False, restricted_location=True))
    urls = await sim.start(port=0)
    try:
        env = {**os.environ, "LIQ_REST_BASE_URL": urls.rest_base_url, "LIQ_WS_PUBLIC_URL": urls.ws_public_url,
               "LIQ_WS_MARKET_URL": urls.ws_market_url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "main.py", "--source", "binance", "--symbols", "btcusdt", "--no-dashboard",
            "--api-port", "0", "--no-history", cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await sim.stop()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2, lines
    assert len(lines) == 1 and "restricted location" in lines[0] and "HTTP 451" in lines[0], lines
    assert "Traceback" not in err.decode()


async def test_restricted_location_with_source_auto_falls_back_to_the_simulated_market() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, episodes=False, restricted_location=True))
    urls = await sim.start(port=0)
    app = App(load_settings(environ={}, source="auto", symbols=("btcusdt",), rest_base_url=urls.rest_base_url))
    try:
        source = await app.choose_source()
    finally:
        if app.sim is not None:
            await app.sim.stop()
        await sim.stop()
    assert source.kind == "sim"
    assert "Binance refuses this location (HTTP 451)" in source.reason


# --- exchangeInfo -------------------------------------------------------------------------------
async def test_tick_and_lot_come_from_exchange_info_with_a_warning_where_they_differ(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="specs")
    wrong = {"btcusdt": SymbolSpec(1.0, 0.01, 0, 2, 2)}  # configured: a 1 USDT tick, 2 ticks a bin
    async with running_stack(symbols=("btcusdt",), symbol_specs=wrong) as h:
        spec = h.feed("btcusdt").spec
        assert (spec.tick_size, spec.lot_size, spec.price_decimals, spec.qty_decimals) == (0.1, 0.001, 1, 3)
        assert spec.heatmap_bin_ticks == 20  # the bin keeps its 2 USDT width
        await h.wait_synced()
        assert book_mismatches(h.feed("btcusdt"), h.sim) == []
    assert "btcusdt: exchangeInfo says tick 0.1" in caplog.text


async def test_a_symbol_not_trading_is_refused() -> None:
    with pytest.raises(RuntimeError, match="ethusdt: status SETTLING"):
        async with running_stack(symbols=("btcusdt", "ethusdt"), sim_config={"symbol_status": {"ethusdt": "SETTLING"}}):
            pass


# --- silent streams, many streams ---------------------------------------------------------------
async def test_a_stream_on_the_wrong_route_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    """Binance accepts a misrouted stream and sends nothing: the client says so."""
    caplog.set_level(logging.WARNING, logger="connection")
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, episodes=False))
    urls = await sim.start(port=0)
    settings = load_settings(environ={}, symbols=("btcusdt",), stream_silence_warn_s=1.0)
    feed = SymbolFeed("btcusdt", SPEC, settings)
    conn = StreamConnection("public#0", urls.ws_public_url,
                            {"btcusdt@bookTicker": ("bookTicker", feed), "btcusdt@aggTrade": ("aggTrade", feed)},
                            settings)
    task = asyncio.create_task(conn.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while "no data on stream btcusdt@aggTrade" not in caplog.text:
            assert asyncio.get_running_loop().time() < deadline, "no warning about the silent stream"
            await asyncio.sleep(0.05)
        assert feed.monitor.book_tickers > 0  # the well-routed stream flows
        ticks = feed.monitor.book_tickers
        while feed.monitor.book_tickers < ticks + 200:  # long after: still one warning
            await asyncio.sleep(0.05)
        assert caplog.text.count("no data on stream btcusdt@aggTrade") == 1
        assert "btcusdt@bookTicker" not in caplog.text
    finally:
        await conn.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()


def test_url_carries_what_fits_and_the_rest_is_subscribed() -> None:
    streams = [f"s{i:04d}usdt@depth@100ms" for i in range(1024)]
    url, rest = url_and_overflow("wss://fstream.binance.com/public", streams, 2000)
    assert len(url) <= 2000 and url.startswith("wss://fstream.binance.com/public/stream?streams=s0000usdt")
    carried = url.split("streams=", 1)[1].split("/")
    assert carried + rest == streams and rest
    url, rest = url_and_overflow("ws://h/public", ["a@depth"], 5)  # one stream always goes in the URL
    assert url == "ws://h/public/stream?streams=a@depth" and rest == []


async def test_streams_beyond_the_url_arrive_through_subscribe() -> None:
    """A URL too short for all streams: the rest are SUBSCRIBEd and every feed syncs."""
    async with running_stack(symbols=("btcusdt", "ethusdt"), ws_url_max_chars=60) as h:
        await h.wait_synced()
        await h.wait_for(lambda: all(h.feed(s).monitor.trades > 0 and h.feed(s).monitor.book_tickers > 0
                                     for s in ("btcusdt", "ethusdt")), 30, "trades and tickers of both")
        conns = h.stack.runtime.connections
        assert sum(len(c.overflow) for c in conns) >= 3
        assert all(c.subscribe_errors == 0 for c in conns)
        for sym in ("btcusdt", "ethusdt"):
            assert book_mismatches(h.feed(sym), h.sim) == []
