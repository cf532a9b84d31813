"""One websocket connection carrying combined streams for several symbols.

Reconnects by itself with exponential backoff and jitter (reset once a connection
has delivered data), treats the exchange's 24 h rotation as a routine reconnect,
and probes liveness: after ``stale_after_s`` with no frame it sends a ping, and
only a pong missing for ``pong_timeout_s`` (or a closed socket) makes the
connection stale and reconnects it. Depth streams push only when a book changed,
so a quiet symbol is not a dead connection. Messages are dispatched through a
table keyed by stream name, never an if/elif chain per message. Streams beyond
what fits a sane URL are added with SUBSCRIBE requests, paced under Binance's
limit of incoming messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from config import Settings
from data_ingestion.backoff import Backoff
from data_ingestion.feed import RawSink, SymbolFeed
from wire.binance import (
    AggTrade,
    BookTicker,
    DecodeError,
    DepthUpdate,
    ForceOrder,
    MarkPriceUpdate,
    Trade,
    stream_message_decoder,
)

log = logging.getLogger("connection")

# (typed event, t0 perf ns, recv epoch ns, raw message)
Handler = Callable[[Any, int, int, "bytes | str"], None]

# HTTP status Binance answers from a restricted location (REST and websocket handshake).
RESTRICTED_LOCATION = 451
# Binance disconnects a client sending more than 10 messages a second; stay well under.
SUBSCRIBE_PACE_S = 0.25
STREAMS_PER_SUBSCRIBE = 200


class _Route:
    """One stream of the connection: where its messages go, and how many came."""

    __slots__ = ("stream", "kind", "handler", "feed", "accepts", "received", "warned")

    def __init__(self, stream: str, kind: str, handler: Handler, feed: SymbolFeed, accepts: tuple[type, ...]) -> None:
        self.stream = stream
        self.kind = kind
        self.handler = handler
        self.feed = feed
        self.accepts = accepts  # the event types this stream carries
        self.received = 0
        self.warned = False


def url_and_overflow(base_url: str, streams: list[str], max_chars: int) -> tuple[str, list[str]]:
    """The combined-stream URL carrying as many of ``streams`` as fit in ``max_chars``
    (at least one), and the streams left over for SUBSCRIBE requests."""
    url = f"{base_url.rstrip('/')}/stream?streams="
    taken = 0
    length = len(url)
    for name in streams:
        extra = len(name) + (1 if taken else 0)
        if taken and length + extra > max_chars:
            break
        length += extra
        taken += 1
    return url + "/".join(streams[:taken]), streams[taken:]


class StreamConnection:
    """Combined-stream websocket for ``feeds`` on one route (public or market)."""

    def __init__(
        self,
        name: str,
        base_url: str,
        streams: dict[str, tuple[str, SymbolFeed]],
        settings: Settings,
        recorder: RawSink | None = None,
    ) -> None:
        """``streams`` maps a stream name (``btcusdt@depth@100ms``) to (kind, feed);
        kind is ``depth``, ``bookTicker``, ``aggTrade``, ``forceOrder`` or ``markPrice``."""
        if len(streams) > settings.max_streams_per_connection:
            raise ValueError(f"{name}: {len(streams)} streams, at most {settings.max_streams_per_connection} "
                             "a connection")
        self.name = name
        self.url, self.overflow = url_and_overflow(base_url, list(streams), settings.ws_url_max_chars)
        self.settings = settings
        self.recorder = recorder
        self.feeds = sorted({feed.symbol: feed for _kind, feed in streams.values()}.items())
        # Only a connection carrying a symbol's depth stream decides whether its book
        # can be trusted; the market route (trades) only counts its reconnects.
        self.depth_feeds = [feed for kind, feed in streams.values() if kind == "depth"]
        for feed in self.depth_feeds:
            feed.link = self
        self._routes: dict[str, _Route] = {}
        for stream, (kind, feed) in streams.items():
            handler: Handler
            accepts: tuple[type, ...]
            if kind == "depth":
                handler, accepts = feed.on_depth, (DepthUpdate,)  # type: ignore[assignment]
            elif kind == "bookTicker":
                handler, accepts = _ticker_handler(feed), (BookTicker,)
            elif kind == "aggTrade":
                handler, accepts = _trade_handler(feed), (AggTrade, Trade)
            elif kind == "forceOrder":
                handler, accepts = _force_order_handler(feed), (ForceOrder,)
                if feed.features is not None:
                    feed.features.watch_liquidations()  # subscribed: no message means no liquidation
            elif kind == "markPrice":
                handler, accepts = _mark_price_handler(feed), (MarkPriceUpdate,)
            else:
                raise ValueError(f"{name}: unknown stream kind {kind!r}")
            self._routes[stream] = _Route(stream, kind, handler, feed, accepts)
        self.backoff = Backoff(
            settings.backoff_initial_s, settings.backoff_max_s, settings.backoff_factor, settings.backoff_jitter
        )
        self.connects = 0
        self.disconnects = 0
        self.stale_closes = 0
        self.malformed = 0
        self.pings_sent = 0  # liveness probes after a silence
        self.pongs_received = 0
        self.subscribe_errors = 0
        self.connected = False
        self.closing = False
        self.refused: str | None = None  # set when the exchange refuses us for good (HTTP 451)
        self.last_heard_mono_ns = 0  # any frame received: data or pong
        self._ws: ClientConnection | None = None
        self._pending_acks: set[int] = set()
        self._next_id = 1

    async def run(self) -> None:
        """Connect, read, reconnect: forever (until cancelled, or refused for good)."""
        while True:
            delivered = False
            reason = "closed"
            try:
                delivered, reason = await self._session()
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                reason = f"handshake refused with HTTP {status}"
                if status == RESTRICTED_LOCATION:
                    self.refused = f"Binance refuses this location (HTTP {status})"
                    log.error("%s: %s; not reconnecting", self.name, self.refused)
                    for feed in self.depth_feeds:
                        feed.on_disconnected(self.refused)
                    return
                log.warning("%s: connection failed (%s)", self.name, reason)
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("%s: connection failed (%s)", self.name, reason)
            except Exception as exc:  # a bug must cost a reconnect, not the feed
                reason = f"unexpected {type(exc).__name__}: {exc}"
                log.exception("%s: connection loop error; reconnecting", self.name)
            finally:
                if self.connected:
                    self.connected = False
                    self.disconnects += 1
                    for feed in self.depth_feeds:
                        feed.on_disconnected(reason)
                    for _sym, feed in self.feeds:
                        feed.monitor.reconnects += 1
                self._ws = None
            if self.closing:
                return
            if delivered:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            log.info("%s: reconnecting in %.2f s (%s)", self.name, delay, reason)
            await asyncio.sleep(delay)

    async def _session(self) -> tuple[bool, str]:
        """One connection's life; returns (delivered data, why it ended)."""
        s = self.settings
        async with connect(
            self.url,
            max_size=s.ws_max_message_bytes,
            open_timeout=s.http_timeout_s,
            close_timeout=2.0,
            ping_interval=s.ws_ping_interval_s,
            ping_timeout=s.ws_ping_timeout_s,
            compression=None,
        ) as ws:
            self._ws = ws
            self.connected = True
            self.connects += 1
            self.last_heard_mono_ns = time.monotonic_ns()
            log.info("%s: connected (%d streams)", self.name, len(self._routes))
            for feed in self.depth_feeds:
                feed.on_connected()
            helpers = [asyncio.create_task(self._watch_streams(), name=f"ws-silence:{self.name}")]
            if self.overflow:
                helpers.append(asyncio.create_task(self._subscribe_overflow(ws), name=f"ws-subscribe:{self.name}"))
            try:
                return await self._read(ws)
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)

    async def _read(self, ws: ClientConnection) -> tuple[bool, str]:
        """Read until the socket closes or fails the liveness probe."""
        s = self.settings
        idle_ns = int(s.stale_after_s * 1e9)
        delivered = False
        try:
            while True:
                remaining = (self.last_heard_mono_ns + idle_ns - time.monotonic_ns()) / 1e9
                if remaining <= 0:
                    if not await self._probe(ws):
                        self.stale_closes += 1
                        for _sym, feed in self.feeds:
                            feed.monitor.stale_reconnects += 1
                        log.warning("%s: silent for %.1f s and no pong within %.1f s: stale, reconnecting",
                                    self.name, s.stale_after_s, s.pong_timeout_s)
                        await ws.close(1001, "stale")
                        return delivered, f"no pong within {s.pong_timeout_s:g} s"
                    continue
                try:
                    async with asyncio.timeout(remaining):
                        while True:
                            # recv() is cancel-safe: a timeout loses no message.
                            raw = await ws.recv()
                            if not delivered:
                                delivered = True
                                self.backoff.reset()
                            self._dispatch(raw)
                except TimeoutError:
                    continue
        except ConnectionClosed as exc:
            return delivered, _close_reason(exc)

    async def _probe(self, ws: ClientConnection) -> bool:
        """Ping after a silence; True when the pong came back in time."""
        self.pings_sent += 1
        try:
            waiter = await ws.ping()
            async with asyncio.timeout(self.settings.pong_timeout_s):
                await waiter
        except TimeoutError:
            return False
        self.pongs_received += 1
        self.last_heard_mono_ns = time.monotonic_ns()
        return True

    async def _subscribe_overflow(self, ws: ClientConnection) -> None:
        """SUBSCRIBE the streams that did not fit the URL, a batch at a time."""
        rest = list(self.overflow)
        while rest:
            batch, rest = rest[:STREAMS_PER_SUBSCRIBE], rest[STREAMS_PER_SUBSCRIBE:]
            req_id = self._next_id
            self._next_id += 1
            self._pending_acks.add(req_id)
            await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": batch, "id": req_id}).decode())
            await asyncio.sleep(SUBSCRIBE_PACE_S)

    async def _watch_streams(self) -> None:
        """Log once per stream that has sent nothing for ``stream_silence_warn_s``:
        a stream on the wrong route or an unknown stream is accepted by Binance and
        simply never sends anything."""
        warn_after = self.settings.stream_silence_warn_s
        seen = {name: r.received for name, r in self._routes.items()}
        silent_since = {name: time.monotonic() for name in self._routes}
        while True:
            await asyncio.sleep(min(5.0, warn_after / 2))
            now = time.monotonic()
            for name, route in self._routes.items():
                if route.received != seen[name]:
                    seen[name] = route.received
                    silent_since[name] = now
                    route.warned = False
                elif not route.warned and now - silent_since[name] >= warn_after:
                    route.warned = True
                    log.warning("%s: no data on stream %s for %.0f s (wrong route or unknown stream?)",
                                self.name, name, now - silent_since[name])

    def _dispatch(self, raw: str | bytes) -> None:
        t0 = time.perf_counter_ns()
        recv_ns = time.time_ns()
        mono = time.monotonic_ns()
        self.last_heard_mono_ns = mono
        try:
            msg = stream_message_decoder.decode(raw)
        except DecodeError:
            self._on_undecodable(raw)
            return
        route = self._routes.get(msg.stream)
        if route is None:
            self.malformed += 1
            return
        feed = route.feed
        route.received += 1
        feed.monitor.on_message(mono)
        data = msg.data
        if type(data) not in route.accepts:  # another event type on this stream name
            feed.monitor.malformed += 1
            feed.on_stream_malformed(route.kind)
            return
        feed.last_ts_ns = recv_ns
        if self.recorder is not None:
            self.recorder.write(feed.symbol, recv_ns, raw)
        route.handler(data, t0, recv_ns, raw)

    def _on_undecodable(self, raw: str | bytes) -> None:
        """Slow path: a reply to one of our requests, or a malformed message (counted
        on its stream's symbol when the stream can be read, and skipped)."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and self._on_reply(obj):
            return
        route = self._routes.get(obj.get("stream")) if isinstance(obj, dict) else None  # type: ignore[arg-type]
        if route is not None:
            route.received += 1
            route.feed.monitor.on_message(time.monotonic_ns())
            route.feed.monitor.malformed += 1
            route.feed.on_stream_malformed(route.kind)
        else:
            self.malformed += 1
        log.warning("%s: malformed message skipped: %.120r", self.name, raw)

    def _on_reply(self, msg: dict[str, Any]) -> bool:
        """A reply to one of our requests (``{"result": null, "id": 1}`` or an error)?"""
        req_id = msg.get("id")
        if "result" in msg:
            self._pending_acks.discard(req_id)  # type: ignore[arg-type]
            return True
        if "error" in msg and req_id is not None:
            self._pending_acks.discard(req_id)  # type: ignore[arg-type]
            self.subscribe_errors += 1
            log.error("%s: request %s refused: %s", self.name, req_id, msg["error"])
            return True
        return False

    async def close(self) -> None:
        """Close with a close frame and stop reconnecting (shutdown)."""
        self.closing = True
        ws = self._ws
        if ws is not None:
            await ws.close(1000, "shutting down")


def _close_reason(exc: ConnectionClosed) -> str:
    if exc.rcvd is not None:
        return f"closed by server ({exc.rcvd.code} {exc.rcvd.reason})".strip()
    return "connection dropped without a close frame"


def _ticker_handler(feed: SymbolFeed) -> Handler:
    def handler(data: BookTicker, _t0: int, _recv: int, raw: bytes | str) -> None:
        feed.on_book_ticker(data, raw)

    return handler


def _trade_handler(feed: SymbolFeed) -> Handler:
    def handler(data: AggTrade | Trade, _t0: int, recv_ns: int, _raw: bytes | str) -> None:
        feed.on_trade(data, recv_ns)

    return handler


def _force_order_handler(feed: SymbolFeed) -> Handler:
    def handler(data: ForceOrder, _t0: int, recv_ns: int, _raw: bytes | str) -> None:
        feed.on_force_order(data, recv_ns)

    return handler


def _mark_price_handler(feed: SymbolFeed) -> Handler:
    def handler(data: MarkPriceUpdate, _t0: int, recv_ns: int, _raw: bytes | str) -> None:
        feed.on_mark_price(data, recv_ns)

    return handler
