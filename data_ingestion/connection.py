"""One websocket connection carrying combined streams for several symbols.

Reconnects by itself with exponential backoff and jitter (reset once a connection
has delivered data), treats the exchange's 24 h rotation as a routine reconnect,
and a watchdog closes a connection that has been silent for ``stale_after_s``
(streams can go quiet without a close frame). Messages are dispatched through a
table keyed by stream name, never an if/elif chain per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from config import Settings
from data_ingestion.backoff import Backoff
from data_ingestion.feed import RawSink, SymbolFeed

log = logging.getLogger("connection")

Handler = Callable[[dict[str, Any], int, int], None]  # (event, t0 perf ns, recv epoch ns)


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
        kind is ``depth``, ``bookTicker`` or ``aggTrade``."""
        self.name = name
        self.url = f"{base_url.rstrip('/')}/stream?streams=" + "/".join(streams)
        self.settings = settings
        self.recorder = recorder
        self.feeds = sorted({feed.symbol: feed for _kind, feed in streams.values()}.items())
        # Only a connection carrying a symbol's depth stream decides whether its book
        # can be trusted; the market route (trades) only counts its reconnects.
        self.depth_feeds = [feed for kind, feed in streams.values() if kind == "depth"]
        self._handlers: dict[str, tuple[Handler, SymbolFeed]] = {}
        self._by_event: dict[tuple[str, str], tuple[Handler, SymbolFeed]] = {}
        for stream, (kind, feed) in streams.items():
            handler: Handler
            if kind == "depth":
                handler = feed.on_depth  # type: ignore[assignment]
            elif kind == "bookTicker":
                handler = _ignore_times(feed.on_book_ticker)
            elif kind == "aggTrade":
                handler = _trade_handler(feed)
            else:
                raise ValueError(f"{name}: unknown stream kind {kind!r}")
            self._handlers[stream] = (handler, feed)
            event_type = {"depth": "depthUpdate"}.get(kind, kind)
            self._by_event[(event_type, feed.symbol.upper())] = (handler, feed)
        self.backoff = Backoff(
            settings.backoff_initial_s, settings.backoff_max_s, settings.backoff_factor, settings.backoff_jitter
        )
        self.connects = 0
        self.disconnects = 0
        self.stale_closes = 0
        self.malformed = 0
        self.connected = False
        self.closing = False
        self._ws: ClientConnection | None = None

    async def run(self) -> None:
        """Connect, read, reconnect: forever (until cancelled)."""
        while True:
            delivered = False
            reason = "closed"
            try:
                delivered, reason = await self._session()
            except asyncio.CancelledError:
                raise
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
        delivered = False
        async with connect(
            self.url,
            max_size=s.ws_max_message_bytes,
            open_timeout=s.http_timeout_s,
            close_timeout=2.0,
            ping_interval=20.0,
            ping_timeout=20.0,
            compression=None,
        ) as ws:
            self._ws = ws
            self.connected = True
            self.connects += 1
            log.info("%s: connected (%d streams)", self.name, len(self._handlers))
            for feed in self.depth_feeds:
                feed.on_connected()
            loop = asyncio.get_running_loop()
            stale = s.stale_after_s
            try:
                async with asyncio.timeout(stale) as watchdog:
                    async for raw in ws:
                        watchdog.reschedule(loop.time() + stale)
                        if not delivered:
                            delivered = True
                            self.backoff.reset()
                        self._dispatch(raw)
            except TimeoutError:
                self.stale_closes += 1
                for _sym, feed in self.feeds:
                    feed.monitor.stale_reconnects += 1
                log.warning("%s: no message for %.1f s: stale, reconnecting", self.name, stale)
                await ws.close(1001, "stale")
                return delivered, f"stale for {stale:.0f} s"
            except ConnectionClosed as exc:
                return delivered, _close_reason(exc)
            code = ws.close_code
            return delivered, f"closed by server ({code} {ws.close_reason or ''})".strip() if code else "closed"

    def _dispatch(self, raw: str | bytes) -> None:
        t0 = time.perf_counter_ns()
        recv_ns = time.time_ns()
        try:
            msg = orjson.loads(raw)
            stream = msg.get("stream")
            if stream is not None:
                entry = self._handlers.get(stream)
                data = msg["data"]
            else:
                data = msg
                entry = self._by_event.get((msg.get("e"), msg.get("s")))
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            self.malformed += 1
            log.warning("%s: malformed message skipped: %.120r", self.name, raw)
            return
        if entry is None:
            if "result" not in msg:  # SUBSCRIBE acks carry "result"; anything else is unexpected
                self.malformed += 1
            return
        handler, feed = entry
        feed.monitor.on_message(time.monotonic_ns())
        if not isinstance(data, dict):
            feed.monitor.malformed += 1
            return
        feed.last_ts_ns = recv_ns
        if self.recorder is not None:
            self.recorder.write(feed.symbol, recv_ns, raw)
        handler(data, t0, recv_ns)

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


def _ignore_times(fn: Callable[[dict[str, Any]], None]) -> Handler:
    def handler(data: dict[str, Any], _t0: int, _recv: int) -> None:
        fn(data)

    return handler


def _trade_handler(feed: SymbolFeed) -> Handler:
    def handler(data: dict[str, Any], _t0: int, recv_ns: int) -> None:
        feed.on_trade(data, recv_ns)

    return handler
