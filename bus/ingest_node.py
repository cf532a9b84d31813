"""``--role ingest``: the one-process stack for the symbols this node owns, and
what it puts on the bus.

The stack is today's (ingestion, sync, books, features, detectors, recordings,
its own API for operators); the node adds:

* leases on its symbols (bus/leases.py), all held before the exchange is read;
* a hub (:class:`BusFedHub`) that hands each frame, as the publisher encoded it,
  to the :class:`FrameOutbox`, which sends it once on ``liq.frame.<symbol>`` and
  each of its alerts on ``liq.alert.<symbol>`` (only while the symbol is owned and
  the bus connected; the others are counted);
* its health on ``liq.health.<node>`` every second;
* answers on ``liq.ask.<symbol>`` for the symbols it owns: an API node's
  ``/book`` and ``/simulate`` run through this node's own API, in process, so the
  validation, the 4xx and the 503s are exactly the one-process ones.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from api.assembly import Stack
from api.hub import FrameHub
from bus.connection import BusConnection
from bus.leases import Leases
from bus.messages import (
    FrameHead,
    Malformed,
    NodeHealth,
    OwnerReply,
    OwnerRequest,
    SourceState,
    SymbolState,
    decode,
    encode,
)
from bus.subjects import alert_subject, ask_subject, frame_subject, health_subject
from config import Settings
from data_ingestion.tasks import TaskRegistry

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger("bus.ingest")

HEALTH_EVERY_S = 1.0
OUTBOX_FRAMES = 1000  # frames waiting to be sent; beyond, the oldest are dropped (counted)


class HostApp(Protocol):
    """What the ingest node needs of main.App: the stack it starts, with our hub."""

    settings: Settings
    stack: Stack | None
    hub: FrameHub | None

    async def start(self, api_sock: socket.socket, dash_sock: socket.socket | None) -> None: ...

    async def stop(self) -> None: ...


class FrameOutbox:
    """Frames (and their alerts) on their way to the bus, sent by one task in order.
    Publishing a frame never waits: it is queued, and sent or counted."""

    def __init__(self, bus: BusConnection, leases: Leases) -> None:
        self.bus = bus
        self.leases = leases
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(OUTBOX_FRAMES)
        self.published = 0
        self.alerts_published = 0
        self.not_owned = 0  # frames of a symbol whose lease is not (or no longer) held
        self.bus_down = 0  # frames built while the bus was disconnected
        self.overflow = 0
        self.malformed = Malformed()

    @property
    def not_sent(self) -> int:
        return self.not_owned + self.bus_down + self.overflow

    def offer(self, symbol: str, message: str) -> None:
        if not self.leases.owns(symbol):
            self.not_owned += 1
            return
        if not self.bus.connected:
            self.bus_down += 1
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.overflow += 1
        self._queue.put_nowait((symbol, message.encode()))

    async def run(self) -> None:
        while True:
            symbol, data = await self._queue.get()
            subject = frame_subject(symbol)
            if not await self.bus.publish(subject, data):
                self.bus_down += 1
                continue
            self.published += 1
            head = decode(FrameHead, data, subject, self.malformed)
            for alert in head.alerts if head is not None else ():
                if await self.bus.publish(alert_subject(symbol), encode(alert)):
                    self.alerts_published += 1


class BusFedHub(FrameHub):
    """The in-process hub (the node's own /ws clients), which also hands every frame
    to the outbox: the publisher encodes a frame once, for both."""

    def __init__(self, settings: Settings, outbox: FrameOutbox) -> None:
        super().__init__(settings.max_ws_clients, settings.max_ws_clients_per_ip, settings.ws_client_queue,
                         behind_limit_s=settings.ws_stall_timeout_s)
        self.outbox = outbox

    def publish(self, symbol: str, message: str) -> None:
        super().publish(symbol, message)
        self.outbox.offer(symbol, message)


ASK_PATHS = ("book", "simulate")


class IngestNode:
    """An ingest node: ``app`` (main.App) started once its symbols' leases are held,
    with a hub that publishes to the bus."""

    def __init__(self, settings: Settings, app: HostApp) -> None:
        self.settings = settings
        self.app = app
        self.node = settings.node_name
        self.instance = os.urandom(4).hex()
        self.started_at = time.time()
        self.bus = BusConnection(settings.bus_url, self.node, settings.bus_connect_timeout_s, settings.lease_ttl_s,
                                   settings.bus_replicas)
        self.leases = Leases(self.bus, self.node, self.instance, on_change=self._ownership_changed)
        self.outbox = FrameOutbox(self.bus, self.leases)
        self.tasks = TaskRegistry()
        self.malformed = Malformed()
        self.requests_answered = 0
        self._answering: dict[str, Subscription] = {}
        self._client: httpx.AsyncClient | None = None

    async def start(self, api_sock: socket.socket, dash_sock: socket.socket | None) -> None:
        s = self.settings
        await self.bus.connect()
        log.info("bus: node %s connected to %s; claiming %s", self.node, self.bus.connected_url,
                 ", ".join(s.symbols))
        self.tasks.supervise(self.leases.run, name="lease-renewal")
        self.tasks.supervise(self._publish_health, name="bus-health")
        await self.leases.claim_all(s.symbols)
        log.info("bus: %s owns %s", self.node, ", ".join(self.leases.owned()))
        self.app.hub = BusFedHub(s, self.outbox)
        await self.app.start(api_sock, None)
        assert self.app.stack is not None and self.app.stack.api is not None
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app.stack.api.app),
                                         base_url="http://ingest-node", timeout=s.bus_request_timeout_s)
        self.tasks.supervise(self.outbox.run, name="bus-outbox")
        for symbol in self.leases.owned():
            await self._answer_for(symbol)
        log.info("bus: %s publishing %s on %s", self.node, ", ".join(self.leases.owned()), self.bus.url)

    # --- ownership and the owner's answers --------------------------------------------
    def _ownership_changed(self, symbol: str, owned: bool) -> None:
        if self._client is None:  # before the stack runs: start() subscribes for what is owned then
            return
        if owned:
            self.tasks.spawn(self._answer_for(symbol), name=f"bus-answer:{symbol}")
        else:
            sub = self._answering.pop(symbol, None)
            if sub is not None:
                self.tasks.spawn(sub.unsubscribe(), name=f"bus-unanswer:{symbol}")

    async def _answer_for(self, symbol: str) -> None:
        if symbol in self._answering:
            return
        self._answering[symbol] = await self.bus.nc.subscribe(ask_subject(symbol), cb=self._answer)
        await self.bus.sync()

    async def _answer(self, msg: Msg) -> None:
        """One request of an API node: run it through this node's API, reply with
        its status and body."""
        symbol = msg.subject.rsplit(".", 1)[-1]
        reply = await self._reply_for(symbol, msg.data, msg.subject)
        self.requests_answered += 1
        if msg.reply:
            try:
                await msg.respond(encode(reply))
            except Exception as exc:  # the requester is gone or the bus dropped
                log.debug("%s: reply not sent (%r)", symbol, exc)

    async def _reply_for(self, symbol: str, data: bytes, subject: str) -> OwnerReply:
        def refuse(status: int, detail: str) -> OwnerReply:
            return OwnerReply(status=status, body=encode_detail(detail), node=self.node)

        request = decode(OwnerRequest, data, subject, self.malformed)
        if request is None:
            return refuse(400, "malformed request on the bus")
        kind, _, path_symbol = request.path.strip("/").partition("/")
        if kind not in ASK_PATHS or path_symbol.lower() != symbol:
            return refuse(400, f"not a request this node answers: {request.path!r}")
        if not self.leases.owns(symbol):
            return refuse(503, f"{symbol}: ingest node {self.node} does not own it now")
        assert self._client is not None
        try:
            resp = await self._client.get(f"/{kind}/{symbol}", params=tuple(request.query))
        except Exception as exc:
            log.exception("%s: answering %s failed", symbol, request.path)
            return refuse(500, f"{symbol}: the owner failed to answer ({type(exc).__name__})")
        return OwnerReply(status=resp.status_code, body=resp.text, node=self.node)

    # --- health -----------------------------------------------------------------------
    def health(self) -> NodeHealth:
        stack = self.app.stack
        symbols: list[SymbolState] = []
        source = None
        api_url = None
        rss = 0.0
        if stack is not None:
            mono = time.monotonic_ns()
            for sym, feed in stack.runtime.feeds.items():
                info = feed.sync_info(mono)
                symbols.append(SymbolState(symbol=sym, owned=self.leases.owns(sym), state=info["state"],
                                           reason=info["reason"], last_update_id=info["last_update_id"]))
            source = SourceState(**stack.source.as_dict())
            api_url = stack.api_url if stack.api is not None else None
            rss = stack.runtime.process.rss_mb()
        else:  # still waiting for leases: nothing is read from the exchange yet
            symbols = [SymbolState(symbol=sym, owned=False, state="awaiting_lease",
                                   reason="claimed, starting once every symbol is" if self.leases.owns(sym)
                                   else "owned by another node: waiting for its lease to lapse")
                       for sym in self.settings.symbols]
        return NodeHealth(
            node=self.node, instance=self.instance, role="ingest", ts=time.time(), started_at=self.started_at,
            cadence_s=self.settings.push_interval_s, api_url=api_url, source=source, symbols=symbols,
            rss_mb=round(rss, 1), frames_published=self.outbox.published, frames_not_sent=self.outbox.not_sent,
        )

    async def _publish_health(self) -> None:
        subject = health_subject(self.node)
        while True:
            await self.bus.publish(subject, encode(self.health()))
            await asyncio.sleep(HEALTH_EVERY_S)

    def status(self) -> dict[str, Any]:
        """For this node's logs and tests: what it sent and holds."""
        return {
            "node": self.node, "owned": self.leases.owned(), "frames_published": self.outbox.published,
            "frames_not_sent": self.outbox.not_sent, "requests_answered": self.requests_answered,
            "bus": self.bus.status(),
        }

    async def stop(self) -> None:
        """Stop publishing, hand the leases back (the next owner need not wait for
        them to lapse), stop the stack, close the bus."""
        await self.tasks.cancel_all()
        for sub in list(self._answering.values()):
            try:
                await sub.unsubscribe()
            except Exception as exc:  # a dead connection: nothing to undo
                log.debug("unsubscribe: %r", exc)
        self._answering.clear()
        if self.bus.connected:
            await self.leases.release_all()
        if self._client is not None:
            await self._client.aclose()
        await self.app.stop()
        await self.bus.close()


def encode_detail(detail: str) -> str:
    """``{"detail": ...}`` as api/errors.py answers errors."""
    import orjson

    return orjson.dumps({"detail": detail}).decode()
