"""Fan-out of encoded frames to websocket subscribers, with burst protection.

Each frame is encoded once per tick per symbol; every subscriber is handed the
same string. A subscriber's queue is bounded: a slow one keeps the newest frames,
the older ones are dropped and counted, and it never delays the others or the
ingestion loop (publishing never awaits a socket).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Subscriber:
    symbol: str
    remote: str
    capacity: int
    queue: deque[str] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    sent: int = 0
    closed: bool = False

    def offer(self, message: str) -> bool:
        """Queue ``message``; when full, the oldest queued message is dropped.
        Returns False when something was dropped."""
        ok = True
        if len(self.queue) >= self.capacity:
            self.queue.popleft()
            self.dropped += 1
            ok = False
        self.queue.append(message)
        self.ready.set()
        return ok

    async def next_message(self) -> str | None:
        """The oldest queued message; None once the subscriber is closed (what is
        still queued then is not sent: the client left, or the server is stopping)."""
        while not self.queue:
            if self.closed:
                return None
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
    clients_refused: int = 0
    clients_total: int = 0  # accepted since start


class FrameHub:
    """Subscribers of every symbol, with global and per-address limits."""

    def __init__(self, max_clients: int, max_per_address: int, queue_capacity: int) -> None:
        self.max_clients = max_clients
        self.max_per_address = max_per_address
        self.queue_capacity = max(1, queue_capacity)
        self._subs: dict[str, set[Subscriber]] = {}
        self._per_address: dict[str, int] = {}
        self.stats = HubStats()
        self.closing = False
        self.active_handlers = 0  # websocket handlers still running (shutdown waits for them)

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
        sub = Subscriber(symbol, remote, self.queue_capacity)
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
        sub.ready.set()

    def publish(self, symbol: str, message: str) -> None:
        """Hand ``message`` to every subscriber of ``symbol``; never blocks."""
        self.stats.frames_published += 1
        for sub in self._subs.get(symbol, ()):
            if not sub.offer(message):
                self.stats.frames_dropped += 1
