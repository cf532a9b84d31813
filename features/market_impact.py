"""Market impact simulator (../shared/docs/metrics.md, "Market impact simulator").

Walks the WHOLE local book from the best level (a buy eats asks, a sell eats bids)
until ``size`` is filled or the side ends, in the manner of nautilus_trader's
``simulate_fills`` / ``get_avg_px_for_quantity``. Prices are the book's display
prices of its integer tick keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

from orderbook.book_state import BookState

BUY = "buy"
SELL = "sell"


class ImpactError(ValueError):
    """The simulation cannot run; the message says why and for which symbol."""


class InvalidOrder(ImpactError):
    """Bad side, or a size that is not a finite positive number within the maximum."""


class BookUnavailable(ImpactError):
    """The book is not in sync, or the side the order would eat is empty."""


@dataclass(frozen=True, slots=True)
class Fill:
    price: float
    qty: float
    cumulative_qty: float
    cumulative_cost: float  # sum of price * qty so far, quote asset

    def to_dict(self) -> dict[str, float]:
        return {
            "price": self.price,
            "qty": self.qty,
            "cumulative_qty": self.cumulative_qty,
            "cumulative_cost": self.cumulative_cost,
        }


@dataclass(frozen=True, slots=True)
class ImpactResult:
    symbol: str
    side: str  # "buy" or "sell"
    size: float  # requested, base asset
    quantity_filled: float  # min(size, quantity on the side)
    vwap: float
    best_price: float  # Pa_1 for a buy, Pb_1 for a sell
    worst_price: float  # price of the last level touched
    slippage: float  # |vwap - best_price|, price, >= 0
    slippage_bps: float  # slippage / best_price * 1e4
    impact_bps: float | None  # |vwap - mid| / mid * 1e4; None when the other side is empty
    levels_consumed: int
    fills: tuple[Fill, ...]
    fully_filled: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "size": self.size,
            "quantity_filled": self.quantity_filled,
            "vwap": self.vwap,
            "best_price": self.best_price,
            "worst_price": self.worst_price,
            "slippage": self.slippage,
            "slippage_bps": self.slippage_bps,
            "impact_bps": self.impact_bps,
            "levels_consumed": self.levels_consumed,
            "fills": [f.to_dict() for f in self.fills],
            "fully_filled": self.fully_filled,
        }


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One point of the slippage-versus-size curve (what :meth:`walk` gives, without fills)."""

    size: float
    quantity_filled: float
    vwap: float
    worst_price: float
    slippage: float
    slippage_bps: float
    impact_bps: float | None
    levels_consumed: int
    fully_filled: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "quantity_filled": self.quantity_filled,
            "vwap": self.vwap,
            "worst_price": self.worst_price,
            "slippage": self.slippage,
            "slippage_bps": self.slippage_bps,
            "impact_bps": self.impact_bps,
            "levels_consumed": self.levels_consumed,
            "fully_filled": self.fully_filled,
        }


class ImpactSimulator:
    """Fills of a hypothetical market order against one symbol's local book."""

    __slots__ = ("max_size",)

    def __init__(self, max_size: float) -> None:
        if not (isinstance(max_size, Real) and math.isfinite(max_size) and max_size > 0):
            raise ValueError(f"max_size must be a finite positive number, got {max_size!r}")
        self.max_size: float = float(max_size)

    # --- checks -------------------------------------------------------------------
    def _check(self, book: BookState, side: str, in_sync: bool) -> None:
        if side not in (BUY, SELL):
            raise InvalidOrder(f"{book.symbol}: side must be 'buy' or 'sell', got {side!r}")
        if not in_sync:
            raise BookUnavailable(f"{book.symbol}: book not in sync; no impact until it resyncs")
        levels = book.asks if side == BUY else book.bids
        if not levels:
            eaten = "ask" if side == BUY else "bid"
            raise BookUnavailable(f"{book.symbol}: the {eaten} side is empty; nothing to {side}")

    def _check_size(self, symbol: str, size: object) -> float:
        if isinstance(size, bool) or not isinstance(size, Real):
            raise InvalidOrder(f"{symbol}: size must be a number, got {size!r}")
        value = float(size)
        if not math.isfinite(value):
            raise InvalidOrder(f"{symbol}: size must be finite, got {size!r}")
        if value <= 0.0:
            raise InvalidOrder(f"{symbol}: size must be positive, got {size!r}")
        if value > self.max_size:
            raise InvalidOrder(f"{symbol}: size {value:g} is above the maximum {self.max_size:g}")
        return value

    @staticmethod
    def _levels(book: BookState, side: str) -> Iterator[tuple[float, float]]:
        """(price, qty) of the side the order eats, best first, over the whole book."""
        price = book.price
        if side == BUY:
            asks = book.asks
            return ((price(k), asks[k]) for k in asks)
        bids = book.bids
        return ((price(k), bids[k]) for k in reversed(bids.keys()))

    @staticmethod
    def _mid(book: BookState) -> float | None:
        bb, ba = book.best_bid_key(), book.best_ask_key()
        if bb is None or ba is None:
            return None
        return (book.price(bb) + book.price(ba)) / 2.0

    @staticmethod
    def _price_stats(side: str, vwap: float, best: float, mid: float | None) -> tuple[float, float, float | None]:
        slip = vwap - best if side == BUY else best - vwap
        slip = max(slip, 0.0)  # float dust on a single-level fill
        impact = abs(vwap - mid) / mid * 1e4 if mid is not None and mid > 0.0 else None
        return slip, slip / best * 1e4, impact

    # --- public ---------------------------------------------------------------------
    def walk(self, book: BookState, side: str, size: float, *, in_sync: bool) -> ImpactResult:
        """Fill ``size`` (base asset) against the book. Raises :class:`InvalidOrder` or
        :class:`BookUnavailable` (both :class:`ImpactError`) with the reason."""
        self._check(book, side, in_sync)
        size = self._check_size(book.symbol, size)
        fills: list[Fill] = []
        cum_qty = 0.0
        cum_cost = 0.0
        best = 0.0
        for price, qty in self._levels(book, side):
            if not fills:
                best = price
            remaining = size - cum_qty
            done = qty >= remaining
            take = remaining if done else qty
            # The last fill completes the order exactly: no a + (s - a) != s dust.
            cum_qty = size if done else cum_qty + qty
            cum_cost += price * take
            fills.append(Fill(price, take, cum_qty, cum_cost))
            if done:
                break
        vwap = cum_cost / cum_qty
        slip, slip_bps, impact = self._price_stats(side, vwap, best, self._mid(book))
        return ImpactResult(
            symbol=book.symbol,
            side=side,
            size=size,
            quantity_filled=cum_qty,
            vwap=vwap,
            best_price=best,
            worst_price=fills[-1].price,
            slippage=slip,
            slippage_bps=slip_bps,
            impact_bps=impact,
            levels_consumed=len(fills),
            fills=tuple(fills),
            fully_filled=cum_qty >= size,
        )

    def curve(self, book: BookState, side: str, sizes: Sequence[float], *, in_sync: bool) -> list[CurvePoint]:
        """The :meth:`walk` figures of every size in ``sizes`` (returned in the given
        order) from ONE pass over the book: sizes are visited in increasing order
        while the levels are walked once, with the same arithmetic as :meth:`walk`."""
        self._check(book, side, in_sync)
        checked = [self._check_size(book.symbol, s) for s in sizes]
        order = sorted(range(len(checked)), key=checked.__getitem__)
        mid = self._mid(book)
        out: list[CurvePoint | None] = [None] * len(checked)
        levels = self._levels(book, side)
        first = next(levels)
        best = first[0]
        # State before the current level: quantity and cost of the levels fully eaten.
        cum_qty = 0.0
        cum_cost = 0.0
        consumed = 0
        price, qty = first
        exhausted = False
        for idx in order:
            size = checked[idx]
            # Eat whole levels while the size is not reached inside the current one.
            while not exhausted and qty < size - cum_qty:
                cum_qty += qty
                cum_cost += price * qty
                consumed += 1
                nxt = next(levels, None)
                if nxt is None:
                    exhausted = True
                    break
                price, qty = nxt
            if exhausted:
                q_filled, cost, n_levels, worst = cum_qty, cum_cost, consumed, price
            else:
                q_filled = size
                cost = cum_cost + price * (size - cum_qty)
                n_levels, worst = consumed + 1, price
            vwap = cost / q_filled
            slip, slip_bps, impact = self._price_stats(side, vwap, best, mid)
            out[idx] = CurvePoint(
                size=size,
                quantity_filled=q_filled,
                vwap=vwap,
                worst_price=worst,
                slippage=slip,
                slippage_bps=slip_bps,
                impact_bps=impact,
                levels_consumed=n_levels,
                fully_filled=q_filled >= size,
            )
        return [p for p in out if p is not None]
