"""Websocket clients for the API tests: a real ``websockets`` client with deadlines,
and a raw socket that completes the handshake and then never reads (a stalled client)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.waiting import CEILING_S

FRAME_FIELDS = (
    "type", "symbol", "seq", "timestamp", "sync", "mid_price", "spread", "imbalance", "ofi", "microprice",
    "total_bid_volume", "total_ask_volume", "bid_levels", "ask_levels", "walls", "alerts", "heatmap",
    "trades", "feed",
)


@contextlib.asynccontextmanager
async def ws_connect(url: str, local_host: str | None = None, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    """A websockets client (no compression, no size limit), from ``local_host`` if given
    (any 127.x.y.z address works on Linux: distinct remote addresses for the per-IP limit)."""
    extra: dict[str, Any] = {"local_addr": (local_host, 0)} if local_host else {}
    async with websockets.connect(
        url, max_size=None, compression=None, open_timeout=CEILING_S, close_timeout=5, **extra, **kwargs
    ) as ws:
        yield ws


async def recv_json(ws: ClientConnection, timeout: float = CEILING_S) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    msg = orjson.loads(raw)
    assert isinstance(msg, dict)
    return msg


async def recv_frames(
    ws: ClientConnection, count: int, timeout: float = CEILING_S
) -> list[tuple[float, dict[str, Any]]]:
    """(local receive wall time, frame) of the next ``count`` messages."""
    deadline = time.monotonic() + timeout
    out: list[Any] = []
    while len(out) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(out)} of {count} frames within {timeout} s"
        msg = await recv_json(ws, left)
        out.append((time.time(), msg))
    return out


async def expect_close(ws: ClientConnection, timeout: float = CEILING_S) -> tuple[int, str]:
    """Read until the server closes; the (code, reason) of its close frame."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ConnectionClosed):
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "the server did not close the connection"
            await asyncio.wait_for(ws.recv(), left)
    rcvd = ws.protocol.close_rcvd
    assert rcvd is not None, f"connection dropped without a close frame (code {ws.close_code})"
    return rcvd.code, rcvd.reason


async def read_until_closed(sock: socket.socket, timeout: float = CEILING_S) -> str:
    """Read a raw socket until the server ends the connection: "eof" (FIN) or "reset"
    (RST). Fails if it is still open after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the server left the connection open"
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), left)
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            raise AssertionError("the server left the connection open") from None
        if not chunk:
            return "eof"


async def stalled_client(ws_url: str, rcvbuf: int = 4096) -> socket.socket:
    """Open ``ws_url`` with a raw socket, complete the handshake and return the socket:
    the caller never reads from it again (a tiny receive buffer, so it fills fast)."""
    parts = urlsplit(ws_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:  # one byte at a time: take nothing past the headers
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), CEILING_S)
        assert chunk, "server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock
