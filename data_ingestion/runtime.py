"""The ingestion runtime: feeds, connections and snapshot loops for all symbols.

Per symbol: the depth stream (and bookTicker) on the public route, aggTrade on the
market route; symbols share connections (at most 1,024 streams each, as Binance
allows). Each symbol's snapshot loop is its own task, so the sockets keep being
read while snapshots download. For ``replay`` the same feeds are fed from files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from config import Settings, SymbolSpec, decimals_of
from data_ingestion.connection import StreamConnection
from data_ingestion.feed import FeatureSink, SymbolFeed
from data_ingestion.monitor import ProcessMonitor
from data_ingestion.recorder import Recorder
from data_ingestion.recording import ReadStats
from data_ingestion.replay import ReplayProgress, play, symbol_of_file
from data_ingestion.rest import (
    RestClient,
    RestError,
    RestrictedLocation,
    SymbolFilters,
    WeightBudget,
    symbol_filters,
)
from data_ingestion.tasks import TaskRegistry

log = logging.getLogger("ingestion")

FeaturesFactory = Callable[[str, SymbolSpec], FeatureSink | None]


class IngestionRuntime:
    """Owns every feed; ``start`` spawns its tasks into ``tasks``."""

    def __init__(
        self,
        settings: Settings,
        tasks: TaskRegistry,
        features_factory: FeaturesFactory | None = None,
    ) -> None:
        self.settings = settings
        self.tasks = tasks
        self.features_factory = features_factory
        self.feeds: dict[str, SymbolFeed] = {}
        self.connections: list[StreamConnection] = []
        self.recorder: Recorder | None = Recorder(settings.record_dir) if settings.record_dir else None
        self.rest: RestClient | None = None
        self.process = ProcessMonitor()
        self.replay: ReplayProgress | None = None
        self.specs: dict[str, SymbolSpec] = dict(settings.symbol_specs)

    # --- set-up --------------------------------------------------------------------
    def _make_feed(self, symbol: str) -> SymbolFeed:
        spec = self.specs[symbol]
        features = self.features_factory(symbol, spec) if self.features_factory else None
        feed = SymbolFeed(symbol, spec, self.settings, features, self.recorder)
        self.feeds[symbol] = feed
        return feed

    async def _resolve_specs(self, rest: RestClient) -> None:
        """Tick and lot sizes of every symbol from exchangeInfo (weight 1, once at
        start): Binance changes tick sizes by announcement, so the configured specs
        are only a fallback. A symbol not in TRADING status is refused."""
        symbols = self.settings.symbols
        info: dict[str, Any] | None = None
        for attempt in range(3):
            try:
                info = await rest.exchange_info()
                break
            except RestrictedLocation:
                raise
            except RestError as exc:
                log.warning("exchangeInfo failed (%s)%s", exc, "; retrying" if attempt < 2 else "")
                if attempt < 2:
                    await asyncio.sleep(1.0 + attempt)
        if info is None:
            missing = [s for s in symbols if s not in self.specs]
            if missing:
                raise RuntimeError(f"cannot get exchangeInfo for {', '.join(missing)} (no configured tick size)")
            log.warning("exchangeInfo unreachable: using the configured tick and lot sizes of %s", ", ".join(symbols))
            return
        filters = symbol_filters(info)
        for sym in symbols:
            f = filters.get(sym)
            if f is None:
                raise RuntimeError(f"{sym}: not a symbol of this exchange (exchangeInfo)")
            if f.status != "TRADING":
                raise RuntimeError(f"{sym}: status {f.status} on the exchange, not TRADING; it cannot be watched")
            self.specs[sym] = spec_from_filters(sym, f, self.specs.get(sym))

    async def start_live(self) -> None:
        """Live Binance or the simulated exchange: the same code, other URLs."""
        s = self.settings
        budget = WeightBudget(s.rest_weight_budget_1m, s.rest_weight_safety)
        self.rest = RestClient(s.rest_base_url, budget, s.http_timeout_s)
        await self._resolve_specs(self.rest)
        public: dict[str, tuple[str, SymbolFeed]] = {}
        market: dict[str, tuple[str, SymbolFeed]] = {}
        for sym in s.symbols:
            feed = self._make_feed(sym)
            public[f"{sym}{s.depth_stream_suffix}"] = ("depth", feed)
            public[f"{sym}@bookTicker"] = ("bookTicker", feed)
            market[f"{sym}@aggTrade"] = ("aggTrade", feed)
            self.tasks.spawn(feed.run_snapshot_sync(self.rest), name=f"snapshot-sync:{sym}")
        for route, url, streams in (("public", s.ws_public_url, public), ("market", s.ws_market_url, market)):
            items = list(streams.items())
            per_conn = s.max_streams_per_connection
            for i in range(0, len(items), per_conn):
                chunk = dict(items[i : i + per_conn])
                conn = StreamConnection(f"{route}#{i // per_conn}", url, chunk, s, self.recorder)
                self.connections.append(conn)
                self.tasks.spawn(conn.run(), name=f"ws:{conn.name}")
        if self.recorder is not None:
            self.tasks.spawn(self._flush_recorder(), name="recorder-flush")
        self.tasks.spawn(self._baseline_memory(), name="memory-baseline")

    async def start_replay(self, files: Sequence[str], speed: float) -> None:
        by_symbol: dict[str, list[str]] = {}
        for path in files:
            sym = symbol_of_file(path)
            if sym is None:
                raise RuntimeError(f"{path}: no stream messages in this recording")
            by_symbol.setdefault(sym, []).append(path)
        self.replay = ReplayProgress(tuple(files), speed, ReadStats())
        for sym in by_symbol:
            if sym not in self.specs:
                from data_ingestion.audit import tick_for

                tick = tick_for(sym, None)
                self.specs[sym] = SymbolSpec(tick, 0.001, decimals_of(tick), 3, 10)
        self.settings = self.settings.replace(symbols=tuple(by_symbol))
        players = []
        for sym, paths in by_symbol.items():
            feed = self._make_feed(sym)
            players.append(self.tasks.spawn(play(feed, paths, speed, self.replay), name=f"replay:{sym}"))
        self.tasks.spawn(self._replay_done(players), name="replay-done")
        self.tasks.spawn(self._baseline_memory(), name="memory-baseline")

    async def _replay_done(self, players: list[asyncio.Task[Any]]) -> None:
        await asyncio.gather(*players)
        assert self.replay is not None
        self.replay.finished = True
        for feed in self.feeds.values():
            feed.replay_finished = True

    async def _flush_recorder(self) -> None:
        assert self.recorder is not None
        while True:
            await asyncio.sleep(1.0)
            self.recorder.flush()

    async def _baseline_memory(self) -> None:
        await asyncio.sleep(30.0)
        self.process.set_baseline()

    async def stop(self) -> None:
        """Close the sockets with close frames, the REST client, flush the recorder."""
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)
        if self.rest is not None:
            await self.rest.close()
        if self.recorder is not None:
            self.recorder.flush()
            self.recorder.close()


def spec_from_filters(symbol: str, f: SymbolFilters, configured: SymbolSpec | None) -> SymbolSpec:
    """The exchange's filters as a spec; a warning where they differ from the
    configured ones. The heatmap bin keeps its width in price when the tick moved."""
    if configured is None:
        return SymbolSpec(f.tick_size, f.step_size, f.price_decimals, f.qty_decimals, heatmap_bin_ticks=10)
    if (configured.tick_size, configured.lot_size) == (f.tick_size, f.step_size):
        return SymbolSpec(f.tick_size, f.step_size, f.price_decimals, f.qty_decimals, configured.heatmap_bin_ticks)
    log.warning("%s: exchangeInfo says tick %g, step %g; configured tick %g, step %g: using the exchange's",
                symbol, f.tick_size, f.step_size, configured.tick_size, configured.lot_size)
    bin_width = configured.heatmap_bin_ticks * configured.tick_size
    bin_ticks = max(1, round(bin_width / f.tick_size))
    return SymbolSpec(f.tick_size, f.step_size, f.price_decimals, f.qty_decimals, bin_ticks)
