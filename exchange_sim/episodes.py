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

One episode at a time per symbol; the scheduler waits for a quiet gap between them
so the detectors' rolling baselines (30 s median, 15 s means) recover.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from exchange_sim.market import SymbolMarket, Withdrawal
from exchange_sim.settings import SimConfig

log = logging.getLogger(__name__)

KINDS = ("wall", "layering", "withdrawal")

# The detectors compare sizes with the median of the top-20 levels of both sides over
# the 1 Hz samples of the last 30 s. One sample's median swings about 2x around it, so
# episodes are sized against the larger of the two, never against a lucky dip.
MEDIAN_WINDOW_MS = 30_000
MEDIAN_SAMPLE_MS = 1_000
# A wall the background flow eats below this share of its size is over ("eaten").
WALL_EATEN_SHARE = 0.4


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


class _Run:
    """One running episode: ``step`` drives it, returns True when it is over."""

    def __init__(self, market: SymbolMarket, rng: random.Random, label: Episode) -> None:
        self.market = market
        self.rng = rng
        self.label = label

    def step(self, now_ms: int) -> bool:
        raise NotImplementedError

    def abort(self) -> None:
        """Remove what the episode placed, right now."""
        raise NotImplementedError


class WallRun(_Run):
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
        self.lots = max(1, round(multiple * median))
        self.end_at = label.start_ms + duration_ms
        self.end_mode = end_mode
        self.eating = False
        market.op_add(is_bid, self.tick, self.lots, protect=True)
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
            # Market orders from the other side sweep to the wall and eat it in ~4 steps.
            ahead = sum(q for t, q in self.market.top_levels(self.is_bid, 40) if t != self.tick and (
                t > self.tick if self.is_bid else t < self.tick))
            size = ahead + max(1, remaining // 3 + 1)
            self.market.op_market(not self.is_bid, size, limit_tick=self.tick)
        return False

    def abort(self) -> None:
        remaining = self._remaining()
        if remaining:
            self.market.op_remove(self.is_bid, self.tick, remaining)
        self.label.details["end_reason"] = "pulled"


class LayeringRun(_Run):
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
        self.lots = max(1, round(multiple * median))
        self.offset = rng.randint(1, 3)
        self.end_at = label.start_ms + duration_ms
        self.ticks: list[int] = []
        self.next_move = label.start_ms
        self.moves = 0
        self.all_prices: set[int] = set()
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


class WithdrawalRun(_Run):
    THIN_TICKS = 80  # levels this far beyond the gap edges are thinned
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
                ticks = list(book.irange(bid_edge - self.THIN_TICKS, None))
            else:
                ticks = list(book.irange(None, ask_edge + self.THIN_TICKS))
            for tick in ticks:
                have = book[tick]
                inside = tick > bid_edge if is_bid else tick < ask_edge
                keep = 0 if inside else max(1, round(have * self.KEEP_SHARE))
                if keep < have:
                    market.op_set(is_bid, tick, keep)
                    self.removed.append((is_bid, tick, have - keep))
        self.end_at = label.start_ms + duration_ms
        self.restoring = False
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


class EpisodeScheduler:
    """Starts, drives and labels the episodes of one symbol."""

    def __init__(self, market: SymbolMarket, cfg: SimConfig, rng: random.Random) -> None:
        self.market = market
        self.cfg = cfg
        self.rng = rng
        self.labels: list[Episode] = []
        self.active: _Run | None = None
        self._label_end_pending = False
        self.quiet_until = market.now_ms
        self.every = {
            "wall": cfg.wall_every_s,
            "layering": cfg.layering_every_s,
            "withdrawal": cfg.withdrawal_every_s,
        }
        now = market.now_ms
        self.next_due = {k: now + int(rng.uniform(*cfg.first_episode_after_s) * 1000) for k in KINDS}
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

    def _new_label(self, kind: str, side: str) -> Episode:
        label = Episode(len(self.labels) + 1, self.market.symbol, kind, side, [], self.market.now_ms)
        self.labels.append(label)
        return label

    def _finish(self, run: _Run) -> None:
        now = self.market.now_ms
        if run.label.end_ms is None:
            run.label.end_ms = now
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
            if isinstance(run, WithdrawalRun) and run.restoring and run.label.end_ms is None:
                run.label.end_ms = now  # the withdrawn span ends when liquidity starts returning
            if done:
                self._finish(run)
            return
        if not self.cfg.episodes or now < self.quiet_until:
            return
        due = sorted((t, k) for k, t in self.next_due.items() if t <= now)
        if due:
            self.start(due[0][1])

    def start(self, kind: str) -> Episode:
        """Start an episode of ``kind`` now with random parameters."""
        rng = self.rng
        if kind == "wall":
            return self.start_wall(
                rng.random() < 0.5, rng.randint(1, 6), rng.uniform(10.0, 16.0), rng.uniform(10.0, 20.0),
                "pulled" if rng.random() < 0.6 else "eaten",
            )
        if kind == "layering":
            is_bid = rng.random() < 0.5
            label = self._new_label("layering", "bid" if is_bid else "ask")
            self.active = LayeringRun(
                self.market, rng, label, is_bid, rng.randint(5, 7), rng.uniform(12.0, 18.0),
                int(rng.uniform(6.0, 10.0) * 1000), median=self.typical_size(),
            )
        elif kind == "withdrawal":
            label = self._new_label("withdrawal", "both")
            self.active = WithdrawalRun(
                self.market, rng, label, rng.randint(8, 14), int(rng.uniform(5.0, 8.0) * 1000)
            )
        else:
            raise ValueError(f"unknown episode kind {kind!r}")
        log.info("%s: %s episode %d started at %s", self.market.symbol, kind, label.id, label.prices)
        return label

    def start_wall(
        self, is_bid: bool, distance_ticks: int, multiple: float, duration_s: float, end_mode: str = "pulled"
    ) -> Episode:
        """Place a wall now (ends a running episode first: episodes never overlap)."""
        if self.active is not None:
            self.active.abort()
            self.active.label.details.setdefault("end_reason", "aborted")
            self._finish(self.active)
        label = self._new_label("wall", "bid" if is_bid else "ask")
        self.active = WallRun(
            self.market, self.rng, label, is_bid, distance_ticks, multiple, int(duration_s * 1000), end_mode,
            median=self.typical_size(),
        )
        log.info("%s: wall episode %d started at %s", self.market.symbol, label.id, label.prices)
        return label
