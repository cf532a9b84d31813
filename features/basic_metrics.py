"""Book metrics of ../shared/docs/metrics.md ("Book metrics").

Everything here is pure: functions of the top-N levels (``[(price, qty)]``, best
first) or, for the depth bands, of the whole :class:`~orderbook.book_state.BookState`.
A metric that cannot be computed (an empty side, no mid) is ``None``, never 0 or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from orderbook.book_state import BookState

Level = tuple[float, float]  # (price, qty)

# Tolerance, in ticks, for a level sitting exactly on a band edge (float rounding of
# mid * (1 +/- b / 1e4) / tick must not drop it).
_EDGE_EPS_TICKS = 1e-6


@dataclass(frozen=True, slots=True)
class TopMetrics:
    """Top-of-book metrics of one book state; units as in metrics.md."""

    best_bid: float | None
    best_ask: float | None
    mid_price: float | None
    spread: float | None
    spread_bps: float | None
    microprice: float | None
    imbalance: float | None
    imbalance_l1: float | None
    total_bid_volume: float | None
    total_ask_volume: float | None
    depth_weighted_bid: float | None
    depth_weighted_ask: float | None
    depth_weighted_mid: float | None
    slope_bid: float | None
    slope_ask: float | None
    cumulative_bid: list[float]
    cumulative_ask: list[float]


def mid_price(best_bid: float | None, best_ask: float | None) -> float | None:
    """(Pb_1 + Pa_1) / 2; None unless both sides have a level."""
    if best_bid is None or best_ask is None:
        return None
    return (best_bid + best_ask) / 2.0


def spread(best_bid: float | None, best_ask: float | None) -> float | None:
    """Pa_1 - Pb_1, in price."""
    if best_bid is None or best_ask is None:
        return None
    return best_ask - best_bid


def spread_bps(best_bid: float | None, best_ask: float | None) -> float | None:
    """spread / mid * 1e4."""
    mid = mid_price(best_bid, best_ask)
    if mid is None or mid <= 0.0:
        return None
    return (best_ask - best_bid) / mid * 1e4  # type: ignore[operator]


def microprice(bids: Sequence[Level], asks: Sequence[Level]) -> float | None:
    """Size-weighted mid of level 1, (Pb_1*Qa_1 + Pa_1*Qb_1) / (Qb_1 + Qa_1).

    Stoikov (2018, "The micro-price: a high-frequency estimator of future prices",
    Quantitative Finance 18(12)) calls this the *weighted mid*; his micro-price proper
    is an estimated expectation and is not computed here.
    """
    if not bids or not asks:
        return None
    (pb, qb), (pa, qa) = bids[0], asks[0]
    total = qb + qa
    if total <= 0.0:
        return None
    return (pb * qa + pa * qb) / total


def imbalance(bids: Sequence[Level], asks: Sequence[Level], n: int) -> float | None:
    """(sum Qb_1..n - sum Qa_1..n) / (sum Qb_1..n + sum Qa_1..n), in [-1, 1].

    None when either side is empty: a one-sided book is a broken state, and +/-1
    would read as a real signal.
    """
    if not bids or not asks:
        return None
    b = math.fsum(q for _, q in bids[:n])
    a = math.fsum(q for _, q in asks[:n])
    total = b + a
    if total <= 0.0:
        return None
    return (b - a) / total


def total_volume(levels: Sequence[Level], n: int) -> float | None:
    """Sum of Q over the top n levels of one side; None when the side is empty."""
    if not levels:
        return None
    return math.fsum(q for _, q in levels[:n])


def depth_weighted_price(levels: Sequence[Level], n: int) -> float | None:
    """sum(P*Q) / sum(Q) over the top n levels of one side."""
    top = levels[:n]
    qty = math.fsum(q for _, q in top)
    if not top or qty <= 0.0:
        return None
    return math.fsum(p * q for p, q in top) / qty


def cumulative_depth(levels: Sequence[Level], n: int) -> list[float]:
    """Cumulative quantity at each of the top n levels (the depth curve); [] if empty."""
    out: list[float] = []
    run = 0.0
    for _, q in levels[:n]:
        run += q
        out.append(run)
    return out


def slope(levels: Sequence[Level], mid: float | None, n: int) -> float | None:
    """Least-squares slope (with intercept) of cumulative quantity at levels 1..n
    against distance from mid in bps, abs(P - mid) / mid * 1e4: base asset per bp.

    None without a mid, with fewer than two levels, or when all distances are equal.
    """
    if mid is None or mid <= 0.0:
        return None
    top = levels[:n]
    if len(top) < 2:
        return None
    xs = [abs(p - mid) / mid * 1e4 for p, _ in top]
    ys = cumulative_depth(top, n)
    k = len(xs)
    mx = math.fsum(xs) / k
    my = math.fsum(ys) / k
    sxx = math.fsum((x - mx) * (x - mx) for x in xs)
    if sxx <= 0.0:
        return None
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx


def top_metrics(bids: Sequence[Level], asks: Sequence[Level], n: int) -> TopMetrics:
    """All per-event metrics from the top levels of each side (best first)."""
    bb = bids[0][0] if bids else None
    ba = asks[0][0] if asks else None
    mid = mid_price(bb, ba)
    dw_bid = depth_weighted_price(bids, n)
    dw_ask = depth_weighted_price(asks, n)
    dw_mid = (dw_bid + dw_ask) / 2.0 if dw_bid is not None and dw_ask is not None else None
    return TopMetrics(
        best_bid=bb,
        best_ask=ba,
        mid_price=mid,
        spread=spread(bb, ba),
        spread_bps=spread_bps(bb, ba),
        microprice=microprice(bids, asks),
        imbalance=imbalance(bids, asks, n),
        imbalance_l1=imbalance(bids, asks, 1),
        total_bid_volume=total_volume(bids, n),
        total_ask_volume=total_volume(asks, n),
        depth_weighted_bid=dw_bid,
        depth_weighted_ask=dw_ask,
        depth_weighted_mid=dw_mid,
        slope_bid=slope(bids, mid, n),
        slope_ask=slope(asks, mid, n),
        cumulative_bid=cumulative_depth(bids, n),
        cumulative_ask=cumulative_depth(asks, n),
    )


def book_top_metrics(book: BookState, n: int) -> TopMetrics:
    """:func:`top_metrics` of the best n levels of ``book``."""
    bids, asks = book.top(n)
    return top_metrics(bids, asks, n)


def band_label(bps: float) -> str:
    """JSON key of a band: 5.0 -> "5", 2.5 -> "2.5"."""
    return f"{bps:g}"


def depth_bands(book: BookState, bands_bps: Sequence[float]) -> dict[str, dict[str, float]] | None:
    """Per side, total quantity within each band (bps of mid, edge included) over the
    WHOLE book: ``{"bid": {"5": q, ...}, "ask": {...}}``; None without a mid.

    One ``irange`` per side over the widest band, walked from the touch outward, so
    the cost is the number of levels within the widest band, not the book size.
    """
    bb, ba = book.best_bid_key(), book.best_ask_key()
    if bb is None or ba is None:
        return None
    bands = sorted(float(b) for b in bands_bps)
    if not bands:
        return {"bid": {}, "ask": {}}
    mid_k = (bb + ba) / 2.0  # mid in ticks
    # Half-widths in ticks: |k - mid_k| <= b / 1e4 * mid_k  <=>  |P - mid| / mid * 1e4 <= b.
    widths = [b / 1e4 * mid_k for b in bands]
    out: dict[str, dict[str, float]] = {}
    for side_name, side, sign in (("bid", book.bids, -1), ("ask", book.asks, 1)):
        widest = widths[-1]
        if sign < 0:
            lo = math.ceil(mid_k - widest - _EDGE_EPS_TICKS)
            keys = side.irange(minimum=lo, reverse=True)
        else:
            hi = math.floor(mid_k + widest + _EDGE_EPS_TICKS)
            keys = side.irange(maximum=hi)
        totals = [0.0] * len(bands)
        i = 0  # first band this level can still belong to (levels move outward)
        for k in keys:
            dist = abs(k - mid_k)
            while i < len(widths) and dist > widths[i] + _EDGE_EPS_TICKS:
                i += 1
            if i == len(widths):
                break
            totals[i] += side[k]
        run = 0.0
        result: dict[str, float] = {}
        for b, t in zip(bands, totals, strict=True):
            run += t
            result[band_label(b)] = run
        out[side_name] = result
    return out
