"""A webhook receiver on loopback for the alert delivery tests and benchmark: a small
HTTP/1.1 server on asyncio streams (keep-alive, Content-Length bodies), whose every
path behaves as told: answer 200, fail with a status for a while, hang, answer
slowly, or answer 429 with a Retry-After.

    rx = WebhookReceiver(); await rx.start()
    rx.route("/flaky", status=500)          # 500 until told otherwise
    rx.route("/flaky", status=200)          # recovered
    rx.route("/hang", hang=True); rx.route("/slow", delay_s=0.5)
    rx.route("/busy", then=[(429, "1")])    # one 429 with Retry-After: 1, then 200
    rx.bodies("/ok")                        # decoded JSON bodies received with a 2xx answer
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Route:
    status: int = 200
    hang: bool = False
    delay_s: float = 0.0
    then: deque[tuple[int, str | None]] = field(default_factory=deque)  # (status, Retry-After) answered first


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    body: bytes
    status: int  # what it was answered
    wall_ns: int  # time.time_ns() when the body was read
    mono_ns: int


class WebhookReceiver:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.received: list[Received] = []
        self.attempts: Counter[str] = Counter()  # requests read per path, answered or not
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0

    def route(self, path: str, status: int = 200, hang: bool = False, delay_s: float = 0.0,
              then: list[tuple[int, str | None]] | None = None) -> None:
        self.routes[path] = Route(status, hang, delay_s, deque(then or ()))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path and 200 <= r.status < 300]

    def bodies(self, path: str) -> list[Any]:
        return [json.loads(r.body) for r in self.delivered(path)]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                _method, target, _version = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = target.split("?", 1)[0]
                self.attempts[path] += 1
                route = self.routes.get(path, Route())
                if route.hang:
                    await asyncio.Event().wait()  # until the client gives up or the receiver stops
                if route.delay_s:
                    await asyncio.sleep(route.delay_s)
                status, retry_after = route.then.popleft() if route.then else (route.status, None)
                self.received.append(Received(path, body, status, time.time_ns(), time.monotonic_ns()))
                extra = f"Retry-After: {retry_after}\r\n" if retry_after is not None else ""
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nContent-Type: application/json\r\n"
                             f"{extra}\r\n{{}}".encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            # Stopped by stop(): ended here, not cancelled, as asyncio's stream server
            # (3.11) asks the task for its exception and would log a cancelled one.
            return
        finally:
            self._conns.discard(task)
            writer.close()
