"""An API node in this process against a real NATS server, with the ingest side
played by hand: history from the stream at start, frames passed on as received,
malformed messages counted and skipped, a silent symbol shown stale (in /health
and as stale frames on /ws) until its frames come back, and /book and /simulate
asked of the owner with a 503 and the reason when it cannot answer; the screener
refused with the role it runs in."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema_rs
import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from api.server import bind_api_socket
from bus.api_node import ApiNode
from bus.connection import BusConnection
from bus.messages import Malformed, NodeHealth, OwnerReply, OwnerRequest, SourceState, SymbolState, decode, encode
from bus.nats_server import NatsServer
from config import load_settings
from features.frame import Frame, SyncInfo, json_schema
from features.frame import encode as encode_frame
from tests.api.wsclient import ws_connect
from tests.waiting import CEILING_S, wait_until

CADENCE_S = 0.5


def frame(seq: int, symbol: str = "btcusdt", state: str = "synced") -> bytes:
    return encode_frame(Frame(
        symbol=symbol, timestamp=time.time(), ts_event_ms=int(time.time() * 1000) - 20, seq=seq,
        sync=SyncInfo(state=state, reason="in sync", last_update_id=1000 + seq, last_message_age_s=0.01),
        mid_price=100.0 + seq,
    ))


def health(node: str = "ingest-x", symbols: tuple[str, ...] = ("btcusdt",)) -> bytes:
    return encode(NodeHealth(
        node=node, instance="i1", role="ingest", ts=time.time(), started_at=time.time() - 5, cadence_s=CADENCE_S,
        source=SourceState(kind="sim", label="SIMULATED market", reason="played by the test"),
        symbols=[SymbolState(symbol=s, owned=True, state="synced") for s in symbols],
    ))


@contextlib.asynccontextmanager
async def ingest_side(server: NatsServer) -> AsyncIterator[BusConnection]:
    """A connection that plays the ingest nodes (it also declares the streams)."""
    bus = BusConnection(server.url, "test-ingest", connect_timeout_s=10)
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def api_node(server: NatsServer) -> AsyncIterator[tuple[ApiNode, str]]:
    settings = load_settings(environ={}, role="api", bus_url=server.url, node_name="api-t", host="127.0.0.1",
                             api_port=0, dashboard=False, push_interval_s=CADENCE_S, bus_stale_after_s=1.0,
                             bus_request_timeout_s=0.5)
    node = ApiNode(settings)
    await node.start(bind_api_socket("127.0.0.1", 0), None)
    try:
        yield node, node.api_url
    finally:
        await node.stop()


async def next_frame(ws: ClientConnection, accept: Any = lambda f: True) -> dict[str, Any]:
    async with asyncio.timeout(CEILING_S):
        while True:
            msg = orjson.loads(await ws.recv())
            if msg["type"] == "frame" and accept(msg):
                return msg


async def test_history_from_the_stream_then_live_frames_and_silence_shown_stale(nats_server: NatsServer) -> None:
    schema = jsonschema_rs.validator_for(json_schema())
    async with ingest_side(nats_server) as ingest:
        for seq in range(1, 6):
            await ingest.publish("liq.frame.btcusdt", frame(seq))
        await ingest.publish("liq.health.ingest-x", health())
        await ingest.sync()
        async with (
            api_node(nats_server) as (node, url),
            httpx.AsyncClient(base_url=url, timeout=CEILING_S) as http,
            ws_connect(url.replace("http", "ws") + "/ws/btcusdt") as ws,
        ):
            # A node started after the frames answers history from the stream.
            history = orjson.loads(await ws.recv())
            assert history["type"] == "history" and [f["seq"] for f in history["frames"]] == [1, 2, 3, 4, 5]
            body = (await http.get("/health")).json()
            assert body["role"] == "api" and body["bus"]["history_frames_read"] == 5
            assert [n["node"] for n in body["ingest_nodes"]] == ["ingest-x"]
            assert body["ingest_nodes"][0]["symbols"] == ["btcusdt"]
            assert body["source"]["kind"] == "sim" and "ingest-x" in body["source"]["reason"]
            assert (await http.get("/symbols")).json() == {"symbols": ["btcusdt"]}

            # Live frames are passed on as the ingest node encoded them.
            sent = frame(6)
            await ingest.publish("liq.frame.btcusdt", sent)
            live = await next_frame(ws)
            assert live == orjson.loads(sent)

            # Malformed messages are counted and skipped; the next good frame still goes through.
            await ingest.publish("liq.frame.btcusdt", b"not json")
            await ingest.publish("liq.frame.btcusdt", frame(1, symbol="ethusdt"))  # on another symbol's subject
            await ingest.publish("liq.health.ingest-x", b'{"node": "ingest-x"}')
            await ingest.publish("liq.health.ingest-y", health("ingest-x"))  # a node's health on another's
            await wait_until(lambda: node.counters.malformed.total == 4, what="4 malformed messages counted")
            assert set(node.counters.malformed.counts) == {"FrameHead", "NodeHealth"}
            await ingest.publish("liq.frame.btcusdt", frame(7))
            assert (await next_frame(ws))["seq"] == 7

            # Silence: a stale frame (the last seq, every metric null, the owner named), then /health.
            stale = await next_frame(ws, lambda f: f["sync"]["state"] == "stale")
            assert stale["seq"] == 7 and stale["mid_price"] is None and stale["sync"]["last_update_id"] == 1007
            assert "ingest-x" in stale["sync"]["reason"]
            assert not list(schema.iter_errors(stale))
            body = (await http.get("/health")).json()
            assert body["sync"]["btcusdt"]["state"] == "stale" and body["status"] == "unhealthy"

            # Frames again: served as they come, /health follows.
            await ingest.publish("liq.health.ingest-x", health())
            await ingest.publish("liq.frame.btcusdt", frame(8))
            assert (await next_frame(ws, lambda f: f["sync"]["state"] != "stale"))["seq"] == 8
            body = (await http.get("/health")).json()
            assert body["sync"]["btcusdt"]["state"] == "synced" and body["status"] == "healthy"


async def test_book_and_simulate_are_asked_of_the_owner(nats_server: NatsServer) -> None:
    async with ingest_side(nats_server) as ingest:
        await ingest.publish("liq.health.ingest-x", health())
        await ingest.publish("liq.frame.btcusdt", frame(1))
        await ingest.sync()
        async with api_node(nats_server) as (_node, url), httpx.AsyncClient(base_url=url, timeout=CEILING_S) as http:
            # Nobody answers for the symbol: 503 at once, saying so.
            resp = await http.get("/book/btcusdt", params={"depth": "3"})
            assert resp.status_code == 503 and "no ingest node answers" in resp.json()["detail"]
            assert (await http.get("/book/xrpusdt")).status_code == 404

            # The owner's status and body are passed on as they are.
            asked: list[OwnerRequest] = []
            node_malformed = Malformed()

            async def owner(msg: Any) -> None:
                request = decode(OwnerRequest, msg.data, msg.subject, node_malformed)
                assert request is not None
                asked.append(request)
                await msg.respond(encode(OwnerReply(status=422, body='{"detail":"size must be finite"}',
                                                    node="ingest-x")))

            sub = await ingest.nc.subscribe("liq.ask.btcusdt", cb=owner)
            await ingest.sync()  # the server has the subscription
            resp = await http.get("/simulate/BTCUSDT", params={"side": "buy", "size": "nan"})
            assert resp.status_code == 422 and resp.json() == {"detail": "size must be finite"}
            assert resp.headers["x-liq-node"] == "ingest-x"
            assert asked[-1].path == "/simulate/btcusdt" and asked[-1].query == [("side", "buy"), ("size", "nan")]
            await sub.unsubscribe()

            # An owner that does not answer in time: 503 with the reason.
            async def silent_owner(msg: Any) -> None:
                return None

            sub = await ingest.nc.subscribe("liq.ask.btcusdt", cb=silent_owner)
            await ingest.sync()
            resp = await http.get("/book/btcusdt")
            assert resp.status_code == 503 and "did not answer within 0.5 s" in resp.json()["detail"]
            await sub.unsubscribe()


async def test_frames_published_while_the_node_reads_the_stream_are_kept_once(nats_server: NatsServer) -> None:
    subject = "liq.frame.btcusdt"
    async with ingest_side(nats_server) as ingest:
        for seq in range(1, 4):
            await ingest.publish(subject, frame(seq))
        await ingest.sync()
        settings = load_settings(environ={}, role="api", bus_url=nats_server.url, node_name="api-t",
                                 host="127.0.0.1", api_port=0, dashboard=False, push_interval_s=CADENCE_S)
        node = ApiNode(settings)
        await node.bus.connect()
        try:
            node.frames.hold()
            await node.bus.nc.subscribe("liq.frame.*", cb=node.frames.on_frame_msg)
            await node.bus.sync()
            # Published after the subscription, before the stream is read: live and in the stream.
            await ingest.publish(subject, frame(4))
            await ingest.sync()
            await wait_until(lambda: bool(node.frames._loading), what="the live frame held")
            await node.frames.load_history()
            assert [f["seq"] for f in node.frames.buffers["btcusdt"].frames()] == [1, 2, 3, 4]
        finally:
            await node.bus.close()


async def test_the_screener_on_an_api_node_is_refused_naming_the_role_it_runs_in(nats_server: NatsServer) -> None:
    async with api_node(nats_server) as (_node, url), httpx.AsyncClient(base_url=url, timeout=CEILING_S) as http:
        resp = await http.get("/screener")
        assert resp.status_code == 404
        assert resp.json()["detail"] == ("the screener is off on this node (--role api): it runs in the "
                                         "one-process role (--role all)")
        async with ws_connect(url.replace("http://", "ws://") + "/ws/screener") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), CEILING_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "--role all" in closed.value.rcvd.reason
