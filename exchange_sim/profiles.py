"""What each symbol's market looks like: the calibrated figures behind the order flow.

The two reference profiles come from the real Binance USDT-M recordings of
../shared/data/binance-usdm (BTCUSDT and ETHUSDT, 2024-08-08, a volatile evening),
measured with ``python -m exchange_sim.realism --measure-real``:

- where the book changes, as quantiles of the distance from the touch: half the
  changes of both books lie within 7 bps of it, 10 % within 1.4 bps;
- how many levels rest at each distance from the touch and how large they are
  (sparse near the touch, dense 3 to 30 bps away, a thin tail of stub orders out to
  prices far from the market);
- the touch queues (median 3.2 BTC, 15.5 ETH), the market orders (about 15 and 10 a
  second, lognormal sizes with a median near 1,850 and 560 USDT), the fills they
  split into, and how the price moves (1 s / 10 s / 60 s standard deviations of the
  mid of 1.3 / 3.6 / 7 bps).

Distances are kept in basis points and sizes in quote currency, so a profile holds
at any price and tick: a symbol is described by its price, tick and lot plus an
activity relative to BTCUSDT (1.0) and a volatility factor (``contracts.py``).
Every rate here is the volatile regime's; the calm regime scales them down
(``calm_vol``, ``calm_activity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Where the book changes: (share of changes, distance from the touch in bps), the
# quantiles of both recordings (they agree within 20 % once distances are in bps).
# The last points are the stub orders far from the market.
DISTANCE_QUANTILES_BPS: tuple[tuple[float, float], ...] = (
    (0.0, 0.05), (0.01, 0.18), (0.05, 0.78), (0.10, 1.35), (0.20, 2.45), (0.30, 3.7), (0.40, 5.1),
    (0.50, 7.1), (0.60, 9.4), (0.70, 14.0), (0.80, 24.0), (0.85, 37.0), (0.90, 100.0), (0.95, 300.0),
    (0.97, 1600.0), (1.00, 9000.0),
)

# Resting levels a side by distance from the touch: (from bps, to bps, levels, median
# level size in quote currency). BTCUSDT at 61,800 (0.1 tick: 1 bps = 61.8 ticks).
BTC_BOOK: tuple[tuple[float, float, float, float], ...] = (
    (0.016, 0.18, 1.2, 2_040),
    (0.18, 0.82, 8.4, 3_360),
    (0.82, 1.63, 22.0, 1_680),
    (1.63, 3.25, 66.0, 1_800),
    (3.25, 8.1, 245.0, 2_280),
    (8.1, 16.2, 380.0, 4_560),
    (16.2, 32.4, 600.0, 10_000),
    (32.4, 81.0, 800.0, 1_500),
    (81.0, 324.0, 2_600.0, 20_000.0),
    (324.0, 1_620.0, 800.0, 840),
    (1_620.0, 9_000.0, 48.0, 3_120),
)
# ETHUSDT at 2,680 (0.01 tick: 1 bps = 26.8 ticks).
ETH_BOOK: tuple[tuple[float, float, float, float], ...] = (
    (0.037, 0.41, 3.6, 1_500),
    (0.41, 1.9, 22.6, 900),
    (1.9, 3.7, 42.5, 1_100),
    (3.7, 7.5, 92.7, 1_732),
    (7.5, 18.7, 258.0, 1_575),
    (18.7, 37.3, 382.0, 2_992),
    (37.3, 74.6, 360.0, 210),
    (74.6, 187.0, 706.0, 1_628),
    (187.0, 746.0, 711.0, 919),
    (746.0, 3_730.0, 339.0, 210),
    (3_730.0, 9_000.0, 115.0, 26),
)


@dataclass(frozen=True, slots=True)
class MarketParams:
    """Knobs of one symbol's order flow, in the volatile regime. Sizes are in quote
    currency (USDT), distances in bps; the market converts them with its price, tick
    and lot."""

    step_ms: int = 50  # one engine batch; @depth@100ms merges two of them
    # The latent price: a random walk plus a mean-reverting swing, in bps.
    walk_bps: float = 1.05  # std of the walk over one second
    swing_bps: float = 1.25  # stationary std of the swing
    swing_tau_s: float = 5.0  # the swing's memory
    trend_bps_per_min: float = 6.0  # a steady drift...
    trend_turn_s: float = 900.0  # ... whose direction turns every so often (mean seconds)
    requotes_per_s: float = 1.8  # how often the quotes move to the latent price
    impact_share: float = 0.1  # share of a market order's own price move the latent price keeps
    # The touch: one large queue a side, kept near its size by small orders.
    touch_notional: float = 290_000.0  # usual queue at the best price
    touch_ops_per_s: float = 170.0  # small arrivals and cancels at the best prices
    # Market orders: Hawkes-clustered arrivals, lognormal sizes, split into fills.
    takers_per_s: float = 11.0
    taker_notional: float = 1_200.0  # median market order
    taker_sigma: float = 2.7
    maker_notional: float = 1_300.0  # median resting order a market order fills...
    first_maker_multiple: float = 14.0  # ... except the first at each price, larger
    maker_sigma: float = 2.4
    hawkes_share: float = 0.45  # share of market orders triggered by earlier ones
    hawkes_tau_s: float = 0.3  # how long a market order excites others
    # The rest of the book.
    book_ops_per_s: float = 1_300.0  # level changes a second away from the touch
    book_ops_sigma: float = 1.2  # lognormal sigma of the changes per batch
    distances: tuple[tuple[float, float], ...] = DISTANCE_QUANTILES_BPS
    book: tuple[tuple[float, float, float, float], ...] = BTC_BOOK
    size_sigma: float = 2.0  # lognormal sigma of new levels' sizes
    size_cap: float = 4.8  # and the largest, in log units above the band's median
    resize_sigma: float = 1.6  # ... and of what a resize adds or takes
    min_notional: float = 100.0  # the smallest order (Binance's minimum notional)
    min_rest_notional: float = 100.0  # the least a partial cancel leaves resting
    new_share: float = 0.25  # of book changes: a new level
    delete_share: float = 0.25  # ... a level removed (the rest resize one)
    # Regimes: the calm regime's volatility and activity as shares of the volatile one's.
    calm_vol: float = 0.1
    calm_activity: float = 0.35
    liquidations_per_min: float = 3.0  # forced orders (volatile regime; rarer when calm)
    id_step_max: int = 40  # update ids grow by 1..id_step_max per operation
    min_levels: int = 20  # market orders never eat a side below this many levels

    def multipliers(self, level: float) -> tuple[float, float]:
        """(volatility, activity) multipliers at regime ``level`` (0 calm, 1 volatile),
        interpolated geometrically."""
        calm = 1.0 - level
        return self.calm_vol**calm, self.calm_activity**calm


BTC = MarketParams()
ETH = MarketParams(
    touch_notional=45_000.0,
    book_ops_sigma=1.0,
    touch_ops_per_s=140.0,
    takers_per_s=4.2,
    taker_notional=450.0,
    taker_sigma=2.8,
    maker_notional=200.0,
    first_maker_multiple=20.0,
    maker_sigma=2.5,
    resize_sigma=2.0,
    size_sigma=2.0,
    size_cap=4.0,
    trend_bps_per_min=0.0,
    walk_bps=0.8,
    swing_bps=1.55,
    min_notional=20.0,
    min_rest_notional=60.0,
    book=ETH_BOOK,
    new_share=0.14,
    delete_share=0.15,
    liquidations_per_min=2.0,
)

# Calibrated symbols: their profile as measured, whatever the contract table says.
CALIBRATED: dict[str, MarketParams] = {"btcusdt": BTC, "ethusdt": ETH}


def scaled(activity: float, vol_factor: float = 1.0, base: MarketParams = BTC) -> MarketParams:
    """A profile for a contract ``activity`` times as busy as BTCUSDT (0 < activity <= 1)
    and ``vol_factor`` times as volatile: fewer and smaller orders, fewer levels, a
    smaller touch. Rates scale with the activity, sizes and level counts with its
    square root (a thin market has fewer participants, and each of them smaller)."""
    a = min(1.0, max(1e-6, activity))
    root = math.sqrt(a)
    # A quiet market's engine batches are longer: it has little to put in them.
    step_ms = 50 if a >= 0.05 else 250 if a >= 0.005 else 500
    return replace(
        base,
        step_ms=step_ms,
        walk_bps=base.walk_bps * vol_factor,
        swing_bps=base.swing_bps * vol_factor,
        requotes_per_s=base.requotes_per_s * max(0.05, a**0.5),
        touch_notional=base.touch_notional * a**0.8,
        touch_ops_per_s=base.touch_ops_per_s * a,
        takers_per_s=base.takers_per_s * a,
        taker_notional=base.taker_notional * root,
        maker_notional=base.maker_notional * root,
        book_ops_per_s=base.book_ops_per_s * a,
        book=tuple((lo, hi, max(0.3, n * root), size * root) for lo, hi, n, size in base.book),
        liquidations_per_min=base.liquidations_per_min * a,
        min_notional=5.0,
        min_rest_notional=5.0,
    )
