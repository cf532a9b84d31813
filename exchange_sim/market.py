"""The limit order book of one symbol and the order flow that moves it, advanced in
fixed simulated steps.

Prices are integer ticks and quantities integer lots, so nothing drifts through
floats. Every book operation (a limit arrival, a cancellation, a market order, a
scripted episode move) takes a new update id, larger than the last by a random step,
as on Binance futures where ``U`` is not the previous ``u + 1``.

The order flow follows the structure of the real recordings (profiles.py):

- **The price** is a latent value (a random walk plus a mean-reverting swing, both
  scaled by the calm/volatile regime). A few times a second the quotes move to it
  (a *requote*): the market makers on the side being run over pull most of their
  orders, an informed market order sweeps what is left, new quotes form at the new
  price. The mid therefore moves in jumps of tens of ticks, as on Binance, and the
  spread widens inside the batch and closes by its end.
- **The touch** holds one large queue a side, kept near its size by a stream of
  small arrivals and cancels whose balance depends on the queue (queue-reactive):
  a short queue attracts orders, a long one loses them.
- **Market orders** arrive as a Hawkes process (each raises the rate of the next
  ones for a few hundred ms), with lognormal sizes; each fill at a price is split
  into the resting orders it meets, one trade each. A large one sweeps several
  levels and moves the mid; part of that move stays in the latent price.
- **The rest of the book** changes where the real one does (distance quantiles in
  bps): new levels, removed levels and resized ones, in shares that keep each
  distance band near its real number of levels.

The market knows nothing about sockets or wall clocks: :meth:`SymbolMarket.step`
advances it by ``step_ms`` of simulated time and returns what happened. The same
seed therefore gives the same stream, whatever the speed or the machine load. An
undo log of the last ``truth_window_ms`` lets :meth:`book_at` rebuild the book as it
was right after any recent update id (the tests' oracle).
"""

from __future__ import annotations

import logging
import math
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sortedcontainers import SortedDict

from config import SymbolSpec
from exchange_sim.profiles import MarketParams
from exchange_sim.regimes import Regime

log = logging.getLogger(__name__)

# One level change: (update id, is_bid, tick, old lots, new lots); 0 lots = no level.
Change = tuple[int, bool, int, int, int]
# One best-quote change: (update id, bid tick, bid lots, ask tick, ask lots).
TopOfBook = tuple[int, int, int, int, int]

_RESIZE_UP_SHARE = 0.45  # of resizes, the share that grows a level (the real books: 45 %)
_PULL_OPPOSITE = 0.95  # at a requote, how often the old quote on the other side is moved too
# Price moves keep emptying the bands near the touch: a band's count settles about 15 %
# below the level it is steered to, so it is steered that much above the measured one.
_BAND_SETTLE = 1.15
_SETTLE_WITHIN_BPS = 50.0


class TruthUnavailable(LookupError):
    """The requested update id is older than the undo log or newer than the book."""

    def __init__(self, message: str, too_old: bool) -> None:
        super().__init__(message)
        self.too_old = too_old


@dataclass(frozen=True, slots=True)
class Trade:
    """One aggregated trade: a market order's fill at one price, made of the fills
    of the resting orders it met (``fills``, lots each; trade ids first_id..last_id)."""

    agg_id: int
    tick: int
    lots: int
    first_id: int
    last_id: int
    seller_aggressor: bool  # Binance's "m": the buyer was the maker
    time_ms: int
    fills: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A forced order: an IOC limit order that ate the book (forceOrder)."""

    is_buy: bool
    lots: int  # ordered
    limit_tick: int  # its price (the bankruptcy price)
    filled_lots: int
    last_fill_lots: int  # the last aggregated trade's quantity
    avg_tick: float  # average fill price, ticks
    time_ms: int


@dataclass(slots=True)
class StepOutput:
    """Everything one engine batch did, in order."""

    time_ms: int
    changes: list[Change] = field(default_factory=list)
    tickers: list[TopOfBook] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)


@dataclass(slots=True)
class Withdrawal:
    """A liquidity withdrawal in force: no arrivals inside the gap, small ones near it."""

    bid_edge: int  # highest tick a bid may rest at
    ask_edge: int  # lowest tick an ask may rest at
    size_scale: float


def _poisson(rnd: Callable[[], float], lam: float) -> int:
    """A Poisson draw (Knuth's product of uniforms; ``lam`` stays small here: a few
    events per 50 ms batch at most)."""
    if lam <= 0.0:
        return 0
    limit = math.exp(-lam)
    k = 0
    p = rnd()
    while p > limit:
        k += 1
        p *= rnd()
    return k


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
        regime: Regime | None = None,
    ) -> None:
        from exchange_sim.contracts import params_for

        self.symbol = symbol.lower()
        self.spec = spec
        self.params = params or params_for(self.symbol)
        self.rng = rng
        self.now_ms = start_ms
        self.truth_window_ms = truth_window_ms
        # A private regime when none is shared (it draws from its own generator).
        self.regime = regime or Regime("auto", random.Random(rng.random()), start_ms)
        self.bids: SortedDict = SortedDict()  # tick -> lots; best bid is the last key
        self.asks: SortedDict = SortedDict()  # tick -> lots; best ask is the first key
        self._bid_keys = self.bids.keys()
        self._ask_keys = self.asks.keys()
        self.bb = 0  # best bid and ask ticks, kept by every change (_set)
        self.ba = 0
        # Lots that random cancels may not touch (walls, layers); market orders can.
        self.protected: dict[tuple[bool, int], int] = {}
        self.withdrawal: Withdrawal | None = None
        # Best-bid range the price is held in while an episode needs it (see pin()).
        self.pin_range: tuple[int, int] | None = None
        self.update_id = rng.randint(10**12, 5 * 10**12)
        self.agg_id = rng.randint(10**8, 10**9)
        self.trade_id = rng.randint(10**9, 5 * 10**9)
        self._undo: deque[tuple[int, int, list[Change]]] = deque()  # (time_ms, prev id, changes)
        self._out = StepOutput(start_ms)
        self._step_prev_id = self.update_id
        self.vol = 1.0  # the regime's multipliers in force this step
        self.activity = 1.0
        self._level = -1.0  # the regime level they were computed at
        self._setup_scales(mid_price)
        self._init_book(mid_price)
        self._last_top = (self.bb, self.bids[self.bb], self.ba, self.asks[self.ba])

    # ----------------------------------------------------------------- formatting
    def price_str(self, tick: int) -> str:
        return f"{tick * self.spec.tick_size:.{self.spec.price_decimals}f}"

    def qty_str(self, lots: int) -> str:
        return f"{lots * self.spec.lot_size:.{self.spec.qty_decimals}f}"

    # ------------------------------------------------------------------ queries
    @property
    def best_bid(self) -> tuple[int, int]:
        return self.bb, self.bids[self.bb]

    @property
    def best_ask(self) -> tuple[int, int]:
        return self.ba, self.asks[self.ba]

    def spread_ticks(self) -> int:
        return self.ba - self.bb

    def mid_ticks(self) -> float:
        return (self.bb + self.ba) / 2.0

    def top_levels(self, is_bid: bool, n: int) -> list[tuple[int, int]]:
        """The best ``n`` levels of one side, best first."""
        if is_bid:
            keys = self._bid_keys
            return [(k, self.bids[k]) for k in keys[-1 : -n - 1 : -1]]
        keys = self._ask_keys
        return [(k, self.asks[k]) for k in keys[:n]]

    def median_top_size(self, n: int = 20) -> int:
        """Median level size (lots) of the top ``n`` levels of both sides: the
        'typical size' the detectors of metrics.md compare against."""
        sizes = sorted(q for _, q in self.top_levels(True, n) + self.top_levels(False, n))
        return max(1, sizes[len(sizes) // 2])

    @property
    def usual_touch_lots(self) -> float:
        """The size a queue at the best price usually settles at (lots)."""
        return self._touch_lots

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
            if changes[-1][0] <= update_id:
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
        self.update_id += 1 + int(self.rng.random() * self.params.id_step_max)
        return self.update_id

    def _set(self, uid: int, is_bid: bool, tick: int, lots: int) -> None:
        if is_bid:
            book = self.bids
            old = book.get(tick, 0)
            if lots == old:
                return
            if lots > 0:
                book[tick] = lots
                if tick > self.bb:
                    self.bb = tick
            else:
                del book[tick]
                if tick == self.bb:
                    self.bb = self._bid_keys[-1]
        else:
            book = self.asks
            old = book.get(tick, 0)
            if lots == old:
                return
            if lots > 0:
                book[tick] = lots
                if tick < self.ba:
                    self.ba = tick
            else:
                del book[tick]
                if tick == self.ba:
                    self.ba = self._ask_keys[0]
        if self.protected:
            key = (is_bid, tick)
            prot = self.protected.get(key)
            if prot is not None and lots < prot:
                if lots > 0:
                    self.protected[key] = lots
                else:
                    del self.protected[key]
        self._out.changes.append((uid, is_bid, tick, old, lots))

    def _after_op(self, uid: int) -> None:
        bt = self.bb
        at = self.ba
        if bt >= at:  # an invariant, never a market state: fail loudly
            raise AssertionError(f"{self.symbol}: crossed book {bt} >= {at} at id {uid}")
        top = (bt, self.bids[bt], at, self.asks[at])
        if top != self._last_top:
            self._last_top = top
            self._out.tickers.append((uid, bt, top[1], at, top[3]))

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
        """Set a level to ``lots`` in one operation (cancels and withdrawal thinning)."""
        uid = self._new_id()
        self._set(uid, is_bid, tick, lots)
        self._after_op(uid)
        return uid

    def op_market(self, is_buy: bool, lots: int, limit_tick: int | None = None, through_protected: bool = True) -> int:
        """A market order: eats the opposite side from its best level, one aggTrade
        per price, each split into the resting orders it fills. ``limit_tick`` stops
        the sweep beyond that price; without ``through_protected`` it also stops at a
        price holding an episode's orders (the background flow leaves those to the
        episode, which decides when they are eaten)."""
        uid = self._new_id()
        book = self.asks if is_buy else self.bids
        rnd = self.rng.random
        gauss = self.rng.gauss
        maker_mu, maker_sigma = self._maker_mu, self.params.maker_sigma
        first_mu = maker_mu + math.log(self.params.first_maker_multiple)
        min_lots = self.min_lots
        remaining = lots
        while remaining > 0 and len(book) > self.params.min_levels:
            tick = self.ba if is_buy else self.bb
            if limit_tick is not None and (tick > limit_tick if is_buy else tick < limit_tick):
                break
            if not through_protected and self.protected and (not is_buy, tick) in self.protected:
                break
            have = book[tick]
            fill = min(have, remaining)
            remaining -= fill
            self._set(uid, not is_buy, tick, have - fill)
            # The resting orders at that price, one trade each (the last one partly).
            fills: list[int] = []
            left = fill
            mu = first_mu  # the order at the front of a queue is larger than those behind it
            while left > 0:
                if len(fills) >= 25:  # a huge sweep: the rest at that price in one print
                    fills.append(left)
                    break
                maker = max(min_lots, int(math.exp(mu + maker_sigma * gauss(0.0, 1.0)) + rnd()))
                mu = maker_mu
                part = maker if maker < left else left
                fills.append(part)
                left -= part
            first = self.trade_id + 1
            self.trade_id += len(fills)
            self.agg_id += 1
            self._out.trades.append(
                Trade(self.agg_id, tick, fill, first, self.trade_id, not is_buy, self.now_ms, tuple(fills))
            )
        self._after_op(uid)
        return uid

    def pin(self, low_bid: int | None, high_bid: int | None = None) -> None:
        """Hold the best bid within [low_bid, high_bid] (an episode that needs the price
        near its orders: a wall the price leans on, layers beside the touch); ``None``
        lets the price go again. Held, the latent price stays in the range and the
        quotes move within it."""
        if low_bid is None:
            self.pin_range = None
            return
        self.pin_range = (low_bid, high_bid if high_bid is not None else low_bid)
        lo, hi = self.pin_range
        self._set_fair(min(max(self.fair, lo + 0.5), hi + 0.5))

    # --------------------------------------------------------------- the flow
    def _setup_scales(self, mid_price: float) -> None:
        p = self.params
        spec = self.spec
        dt = p.step_ms / 1000.0
        self._dt = dt
        self.ticks_per_bps = mid_price / spec.tick_size / 1e4
        notional_lot = mid_price * spec.lot_size
        self._touch_lots = max(1.0, p.touch_notional / notional_lot)
        self._touch_at = [0, 0]  # the best bid and ask the queue sizes below belong to
        self._touch_usual = [self._touch_lots, self._touch_lots]
        # The smallest order the exchange accepts (Binance's minimum notional), in lots.
        self.min_lots = max(1, math.ceil(p.min_notional / notional_lot))
        self.min_rest_lots = max(1, math.ceil(p.min_rest_notional / notional_lot))
        self._touch_op_mu = math.log(max(1.0, 0.05 * self._touch_lots))
        self._quote_mu = math.log(max(1.0, 0.08 * self._touch_lots))
        self._taker_mu = math.log(max(0.5, p.taker_notional / notional_lot))
        self._maker_mu = math.log(max(0.5, p.maker_notional / notional_lot))
        self._walk_ticks = p.walk_bps * self.ticks_per_bps * math.sqrt(dt)
        self._swing_ticks = p.swing_bps * self.ticks_per_bps
        self._swing_decay = math.exp(-dt / p.swing_tau_s)
        self._swing_kick = math.sqrt(1.0 - self._swing_decay**2)
        # The trend: a steady drift (ticks per step) whose direction turns now and then,
        # so that the price runs for minutes one way, then the other.
        self._trend_ticks = p.trend_bps_per_min * self.ticks_per_bps * dt / 60.0
        self._trend_turn = dt / p.trend_turn_s
        self._trend_sign = 1.0
        self._book_ops_mu = math.log(max(1e-9, p.book_ops_per_s * dt)) - p.book_ops_sigma**2 / 2.0
        self._hawkes_decay = math.exp(-dt / p.hawkes_tau_s)
        self._hawkes_jump = p.hawkes_share / p.hawkes_tau_s  # excitation (1/s) per market order
        self._excite = 0.0
        # Where the book changes: inverse CDF of the distance from the touch, in log ticks.
        self._dist_cdf = [c for c, _ in p.distances]
        self._dist_log = [math.log(max(1.0, bps * self.ticks_per_bps)) for _, bps in p.distances]
        # Distance bands: first tick, last tick, target levels, log median size (lots).
        bands: list[tuple[int, int, float, float]] = []
        prev_hi = 0
        for lo_bps, hi_bps, levels, size in p.book:
            lo = max(prev_hi + 1, round(lo_bps * self.ticks_per_bps))
            hi = max(lo, round(hi_bps * self.ticks_per_bps))
            prev_hi = hi
            settle = _BAND_SETTLE if lo_bps < _SETTLE_WITHIN_BPS else 1.0
            target = min(levels * settle, 0.97 * (hi - lo + 1))
            bands.append((lo, hi, target, math.log(max(1.0, size / notional_lot))))
        self._bands = bands
        self._band_median = [math.exp(b[3]) for b in bands]
        self._band_lo = [b[0] for b in bands]
        self._counts: dict[int, int] | None = None  # levels per band and side, counted this step
        self._anchor = mid_price / spec.tick_size
        self._swing_z = 0.0
        self.fair = self._anchor

    def _set_fair(self, fair: float) -> None:
        """Move the latent price to ``fair`` (the swing keeps its value)."""
        self._anchor = fair - self._swing_z * self._swing_ticks * self.vol
        self.fair = fair

    def _advance_fair(self) -> None:
        gauss = self.rng.gauss
        if self.rng.random() < self._trend_turn:
            self._trend_sign = -self._trend_sign
        self._anchor += gauss(0.0, self._walk_ticks * self.vol) + self._trend_sign * self._trend_ticks * self.vol
        self._swing_z = self._swing_z * self._swing_decay + gauss(0.0, self._swing_kick)
        fair = self._anchor + self._swing_z * self._swing_ticks * self.vol
        pin = self.pin_range
        if pin is not None:
            lo, hi = pin
            held = min(max(fair, lo + 0.5), hi + 0.5)
            if held != fair:
                self._set_fair(held)
                return
        self.fair = fair

    def _draw_distance(self) -> int:
        """Ticks from the touch (>= 1) of one book change."""
        u = self.rng.random()
        cdf = self._dist_cdf
        i = bisect_right(cdf, u)
        if i >= len(cdf):
            i = len(cdf) - 1
        c0, c1 = cdf[i - 1], cdf[i]
        lg0, lg1 = self._dist_log[i - 1], self._dist_log[i]
        return max(1, int(math.exp(lg0 + (lg1 - lg0) * (u - c0) / (c1 - c0))))

    def _band_count(self, side: int, band: int) -> int:
        """Levels in distance band ``band`` of one side (0 bids, 1 asks), counted once
        per step and then kept up to date by the changes of the step."""
        counts = self._counts
        if counts is None:
            counts = self._counts = {}
        key = side * 64 + band
        n = counts.get(key)
        if n is None:
            lo, hi = self._bands[band][0], self._bands[band][1]
            if side == 0:
                n = self.bids.bisect_right(self.bb - lo) - self.bids.bisect_right(self.bb - hi - 1)
            else:
                n = self.asks.bisect_left(self.ba + hi + 1) - self.asks.bisect_left(self.ba + lo)
            counts[key] = n
        return n

    def _count_change(self, is_bid: bool, distance: int, delta: int) -> None:
        """A level appeared (+1) or went (-1) at ``distance`` from the touch: the count
        of its band follows, when it is known this step."""
        counts = self._counts
        if counts is None:
            return
        band = bisect_right(self._band_lo, distance) - 1
        if band < 0 or distance > self._bands[band][1]:
            return
        key = (0 if is_bid else 64) + band
        n = counts.get(key)
        if n is not None:
            counts[key] = max(0, n + delta)

    def _book_change(self) -> None:
        """One change away from the touch: a new level, a removed one or a resized one,
        at a distance drawn from the real books' and in shares that pull each distance
        band toward its real number of levels. Resizes pull each level toward its
        band's usual size: a large level grows less often than it shrinks."""
        rng = self.rng
        rnd = rng.random
        is_bid = rnd() < 0.5
        d = self._draw_distance()
        band = bisect_right(self._band_lo, d) - 1
        if band < 0:
            band = 0
        _lo, hi, target, size_mu = self._bands[band]
        have_n = self._band_count(0 if is_bid else 1, band)
        p = self.params
        p_new = p.new_share * min(6.0, ((target + 1.0) / (have_n + 1.0)) ** 2)
        p_del = p.delete_share * min(6.0, ((have_n + 1.0) / (target + 1.0)) ** 2)
        # New orders spread widely in size (capped at e**size_cap times the band's median);
        # a resize adds or takes a more usual amount.
        z = rng.gauss(0.0, 1.0)
        lots = max(self.min_rest_lots, int(math.exp(size_mu + min(p.size_sigma * z, p.size_cap)) + rnd()))
        w = self.withdrawal
        book = self.bids if is_bid else self.asks
        r = rnd() * max(1.0, p_new + p_del + 0.3)  # resizes keep a share however far off the band is
        if r < p_new:
            tick = self.bb - d if is_bid else self.ba + d
            if w is not None:
                if d < 80:  # near a withdrawn touch few orders arrive, and small ones
                    if rnd() > w.size_scale:
                        return
                    lots = max(1, round(lots * w.size_scale))
                tick = min(tick, w.bid_edge) if is_bid else max(tick, w.ask_edge)
            if tick <= 0:
                return
            if tick in book:  # taken: the order goes to a free price next to it when there is one
                step = 1 if is_bid else -1
                for shift in (step, -step, 2 * step):
                    if tick + shift not in book and (tick + shift < self.bb if is_bid else tick + shift > self.ba):
                        tick += shift
                        break
            if tick not in book:
                self._count_change(is_bid, self.bb - tick if is_bid else tick - self.ba, 1)
                self.op_add(is_bid, tick, lots)
                return
            # No free price near: the order joins a level, as a resize does.
            r = p_new + p_del
        # Remove or resize the level nearest to that distance (at or beyond it).
        if len(book) <= p.min_levels:
            return
        if is_bid:
            idx = book.bisect_right(self.bb - d) - 1
            tick = self._bid_keys[idx if idx >= 0 else 0]
            if tick == self.bb:
                return
        else:
            idx = book.bisect_left(self.ba + d)
            tick = self._ask_keys[idx if idx < len(book) else len(book) - 1]
            if tick == self.ba:
                return
        if w is not None and (self.bb - tick if is_bid else tick - self.ba) < 80:
            return  # what is left near a withdrawn touch stays: the gap must not widen without bound
        have = book[tick]
        prot = self.protected.get((is_bid, tick), 0) if self.protected else 0
        free = have - prot
        if free <= 0:
            return
        if r < p_new + p_del:
            if prot == 0:
                self._count_change(is_bid, self.bb - tick if is_bid else tick - self.ba, -1)
            self.op_set(is_bid, tick, prot)
        else:
            lots = max(1, int(math.exp(size_mu + min(p.resize_sigma * z, p.size_cap)) + rnd()))
            if rnd() * (1.0 + have / self._band_median[band]) < 2.0 * _RESIZE_UP_SHARE:
                self.op_set(is_bid, tick, have + lots)
            elif free > self.min_rest_lots:  # a partial cancel leaves a real order at least
                self.op_set(is_bid, tick, have - min(lots, free - self.min_rest_lots))

    def _touch_change(self) -> None:
        """A small arrival or cancel at the best price of one side: queue-reactive,
        arrivals win while the queue is short of its usual size, cancels past it."""
        if self.withdrawal is not None:
            return
        rng = self.rng
        rnd = rng.random
        is_bid = rnd() < 0.5
        tick = self.bb if is_bid else self.ba
        have = (self.bids if is_bid else self.asks)[tick]
        side = 0 if is_bid else 1
        if self._touch_at[side] != tick:
            # A new best price: the size its queue settles at differs from one price to the next.
            self._touch_at[side] = tick
            self._touch_usual[side] = self._touch_lots * math.exp(1.0 * rng.gauss(0.0, 1.0) - 0.3)
        usual = self._touch_usual[side]
        lots = max(1, int(math.exp(self._touch_op_mu + 1.3 * min(2.3, rng.gauss(0.0, 1.0))) + rnd()))
        if rnd() * (usual + have) < usual:
            self.op_add(is_bid, tick, lots)
            return
        prot = self.protected.get((is_bid, tick), 0) if self.protected else 0
        if have > 2 * usual:  # a queue far past its usual size sheds faster
            lots = int(lots * have / usual)
        cut = min(lots, have - prot - 1)
        if cut > 0:
            self.op_set(is_bid, tick, have - cut)

    def _taker(self) -> None:
        """One market order, leaning toward the side the latent price points to."""
        rng = self.rng
        rnd = rng.random
        mid = (self.bb + self.ba) / 2.0
        lean = math.tanh((self.fair - mid) / (1.0 + self._swing_ticks * self.vol))
        is_buy = rnd() < 0.5 + 0.3 * lean
        z = min(3.0, rng.gauss(0.0, 1.0))  # the largest orders of the recordings are near 3 sigma
        lots = max(self.min_lots, int(math.exp(self._taker_mu + self.params.taker_sigma * z) + rnd()))
        w = self.withdrawal
        if w is not None:  # a withdrawn book sees few market orders, and small ones
            if rnd() > 2.0 * w.size_scale:
                return
            lots = max(1, round(lots * w.size_scale))
        self.op_market(is_buy, lots, through_protected=False)
        moved = (self.bb + self.ba) / 2.0 - mid
        if moved and self.pin_range is None and w is None:
            self._set_fair(self.fair + self.params.impact_share * moved)
        self._excite += self._hawkes_jump

    def _clear_side(self, is_bid: bool, beyond: int, sweep_lots: int) -> None:
        """Bids above ``beyond`` (asks below it) go: most pulled by their owners, an
        informed market order sweeps part of the rest, the remainder is cancelled.
        Protected lots (an episode's orders) stay unless the sweep eats them."""
        rnd = self.rng.random
        book = self.bids if is_bid else self.asks
        zone = list(book.irange(beyond + 1, None)) if is_bid else list(book.irange(None, beyond - 1))
        protected = self.protected
        for tick in zone:
            have = book[tick]
            prot = protected.get((is_bid, tick), 0) if protected else 0
            keep = int((have - prot) * rnd() ** 3)
            keep = prot + (keep if keep >= self.min_rest_lots else 0)  # an owner pulls all or keeps a real order
            if keep < have:
                self.op_set(is_bid, tick, keep)
        if sweep_lots:
            self.op_market(not is_bid, sweep_lots, beyond + 1 if is_bid else beyond - 1, through_protected=False)
        for tick in list(book.irange(beyond + 1, None)) if is_bid else list(book.irange(None, beyond - 1)):
            prot = protected.get((is_bid, tick), 0) if protected else 0
            if book[tick] > prot:
                self.op_set(is_bid, tick, prot)

    def _quote(self, is_bid: bool, tick: int) -> None:
        """A market maker's new quote at ``tick`` (joining whatever rests there)."""
        rng = self.rng
        lots = max(self.min_lots, int(math.exp(self._quote_mu + rng.gauss(0.0, 1.0)) + rng.random()))
        self.op_add(is_bid, tick, lots)

    def _requote(self) -> None:
        """The quotes move to the latent price: the side being run over is cleared down
        to the new best, new quotes form at the new best bid and ask."""
        new_bid = math.floor(self.fair)
        bb, ba = self.bb, self.ba
        if new_bid == bb and ba == bb + 1:
            return
        rng = self.rng
        sweep = max(1, int(0.5 * math.exp(self._taker_mu + self.params.taker_sigma * rng.gauss(0.0, 1.0))))
        if new_bid < bb:
            self._clear_side(True, new_bid, sweep)
            if rng.random() < _PULL_OPPOSITE:
                self._pull_touch(False)
        elif new_bid + 1 > ba:
            self._clear_side(False, new_bid + 1, sweep)
            if rng.random() < _PULL_OPPOSITE:
                self._pull_touch(True)
        if self.bb < new_bid < self.ba:
            self._quote(True, new_bid)
        if self.bb < new_bid + 1 < self.ba:
            self._quote(False, new_bid + 1)

    def _pull_touch(self, is_bid: bool) -> None:
        """The owner of the old quote on the other side moves it: most of it goes."""
        tick = self.bb if is_bid else self.ba
        book = self.bids if is_bid else self.asks
        have = book[tick]
        prot = self.protected.get((is_bid, tick), 0) if self.protected else 0
        keep = max(self.min_rest_lots, prot + int((have - prot) * self.rng.random() ** 4))
        if keep < have:
            self.op_set(is_bid, tick, keep)

    def _close_spread(self) -> None:
        """A spread left wider than a tick at the end of a batch is closed by a new
        quote on the side the latent price points to (market makers compete for it)."""
        if self.withdrawal is not None or self.ba - self.bb <= 1 or self.rng.random() > 0.97:
            return
        if self.fair >= (self.bb + self.ba) / 2.0:
            self._quote(True, self.ba - 1)
        else:
            self._quote(False, self.bb + 1)

    def _liquidation(self) -> None:
        """A forced order: an IOC limit order, larger than usual, priced at 0.5 % through
        the book, on the side the price has been running to."""
        rng = self.rng
        is_buy = self.fair > self._anchor if rng.random() < 0.7 else rng.random() < 0.5
        lots = max(1, int(math.exp(self._taker_mu + 0.7 + rng.gauss(0.0, 1.0))))
        through = max(2, round(50 * self.ticks_per_bps))
        limit = self.ba + through if is_buy else max(1, self.bb - through)
        start = len(self._out.trades)
        self.op_market(is_buy, lots, limit, through_protected=False)
        fills = self._out.trades[start:]
        filled = sum(t.lots for t in fills)
        avg = sum(t.tick * t.lots for t in fills) / filled if filled else float(limit)
        last = fills[-1].lots if fills else 0
        self._out.liquidations.append(Liquidation(is_buy, lots, limit, filled, last, avg, self.now_ms))
        self._excite += self._hawkes_jump

    def begin_step(self) -> None:
        """Start a new engine batch at the next simulated time step."""
        self.now_ms += self.params.step_ms
        self._out = StepOutput(self.now_ms)
        self._step_prev_id = self.update_id
        self._counts = None
        level = self.regime.level(self.now_ms)
        if level != self._level:
            self._level = level
            self.vol, self.activity = self.params.multipliers(level)

    def run_random_flow(self) -> None:
        """The batch's order flow: book changes, touch churn, market orders, requotes."""
        p = self.params
        rng = self.rng
        rnd = rng.random
        act = self.activity
        dt = self._dt
        self._advance_fair()
        n_book = int(math.exp(self._book_ops_mu + p.book_ops_sigma * rng.gauss(0.0, 1.0)) * act + rnd())
        n_touch = _poisson(rnd, p.touch_ops_per_s * act * dt)
        rate = p.takers_per_s * (1.0 - p.hawkes_share) * act + self._excite
        n_takers = _poisson(rnd, rate * dt)
        self._excite *= self._hawkes_decay
        first = n_book // 2
        for _ in range(first):
            self._book_change()
        if self.withdrawal is None:
            drift = abs(self.fair - 0.5 - self.bb)
            if rnd() < p.requotes_per_s * act * dt or drift > 4.0 * (1.0 + self._swing_ticks * self.vol):
                self._requote()
        for _ in range(n_touch):
            self._touch_change()
        for _ in range(n_takers):
            self._taker()
        if rnd() < p.liquidations_per_min / 60.0 * act * self.vol * dt:
            self._liquidation()
        for _ in range(n_book - first):
            self._book_change()
        self._close_spread()

    def end_step(self) -> StepOutput:
        """Close the batch: record it in the undo log and hand it out."""
        out = self._out
        if out.changes:
            self._undo.append((out.time_ms, self._step_prev_id, out.changes))
        horizon = self.now_ms - self.truth_window_ms
        undo = self._undo
        while undo and undo[0][0] < horizon:
            undo.popleft()
        return out

    def step(self) -> StepOutput:
        """One engine batch of order flow (episodes are driven by the caller)."""
        self.begin_step()
        self.run_random_flow()
        return self.end_step()

    # ------------------------------------------------------------------- setup
    def _init_book(self, mid_price: float) -> None:
        """Levels at their real distances and sizes, a touch queue a side."""
        rng = self.rng
        sigma = 0.75 * self.params.size_sigma  # resting sizes spread less than the orders that make them
        best_bid = max(2, round(mid_price / self.spec.tick_size))
        best_ask = best_bid + 1
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for lo, hi, target, size_mu in self._bands:
            count = int(target) + (rng.random() < target - int(target))
            for side, sign, base in ((bids, -1, best_bid), (asks, 1, best_ask)):
                for distance in rng.sample(range(lo, hi + 1), min(count, hi - lo + 1)):
                    tick = base + sign * distance
                    if tick > 0:
                        side[tick] = max(self.min_lots,
                                         int(math.exp(size_mu + sigma * rng.gauss(0.0, 1.0)) + rng.random()))
        bids[best_bid] = max(1, round(self._touch_lots))
        asks[best_ask] = max(1, round(self._touch_lots))
        self.bids.update(bids)
        self.asks.update(asks)
        self.bb = best_bid
        self.ba = best_ask
        self._anchor = self.fair = best_bid + 0.5
        log.debug("%s: book initialised with %d bids, %d asks", self.symbol, len(self.bids), len(self.asks))

    # ------------------------------------------------------------- scripted
    def op_force_order(self, is_buy: bool, lots: int, through_ticks: int) -> Liquidation:
        """A forced order now (a scripted liquidation cascade): an IOC limit order
        ``through_ticks`` beyond the touch that eats the book, published on forceOrder
        like the random ones."""
        limit = self.ba + through_ticks if is_buy else max(1, self.bb - through_ticks)
        start = len(self._out.trades)
        self.op_market(is_buy, lots, limit, through_protected=False)
        fills = self._out.trades[start:]
        filled = sum(t.lots for t in fills)
        avg = sum(t.tick * t.lots for t in fills) / filled if filled else float(limit)
        liq = Liquidation(is_buy, lots, limit, filled, fills[-1].lots if fills else 0, avg, self.now_ms)
        self._out.liquidations.append(liq)
        return liq
