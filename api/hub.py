"""Fan-out of encoded frames to websocket subscribers, with burst protection.

Each frame is encoded once per tick per symbol; every subscriber is handed the
same string. A subscriber's queue is bounded: a slow one keeps the newest frames,
the older ones are dropped and counted, and it never delays the others or the
ingestion loop (publishing never awaits a socket).

A subscriber that has caught up (nothing queued, nothing being sent) and whose
connection takes more without waiting is written to directly: the frame's websocket
bytes are built once per publish (a server's frames are not masked, so every client
gets the same bytes) and handed to each such connection's transport in one loop, with
no task woken per client. The others, and every frame while one is queued or being
sent, go through the queue and the client's own task, so the order never changes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Subscriber:
    symbol: str
    remote: str
    capacity: int
    queue: deque[str] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Dropping frames continuously for this long (the queue never emptied since the
    # first drop) closes the client: it is not keeping up and never will.
    behind_limit_s: float = 10.0
    dropped: int = 0
    sent: int = 0
    closed: bool = False
    behind_since: float | None = None  # monotonic time of the first drop since the queue was last empty
    evicted: tuple[int, str] | None = None  # (close code, reason) when the server ends the client
    # Writes a frame's websocket bytes to the connection at once, or returns False
    # (not open, or its buffer is full); None until the client's first message is out.
    direct: Callable[[bytes, int], bool] | None = None
    sending: bool = False  # its task is writing a queued message

    def offer(self, message: str) -> bool:
        """Queue ``message``; when full, the oldest queued message is dropped.
        Returns False when something was dropped."""
        ok = True
        if len(self.queue) >= self.capacity:
            self.queue.popleft()
            self.dropped += 1
            ok = False
            now = time.monotonic()
            if self.behind_since is None:
                self.behind_since = now
            elif now - self.behind_since >= self.behind_limit_s and self.evicted is None:
                self.evict(1008, f"too slow: frames dropped for {now - self.behind_since:.0f} s "
                                 f"({self.dropped} in all)")
                return False
        self.queue.append(message)
        self.ready.set()
        return ok

    def evict(self, code: int, reason: str) -> None:
        """End this client from the server's side: its sender stops and closes with ``code``."""
        if self.evicted is None:
            self.evicted = (code, reason)
        self.closed = True
        self.queue.clear()
        self.ready.set()

    async def next_message(self) -> str | None:
        """The oldest queued message; None once the subscriber is closed (what is
        still queued then is not sent: the client left, or the server is stopping)."""
        while not self.queue:
            if self.closed:
                return None
            self.behind_since = None  # caught up
            self.ready.clear()
            await self.ready.wait()
        if self.closed:
            return None
        return self.queue.popleft()


class LimitExceeded(Exception):
    """A new websocket client would exceed a configured limit (close code 1013)."""


@dataclass(slots=True)
class HubStats:
    frames_published: int = 0
    frames_dropped: int = 0  # over all subscribers, including departed ones
    frames_direct: int = 0  # frames written to a client straight from publish (no task of its own woken)
    clients_refused: int = 0
    clients_total: int = 0  # accepted since start
    clients_evicted: int = 0  # closed by the server: stalled, too slow or talking too much
    last_eviction: str = ""  # the reason the server gave the latest of them
    origins_refused: int = 0  # websocket handshakes from a page of another origin (403)


class FrameHub:
    """Subscribers of every symbol, with global and per-address limits."""

    def __init__(
        self, max_clients: int, max_per_address: int, queue_capacity: int, behind_limit_s: float = 10.0
    ) -> None:
        self.max_clients = max_clients
        self.max_per_address = max_per_address
        self.queue_capacity = max(1, queue_capacity)
        self.behind_limit_s = behind_limit_s
        self._subs: dict[str, set[Subscriber]] = {}
        self._per_address: dict[str, int] = {}
        self.stats = HubStats()
        self.closing = False
        self.active_handlers = 0  # websocket handlers still running (shutdown waits for them)
        self.history_clients = 0  # clients of /ws/{symbol}?from=... (each replays the recording)

    @property
    def client_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def clients_by_symbol(self) -> dict[str, int]:
        return {sym: len(subs) for sym, subs in self._subs.items()}

    def subscribers(self) -> list[Subscriber]:
        return [sub for subs in self._subs.values() for sub in subs]

    def subscribe(self, symbol: str, remote: str) -> Subscriber:
        """Register a client or raise LimitExceeded with the reason."""
        if self.closing:
            self.stats.clients_refused += 1
            raise LimitExceeded("server shutting down")
        if self.client_count >= self.max_clients:
            self.stats.clients_refused += 1
            raise LimitExceeded(f"too many websocket clients (limit {self.max_clients})")
        if self._per_address.get(remote, 0) >= self.max_per_address:
            self.stats.clients_refused += 1
            raise LimitExceeded(f"too many websocket clients from {remote} (limit {self.max_per_address})")
        sub = Subscriber(symbol, remote, self.queue_capacity, behind_limit_s=self.behind_limit_s)
        self._subs.setdefault(symbol, set()).add(sub)
        self._per_address[remote] = self._per_address.get(remote, 0) + 1
        self.stats.clients_total += 1
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.symbol)
        if subs is not None and sub in subs:
            subs.discard(sub)
            left = self._per_address.get(sub.remote, 1) - 1
            if left > 0:
                self._per_address[sub.remote] = left
            else:
                self._per_address.pop(sub.remote, None)
        sub.closed = True
        sub.queue.clear()
        sub.ready.set()

    def publish(self, symbol: str, message: str) -> None:
        """Hand ``message`` to every subscriber of ``symbol``; never blocks."""
        self.stats.frames_published += 1
        wire: bytes | None = None
        for sub in self._subs.get(symbol, ()):
            if sub.direct is not None and not sub.queue and not sub.sending and not sub.closed:
                if wire is None:
                    wire = text_frame(message)
                if sub.direct(wire, len(message)):
                    sub.sent += 1
                    self.stats.frames_direct += 1
                    sub.behind_since = None
                    continue
            if not sub.offer(message):
                self.stats.frames_dropped += 1


OP_CONTINUATION, OP_TEXT = 0x0, 0x1


def frame_header(n: int, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """The header of an unmasked websocket frame (RFC 6455, 5.2: what a server sends)
    of ``n`` payload bytes."""
    first = (0x80 if fin else 0x00) | opcode
    if n < 126:
        return bytes((first, n))
    if n < 1 << 16:
        return bytes((first, 126)) + n.to_bytes(2, "big")
    return bytes((first, 127)) + n.to_bytes(8, "big")


def text_frame(text: str) -> bytes:
    """``text`` as one unmasked websocket text frame."""
    payload = text.encode()
    return frame_header(len(payload)) + payload
