"""The stochastic limit order book of one symbol, advanced in fixed simulated steps.

Prices are integer ticks and quantities integer lots, so nothing drifts through
floats. Every book operation (a limit arrival, a cancellation, a market order,
a scripted episode move) takes a new update id, larger than the last by a random
step, as on Binance futures where ``U`` is not the previous ``u + 1``.

The market knows nothing about sockets or wall clocks: :meth:`SymbolMarket.step`
advances it by ``step_ms`` of simulated time and returns what happened. The same
seed therefore gives the same stream, whatever the speed or the machine load.
An undo log of the last ``truth_window_ms`` lets :meth:`book_at` rebuild the book
as it was right after any recent update id (the tests' oracle).
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from dataclasses import dataclass, field

from sortedcontainers import SortedDict

from config import SymbolSpec

log = logging.getLogger(__name__)

# One level change: (update id, is_bid, tick, old lots, new lots); 0 lots = no level.
Change = tuple[int, bool, int, int, int]
# One best-quote change: (update id, bid tick, bid lots, ask tick, ask lots).
TopOfBook = tuple[int, int, int, int, int]


class TruthUnavailable(LookupError):
    """The requested update id is older than the undo log or newer than the book."""

    def __init__(self, message: str, too_old: bool) -> None:
        super().__init__(message)
        self.too_old = too_old


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Knobs of the random order flow. Defaults imitate the BTCUSDT/ETHUSDT
    recordings described in ../shared/data/binance-usdm/README.md."""

    step_ms: int = 50  # one engine batch; @depth@100ms merges two of them
    ops_per_step_median: float = 34.0  # limit arrivals + cancels per batch (lognormal)
    ops_per_step_sigma: float = 1.0
    add_share: float = 0.5  # share of random ops that are arrivals (rest: cancels)
    near_share: float = 0.7  # share of ops drawn near the touch (exponential distance)
    near_mean_ticks: float = 5.0
    far_max_ticks: int = 6000  # other ops: log-uniform distance up to this
    p_inside: float = 0.9  # arrival improves the quote when the spread is > 1 tick
    cancel_full_prob: float = 0.2  # a cancel far from the touch removes the whole level
    touch_full_cancel_prob: float = 0.05  # ... at the touch (levels there rarely vanish)
    level_notional: float = 3000.0  # median size of one arrival, quote currency
    size_sigma: float = 1.6  # lognormal sigma of arrival sizes
    touch_size_boost: float = 1.0  # arrivals near the touch are larger
    market_orders_per_s: float = 4.0
    market_notional: float = 3000.0  # median market order, quote currency
    market_sigma: float = 1.4
    id_step_max: int = 40  # update ids grow by 1..id_step_max per operation
    init_ticks: int = 7000  # initial book: levels spread over this many ticks a side
    init_occupancy_near: float = 0.7  # share of ticks holding a level within 2000 ticks
    init_occupancy_far: float = 0.6
    min_levels: int = 50  # never cancel a side below this many levels


# Per-symbol adjustments: ETH books are thinner in notional than BTC's (README table).
SYMBOL_PARAMS: dict[str, MarketParams] = {
    "ethusdt": MarketParams(level_notional=1200.0, market_notional=1500.0),
}


def params_for(symbol: str) -> MarketParams:
    return SYMBOL_PARAMS.get(symbol.lower(), MarketParams())


@dataclass(frozen=True, slots=True)
class Trade:
    """One aggregated trade: a market order's fill at one price."""

    agg_id: int
    tick: int
    lots: int
    first_id: int
    last_id: int
    seller_aggressor: bool  # Binance's "m": the buyer was the maker
    time_ms: int


@dataclass(slots=True)
class StepOutput:
    """Everything one engine batch did, in order."""

    time_ms: int
    changes: list[Change] = field(default_factory=list)
    tickers: list[TopOfBook] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)


@dataclass(slots=True)
class Withdrawal:
    """A liquidity withdrawal in force: no arrivals inside the gap, small ones near it."""

    bid_edge: int  # highest tick a bid may rest at
    ask_edge: int  # lowest tick an ask may rest at
    size_scale: float


class SymbolMarket:
    """Order book and order flow of one symbol."""

    def __init__(
        self,
        symbol: str,
        spec: SymbolSpec,
        mid_price: float,
        rng: random.Random,
        start_ms: int,
        params: MarketParams | None = None,
        truth_window_ms: int = 60_000,
    ) -> None:
        self.symbol = symbol.lower()
        self.spec = spec
        self.params = params or params_for(symbol)
        self.rng = rng
        self.now_ms = start_ms
        self.truth_window_ms = truth_window_ms
        self.bids: SortedDict = SortedDict()  # tick -> lots; best bid is the last key
        self.asks: SortedDict = SortedDict()  # tick -> lots; best ask is the first key
        # Lots that random cancels may not touch (walls, layers); market orders can.
        self.protected: dict[tuple[bool, int], int] = {}
        self.withdrawal: Withdrawal | None = None
        self.update_id = rng.randint(10**12, 5 * 10**12)
        self.agg_id = rng.randint(10**8, 10**9)
        self.trade_id = rng.randint(10**9, 5 * 10**9)
        self._undo: deque[tuple[int, int, list[Change]]] = deque()  # (time_ms, prev id, changes)
        self._out = StepOutput(start_ms)
        self._last_top: tuple[int, int, int, int] | None = None
        self._size_mu = math.log(max(1.0, self.params.level_notional / mid_price / spec.lot_size))
        self._market_mu = math.log(max(1.0, self.params.market_notional / mid_price / spec.lot_size))
        self._init_book(mid_price)

    # ----------------------------------------------------------------- formatting
    def price_str(self, tick: int) -> str:
        return f"{tick * self.spec.tick_size:.{self.spec.price_decimals}f}"

    def qty_str(self, lots: int) -> str:
        return f"{lots * self.spec.lot_size:.{self.spec.qty_decimals}f}"

    # ------------------------------------------------------------------ queries
    @property
    def best_bid(self) -> tuple[int, int]:
        return self.bids.peekitem(-1)  # type: ignore[no-any-return]

    @property
    def best_ask(self) -> tuple[int, int]:
        return self.asks.peekitem(0)  # type: ignore[no-any-return]

    def spread_ticks(self) -> int:
        return int(self.asks.keys()[0] - self.bids.keys()[-1])

    def top_levels(self, is_bid: bool, n: int) -> list[tuple[int, int]]:
        """The best ``n`` levels of one side, best first."""
        if is_bid:
            keys = self.bids.keys()
            return [(k, self.bids[k]) for k in keys[-1 : -n - 1 : -1]]
        keys = self.asks.keys()
        return [(k, self.asks[k]) for k in keys[:n]]

    def median_top_size(self, n: int = 20) -> int:
        """Median level size (lots) of the top ``n`` levels of both sides: the
        'typical size' the detectors of metrics.md compare against."""
        sizes = sorted(q for _, q in self.top_levels(True, n) + self.top_levels(False, n))
        return max(1, sizes[len(sizes) // 2])

    def top_depth(self, n: int = 20) -> int:
        return sum(q for _, q in self.top_levels(True, n)) + sum(q for _, q in self.top_levels(False, n))

    # ------------------------------------------------------------------- truth
    def oldest_update_id(self) -> int:
        """The oldest update id whose book :meth:`book_at` can still rebuild."""
        return self._undo[0][1] if self._undo else self.update_id

    def update_id_at(self, time_ms: int) -> int:
        """The last update id at or before simulated ``time_ms`` (clamped to the undo log)."""
        uid = self.oldest_update_id()
        for step_ms, _prev, changes in self._undo:
            if step_ms > time_ms:
                break
            if changes:
                uid = changes[-1][0]
        return uid

    def book_at(self, update_id: int | None = None) -> tuple[int, dict[int, int], dict[int, int]]:
        """(update id, bids, asks) right after ``update_id`` (now when None)."""
        bids = dict(self.bids)
        asks = dict(self.asks)
        if update_id is None or update_id >= self.update_id:
            if update_id is not None and update_id > self.update_id:
                raise TruthUnavailable(
                    f"{self.symbol}: update id {update_id} is newer than the book ({self.update_id})",
                    too_old=False,
                )
            return self.update_id, bids, asks
        if update_id < self.oldest_update_id():
            raise TruthUnavailable(
                f"{self.symbol}: update id {update_id} is older than the undo log "
                f"(oldest {self.oldest_update_id()})",
                too_old=True,
            )
        for _, _, changes in reversed(self._undo):
            if changes and changes[-1][0] <= update_id:
                break
            for uid, is_bid, tick, old, _new in reversed(changes):
                if uid <= update_id:
                    break
                book = bids if is_bid else asks
                if old:
                    book[tick] = old
                else:
                    book.pop(tick, None)
        return update_id, bids, asks

    # ------------------------------------------------------------ primitives
    def _new_id(self) -> int:
        self.update_id += self.rng.randint(1, self.params.id_step_max)
        return self.update_id

    def _set(self, uid: int, is_bid: bool, tick: int, lots: int) -> None:
        book = self.bids if is_bid else self.asks
        old = book.get(tick, 0)
        if lots == old:
            return
        if lots > 0:
            book[tick] = lots
        else:
            del book[tick]
        key = (is_bid, tick)
        prot = self.protected.get(key)
        if prot is not None and lots < prot:
            if lots > 0:
                self.protected[key] = lots
            else:
                del self.protected[key]
        self._out.changes.append((uid, is_bid, tick, old, lots))

    def _after_op(self, uid: int) -> None:
        bt, bq = self.bids.peekitem(-1)
        at, aq = self.asks.peekitem(0)
        if bt >= at:  # an invariant, never a market state: fail loudly
            raise AssertionError(f"{self.symbol}: crossed book {bt} >= {at} at id {uid}")
        top = (bt, bq, at, aq)
        if top != self._last_top:
            self._last_top = top
            self._out.tickers.append((uid, bt, bq, at, aq))

    def op_add(self, is_bid: bool, tick: int, lots: int, protect: bool = False) -> int:
        """A limit order of ``lots`` resting at ``tick`` (must not cross)."""
        uid = self._new_id()
        book = self.bids if is_bid else self.asks
        self._set(uid, is_bid, tick, book.get(tick, 0) + lots)
        if protect:
            key = (is_bid, tick)
            self.protected[key] = self.protected.get(key, 0) + lots
        self._after_op(uid)
        return uid

    def op_remove(self, is_bid: bool, tick: int, lots: int) -> int:
        """Cancel up to ``lots`` at ``tick``, protected lots first (an episode's own order)."""
        uid = self._new_id()
        book = self.bids if is_bid else self.asks
        have = book.get(tick, 0)
        key = (is_bid, tick)
        prot = self.protected.get(key, 0)
        if prot:
            left = prot - min(prot, lots)
            if left:
                self.protected[key] = left
            else:
                del self.protected[key]
        self._set(uid, is_bid, tick, max(0, have - lots))
        self._after_op(uid)
        return uid

    def op_set(self, is_bid: bool, tick: int, lots: int) -> int:
        """Set a level to ``lots`` in one operation (used by withdrawal thinning)."""
        uid = self._new_id()
        self._set(uid, is_bid, tick, lots)
        self._after_op(uid)
        return uid

    def op_market(self, is_buy: bool, lots: int, limit_tick: int | None = None) -> int:
        """A market order: eats the opposite side from its best level, one aggTrade
        per price. ``limit_tick`` stops the sweep beyond that price."""
        uid = self._new_id()
        book = self.asks if is_buy else self.bids
        remaining = lots
        while remaining > 0 and len(book) > self.params.min_levels:
            tick, have = book.peekitem(0) if is_buy else book.peekitem(-1)
            if limit_tick is not None and (tick > limit_tick if is_buy else tick < limit_tick):
                break
            fill = min(have, remaining)
            remaining -= fill
            self._set(uid, not is_buy, tick, have - fill)
            first = self.trade_id + 1
            self.trade_id += self.rng.randint(1, 3)
            self.agg_id += 1
            self._out.trades.append(
                Trade(self.agg_id, tick, fill, first, self.trade_id, not is_buy, self.now_ms)
            )
        self._after_op(uid)
        return uid

    # ------------------------------------------------------------ order flow
    def _draw_distance(self) -> int:
        p = self.params
        if self.rng.random() < p.near_share:
            return int(self.rng.expovariate(1.0 / p.near_mean_ticks))
        return int(math.exp(self.rng.uniform(0.0, math.log(p.far_max_ticks))))

    def _draw_lots(self, distance: int) -> int:
        p = self.params
        boost = 1.0 + p.touch_size_boost * math.exp(-distance / 8.0)
        return max(1, round(self.rng.lognormvariate(self._size_mu, p.size_sigma) * boost))

    def _random_add(self, is_bid: bool) -> None:
        bb = self.bids.keys()[-1]
        ba = self.asks.keys()[0]
        spread = ba - bb
        w = self.withdrawal
        if spread > 1 and w is None and self.rng.random() < self.params.p_inside:
            off = self.rng.randint(1, spread - 1)
            distance = 0
            tick = bb + off if is_bid else ba - off
        else:
            distance = self._draw_distance()
            tick = bb - distance if is_bid else ba + distance
        lots = self._draw_lots(distance)
        if w is not None:
            tick = min(tick, w.bid_edge) if is_bid else max(tick, w.ask_edge)
            if distance < 80:  # near a withdrawn touch few orders arrive, and small ones
                if self.rng.random() > w.size_scale:
                    return
                lots = max(1, round(min(lots, math.exp(self._size_mu)) * 0.5))
        if tick <= 0:
            return
        self.op_add(is_bid, tick, lots)

    def _random_cancel(self, is_bid: bool) -> None:
        book = self.bids if is_bid else self.asks
        if len(book) <= self.params.min_levels:
            return
        distance = self._draw_distance()
        if self.withdrawal is not None and distance < 80:
            return  # what is left near a withdrawn touch stays: the gap must not widen without bound
        keys = book.keys()
        if is_bid:
            idx = max(0, book.bisect_right(keys[-1] - distance) - 1)
        else:
            idx = min(len(book) - 1, book.bisect_left(keys[0] + distance))
        tick = keys[idx]
        have = book[tick]
        prot = self.protected.get((is_bid, tick), 0)
        free = have - prot
        if free <= 0:
            return
        p = self.params
        full = p.cancel_full_prob + (p.touch_full_cancel_prob - p.cancel_full_prob) * math.exp(-distance / 4.0)
        if self.rng.random() < full:
            new = prot
        else:
            new = have - min(free, self._draw_lots(distance))
        uid = self._new_id()
        self._set(uid, is_bid, tick, new)
        self._after_op(uid)

    def _random_market_order(self) -> None:
        is_buy = self.rng.random() < 0.5
        lots = max(1, round(self.rng.lognormvariate(self._market_mu, self.params.market_sigma)))
        if self.withdrawal is not None:
            lots = max(1, round(lots * self.withdrawal.size_scale))
        self.op_market(is_buy, lots)

    def begin_step(self) -> None:
        """Start a new engine batch at the next simulated time step."""
        self.now_ms += self.params.step_ms
        self._out = StepOutput(self.now_ms)
        self._step_prev_id = self.update_id

    def run_random_flow(self) -> None:
        """The batch's random arrivals, cancels and market orders."""
        p = self.params
        rng = self.rng
        n = int(rng.lognormvariate(math.log(p.ops_per_step_median), p.ops_per_step_sigma))
        market_at = -1
        if rng.random() < p.market_orders_per_s * p.step_ms / 1000.0:
            market_at = rng.randint(0, max(0, n))
        for i in range(n + 1):
            if i == market_at:
                self._random_market_order()
            if i == n:
                break
            is_bid = rng.random() < 0.5
            if rng.random() < p.add_share:
                self._random_add(is_bid)
            else:
                self._random_cancel(is_bid)

    def end_step(self) -> StepOutput:
        """Close the batch: record it in the undo log and hand it out."""
        out = self._out
        self._undo.append((out.time_ms, self._step_prev_id, out.changes))
        horizon = self.now_ms - self.truth_window_ms
        while self._undo and self._undo[0][0] < horizon:
            self._undo.popleft()
        return out

    def step(self) -> StepOutput:
        """One engine batch of random flow (episodes are driven by the caller)."""
        self.begin_step()
        self.run_random_flow()
        return self.end_step()

    # ------------------------------------------------------------------- setup
    def _init_book(self, mid_price: float) -> None:
        p = self.params
        best_bid = round(mid_price / self.spec.tick_size)
        best_ask = best_bid + 1
        rng = self.rng
        for d in range(p.init_ticks):
            occ = 1.0 if d == 0 else (p.init_occupancy_near if d < 2000 else p.init_occupancy_far)
            if rng.random() < occ and best_bid - d > 0:
                self.bids[best_bid - d] = self._draw_lots(d)
            if rng.random() < occ:
                self.asks[best_ask + d] = self._draw_lots(d)
        self._last_top = (*self.bids.peekitem(-1), *self.asks.peekitem(0))
        log.debug("%s: book initialised with %d bids, %d asks", self.symbol, len(self.bids), len(self.asks))
