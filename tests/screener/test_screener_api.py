"""The screener against the simulated exchange's market, over real sockets: rows
equal to what the exchange's true books give, GET /screener's sorting, filtering,
limits and 422s, /ws/screener's snapshot then changed rows, a symbol leaving
TRADING dropped, malformed messages counted and skipped."""

from __future__ import annotations

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


def expected_from_truth(h: StackHandle, symbol: str) -> dict[str, float]:
    """mid, spread, depth within 25 bps and top-20 imbalance of the exchange's true book
    at the update id of the last partial book received (the steps of an unfinished
    500 ms window are not published yet)."""
    state = h.stack.market.state  # type: ignore[union-attr]
    truth = h.sim.true_book(symbol, update_id=state.symbols[symbol].book_u)
    bids = [(float(p), float(q)) for p, q in truth.bids[:20]]
    asks = [(float(p), float(q)) for p, q in truth.asks[:20]]
    mid = (bids[0][0] + asks[0][0]) / 2
    bq, aq = sum(q for _p, q in bids), sum(q for _p, q in asks)
    return {
        "mid": mid,
        "spread_bps": (asks[0][0] - bids[0][0]) / mid * 1e4,
        "depth25_bid": sum(p * q for p, q in bids if p >= mid * (1 - 0.0025)),
        "depth25_ask": sum(p * q for p, q in asks if p <= mid * (1 + 0.0025)),
        "imbalance20": (bq - aq) / (bq + aq),
    }


async def test_rows_equal_the_exchange_truth_and_the_query_is_checked() -> None:
    async with stack() as h:
        pub = h.stack.screener
        state = h.stack.market.state  # type: ignore[union-attr]
        assert pub is not None and len(state.symbols) == int(MARKET)  # btcusdt is among the 50
        await wait_until(lambda: rows_ready(h), what="rows of the sampled symbols")
        h.sim.pause()
        try:
            await wait_until(lambda: all(state.symbols[s].book_u == last_published_u(h.sim, s, SUFFIX)
                                         for s in SAMPLE), what="the last partial books received")
            frames = pub.frames
            await wait_until(lambda: pub.frames >= frames + 1, what="a screener frame after the pause")
            by = {r["symbol"]: r for r in pub.rows}
            for sym in SAMPLE:
                want = expected_from_truth(h, sym)
                for key, value in want.items():
                    assert by[sym][key] == pytest.approx(value, rel=1e-3, abs=0.01), (sym, key)
                assert by[sym]["stale"] is False
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


async def test_a_symbol_leaving_trading_is_dropped_and_malformed_messages_are_counted() -> None:
    async with stack(screener_refresh_s=0.5) as h:
        watch = h.stack.market
        assert watch is not None
        await wait_until(lambda: rows_ready(h), what="rows")
        key = StreamKey("xrpusdt", "partialDepth", 500, 20)
        assert h.sim.hub.has(key)
        h.sim.symbol_status["xrpusdt"] = "SETTLING"
        await wait_until(lambda: "xrpusdt" in watch.dropped and not h.sim.hub.has(key),
                         what="xrpusdt dropped and unsubscribed")
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
