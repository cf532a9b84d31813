"""The full-depth L2 book of one symbol.

Every level the snapshot and the diffs give is kept: never truncated to the top N.
When the top is eaten, the levels behind it are the exchange's levels, not holes.

Prices are keyed by integer ticks, ``round(price / tick_size)`` (one key per price
string; rounding, never truncation, as in hftbacktest and nautilus_trader).
Quantities are floats. Bids and asks live in SortedDicts keyed by tick, so the best
bid is the last bid key and the best ask the first ask key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sortedcontainers import SortedDict

from config import decimals_of

PriceQty = Sequence[str]  # ["61800.20", "2.909"] as Binance sends it
BookSide = Literal["bid", "ask"]
# Price strings remembered with their tick key; cleared past this (a few MB).
_MAX_CACHED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """What :meth:`BookState.check_integrity` found; ``ok`` when nothing."""

    crossed: bool
    bad_bid_levels: int  # levels with quantity <= 0 or not a number
    bad_ask_levels: int

    @property
    def ok(self) -> bool:
        return not self.crossed and self.bad_bid_levels == 0 and self.bad_ask_levels == 0


@dataclass(frozen=True, slots=True)
class SnapshotBand:
    """The tick range each side of the last snapshot covered. Levels outside it
    come only from diffs and are never corrected by a later snapshot."""

    bid_low: int
    bid_high: int
    ask_low: int
    ask_high: int


class MalformedLevel(ValueError):
    """A [price, qty] pair that does not parse, or a negative / NaN quantity."""


class BookState:
    """Full-depth book of one symbol, prices as integer ticks."""

    __slots__ = (
        "symbol",
        "tick_size",
        "price_decimals",
        "_inv_tick",
        "bids",
        "asks",
        "last_update_id",
        "snapshot_band",
        "_keys",
    )

    def __init__(self, symbol: str, tick_size: float, price_decimals: int | None = None) -> None:
        if not tick_size > 0:
            raise ValueError(f"{symbol}: tick size must be positive, got {tick_size!r}")
        self.symbol = symbol.lower()
        self.tick_size = float(tick_size)
        if price_decimals is None:
            price_decimals = decimals_of(tick_size)
        self.price_decimals = price_decimals
        self._inv_tick = 1.0 / self.tick_size
        self._keys: dict[str, int] = {}  # price string -> tick key, bounded
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self.last_update_id = 0
        self.snapshot_band: SnapshotBand | None = None

    # --- price keys ------------------------------------------------------------
    def key(self, price: str | float) -> int:
        """Integer tick key of a price (string or number), by rounding."""
        return round(float(price) * self._inv_tick)

    def price(self, key: int) -> float:
        """Display price of a tick key, rounded to the symbol's decimals."""
        return round(key * self.tick_size, self.price_decimals)

    # --- updates ---------------------------------------------------------------
    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = 0
        self.snapshot_band = None

    def apply_snapshot(
        self, last_update_id: int, bids: Iterable[PriceQty], asks: Iterable[PriceQty]
    ) -> None:
        """Replace the whole book with a REST snapshot.

        Raises MalformedLevel (book left empty) when a level does not parse.
        """
        self.clear()
        try:
            bid_low, bid_high = self._load_levels(self.bids, bids)
            ask_low, ask_high = self._load_levels(self.asks, asks)
        except MalformedLevel:
            self.clear()
            raise
        self.last_update_id = int(last_update_id)
        if self.bids or self.asks:
            self.snapshot_band = SnapshotBand(bid_low, bid_high, ask_low, ask_high)

    def apply_diff(
        self, bids: Iterable[PriceQty], asks: Iterable[PriceQty], update_id: int
    ) -> None:
        """Apply one depth event: each quantity is the level's new absolute size,
        zero removes it (removing an absent level is normal). Later entries for the
        same price win, simply by being applied later.

        Raises MalformedLevel on a pair that does not parse or a negative / NaN
        quantity; the levels before it are already applied, so the caller must
        treat the book as out of sync (the sequence validator does).
        """
        self._set_levels(self.bids, bids)
        self._set_levels(self.asks, asks)
        self.last_update_id = update_id

    def _set_levels(self, side: SortedDict, levels: Iterable[PriceQty]) -> None:
        inv = self._inv_tick
        contains = side.__contains__
        set_existing = dict.__setitem__
        keys = self._keys
        if len(keys) > _MAX_CACHED_KEYS:
            keys.clear()
        try:
            for p, q in levels:
                # The same price strings come back event after event: look their key
                # up rather than parse and round each time (same rounding either way).
                k = keys.get(p)
                if k is None:
                    k = keys[p] = round(float(p) * inv)
                qty = float(q)
                if qty > 0.0:
                    # An existing key keeps its place in the sorted key list: skip
                    # SortedDict's membership bookkeeping for it.
                    if contains(k):
                        set_existing(side, k, qty)
                    else:
                        side[k] = qty
                elif qty == 0.0:
                    side.pop(k, None)
                else:
                    raise MalformedLevel(f"{self.symbol}: bad quantity {q!r} at price {p!r}")
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, MalformedLevel):
                raise
            raise MalformedLevel(f"{self.symbol}: malformed level: {exc}") from None

    def _load_levels(self, side: SortedDict, levels: Iterable[PriceQty]) -> tuple[int, int]:
        """Fill an empty ``side`` with the levels of a snapshot or checkpoint, by the
        rules of :meth:`_set_levels` (a later entry for a price wins, zero removes it),
        sorting the keys once instead of inserting them one by one: a history
        checkpoint holds thousands of levels a side. The lowest and highest key
        loaded, (0, 0) when none."""
        inv = self._inv_tick
        keys = self._keys
        if len(keys) > _MAX_CACHED_KEYS:
            keys.clear()
        loaded: dict[int, float] = {}
        try:
            for p, q in levels:
                k = keys.get(p)
                if k is None:
                    k = keys[p] = round(float(p) * inv)
                qty = float(q)
                if qty > 0.0:
                    loaded[k] = qty
                elif qty == 0.0:
                    loaded.pop(k, None)
                else:
                    raise MalformedLevel(f"{self.symbol}: bad quantity {q!r} at price {p!r}")
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, MalformedLevel):
                raise
            raise MalformedLevel(f"{self.symbol}: malformed level: {exc}") from None
        side.update(loaded)
        return (min(loaded), max(loaded)) if loaded else (0, 0)

    # --- reads -------------------------------------------------------------------
    def best_bid(self) -> tuple[float, float] | None:
        if not self.bids:
            return None
        k, q = self.bids.peekitem(-1)
        return self.price(k), q

    def best_ask(self) -> tuple[float, float] | None:
        if not self.asks:
            return None
        k, q = self.asks.peekitem(0)
        return self.price(k), q

    def best_bid_key(self) -> int | None:
        return self.bids.keys()[-1] if self.bids else None

    def best_ask_key(self) -> int | None:
        return self.asks.keys()[0] if self.asks else None

    def top_bids(self, n: int) -> list[tuple[int, float]]:
        """Best ``n`` bids as (tick key, qty), best first."""
        if n <= 0:
            return []
        keys = self.bids.keys()[-n:]  # a slice of the sorted key list: no reversed() walk
        keys.reverse()
        bids = self.bids
        get = dict.__getitem__  # SortedDict is a dict: plain lookup, no wrapper
        return [(k, get(bids, k)) for k in keys]

    def top_asks(self, n: int) -> list[tuple[int, float]]:
        """Best ``n`` asks as (tick key, qty), best first."""
        if n <= 0:
            return []
        asks = self.asks
        get = dict.__getitem__
        return [(k, get(asks, k)) for k in asks.keys()[:n]]

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Best ``n`` levels a side as (price, qty), best first."""
        price = self.price
        return (
            [(price(k), q) for k, q in self.top_bids(n)],
            [(price(k), q) for k, q in self.top_asks(n)],
        )

    def side(self, side: BookSide) -> SortedDict:
        """The levels of ``side``; ValueError for anything but 'bid' or 'ask'."""
        if side == "bid":
            return self.bids
        if side == "ask":
            return self.asks
        raise ValueError(f"{self.symbol}: side must be 'bid' or 'ask', got {side!r}")

    def level(self, side: BookSide, price: str | float) -> float:
        """Quantity resting at ``price`` on ``side`` ('bid' or 'ask'); 0.0 if none."""
        return float(self.side(side).get(self.key(price), 0.0))

    def total_quantity(self, side: BookSide) -> float:
        """Sum of quantity over the whole of one side."""
        return float(sum(self.side(side).values()))

    def depth(self) -> tuple[int, int]:
        """Number of levels held per side (bids, asks)."""
        return len(self.bids), len(self.asks)

    def check_integrity(self) -> IntegrityReport:
        """Crossed book and non-positive quantities: reported, never raised."""
        bb, ba = self.best_bid_key(), self.best_ask_key()
        crossed = bb is not None and ba is not None and bb >= ba
        bad_b = sum(1 for q in self.bids.values() if not q > 0.0)
        bad_a = sum(1 for q in self.asks.values() if not q > 0.0)
        return IntegrityReport(crossed, bad_b, bad_a)
