"""The focus set: the symbols with a full-depth exact book. The start symbols are in
it for good; ``POST /focus/{symbol}`` promotes a symbol of the screener into it at
run time, and a promoted symbol that no ``/ws/{symbol}`` client has watched for
``focus_idle_s`` is released (its book, sockets and tasks stopped). The set holds at
most ``focus_max`` symbols: a promotion into a full set releases the promoted symbol
idle longest, or is refused (409) when someone watches every one of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from api.errors import ApiError
from api.hub import FrameHub
from api.publisher import FramePublisher
from data_ingestion.rest import RestError
from data_ingestion.runtime import IngestionRuntime

log = logging.getLogger("focus")


class FeaturesOwner(Protocol):
    features: dict[str, Any]


class FocusSet:
    def __init__(self, runtime: IngestionRuntime, publisher: FramePublisher, hub: FrameHub, owner: FeaturesOwner,
                 focus_max: int, idle_s: float, clock: Any = time.monotonic) -> None:
        self.runtime = runtime
        self.publisher = publisher
        self.hub = hub
        self.owner = owner
        self.focus_max = focus_max
        self.idle_s = idle_s
        self.clock = clock
        self.start_symbols = frozenset(runtime.feeds)
        self.watched_at: dict[str, float] = {}  # promoted symbol -> last time it had a client (or its promotion)
        self._lock = asyncio.Lock()  # one promotion or release at a time: the set's size stays true
        self.promotions = 0
        self.releases = 0

    @property
    def promoted(self) -> list[str]:
        return sorted(self.watched_at)

    def answer(self, symbol: str) -> dict[str, Any]:
        feed = self.runtime.feeds[symbol]
        return {"symbol": symbol, "state": "synced" if feed.in_sync else "syncing",
                "focus": sorted(self.runtime.feeds)}

    async def promote(self, symbol: str) -> dict[str, Any]:
        """Give ``symbol`` a full-depth book (idempotent); ApiError 409 when the set is
        full of watched symbols."""
        async with self._lock:
            if symbol in self.runtime.feeds:
                if symbol in self.watched_at:
                    self.watched_at[symbol] = self.clock()
                return self.answer(symbol)
            if len(self.runtime.feeds) >= self.focus_max:
                victim = self._idlest()
                if victim is None:
                    raise ApiError(409, f"the focus set is full ({self.focus_max} symbols, each watched now); "
                                        f"{symbol} can be opened once one of them is left")
                await self._release(victim, "to make room for " + symbol)
            try:
                spec = await self.runtime.resolve_spec(symbol)
            except (RestError, RuntimeError) as exc:
                raise ApiError(503, f"{symbol}: cannot start its book now ({exc})") from None
            self.runtime.add_symbol(symbol, spec)
            self.publisher.add_symbol(symbol)
            self.watched_at[symbol] = self.clock()
            self.promotions += 1
            log.info("%s: promoted to a full-depth book (focus: %s)", symbol, ", ".join(sorted(self.runtime.feeds)))
            return self.answer(symbol)

    async def leave(self, symbol: str) -> None:
        """``symbol`` left TRADING (the screener dropped it): its promoted book is
        released; a start symbol stays (the operator chose it)."""
        async with self._lock:
            if symbol in self.watched_at:
                await self._release(symbol, "no longer TRADING")

    def _idlest(self) -> str | None:
        clients = self.hub.clients_by_symbol()
        idle = [(t, s) for s, t in self.watched_at.items() if not clients.get(s)]
        return min(idle)[1] if idle else None

    async def _release(self, symbol: str, why: str) -> None:
        self.watched_at.pop(symbol, None)
        self.publisher.remove_symbol(symbol)
        self.owner.features.pop(symbol, None)
        await self.runtime.remove_symbol(symbol)
        self.releases += 1
        log.info("%s: full-depth book released (%s)", symbol, why)

    async def run(self) -> None:
        """Once a second: note who is watched, release who has not been for ``idle_s``."""
        while True:
            await asyncio.sleep(1.0)
            await self.check()

    async def check(self) -> None:
        now = self.clock()
        clients = self.hub.clients_by_symbol()
        for symbol in list(self.watched_at):
            if clients.get(symbol):
                self.watched_at[symbol] = now
            elif now - self.watched_at[symbol] >= self.idle_s:
                async with self._lock:
                    if symbol in self.watched_at and not self.hub.clients_by_symbol().get(symbol):
                        await self._release(symbol, f"no client for {self.idle_s:g} s")

    def status(self) -> dict[str, Any]:
        return {"max": self.focus_max, "promoted": self.promoted, "promotions": self.promotions,
                "releases": self.releases}
