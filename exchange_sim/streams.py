"""Subscriptions and fan-out: each client connection (its bounded send queue,
silence, close) and the hub that routes every stream's encoded messages to the
connections subscribed to it. The venue publishes into the hub; the websocket
server (ws.py) adds and removes the connections."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from typing import Any

from websockets.asyncio.server import ServerConnection

from exchange_sim.protocol import StreamKey, parse_stream

log = logging.getLogger(__name__)


class Connection:
    """One client websocket and what it subscribed to."""

    def __init__(self, ws: ServerConnection, route: str, combined: bool, queue_size: int) -> None:
        self.ws = ws
        self.route = route
        self.combined = combined
        self.streams: dict[str, StreamKey] = {}
        self.silent_streams: set[str] = set()  # accepted but never served (unknown, other route)
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.silent_until = 0.0  # loop time; nothing is sent before it
        self.closing = False
        self.received: deque[float] = deque()

    @property
    def symbols(self) -> set[str]:
        """The symbols this connection carries streams of (all-market streams aside)."""
        return {k.symbol for k in self.streams.values() if k.symbol}

    def enqueue(self, message: str) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("ws client %s: send queue full, dropping the connection", self.ws.remote_address)
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self.closing = True
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    def close(self, code: int, reason: str) -> None:
        """Close with a close frame (in the background)."""
        if self.closing:
            return
        self.closing = True
        task = asyncio.get_running_loop().create_task(self.ws.close(code, reason), name="ws-close")
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def silence(self, seconds: float) -> None:
        """Send nothing and read nothing (so answer no pings) for ``seconds``."""
        loop = asyncio.get_running_loop()
        self.silent_until = loop.time() + seconds
        transport = self.ws.transport
        if transport is not None:
            transport.pause_reading()
            loop.call_later(seconds, self._resume_reading)

    def _resume_reading(self) -> None:
        transport = self.ws.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()


_BACKGROUND: set[asyncio.Task[Any]] = set()


class StreamHub:
    """Subscriptions and fan-out of encoded messages to connections."""

    def __init__(self) -> None:
        self.subs: dict[StreamKey, dict[Connection, set[str]]] = {}
        self.connections: set[Connection] = set()

    def subscribe(self, conn: Connection, names: Iterable[str]) -> None:
        for name in names:
            key = parse_stream(name)
            if key is None or name in conn.streams:
                continue
            conn.streams[name] = key
            self.subs.setdefault(key, {}).setdefault(conn, set()).add(name)

    def unsubscribe(self, conn: Connection, names: Iterable[str]) -> None:
        for name in names:
            key = conn.streams.pop(name, None)
            if key is None:
                continue
            by_conn = self.subs.get(key, {})
            names_of = by_conn.get(conn)
            if names_of is not None:
                names_of.discard(name)
                if not names_of:
                    del by_conn[conn]
            if not by_conn:
                self.subs.pop(key, None)

    def remove(self, conn: Connection) -> None:
        self.unsubscribe(conn, list(conn.streams))
        self.connections.discard(conn)

    def has(self, key: StreamKey) -> bool:
        return key in self.subs

    def publish(self, key: StreamKey, data: str, wrap: bool = True) -> None:
        """Send ``data`` (a raw event's JSON) to every subscriber of ``key``; combined
        connections get it wrapped with the stream name they subscribed with."""
        by_conn = self.subs.get(key)
        if not by_conn:
            return
        wrapped: dict[str, str] = {}
        for conn, names in list(by_conn.items()):
            for name in names:
                if not (conn.combined and wrap):
                    conn.enqueue(data)
                    continue
                msg = wrapped.get(name)
                if msg is None:
                    msg = wrapped[name] = f'{{"stream":"{name}","data":{data}}}'
                conn.enqueue(msg)

    def connections_for(self, symbol: str) -> list[Connection]:
        return [c for c in self.connections if symbol in c.symbols]
