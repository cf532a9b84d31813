"""The screener against the simulated exchange's market, over real sockets: rows
equal to what the exchange's true books give, GET /screener's sorting, filtering,
limits and 422s, /ws/screener's snapshot then changed rows, a symbol leaving
TRADING dropped, malformed messages counted and skipped.

Rows against the truth (the exchange's own state, read at the update id of the last
partial book received, or as it last sent its mark price and mini ticker): mid,
spread, depth within 10 and 25 bps, top-20 imbalance to 0.1 % (0.01 absolute);
the largest wall (side, price, size) and the count of walls exactly; funding rate
to 1e-8 (sent with 8 decimals); 24 h quote volume to 0.01 USDT and change to the
two ticks its last and open prices are rounded to."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from exchange_sim.protocol import StreamKey, dumps
from exchange_sim.venue import KEY_ALL_MINI_TICKER
from tests.api.wsclient import read_until_closed, stalled_client
from tests.stack import StackHandle, last_published_u, running_stack
from tests.waiting import wait_until

MARKET = "50"
SUFFIX = "@depth20@500ms"
SAMPLE = ("btcusdt", "ethusdt", "solusdt", "dogeusdt", "xrpusdt")


def stack(**overrides: Any) -> Any:
    return running_stack(symbols=("btcusdt",), screener=True, sim_market=MARKET,
                         sim_config={"warmup_s": 5.0}, **overrides)


def rows_ready(h: StackHandle, symbols: tuple[str, ...] = SAMPLE) -> bool:
    pub = h.stack.screener
    assert pub is not None
    by = {r["symbol"]: r for r in pub.rows}
    return all(s in by and by[s]["mid"] is not None and by[s]["quote_volume_24h"] is not None for s in symbols)


def expected_from_truth(h: StackHandle, symbol: str) -> dict[str, Any]:
    """mid, spread, depth within 10 and 25 bps, top-20 imbalance and the largest wall
    (by notional, of the levels at least 5x the median top-20 size of their side) of
    the exchange's true book at the update id of the last partial book received (the
    steps of an unfinished 500 ms window are not published yet)."""
    state = h.stack.market.state  # type: ignore[union-attr]
    truth = h.sim.true_book(symbol, update_id=state.symbols[symbol].book_u)
    bids = [(float(p), float(q)) for p, q in truth.bids[:20]]
    asks = [(float(p), float(q)) for p, q in truth.asks[:20]]
    mid = (bids[0][0] + asks[0][0]) / 2
    bq, aq = sum(q for _p, q in bids), sum(q for _p, q in asks)
    walls = []
    for side, levels in (("bid", bids), ("ask", asks)):
        sizes = sorted(q for _p, q in levels)
        n = len(sizes)
        median = sizes[n // 2] if n % 2 else (sizes[n // 2 - 1] + sizes[n // 2]) / 2
        walls += [(side, p, q) for p, q in levels if q >= 5 * median]
    return {
        "mid": mid,
        "spread_bps": (asks[0][0] - bids[0][0]) / mid * 1e4,
        "depth10_bid": sum(p * q for p, q in bids if p >= mid * (1 - 0.0010)),
        "depth10_ask": sum(p * q for p, q in asks if p <= mid * (1 + 0.0010)),
        "depth25_bid": sum(p * q for p, q in bids if p >= mid * (1 - 0.0025)),
        "depth25_ask": sum(p * q for p, q in asks if p <= mid * (1 + 0.0025)),
        "imbalance20": (bq - aq) / (bq + aq),
        "walls": len(walls),
        "wall": max(walls, key=lambda w: w[1] * w[2]) if walls else None,
    }


def derivatives_match(h: StackHandle, row: dict[str, Any], tickers: dict[str, tuple[float, float, float]]) -> bool:
    """The row's funding rate equal to the exchange's (its mark-price state, which does
    not move while the market is paused: it is sent every second, 8 decimals), its
    24 h quote volume and change equal to the exchange's state when it last sent its
    mini ticker (``tickers``: quote volume, last price, open), within what the
    message's rounding allows: volume to 0.01 USDT, last and open to one tick each."""
    stats = h.sim.state(row["symbol"]).stats
    if row["funding_rate"] is None or abs(row["funding_rate"] - stats.funding_rate()) > 1e-8:
        return False
    if row["symbol"] not in tickers:
        return False
    volume, last, open_ = tickers[row["symbol"]]
    tick = h.sim.state(row["symbol"]).market.spec.tick_size
    change = (last - open_) / open_ * 100
    return (row["quote_volume_24h"] is not None and abs(row["quote_volume_24h"] - volume) <= 0.011
            and row["change_24h_pct"] is not None and abs(row["change_24h_pct"] - change) <= 2 * tick / open_ * 100)


async def test_rows_equal_the_exchange_truth_and_the_query_is_checked() -> None:
    async with stack() as h:
        pub = h.stack.screener
        state = h.stack.market.state  # type: ignore[union-attr]
        assert pub is not None and len(state.symbols) == int(MARKET)  # btcusdt is among the 50
        # the exchange's 24 h figures of each symbol as it sends them in !miniTicker@arr
        tickers: dict[str, tuple[float, float, float]] = {}
        hub = h.sim.hub
        publish = hub.publish

        def noting_tickers(key: StreamKey, data: Any) -> None:
            if key == KEY_ALL_MINI_TICKER:
                for event in orjson.loads(data):
                    stats = h.sim.state(event["s"].lower()).stats
                    tickers[event["s"].lower()] = (stats.quote_volume, stats.last_price, stats.open)
            publish(key, data)
        hub.publish = noting_tickers  # type: ignore[method-assign]
        await wait_until(lambda: rows_ready(h), what="rows of the sampled symbols")
        h.sim.pause()
        try:
            await wait_until(lambda: all(state.symbols[s].book_u == last_published_u(h.sim, s, SUFFIX)
                                         for s in SAMPLE), what="the last partial books received")
            frames = pub.frames
            await wait_until(lambda: pub.frames >= frames + 1, what="a screener frame after the pause")
            by = {r["symbol"]: r for r in pub.rows}
            walls_seen = 0
            for sym in SAMPLE:
                want = expected_from_truth(h, sym)
                wall = want.pop("wall")
                for key, value in want.items():
                    assert by[sym][key] == pytest.approx(value, rel=1e-3, abs=0.01), (sym, key)
                assert by[sym]["stale"] is False
                got = by[sym]["wall"]
                assert (got is None) == (wall is None), (sym, got, wall)
                if wall is not None:
                    walls_seen += 1
                    assert got["side"] == wall[0], sym
                    assert (got["price"], got["size"]) == pytest.approx(wall[1:], rel=1e-9), sym
                    assert got["notional"] == pytest.approx(wall[1] * wall[2], abs=0.01)   # USDT, to the cent
            assert walls_seen >= 1   # the sample has a wall to compare (the simulated books have some)
            # funding and 24 h figures: the last mark price and mini ticker may still be on
            # their way when the market pauses; each later frame must reach the truth
            await wait_until(lambda: all(derivatives_match(h, r, tickers) for r in pub.rows if r["symbol"] in SAMPLE),
                             what="funding, 24 h volume and change equal to the exchange's")
            assert by["btcusdt"]["focus"] is True and by["ethusdt"]["focus"] is False
        finally:
            h.leave_clean()

        async with httpx.AsyncClient(base_url=h.api_url) as c:
            body = (await c.get("/screener")).json()
            assert body["count"] == int(MARKET) and len(body["rows"]) == int(MARKET)
            assert len(body["rows"][0]["spread_hist"]) == 60 and len(body["rows"][0]["depth25_hist"]) == 60
            vols = [r["quote_volume_24h"] for r in body["rows"]]  # default: quote volume, descending
            present = [v for v in vols if v is not None]
            assert present == sorted(present, reverse=True) and vols[: len(present)] == present
            body = (await c.get("/screener", params={"sort": "spread_bps", "order": "asc", "limit": "5"})).json()
            assert body["count"] == int(MARKET) and len(body["rows"]) == 5
            spreads = [r["spread_bps"] for r in body["rows"]]
            assert spreads == sorted(spreads)
            body = (await c.get("/screener", params={"sort": "symbol", "order": "asc", "q": "USDT"})).json()
            assert [r["symbol"] for r in body["rows"]] == sorted(state.symbols)
            body = (await c.get("/screener", params={"q": "eth"})).json()
            assert body["count"] >= 1 and all("eth" in r["symbol"] for r in body["rows"])
            median_volume = sorted(present)[len(present) // 2]
            body = (await c.get("/screener", params={"min_volume": str(median_volume)})).json()
            assert 0 < body["count"] < int(MARKET)
            assert all(r["quote_volume_24h"] >= median_volume for r in body["rows"])
            for bad in ({"sort": "volume"}, {"order": "up"}, {"limit": "0"}, {"limit": "1001"}, {"limit": "ten"},
                        {"limit": "5.5"}, {"min_volume": "-1"}, {"min_volume": "nan"}, {"min_volume": "inf"},
                        {"min_volume": "1e400"}, {"min_volume": "0x10"}, {"min_volume": ""}):
                r = await c.get("/screener", params=bad)
                assert r.status_code == 422, bad
                assert isinstance(r.json()["error"], str) and "\n" not in r.json()["error"], bad


async def test_ws_screener_sends_a_snapshot_then_only_changed_rows() -> None:
    async with stack(ws_stall_timeout_s=2.0) as h:
        await wait_until(lambda: rows_ready(h), what="rows")
        async with connect(h.ws_url + "/ws/screener") as ws:
            snap = orjson.loads(await ws.recv())
            assert snap["type"] == "snapshot" and len(snap["rows"]) == int(MARKET)
            assert all("spread_hist" not in r and "depth25_hist" not in r for r in snap["rows"])
            table = {r["symbol"]: r for r in snap["rows"]}
            for _ in range(3):
                update = orjson.loads(await ws.recv())
                assert update["type"] == "update" and update["removed"] == []
                assert 0 < len(update["rows"]) <= int(MARKET)
                for row in update["rows"]:
                    assert "spread_hist" not in row
                    before = table[row["symbol"]]
                    assert any(row[k] != before[k] for k in row if k != "ts"), row["symbol"]
                    table[row["symbol"]] = row
            # what the client holds now is what the server holds
            pub = h.stack.screener
            assert pub is not None and pub.ts_ms == update["ts"]
            for sym, row in table.items():
                assert {k: v for k, v in row.items() if k != "ts"} == {
                    k: v for k, v in pub.slim[sym].items() if k != "ts"}, sym
        # A client that stops reading is closed once nothing has left for it for the
        # stall time, long before the kernel's buffers would be full of small updates.
        evicted = h.stack.hub.stats.clients_evicted
        stalled = await stalled_client(h.ws_url + "/ws/screener")
        try:
            await wait_until(lambda: h.stack.hub.stats.clients_evicted > evicted, what="the stalled client closed")
            assert h.stack.hub.stats.last_eviction == "not reading: nothing taken for 2 s"
            assert await read_until_closed(stalled) in ("eof", "reset")
        finally:
            stalled.close()


async def test_a_symbol_leaving_trading_is_dropped_and_malformed_messages_are_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with stack(screener_refresh_s=0.5) as h:
        watch = h.stack.market
        assert watch is not None
        await wait_until(lambda: rows_ready(h), what="rows")
        key = StreamKey("xrpusdt", "partialDepth", 500, 20)
        assert h.sim.hub.has(key)
        # promoted to a full book first: leaving TRADING releases it too
        async with httpx.AsyncClient(base_url=h.api_url) as c:
            assert (await c.post("/focus/xrpusdt")).status_code == 200
        assert "xrpusdt" in h.stack.runtime.feeds
        h.sim.symbol_status["xrpusdt"] = "SETTLING"
        await wait_until(lambda: "xrpusdt" in watch.dropped and not h.sim.hub.has(key),
                         what="xrpusdt dropped and unsubscribed")
        focus = h.stack.focus
        assert focus is not None
        await wait_until(lambda: focus.releases == 1, what="xrpusdt's full book released")
        assert "xrpusdt" not in h.stack.runtime.feeds and "xrpusdt" not in focus.promoted
        said = [r.getMessage() for r in caplog.records]
        assert "xrpusdt: no longer a TRADING USDT perpetual on exchangeInfo; dropped from the screener" in said
        assert "xrpusdt: full-depth book released (no longer TRADING)" in said
        pub = h.stack.screener
        assert pub is not None
        frames = pub.frames
        await wait_until(lambda: pub.frames > frames, what="a frame after the drop")
        assert "xrpusdt" not in {r["symbol"] for r in pub.rows}

        bad_depth = {"e": "depthUpdate", "E": 1, "T": 1, "s": "ETHUSDT", "U": 1, "u": 2, "pu": 0,
                     "b": [["3000.00"]], "a": []}
        bad_tickers = [{"e": "24hrMiniTicker", "E": 1, "s": "ETHUSDT", "c": "x", "o": "1", "h": "1", "l": "1",
                        "v": "1", "q": "1"}, {"e": "24hrMiniTicker", "s": "ETHUSDT"}]
        state = watch.state
        h.sim.hub.publish(StreamKey("ethusdt", "partialDepth", 500, 20), dumps(bad_depth))
        h.sim.hub.publish(KEY_ALL_MINI_TICKER, dumps(bad_tickers))
        await wait_until(lambda: state.malformed["partialDepth"] >= 1 and state.malformed["miniTicker"] >= 2,
                         what="the malformed messages counted")
        async with httpx.AsyncClient(base_url=h.api_url) as c:
            health = (await c.get("/health")).json()["screener"]
            assert health["malformed"]["partialDepth"] >= 1 and health["malformed"]["miniTicker"] >= 2
            metrics = (await c.get("/metrics")).text
            assert 'liq_screener_malformed_total{stream="miniTicker"}' in metrics
            body = (await c.get("/screener", params={"q": "eth"})).json()
            assert any(r["symbol"] == "ethusdt" and r["mid"] is not None for r in body["rows"])
