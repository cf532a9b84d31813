"""The whole product against an in-process simulated exchange on loopback: the
simulated exchange, ingestion, features, the frame publisher and the API, started
as main.py starts them. For the tests, the benchmarks, the browser tools, and
``main.py --source sim``.

    async with running_stack(symbols=("btcusdt", "ethusdt"), push_interval_s=0.2) as h:
        h.api_url        # "http://127.0.0.1:<port>"
        h.ws_url         # "ws://127.0.0.1:<port>"
        h.sim            # exchange_sim.exchange.SimExchange (faults, truth, pause, inject_wall)
        h.stack          # api.assembly.Stack (runtime.feeds, hub, publisher, stop_api / start_api_again)
        h.settings       # the Settings in force
        await h.wait_synced()   # every symbol in sync (polls, 60 s ceiling)
        await h.wait_for(lambda: ..., what="...")  # any condition, same ceiling
        h.sim.pause(); await h.settled("btcusdt")  # the feed holds the last event sent
        h.leave_clean()          # faults cleared, market resumed

Any Settings field can be overridden by keyword; ``sim_config`` overrides the
simulated exchange's SimConfig fields. Everything is stopped on exit. Unlike
``main.py``, nothing is recorded unless asked (``history=True, data_dir=...`` or
``record_dir=...``): tests and tools never write into the repository's ./data.
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
from data_ingestion.feed import SymbolFeed
from exchange_sim.contracts import with_market
from exchange_sim.episodes import DEFAULT_KINDS
from exchange_sim.exchange import SimExchange
from exchange_sim.settings import SimConfig

# Ceiling of every wait: only there to turn a hang into a failure. On a loaded
# machine the condition comes later and the wait still succeeds.
WAIT_CEILING_S = 60.0


async def start_sim_exchange(settings: Settings, port: int = 0, **sim_config: Any) -> tuple[SimExchange, Settings]:
    """A simulated exchange trading ``settings.symbols`` and the market of
    ``settings.sim_market`` (at ``settings.sim_seed``, ``sim_speed`` and ``sim_warmup_s``; ``sim_config``
    overrides any SimConfig field), started on free loopback ports (or REST on ``port``
    and websockets on the next one, as a standalone exchange), and ``settings``
    pointed at it."""
    fields: dict[str, Any] = {"seed": settings.sim_seed, "speed": settings.sim_speed,
                              "warmup_s": settings.sim_warmup_s, **sim_config}
    fields.setdefault("symbols", with_market(settings.symbols, settings.sim_market))
    if settings.sim_liquidation_bursts:
        fields.setdefault("episode_kinds", (*DEFAULT_KINDS, "liquidation_burst"))
    sim = SimExchange(SimConfig(**fields))
    try:
        urls = await sim.start("127.0.0.1", port, port + 1 if port else 0)
    except BaseException:
        await sim.stop()  # whatever of it did start
        raise
    pointed = settings.replace(
        rest_base_url=urls.rest_base_url, ws_public_url=urls.ws_public_url, ws_market_url=urls.ws_market_url
    )
    return sim, pointed


@dataclass
class StackHandle:
    """A running stack and the simulated exchange it reads."""

    sim: SimExchange
    stack: Stack
    settings: Settings

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def ws_url(self) -> str:
        return self.api_url.replace("http://", "ws://")

    def feed(self, symbol: str) -> SymbolFeed:
        return self.stack.runtime.feeds[symbol]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT_CEILING_S,
                       what: str = "condition") -> None:
        """Poll ``predicate`` until true; raise TimeoutError naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_synced(self, timeout: float = WAIT_CEILING_S, symbols: tuple[str, ...] | None = None) -> None:
        syms = symbols or tuple(self.stack.runtime.feeds)
        await self.wait_for(
            lambda: all(self.feed(s).in_sync for s in syms), timeout, f"{', '.join(syms)} in sync"
        )

    def last_published_u(self, symbol: str) -> int:
        """``u`` of the last depth event the exchange sent on the feed's stream."""
        return last_published_u(self.sim, symbol, self.settings.depth_stream_suffix)

    async def settled(self, symbol: str, timeout: float = WAIT_CEILING_S) -> None:
        """With the market paused: the feed in sync and holding the last event the
        exchange published (the steps of an unfinished depth window stay unpublished
        until the market resumes). Nothing is in flight after that."""
        assert self.sim.paused, "settled() needs the market paused"
        feed = self.feed(symbol)
        await self.wait_for(
            lambda: feed.in_sync and feed.book.last_update_id == self.last_published_u(symbol),
            timeout, f"{symbol} holding the last published event with the market paused",
        )

    def leave_clean(self) -> None:
        """What a test or a tool may have left behind on the exchange: faults, a paused market."""
        self.sim.clear_faults()
        if self.sim.paused:
            self.sim.resume()


def depth_interval_ms(suffix: str) -> int:
    """``@depth@100ms`` -> 100; ``@depth`` (no interval) -> 250, as on Binance."""
    tail = suffix.rsplit("@", 1)[-1]
    return int(tail[:-2]) if tail.endswith("ms") else 250


def last_published_u(sim: SimExchange, symbol: str, suffix: str = "@depth@100ms") -> int:
    """``u`` of the last depth event ``sim`` published for ``symbol`` on the stream
    ``suffix`` (its depth windows are cut whether anyone listens or not)."""
    return sim.state(symbol).aggregators[depth_interval_ms(suffix)].last_u


@contextlib.asynccontextmanager
async def running_stack(
    symbols: tuple[str, ...] = ("btcusdt", "ethusdt"),
    sim_config: dict[str, Any] | None = None,
    source_reason: str = "chosen by the test",
    **overrides: Any,
) -> AsyncIterator[StackHandle]:
    """The simulated exchange (20 s of warm-up unless ``sim_config`` says otherwise)
    and the stack reading it, the API on a free loopback port, no dashboard."""
    overrides.setdefault("history", False)
    overrides.setdefault("screener", False)  # a test that wants the whole market asks
    overrides.setdefault("sim_liquidation_bursts", False)  # a test that wants them asks (or sets episode_kinds)
    settings = load_settings(
        environ={}, symbols=symbols, source="sim", api_port=0, host="127.0.0.1", dashboard=False, **overrides
    )
    sim, settings = await start_sim_exchange(settings, **{"warmup_s": 20.0, **(sim_config or {})})
    try:
        stack = Stack(settings, SourceInfo("sim", "SIMULATED market", source_reason))
        try:
            await stack.start()
            yield StackHandle(sim, stack, settings)
        finally:
            await stack.stop()
    finally:
        await sim.stop()
