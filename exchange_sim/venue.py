"""The simulated venue: every symbol's market, the clock that advances them, what
they publish (through the stream faults), and the control and truth that tests read.

It knows nothing of the servers that expose it: ``exchange.SimExchange`` puts the
REST side (``rest.py``) and the websocket side (``ws.py``) in front of it. One
asyncio task advances every market by one engine batch of ``step_ms`` simulated
milliseconds per ``step_ms / speed`` wall milliseconds and publishes what happened
to the stream hub; the servers run in the same event loop, so a snapshot and the
stream always see a consistent book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from exchange_sim.contracts import BY_SYMBOL, UNKNOWN_ACTIVITY
from exchange_sim.derivatives import ContractStats
from exchange_sim.episodes import Episode, EpisodeScheduler
from exchange_sim.faults import CONNECTION_FAULTS, SNAPSHOT_FAULTS, FaultError, SymbolFaults, validate
from exchange_sim.market import StepOutput, SymbolMarket, TopOfBook
from exchange_sim.protocol import (
    ALL,
    ALL_BOOK_TICKER_MS,
    DEPTH_INTERVALS_MS,
    FORCE_ORDER_MS,
    MARK_PRICE_MS,
    MINI_TICKER_MS,
    PARTIAL_LEVELS,
    DepthAggregator,
    StreamKey,
    agg_trade_event,
    book_ticker_event,
    depth_event,
    dumps,
    partial_depth_event,
    trade_event,
)
from exchange_sim.regimes import Regime
from exchange_sim.settings import SimConfig, mid_price_for, spec_for
from exchange_sim.streams import StreamHub

log = logging.getLogger(__name__)

MALFORMED_JSON_TEXT = '{"stream":"%s@depth","data":{"e":"depthUpdate","E":'


@dataclass(frozen=True, slots=True)
class TrueBook:
    """The exchange's full book right after ``update_id`` (ticks and lots converted
    to the protocol's price/quantity strings)."""

    symbol: str
    update_id: int
    bids: list[tuple[str, str]]  # best first
    asks: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "update_id": self.update_id,
                "bids": [list(x) for x in self.bids], "asks": [list(x) for x in self.asks]}


class UnknownSymbol(KeyError):
    """A symbol the simulated exchange does not trade."""


class SymbolState:
    """One symbol's market, episodes, depth aggregators, contract figures, faults and
    the keys of its streams (made once: the clock looks them up every step)."""

    def __init__(self, symbol: str, cfg: SimConfig, start_ms: int, regime: Regime) -> None:
        self.symbol = symbol
        self.market = SymbolMarket(
            symbol, spec_for(cfg, symbol), mid_price_for(cfg, symbol), random.Random(f"{cfg.seed}:{symbol}"),
            start_ms, truth_window_ms=int(cfg.truth_window_s * 1000), regime=regime,
        )
        self.episode_rng = random.Random(f"{cfg.seed}:{symbol}:episodes")
        self.scheduler: EpisodeScheduler | None = None
        self.aggregators = {ms: DepthAggregator(ms, self.market.update_id) for ms in DEPTH_INTERVALS_MS}
        contract = BY_SYMBOL.get(symbol)
        self.stats = ContractStats(self.market, contract.activity if contract else UNKNOWN_ACTIVITY,
                                   random.Random(f"{cfg.seed}:{symbol}:contract"), start_ms)
        self.faults = SymbolFaults()
        self.pending: list[tuple[asyncio.Future[Episode], dict[str, Any]]] = []
        self.last_top: TopOfBook | None = None  # the latest bookTicker, for !bookTicker
        self.top_changed = False  # since the last !bookTicker push
        self.key_ticker = StreamKey(symbol, "bookTicker")
        self.key_trade = StreamKey(symbol, "trade")
        self.key_agg_trade = StreamKey(symbol, "aggTrade")
        self.key_force_order = StreamKey(symbol, "forceOrder")
        self.key_mini_ticker = StreamKey(symbol, "miniTicker")
        self.key_mark = {ms: StreamKey(symbol, "markPrice", ms) for ms in MARK_PRICE_MS}
        self.key_depth = {ms: StreamKey(symbol, "depth", ms) for ms in DEPTH_INTERVALS_MS}
        self.key_partial = {ms: [StreamKey(symbol, "partialDepth", ms, n) for n in PARTIAL_LEVELS]
                            for ms in DEPTH_INTERVALS_MS}


KEY_ALL_BOOK_TICKER = StreamKey(ALL, "!bookTicker", ALL_BOOK_TICKER_MS)
KEY_ALL_MARK = {ms: StreamKey(ALL, "!markPrice@arr", ms) for ms in MARK_PRICE_MS}
KEY_ALL_MINI_TICKER = StreamKey(ALL, "!miniTicker@arr", MINI_TICKER_MS)
KEY_ALL_FORCE_ORDER = StreamKey(ALL, "!forceOrder@arr", FORCE_ORDER_MS)


class Venue:
    """The markets of a simulated Binance USDT-M futures exchange, their clock,
    their publication to ``hub`` and their control API."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.cfg = config or SimConfig()
        if not self.cfg.symbols:
            raise ValueError("SimConfig.symbols is empty")
        if self.cfg.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.cfg.speed}")
        # The warm-up runs before serving: start it in the past so that served
        # exchange times are close to the wall clock at speed 1.
        now_ms = int(time.time() * 1000) - int(self.cfg.warmup_s * 1000)
        start_ms = self.cfg.start_ms if self.cfg.start_ms is not None else now_ms
        start_ms -= start_ms % 1000  # depth windows align on whole 100/250/500 ms
        # Calm and volatile periods come to every symbol at once; they start with serving.
        self.regime = Regime(self.cfg.regime, random.Random(f"{self.cfg.seed}:regime"),
                             start_ms + int(self.cfg.warmup_s * 1000))
        self.symbols: dict[str, SymbolState] = {s.lower(): SymbolState(s.lower(), self.cfg, start_ms, self.regime)
                                                for s in dict.fromkeys(x.lower() for x in self.cfg.symbols)}
        self.hub = StreamHub()
        # Settable at run time too: every REST call and handshake then answers 451.
        self.restricted_location = self.cfg.restricted_location
        self.exchange_info_down = False  # exchangeInfo answers 503 (the rest works)
        # Each symbol's exchangeInfo status; settable at run time (a symbol leaving TRADING).
        self.symbol_status: dict[str, str] = {k.lower(): v for k, v in self.cfg.symbol_status.items()}
        self.paused = False
        self._resume = asyncio.Event()
        self._clock_task: asyncio.Task[None] | None = None
        self.steps = 0
        # One engine batch for the busiest symbols; quieter ones step every few batches.
        self.step_ms = min(st.market.params.step_ms for st in self.symbols.values())
        self._warm_up()
        self.now_ms = max(st.market.now_ms for st in self.symbols.values())

    # ----------------------------------------------------------------- lifecycle
    def _warm_up(self) -> None:
        """Run ``warmup_s`` of market before serving, unpublished, so the book has its
        steady shape and the undo log is full; episodes start after it."""
        for state in self.symbols.values():
            for _ in range(int(self.cfg.warmup_s * 1000 / state.market.params.step_ms)):
                out = state.market.step()
                self._feed_aggregators(state, out, publish=False)
                state.stats.on_step(out)
            state.stats.advance(state.market.now_ms)
            state.scheduler = EpisodeScheduler(state.market, self.cfg, state.episode_rng)

    def start_clock(self) -> None:
        """Start advancing the markets (in the running event loop)."""
        self._resume.set()
        self._clock_task = asyncio.get_running_loop().create_task(self._clock(), name="sim-clock")
        self._clock_task.add_done_callback(self._clock_done)

    async def stop_clock(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
            self._clock_task = None

    @staticmethod
    def _clock_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated exchange clock failed", exc_info=task.exception())

    # --------------------------------------------------------------------- clock
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        step_ms = self.step_ms
        step_wall = step_ms / 1000.0 / self.cfg.speed
        if self.cfg.start_ms is None:
            # The warm-up took wall time: catch simulated time up with the wall clock so
            # that event times E look like a live exchange's (lag near zero, not ~1 s).
            behind_steps = (int(time.time() * 1000) - self.now_ms) // step_ms
            for _ in range(max(0, min(int(behind_steps), 200))):
                self.step_all()
        next_at = loop.time()
        while True:
            if self.paused:
                await self._resume.wait()
                next_at = loop.time()
            self.step_all()
            next_at += step_wall
            delay = next_at - loop.time()
            if delay < -1.0:  # far behind (machine overloaded): slow simulated time, don't burst
                log.warning("simulated exchange %.1f s behind its clock; skipping ahead", -delay)
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    def step_all(self) -> None:
        """Advance the venue by one engine batch: every market whose own batch ends now
        steps (the quietest every 500 ms), and publishes what it did."""
        self.steps += 1
        self.now_ms = now_ms = self.now_ms + self.step_ms
        for state in self.symbols.values():
            market = state.market
            if now_ms % market.params.step_ms:
                continue
            market.begin_step()
            if state.pending:
                for future, request in state.pending:
                    if future.done():
                        continue
                    try:
                        assert state.scheduler is not None
                        future.set_result(state.scheduler.start_wall(**request))
                    except Exception as exc:  # reported to the caller of inject_wall
                        future.set_exception(exc)
                state.pending.clear()
            if state.scheduler is not None:
                state.scheduler.on_step()
            market.run_random_flow()
            out = market.end_step()
            state.stats.on_step(out)
            self._publish(state, out)
        self._publish_market_wide(now_ms)

    def _feed_aggregators(self, state: SymbolState, out: StepOutput, publish: bool) -> None:
        has = self.hub.has
        for interval, agg in state.aggregators.items():
            window = agg.add(out)
            if window is None or not publish:
                continue
            key = state.key_depth[interval]
            if has(key):
                self._send_depth(state, key, depth_event(state.market, window))
            for pkey in state.key_partial[interval]:
                if has(pkey):
                    self.hub.publish(pkey, dumps(partial_depth_event(state.market, window, pkey.levels)))

    def _publish(self, state: SymbolState, out: StepOutput) -> None:
        market = state.market
        hub = self.hub
        if out.tickers:
            state.last_top = out.tickers[-1]
            state.top_changed = True
            if hub.has(state.key_ticker):
                f = state.faults
                for top in out.tickers:
                    if f.ticker_mismatch:
                        f.ticker_mismatch -= 1
                        uid, bt, bq, at, aq = top
                        top = (uid, bt, bq + 1, at, aq)
                    hub.publish(state.key_ticker, dumps(book_ticker_event(market, top, out.time_ms)))
        if out.trades:
            if hub.has(state.key_agg_trade):
                for trade in out.trades:
                    hub.publish(state.key_agg_trade, dumps(agg_trade_event(market, trade)))
            if hub.has(state.key_trade):
                for trade in out.trades:
                    for event in trade_event(market, trade):
                        hub.publish(state.key_trade, dumps(event))
        self._feed_aggregators(state, out, publish=True)

    def _publish_market_wide(self, now_ms: int) -> None:
        """The streams that push on a clock: mark prices, mini tickers, liquidations,
        !bookTicker (each symbol's own and the all-market arrays)."""
        if now_ms % 1000:
            return
        hub = self.hub
        states = list(self.symbols.values())
        for state in states:
            state.stats.advance(now_ms)
        for ms in MARK_PRICE_MS:
            if now_ms % ms:
                continue
            key = KEY_ALL_MARK[ms]
            events = [s.stats.mark_price_event(now_ms) for s in states] if hub.has(key) else None
            if events:
                hub.publish(key, dumps(events))
            for i, state in enumerate(states):
                if hub.has(state.key_mark[ms]):
                    event = events[i] if events else state.stats.mark_price_event(now_ms)
                    hub.publish(state.key_mark[ms], dumps(event))
        if now_ms % MINI_TICKER_MS == 0:
            changed = [s for s in states if s.stats.traded]
            if hub.has(KEY_ALL_MINI_TICKER) and changed:
                hub.publish(KEY_ALL_MINI_TICKER, dumps([s.stats.mini_ticker_event(now_ms) for s in changed]))
            for state in changed:
                if hub.has(state.key_mini_ticker):
                    hub.publish(state.key_mini_ticker, dumps(state.stats.mini_ticker_event(now_ms)))
                state.stats.traded = False
        if now_ms % FORCE_ORDER_MS == 0:
            for state in states:
                forced = state.stats.force_order_event(now_ms)
                if forced is None:
                    continue
                data = dumps(forced)
                if hub.has(KEY_ALL_FORCE_ORDER):
                    hub.publish(KEY_ALL_FORCE_ORDER, data)
                if hub.has(state.key_force_order):
                    hub.publish(state.key_force_order, data)
        if now_ms % ALL_BOOK_TICKER_MS == 0:
            publish = hub.has(KEY_ALL_BOOK_TICKER)
            for state in states:
                if state.top_changed and state.last_top is not None and publish:
                    hub.publish(KEY_ALL_BOOK_TICKER, dumps(book_ticker_event(state.market, state.last_top, now_ms - 1)))
                state.top_changed = False

    def _send_depth(self, state: SymbolState, key: StreamKey, event: dict[str, Any]) -> None:
        """Send one depth event through the symbol's stream faults."""
        f = state.faults
        data = dumps(event)
        if f.malformed:
            kind = f.malformed.pop(0)
            if kind == "json":
                self.hub.publish(key, MALFORMED_JSON_TEXT % state.symbol, wrap=False)
            else:
                broken = {k: v for k, v in event.items() if k not in ("U", "pu")}
                self.hub.publish(key, dumps(broken))
            log.info("%s: fault malformed (%s) sent", state.symbol, kind)
        if f.drop:
            f.drop -= 1
            log.info("%s: fault drop: depth event U=%d u=%d not sent", state.symbol, event["U"], event["u"])
            return
        slot = f"{key.interval_ms}"
        held = f.held.pop(slot, None)
        if held is not None:
            self.hub.publish(key, data)
            self.hub.publish(key, held)
            return
        if f.reorder:
            f.reorder -= 1
            f.held[slot] = data
            return
        self.hub.publish(key, data)
        if f.duplicate:
            f.duplicate -= 1
            self.hub.publish(key, data)

    # ------------------------------------------------------------ control API
    def state(self, symbol: str) -> SymbolState:
        try:
            return self.symbols[symbol.lower()]
        except KeyError:
            raise UnknownSymbol(f"unknown symbol {symbol!r}; trading {sorted(self.symbols)}") from None

    def true_book(self, symbol: str, update_id: int | None = None) -> TrueBook:
        """The full book right after ``update_id`` (now when None). Raises
        TruthUnavailable when the id is older than the undo log or in the future."""
        market = self.state(symbol).market
        uid, bids, asks = market.book_at(update_id)
        return TrueBook(
            market.symbol, uid,
            [(market.price_str(t), market.qty_str(bids[t])) for t in sorted(bids, reverse=True)],
            [(market.price_str(t), market.qty_str(asks[t])) for t in sorted(asks)],
        )

    def episodes(self, symbol: str | None = None) -> list[Episode]:
        """Labelled episodes so far (of one symbol, or all)."""
        states = [self.state(symbol)] if symbol else list(self.symbols.values())
        return [e for s in states if s.scheduler for e in s.scheduler.labels]

    def set_fault(self, symbol: str, name: str, **params: Any) -> dict[str, Any]:
        """Switch fault ``name`` on for ``symbol`` (see faults.FAULT_PARAMS);
        returns the validated parameters."""
        state = self.state(symbol)
        p = validate(name, params)
        f = state.faults
        if name in ("drop", "duplicate", "reorder", "ticker_mismatch"):
            setattr(f, name, getattr(f, name) + p["count"])
        elif name == "malformed":
            f.malformed.extend([p["kind"]] * p["count"])
        elif name in SNAPSHOT_FAULTS:
            f.snapshot[name] = p
        elif name in CONNECTION_FAULTS:
            conns = self.hub.connections_for(state.symbol)
            for conn in conns:
                if name == "silence":
                    conn.silence(p["seconds"])
                elif name == "rotate":
                    conn.close(1001, "connection lifetime reached")
                elif p["frame"]:
                    conn.close(p["code"], "closed by fault injection")
                else:
                    conn.abort()
            p = {**p, "connections": len(conns)}
        log.info("%s: fault %s on %s", state.symbol, name, p)
        return p

    def clear_faults(self, symbol: str | None = None) -> None:
        """Switch every fault off (of one symbol or all); held reordered events are sent."""
        for state in [self.state(symbol)] if symbol else list(self.symbols.values()):
            held = state.faults.held
            state.faults = SymbolFaults()
            for slot, data in held.items():
                self.hub.publish(state.key_depth[int(slot)], data)
            log.info("%s: faults cleared", state.symbol)

    def faults(self) -> dict[str, dict[str, Any]]:
        return {s: st.faults.active() for s, st in self.symbols.items()}

    def pause(self) -> None:
        """Freeze the market (connections stay open, pings continue)."""
        self.paused = True
        self._resume.clear()
        log.info("simulated market paused")

    def resume(self) -> None:
        self.paused = False
        self._resume.set()
        log.info("simulated market resumed")

    async def inject_wall(
        self, symbol: str, side: str = "bid", distance_ticks: int = 3, multiple: float = 10.0,
        duration_s: float = 20.0, end_mode: str = "pulled",
    ) -> Episode:
        """Place a wall at the next engine batch and return its label (a running
        episode of the symbol is ended first: episodes never overlap)."""
        state = self.state(symbol)
        if side not in ("bid", "ask"):
            raise FaultError(f"side must be 'bid' or 'ask', got {side!r}")
        if not 0 <= distance_ticks <= 50:
            raise FaultError(f"distance_ticks must be in [0, 50], got {distance_ticks}")
        if not 1.0 <= multiple <= 1000.0:
            raise FaultError(f"multiple must be in [1, 1000], got {multiple}")
        if not 0.1 <= duration_s <= 3600.0:
            raise FaultError(f"duration_s must be in [0.1, 3600], got {duration_s}")
        if end_mode not in ("pulled", "eaten"):
            raise FaultError(f"end_mode must be 'pulled' or 'eaten', got {end_mode!r}")
        if self.paused or self._clock_task is None:
            raise FaultError("the market is paused or not started: a wall is placed by a running market")
        future: asyncio.Future[Episode] = asyncio.get_running_loop().create_future()
        state.pending.append((future, dict(is_bid=side == "bid", distance_ticks=distance_ticks,
                                           multiple=multiple, duration_s=duration_s, end_mode=end_mode)))
        return await future

    def snapshot_book(self, symbol: str, age_s: float | None = None) -> tuple[int, dict[int, int], dict[int, int]]:
        """(lastUpdateId, bids, asks) now, or ``age_s`` simulated seconds ago (stale fault)."""
        market = self.state(symbol).market
        if age_s is None:
            return market.update_id, dict(market.top_levels(True, 1000)), dict(market.top_levels(False, 1000))
        return market.book_at(market.update_id_at(market.now_ms - int(age_s * 1000)))
