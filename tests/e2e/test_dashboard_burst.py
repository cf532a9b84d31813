"""A burst on the dashboard port of a running ``main.py --source sim`` leaves the
books and their frames alone: the dashboard's server shares the process with
ingestion, so its connections must cost it neither threads nor the event loop.

Every wait is for a condition (frames counted, sockets answered) under a generous
ceiling; nothing is timed."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from typing import Any

import httpx
import psutil
import websockets.sync.client as ws_sync
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_main import Proc
from tests.waiting import CEILING_S, wait_until_sync

DASH_CAP = 24  # LIQ_DASH_MAX_CONNECTIONS for this run
IDLE, HALF_OPEN = 40, 20  # connections that send nothing, and requests whose head never ends
FRAMES_DURING = 12  # frames the honest reader must get, in order, while the burst is held
THREADS_SLACK = 4  # threads the process may start meanwhile for its own work (a worker thread of asyncio's)


class FrameReader:
    """An honest client of /ws/btcusdt in a thread: the seq of every frame, in order of arrival."""

    def __init__(self, api_port: int) -> None:
        self.url = f"ws://127.0.0.1:{api_port}/ws/btcusdt"
        self.seqs: list[int] = []
        self.error: BaseException | None = None
        self._ws: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="honest-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with ws_sync.connect(self.url, max_size=None, open_timeout=CEILING_S) as ws:
                self._ws = ws
                while not self._stop.is_set():
                    msg = json.loads(ws.recv(timeout=CEILING_S))
                    if msg["type"] == "frame":
                        self.seqs.append(int(msg["seq"]))
        except ConnectionClosed:
            if not self._stop.is_set():
                self.error = AssertionError("the honest reader's websocket was closed by the server")
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            if not self._stop.is_set():
                self.error = exc

    def close(self) -> None:
        self._stop.set()
        if self._ws is not None:
            self._ws.close()
        self._thread.join(CEILING_S)


def resyncs(health: dict[str, Any]) -> int:
    return sum(int(m["resyncs"]) for m in health["monitoring"].values())


def answered(sock: socket.socket) -> bytes | None:
    """What the server sent before closing, once it has (b"" for a bare close); None while it holds on."""
    readable, _w, _x = select.select([sock], [], [], 0)
    if not readable:
        return None
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_a_burst_on_the_dashboard_port_leaves_frames_and_sync_untouched() -> None:
    # The server's own request deadline far beyond the test: every connection within
    # the cap is still held when the frames are counted.
    p = Proc("--source", "sim", "--cadence", "0.25",
             env={"LIQ_DASH_MAX_CONNECTIONS": str(DASH_CAP), "LIQ_DASH_REQUEST_TIMEOUT_S": "120"})
    burst: list[socket.socket] = []
    reader: FrameReader | None = None
    try:
        health = p.wait_health("healthy")
        resyncs_before = resyncs(health)
        proc = psutil.Process(p.popen.pid)
        reader = FrameReader(p.api_port)
        wait_until_sync(lambda: len(reader.seqs) >= 2 or reader.error is not None,
                        what="the honest reader's first frames")
        assert reader.error is None, reader.error
        threads_before = proc.num_threads()

        for i in range(IDLE + HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", p.dash_port), timeout=CEILING_S)
            if i >= IDLE:  # a request head that never ends
                with contextlib.suppress(OSError):  # over the cap it may already be closed
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: burst\r\n")
            burst.append(sock)
        answers: dict[int, bytes] = {}

        def over_cap_answered() -> bool:
            for i, sock in enumerate(burst):
                if i not in answers and (got := answered(sock)) is not None:
                    answers[i] = got
            return len(answers) >= len(burst) - DASH_CAP

        wait_until_sync(over_cap_answered, what="the connections over the cap answered or closed")
        assert all(a == b"" or a.startswith(b"HTTP/1.1 503 ") for a in answers.values()), answers
        assert any(a.startswith(b"HTTP/1.1 503 ") for a in answers.values())

        # The burst held (the connections within the cap still open): frames keep coming, in order.
        start = len(reader.seqs)
        threads_peak = proc.num_threads()

        def frames_counted() -> bool:
            nonlocal threads_peak
            threads_peak = max(threads_peak, proc.num_threads())
            assert reader is not None and reader.error is None, reader.error if reader else None
            return len(reader.seqs) >= start + FRAMES_DURING

        wait_until_sync(frames_counted, what=f"{FRAMES_DURING} frames while the burst is held")
        held = [i for i in range(len(burst)) if i not in answers and answered(burst[i]) is None]
        assert len(answers) == len(burst) - DASH_CAP and len(held) == DASH_CAP, (len(answers), held)
        during = reader.seqs[start - 1:]
        assert during == list(range(during[0], during[0] + len(during))), during  # none missing, none repeated
        assert threads_peak - threads_before <= THREADS_SLACK, (threads_before, threads_peak)

        health = httpx.get(f"{p.base}/health", timeout=CEILING_S).json()
        assert health["status"] == "healthy" and resyncs(health) == resyncs_before

        for sock in burst:  # the burst gone, an honest visitor gets the page
            sock.close()
        wait_until_sync(lambda: httpx.get(f"http://127.0.0.1:{p.dash_port}/", timeout=CEILING_S)
                        .status_code == 200, what="the page after the burst")
    finally:
        for sock in burst:
            sock.close()
        if reader is not None:
            reader.close()
        p.kill()
