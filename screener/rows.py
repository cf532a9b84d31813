"""The screener's row of one symbol, computed once a second from the latest values
of its light streams (docs/metrics.md, "Screener"). Pure: no I/O, no clock read;
the time of the row comes in as an argument.

The partial book is the top 20 levels a side of ``<symbol>@depth20``: every depth
here is what those 20 levels hold, so a depth band wider than the 20 levels reach
is a lower bound.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from features.rounding import Decimals, rounders

BookSide = Sequence[tuple[float, float]]  # (price, quantity), best first

# Keys of the row (the contract shared with the dashboard's screener page).
NUMERIC_FIELDS = (
    "ts", "mid", "spread_bps", "depth10_bid", "depth10_ask", "depth25_bid", "depth25_ask", "imbalance20",
    "walls", "liq5m_buy", "liq5m_sell", "funding_rate", "quote_volume_24h", "change_24h_pct",
)
SORT_KEYS = ("symbol", *NUMERIC_FIELDS)
HIST_FIELDS = ("spread_hist", "depth25_hist")
HIST_LEN = 60  # one value a second
EDGE = 1e-9


@dataclass(frozen=True, slots=True)
class RowRules:
    """The thresholds of the row (settings.py defaults, docs/metrics.md)."""

    wall_multiple: float = 5.0  # a wall: a top-20 level >= this x the median top-20 size of its side
    wall_fresh_s: float = 60.0  # a wall younger than this is fresh...
    # ... and at least this x the median top-20 size of its side (the NEW WALL flag):
    # on a heavy-tailed book the largest 5x level changes within a minute, so youth
    # alone flags nearly every row (docs/metrics.md, "Screener").
    wall_flag_multiple: float = 100.0
    stale_after_s: float = 5.0  # no partial book for longer: stale
    liq_window_s: float = 300.0  # liq5m_buy / liq5m_sell
    burst_notional: float = 100_000.0  # a liquidation burst: one side's forced orders worth this...
    burst_window_s: float = 5.0  # ... within this span ...
    burst_recent_s: float = 60.0  # ... ending in the last minute


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One forced order as the screener keeps it: receive time, side, notional."""

    recv_ms: int
    side: str  # "BUY" closes a short, "SELL" closes a long
    notional: float  # filled quantity x average price, USDT


@dataclass(slots=True)
class SymbolLatest:
    """The latest value of each light stream of one symbol, and what the rows carry
    from one second to the next (wall first sightings, the 60 s histories)."""

    symbol: str
    decimals: Decimals = Decimals(2, 3)
    bids: BookSide = ()
    asks: BookSide = ()
    book_ms: int = 0  # receive time of the latest partial book (0: none yet)
    book_u: int = 0  # its final update id
    ticker_bid: float | None = None  # latest !bookTicker
    ticker_ask: float | None = None
    funding_rate: float | None = None  # latest !markPrice@arr@1s
    quote_volume: float | None = None  # latest !miniTicker@arr
    change_pct: float | None = None
    liquidations: deque[Liquidation] = field(default_factory=deque)
    wall_seen: dict[tuple[str, float], int] = field(default_factory=dict)  # (side, price) -> first frame ms
    # The book figures of the last row and the book they came from: a book unchanged
    # since (a quiet symbol) is not summed again.
    book_figures: tuple[BookSide, BookSide, tuple[Any, ...]] | None = None
    spread_hist: deque[float | None] = field(default_factory=lambda: deque([None] * HIST_LEN, maxlen=HIST_LEN))
    depth25_hist: deque[float | None] = field(default_factory=lambda: deque([None] * HIST_LEN, maxlen=HIST_LEN))


def side_sums(side: BookSide, mid: float, is_bid: bool) -> tuple[float, float, float]:
    """(notional within 10 bps of ``mid``, within 25 bps, quantity of all the levels)
    of one side: notional is price x quantity (USDT). The levels come best first, so
    the bands are a prefix: the walk stops at the first level beyond 25 bps."""
    # A level exactly at the band's edge is in (EDGE absorbs the float error of mid x (1 +/- bps)).
    d10 = d25 = 0.0
    if is_bid:
        lim10, lim25 = mid * (1.0 - 10 / 1e4 - EDGE), mid * (1.0 - 25 / 1e4 - EDGE)
        for p, q in side:
            if p < lim25:
                break
            d25 += p * q
            if p >= lim10:
                d10 += p * q
    else:
        lim10, lim25 = mid * (1.0 + 10 / 1e4 + EDGE), mid * (1.0 + 25 / 1e4 + EDGE)
        for p, q in side:
            if p > lim25:
                break
            d25 += p * q
            if p <= lim10:
                d10 += p * q
    return d10, d25, sum([q for _p, q in side])


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def wall_levels(bids: BookSide, asks: BookSide, multiple: float,
                medians: dict[str, float] | None = None) -> list[tuple[str, float, float]]:
    """(side, price, size) of every level at least ``multiple`` x the median level
    size of its own side (of the levels given; ``medians`` by side when known)."""
    out: list[tuple[str, float, float]] = []
    for name, levels in (("bid", bids), ("ask", asks)):
        if not levels:
            continue
        med = medians[name] if medians is not None else median([q for _p, q in levels])
        threshold = multiple * med
        out.extend((name, p, q) for p, q in levels if q >= threshold and q > 0)
    return out


def wall_ages(previous: dict[tuple[str, float], int], walls: Iterable[tuple[str, float, float]],
              now_ms: int) -> dict[tuple[str, float], int]:
    """First sighting of each wall level now standing: kept from ``previous`` while
    the level stays a wall, ``now_ms`` for a new one; gone ones are forgotten."""
    return {(side, price): previous.get((side, price), now_ms) for side, price, _q in walls}


def liquidation_sums(liqs: Iterable[Liquidation], now_ms: int, window_s: float) -> tuple[float, float]:
    """(BUY notional, SELL notional) received in the last ``window_s``."""
    if not liqs:
        return 0.0, 0.0
    start = now_ms - window_s * 1000
    buy = sell = 0.0
    for liq in liqs:
        if liq.recv_ms > start:
            if liq.side == "BUY":
                buy += liq.notional
            else:
                sell += liq.notional
    return buy, sell


def had_burst(liqs: Iterable[Liquidation], now_ms: int, rules: RowRules) -> bool:
    """A burst in the last ``burst_recent_s``: one side's liquidations received within
    ``burst_window_s`` of each other worth at least ``burst_notional``."""
    if not liqs:
        return False
    start = now_ms - rules.burst_recent_s * 1000
    span = rules.burst_window_s * 1000
    for side in ("BUY", "SELL"):
        recent = [x for x in liqs if x.side == side and start < x.recv_ms <= now_ms]
        lo = 0
        total = 0.0
        for liq in recent:
            total += liq.notional
            while liq.recv_ms - recent[lo].recv_ms > span:
                total -= recent[lo].notional
                lo += 1
            if total >= rules.burst_notional:
                return True
    return False


def prune(latest: SymbolLatest, now_ms: int, rules: RowRules) -> None:
    """Forget liquidations older than every window that reads them."""
    keep_from = now_ms - max(rules.liq_window_s, rules.burst_recent_s) * 1000
    liqs = latest.liquidations
    while liqs and liqs[0].recv_ms <= keep_from:
        liqs.popleft()


def build_row(latest: SymbolLatest, now_ms: int, focus: bool, rules: RowRules) -> dict[str, Any]:
    """The row of ``latest`` at ``now_ms`` (unrounded; see :func:`round_row`), with its
    histories. Updates the wall sightings and appends this second to the histories."""
    return with_histories(row_values(latest, now_ms, focus, rules), latest)


def with_histories(row: dict[str, Any], latest: SymbolLatest) -> dict[str, Any]:
    """A copy of ``row`` with ``latest``'s two 60 s histories (as they are now) added."""
    return {**row, "spread_hist": list(latest.spread_hist), "depth25_hist": list(latest.depth25_hist)}


def row_values(latest: SymbolLatest, now_ms: int, focus: bool, rules: RowRules) -> dict[str, Any]:
    """:func:`build_row` without the histories (a new dict, the caller's to change)."""
    bids, asks = latest.bids, latest.asks
    stale = latest.book_ms == 0 or now_ms - latest.book_ms > rules.stale_after_s * 1000
    mid = spread_bps = d10b = d10a = d25b = d25a = imb = None
    wall: dict[str, Any] | None = None
    walls = 0
    best_bid: float | None
    best_ask: float | None
    if bids and asks:
        best_bid, best_ask = bids[0][0], asks[0][0]
    else:
        best_bid, best_ask = latest.ticker_bid, latest.ticker_ask
    if best_bid is not None and best_ask is not None and best_bid > 0 and best_ask > 0:
        mid = (best_bid + best_ask) / 2
        spread_bps = (best_ask - best_bid) / mid * 1e4
    if bids and asks and mid is not None:
        cached = latest.book_figures
        # Equal, not only the same objects: Binance pushes a quiet book again every 500 ms.
        if cached is not None and cached[0] == bids and cached[1] == asks:
            d10b, d25b, d10a, d25a, imb, found, medians = cached[2]
            if len(latest.wall_seen) != len(found):  # the same walls as last second: their sightings stand
                latest.wall_seen = wall_ages(latest.wall_seen, found, now_ms)
        else:
            d10b, d25b, bid_qty = side_sums(bids, mid, True)
            d10a, d25a, ask_qty = side_sums(asks, mid, False)
            imb = (bid_qty - ask_qty) / (bid_qty + ask_qty) if bid_qty + ask_qty > 0 else None
            medians = {"bid": median([q for _p, q in bids]), "ask": median([q for _p, q in asks])}
            found = wall_levels(bids, asks, rules.wall_multiple, medians)
            latest.book_figures = (bids, asks, (d10b, d25b, d10a, d25a, imb, found, medians))
            latest.wall_seen = wall_ages(latest.wall_seen, found, now_ms) if found or latest.wall_seen else {}
        walls = len(found)
        if found:
            side, price, size = max(found, key=lambda w: w[1] * w[2])
            age_s = (now_ms - latest.wall_seen[(side, price)]) / 1000
            large = size >= rules.wall_flag_multiple * medians[side]
            wall = {"side": side, "price": price, "size": size, "notional": price * size,
                    "distance_bps": abs(price - mid) / mid * 1e4, "age_s": age_s,
                    "fresh": age_s < rules.wall_fresh_s and large}
    else:
        latest.wall_seen = {}
    prune(latest, now_ms, rules)
    buy, sell = liquidation_sums(latest.liquidations, now_ms, rules.liq_window_s)
    # The histories keep each second's value as written (rounded once, when appended).
    r = rounders(latest.decimals)
    latest.spread_hist.append(_finite_or_none(spread_bps, r["ratio"]))
    latest.depth25_hist.append(_finite_or_none(d25b + d25a, r["quote"]) if d25b is not None and d25a is not None
                               else None)
    return {
        "symbol": latest.symbol, "ts": now_ms, "mid": mid, "spread_bps": spread_bps,
        "depth10_bid": d10b, "depth10_ask": d10a, "depth25_bid": d25b, "depth25_ask": d25a,
        "imbalance20": imb, "wall": wall, "walls": walls,
        "liq5m_buy": buy, "liq5m_sell": sell, "liq_burst": had_burst(latest.liquidations, now_ms, rules),
        "funding_rate": latest.funding_rate, "quote_volume_24h": latest.quote_volume,
        "change_24h_pct": latest.change_pct, "focus": focus, "stale": stale,
    }


# How each number of the row is written (features/rounding.py's rules, as the frames).
_ROW_RULES = {
    "mid": "derived_price", "spread_bps": "ratio", "depth10_bid": "quote", "depth10_ask": "quote",
    "depth25_bid": "quote", "depth25_ask": "quote", "imbalance20": "ratio", "liq5m_buy": "quote",
    "liq5m_sell": "quote", "funding_rate": "ratio", "quote_volume_24h": "quote", "change_24h_pct": "ratio",
}
_WALL_RULES = {"price": "price", "size": "qty", "notional": "quote", "distance_bps": "ratio", "age_s": "duration"}


def _finite_or_none(x: float | None, fn: Any) -> float | None:
    return fn(x) if x is not None and math.isfinite(x) else None


@lru_cache(maxsize=256)
def _rounding(decimals: Decimals) -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]:
    """(key, rounding function) of the row's numbers and of its wall's, for ``decimals``."""
    r = rounders(decimals)
    return (tuple((key, r[kind]) for key, kind in _ROW_RULES.items()),
            tuple((key, r[kind]) for key, kind in _WALL_RULES.items()))


def round_row(row: dict[str, Any], decimals: Decimals) -> dict[str, Any]:
    """``row`` with its numbers written as the frames write them; a non-finite number
    is null. ``row`` itself is left as it was."""
    out = dict(row)
    if row["wall"] is not None:
        out["wall"] = dict(row["wall"])
    return round_in_place(out, decimals)


def round_in_place(row: dict[str, Any], decimals: Decimals) -> dict[str, Any]:
    """:func:`round_row` on ``row`` itself (and its wall), returned. Written out, not
    with :func:`_finite_or_none`: this runs some 20 times a row, for every symbol of
    the market, every second."""
    fields, wall_fields = _rounding(decimals)
    isfinite = math.isfinite
    for key, fn in fields:
        x = row[key]
        if x is not None:
            row[key] = fn(x) if isfinite(x) else None
    wall = row["wall"]
    if wall is not None:
        for key, fn in wall_fields:
            x = wall[key]
            if x is not None:
                wall[key] = fn(x) if isfinite(x) else None
    return row  # the histories are rounded as they are kept
