"""A WSGI server whose cost is bounded: a fixed pool of worker threads, a cap on
open connections, and a deadline on every request.

The dashboard is served from a thread of the ingestion process, so nothing a client
does on its port may take threads, descriptors or time without bound:

- one thread accepts connections and reads each request head without blocking; a
  connection whose head is not complete ``request_timeout_s`` after it was accepted
  is closed, one whose head outgrows ``MAX_HEAD_BYTES`` is answered 414 or 431;
- only complete heads reach the ``workers`` threads, which run the WSGI app through
  werkzeug's request handler; each of their socket reads and writes is bounded by
  ``request_timeout_s`` too;
- a connection beyond ``max_connections`` open at once (reading its head, queued or
  being served) is answered 503 and closed at once;
- every response closes its connection (werkzeug's handler keeps none alive), so no
  connection idles between requests.

Refusals, timeouts and accept failures are counted (:class:`PoolStats`) and logged
at most once per interval.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import io
import logging
import queue
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from werkzeug.serving import WSGIRequestHandler

from dashboard.throttled_log import ThrottledLog
from embedded_server import bind_socket

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("dashboard")

MAX_HEAD_BYTES = 32 * 1024  # request line and headers; browsers send a few hundred bytes
ACCEPTS_PER_TURN = 64  # accepts between two looks at the connections already open
ACCEPT_PAUSE_S = 0.5  # accepting stops this long when the process is out of descriptors
TICK_S = 0.25  # the accepting thread looks at its deadlines at least this often
LOG_INTERVAL_S = 10.0
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What the server may spend: worker threads, open connections, seconds a request
    may take to arrive (and each of its reads and writes once it has)."""

    workers: int = 8
    max_connections: int = 64
    request_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"dashboard workers must be at least 1, got {self.workers}")
        if self.max_connections < 1:
            raise ValueError(f"dashboard max connections must be at least 1, got {self.max_connections}")
        if not self.request_timeout_s > 0:
            raise ValueError(f"dashboard request timeout must be positive, got {self.request_timeout_s}")


@dataclass(slots=True)
class PoolStats:
    accepted: int = 0
    served: int = 0  # requests handed to a worker and answered
    refused_over_cap: int = 0  # answered 503 at once
    head_timeouts: int = 0  # closed without a complete head within the timeout
    heads_too_large: int = 0  # answered 414 or 431
    accept_errors: int = 0  # accept() failed for want of descriptors or memory


def plain_response(status: str, text: str, extra_headers: str = "") -> bytes:
    """A complete HTTP/1.1 response with a short text body that closes the connection."""
    body = text.encode() + b"\n"
    head = (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra_headers}\r\n")
    return head.encode() + body


BUSY_RESPONSE = plain_response("503 Service Unavailable", "too many connections; try again shortly",
                               "Retry-After: 1\r\n")


@dataclass(eq=False, slots=True)
class _Connection:
    """An accepted connection until a worker has answered it."""

    sock: socket.socket
    address: Any
    deadline: float  # monotonic time by which the head must be complete
    head: bytearray = field(default_factory=bytearray)
    done: bool = False  # handed to a worker, or closed


def _head_complete(head: bytearray, start: int) -> bool:
    """Does ``head`` hold the empty line that ends a request head (searched from ``start``)?"""
    return head.find(b"\n\r\n", start) >= 0 or head.find(b"\n\n", start) >= 0


class _HeadThenSocket(io.RawIOBase):
    """What the accepting thread read (the head, perhaps the start of a body), then the socket."""

    def __init__(self, head: bytes, sock: socket.socket) -> None:
        super().__init__()
        self._rest = memoryview(head)
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._rest.nbytes:
            out = memoryview(buffer).cast("B")
            n = min(out.nbytes, self._rest.nbytes)
            out[:n] = self._rest[:n]
            self._rest = self._rest[n:]
            return n
        return self._sock.recv_into(buffer)


class _PooledRequestHandler(WSGIRequestHandler):
    """werkzeug's handler for one request whose head the accepting thread has read."""

    protocol_version = "HTTP/1.1"  # chunked responses; werkzeug still closes every connection

    def __init__(self, conn: _Connection, server: PooledWSGIServer) -> None:
        self._head = bytes(conn.head)
        # werkzeug's handler reads only the attributes PooledWSGIServer provides.
        super().__init__(conn.sock, conn.address, cast(Any, server))

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_HeadThenSocket(self._head, self.connection))

    def handle(self) -> None:
        """Exactly one request: its response closes the connection."""
        self.close_connection = True
        try:
            self.handle_one_request()
        except (ConnectionError, TimeoutError) as exc:
            self.connection_dropped(exc)


class PooledWSGIServer:
    """``app`` on ``host:port`` (bound at construction; 0 picks a free port) within ``limits``.

    :meth:`start` starts the accepting thread and the workers; :meth:`shutdown` stops
    them, finishing the requests in flight, and closes every socket."""

    # What werkzeug's request handler reads from its server.
    multithread = True
    multiprocess = False
    passthrough_errors = False
    ssl_context = None

    def __init__(self, app: WSGIApplication, host: str, port: int, limits: ServerLimits | None = None) -> None:
        self.app = app
        self.limits = limits or ServerLimits()
        self.stats = PoolStats()
        self._listener = bind_socket(host, port)
        self.server_address: tuple[str, int] = self._listener.getsockname()[:2]
        self.port = self.server_address[1]
        self._server_version = f"Werkzeug/{importlib.metadata.version('werkzeug')}"
        self._queue: queue.SimpleQueue[_Connection | None] = queue.SimpleQueue()
        self._open = 0  # connections accepted and not yet closed
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._acceptor: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._log_refused = ThrottledLog(log, logging.WARNING, LOG_INTERVAL_S)
        self._log_timeout = ThrottledLog(log, logging.WARNING, LOG_INTERVAL_S)
        self._log_too_large = ThrottledLog(log, logging.WARNING, LOG_INTERVAL_S)
        self._log_accept = ThrottledLog(log, logging.ERROR, LOG_INTERVAL_S)

    @property
    def open_connections(self) -> int:
        return self._open

    def start(self) -> None:
        self._workers = [threading.Thread(target=self._work, name=f"dashboard-worker-{i + 1}", daemon=True)
                         for i in range(self.limits.workers)]
        for t in self._workers:
            t.start()
        self._acceptor = threading.Thread(target=self._accept_loop, name="dashboard-accept", daemon=True)
        self._acceptor.start()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop accepting, close what waits, let the workers finish the requests in
        flight (each read or write of theirs is bounded), close every socket."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        if self._acceptor is not None:
            self._acceptor.join(max(0.0, deadline - time.monotonic()))
        else:
            self._listener.close()
        for _ in self._workers:  # after the acceptor: nothing is queued behind these
            self._queue.put(None)
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()

    # --- the accepting thread -------------------------------------------------------

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        waiting: deque[_Connection] = deque()  # in accept order, hence in deadline order
        paused_until: float | None = None
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if paused_until is not None and now >= paused_until:
                    sel.register(self._listener, selectors.EVENT_READ, None)
                    paused_until = None
                wait = TICK_S
                if waiting:
                    wait = min(wait, max(0.0, waiting[0].deadline - now))
                for key, _events in sel.select(wait):
                    if key.data is None:
                        if self._accept_some(sel, waiting):
                            sel.unregister(self._listener)
                            paused_until = time.monotonic() + ACCEPT_PAUSE_S
                    elif key.data is self._wake_r:
                        self._drain_wake()
                    else:
                        self._read_head(sel, key.data)
                self._expire(sel, waiting, time.monotonic())
        finally:
            for conn in waiting:
                if not conn.done:
                    self._close(conn)
            sel.close()
            self._listener.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except OSError:
            pass

    def _accept_some(self, sel: selectors.BaseSelector, waiting: deque[_Connection]) -> bool:
        """Accept what is pending (up to a turn's worth); True when accepting must pause
        because the process is out of descriptors or memory."""
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self.stats.accept_errors += 1
                    self._log_accept.log("dashboard: cannot accept a connection (%s); pausing accepts for %.1f s",
                                         exc.strerror, ACCEPT_PAUSE_S)
                    return True
                continue  # the peer gave up before it was accepted
            self.stats.accepted += 1
            with self._lock:
                admitted = self._open < self.limits.max_connections
                if admitted:
                    self._open += 1
            if not admitted:
                self._refuse(sock, address)
                continue
            sock.setblocking(False)
            conn = _Connection(sock, address, time.monotonic() + self.limits.request_timeout_s)
            sel.register(sock, selectors.EVENT_READ, conn)
            waiting.append(conn)
        return False

    def _refuse(self, sock: socket.socket, address: Any) -> None:
        """503 and close, without waiting for anything: a connection over the cap."""
        self.stats.refused_over_cap += 1
        self._log_refused.log("dashboard: %d connections open, the cap; refusing %s with 503",
                              self.limits.max_connections, _host(address))
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.recv(MAX_HEAD_BYTES)  # a head already here: read, so that closing sends no reset
            sock.send(BUSY_RESPONSE)
        sock.close()

    def _read_head(self, sel: selectors.BaseSelector, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(MAX_HEAD_BYTES)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the peer left before its head was complete
            self._unregister(sel, conn)
            self._close(conn)
            return
        start = max(0, len(conn.head) - 2)
        conn.head += chunk
        if _head_complete(conn.head, start):
            self._unregister(sel, conn)
            conn.done = True
            self._queue.put(conn)
        elif len(conn.head) > MAX_HEAD_BYTES:
            self.stats.heads_too_large += 1
            line_ended = b"\n" in conn.head
            status = "431 Request Header Fields Too Large" if line_ended else "414 URI Too Long"
            self._log_too_large.log("dashboard: request head from %s over %d bytes; answered %s",
                                    _host(conn.address), MAX_HEAD_BYTES, status[:3])
            self._unregister(sel, conn)
            with contextlib.suppress(OSError):
                conn.sock.send(plain_response(status, f"the request head is limited to {MAX_HEAD_BYTES} bytes"))
            self._close(conn)

    def _expire(self, sel: selectors.BaseSelector, waiting: deque[_Connection], now: float) -> None:
        """Close the connections whose head is overdue; forget those already done."""
        while waiting and (waiting[0].done or waiting[0].deadline <= now):
            conn = waiting.popleft()
            if conn.done:
                continue
            self.stats.head_timeouts += 1
            self._log_timeout.log("dashboard: %s sent no complete request within %.1f s; closed",
                                  _host(conn.address), self.limits.request_timeout_s)
            self._unregister(sel, conn)
            self._close(conn)

    @staticmethod
    def _unregister(sel: selectors.BaseSelector, conn: _Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)

    def _close(self, conn: _Connection) -> None:
        """Free the connection's slot, then close it: a client that sees the close finds the slot free."""
        conn.done = True
        with self._lock:
            self._open -= 1
        conn.sock.close()

    # --- the workers -------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            conn = self._queue.get()
            if conn is None:
                return
            try:
                if not self._stopping.is_set():
                    conn.sock.settimeout(self.limits.request_timeout_s)
                    _PooledRequestHandler(conn, self)
                    with self._lock:
                        self.stats.served += 1
            except Exception:  # the handler's own failure; the app's are answered 500 by werkzeug
                log.exception("dashboard: the request from %s failed", _host(conn.address))
            finally:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_WR)
                self._close(conn)


def _host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else str(address)
