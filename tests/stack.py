"""The whole product on loopback for tests: the simulated exchange, ingestion,
features, the frame publisher and the API, started exactly as main.py starts them.

    async with running_stack(symbols=("btcusdt", "ethusdt"), push_interval_s=0.2) as h:
        h.api_url        # "http://127.0.0.1:<port>"
        h.sim            # exchange_sim.exchange.SimExchange (faults, truth, pause, inject_wall)
        h.stack          # api.assembly.Stack (runtime.feeds, hub, publisher, stop_api / start_api_again)
        h.settings       # the Settings in force
        await h.wait_synced()   # every symbol in sync (deadline, polls)

Any Settings field can be overridden by keyword; ``sim_config`` overrides the
simulated exchange's SimConfig fields. Everything is stopped on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from api.assembly import Stack
from api.services import SourceInfo
from config import Settings, load_settings
from exchange_sim.exchange import SimExchange
from exchange_sim.settings import SimConfig


@dataclass
class StackHandle:
    sim: SimExchange
    stack: Stack
    settings: Settings

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def ws_url(self) -> str:
        return self.api_url.replace("http://", "ws://")

    def feed(self, symbol: str):  # type: ignore[no-untyped-def]
        return self.stack.runtime.feeds[symbol]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
        """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_synced(self, timeout: float = 20.0, symbols: tuple[str, ...] | None = None) -> None:
        syms = symbols or tuple(self.stack.runtime.feeds)
        await self.wait_for(
            lambda: all(self.feed(s).in_sync for s in syms), timeout, f"{', '.join(syms)} in sync"
        )


@contextlib.asynccontextmanager
async def running_stack(
    symbols: tuple[str, ...] = ("btcusdt", "ethusdt"),
    sim_config: dict[str, Any] | None = None,
    source_reason: str = "chosen by the test",
    **overrides: Any,
) -> AsyncIterator[StackHandle]:
    cfg = SimConfig(symbols=symbols, **{"warmup_s": 20.0, **(sim_config or {})})
    sim = SimExchange(cfg)
    urls = await sim.start("127.0.0.1", 0, 0)
    settings = load_settings(
        environ={},
        symbols=symbols,
        source="sim",
        rest_base_url=urls.rest_base_url,
        ws_public_url=urls.ws_public_url,
        ws_market_url=urls.ws_market_url,
        api_port=0,
        host="127.0.0.1",
        dashboard=False,
        **overrides,
    )
    stack = Stack(settings, SourceInfo("sim", "SIMULATED market", source_reason))
    try:
        await stack.start()
        yield StackHandle(sim, stack, settings)
    finally:
        await stack.stop()
        await sim.stop()



def book_mismatches(feed: Any, sim: SimExchange) -> list[str]:
    """Differences between a feed's book and the exchange's true book at the same
    update id. Read without awaiting, so both sides are at one instant.

    The client holds what the 1,000-level snapshot and the diffs gave: every level
    it holds must equal the exchange's, and inside the price band the snapshot
    covered it must hold every level the exchange holds. Beyond that band the
    exchange has levels no snapshot ever sent (Binance behaves the same way)."""
    book = feed.book
    truth = sim.true_book(feed.symbol, update_id=book.last_update_id)
    problems: list[str] = []
    if truth.update_id != book.last_update_id:
        return [f"truth at {truth.update_id}, book at {book.last_update_id}"]
    band = book.snapshot_band
    for side, mine, theirs_raw in (("bid", book.bids, truth.bids), ("ask", book.asks, truth.asks)):
        theirs = {book.key(p): float(q) for p, q in theirs_raw}
        for k, q in mine.items():
            if theirs.get(k) != q:
                problems.append(f"{side} {book.price(k)}: book {q}, exchange {theirs.get(k)}")
        lo, hi = (band.bid_low, band.bid_high) if side == "bid" else (band.ask_low, band.ask_high)
        for k, q in theirs.items():
            if lo <= k <= hi and k not in mine:
                problems.append(f"{side} {book.price(k)}: missing (exchange {q})")
    return problems[:10]
