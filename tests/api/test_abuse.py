"""The serving side under abuse, at a small scale: whatever a client does, the books
stay in sync, honest clients keep getting frames, and every limit holds.

One stack with tight limits (a 1 s stall deadline, 1 s header deadline, a small
connection cap, 5 client messages a second); each test drives one kind of abuse
with real sockets on loopback and checks what the server did about it (closed
with which code, slot freed, counted), never how long it took."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from websockets.exceptions import InvalidStatus

from api.limits import MAX_UPGRADE_TARGET_BYTES, WS_READ_BYTES
from api.ws import CLOSE_REASON_MAX_BYTES
from tests.api.wsclient import expect_close, read_until_closed, recv_frames, recv_json, stalled_client, ws_connect
from tests.stack import StackHandle, book_mismatches, running_stack
from tests.waiting import CEILING_S, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

PER_ADDRESS = 3
MAX_CONNECTIONS = 24
MSGS_PER_S = 5.0
DASHBOARD = "http://127.0.0.1:8050"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h() -> AsyncIterator[StackHandle]:
    async with running_stack(
        push_interval_s=0.1, max_ws_clients=50, max_ws_clients_per_ip=PER_ADDRESS, ws_stall_timeout_s=1.0,
        header_timeout_s=1.0, keepalive_idle_s=1.0, max_connections=MAX_CONNECTIONS,
        ws_client_msgs_per_s=MSGS_PER_S,
    ) as handle:
        handle.stack.allow_origin(DASHBOARD)
        await handle.wait_synced()
        yield handle


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def clean_start(h: StackHandle) -> AsyncIterator[None]:
    await h.wait_for(lambda: h.stack.hub.client_count == 0, what="no client left")
    await h.wait_synced()
    yield
    h.leave_clean()


def resyncs(h: StackHandle) -> int:
    return sum(feed.validator.counters.resyncs for feed in h.stack.runtime.feeds.values())


def api_connections(h: StackHandle) -> int:
    assert h.stack.api is not None
    return len(h.stack.api.server.server_state.connections)


async def raw_connection(h: StackHandle, payload: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert h.stack.api is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", h.stack.api.port)
    if payload:
        writer.write(payload)
        await writer.drain()
    return reader, writer


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    with contextlib.suppress(ConnectionResetError):
        return await asyncio.wait_for(reader.read(), CEILING_S)
    return b""


async def test_stalled_clients_are_closed_and_their_slots_freed(h: StackHandle) -> None:
    """Clients that complete the handshake and never read: each is closed once a frame
    has waited the stall deadline, its slot freed; an honest reader meanwhile gets
    every frame and no book resyncs."""
    before_resyncs, evicted = resyncs(h), h.stack.hub.stats.clients_evicted
    feed = h.feed("btcusdt")
    stalled = [await stalled_client(f"{h.ws_url}/ws/btcusdt") for _ in range(PER_ADDRESS - 1)]
    stalled.append(await stalled_client(f"{h.ws_url}/ws/ethusdt"))
    try:
        async with ws_connect(f"{h.ws_url}/ws/btcusdt", "127.0.0.2") as honest:
            assert (await recv_json(honest))["type"] == "history"
            received: list[tuple[float, dict[str, Any]]] = []

            async def read_all_along() -> None:  # an honest client reads all the time
                while True:
                    received.extend(await recv_frames(honest, 1))

            reading = asyncio.create_task(read_all_along())
            try:
                await wait_until(lambda: reading.done() or h.stack.hub.stats.clients_evicted >= evicted + len(stalled),
                                 what="the stalled clients closed")
                ends = [await read_until_closed(sock) for sock in stalled]
                # The honest client is still served, in order, with nothing missed.
                seen = len(received)
                await wait_until(lambda: reading.done() or len(received) >= seen + 5, what="five more frames")
                assert not reading.done(), reading.exception()
                assert h.stack.hub.client_count == 1
            finally:
                reading.cancel()
    finally:
        for sock in stalled:
            sock.close()
    assert set(ends) <= {"eof", "reset"}
    seqs = [frame["seq"] for _, frame in received]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert resyncs(h) == before_resyncs and feed.in_sync and book_mismatches(feed, h.sim) == []


async def test_a_client_that_talks_too_much_is_closed_with_1008(h: StackHandle) -> None:
    before_resyncs, evicted = resyncs(h), h.stack.hub.stats.clients_evicted
    async with ws_connect(f"{h.ws_url}/ws/btcusdt") as flooder:
        assert (await recv_json(flooder))["type"] == "history"
        sent = 0
        with contextlib.suppress(Exception):
            for _ in range(10_000):  # bounded: the server closes it after about 2 x 5 messages
                await flooder.send("x" * 100)
                sent += 1
                if flooder.protocol.close_rcvd is not None:
                    break
                await asyncio.sleep(0)
        code, reason = await expect_close(flooder)
    assert code == 1008 and "too many messages" in reason, (code, reason)
    assert h.stack.hub.stats.clients_evicted == evicted + 1
    assert resyncs(h) == before_resyncs
    # A client that sends a little (a ping now and then, a message a second) stays.
    async with ws_connect(f"{h.ws_url}/ws/btcusdt") as polite:
        await recv_json(polite)
        for _ in range(3):
            await polite.send("hello")
            await recv_frames(polite, 3)
        assert polite.protocol.close_rcvd is None and h.stack.hub.client_count == 1


async def test_a_flooder_closed_for_it_is_not_read_any_more(h: StackHandle) -> None:
    """Once its close frame is written, nothing more is read from a flooder that goes on
    sending and never answers the close (the server would otherwise parse its messages
    until the close handshake timed out, 10 s), and the connection is dropped."""
    sock = await stalled_client(f"{h.ws_url}/ws/btcusdt", rcvbuf=1 << 20)
    port = sock.getsockname()[1]
    assert h.stack.api is not None
    server_side = [c for c in h.stack.api.server.server_state.connections
                   if (c.transport.get_extra_info("peername") or (None, None))[1] == port]
    assert len(server_side) == 1
    transport = server_side[0].transport
    # Reads are small: the websocket library parses a whole read at once, and asyncio's
    # 256 KB of 106-byte frames would be 2,400 messages parsed before the budget sees one.
    assert getattr(transport, "max_size", None) == WS_READ_BYTES
    payload = b"x" * 100
    frame = bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # masked with zeros
    received = b""
    try:
        while b"too many messages" not in received:
            with contextlib.suppress(BlockingIOError):
                sock.send(frame * 50)
            with contextlib.suppress(BlockingIOError):
                data = sock.recv(1 << 16)
                assert data, "closed without a close frame"
                received += data
            await asyncio.sleep(0)
        # The close frame is out: the server reads nothing more from this client.
        assert transport.is_closing() or not transport.is_reading()
        with contextlib.suppress(BlockingIOError, ConnectionResetError, BrokenPipeError):
            sock.send(frame * 50)
        assert await read_until_closed(sock) in ("eof", "reset")
    finally:
        sock.close()


def _coroutine_chain(task: asyncio.Task[Any]) -> list[Any]:
    coros: list[Any] = []
    coro: Any = task.get_coro()
    while coro is not None and hasattr(coro, "cr_frame"):
        coros.append(coro)
        coro = coro.cr_await
    return coros


async def test_the_history_message_is_not_kept_per_client(h: StackHandle) -> None:
    """Once written, a client's history message is not held by its handler: what a
    connected client pins is its queue of shared frames."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(ws_connect(f"{h.ws_url}/ws/btcusdt", f"127.0.0.{3 + i}"))
                   for i in range(3)]
        for ws in clients:
            assert (await recv_json(ws))["type"] == "history"
            await recv_frames(ws, 2)
        handlers = [task for task in asyncio.all_tasks()
                    if any(c.cr_code.co_name == "serve_subscriber" for c in _coroutine_chain(task))]
        assert len(handlers) == 3
        for task in handlers:
            for coro in _coroutine_chain(task):
                for name, value in coro.cr_frame.f_locals.items():
                    held = (isinstance(value, str) and value.startswith('{"type":"history"')) or (
                        isinstance(value, bytes) and value.startswith(b'{"type":"history"'))
                    assert not held, f"{coro.cr_code.co_name} keeps the history message in {name!r}"
        # Every client has at most its queue of frames, and they are the hub's shared strings.
        for sub in h.stack.hub.subscribers():
            assert len(sub.queue) <= sub.capacity


async def test_idle_and_slow_connections_are_capped_and_timed_out(h: StackHandle) -> None:
    """Connections past the cap are answered 503 and closed at once; connections that
    send nothing, or headers that never end, are closed at the header deadline; the
    API answers again as soon as they are gone, and no book resyncs."""
    limits = h.stack.services.limits if h.stack.services else None
    assert limits is not None and limits.max_connections == MAX_CONNECTIONS
    before_resyncs = resyncs(h)
    refused, timed_out = limits.refused_over_cap, limits.closed_header_timeout
    idle = [await raw_connection(h) for _ in range(MAX_CONNECTIONS + 6)]
    slow = await raw_connection(h, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    answers = [await read_to_end(reader) for reader, _ in [*idle, slow]]
    for _, writer in [*idle, slow]:
        writer.close()
    over_cap = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert len(over_cap) >= 6 and all(b"too many connections" in a for a in over_cap)
    assert all(a == b"" for a in answers if not a.startswith(b"HTTP/1.1 503"))  # closed, nothing said
    assert limits.refused_over_cap - refused == len(over_cap)
    assert limits.closed_header_timeout - timed_out == len(answers) - len(over_cap)
    await h.wait_for(lambda: api_connections(h) < 5, what="the idle connections gone")
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        assert (await http.get("/health")).status_code == 200
    assert resyncs(h) == before_resyncs


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP response (its head and its Content-Length body), leaving the connection open."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CEILING_S)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await asyncio.wait_for(reader.readexactly(length), CEILING_S)


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_time(h: StackHandle) -> None:
    """After an answer, a keep-alive connection serves the next request, and one that
    then stays idle is closed by the server once ``keepalive_idle_s`` has passed, not
    before. The header deadline is pushed far out meanwhile, so what closes it is the
    keep-alive timeout and nothing else."""
    limits = h.stack.services.limits if h.stack.services else None
    assert limits is not None
    idle_s = h.stack.settings.keepalive_idle_s
    assert h.stack.api is not None and h.stack.api.server.config.timeout_keep_alive == idle_s == 1.0
    header_timeout_s, timed_out = limits.header_timeout_s, limits.closed_header_timeout
    limits.header_timeout_s = CEILING_S
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:
        reader, writer = await raw_connection(h, request)
        first = await read_response(reader)
        writer.write(request)  # kept alive: a second request on the same connection is answered
        await writer.drain()
        second = await read_response(reader)
        answered = asyncio.get_running_loop().time()
        rest = await read_to_end(reader)  # then nothing: the server closes it
        idle_for = asyncio.get_running_loop().time() - answered
        writer.close()
    finally:
        limits.header_timeout_s = header_timeout_s
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
    assert b"connection: close" not in first.lower()
    assert rest == b""
    assert idle_for >= idle_s - 0.1, idle_for  # not before the idle time (less the answer's way to us)
    assert limits.closed_header_timeout == timed_out  # the keep-alive timeout closed it


async def test_a_long_multibyte_symbol_is_closed_with_1008(h: StackHandle) -> None:
    async with ws_connect(f"{h.ws_url}/ws/{quote('é' * 60)}") as ws:
        code, reason = await expect_close(ws)
    assert code == 1008 and reason.startswith("unknown symbol 'éé")
    assert len(reason.encode()) <= CLOSE_REASON_MAX_BYTES


@pytest.mark.parametrize("path", ["/ws", "/ws/", "/ws/btcusdt/extra", "/ws/btcusdt/a/b"])
async def test_every_bad_ws_path_is_closed_with_a_code(h: StackHandle, path: str) -> None:
    async with ws_connect(f"{h.ws_url}{path}") as ws:
        code, reason = await expect_close(ws)
    assert code == 1008 and "use /ws/<symbol>" in reason


async def test_a_websocket_upgrade_with_a_huge_path_gets_414(h: StackHandle) -> None:
    target = "/ws/" + "a" * (MAX_UPGRADE_TARGET_BYTES + 5000)
    request = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    reader, writer = await raw_connection(h, request)
    answer = await read_to_end(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 414"), answer[:200]


async def test_x_forwarded_for_does_not_pass_the_per_address_limit(h: StackHandle) -> None:
    """uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise; here
    nothing is trusted by default, so spoofed addresses all count as the peer's."""
    assert h.stack.api is not None and h.stack.api.server.config.proxy_headers is False
    async with contextlib.AsyncExitStack() as stack:
        for i in range(PER_ADDRESS):
            ws = await stack.enter_async_context(ws_connect(
                f"{h.ws_url}/ws/btcusdt", additional_headers={"X-Forwarded-For": f"10.0.0.{i}"}))
            assert (await recv_json(ws))["type"] == "history"
        async with ws_connect(f"{h.ws_url}/ws/btcusdt",
                              additional_headers={"X-Forwarded-For": "10.9.9.9"}) as extra:
            code, reason = await expect_close(extra)
    assert code == 1013 and "127.0.0.1" in reason, (code, reason)


async def test_pages_of_other_origins_cannot_read_the_api(h: StackHandle) -> None:
    """The dashboard's origin (and its loopback aliases) and same-origin pages read
    the API; another page's websocket is refused with 403 and its requests get no
    CORS header; clients without Origin (not browsers) are served as before."""
    url = f"{h.ws_url}/ws/btcusdt"
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(url, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    for origin in (DASHBOARD, "http://localhost:8050", h.api_url):
        async with ws_connect(url, origin=origin) as ws:
            assert (await recv_json(ws))["type"] == "history"
    async with httpx.AsyncClient(base_url=h.api_url) as http:
        foreign = await http.get("/symbols", headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 200 and "access-control-allow-origin" not in foreign.headers
        own = await http.get("/symbols", headers={"Origin": DASHBOARD})
        assert own.headers["access-control-allow-origin"] == DASHBOARD
        preflight = await http.options("/symbols", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 403
        ok = await http.options("/symbols", headers={"Origin": DASHBOARD, "Access-Control-Request-Method": "GET"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == DASHBOARD
        plain = await http.get("/health")
        assert plain.status_code == 200
