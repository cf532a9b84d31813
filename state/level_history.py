"""Rolling history of resting liquidity, trades and alerts (../shared/docs/metrics.md,
"Rolling state").

Price bins are absolute: bin index = floor(tick_key / bin_ticks), so columns taken at
different times line up. Bin i of a column covers prices
[(bin0 + i) * bin_size, (bin0 + i + 1) * bin_size) with bin_size = bin_ticks * tick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from orderbook.book_state import BookState

T = TypeVar("T")

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class BinnedSizes:
    """Quantity per price bin over a contiguous run of bins."""

    bin0: int  # absolute index of the first bin
    bin_size: float  # price width of one bin
    sizes: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"bin0": self.bin0, "bin_size": self.bin_size, "sizes": list(self.sizes)}


def bin_size_of(book: BookState, bin_ticks: int) -> float:
    return round(bin_ticks * book.tick_size, book.price_decimals)


def heatmap_column(book: BookState, bin_ticks: int, bins: int) -> BinnedSizes | None:
    """Resting quantity of the WHOLE book (both sides) in ``bins`` bins centred on the
    mid's bin; None without a mid. One ``irange`` per side over the column's span."""
    if bin_ticks < 1 or bins < 1:
        raise ValueError(f"{book.symbol}: bin_ticks and bins must be >= 1, got {bin_ticks}, {bins}")
    bb, ba = book.best_bid_key(), book.best_ask_key()
    if bb is None or ba is None:
        return None
    mid_bin = ((bb + ba) // 2) // bin_ticks
    bin0 = mid_bin - bins // 2
    lo = bin0 * bin_ticks
    hi = (bin0 + bins) * bin_ticks - 1
    sizes = [0.0] * bins
    for side in (book.bids, book.asks):
        for k in side.irange(lo, hi):
            sizes[k // bin_ticks - bin0] += side[k]
    return BinnedSizes(bin0, bin_size_of(book, bin_ticks), tuple(sizes))


class LevelHistory:
    """Heatmap columns of the last ``window_s`` seconds (the liquidity surface) and
    the volume profile: the mean resting quantity per bin over those columns, a bin
    absent from a column counting as 0.

    Running per-bin sums make a tick cost O(bins) (add one column, drop the expired
    ones) instead of O(columns x bins). Subtracting floats drifts, so the sums are
    rebuilt from the kept columns after as many evictions as there are columns
    (amortised O(bins)), and a bin no column covers any more is deleted outright.
    """

    __slots__ = ("window_ns", "_columns", "_max_columns", "_sums", "_cover", "_evicted", "_bin_size")

    def __init__(self, window_s: float = 180.0, max_columns: int = 180) -> None:
        if not window_s > 0 or max_columns < 1:
            raise ValueError(f"window_s and max_columns must be positive, got {window_s!r}, {max_columns!r}")
        self.window_ns = round(window_s * _NS)
        self._max_columns = max_columns
        self._columns: deque[tuple[int, BinnedSizes]] = deque()
        self._sums: dict[int, float] = {}
        self._cover: dict[int, int] = {}  # number of kept columns that cover each bin
        self._evicted = 0
        self._bin_size: float | None = None

    def __len__(self) -> int:
        return len(self._columns)

    def clear(self) -> None:
        self._columns.clear()
        self._sums.clear()
        self._cover.clear()
        self._evicted = 0

    def add_column(self, ts_ns: int, column: BinnedSizes) -> None:
        """Keep one column taken at ``ts_ns``; drop those older than the window."""
        if self._bin_size is not None and column.bin_size != self._bin_size:
            self.clear()  # a new bin width: old columns no longer line up
        self._bin_size = column.bin_size
        self._columns.append((ts_ns, column))
        sums, cover = self._sums, self._cover
        for i, q in enumerate(column.sizes):
            b = column.bin0 + i
            sums[b] = sums.get(b, 0.0) + q
            cover[b] = cover.get(b, 0) + 1
        self.expire(ts_ns)

    def expire(self, now_ns: int) -> None:
        """Drop the columns taken at or before ``now_ns - window``."""
        start = now_ns - self.window_ns
        cols = self._columns
        while cols and (cols[0][0] <= start or len(cols) > self._max_columns):
            _, old = cols.popleft()
            self._remove(old)
            self._evicted += 1
        if self._evicted > len(cols):
            self._rebuild()

    def _remove(self, column: BinnedSizes) -> None:
        sums, cover = self._sums, self._cover
        for i, q in enumerate(column.sizes):
            b = column.bin0 + i
            left = cover[b] - 1
            if left == 0:
                del cover[b]
                del sums[b]
            else:
                cover[b] = left
                sums[b] -= q

    def _rebuild(self) -> None:
        sums: dict[int, float] = {}
        for _, column in self._columns:
            for i, q in enumerate(column.sizes):
                b = column.bin0 + i
                sums[b] = sums.get(b, 0.0) + q
        self._sums = sums
        self._evicted = 0

    def profile(self) -> BinnedSizes | None:
        """Mean resting quantity per bin over the kept columns, over every bin any of
        them covers (contiguous, lowest bin first); None when no column is kept."""
        if not self._columns or self._bin_size is None:
            return None
        n = len(self._columns)
        lo, hi = min(self._sums), max(self._sums)
        sums = self._sums
        return BinnedSizes(lo, self._bin_size, tuple(max(sums.get(b, 0.0), 0.0) / n for b in range(lo, hi + 1)))

    def surface(self) -> dict[str, Any] | None:
        """The time x price-bin x size matrix of the kept columns on one common bin
        range: ``{times: [s], bin0, bin_size, sizes: [[per bin] per column]}``."""
        if not self._columns or self._bin_size is None:
            return None
        lo = min(c.bin0 for _, c in self._columns)
        hi = max(c.bin0 + len(c.sizes) for _, c in self._columns)
        rows = []
        for _, c in self._columns:
            row = [0.0] * (hi - lo)
            off = c.bin0 - lo
            row[off : off + len(c.sizes)] = c.sizes
            rows.append(row)
        return {
            "times": [ts / 1e9 for ts, _ in self._columns],
            "bin0": lo,
            "bin_size": self._bin_size,
            "sizes": rows,
        }


class RecentEvents(Generic[T]):
    """Items stamped with integer ns, kept for ``window_s`` seconds and never more
    than ``max_items`` (bounded even in a burst)."""

    __slots__ = ("window_ns", "_items")

    def __init__(self, window_s: float = 180.0, max_items: int = 100_000) -> None:
        if not window_s > 0 or max_items < 1:
            raise ValueError(f"window_s and max_items must be positive, got {window_s!r}, {max_items!r}")
        self.window_ns = round(window_s * _NS)
        self._items: deque[tuple[int, T]] = deque(maxlen=max_items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for _, item in self._items)

    def clear(self) -> None:
        self._items.clear()

    def add(self, ts_ns: int, item: T) -> None:
        self._items.append((ts_ns, item))
        self.expire(ts_ns)

    def expire(self, now_ns: int) -> None:
        start = now_ns - self.window_ns
        items = self._items
        while items and items[0][0] <= start:
            items.popleft()

    def since(self, ts_ns: int) -> list[T]:
        """Items stamped after ``ts_ns``, oldest first."""
        return [item for t, item in self._items if t > ts_ns]

    def items(self) -> list[T]:
        return [item for _, item in self._items]
