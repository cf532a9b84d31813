"""The HTTP and websocket API: how every client, the dashboard included, sees the books.

FastAPI on uvicorn, in the same event loop as ingestion. Every endpoint validates
its input and answers a bad request with a 4xx and a message saying what is wrong;
a book that is not in sync answers 503 with the reason. Never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect, WebSocketState

from api.hub import FrameHub, LimitExceeded, Subscriber
from api.metrics import prometheus_text
from api.publisher import FramePublisher
from config import Settings
from data_ingestion.feed import SymbolFeed
from data_ingestion.runtime import IngestionRuntime
from embedded_server import EmbeddedServer, bind_socket, start_serving, stop_serving
from features.market_impact import BookUnavailable, ImpactError, ImpactSimulator
from orderbook.sequence_validator import TRUSTED_STATES

log = logging.getLogger("api")

MAX_CURVE_POINTS = 50


@dataclass(slots=True)
class SourceInfo:
    """Where the books come from, shown in /health and on the dashboard banner."""

    kind: str  # binance | sim | replay
    label: str  # "LIVE Binance", "SIMULATED market", "REPLAY of btcusdt_20240808.gz"
    reason: str  # why (auto's choice, or "chosen with --source")

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "label": self.label, "reason": self.reason}


@dataclass(slots=True)
class Services:
    """What the endpoints read: built by main.py (or a test) and handed to create_app."""

    settings: Settings
    runtime: IngestionRuntime
    publisher: FramePublisher
    hub: FrameHub
    source: SourceInfo
    started_mono: float = field(default_factory=time.monotonic)
    impact: ImpactSimulator | None = None

    def __post_init__(self) -> None:
        if self.impact is None:
            self.impact = ImpactSimulator(self.settings.impact_max_size)


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Order book liquidity dashboard API",
        version="1.0",
        description="Live L2 books of Binance USDT-M futures rebuilt from the depth stream, "
        "their microstructure metrics, liquidity alerts and a market-impact walk.",
    )
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_headers=["*"])
    app.state.services = services
    s = services.settings
    runtime = services.runtime

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path"))
            parts.append(f"{where}: {err.get('msg')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:  # last line of defence
        log.exception("api: unexpected error: %r", exc)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)

    def feed_of(symbol: str) -> SymbolFeed:
        feed = runtime.feeds.get(symbol.lower())
        if feed is None:
            known = ", ".join(sorted(runtime.feeds))
            raise ApiError(404, f"unknown symbol {symbol!r}; served: {known}")
        return feed

    @app.get("/health", summary="Status, uptime, memory, connections, per-symbol sync and monitoring")
    async def health() -> JSONResponse:
        body = health_body(services)
        code = 503 if body["status"] == "unhealthy" else 200
        return JSONResponse(body, status_code=code)

    @app.get("/symbols", summary="The symbols served")
    async def symbols() -> dict[str, Any]:
        return {"symbols": list(runtime.feeds)}

    @app.get("/stats", summary="Burst protection: clients per symbol, frames dropped, clients refused")
    async def stats() -> dict[str, Any]:
        hub = services.hub
        st = hub.stats
        return {
            "clients": hub.client_count,
            "clients_by_symbol": {sym: hub.clients_by_symbol().get(sym, 0) for sym in runtime.feeds},
            "clients_total": st.clients_total,
            "clients_refused": st.clients_refused,
            "frames_published": st.frames_published,
            "frames_dropped": st.frames_dropped,
            "slow_clients": [
                {"symbol": sub.symbol, "remote": sub.remote, "dropped": sub.dropped, "sent": sub.sent}
                for sub in hub.subscribers()
                if sub.dropped
            ],
            "limits": {
                "max_clients": hub.max_clients,
                "max_clients_per_address": hub.max_per_address,
                "queue_frames": hub.queue_capacity,
            },
            "frame_build_ms": {k: round(v, 3) for k, v in services.publisher.build_ms_last.items()},
            "frame_bytes": dict(services.publisher.frame_bytes_last),
        }

    @app.get("/book/{symbol}", summary="The rebuilt book: last update id, sync state, N levels a side")
    async def book(
        symbol: str,
        depth: Annotated[int | None, Query(ge=1, le=100_000, description="levels a side; all when omitted")] = None,
    ) -> dict[str, Any]:
        feed = feed_of(symbol)
        info = require_in_sync(feed)
        n = depth if depth is not None else max(len(feed.book.bids), len(feed.book.asks))
        bids, asks = feed.book.top(n)
        band = feed.book.snapshot_band
        return {
            "symbol": feed.symbol,
            "last_update_id": feed.book.last_update_id,
            "state": info["state"],
            "bid_levels_total": len(feed.book.bids),
            "ask_levels_total": len(feed.book.asks),
            "snapshot_band": None
            if band is None
            else {
                "bid_low": feed.book.price(band.bid_low),
                "bid_high": feed.book.price(band.bid_high),
                "ask_low": feed.book.price(band.ask_low),
                "ask_high": feed.book.price(band.ask_high),
            },
            "bids": [[p, q] for p, q in bids],
            "asks": [[p, q] for p, q in asks],
        }

    @app.get("/simulate/{symbol}", summary="Market-impact walk of the whole local book")
    async def simulate(
        symbol: str,
        side: Annotated[str, Query(description="buy (eats asks) or sell (eats bids)")],
        size: Annotated[str | None, Query(description="order size in base asset, e.g. 1.5")] = None,
        sizes: Annotated[
            str | None, Query(description="comma-separated sizes for a slippage curve, e.g. 0.1,1,5,10")
        ] = None,
    ) -> dict[str, Any]:
        feed = feed_of(symbol)
        side_l = side.strip().lower()
        if side_l not in ("buy", "sell"):
            raise ApiError(422, f"side must be 'buy' or 'sell', got {side!r}")
        if (size is None) == (sizes is None):
            raise ApiError(422, "give exactly one of size=X or sizes=X,Y,...")
        impact = services.impact
        assert impact is not None
        if size is not None:
            value = parse_size(size, s.impact_max_size)
        else:
            assert sizes is not None
            parts = [p for p in sizes.split(",") if p.strip()]
            if not parts:
                raise ApiError(422, "sizes: give at least one size")
            if len(parts) > MAX_CURVE_POINTS:
                raise ApiError(422, f"sizes: at most {MAX_CURVE_POINTS} sizes")
            values = [parse_size(p, s.impact_max_size) for p in parts]
        require_in_sync(feed)  # bad input first (422), then the book's state (503)
        try:
            if size is not None:
                result = impact.walk(feed.book, side_l, value, in_sync=feed.in_sync)
                return {**result.to_dict(), "last_update_id": feed.book.last_update_id}
            points = impact.curve(feed.book, side_l, values, in_sync=feed.in_sync)
            return {
                "symbol": feed.symbol,
                "side": side_l,
                "last_update_id": feed.book.last_update_id,
                "curve": [p.to_dict() for p in points],
            }
        except BookUnavailable as exc:
            raise ApiError(503, str(exc)) from None
        except ImpactError as exc:
            raise ApiError(422, str(exc)) from None

    @app.get("/metrics", summary="Prometheus text format", response_class=PlainTextResponse)
    async def metrics() -> Response:
        body, content_type = prometheus_text(services)
        return Response(body, media_type=content_type)

    @app.websocket("/ws/{symbol}")
    async def ws_frames(websocket: WebSocket, symbol: str) -> None:
        await serve_subscriber(services, websocket, symbol)

    return app


def require_in_sync(feed: SymbolFeed) -> dict[str, Any]:
    """The feed's sync info when its book can be served; else ApiError 503 with the
    reason. A quiet book (in sync, its connection alive, nothing changed lately) is
    served; a stale one (its connection silent past the liveness ping's deadline) is
    not: /health counts it as out of sync, and events may be missing from it."""
    info = feed.sync_info()
    state = info["state"]
    if state in TRUSTED_STATES:
        return info
    if state == "stale":
        why = f"no message from the exchange for {info['last_message_age_s']} s and no answer to a ping"
    else:
        why = info["reason"] or "waiting for a snapshot"
    raise ApiError(503, f"{feed.symbol}: book not in sync ({state}: {why})")


def parse_size(raw: str, max_size: float) -> float:
    """A finite positive size no larger than ``max_size``, or ApiError 422 saying why."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise ApiError(422, f"size must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ApiError(422, f"size must be finite, got {raw!r}")
    if value <= 0:
        raise ApiError(422, f"size must be positive, got {raw!r}")
    if value > max_size:
        raise ApiError(422, f"size {value:g} is above the maximum {max_size:g}")
    return value


def health_body(services: Services) -> dict[str, Any]:
    runtime = services.runtime
    mono = time.monotonic_ns()
    per_symbol: dict[str, Any] = {}
    monitoring: dict[str, Any] = {}
    good = 0
    for sym, feed in runtime.feeds.items():
        info = feed.sync_info(mono)
        ok = info["state"] in TRUSTED_STATES
        good += ok
        per_symbol[sym] = {**info, "in_sync": ok}
        monitoring[sym] = feed.feed_info(mono)
    n = len(runtime.feeds)
    if n and good == n:
        status = "healthy"
    elif good:
        status = "degraded"
    else:
        status = "unhealthy"
    proc = runtime.process.summary()
    body: dict[str, Any] = {
        "status": status,
        "connections": services.hub.client_count,
        "symbols": list(runtime.feeds),
        "uptime_seconds": round(time.monotonic() - services.started_mono, 1),
        "memory_mb": proc["rss_mb"],
        "memory": proc,
        "source": services.source.as_dict(),
        "exchange": {
            "rest_base_url": services.settings.rest_base_url,
            "ws_public_url": services.settings.ws_public_url,
            "ws_market_url": services.settings.ws_market_url,
        }
        if services.source.kind != "replay"
        else None,
        "sync": per_symbol,
        "monitoring": monitoring,
        "exchange_connections": [
            {"name": c.name, "connected": c.connected, "connects": c.connects, "stale_closes": c.stale_closes,
             "malformed_messages": c.malformed, "pings_sent": c.pings_sent, "pongs_received": c.pongs_received,
             "subscribe_errors": c.subscribe_errors, "refused": c.refused}
            for c in runtime.connections
        ],
    }
    if runtime.rest is not None:
        b = runtime.rest.budget
        body["rest_weight"] = {"used_1m": b.used, "limit_1m": b.limit, "rate_limited": b.rate_limited,
                               "waits": b.waits, "requests": b.requests}
    if runtime.replay is not None:
        body["replay"] = runtime.replay.as_dict()
    return body


async def serve_subscriber(services: Services, websocket: WebSocket, symbol: str) -> None:
    """One websocket client: history, then frames, until either side closes."""
    hub = services.hub
    sym = symbol.lower()
    await websocket.accept()
    if sym not in services.runtime.feeds:
        known = ", ".join(sorted(services.runtime.feeds))
        await websocket.close(code=1008, reason=f"unknown symbol {symbol!r}; served: {known}"[:120])
        return
    remote = websocket.client.host if websocket.client else "unknown"
    try:
        sub = hub.subscribe(sym, remote)
    except LimitExceeded as exc:
        await websocket.close(code=1013, reason=str(exc)[:120])
        return
    hub.active_handlers += 1
    reader: asyncio.Future[None] | None = None
    try:
        history = services.publisher.buffers[sym].history_message().decode()
        await websocket.send_text(history)
        # The reader notices the client leaving and closes the subscription, which
        # wakes this loop: one task step per frame sent, no task made per frame.
        reader = asyncio.ensure_future(_drain_client(websocket, hub, sub))
        while True:
            message = await sub.next_message()
            if message is None:
                break
            await websocket.send_text(message)
            sub.sent += 1
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        if reader is not None:
            reader.cancel()
        hub.unsubscribe(sub)
        if hub.closing and websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=1001, reason="server shutting down")
        hub.active_handlers -= 1


async def _drain_client(websocket: WebSocket, hub: FrameHub, sub: Subscriber) -> None:
    """Read (and ignore) what the client sends; when it goes away, end its subscription."""
    try:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                msg = await websocket.receive()
                if msg.get("type") == "websocket.disconnect":
                    return
    finally:
        hub.unsubscribe(sub)


# Kernel send buffer of every accepted connection (inherited from the listening
# socket). Left to autotuning, Linux grows it to 4 MB: minutes of frames that a
# client which stopped reading would still be handed, late, before the hub's bounded
# queue ever noticed it was slow. Capped, a stalled client fills it in a few frames,
# then its handler blocks and the hub keeps only its newest frames (and counts the
# rest). 256 KiB is plenty for loopback and for ~10 MB/s at 25 ms round trip.
CLIENT_SEND_BUFFER_BYTES = 256 * 1024


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound up front (a port in use is a clear error
    before anything starts), its clients' send buffer capped."""
    return bind_socket(host, port, send_buffer=CLIENT_SEND_BUFFER_BYTES)


class ApiServer:
    """The API on a pre-bound socket; ``stop`` closes client sockets with a close frame."""

    def __init__(self, services: Services, sock: socket.socket, log_level: str = "warning") -> None:
        self.services = services
        self.sock = sock
        self._port = int(sock.getsockname()[1])
        self.app = create_app(services)
        config = uvicorn.Config(
            self.app,
            log_level=log_level,
            access_log=False,
            ws_max_size=64 * 1024,
            ws_per_message_deflate=False,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            timeout_graceful_shutdown=3,
            lifespan="off",
        )
        self.server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        self._task = await start_serving(self.server, self.sock, name="api-server")

    async def stop(self, grace_s: float = 1.0) -> None:
        hub = self.services.hub
        hub.closing = True
        for sub in hub.subscribers():
            hub.unsubscribe(sub)  # wakes each sender, which closes with 1001
        await self._wait_handlers(grace_s)
        if hub.active_handlers > 0 or self._stalled_connections():
            # A client that stopped reading cannot be handed a close frame: its
            # handler waits for the socket to drain, and uvicorn's own shutdown would
            # wait for it too (and then leave the socket open). Abort those; their
            # handlers then end at once.
            for transport in self._stalled_connections():
                transport.abort()
            await self._wait_handlers(0.5)
        if self._task is not None:
            await stop_serving(self.server, self._task)
        else:
            self.server.should_exit = True
        hub.closing = False

    async def _wait_handlers(self, seconds: float) -> None:
        hub = self.services.hub
        deadline = time.monotonic() + seconds
        while hub.active_handlers > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _stalled_connections(self) -> list[asyncio.WriteTransport]:
        """Transports of this server still holding bytes the client has not taken."""
        out = []
        for conn in list(self.server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None and transport.get_write_buffer_size() > 0:
                out.append(transport)
        return out
