"""Detectors on scripted 1 Hz samples: what must fire and the near misses that must not."""

from __future__ import annotations

import pytest

from config import Settings
from features.liquidity_detection import (
    EXHAUSTION,
    LAYERING,
    WALL,
    WALL_REMOVED,
    Alert,
    LiquidityDetector,
)
from features.trade import Trade

S = 1_000_000_000
SETTINGS = Settings()


def side(best: float, step: float, sizes: dict[int, float] | None = None, n: int = 20, qty: float = 1.0):
    """n levels from ``best`` stepping by ``step`` (negative for bids), qty 1 except ``sizes``."""
    sizes = sizes or {}
    return [(best + i * step, sizes.get(i, qty)) for i in range(n)]


def bids(sizes: dict[int, float] | None = None, best: float = 100.0, n: int = 20):
    return side(best, -1.0, sizes, n)


def asks(sizes: dict[int, float] | None = None, best: float = 101.0, n: int = 20):
    return side(best, 1.0, sizes, n)


def of_type(alerts: list[Alert], kind: str) -> list[Alert]:
    return [a for a in alerts if a.type == kind]


# --- walls ---------------------------------------------------------------------------
def run_wall(
    size: float, seconds: range, det: LiquidityDetector | None = None
) -> tuple[LiquidityDetector, list[Alert]]:
    det = det or LiquidityDetector("btcusdt", SETTINGS)
    out: list[Alert] = []
    for t in seconds:
        out += det.on_sample(t * S, bids({3: size}), asks(), 1.0)
    return det, out


def test_wall_fires_once_after_more_than_five_seconds() -> None:
    # 39 sizes of 1 and one of 5: the median is 1, so 5.0 is exactly 5x.
    det, alerts = run_wall(5.0, range(0, 7))
    walls = of_type(alerts, WALL)
    assert len(walls) == 1
    a = walls[0]
    assert (a.side, a.price, a.ts_ns) == ("bid", 97.0, 6 * S)  # age 6 s > 5 s
    assert a.details["size"] == 5.0 and a.details["multiple"] == 5.0 and a.details["age_s"] == 6.0
    [w] = det.walls()
    assert (w.side, w.price, w.size, w.multiple, w.age_s) == ("bid", 97.0, 5.0, 5.0, 6.0)
    _, more = run_wall(5.0, range(7, 10), det)
    assert of_type(more, WALL) == []  # one alert per wall
    assert det.walls()[0].age_s == 9.0


def test_wall_of_exactly_five_seconds_does_not_qualify() -> None:
    det, alerts = run_wall(5.0, range(0, 6))  # seen at 0..5 s: age 5.0 s, not more
    assert alerts == [] and det.walls() == []
    gone = det.on_sample(6 * S, bids(), asks(), 1.0)
    assert gone == []  # never a wall, so no WALL_REMOVED either


def test_wall_at_4_9_times_the_median_does_not_qualify() -> None:
    det, alerts = run_wall(4.9, range(0, 10))
    assert alerts == [] and det.walls() == []


def test_wall_that_moves_price_restarts_its_age() -> None:
    det = LiquidityDetector("btcusdt", SETTINGS)
    out: list[Alert] = []
    for t in range(0, 10):
        out += det.on_sample(t * S, bids({3 if t % 2 else 4: 6.0}), asks(), 1.0)
    assert out == []


def test_wall_removed_without_trades_is_pulled() -> None:
    det, _ = run_wall(5.0, range(0, 7))
    alerts = det.on_sample(7 * S, bids(), asks(), 1.0)
    [a] = of_type(alerts, WALL_REMOVED)
    assert (a.side, a.price, a.details["reason"]) == ("bid", 97.0, "pulled")
    assert a.details["traded_qty"] == 0.0
    assert det.walls() == []


def test_wall_removed_by_trades_at_its_price_is_filled() -> None:
    det, _ = run_wall(5.0, range(0, 7))
    trades = [
        Trade(6 * S + 1, 97.0, 3.0, "sell"),  # aggressive sells hit the bid wall
        Trade(6 * S + 2, 97.0, 2.0, "sell"),
        Trade(6 * S + 3, 98.0, 9.0, "sell"),  # another price: does not count
    ]
    alerts = det.on_sample(7 * S, bids(), asks(), 1.0, trades)
    [a] = of_type(alerts, WALL_REMOVED)
    assert a.details["reason"] == "filled"
    assert a.details["traded_qty"] == 5.0


def test_buys_at_a_bid_wall_price_do_not_explain_its_drop() -> None:
    det, _ = run_wall(5.0, range(0, 7))
    alerts = det.on_sample(7 * S, bids(), asks(), 1.0, [Trade(6 * S, 97.0, 5.0, "buy")])
    assert of_type(alerts, WALL_REMOVED)[0].details["reason"] == "pulled"


# --- layering ------------------------------------------------------------------------
def test_four_adjacent_levels_at_8x_fire_layering() -> None:
    det = LiquidityDetector("btcusdt", SETTINGS)
    alerts = det.on_sample(0, bids(), asks({2: 8.0, 3: 8.0, 4: 8.0, 5: 8.0}), 1.0)
    [a] = of_type(alerts, LAYERING)
    assert a.side == "ask" and a.price == 103.0
    assert a.details["levels"] == 4 and a.details["churn"] == 1.0  # C_(t-1) empty
    assert a.details["prices"] == [103.0, 104.0, 105.0, 106.0]


def test_three_adjacent_levels_or_a_broken_run_do_not_fire() -> None:
    det = LiquidityDetector("btcusdt", SETTINGS)
    three = {2: 8.0, 3: 8.0, 4: 8.0}
    broken = {2: 8.0, 3: 8.0, 4: 7.9, 5: 8.0, 6: 8.0}  # 7.9x breaks the run
    assert det.on_sample(0, bids(three), asks(broken), 1.0) == []


def test_layering_stays_quiet_inside_the_cooldown() -> None:
    det = LiquidityDetector("btcusdt", SETTINGS)
    first = {0: 9.0, 1: 9.0, 2: 9.0, 3: 9.0}
    other = {10: 9.0, 11: 9.0, 12: 9.0, 13: 9.0}  # all new prices: churn 1
    assert len(of_type(det.on_sample(0, bids(first), asks(), 1.0), LAYERING)) == 1
    assert of_type(det.on_sample(10 * S, bids(other), asks(), 1.0), LAYERING) == []
    assert of_type(det.on_sample(29 * S, bids(first), asks(), 1.0), LAYERING) == []
    # 30 s after the alert the side may fire again (churn 1: C_(t-1) was `first`)
    assert len(of_type(det.on_sample(30 * S, bids(other), asks(), 1.0), LAYERING)) == 1
    # the other side has its own cooldown
    assert len(of_type(det.on_sample(31 * S, bids(other), asks(first), 1.0), LAYERING)) == 1


def test_layering_churn_of_59_percent_does_not_fire_and_60_percent_does() -> None:
    det = LiquidityDetector("btcusdt", SETTINGS)
    run17 = {i: 9.0 for i in range(17)}
    assert len(of_type(det.on_sample(0, bids(run17), asks(), 1.0), LAYERING)) == 1
    # 40 s later (cooldown over) the 17 big levels sit 10 prices lower: 100..84 before,
    # 90..74 now, so 83..74 are new -> churn 10/17 = 0.588 < 0.6
    shifted = bids(run17, best=90.0)
    assert of_type(det.on_sample(40 * S, shifted, asks(), 1.0), LAYERING) == []

    det = LiquidityDetector("btcusdt", SETTINGS)
    run5 = {i: 9.0 for i in range(5)}
    det.on_sample(0, bids(run5), asks(), 1.0)
    # prices 100..96 before, 98..94 now: new = {95, 94} -> 2/5 = 0.4: quiet
    assert of_type(det.on_sample(40 * S, bids(run5, best=98.0), asks(), 1.0), LAYERING) == []
    # prices 95..91 after 98..94: new = {93, 92, 91} -> 3/5 = 0.6: fires
    [a] = of_type(det.on_sample(80 * S, bids(run5, best=95.0), asks(), 1.0), LAYERING)
    assert a.details["churn"] == 0.6  # 3/5


# --- exhaustion ------------------------------------------------------------------------
def exhaustion_sample(det: LiquidityDetector, t: int, bid_qty: float, spread: float) -> list[Alert]:
    return det.on_sample(t * S, bids(n=10, sizes={i: bid_qty for i in range(10)}), asks(n=10), spread)


def test_exhaustion_fires_once_per_episode_and_rearms() -> None:
    det = LiquidityDetector("btcusdt", SETTINGS)
    for t in range(11):  # depth 10 a side, spread 1.0
        assert exhaustion_sample(det, t, 1.0, 1.0) == []
    # bid depth 4 < 0.5 * 10 and spread 3 > 2 * 1
    [a] = exhaustion_sample(det, 11, 0.4, 3.0)
    assert (a.type, a.side) == (EXHAUSTION, "bid")
    assert a.details["depth"] == pytest.approx(4.0) and a.details["mean_depth"] == 10.0
    assert a.details["mean_spread"] == 1.0
    assert exhaustion_sample(det, 12, 0.4, 3.0) == []  # same episode
    assert exhaustion_sample(det, 13, 1.0, 1.0) == []  # clears: re-arms
    # means of 0..13: depth (11*10 + 4 + 4 + 10) / 14 = 9.14, spread (12*1 + 2*3) / 14 = 1.29
    [b] = exhaustion_sample(det, 14, 0.4, 3.0)
    assert b.side == "bid"


def test_exhaustion_needs_both_conditions() -> None:
    det = LiquidityDetector("btcusdt", SETTINGS)
    for t in range(11):
        exhaustion_sample(det, t, 1.0, 1.0)
    assert exhaustion_sample(det, 11, 0.4, 2.0) == []  # spread exactly 2x: not more
    det = LiquidityDetector("btcusdt", SETTINGS)
    for t in range(11):
        exhaustion_sample(det, t, 1.0, 1.0)
    assert exhaustion_sample(det, 11, 0.5, 5.0) == []  # depth 5 = exactly 50%: not less


@pytest.mark.parametrize(
    ("bid", "one_tick_ask", "two_tick_ask"),
    [(96900.1, 96900.2, 96900.3), (3500.01, 3500.02, 3500.03)],
)
def test_exhaustion_exactly_twice_the_spread_from_real_prices_does_not_fire(
    bid: float, one_tick_ask: float, two_tick_ask: float
) -> None:
    # Price subtraction: a 1-tick spread of 0.09999999999126885 and a 2-tick spread of
    # 0.19999999999708962, which is > 2 x the former by float noise alone. Exactly 2x
    # is not "more than 2x" (metrics.md), whatever the last bits say.
    one, two = one_tick_ask - bid, two_tick_ask - bid
    assert two > 2 * one  # the trap
    det = LiquidityDetector("btcusdt", SETTINGS)
    for t in range(11):
        exhaustion_sample(det, t, 1.0, one)
    assert exhaustion_sample(det, 11, 0.4, two) == []
    assert exhaustion_sample(det, 12, 0.4, 3 * one)[0].type == EXHAUSTION  # 3 ticks: more than 2x


def test_alert_dict_has_the_documented_shape() -> None:
    det = LiquidityDetector("BTCUSDT", SETTINGS)
    [a] = det.on_sample(3 * S, bids(), asks({0: 9.0, 1: 9.0, 2: 9.0, 3: 9.0}), 1.0)
    d = a.to_dict()
    assert set(d) == {"type", "symbol", "side", "price", "ts", "details"}
    assert d["symbol"] == "btcusdt" and d["ts"] == 3.0
