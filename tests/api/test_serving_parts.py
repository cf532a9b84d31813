"""The parts that keep the serving side in bounds, one at a time: close reasons cut
by bytes, a subscriber that falls behind for too long, the descriptor limit, the
loop's error log, supervised tasks, the origin policy."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import resource
import socket
import struct
import termios

import pytest
import uvicorn
import websockets
from fastapi import FastAPI, WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from api.heap_trim import HeapTrimmer
from api.hub import FrameHub, text_frame
from api.limits import (
    FRAGMENT_BYTES,
    WRITE_MESSAGE_EXTENSION,
    ConnectionLimits,
    extension,
    guarded_protocols,
    outstanding_bytes,
    raise_open_files_limit,
)
from api.origins import OriginPolicy
from api.ws import CLOSE_REASON_MAX_BYTES, StallWatch, close_reason
from data_ingestion.tasks import LoopErrorLog, TaskRegistry
from tests.api.wsclient import stalled_client
from tests.waiting import wait_until


@pytest.mark.parametrize("text", ["é" * 60, "a" * 200, "€" * 50, "ab" + "😀" * 40, "short"])
def test_close_reason_is_cut_by_bytes_on_a_character_boundary(text: str) -> None:
    cut = close_reason(text)
    raw = cut.encode("utf-8")
    assert len(raw) <= CLOSE_REASON_MAX_BYTES
    assert text.startswith(cut)
    if len(text.encode()) > CLOSE_REASON_MAX_BYTES:
        # As long as fits: one more character would not.
        assert len(raw) + len(text[len(cut)].encode()) > CLOSE_REASON_MAX_BYTES
    else:
        assert cut == text


def test_a_subscriber_dropping_frames_past_the_deadline_is_evicted(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("api.hub.time.monotonic", lambda: now[0])
    hub = FrameHub(max_clients=10, max_per_address=10, queue_capacity=2, behind_limit_s=10.0)
    slow = hub.subscribe("btcusdt", "127.0.0.1")
    for i in range(2):
        hub.publish("btcusdt", f"f{i}")
    hub.publish("btcusdt", "f2")  # first drop: the clock starts
    assert slow.behind_since == 1000.0 and slow.evicted is None
    now[0] += 9.9
    hub.publish("btcusdt", "f3")
    assert slow.evicted is None and list(slow.queue) == ["f2", "f3"]
    now[0] += 0.2  # 10.1 s of drops without ever catching up
    hub.publish("btcusdt", "f4")
    assert slow.evicted is not None and slow.evicted[0] == 1008 and "too slow" in slow.evicted[1]
    assert slow.closed and not slow.queue


async def test_a_subscriber_that_catches_up_starts_a_fresh_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("api.hub.time.monotonic", lambda: now[0])
    hub = FrameHub(10, 10, queue_capacity=1, behind_limit_s=10.0)
    sub = hub.subscribe("btcusdt", "127.0.0.1")
    hub.publish("btcusdt", "a")
    hub.publish("btcusdt", "b")  # drop
    assert sub.behind_since == 0.0
    assert await sub.next_message() == "b"
    waiter = asyncio.ensure_future(sub.next_message())
    await asyncio.sleep(0)  # the sender finds the queue empty: caught up
    assert sub.behind_since is None
    now[0] = 50.0
    hub.publish("btcusdt", "c")
    assert await waiter == "c" and sub.evicted is None


def test_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = raise_open_files_limit()
    assert (soft, hard) == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or soft == hard


def test_loop_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    handler = LoopErrorLog(interval_s=10.0, clock=lambda: now[0], logger=logging.getLogger("test.loop"))
    context = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
    with caplog.at_level(logging.ERROR, logger="test.loop"):
        for _ in range(5000):
            handler(None, context)  # type: ignore[arg-type]
            now[0] += 0.001
        assert len(caplog.records) == 1
        now[0] = 20.0
        handler(None, context)  # type: ignore[arg-type]
        handler(None, {"message": "another kind"})  # type: ignore[arg-type]
    assert len(caplog.records) == 3
    assert "4999 more like this" in caplog.records[1].getMessage()
    assert caplog.records[2].getMessage() == "another kind"
    assert handler.reports == 5002


async def test_a_supervised_task_that_dies_is_restarted(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskRegistry(backoff_s=(0.0,))
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise OSError(24, "Too many open files")
        done.set()
        await asyncio.Event().wait()  # then runs for good

    with caplog.at_level(logging.ERROR, logger="tasks"):
        tasks.supervise(flaky, name="memory-baseline")
        await asyncio.wait_for(done.wait(), 30)
    assert runs == [0, 1, 2] and tasks.restarts == {"memory-baseline": 2}
    assert tasks.running == ["memory-baseline"]
    assert sum("task memory-baseline died" in r.getMessage() for r in caplog.records) == 2
    await tasks.cancel_all()
    assert tasks.running == []


def test_origin_policy() -> None:
    policy = OriginPolicy()
    policy.add("http://127.0.0.1:8050")
    assert policy.allows(None, "127.0.0.1:8000")  # not a browser
    for origin in ("http://127.0.0.1:8050", "http://localhost:8050", "http://[::1]:8050", "HTTP://LOCALHOST:8050"):
        assert policy.allows(origin, "127.0.0.1:8000"), origin
    assert policy.allows("http://127.0.0.1:8000", "127.0.0.1:8000")  # same origin
    for origin in ("https://evil.example", "http://127.0.0.1:8051", "null", "http://localhost.evil.example:8050"):
        assert not policy.allows(origin, "127.0.0.1:8000"), origin
    extra = OriginPolicy(["https://desk.example.com/"])
    assert extra.allows("https://desk.example.com", "h") and not extra.allows("https://other.example", "h")
    assert OriginPolicy(["*"]).allows("https://anything.example", "h")
    with pytest.raises(ValueError):
        OriginPolicy(["not an origin"])


@pytest.mark.parametrize("bound", ["http://0.0.0.0:8050", "http://[::]:8050"])
def test_a_dashboard_on_every_interface_is_allowed_through_the_name_the_api_was_reached_by(bound: str) -> None:
    """--host 0.0.0.0: the page opened as http://api-1.desk:8050 reads the API at
    api-1.desk:8000, and at no other name or port."""
    policy = OriginPolicy()
    policy.add(bound)
    assert policy.allows("http://api-1.desk:8050", "api-1.desk:8000")
    assert policy.allows("http://API-1.desk:8050", "api-1.desk")  # Host without its port, any case
    assert policy.allows("http://10.1.2.3:8050", "10.1.2.3:8000")
    assert policy.allows("http://[fe80::1]:8050", "[fe80::1]:8000")


@pytest.mark.parametrize("bound", ["http://0.0.0.0:8050", "http://[::]:8050"])
def test_a_dashboard_on_every_interface_is_refused_under_another_host_name(bound: str) -> None:
    policy = OriginPolicy()
    policy.add(bound)
    for origin, host in [("http://evil.example:8050", "api-1.desk:8000"),
                         ("http://api-2.desk:8050", "api-1.desk:8000"),
                         ("http://api-1.desk.evil.example:8050", "api-1.desk:8000"),
                         ("http://10.1.2.4:8050", "10.1.2.3:8000"),
                         ("http://api-1.desk:8050", None),
                         ("http://api-1.desk:8050", ""),
                         ("null", "api-1.desk:8000")]:
        assert not policy.allows(origin, host), (origin, host)


@pytest.mark.parametrize("bound", ["http://0.0.0.0:8050", "http://[::]:8050"])
def test_a_dashboard_on_every_interface_is_refused_on_another_port_or_scheme(bound: str) -> None:
    policy = OriginPolicy()
    policy.add(bound)
    for origin in ("http://api-1.desk:8051", "http://api-1.desk", "https://api-1.desk:8050",
                   "http://api-1.desk:x", "http://[api-1.desk:8050"):
        assert not policy.allows(origin, "api-1.desk:8000"), origin
    # The same rule for a wildcard origin given with --allow-origin, and only for it.
    extra = OriginPolicy(["http://0.0.0.0:9000"])
    assert extra.allows("http://api-1.desk:9000", "api-1.desk:8000")
    assert not extra.allows("http://api-1.desk:8050", "api-1.desk:8000")
    named = OriginPolicy()
    named.add("http://api-1.desk:8050")
    assert not named.allows("http://api-2.desk:8050", "api-2.desk:8000")


def test_a_client_that_delivers_nothing_for_the_stall_time_is_stalled() -> None:
    """Every write returned at once (the kernel's buffers took it), yet nothing left:
    stalled after ``stall_s``; a client whose connection drains, or keeps taking more
    than ever before, is not."""
    waiting = [0]
    watch = StallWatch(lambda: waiting[0], stall_s=10.0, now=0.0)
    waiting[0] = 5_000
    assert not watch.stalled_after(5_000, now=1.0)  # nothing was delivered yet: the clock runs from 0
    waiting[0] = 10_000
    assert not watch.stalled_after(5_000, now=9.0)
    waiting[0] = 15_000
    assert watch.stalled_after(5_000, now=10.5)  # 15,000 written, none delivered, for 10.5 s
    slow = StallWatch(lambda: waiting[0], stall_s=10.0, now=0.0)
    for t, written, out in [(5.0, 8_000, 8_000), (9.0, 8_000, 12_000), (14.0, 8_000, 16_000), (25.0, 8_000, 20_000)]:
        waiting[0] = out
        # 0, then 4,000, 8,000 and 12,000 delivered: progress each time after the first
        assert not slow.stalled_after(written, now=t)
    waiting[0] = 20_000
    assert not slow.stalled_after(0, now=34.0)
    assert slow.stalled_after(0, now=35.5)  # 12,000 delivered since t=25 s: nothing more
    drained = StallWatch(lambda: waiting[0], stall_s=10.0, now=0.0)
    waiting[0] = 0
    assert not drained.stalled_after(1_000, now=100.0)  # all of it acknowledged
    unknown = StallWatch(lambda: None, stall_s=10.0, now=0.0)
    assert not unknown.stalled_after(1_000, now=100.0)  # cannot tell: left to the write deadline


async def test_outstanding_bytes_are_what_the_peer_has_not_taken() -> None:
    """On a real loopback connection: what a peer that does not read leaves unacknowledged
    is counted, and it goes to zero once the peer reads it all."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    server = await asyncio.start_server(lambda r, w: accepted.put_nowait((r, w)), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    reader._transport.pause_reading()  # type: ignore[attr-defined]
    peer_reader, peer_writer = await accepted.get()
    try:
        transport = peer_writer.transport
        assert outstanding_bytes(transport) == 0  # type: ignore[arg-type]
        payload = b"x" * 4_000_000
        peer_writer.write(payload)
        waiting = outstanding_bytes(transport)  # type: ignore[arg-type]
        assert waiting is not None and 0 < waiting <= len(payload)
        reader._transport.resume_reading()  # type: ignore[attr-defined]
        assert await reader.readexactly(len(payload)) == payload
        await wait_until(lambda: outstanding_bytes(transport) == 0, what="every byte acknowledged")  # type: ignore[arg-type]
    finally:
        writer.close()
        peer_writer.close()
        server.close()
        await server.wait_closed()


async def test_the_heap_is_trimmed_once_a_crowd_of_clients_has_left() -> None:
    """Fewer than ``min_left`` clients gone: no trim; a crowd gone: one full collection
    (the cycles connections leave) then one trim, and the ones counted are not counted
    again."""
    hub = FrameHub(max_clients=100, max_per_address=100, queue_capacity=4)
    calls: list[str] = []

    def collect() -> int:
        calls.append("collect")
        return 0

    trimmer = HeapTrimmer(hub, interval_s=0.01, min_left=20, every_s=1e9, trim=lambda: calls.append("trim"),
                          collect=collect, settle_s=0.01)
    subs = [hub.subscribe("btcusdt", "127.0.0.1") for _ in range(30)]
    for sub in subs[:5]:
        hub.unsubscribe(sub)
    assert trimmer.left_since() == 5
    task = asyncio.create_task(trimmer.run())
    try:
        for sub in subs[5:25]:
            hub.unsubscribe(sub)
        assert trimmer.left_since() == 25
        await wait_until(lambda: trimmer.trims == 1, what="a trim")
        assert calls == ["collect", "trim"] and trimmer.left_since() == 0
        assert trimmer.collections == 1 and trimmer.last_collect_ms is not None
        for sub in subs[25:]:
            hub.unsubscribe(sub)
        assert trimmer.left_since() == 5 and trimmer.trims == 1  # five more: not worth a trim
    finally:
        task.cancel()


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 200_000])
def test_a_frame_built_once_is_what_the_websocket_library_would_send(size: int) -> None:
    """The hub's direct path writes the same bytes to every client: they must be the
    unmasked text frame a server's websocket library writes for that text."""
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    text = ("é" + "x" * size)[: max(size, 1)] if size else ""
    proto = ServerProtocol()
    proto.state = State.OPEN
    proto.send_text(text.encode())
    assert text_frame(text) == b"".join(proto.data_to_send())


async def test_the_heap_is_trimmed_now_and_then_without_clients() -> None:
    """Without any client leaving, a trim every ``every_s`` (in looks of ``interval_s``),
    and no full collection (it pauses the loop; only a crowd's leaving is worth it)."""
    hub = FrameHub(max_clients=10, max_per_address=10, queue_capacity=4)
    collected: list[int] = []

    def collect() -> int:
        collected.append(1)
        return 0

    trimmer = HeapTrimmer(hub, interval_s=0.01, min_left=20, every_s=0.03, trim=lambda: None, collect=collect)
    task = asyncio.create_task(trimmer.run())
    try:
        await wait_until(lambda: trimmer.trims >= 2, what="two trims")
    finally:
        task.cancel()
    assert hub.stats.clients_total == 0 and collected == [] and trimmer.collections == 0


async def test_a_large_message_is_written_a_fragment_at_a_time_as_the_client_takes_it() -> None:
    """The paced writer (the history, the screener's snapshot) on a real uvicorn: a
    client that reads gets the 9.6 MB message whole, as one message; a client that
    does not read leaves at most a fragment and the buffer's high-water mark in its
    connection's buffer, however much of the message the kernel could not take (its
    send queue on loopback grows to 4 MB); and the writer says False when the client
    is gone before the end."""
    payload = ("é" + "".join(f"{i:07d}," for i in range(1_200_000))).encode()  # 9.6 MB, not ASCII
    outcomes: asyncio.Queue[bool] = asyncio.Queue()
    app = FastAPI()

    @app.websocket("/big")
    async def big(websocket: WebSocket) -> None:
        await websocket.accept()
        write = extension(websocket.scope, WRITE_MESSAGE_EXTENSION)
        assert write is not None
        outcomes.put_nowait(await write(payload))

    http, ws = guarded_protocols(ConnectionLimits(max_connections=10, header_timeout_s=10.0))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=http, ws=ws, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, what="the server started")
        port = server.servers[0].sockets[0].getsockname()[1]
        async with websockets.connect(f"ws://127.0.0.1:{port}/big", max_size=None) as reader:
            assert await reader.recv(decode=False) == payload
        assert await outcomes.get() is True

        sock = await stalled_client(f"ws://127.0.0.1:{port}/big")
        try:
            def paused() -> list[WebSocketsSansIOProtocol]:
                return [p for p in server.server_state.connections
                        if isinstance(p, WebSocketsSansIOProtocol) and not p.writable.is_set()]

            await wait_until(lambda: len(paused()) == 1, what="the writer waiting for the client")
            transport = paused()[0].transport
            kernel_took = struct.unpack("i", fcntl.ioctl(
                transport.get_extra_info("socket").fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
            held = transport.get_write_buffer_size()
            assert 0 < held <= FRAGMENT_BYTES + 64 * 1024 + 16, held
            assert held + kernel_took < len(payload)  # the rest waits, not copied out
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset: the connection is gone mid-message
        assert await asyncio.wait_for(outcomes.get(), 30) is False
    finally:
        server.should_exit = True
        await serving
