"""Every fault does what it says, seen from a plain client."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from exchange_sim import FaultError, SimConfig, SimExchange, SimUrls
from tests.exchange_sim.conftest import wait_for
from tests.waiting import CEILING_S

DEPTH = "/ws/btcusdt@depth@100ms"


async def collect(ws: websockets.ClientConnection, n: int, timeout: float = CEILING_S) -> list[str]:
    return [str(await asyncio.wait_for(ws.recv(), timeout)) for _ in range(n)]


async def test_drop_gives_a_real_pu_gap(sim: SimExchange, urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_public_url + DEPTH) as ws:
        first = json.loads(await ws.recv())
        sim.set_fault("btcusdt", "drop", count=2)
        events = [first] + [json.loads(m) for m in await collect(ws, 6)]
    breaks = [(a["u"], b["pu"]) for a, b in zip(events, events[1:], strict=False) if b["pu"] != a["u"]]
    assert len(breaks) == 1 and breaks[0][1] > breaks[0][0]


async def test_duplicate_and_reorder_are_visible(sim: SimExchange, urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_public_url + DEPTH) as ws:
        await ws.recv()
        sim.set_fault("btcusdt", "duplicate", count=1)
        dup = [json.loads(m) for m in await collect(ws, 4)]
        assert any(a == b for a, b in zip(dup, dup[1:], strict=False))
        sim.set_fault("btcusdt", "reorder")
        events = [json.loads(m) for m in await collect(ws, 5)]
    us = [e["u"] for e in events]
    assert us != sorted(us)
    swapped = [i for i in range(len(us) - 1) if us[i] > us[i + 1]]
    assert len(swapped) == 1
    i = swapped[0]
    assert events[i]["pu"] == events[i + 1]["u"]  # the later event arrived first


@pytest.mark.parametrize("kind", ["json", "fields"])
async def test_malformed_message_arrives(sim: SimExchange, urls: SimUrls, kind: str) -> None:
    async with websockets.connect(urls.ws_public_url + DEPTH) as ws:
        await ws.recv()
        sim.set_fault("btcusdt", "malformed", kind=kind)
        messages = await collect(ws, 3)
    bad = 0
    for raw in messages:
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            bad += 1
            continue
        if "pu" not in msg or "U" not in msg:
            bad += 1
    assert bad == 1


@pytest.mark.parametrize("frame,expected", [(True, 1000), (False, 1006)])
async def test_close_with_and_without_close_frame(sim: SimExchange, urls: SimUrls, frame: bool, expected: int) -> None:
    async with websockets.connect(urls.ws_public_url + DEPTH) as ws:
        await ws.recv()
        result = sim.set_fault("btcusdt", "close", frame=frame)
        assert result["connections"] == 1
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), CEILING_S)
    assert ws.close_code == expected


async def test_rotation_closes_now(sim: SimExchange, urls: SimUrls, http: httpx.AsyncClient) -> None:
    async with websockets.connect(urls.ws_public_url + "/stream?streams=btcusdt@bookTicker") as ws:
        await ws.recv()
        resp = await http.post("/sim/faults", json={"symbol": "btcusdt", "fault": "rotate"})
        assert resp.status_code == 200
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), CEILING_S)
    assert ws.close_code == 1001


async def test_connection_faults_spare_other_symbols(sim: SimExchange, urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_public_url + "/ws/ethusdt@depth@100ms") as ws:
        await ws.recv()
        assert sim.set_fault("btcusdt", "close")["connections"] == 0
        await collect(ws, 3)


async def test_silence_is_silence_then_data_resumes(sim: SimExchange, urls: SimUrls) -> None:
    async with websockets.connect(urls.ws_public_url + DEPTH, ping_interval=None) as ws:
        last = json.loads(await ws.recv())
        started = time.monotonic()  # before the silence starts: the bound below is strict
        sim.set_fault("btcusdt", "silence", seconds=1.5)
        # Events already handed to the socket may still arrive: they continue the pu
        # chain. The first event that breaks it is the first sent after the silence,
        # which cannot be sent before 1.5 s have passed (however late it is read).
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
            if event["pu"] != last["u"]:
                break
            last = event
        assert time.monotonic() - started >= 1.5
        assert event["pu"] > last["u"]  # the events of the silence were not sent
        # And the stream goes on from there.
        following = json.loads(await asyncio.wait_for(ws.recv(), CEILING_S))
        assert following["pu"] == event["u"]


async def test_snapshot_429_418_5xx(sim: SimExchange, http: httpx.AsyncClient) -> None:
    params: dict[str, str | int] = {"symbol": "BTCUSDT", "limit": 100}
    sim.set_fault("btcusdt", "snapshot_429", retry_after=7, count=1)
    resp = await http.get("/fapi/v1/depth", params=params)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert "X-MBX-USED-WEIGHT-1M" in resp.headers
    assert (await http.get("/fapi/v1/depth", params=params)).status_code == 200  # count used up
    sim.set_fault("btcusdt", "snapshot_418")
    resp = await http.get("/fapi/v1/depth", params=params)
    assert resp.status_code == 418 and "Retry-After" in resp.headers
    assert (await http.get("/fapi/v1/depth", params=params)).status_code == 418  # until cleared
    assert (await http.get("/fapi/v1/depth", params={"symbol": "ETHUSDT"})).status_code == 200
    sim.clear_faults("btcusdt")
    sim.set_fault("btcusdt", "snapshot_5xx", status=502, count=1)
    resp = await http.get("/fapi/v1/depth", params=params)
    assert resp.status_code == 502 and resp.json()["code"] == -1001


async def test_slow_snapshot_is_slow(sim: SimExchange, http: httpx.AsyncClient) -> None:
    sim.set_fault("btcusdt", "snapshot_delay", seconds=1.0, count=1)
    started = time.monotonic()
    resp = await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT"})
    assert resp.status_code == 200 and time.monotonic() - started >= 0.95


@pytest.mark.sim_warmup(15.0)  # the exchange must hold the book of 10 s ago
async def test_stale_snapshot_is_older_than_the_stream(
    sim: SimExchange, urls: SimUrls, http: httpx.AsyncClient
) -> None:
    async with websockets.connect(urls.ws_public_url + DEPTH) as ws:
        first = json.loads(await ws.recv())
        sim.set_fault("btcusdt", "snapshot_stale", age_s=10, count=1)
        stale = (await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 1000})).json()
        fresh = (await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 1000})).json()
    assert stale["lastUpdateId"] < first["U"] <= fresh["lastUpdateId"]
    truth = sim.true_book("btcusdt", stale["lastUpdateId"])
    assert [list(x) for x in truth.bids[:1000]] == stale["bids"]


async def test_fault_control_validates(sim: SimExchange, http: httpx.AsyncClient) -> None:
    cases = [
        ({"symbol": "btcusdt", "fault": "explode"}, 400, "unknown fault"),
        ({"symbol": "dogeusdt", "fault": "drop"}, 404, "unknown symbol"),
        ({"symbol": "btcusdt", "fault": "drop", "params": {"count": -1}}, 400, "out of range"),
        ({"symbol": "btcusdt", "fault": "drop", "params": {"count": "x"}}, 400, "must be a number"),
        ({"symbol": "btcusdt", "fault": "drop", "params": {"cnt": 1}}, 400, "unknown parameter"),
        ({"symbol": "btcusdt", "fault": "malformed", "params": {"kind": "xml"}}, 400, "kind"),
        ({"fault": "drop"}, 400, "symbol"),
    ]
    for body, status, text in cases:
        resp = await http.post("/sim/faults", json=body)
        assert resp.status_code == status, body
        assert text in resp.json()["error"]
    resp = await http.post("/sim/faults", content=b"{nope")
    assert resp.status_code == 400
    resp = await http.post("/sim/faults", json={"symbol": "btcusdt", "fault": "snapshot_5xx"})
    assert resp.status_code == 200 and resp.json()["params"]["status"] == 503
    assert "snapshot_5xx" in (await http.get("/sim/faults")).json()["btcusdt"]
    assert (await http.post("/sim/faults", json={"clear": True})).status_code == 200
    assert (await http.get("/sim/faults")).json()["btcusdt"] == {}
    with pytest.raises(FaultError):
        sim.set_fault("btcusdt", "silence", seconds=-1)


async def test_pause_freezes_the_market(sim: SimExchange, http: httpx.AsyncClient) -> None:
    # A second, running market on the same event loop is the reference clock: while
    # it makes 20 steps (however slowly a loaded machine runs both), the paused one
    # makes none.
    reference = SimExchange(SimConfig(symbols=("ethusdt",), seed=1, warmup_s=0.0, episodes=False,
                                      speed=sim.cfg.speed))
    await reference.start(host="127.0.0.1", port=0)
    try:
        assert (await http.post("/sim/pause")).status_code == 200
        before = (await http.get("/sim/book", params={"symbol": "btcusdt"})).json()["update_id"]
        steps, reference_steps = sim.steps, reference.steps
        await wait_for(lambda: reference.steps >= reference_steps + 20, what="20 steps of the running market")
        after = (await http.get("/sim/book", params={"symbol": "btcusdt"})).json()["update_id"]
        assert before == after and sim.steps == steps
    finally:
        await reference.stop()
    assert (await http.post("/sim/resume")).status_code == 200
    await wait_for(lambda: sim.true_book("btcusdt").update_id > after and sim.steps > steps, what="market moving again")


async def test_true_book_errors(sim: SimExchange, http: httpx.AsyncClient) -> None:
    assert (await http.get("/sim/book", params={"symbol": "btcusdt", "update_id": 1})).status_code == 410
    now = sim.true_book("btcusdt").update_id
    assert (await http.get("/sim/book", params={"symbol": "btcusdt", "update_id": now + 10**9})).status_code == 404
    assert (await http.get("/sim/book", params={"symbol": "nope"})).status_code == 404
    assert (await http.get("/sim/book", params={"symbol": "btcusdt", "update_id": "x"})).status_code == 400
