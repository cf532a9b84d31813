"""The websocket side: routing, handshakes, subscriptions, pings, lifetime, limits.

Paths: ``/public/stream?streams=a/b``, ``/public/ws/<stream>``, ``/market/...`` the
same, and the legacy unrouted ``/stream`` and ``/ws/<stream>`` (public class only).
Combined-stream connections get ``{"stream":..,"data":..}``; raw ones bare events.
Each connection has a bounded send queue drained by its own writer task, so one
slow client never blocks the market.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from exchange_sim.protocol import ALL, ROUTE_KINDS, parse_stream
from exchange_sim.settings import SimConfig
from exchange_sim.streams import Connection, StreamHub

log = logging.getLogger(__name__)


class RouteError(ValueError):
    """A websocket path or stream list we refuse (HTTP 400/404 at the handshake)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_path(path: str, max_streams: int, known_symbols: Iterable[str]) -> tuple[str, bool, list[str]]:
    """(route, combined, stream names) of a websocket request path."""
    parts = urlsplit(path)
    segments = [s for s in parts.path.split("/") if s]
    route = "legacy"
    if segments and segments[0] in ("public", "market"):
        route = segments[0]
        segments = segments[1:]
    if not segments or segments[0] not in ("stream", "ws"):
        raise RouteError(404, f"unknown websocket path {parts.path!r}")
    combined = segments[0] == "stream"
    if combined:
        if len(segments) != 1:
            raise RouteError(404, f"unknown websocket path {parts.path!r}")
        query = parse_qs(parts.query).get("streams", [""])[0]
        names = [n for n in query.split("/") if n]
    else:
        if len(segments) > 2:
            raise RouteError(404, f"unknown websocket path {parts.path!r}")
        names = segments[1:]
    check_streams(route, names, max_streams, known_symbols)
    return route, combined, names


def check_streams(route: str, names: list[str], max_streams: int, known_symbols: Iterable[str]) -> None:
    """Refuse too many streams. Like Binance, an unknown stream, an unknown symbol
    or a stream of another route is accepted and simply never sends anything (see
    :func:`servable`)."""
    if len(names) > max_streams:
        raise RouteError(400, f"too many streams: {len(names)} > {max_streams}")


def servable(route: str, names: Iterable[str], known_symbols: Iterable[str]) -> list[str]:
    """The streams of ``names`` this route really serves; the others stay silent."""
    symbols = set(known_symbols)
    out = []
    for name in names:
        key = parse_stream(name)
        if key is None or key.kind not in ROUTE_KINDS[route] or (key.symbol != ALL and key.symbol not in symbols):
            log.info("stream %r is not served on the %s route: accepted, silent", name, route)
            continue
        out.append(name)
    return out


class WebsocketServer:
    """The websockets-library server with Binance's connection rules."""

    def __init__(
        self, cfg: SimConfig, hub: StreamHub, symbols: Iterable[str], restricted: Callable[[], bool] = lambda: False
    ) -> None:
        self.cfg = cfg
        self.hub = hub
        self.symbols = tuple(symbols)
        self.restricted = restricted  # answer handshakes with 451 (restricted location)
        self.server: Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await serve(
            self._handler,
            host,
            port,
            process_request=self._process_request,
            ping_interval=None,  # our own ping timer (configurable, skipped while silent)
            ping_timeout=None,
            max_size=1 << 20,
            compression=None,
        )
        sock = next(iter(self.server.sockets))
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        if self.server is None:
            return
        for conn in list(self.hub.connections):
            conn.close(1001, "server shutting down")
        self.server.close(close_connections=True)
        await self.server.wait_closed()
        self.server = None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.restricted():
            return connection.respond(451, "Service unavailable from a restricted location\n")
        try:
            parse_path(request.path, self.cfg.max_streams, self.symbols)
        except RouteError as exc:
            log.info("ws handshake refused for %s: %s", request.path, exc)
            return connection.respond(exc.status, f"{exc}\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        route, combined, names = parse_path(ws.request.path if ws.request else "/", self.cfg.max_streams,
                                            self.symbols)
        conn = Connection(ws, route, combined, self.cfg.send_queue)
        self.hub.connections.add(conn)
        conn.silent_streams.update(set(names) - set(servable(route, names, self.symbols)))
        self.hub.subscribe(conn, servable(route, names, self.symbols))
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(self._writer(conn), name="ws-writer"),
            loop.create_task(self._pinger(conn), name="ws-pinger"),
            loop.create_task(self._lifetime(conn), name="ws-lifetime"),
        ]
        log.info("ws client %s connected on %s: %s", ws.remote_address, route, ",".join(names) or "-")
        try:
            async for message in ws:
                if not self._within_rate(conn):
                    log.info("ws client %s: more than %d messages a second, disconnecting",
                             ws.remote_address, self.cfg.max_client_msgs_per_s)
                    conn.close(1008, "too many messages")
                    break
                self._on_message(conn, message)
        except ConnectionClosed:
            pass
        finally:
            self.hub.remove(conn)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _within_rate(self, conn: Connection) -> bool:
        now = time.monotonic()
        conn.received.append(now)
        while conn.received and conn.received[0] < now - 1.0:
            conn.received.popleft()
        return len(conn.received) <= self.cfg.max_client_msgs_per_s

    def _on_message(self, conn: Connection, message: str | bytes) -> None:
        """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, answered like Binance."""
        try:
            request = orjson.loads(message)
        except orjson.JSONDecodeError:
            conn.enqueue(orjson.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}).decode())
            return
        req_id = request.get("id") if isinstance(request, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        params = request.get("params", []) if isinstance(request, dict) else None

        def error(code: int, msg: str) -> None:
            conn.enqueue(orjson.dumps({"error": {"code": code, "msg": msg}, "id": req_id}).decode())

        if method == "LIST_SUBSCRIPTIONS":
            listed = [*conn.streams, *sorted(conn.silent_streams)]
            conn.enqueue(orjson.dumps({"result": listed, "id": req_id}).decode())
            return
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            error(2, f"Invalid request: unknown method {method!r}")
            return
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            error(1, "Invalid value type: params must be a list of stream names")
            return
        if method == "SUBSCRIBE":
            new = [p for p in params if p not in conn.streams and p not in conn.silent_streams]
            held = len(conn.streams) + len(conn.silent_streams)
            try:
                check_streams(conn.route, new, self.cfg.max_streams - held, self.symbols)
            except RouteError as exc:
                error(2, f"Invalid request: {exc}")
                return
            served = servable(conn.route, new, self.symbols)
            conn.silent_streams.update(set(new) - set(served))
            self.hub.subscribe(conn, served)
        else:
            conn.silent_streams.difference_update(params)
            self.hub.unsubscribe(conn, params)
        conn.enqueue(orjson.dumps({"result": None, "id": req_id}).decode())

    async def _writer(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await conn.queue.get()
                if loop.time() < conn.silent_until or conn.closing:
                    continue
                await conn.ws.send(message)

    async def _pinger(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.cfg.ping_interval_s)
                if loop.time() < conn.silent_until or conn.closing:
                    continue
                waiter = await conn.ws.ping()
                try:
                    await asyncio.wait_for(waiter, self.cfg.pong_timeout_s)
                except TimeoutError:
                    log.info("ws client %s: no pong within %.0f s, disconnecting",
                             conn.ws.remote_address, self.cfg.pong_timeout_s)
                    conn.close(1008, "pong timeout")
                    return

    async def _lifetime(self, conn: Connection) -> None:
        await asyncio.sleep(self.cfg.lifetime_s)
        log.info("ws client %s: connection lifetime reached, closing", conn.ws.remote_address)
        conn.close(1001, "connection lifetime reached")
