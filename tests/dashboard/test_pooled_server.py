"""The dashboard's server under abuse, with real sockets on loopback: connections over
the cap refused, threads bounded, idle and half-open connections closed, the page
still served to an honest client."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from dashboard.app import create_app
from dashboard.pooled_server import MAX_HEAD_BYTES, ServerLimits
from dashboard.server import DashboardServer
from tests.waiting import CEILING_S, wait_until_sync

NEVER_S = 600.0  # a request timeout no test reaches: what is closed then was closed for another reason


@contextlib.contextmanager
def serving(limits: ServerLimits) -> Iterator[DashboardServer]:
    server = DashboardServer(create_app("http://127.0.0.1:9999", ["btcusdt"]), "127.0.0.1", 0, limits)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(server: DashboardServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=CEILING_S)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def page_status(server: DashboardServer) -> int:
    try:
        with urllib.request.urlopen(server.url + "/", timeout=CEILING_S) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:  # 503 while the server has not yet seen the others leave
        return exc.code


def dashboard_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dashboard-")]


def test_connections_over_the_cap_get_503_and_threads_stay_fixed() -> None:
    limits = ServerLimits(workers=2, max_connections=8, request_timeout_s=NEVER_S)
    with serving(limits) as server:
        assert len(dashboard_threads()) == 3  # the accepting thread and two workers
        threads_before = threading.active_count()
        idle = [connect(server) for _ in range(limits.max_connections)]
        try:
            wait_until_sync(lambda: server.stats is not None and server.stats.accepted == limits.max_connections,
                            what="the idle connections accepted")
            extra = [connect(server) for _ in range(10)]
            answers = [read_to_end(s) for s in extra]
            for s in extra:
                s.close()
            assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers
            assert server.stats is not None and server.stats.refused_over_cap == 10
            assert threading.active_count() == threads_before
        finally:
            for s in idle:
                s.close()
        # the idle ones leaving free their slots: an honest client is served again
        wait_until_sync(lambda: page_status(server) == 200, what="the page served after the burst")
        assert threading.active_count() == threads_before


def test_idle_connections_under_the_cap_do_not_hold_the_workers() -> None:
    with serving(ServerLimits(workers=2, max_connections=32, request_timeout_s=NEVER_S)) as server:
        idle = [connect(server) for _ in range(20)]
        try:
            wait_until_sync(lambda: server.stats is not None and server.stats.accepted == 20,
                            what="the idle connections accepted")
            # twenty connections that say nothing, two workers: the page is still served
            assert page_status(server) == 200
        finally:
            for s in idle:
                s.close()


def test_a_half_open_request_is_closed_after_the_timeout() -> None:
    with serving(ServerLimits(workers=2, max_connections=8, request_timeout_s=0.5)) as server:
        threads_before = threading.active_count()
        half_open = [connect(server) for _ in range(20)]  # more than the cap: some refused, the rest timed out
        for s in half_open:
            with contextlib.suppress(OSError):
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the blank line that ends a head never comes
        answers = [read_to_end(s) for s in half_open]  # returns once the server has closed each
        for s in half_open:
            s.close()
        # closed without a word (the head never completed), or refused over the cap
        assert all(a == b"" or a.startswith(b"HTTP/1.1 503 ") for a in answers), answers
        assert server.stats is not None
        assert server.stats.head_timeouts + server.stats.refused_over_cap == 20
        assert server.stats.head_timeouts >= 8 and server.stats.served == 0
        assert threading.active_count() == threads_before
        assert page_status(server) == 200


def test_a_head_sent_a_byte_at_a_time_is_closed_at_its_deadline() -> None:
    """The timeout bounds the whole head, not each read: trickling bytes does not keep a connection."""
    with serving(ServerLimits(workers=2, max_connections=8, request_timeout_s=1.0)) as server:
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100_000
        deadline = time.monotonic() + CEILING_S
        closed = False
        with connect(server) as s:
            for byte in head:
                readable, _, _ = select.select([s], [], [], 0.05)  # the trickle's pace, and the close seen
                if readable:
                    closed = read_to_end(s) == b""
                    break
                if time.monotonic() > deadline:
                    break
                try:
                    s.send(bytes([byte]))
                except OSError:
                    closed = True
                    break
        assert closed, "the trickled head was never closed"
        assert server.stats is not None and server.stats.head_timeouts == 1
        assert server.stats.served == 0


def test_a_head_over_the_limit_gets_414_or_431() -> None:
    with serving(ServerLimits(workers=2, max_connections=8, request_timeout_s=NEVER_S)) as server:
        with connect(server) as s:
            s.sendall(b"GET /" + b"a" * (MAX_HEAD_BYTES + 10))
            assert read_to_end(s).startswith(b"HTTP/1.1 414 ")
        with connect(server) as s:
            s.sendall(b"GET / HTTP/1.1\r\n" + b"X-Padding: aaaaaaaaaaaaaaaaaaaa\r\n" * (MAX_HEAD_BYTES // 30))
            assert read_to_end(s).startswith(b"HTTP/1.1 431 ")
        assert page_status(server) == 200


def test_a_request_split_across_packets_and_a_body_are_served() -> None:
    with serving(ServerLimits(workers=1, max_connections=4, request_timeout_s=NEVER_S)) as server:
        with connect(server) as s:
            s.sendall(b"GET /_dash-layout HTTP/1.1\r\nHo")
            s.sendall(b"st: 127.0.0.1\r\n")
            s.sendall(b"\r\n")
            answer = read_to_end(s)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"liq-config" in answer
        body = b'{"output": "nope.data"}'
        with connect(server) as s:
            s.sendall(b"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:5]))
            s.sendall(body[5:])
            answer = read_to_end(s)
        assert answer.startswith(b"HTTP/1.1 404 ") and b"no server callback" in answer


def test_stop_closes_waiting_connections_and_ends_every_thread() -> None:
    server = DashboardServer(create_app("http://127.0.0.1:9999", ["btcusdt"]), "127.0.0.1", 0,
                             ServerLimits(workers=3, max_connections=8, request_timeout_s=NEVER_S))
    server.start()
    idle = [connect(server) for _ in range(4)]
    try:
        wait_until_sync(lambda: server.stats is not None and server.stats.accepted == 4,
                        what="the idle connections accepted")
        server.stop()
        assert dashboard_threads() == []
        assert all(read_to_end(s) == b"" for s in idle)  # closed by the server, not left open
    finally:
        for s in idle:
            s.close()
    with socket.socket() as s:  # nothing listens on the port any more (its closed connections may linger)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", server.port))
        s.listen()
