"""Scripted liquidity episodes with ground-truth labels.

Each episode is built to trip one detector of ../shared/docs/metrics.md with a
margin, and is labelled (symbol, kind, side, prices, start/end in exchange ms) so
detectors can be scored against it:

- ``wall``: one order >= 8x the typical top-20 level size, resting 8-20 s at one
  price a few ticks behind the touch, then pulled or eaten by market orders.
- ``layering``: 5-7 adjacent levels at >= 12x typical size that jump to new
  prices about every second for several seconds, then vanish.
- ``withdrawal``: top-20 depth falls by > 70 % and the spread widens to > 4x its
  normal value for several seconds, then the liquidity comes back.
- ``liquidation_burst`` (off unless asked for: ``SimConfig.episode_kinds``): a cascade
  of forced orders on one side; the market makers of that side pull most of their
  orders near the touch, the forced orders eat what is left, the book stays thin a
  moment, then refills over several seconds. Its truth is measured on the book at
  every engine batch: the depth within 10 and 25 bps of mid on the side hit before
  the first forced order, its minimum, and when it was back to 90 % of before.

One episode at a time per symbol; the scheduler waits for a quiet gap between them
so the detectors' rolling baselines (30 s median, 15 s means) recover.

The market around an episode keeps moving. An episode that needs the price near its
orders holds it there (:meth:`SymbolMarket.pin`): a wall is leant on (the price
stays on its side, within a few levels of it), layers stay beside the touch, and a
withdrawal freezes the price while the book is empty. The hold ends with the episode.

Kinds are pluggable: a kind is an :class:`EpisodeRun` subclass (``step`` and ``abort``) and a
function that starts it with random parameters, registered with :func:`register`
under a name; its cadence comes from ``SimConfig.<name>_every_s`` when that field
exists, else from ``SimConfig.episode_every_s[name]`` (60-120 s by default).
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exchange_sim.market import SymbolMarket, Withdrawal
from exchange_sim.settings import SimConfig

log = logging.getLogger(__name__)

DEFAULT_EVERY_S = (60.0, 120.0)

# The detectors compare sizes with the median of the top-20 levels of both sides over
# the 1 Hz samples of the last 30 s. One sample's median swings about 2x around it, so
# episodes are sized against the larger of the two, never against a lucky dip.
MEDIAN_WINDOW_MS = 30_000
MEDIAN_SAMPLE_MS = 1_000
# A wall the background flow eats below this share of its size is over ("eaten").
WALL_EATEN_SHARE = 0.4
# How far (bps) the price may wander from a wall or from layers while they rest: they
# stay within the first levels of the book, where the detectors look.
HOLD_BPS = 0.4
# Episode orders against the usual touch queue: a wall outweighs it, each layer is a
# good share of it (else the busy market's large orders eat them at once).
WALL_OVER_TOUCH = 1.5
LAYER_OVER_TOUCH = 0.4


@dataclass(slots=True)
class Episode:
    """The label of one episode; ``end_ms`` is None while it runs."""

    id: int
    symbol: str
    kind: str
    side: str  # "bid" | "ask" | "both"
    prices: list[str]
    start_ms: int
    end_ms: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "symbol": self.symbol,
            "kind": self.kind,
            "side": self.side,
            "prices": list(self.prices),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "details": dict(self.details),
        }


# A liquidation burst's refill is judged at this share of the depth before it (the
# client's default liquidation_refill_share).
REFILL_SHARE = 0.9
RESPONSE_BPS = (10.0, 25.0)


def depth_within(market: SymbolMarket, is_bid: bool, bps: float) -> float:
    """Quantity (base asset) of one side within ``bps`` of mid, edge included: the
    client's depth band (features/basic_metrics.py) on the exchange's own book."""
    mid = market.mid_ticks()
    width = bps / 1e4 * mid + 1e-6
    if is_bid:
        lots = sum(market.bids[t] for t in market.bids.irange(math.ceil(mid - width), None))
    else:
        lots = sum(market.asks[t] for t in market.asks.irange(None, math.floor(mid + width)))
    return lots * market.spec.lot_size


class EpisodeRun:
    """One running episode of some kind: ``step`` drives it once per engine batch and
    returns True when it is over (the label's ``end_ms`` is then set, unless the run
    set it earlier); ``abort`` removes what it placed."""

    def __init__(self, market: SymbolMarket, rng: random.Random, label: Episode) -> None:
        self.market = market
        self.rng = rng
        self.label = label

    def step(self, now_ms: int) -> bool:
        raise NotImplementedError

    def abort(self) -> None:
        """Remove what the episode placed, right now."""
        raise NotImplementedError


class WallRun(EpisodeRun):
    def __init__(
        self,
        market: SymbolMarket,
        rng: random.Random,
        label: Episode,
        is_bid: bool,
        distance_ticks: int,
        multiple: float,
        duration_ms: int,
        end_mode: str,
        median: int | None = None,
    ) -> None:
        super().__init__(market, rng, label)
        self.is_bid = is_bid
        median = max(median or 0, market.median_top_size(20))
        best = market.best_bid[0] if is_bid else market.best_ask[0]
        self.tick = best - distance_ticks if is_bid else best + distance_ticks
        # Larger than the touch queue in front of it too, or the first large market
        # order would eat it: a wall that stands is what the detectors look for.
        self.lots = max(1, round(multiple * median), round(WALL_OVER_TOUCH * market.usual_touch_lots))
        multiple = self.lots / median
        self.end_at = label.start_ms + duration_ms
        self.end_mode = end_mode
        self.eating = False
        market.op_add(is_bid, self.tick, self.lots, protect=True)
        # The price leans on the wall: it stays on its side, within a few levels of it.
        span = max(3, round(HOLD_BPS * market.ticks_per_bps))
        if is_bid:
            market.pin(self.tick + 1, self.tick + 1 + span)
        else:
            market.pin(self.tick - 2 - span, self.tick - 2)
        label.prices = [market.price_str(self.tick)]
        label.details.update(
            qty=market.qty_str(self.lots),
            multiple_of_median=multiple,
            median_top20_qty=market.qty_str(median),
            distance_ticks=distance_ticks,
            planned_end_ms=self.end_at,
            end_mode=end_mode,
        )

    def _remaining(self) -> int:
        return self.market.protected.get((self.is_bid, self.tick), 0)

    def step(self, now_ms: int) -> bool:
        remaining = self._remaining()
        if remaining == 0:
            self.label.details["end_reason"] = "eaten"
            return True
        if not self.eating and remaining < WALL_EATEN_SHARE * self.lots:
            # The background flow ate most of the wall before its planned end: it is no
            # longer the wall the label describes. The owner cancels the rest.
            self.market.op_remove(self.is_bid, self.tick, remaining)
            self.label.details["end_reason"] = "eaten"
            self.label.details["eaten_by"] = "flow"
            return True
        if not self.eating and now_ms >= self.end_at:
            if self.end_mode == "pulled":
                self.market.op_remove(self.is_bid, self.tick, remaining)
                self.label.details["end_reason"] = "pulled"
                return True
            self.eating = True
        if self.eating:
            # Market orders from the other side sweep to the wall and eat it in ~4 steps
            # (the orders queued at its price before it, those that joined it, then it).
            book = self.market.bids if self.is_bid else self.market.asks
            ahead = sum(q for t, q in self.market.top_levels(self.is_bid, 40) if t != self.tick and (
                t > self.tick if self.is_bid else t < self.tick))
            joined = book.get(self.tick, 0) - remaining
            size = ahead + joined + max(1, remaining // 3 + 1)
            self.market.op_market(not self.is_bid, size, limit_tick=self.tick)
        return False

    def abort(self) -> None:
        remaining = self._remaining()
        if remaining:
            self.market.op_remove(self.is_bid, self.tick, remaining)
        self.label.details["end_reason"] = "pulled"


class LayeringRun(EpisodeRun):
    def __init__(
        self,
        market: SymbolMarket,
        rng: random.Random,
        label: Episode,
        is_bid: bool,
        levels: int,
        multiple: float,
        duration_ms: int,
        median: int | None = None,
    ) -> None:
        super().__init__(market, rng, label)
        self.is_bid = is_bid
        self.levels = levels
        median = max(median or 0, market.median_top_size(20))
        self.lots = max(1, round(multiple * median), round(LAYER_OVER_TOUCH * market.usual_touch_lots))
        multiple = self.lots / median
        self.offset = rng.randint(1, 3)
        self.end_at = label.start_ms + duration_ms
        self.ticks: list[int] = []
        self.next_move = label.start_ms
        self.moves = 0
        self.all_prices: set[int] = set()
        # The layers stay beside the touch: the price is held near where they start.
        span = max(2, round(HOLD_BPS * market.ticks_per_bps / 2))
        best = market.best_bid[0]
        market.pin(best - span, best + span)
        label.details.update(
            levels=levels,
            qty_each=market.qty_str(self.lots),
            multiple_of_median=multiple,
            median_top20_qty=market.qty_str(median),
            planned_end_ms=self.end_at,
        )

    def _band(self, offset: int) -> list[int]:
        best = self.market.best_bid[0] if self.is_bid else self.market.best_ask[0]
        sign = -1 if self.is_bid else 1
        return [best + sign * (offset + i) for i in range(self.levels)]

    def _clear(self) -> None:
        for tick in self.ticks:
            left = self.market.protected.get((self.is_bid, tick), 0)
            if left:
                self.market.op_remove(self.is_bid, tick, left)
        self.ticks = []

    def step(self, now_ms: int) -> bool:
        if now_ms >= self.end_at:
            self._clear()
            self.label.details["moves"] = self.moves
            self.label.prices = [self.market.price_str(t) for t in sorted(self.all_prices)]
            return True
        if now_ms >= self.next_move:
            old = set(self.ticks)
            # Two bands, n ticks apart: pick the one sharing fewest prices with the last.
            bands = [self._band(self.offset), self._band(self.offset + self.levels)]
            band = min(bands, key=lambda b: (len(old.intersection(b)), bands.index(b) == self.moves % 2))
            self._clear()
            for tick in band:
                self.market.op_add(self.is_bid, tick, self.lots, protect=True)
            self.ticks = band
            self.all_prices.update(band)
            self.label.prices = [self.market.price_str(t) for t in sorted(self.all_prices)]
            self.moves += 1
            self.next_move = now_ms + self.rng.randint(800, 1200)
        return False

    def abort(self) -> None:
        self._clear()


class WithdrawalRun(EpisodeRun):
    THIN_TICKS = 80  # levels this far beyond the gap edges are thinned...
    THIN_LEVELS = 60  # ... and at least this many levels beyond each edge
    KEEP_SHARE = 0.12

    def __init__(
        self, market: SymbolMarket, rng: random.Random, label: Episode, gap_ticks: int, duration_ms: int
    ) -> None:
        super().__init__(market, rng, label)
        bb = market.best_bid[0]
        ba = market.best_ask[0]
        depth_before = market.top_depth(20)
        spread_before = ba - bb
        bid_edge = bb - gap_ticks // 2
        ask_edge = bid_edge + gap_ticks
        market.withdrawal = Withdrawal(bid_edge, ask_edge, size_scale=0.1)
        self.removed: list[tuple[bool, int, int]] = []
        for is_bid, book in ((True, market.bids), (False, market.asks)):
            if is_bid:
                beyond = market.top_levels(True, self.THIN_LEVELS + 20)
                low = min(bid_edge - self.THIN_TICKS, beyond[-1][0])
                ticks = list(book.irange(low, None))
            else:
                beyond = market.top_levels(False, self.THIN_LEVELS + 20)
                high = max(ask_edge + self.THIN_TICKS, beyond[-1][0])
                ticks = list(book.irange(None, high))
            for tick in ticks:
                have = book[tick]
                inside = tick > bid_edge if is_bid else tick < ask_edge
                keep = 0 if inside else max(1, round(have * self.KEEP_SHARE))
                if keep < have:
                    market.op_set(is_bid, tick, keep)
                    self.removed.append((is_bid, tick, have - keep))
        self.end_at = label.start_ms + duration_ms
        self.restoring = False
        market.pin(market.best_bid[0])  # the price waits while the book is empty
        label.prices = [market.price_str(bid_edge), market.price_str(ask_edge)]
        label.details.update(
            spread_ticks_before=spread_before,
            spread_ticks_after=market.spread_ticks(),
            top20_depth_before=market.qty_str(depth_before),
            top20_depth_after=market.qty_str(market.top_depth(20)),
            planned_end_ms=self.end_at,
        )

    def step(self, now_ms: int) -> bool:
        if not self.restoring:
            if now_ms < self.end_at:
                return False
            self.market.withdrawal = None
            self.restoring = True
            self.label.end_ms = now_ms  # the withdrawn span ends when liquidity starts returning
            self.rng.shuffle(self.removed)
            self.chunk = max(1, len(self.removed) // 20 + 1)
            self.label.details["end_reason"] = "recovered"
        # The liquidity returns over about a second, where it can rest without crossing.
        batch, self.removed = self.removed[: self.chunk], self.removed[self.chunk :]
        for is_bid, tick, lots in batch:
            if is_bid and tick < self.market.best_ask[0] or not is_bid and tick > self.market.best_bid[0]:
                self.market.op_add(is_bid, tick, lots)
        return not self.removed

    def abort(self) -> None:
        self.market.withdrawal = None


class LiquidationBurstRun(EpisodeRun):
    """Forced orders on one side eat a thinned book, then the side refills."""

    THIN_BPS = 30.0  # the makers of the hit side pull within this distance of mid...
    THROUGH_BPS = 60.0  # ... and each forced order may sweep this far

    def __init__(
        self, market: SymbolMarket, rng: random.Random, label: Episode, sell: bool, orders: int, keep_share: float,
        eat_share: float, spacing_ms: tuple[int, int], hold_ms: int, refill_ms: int,
    ) -> None:
        super().__init__(market, rng, label)
        self.sell = sell  # the forced orders sell: longs liquidated, the bids are hit
        self.is_bid = sell
        self.before = {b: depth_within(market, self.is_bid, b) for b in RESPONSE_BPS}
        book = market.bids if self.is_bid else market.asks
        mid = market.mid_ticks()
        width = self.THIN_BPS / 1e4 * mid
        ticks = list(book.irange(math.ceil(mid - width), None)) if self.is_bid else \
            list(book.irange(None, math.floor(mid + width)))
        self.profile = {t: book[t] for t in ticks}  # the side as it was: what the refill restores
        self.series: list[tuple[int, float, float]] = []  # (ms, depth within 10 bps, within 25 bps)
        self.region = (min(ticks), max(ticks)) if ticks else (0, -1)
        self.cap: dict[int, int] = {}  # what the makers leave at each price while the cascade lasts
        for tick in ticks:
            keep = max(1, round(book[tick] * keep_share))
            self.cap[tick] = keep
            if keep < book[tick]:
                market.op_set(self.is_bid, tick, keep)
        remaining = sum(book[t] for t in ticks if t in book)
        self.sizes = [max(1, round(remaining * eat_share / orders * rng.uniform(0.6, 1.4))) for _ in range(orders)]
        self.spacing_ms = spacing_ms
        self.hold_ms = hold_ms
        self.refill_ms = refill_ms
        self.through = max(2, round(self.THROUGH_BPS * market.ticks_per_bps))
        self.next_order_ms = label.start_ms
        self.refill_from: int | None = None
        self.refill_until: int | None = None
        self.low = dict(self.before)
        self.low_ms = {b: label.start_ms for b in RESPONSE_BPS}
        self.dipped = {b: False for b in RESPONSE_BPS}
        self.refill_s: dict[float, float | None] = {b: None for b in RESPONSE_BPS}
        self.orders: list[dict[str, Any]] = []
        bb, ba = market.best_bid[0], market.best_ask[0]
        market.withdrawal = Withdrawal(bb, ba, size_scale=0.1)  # the market steps back while it lasts
        market.pin(bb)
        label.details.update(
            liquidation_side="SELL" if sell else "BUY",
            keep_share=keep_share,
            planned_orders=orders,
            refill_share=REFILL_SHARE,
            **{f"depth_before_{b:g}bps": self.before[b] for b in RESPONSE_BPS},
            # The side as it stood (ticks, lots) within 30 bps of this mid (ticks): a client
            # whose snapshot held fewer levels knows only part of it.
            mid_ticks_before=mid,
            levels_before=sorted(self.profile.items()),
        )
        self._fire(label.start_ms)

    def _fire(self, now_ms: int) -> None:
        m = self.market
        liq = m.op_force_order(not self.sell, self.sizes.pop(0), self.through)
        book = m.bids if self.is_bid else m.asks
        for tick in self.cap:  # what the forced order ate stays eaten
            self.cap[tick] = min(self.cap[tick], book.get(tick, 0))
        avg = liq.avg_tick * m.spec.tick_size
        qty = liq.filled_lots * m.spec.lot_size
        self.orders.append({"T": now_ms, "qty": qty, "avg_price": avg, "notional": qty * avg})
        self.label.prices = [m.price_str(round(o["avg_price"] / m.spec.tick_size)) for o in self.orders]
        self.next_order_ms = now_ms + self.rng.randint(*self.spacing_ms)

    def _keep_thin(self) -> None:
        """While the cascade lasts the makers of the hit side stay away: what arrives
        near the touch is pulled again (no level above what they left)."""
        m = self.market
        book = m.bids if self.is_bid else m.asks
        lo, hi = self.region
        for tick in list(book.irange(lo, hi)):
            cap = self.cap.get(tick, 0)
            if book[tick] > cap:
                m.op_set(self.is_bid, tick, cap)

    def _measure(self, now_ms: int) -> None:
        depths = {b: depth_within(self.market, self.is_bid, b) for b in RESPONSE_BPS}
        self.series.append((now_ms, depths[RESPONSE_BPS[0]], depths[RESPONSE_BPS[1]]))
        for b in RESPONSE_BPS:
            depth = depths[b]
            if depth < self.low[b]:
                self.low[b], self.low_ms[b] = depth, now_ms
            if self.refill_s[b] is not None:
                continue
            if depth < REFILL_SHARE * self.before[b]:
                self.dipped[b] = True
            elif self.dipped[b]:
                self.refill_s[b] = (now_ms - self.label.start_ms) / 1000.0

    def _truth(self) -> None:
        d = self.label.details
        d["forced_orders"] = list(self.orders)
        d["depth_series"] = list(self.series)
        d["qty"] = sum(o["qty"] for o in self.orders)
        d["notional"] = sum(o["notional"] for o in self.orders)
        for b in RESPONSE_BPS:
            before = self.before[b]
            d[f"depth_min_{b:g}bps"] = self.low[b]
            d[f"depth_min_ms_{b:g}bps"] = self.low_ms[b]
            d[f"drain_pct_{b:g}bps"] = (before - self.low[b]) / before * 100.0 if before > 0 else None
            d[f"refill_s_{b:g}bps"] = self.refill_s[b]
            d[f"depth_after_{b:g}bps"] = depth_within(self.market, self.is_bid, b)

    def step(self, now_ms: int) -> bool:
        self._measure(now_ms)
        if self.sizes:
            self._keep_thin()
            if now_ms >= self.next_order_ms:
                self._fire(now_ms)
            return False
        if self.refill_from is None:
            self.refill_from = now_ms + self.hold_ms
            self.refill_until = self.refill_from + self.refill_ms
        if now_ms < self.refill_from:
            self._keep_thin()
            return False
        assert self.refill_until is not None
        # The makers come back from the far side of the cascade toward where the touch
        # was: a growing share of the side's levels as they stood, deepest first, so the
        # price climbs back as the book refills (where it does not cross the other side).
        share = min(1.0, (now_ms - self.refill_from) / max(1, self.refill_ms))
        m = self.market
        book = m.bids if self.is_bid else m.asks
        order = sorted(self.profile, reverse=not self.is_bid)  # deepest first
        for tick in order[: math.ceil(share * len(order))]:
            if (tick >= m.best_ask[0]) if self.is_bid else (tick <= m.best_bid[0]):
                continue
            want, have = self.profile[tick], book.get(tick, 0)
            if want > have:
                m.op_add(self.is_bid, tick, want - have)
        if now_ms < self.refill_until:
            return False
        m.withdrawal = None
        done = all(self.refill_s[b] is not None or not self.dipped[b] for b in RESPONSE_BPS)
        if done or now_ms >= self.refill_until + 10_000:
            self._truth()
            self.label.details["end_reason"] = "refilled" if done else "not_refilled"
            return True
        return False

    def abort(self) -> None:
        self.market.withdrawal = None
        self._truth()


Starter = Callable[["EpisodeScheduler"], EpisodeRun]


@dataclass(frozen=True, slots=True)
class EpisodeKind:
    """A registered kind of episode: its name (the label's ``kind``) and how to start
    one now with random parameters (the scheduler's generator, market and label)."""

    name: str
    start: Starter
    default: bool = True  # run when SimConfig.episode_kinds is None; else only when named there


EPISODE_KINDS: dict[str, EpisodeKind] = {}


def register(name: str, start: Starter, default: bool = True) -> EpisodeKind:
    """Make ``name`` an episode kind the scheduler starts (in registration order);
    ``default=False``: only when ``SimConfig.episode_kinds`` names it."""
    kind = EpisodeKind(name, start, default)
    EPISODE_KINDS[name] = kind
    return kind


def every_s(cfg: SimConfig, name: str) -> tuple[float, float]:
    """Seconds between two episodes of kind ``name`` for ``cfg``."""
    field_value = getattr(cfg, f"{name}_every_s", None)
    if isinstance(field_value, tuple):
        return field_value
    return tuple(cfg.episode_every_s.get(name, DEFAULT_EVERY_S))  # type: ignore[return-value]


def _start_wall(s: EpisodeScheduler) -> EpisodeRun:
    rng = s.rng
    is_bid = rng.random() < 0.5
    distance, multiple, duration_s = rng.randint(1, 6), rng.uniform(10.0, 16.0), rng.uniform(10.0, 20.0)
    end_mode = "pulled" if rng.random() < 0.6 else "eaten"
    label = s.new_label("wall", "bid" if is_bid else "ask")
    return WallRun(s.market, rng, label, is_bid, distance, multiple, int(duration_s * 1000), end_mode,
                   median=s.typical_size())


def _start_layering(s: EpisodeScheduler) -> EpisodeRun:
    rng = s.rng
    is_bid = rng.random() < 0.5
    label = s.new_label("layering", "bid" if is_bid else "ask")
    return LayeringRun(s.market, rng, label, is_bid, rng.randint(5, 7), rng.uniform(12.0, 18.0),
                       int(rng.uniform(6.0, 10.0) * 1000), median=s.typical_size())


def _start_withdrawal(s: EpisodeScheduler) -> EpisodeRun:
    rng = s.rng
    label = s.new_label("withdrawal", "both")
    return WithdrawalRun(s.market, rng, label, rng.randint(8, 14), int(rng.uniform(5.0, 8.0) * 1000))


def _start_liquidation_burst(s: EpisodeScheduler) -> EpisodeRun:
    rng = s.rng
    sell = rng.random() < 0.5
    label = s.new_label("liquidation_burst", "bid" if sell else "ask")
    return LiquidationBurstRun(s.market, rng, label, sell, orders=rng.randint(4, 7),
                               keep_share=rng.uniform(0.3, 0.6), eat_share=rng.uniform(0.1, 0.25),
                               spacing_ms=(1050, 1400), hold_ms=rng.randint(1500, 3000),
                               refill_ms=rng.randint(4000, 10000))


register("wall", _start_wall)
register("layering", _start_layering)
register("withdrawal", _start_withdrawal)
register("liquidation_burst", _start_liquidation_burst, default=False)
KINDS = tuple(EPISODE_KINDS)
DEFAULT_KINDS = tuple(k for k, v in EPISODE_KINDS.items() if v.default)


class EpisodeScheduler:
    """Starts, drives and labels the episodes of one symbol."""

    def __init__(self, market: SymbolMarket, cfg: SimConfig, rng: random.Random) -> None:
        self.market = market
        self.cfg = cfg
        self.rng = rng
        self.labels: list[Episode] = []
        self.active: EpisodeRun | None = None
        self._label_end_pending = False
        self.quiet_until = market.now_ms
        self.kinds = [k for k, v in EPISODE_KINDS.items()
                      if (v.default if cfg.episode_kinds is None else k in cfg.episode_kinds)]
        self.every = {k: every_s(cfg, k) for k in self.kinds}
        now = market.now_ms
        self.next_due = {k: now + int(rng.uniform(*cfg.first_episode_after_s) * 1000) for k in self.kinds}
        self._samples: deque[tuple[int, list[int]]] = deque()  # 1 Hz top-20 sizes, last 30 s
        self._next_sample = now

    def _sample(self, now: int) -> None:
        if now < self._next_sample:
            return
        self._next_sample = now - now % MEDIAN_SAMPLE_MS + MEDIAN_SAMPLE_MS
        m = self.market
        self._samples.append((now, [q for _, q in m.top_levels(True, 20)] + [q for _, q in m.top_levels(False, 20)]))
        while self._samples and self._samples[0][0] <= now - MEDIAN_WINDOW_MS:
            self._samples.popleft()

    def typical_size(self) -> int:
        """Median top-20 level size (lots) over the 1 Hz samples of the last 30 s: the
        detectors' rolling median, as the scheduler sees it (at least one sample)."""
        sizes = sorted(q for _, qs in self._samples for q in qs)
        return max(1, sizes[len(sizes) // 2]) if sizes else self.market.median_top_size(20)

    def new_label(self, kind: str, side: str) -> Episode:
        """A new label of this symbol, starting now (an episode kind's first step)."""
        label = Episode(len(self.labels) + 1, self.market.symbol, kind, side, [], self.market.now_ms)
        self.labels.append(label)
        return label

    def _finish(self, run: EpisodeRun) -> None:
        now = self.market.now_ms
        if run.label.end_ms is None:
            run.label.end_ms = now
        self.market.pin(None)
        self.active = None
        self.quiet_until = now + int(self.cfg.episode_gap_s * 1000)
        lo, hi = self.every[run.label.kind]
        self.next_due[run.label.kind] = now + int(self.rng.uniform(lo, hi) * 1000)
        log.info("%s: %s episode %d ended (%s)", self.market.symbol, run.label.kind, run.label.id,
                 run.label.details.get("end_reason", "done"))

    def on_step(self) -> None:
        """Drive the running episode or start a due one (call once per engine batch)."""
        now = self.market.now_ms
        self._sample(now)
        if self.active is not None:
            run = self.active
            done = run.step(now)
            if done:
                self._finish(run)
            return
        if not self.cfg.episodes or now < self.quiet_until or not self.next_due:
            return
        first = min(self.next_due, key=self.next_due.__getitem__)  # the earliest due (first registered on ties)
        if self.next_due[first] <= now:
            self.start(first)

    def start(self, kind: str) -> Episode:
        """Start an episode of ``kind`` now with random parameters."""
        registered = EPISODE_KINDS.get(kind)
        if registered is None:
            raise ValueError(f"unknown episode kind {kind!r}; known: {', '.join(EPISODE_KINDS)}")
        return self._begin(registered.start(self))

    def _begin(self, run: EpisodeRun) -> Episode:
        self.active = run
        log.info("%s: %s episode %d started at %s", self.market.symbol, run.label.kind, run.label.id,
                 run.label.prices)
        return run.label

    def start_wall(
        self, is_bid: bool, distance_ticks: int, multiple: float, duration_s: float, end_mode: str = "pulled"
    ) -> Episode:
        """Place a wall now (ends a running episode first: episodes never overlap)."""
        if self.active is not None:
            self.active.abort()
            self.active.label.details.setdefault("end_reason", "aborted")
            self._finish(self.active)
        label = self.new_label("wall", "bid" if is_bid else "ask")
        return self._begin(WallRun(
            self.market, self.rng, label, is_bid, distance_ticks, multiple, int(duration_s * 1000), end_mode,
            median=self.typical_size(),
        ))
