"""Protocol details: REST endpoints and errors, weights, routing, SUBSCRIBE, limits,
and the bookTicker/depth oracle."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from exchange_sim import SimConfig, SimExchange, SimUrls
from tests.exchange_sim.conftest import wait_for
from tests.waiting import CEILING_S


async def test_ping_time_and_exchange_info(http: httpx.AsyncClient) -> None:
    assert (await http.get("/fapi/v1/ping")).json() == {}
    assert isinstance((await http.get("/fapi/v1/time")).json()["serverTime"], int)
    info = (await http.get("/fapi/v1/exchangeInfo")).json()
    filters = {s["symbol"]: {f["filterType"]: f for f in s["filters"]} for s in info["symbols"]}
    assert Decimal(filters["BTCUSDT"]["PRICE_FILTER"]["tickSize"]) == Decimal("0.1")
    assert Decimal(filters["ETHUSDT"]["PRICE_FILTER"]["tickSize"]) == Decimal("0.01")
    assert Decimal(filters["BTCUSDT"]["LOT_SIZE"]["stepSize"]) == Decimal("0.001")


@pytest.mark.parametrize("limit,weight", [(5, 2), (10, 2), (20, 2), (50, 2), (100, 5), (500, 10), (1000, 20)])
async def test_depth_limits_weights_and_format(http: httpx.AsyncClient, limit: int, weight: int) -> None:
    resp = await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": limit})
    assert resp.status_code == 200
    assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) >= weight
    body = resp.json()
    assert set(body) == {"lastUpdateId", "E", "T", "bids", "asks"}
    assert len(body["bids"]) == limit and len(body["asks"]) == limit
    bids = [Decimal(p) for p, _ in body["bids"]]
    asks = [Decimal(p) for p, _ in body["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert all(len(p.split(".")[1]) == 1 and len(q.split(".")[1]) == 3 for p, q in body["bids"])


async def test_depth_default_limit_is_500_and_weight_accumulates(http: httpx.AsyncClient) -> None:
    first = await http.get("/fapi/v1/depth", params={"symbol": "ethusdt"})
    second = await http.get("/fapi/v1/depth", params={"symbol": "ethusdt"})
    assert len(first.json()["bids"]) == 500
    assert int(second.headers["X-MBX-USED-WEIGHT-1M"]) - int(first.headers["X-MBX-USED-WEIGHT-1M"]) in (10, -10)


async def test_rest_errors_are_binance_shaped(http: httpx.AsyncClient) -> None:
    resp = await http.get("/fapi/v1/depth", params={"symbol": "NOPEUSDT"})
    assert resp.status_code == 400 and resp.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert "X-MBX-USED-WEIGHT-1M" in resp.headers
    resp = await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 7})
    assert resp.status_code == 400 and resp.json()["code"] == -1130
    resp = await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": "x"})
    assert resp.status_code == 400 and resp.json()["code"] == -1100
    resp = await http.get("/fapi/v1/depth")
    assert resp.status_code == 400 and resp.json()["code"] == -1102


async def test_weight_budget_gives_429_with_retry_after() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, weight_budget_1m=50, episodes=False))
    urls = await sim.start(port=0)
    try:
        async with httpx.AsyncClient(base_url=urls.rest_base_url) as http:
            codes = [(await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 1000})).status_code
                     for _ in range(3)]
            resp = await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 1000})
        assert codes[:2] == [200, 200] and resp.status_code == 429
        assert int(resp.headers["Retry-After"]) >= 1 and "X-MBX-USED-WEIGHT-1M" in resp.headers
        assert resp.json()["code"] == -1003
    finally:
        await sim.stop()


async def test_unknown_websocket_paths_are_refused(urls: SimUrls) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(urls.ws_base_url + "/private/ws/btcusdt@depth"):
            pass
    assert info.value.response.status_code == 404


@pytest.mark.parametrize("silent", [
    "btcusdt@aggTrade",  # market class on the public route
    "nopeusdt@depth",  # unknown symbol
    "btcusdt@depth@42ms",  # unknown stream
])
async def test_wrong_route_and_unknown_streams_are_accepted_and_silent(urls: SimUrls, silent: str) -> None:
    """Like Binance: the connection opens, the stream is listed, and nothing of it
    ever comes, while the other stream of the same connection flows."""
    async with websockets.connect(f"{urls.ws_public_url}/stream?streams={silent}/btcusdt@bookTicker") as ws:
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        streams: list[str] = []
        listed = None
        while listed is None or len(streams) < 50:
            msg = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
            if msg.get("id") == 1:
                listed = msg["result"]
            else:
                streams.append(msg["stream"])
    assert set(listed) == {silent, "btcusdt@bookTicker"}
    assert set(streams) == {"btcusdt@bookTicker"}


async def test_restricted_location_answers_451_everywhere() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, episodes=False, restricted_location=True))
    urls = await sim.start(port=0)
    try:
        async with httpx.AsyncClient(base_url=urls.rest_base_url) as http:
            for path in ("/fapi/v1/ping", "/fapi/v1/exchangeInfo", "/fapi/v1/depth?symbol=BTCUSDT"):
                resp = await http.get(path)
                assert resp.status_code == 451, path
                assert resp.json()["code"] == 0 and "restricted location" in resp.json()["msg"]
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(urls.ws_public_url + "/ws/btcusdt@depth"):
                pass
        assert info.value.response.status_code == 451
    finally:
        await sim.stop()


async def test_exchange_info_carries_each_symbols_status() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt", "ethusdt"), warmup_s=5.0, episodes=False,
                                symbol_status={"ethusdt": "SETTLING"}))
    urls = await sim.start(port=0)
    try:
        async with httpx.AsyncClient(base_url=urls.rest_base_url) as http:
            info = (await http.get("/fapi/v1/exchangeInfo")).json()
        assert {s["symbol"]: s["status"] for s in info["symbols"]} == {"BTCUSDT": "TRADING", "ETHUSDT": "SETTLING"}
    finally:
        await sim.stop()


@pytest.mark.parametrize("path,stream", [
    ("/public/ws/btcusdt@depth@100ms", None),
    ("/ws/btcusdt@depth", None),
    ("/public/stream?streams=btcusdt@depth@500ms", "btcusdt@depth@500ms"),
    ("/stream?streams=ethusdt@bookTicker", "ethusdt@bookTicker"),
    ("/market/ws/btcusdt@aggTrade", None),
    ("/market/stream?streams=btcusdt@aggTrade", "btcusdt@aggTrade"),
])
async def test_routes_serve_raw_and_combined(urls: SimUrls, path: str, stream: str | None) -> None:
    async with websockets.connect(urls.ws_base_url + path) as ws:
        msg = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
    if stream is None:
        assert "e" in msg
    else:
        assert msg["stream"] == stream and "e" in msg["data"]


async def test_depth_event_fields_and_ids(urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_public_url + "/ws/btcusdt@depth@100ms") as ws:
        events = [json.loads(await asyncio.wait_for(ws.recv(), CEILING_S)) for _ in range(10)]
    for prev, ev in zip(events, events[1:], strict=False):
        assert list(ev) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
        assert ev["s"] == "BTCUSDT" and ev["pu"] == prev["u"] and ev["U"] > prev["u"]
        for side in ("b", "a"):  # one entry per price and side (a price may change sides)
            prices = [p for p, _ in ev[side]]
            assert len(prices) == len(set(prices))
        assert 80 <= ev["E"] - prev["E"] <= 120
    assert any(ev["U"] != prev["u"] + 1 for prev, ev in zip(events, events[1:], strict=False))


async def test_aggtrade_fields(urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_market_url + "/ws/btcusdt@aggTrade") as ws:
        ev = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
    assert set(ev) == {"e", "E", "s", "a", "p", "q", "nq", "f", "l", "T", "m"}
    assert ev["e"] == "aggTrade" and isinstance(ev["m"], bool) and ev["l"] >= ev["f"]
    assert ev["nq"] == ev["q"]  # no RPI orders in the simulated book


async def test_subscribe_unsubscribe_and_list(urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_public_url + "/stream") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth@100ms"], "id": 1}))
        assert json.loads(await ws.recv()) == {"result": None, "id": 1}
        msg = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
        assert msg["stream"] == "ethusdt@depth@100ms"
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 2}))
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["ethusdt@depth@100ms"], "id": 4}))
        replies: dict[int, dict[str, Any]] = {}
        while len(replies) < 3:
            msg = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
            if "id" in msg:
                replies[msg["id"]] = msg
            else:
                assert msg["stream"] != "ethusdt@aggTrade"  # another route's stream: accepted, silent
        assert replies[2] == {"result": None, "id": 2}
        assert replies[3]["result"] == ["ethusdt@depth@100ms", "ethusdt@aggTrade"]
        assert replies[4] == {"result": None, "id": 4}


async def test_more_than_ten_messages_a_second_disconnects(urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_public_url + "/stream") as ws:
        for i in range(12):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), CEILING_S)
    assert ws.close_code == 1008


async def test_at_most_1024_streams_a_connection(urls: SimUrls) -> None:
    """1,024 streams fit one connection (Binance's figure); the 1,025th is refused.
    So many names do not fit a URL: they are added by SUBSCRIBE, 200 a request."""
    names = [f"sym{i}usdt@depth@100ms" for i in range(1023)] + ["btcusdt@bookTicker"]
    async with websockets.connect(urls.ws_public_url + "/stream") as ws:
        for i in range(0, len(names), 200):
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": names[i : i + 200], "id": i}))
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 9999}))
        replies: dict[int, dict[str, Any]] = {}
        while len(replies) < 7:
            msg = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
            if "id" in msg:
                replies[msg["id"]] = msg
    assert all(replies[i] == {"result": None, "id": i} for i in range(0, 1024, 200))
    assert replies[9999]["error"]["code"] == 2 and "too many streams" in replies[9999]["error"]["msg"]


async def test_bookticker_with_depth_u_gives_that_events_best_levels(urls: SimUrls, http: httpx.AsyncClient) -> None:
    """Rebuild from a snapshot; every bookTicker whose u equals a depth u must show
    the local book's best levels right after that depth event."""
    depth: list[dict] = []
    tickers: dict[int, dict] = {}
    async with websockets.connect(
        urls.ws_public_url + "/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker", max_size=None
    ) as ws:

        async def reader() -> None:
            async for raw in ws:
                data = json.loads(raw)["data"]
                if data["e"] == "depthUpdate":
                    depth.append(data)
                else:
                    tickers[data["u"]] = data

        task = asyncio.create_task(reader())
        await wait_for(lambda: len(depth) >= 2, what="depth events")
        snap = (await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 1000})).json()
        await wait_for(lambda: len(depth) >= 30, what="30 depth events")
        task.cancel()
    bids = {Decimal(p): Decimal(q) for p, q in snap["bids"]}
    asks = {Decimal(p): Decimal(q) for p, q in snap["asks"]}
    last_id = snap["lastUpdateId"]
    events = [e for e in depth if e["u"] >= last_id]
    assert events[0]["U"] <= last_id <= events[0]["u"]
    matched = 0
    for ev in events:
        for side, book in (("b", bids), ("a", asks)):
            for p, q in ev[side]:
                if Decimal(q) == 0:
                    book.pop(Decimal(p), None)
                else:
                    book[Decimal(p)] = Decimal(q)
        ticker = tickers.get(ev["u"])
        if ticker is not None:
            best_bid, best_ask = max(bids), min(asks)
            assert (Decimal(ticker["b"]), Decimal(ticker["B"])) == (best_bid, bids[best_bid])
            assert (Decimal(ticker["a"]), Decimal(ticker["A"])) == (best_ask, asks[best_ask])
            matched += 1
    assert matched >= 2


class PingCountingConnection(ClientConnection):
    """A client connection that counts the ping frames the server sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings = 0

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings += 1
        super().process_event(event)


async def test_server_pings_on_its_timer() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, ping_interval_s=0.3, episodes=False))
    urls = await sim.start(port=0)
    try:
        # No stream: nothing but pings arrives (unread data would pause the reading).
        async with websockets.connect(urls.ws_public_url + "/stream", ping_interval=None,
                                      create_connection=PingCountingConnection) as ws:
            assert isinstance(ws, PingCountingConnection)
            await wait_for(lambda: ws.pings >= 3, what="three pings from the server")
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))  # still open, answering
            assert json.loads(await asyncio.wait_for(ws.recv(), CEILING_S)) == {"result": [], "id": 1}
    finally:
        await sim.stop()


async def test_lifetime_closes_with_1001() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, lifetime_s=1.5, episodes=False))
    urls = await sim.start(port=0)
    try:
        asked = time.monotonic()  # before the server's timer can start
        async with websockets.connect(urls.ws_public_url + "/ws/btcusdt@bookTicker", ping_interval=None) as ws:
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), CEILING_S)
        assert ws.close_code == 1001
        assert time.monotonic() - asked >= 1.5  # not before its lifetime
    finally:
        await sim.stop()


async def test_stop_closes_connections_with_a_close_frame() -> None:
    sim = SimExchange(SimConfig(symbols=("btcusdt",), warmup_s=5.0, episodes=False))
    urls = await sim.start(port=0)
    ws = await websockets.connect(urls.ws_public_url + "/ws/btcusdt@depth@100ms")
    await asyncio.wait_for(ws.recv(), CEILING_S)
    await sim.stop()
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), CEILING_S)
    assert ws.close_code == 1001
