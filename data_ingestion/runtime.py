"""The ingestion runtime: feeds, connections and snapshot loops for all symbols.

Per symbol: the depth stream (and bookTicker) on the public route, aggTrade,
forceOrder and markPrice@1s on the market route (Binance routes them by data type:
on the public route they would be accepted and never sent), and an open-interest
poll over REST at low priority; symbols share connections (at most 1,024 streams each, as Binance
allows). Each symbol's snapshot loop is its own task, so the sockets keep being
read while snapshots download. For ``replay`` the same feeds are fed from files.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from config import Settings, SymbolSpec
from data_ingestion.connection import StreamConnection
from data_ingestion.feed import FeatureSink, SymbolFeed
from data_ingestion.monitor import ProcessMonitor
from data_ingestion.recorder import Recorder, open_recorder
from data_ingestion.recording import ReadStats, RecordingHead, scan_head
from data_ingestion.replay import ReplayProgress, play
from data_ingestion.rest import (
    RestClient,
    RestError,
    RestrictedLocation,
    SymbolFilters,
    WeightBudget,
    symbol_filters,
)
from data_ingestion.symbol_specs import filters_line, spec_from_filters, spec_from_line, spec_inferred
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
        recorder: Recorder | None = None,
    ) -> None:
        """``recorder``: one already opened (main.py opens it before anything starts, so
        that a bad or busy data directory stops the process at once); without one,
        :meth:`start_live` opens the one the settings ask for."""
        self.settings = settings
        self.tasks = tasks
        self.features_factory = features_factory
        self.feeds: dict[str, SymbolFeed] = {}
        self.connections: list[StreamConnection] = []
        self.recorder: Recorder | None = recorder
        self.rest: RestClient | None = None
        self.process = ProcessMonitor()
        self.replay: ReplayProgress | None = None
        self.specs: dict[str, SymbolSpec] = dict(settings.symbol_specs)
        # Symbols promoted at run time: their connections and tasks, to stop on release.
        self._added: dict[str, tuple[list[StreamConnection], list[asyncio.Task[Any]]]] = {}

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
            log.warning("exchangeInfo unreachable: configured tick and lot sizes where there are some, "
                        "else inferred from a snapshot's prices")
            for sym in symbols:
                if sym in self.specs:
                    self._note_filters(sym, None, "configured")
                else:
                    self.specs[sym] = await self._infer_spec(rest, sym)
                    self._note_filters(sym, None, "inferred")
            return
        filters = symbol_filters(info)
        for sym in symbols:
            f = filters.get(sym)
            if f is None:
                raise RuntimeError(f"{sym}: not a symbol of this exchange (exchangeInfo)")
            if f.status != "TRADING":
                raise RuntimeError(f"{sym}: status {f.status} on the exchange, not TRADING; it cannot be watched")
            self.specs[sym] = spec_from_filters(sym, f, self.specs.get(sym))
            self._note_filters(sym, f, "exchangeInfo")

    async def _infer_spec(self, rest: RestClient, symbol: str) -> SymbolSpec:
        """Tick and step from the strings of a depth snapshot (weight 20): the guard
        for an unconfigured symbol while exchangeInfo cannot be reached."""
        try:
            snapshot, _raw = await rest.depth_snapshot(symbol, 1000)
        except RestError as exc:
            raise RuntimeError(f"{symbol}: no exchangeInfo and no snapshot to infer its tick from ({exc})") from None
        levels = snapshot.bids + snapshot.asks
        spec = spec_inferred(symbol, (p for p, _q in levels), (q for _p, q in levels), None)
        if spec is None:
            raise RuntimeError(f"{symbol}: no exchangeInfo and an empty snapshot: its tick is unknown")
        return spec

    def _note_filters(self, symbol: str, f: SymbolFilters | None, source: str) -> None:
        """Hand the recorder the line it writes at the head of each member."""
        if self.recorder is not None:
            self.recorder.set_filters(symbol, filters_line(symbol, self.specs[symbol], f, source).encode())

    async def start_live(self) -> None:
        """Live Binance or the simulated exchange: the same code, other URLs."""
        s = self.settings
        if self.recorder is None:
            self.recorder = open_recorder(s)
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
            if s.derivatives_streams:
                market[f"{sym}@forceOrder"] = ("forceOrder", feed)
                market[f"{sym}@markPrice@1s"] = ("markPrice", feed)
            self.tasks.supervise(functools.partial(feed.run_snapshot_sync, self.rest), name=f"snapshot-sync:{sym}")
            if s.open_interest_poll_s > 0:
                self.tasks.supervise(functools.partial(feed.run_open_interest_poll, self.rest),
                                     name=f"open-interest:{sym}")
        for route, url, streams in (("public", s.ws_public_url, public), ("market", s.ws_market_url, market)):
            items = list(streams.items())
            per_conn = s.max_streams_per_connection
            for i in range(0, len(items), per_conn):
                chunk = dict(items[i : i + per_conn])
                conn = StreamConnection(f"{route}#{i // per_conn}", url, chunk, s, self.recorder)
                self.connections.append(conn)
                self.tasks.supervise(conn.run, name=f"ws:{conn.name}")
        if self.recorder is not None:
            self.recorder.set_checkpoint_provider(self._checkpoint)
            self.tasks.supervise(self._flush_recorder, name="recorder-flush")
            self.tasks.supervise(self._retention, name="recorder-retention")
        self.tasks.supervise(self._baseline_memory, name="memory-baseline")

    # --- promotion: a full-depth book added and removed at run time ------------------
    async def resolve_spec(self, symbol: str) -> SymbolSpec:
        """Tick and lot sizes of ``symbol`` from exchangeInfo (weight 1); RuntimeError
        when the exchange does not trade it."""
        assert self.rest is not None
        filters = symbol_filters(await self.rest.exchange_info()).get(symbol)
        if filters is None or filters.status != "TRADING":
            raise RuntimeError(f"{symbol}: not a TRADING symbol of this exchange (exchangeInfo)")
        return spec_from_filters(symbol, filters, self.specs.get(symbol))

    def add_symbol(self, symbol: str, spec: SymbolSpec) -> SymbolFeed:
        """A full-depth exact book for ``symbol``, exactly as a start symbol's: its own
        connections (public: depth + bookTicker; market: trades, liquidations, mark
        price), its snapshot sync within the REST weight budget, its open-interest
        poll, recorded like the others. Synchronous: the caller registers the feed
        with the publisher in the same step."""
        s = self.settings
        assert self.rest is not None
        self.specs[symbol] = spec
        self._note_filters(symbol, None, "exchangeInfo")
        feed = self._make_feed(symbol)
        public = {f"{symbol}{s.depth_stream_suffix}": ("depth", feed), f"{symbol}@bookTicker": ("bookTicker", feed)}
        market = {f"{symbol}@aggTrade": ("aggTrade", feed)}
        if s.derivatives_streams:
            market[f"{symbol}@forceOrder"] = ("forceOrder", feed)
            market[f"{symbol}@markPrice@1s"] = ("markPrice", feed)
        conns = [StreamConnection(f"public:{symbol}", s.ws_public_url, public, s, self.recorder),
                 StreamConnection(f"market:{symbol}", s.ws_market_url, market, s, self.recorder)]
        tasks = [self.tasks.supervise(c.run, name=f"ws:{c.name}") for c in conns]
        tasks.append(self.tasks.supervise(functools.partial(feed.run_snapshot_sync, self.rest),
                                          name=f"snapshot-sync:{symbol}"))
        if s.open_interest_poll_s > 0:
            tasks.append(self.tasks.supervise(functools.partial(feed.run_open_interest_poll, self.rest),
                                              name=f"open-interest:{symbol}"))
        self.connections.extend(conns)
        self._added[symbol] = (conns, tasks)
        return feed

    async def remove_symbol(self, symbol: str) -> None:
        """Stop what :meth:`add_symbol` started: the feed leaves ``feeds`` at once (the
        caller has unregistered it from the publisher), then its sockets close with a
        close frame, its tasks are cancelled and awaited, and its recording segment is
        finished and closed (nothing writes to it any more)."""
        self.feeds.pop(symbol, None)
        conns, tasks = self._added.pop(symbol, ([], []))
        for conn in conns:
            self.connections.remove(conn)
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        if self.recorder is not None:
            self.recorder.close_symbol(symbol)

    async def start_replay(self, files: Sequence[str], speed: float) -> None:
        """Play ``files``; each symbol's tick and step come from the recording's
        filters line, else are inferred from its first prices (and logged)."""
        by_symbol: dict[str, list[str]] = {}
        heads: dict[str, RecordingHead] = {}
        for path in files:
            head = scan_head(path)
            if head.symbol is None:
                raise RuntimeError(f"{path}: no stream messages in this recording")
            by_symbol.setdefault(head.symbol, []).append(path)
            heads.setdefault(head.symbol, head)
        self.replay = ReplayProgress(tuple(files), speed, ReadStats())
        for sym, head in heads.items():
            configured = self.specs.get(sym)
            if head.filters is not None:
                self.specs[sym] = spec_from_line(head.filters, configured)
                log.info("%s: tick %s, step %s from the recording's filters line", sym, head.filters.tick_size,
                         head.filters.step_size)
                continue
            spec = spec_inferred(sym, head.prices, head.qtys, configured)
            if spec is None:
                if configured is None:
                    raise RuntimeError(f"{sym}: the recording has no filters line and no prices to infer a tick from")
                log.warning("%s: no prices to infer the tick from: using the configured tick %g", sym,
                            configured.tick_size)
            else:
                self.specs[sym] = spec
        self.settings = self.settings.replace(symbols=tuple(by_symbol))
        players = []
        for sym, paths in by_symbol.items():
            feed = self._make_feed(sym)
            players.append(self.tasks.spawn(play(feed, paths, speed, self.replay), name=f"replay:{sym}"))
        self.tasks.spawn(self._replay_done(players), name="replay-done")
        self.tasks.supervise(self._baseline_memory, name="memory-baseline")

    async def _replay_done(self, players: list[asyncio.Task[Any]]) -> None:
        await asyncio.gather(*players)
        assert self.replay is not None
        self.replay.finished = True
        for feed in self.feeds.values():
            feed.replay_finished = True

    def _checkpoint(self, symbol: str) -> bytes | None:
        """The recorder's checkpoint line of ``symbol``: its whole book while in sync."""
        feed = self.feeds.get(symbol.lower())
        return feed.checkpoint_line() if feed is not None else None

    async def _flush_recorder(self) -> None:
        """Every second: what was recorded reaches the files (and, after a write
        error, the recorder tries again when its retry is due)."""
        assert self.recorder is not None
        while True:
            await asyncio.sleep(1.0)
            self.recorder.flush()

    async def _retention(self) -> None:
        """At start, then every ``retention_interval_s``: the oldest segments removed
        past the retention or the disk budget."""
        assert self.recorder is not None
        while True:
            self.recorder.enforce_retention()
            await asyncio.sleep(self.settings.retention_interval_s)

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

