"""Liquidity event detectors: walls, layering, exhaustion (../shared/docs/metrics.md,
"Liquidity event detectors").

They run on 1 Hz samples of the top ``detector_levels`` levels of each side. The
rolling median is the median of all level sizes (both sides) over the samples of
the last ``median_window_s``, the current sample included. Time is an argument
(integer ns); nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from config import Settings
from features.trade import BUY, SELL, Trade

Level = tuple[float, float]  # (price, qty), best first

BID = "bid"
ASK = "ask"

WALL = "WALL"
WALL_REMOVED = "WALL_REMOVED"
LAYERING = "LAYERING"
EXHAUSTION = "EXHAUSTION"

# A removed wall is "filled" when trades at its price (aggressor against it) since
# the previous sample account for at least this share of the quantity that went.
FILLED_SHARE = 0.5

# Spreads and depths are differences and sums of floats parsed from decimal strings:
# a 2-tick spread can come out as 0.19999999999708962 against a 1-tick spread of
# 0.09999999999126885, i.e. "more than 2x" by float noise alone. The strict
# comparisons of metrics.md ("spread > 2 x mean", "depth < 50 % of mean") are made
# with this relative margin so that exactly 2x / exactly 50 % never pass.
_REL_EPS = 1e-9

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Alert:
    type: str  # WALL, WALL_REMOVED, LAYERING, EXHAUSTION
    symbol: str
    side: str  # "bid" or "ask"
    price: float | None
    ts_ns: int  # sample time
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Frame form; ``ts`` in seconds since the epoch like the frame's ``timestamp``."""
        return {
            "type": self.type,
            "symbol": self.symbol,
            "side": self.side,
            "price": self.price,
            "ts": self.ts_ns / 1e9,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Wall:
    """A level that is a wall in the latest sample."""

    side: str
    price: float
    size: float
    multiple: float  # size / rolling median
    age_s: float  # since the first sample it was seen at this price at wall size

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "price": self.price,
            "size": self.size,
            "multiple": self.multiple,
            "age_s": self.age_s,
        }


@dataclass(frozen=True, slots=True)
class WallLevel:
    """A level at wall size (>= wall_multiple x the median) in the latest sample,
    confirmed as a wall (more than wall_min_age_s at this price) or not yet."""

    side: str
    price: float
    size: float
    first_ns: int  # the first sample it was seen at wall size at this price
    confirmed: bool


@dataclass(frozen=True, slots=True)
class Removal:
    """Why a level at wall size went: ``filled`` when trades at its price (aggressor
    against it) since the previous sample account for at least FILLED_SHARE of the
    quantity that went, ``out_of_view`` when the book moved and the level left the
    sampled top, else ``pulled``."""

    reason: str
    remaining: float  # quantity left at the price (0 when the level is gone)
    traded_qty: float  # traded at the price against the side since the previous sample


@dataclass(frozen=True, slots=True)
class ExhaustionState:
    """The exhaustion test of one side at the latest sample."""

    active: bool  # the condition holds (an EXHAUSTION alert fired for this episode)
    depth: float | None  # top-N depth of the side
    mean_depth: float | None  # its mean over the previous samples of the window


@dataclass(slots=True)
class _WallTrack:
    first_ns: int
    size: float
    confirmed: bool = False


def _price_key(price: float) -> float:
    # Trade prices come parsed from strings and level prices from tick keys; both
    # are the double nearest the decimal price, rounding guards the odd last bit.
    return round(price, 9)


class RollingMedian:
    """Median of all level sizes of the samples in the last ``window_s`` seconds."""

    __slots__ = ("window_ns", "_samples", "_sorted")

    def __init__(self, window_s: float) -> None:
        self.window_ns = round(window_s * _NS)
        self._samples: deque[tuple[int, list[float]]] = deque()
        self._sorted: SortedList = SortedList()

    def add(self, ts_ns: int, sizes: list[float]) -> None:
        self._samples.append((ts_ns, sizes))
        self._sorted.update(sizes)
        start = ts_ns - self.window_ns
        while self._samples and self._samples[0][0] <= start:
            _, old = self._samples.popleft()
            for q in old:
                self._sorted.remove(q)

    def median(self) -> float | None:
        s = self._sorted
        n = len(s)
        if n == 0:
            return None
        if n % 2:
            return float(s[n // 2])
        return (s[n // 2 - 1] + s[n // 2]) / 2.0

    def clear(self) -> None:
        self._samples.clear()
        self._sorted.clear()


class LiquidityDetector:
    """Walls, layering and exhaustion of one symbol, one call per 1 Hz sample."""

    def __init__(self, symbol: str, settings: Settings) -> None:
        self.symbol = symbol.lower()
        self.s = settings
        self._median = RollingMedian(settings.median_window_s)
        self._last_median: float | None = None
        self._last_ts: int | None = None
        self._walls: dict[tuple[str, float], _WallTrack] = {}
        self._layer_prev: dict[str, set[float]] = {BID: set(), ASK: set()}
        self._layer_last_alert: dict[str, int | None] = {BID: None, ASK: None}
        self._depth_hist: dict[str, deque[tuple[int, float]]] = {BID: deque(), ASK: deque()}
        self._spread_hist: deque[tuple[int, float]] = deque()
        self._exhaustion_armed: dict[str, bool] = {BID: True, ASK: True}
        # What the latest sample saw, for the read-only views below.
        self._last_levels: dict[str, list[Level]] = {BID: [], ASK: []}
        self._last_traded: dict[tuple[str, float], float] = {}
        self._layer_runs: dict[str, list[Level]] = {BID: [], ASK: []}
        self._exhaustion_last: dict[str, tuple[float | None, float | None]] = {BID: (None, None), ASK: (None, None)}

    def reset(self) -> None:
        """Forget everything (after the book lost sync: samples no longer continue)."""
        self._median.clear()
        self._last_median = None
        self._last_ts = None
        self._walls.clear()
        self._layer_prev = {BID: set(), ASK: set()}
        self._layer_last_alert = {BID: None, ASK: None}
        self._depth_hist = {BID: deque(), ASK: deque()}
        self._spread_hist.clear()
        self._exhaustion_armed = {BID: True, ASK: True}
        self._last_levels = {BID: [], ASK: []}
        self._last_traded = {}
        self._layer_runs = {BID: [], ASK: []}
        self._exhaustion_last = {BID: (None, None), ASK: (None, None)}

    @property
    def median(self) -> float | None:
        """Rolling median as of the latest sample."""
        return self._last_median

    def on_sample(
        self,
        ts_ns: int,
        bids: Sequence[Level],
        asks: Sequence[Level],
        spread: float | None,
        trades: Sequence[Trade] = (),
    ) -> list[Alert]:
        """Run every detector on one sample: the top ``detector_levels`` of each side
        (best first), the spread (None when a side is empty) and the trades since the
        previous sample. Returns the alerts this sample raised."""
        n = self.s.detector_levels
        bids = list(bids[:n])
        asks = list(asks[:n])
        self._median.add(ts_ns, [q for _, q in bids] + [q for _, q in asks])
        med = self._median.median()
        self._last_median = med
        self._last_ts = ts_ns
        self._last_levels = {BID: bids, ASK: asks}
        self._last_traded = self._traded_by_price(trades)
        alerts: list[Alert] = []
        if med is not None and med > 0.0:
            alerts += self._walls_step(ts_ns, bids, asks, med)
            alerts += self._layering_step(ts_ns, BID, bids, med)
            alerts += self._layering_step(ts_ns, ASK, asks, med)
        else:
            self._layer_runs = {BID: [], ASK: []}
        alerts += self._exhaustion_step(ts_ns, bids, asks, spread)
        return alerts

    # --- walls ---------------------------------------------------------------------
    def _walls_step(self, ts_ns: int, bids: list[Level], asks: list[Level], med: float) -> list[Alert]:
        threshold = self.s.wall_multiple * med
        min_age_ns = round(self.s.wall_min_age_s * _NS)
        alerts: list[Alert] = []
        seen: set[tuple[str, float]] = set()
        for side, levels in ((BID, bids), (ASK, asks)):
            for price, qty in levels:
                if qty < threshold:
                    continue
                key = (side, price)
                seen.add(key)
                track = self._walls.get(key)
                if track is None:
                    self._walls[key] = _WallTrack(first_ns=ts_ns, size=qty)
                    continue
                track.size = qty
                age_ns = ts_ns - track.first_ns
                if not track.confirmed and age_ns > min_age_ns:
                    track.confirmed = True
                    alerts.append(
                        Alert(
                            WALL,
                            self.symbol,
                            side,
                            price,
                            ts_ns,
                            {"size": qty, "multiple": qty / med, "age_s": age_ns / _NS, "median": med},
                        )
                    )
        gone = [k for k in self._walls if k not in seen]
        for key in gone:
            track = self._walls.pop(key)
            if not track.confirmed:
                continue
            side, price = key
            removal = self.removal(side, price, track.size)
            alerts.append(
                Alert(
                    WALL_REMOVED,
                    self.symbol,
                    side,
                    price,
                    ts_ns,
                    {
                        "reason": removal.reason,
                        "last_size": track.size,
                        "remaining": removal.remaining,
                        "traded_qty": removal.traded_qty,
                        "age_s": (ts_ns - track.first_ns) / _NS,
                    },
                )
            )
        return alerts

    def removal(self, side: str, price: float, last_size: float) -> Removal:
        """How a level of ``last_size`` at ``price`` left wall size by the latest
        sample: filled, out_of_view or pulled (see :class:`Removal`), judged on the
        sample's levels and the trades since the previous one."""
        levels = self._last_levels[side]
        now_qty = next((q for p, q in levels if p == price), 0.0)
        present = any(p == price for p, _ in levels)
        dropped = max(last_size - now_qty, 0.0)
        hit_by = SELL if side == BID else BUY
        filled_qty = self._last_traded.get((hit_by, _price_key(price)), 0.0)
        if dropped > 0.0 and filled_qty >= FILLED_SHARE * dropped:
            reason = "filled"
        elif not present and self._beyond_view(side, price, levels):
            reason = "out_of_view"  # the book moved; the level left the sampled top
        else:
            reason = "pulled"
        return Removal(reason, now_qty, filled_qty)

    def _beyond_view(self, side: str, price: float, levels: list[Level]) -> bool:
        if len(levels) < self.s.detector_levels:
            return False
        worst = levels[-1][0]
        return price < worst if side == BID else price > worst

    @staticmethod
    def _traded_by_price(trades: Sequence[Trade]) -> dict[tuple[str, float], float]:
        out: dict[tuple[str, float], float] = {}
        for t in trades:
            k = (t.side, _price_key(t.price))
            out[k] = out.get(k, 0.0) + t.qty
        return out

    def walls(self) -> list[Wall]:
        """The levels that are walls as of the latest sample, bids then asks."""
        med = self._last_median
        if med is None or med <= 0.0 or self._last_ts is None:
            return []
        out = [
            Wall(side, price, t.size, t.size / med, (self._last_ts - t.first_ns) / _NS)
            for (side, price), t in self._walls.items()
            if t.confirmed
        ]
        out.sort(key=lambda w: (w.side != BID, -w.price if w.side == BID else w.price))
        return out

    def wall_levels(self) -> list[WallLevel]:
        """Every level at wall size in the latest sample, confirmed walls or not yet."""
        return [WallLevel(side, price, t.size, t.first_ns, t.confirmed) for (side, price), t in self._walls.items()]

    def layering_levels(self, side: str) -> list[Level]:
        """The levels of the runs of the latest sample on ``side`` (C_t with their
        sizes, best first); empty when the side has fewer than layering_min_levels."""
        return list(self._layer_runs[side])

    def exhaustion_state(self, side: str) -> ExhaustionState:
        """The exhaustion test of ``side`` as of the latest sample."""
        depth, mean_depth = self._exhaustion_last[side]
        return ExhaustionState(not self._exhaustion_armed[side], depth, mean_depth)

    # --- layering -------------------------------------------------------------------
    def _layering_step(self, ts_ns: int, side: str, levels: list[Level], med: float) -> list[Alert]:
        threshold = self.s.layering_multiple * med
        min_levels = self.s.layering_min_levels
        runs: list[list[Level]] = []
        run: list[Level] = []
        for level in levels:
            if level[1] >= threshold:
                run.append(level)
                continue
            if len(run) >= min_levels:
                runs.append(run)
            run = []
        if len(run) >= min_levels:
            runs.append(run)
        c_t = {p for r in runs for p, _ in r}
        prev = self._layer_prev[side]
        self._layer_prev[side] = c_t
        self._layer_runs[side] = [lv for r in runs for lv in r] if len(c_t) >= min_levels else []
        if len(c_t) < min_levels:
            return []
        churn = len(c_t - prev) / len(c_t)
        if churn < self.s.layering_min_churn:
            return []
        last = self._layer_last_alert[side]
        if last is not None and ts_ns - last < round(self.s.layering_cooldown_s * _NS):
            return []
        self._layer_last_alert[side] = ts_ns
        first_run = runs[0]
        return [
            Alert(
                LAYERING,
                self.symbol,
                side,
                first_run[0][0],
                ts_ns,
                {
                    "levels": len(c_t),
                    "churn": churn,
                    "prices": [p for r in runs for p, _ in r],
                    "sizes": [q for r in runs for _, q in r],
                    "median": med,
                },
            )
        ]

    # --- exhaustion -----------------------------------------------------------------
    def _exhaustion_step(self, ts_ns: int, bids: list[Level], asks: list[Level], spread: float | None) -> list[Alert]:
        window_ns = round(self.s.exhaustion_window_s * _NS)
        start = ts_ns - window_ns
        n = self.s.top_n
        spreads = self._spread_hist
        while spreads and spreads[0][0] <= start:
            spreads.popleft()
        # Means over the previous samples of the window: the current sample is what
        # is compared with them.
        mean_spread = sum(s for _, s in spreads) / len(spreads) if spreads else None
        spread_wide = (
            spread is not None
            and mean_spread is not None
            and spread > self.s.exhaustion_spread_multiple * mean_spread * (1.0 + _REL_EPS)
        )
        alerts: list[Alert] = []
        for side, levels in ((BID, bids), (ASK, asks)):
            hist = self._depth_hist[side]
            while hist and hist[0][0] <= start:
                hist.popleft()
            depth = sum(q for _, q in levels[:n]) if levels else None
            mean_depth = sum(d for _, d in hist) / len(hist) if hist else None
            condition = (
                spread_wide
                and depth is not None
                and mean_depth is not None
                and depth < self.s.exhaustion_depth_ratio * mean_depth * (1.0 - _REL_EPS)
            )
            if condition and self._exhaustion_armed[side]:
                self._exhaustion_armed[side] = False
                alerts.append(
                    Alert(
                        EXHAUSTION,
                        self.symbol,
                        side,
                        levels[0][0] if levels else None,
                        ts_ns,
                        {
                            "depth": depth,
                            "mean_depth": mean_depth,
                            "spread": spread,
                            "mean_spread": mean_spread,
                        },
                    )
                )
            elif not condition:
                self._exhaustion_armed[side] = True
            self._exhaustion_last[side] = (depth, mean_depth)
            if depth is not None:
                hist.append((ts_ns, depth))
        if spread is not None:
            spreads.append((ts_ns, spread))
        return alerts
