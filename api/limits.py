"""Connection-level limits of the API server, below the application.

uvicorn accepts every connection and keeps it for as long as the peer likes: a
client that opens sockets and sends nothing holds a descriptor each, forever, and
enough of them starve the exchange connections of descriptors. The protocols here
are uvicorn's own (h11 for HTTP, the websockets sans-I/O one after an upgrade)
with four limits added:

* **a cap on open connections** (HTTP and websocket together): one over the cap
  is answered 503 and closed at once, so it costs a descriptor for microseconds;
* **a deadline for request headers**: a connection that has not completed its
  request's headers within ``header_timeout_s`` of opening (or of its previous
  response) is closed; idle keep-alive connections are closed by uvicorn's own
  ``timeout_keep_alive``;
* **a bound on a websocket upgrade's request**: a target or header line the
  websocket parser would refuse (it then leaves the socket open without an answer)
  is answered 414 / 431 here and closed;
* **a way to abort** an upgraded connection from the application: the scope of
  every websocket carries ``extensions["liq.abort"]``, which drops the transport
  and its buffered bytes at once (a client that stopped reading cannot be handed a
  close frame);
* **a measure of what a websocket has not delivered**: ``extensions["liq.outstanding"]``
  gives the bytes written to the connection that its peer has not acknowledged yet
  (the transport's buffer plus the kernel's send queue): a client that stopped
  reading leaves them there, while every write still returns at once until the
  kernel's buffers (hundreds of KB: minutes of frames) are full;
* **a direct writer** of whole frames: ``extensions["liq.write_frame"]`` writes a
  frame built once for every client (api/hub.py) when the connection is open and
  takes it without waiting, so a caught-up client costs one transport write per
  frame and no task of its own;
* **a paced writer** of one large message: ``extensions["liq.write_message"]`` writes a
  message built once for every client (the history, the screener's snapshot) as
  fragments of 64 KB (RFC 6455, 5.4), the next one only once the connection's buffer
  has drained below its low-water mark. ``send_text`` would encode and frame the
  whole message for each client and leave what the kernel did not take (most of a
  1.5 MB history, for a client that does not read) copied in the connection's
  buffer: 300 such clients held 340 MB until they were closed. Paced, a client holds
  at most a fragment and the buffer's high-water mark (64 KB), and the message itself
  is one object shared by all. Control frames (pings, pongs, a close) may come between
  fragments; nothing else is sent on the connection until the message is whole;
* **a way to stop reading** an upgraded connection: ``extensions["liq.stop_reading"]``.
  After its close frame, a connection waits for the peer's close reply, reading and
  parsing whatever else the peer sends for up to 10 s: a client closed for flooding
  would cost that much parsing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import resource
import sys
import termios
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from api.hub import OP_CONTINUATION, OP_TEXT, frame_header

ABORT_EXTENSION = "liq.abort"
OUTSTANDING_EXTENSION = "liq.outstanding"
STOP_READING_EXTENSION = "liq.stop_reading"
WRITE_FRAME_EXTENSION = "liq.write_frame"
WRITE_MESSAGE_EXTENSION = "liq.write_message"
FRAGMENT_BYTES = 64 * 1024  # the payload of each fragment of a paced message

# The longest request target and header line a websocket upgrade may carry. Ours
# are "/ws/<symbol>" and browser headers; the websocket parser refuses lines over
# 8 KiB without answering, so anything near that is refused here with a status.
MAX_UPGRADE_TARGET_BYTES = 4096
MAX_UPGRADE_HEADER_BYTES = 8000
# Bytes read from a websocket at a time (asyncio reads 256 KB). The websocket library
# parses every frame of a read at once: 256 KB of tiny frames from a flooder is some
# 37,000 frames, hundreds of milliseconds of the event loop before the per-client
# budget can see any of them. Clients of this API send nothing but control frames, so
# small reads cost an honest client nothing and bound a flooder's read to a few ms.
WS_READ_BYTES = 8 * 1024


@dataclass(slots=True)
class ConnectionLimits:
    """The limits, and what they refused (shown in /stats and /metrics)."""

    max_connections: int
    header_timeout_s: float
    refused_over_cap: int = 0
    closed_header_timeout: int = 0
    refused_upgrade_too_long: int = 0


def _simple_response(status: int, reason: str, body: str) -> bytes:
    payload = body.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    ).encode() + payload


class _GuardedHttp(H11Protocol):
    limits: ConnectionLimits  # set on the subclass made by guarded_protocols()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._header_timer: asyncio.TimerHandle | None = None
        limits = self.limits
        if len(self.connections) > limits.max_connections:
            limits.refused_over_cap += 1
            self.transport.write(_simple_response(
                503, "Service Unavailable", f"too many connections (limit {limits.max_connections})\n"))
            self.transport.close()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()  # the next request's headers get the same deadline

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel_header_timer()
        too_long = None
        if len(event.target) > MAX_UPGRADE_TARGET_BYTES:
            too_long = (414, "URI Too Long", f"request target over {MAX_UPGRADE_TARGET_BYTES} bytes\n")
        elif any(len(k) + len(v) + 2 > MAX_UPGRADE_HEADER_BYTES for k, v in self.headers):
            too_long = (431, "Request Header Fields Too Large",
                        f"a header line over {MAX_UPGRADE_HEADER_BYTES} bytes\n")
        if too_long is not None:
            self.limits.refused_upgrade_too_long += 1
            self.transport.write(_simple_response(*too_long))
            self.transport.close()
            return
        super().handle_websocket_upgrade(event)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._header_deadline)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return  # gone, or upgraded to a websocket (its own keepalive watches it)
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered: its headers were complete
        self.limits.closed_header_timeout += 1
        transport.close()


class _AbortableWebSocket(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if hasattr(transport, "max_size"):  # the selector transport's read size
            transport.max_size = WS_READ_BYTES

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the handshake went on to the application
            extensions = cast(dict[str, Any], scope["extensions"])
            extensions[ABORT_EXTENSION] = self.transport.abort
            extensions[OUTSTANDING_EXTENSION] = partial(outstanding_bytes, self.transport)
            extensions[STOP_READING_EXTENSION] = self.transport.pause_reading
            extensions[WRITE_FRAME_EXTENSION] = self.write_frame
            extensions[WRITE_MESSAGE_EXTENSION] = self.write_message

    def _open(self) -> bool:
        return not (self.close_sent or self.disconnected or self.transport.is_closing()
                    or self.conn.state is not State.OPEN)

    def write_frame(self, frame: bytes) -> bool:
        """Write ``frame`` (a whole websocket frame, as :func:`api.hub.text_frame` builds
        it) now, if the connection is open and its buffer takes more without waiting;
        False otherwise (the caller then sends through the application's path)."""
        if not self._open() or not self.writable.is_set():
            return False
        self.transport.write(frame)
        return True

    async def write_message(self, payload: bytes, fragment: int = FRAGMENT_BYTES) -> bool:
        """Write the UTF-8 ``payload`` as one text message in fragments, each once the
        connection's buffer has room (see the module's docstring). True once all of it
        is written; False if the connection closed first (then the message is cut
        short, and only a close or an abort may follow)."""
        view = memoryview(payload)
        n = len(view)
        start = 0
        opcode = OP_TEXT
        while True:
            if not self.writable.is_set():
                await self.writable.wait()  # set again on resume_writing and on connection_lost
            if not self._open():
                return False
            end = min(n, start + fragment)
            self.transport.write(frame_header(end - start, opcode, fin=end == n))
            if end > start:
                self.transport.write(view[start:end])
            if end == n:
                return True
            start, opcode = end, OP_CONTINUATION


def outstanding_bytes(transport: asyncio.Transport) -> int | None:
    """Bytes written to ``transport`` that its peer has not acknowledged: the
    transport's own buffer plus the kernel's send queue (``SIOCOUTQ``, Linux); None
    when the kernel's part cannot be read."""
    if transport.is_closing():
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ is TIOCOUTQ
    except (OSError, ValueError):
        return None
    return transport.get_write_buffer_size() + int.from_bytes(raw, sys.byteorder, signed=True)


def extension(scope: dict[str, Any] | Any, name: str) -> Callable[..., Any] | None:
    """The callable a websocket's scope carries under ``name`` (one of the ``*_EXTENSION``
    names above), or None when the connection is served another way (a test client)."""
    fn = (scope.get("extensions") or {}).get(name)
    return fn if callable(fn) else None


def guarded_protocols(limits: ConnectionLimits) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """The (http, ws) protocol classes to give uvicorn.Config for ``limits``."""
    http = type("GuardedHttpProtocol", (_GuardedHttp,), {"limits": limits})
    return http, _AbortableWebSocket


# Descriptors kept out of the API's connection cap: the exchange connections, the
# recorder's files, the dashboard server, log files, the simulated exchange.
RESERVED_DESCRIPTORS = 256


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open descriptors to its hard limit (the
    default soft limit, often 1,024, is what a few idle clients exhaust); return
    the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def connection_cap(configured: int) -> int:
    """``configured``, lowered to leave :data:`RESERVED_DESCRIPTORS` of the soft
    descriptor limit to everything else."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(16, min(configured, soft - RESERVED_DESCRIPTORS))
