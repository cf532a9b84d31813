"""Impact simulator: the worked example, partial fills, sells, errors, the curve."""

from __future__ import annotations

import math

import pytest

from features.market_impact import BookUnavailable, ImpactError, ImpactSimulator, InvalidOrder
from orderbook.book_state import BookState

SIM = ImpactSimulator(max_size=1000.0)


def make_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> BookState:
    book = BookState("btcusdt", 0.1)
    book.apply_snapshot(1, bids, asks)
    return book


def example_book() -> BookState:
    return make_book(
        [("97500.0", "2.0"), ("97499.8", "3.0")],
        [("97500.1", "4.5"), ("97500.2", "1.0")],
    )


def test_worked_example_buy_of_five() -> None:
    r = SIM.walk(example_book(), "buy", 5.0, in_sync=True)
    # 4.5 @ 97500.1 = 438750.45; + 0.5 @ 97500.2 = 48750.10 -> 487500.55
    assert [(f.price, f.qty) for f in r.fills] == [(97500.1, 4.5), (97500.2, 0.5)]
    assert [f.cumulative_qty for f in r.fills] == [4.5, 5.0]
    assert r.fills[0].cumulative_cost == pytest.approx(438750.45)
    assert r.fills[1].cumulative_cost == pytest.approx(487500.55)
    assert r.vwap == pytest.approx(97500.11)  # 487500.55 / 5
    assert r.best_price == 97500.1 and r.worst_price == 97500.2
    assert r.slippage == pytest.approx(0.01)  # 97500.11 - 97500.1
    assert r.slippage_bps == pytest.approx(0.01 / 97500.1 * 1e4)
    # mid = (97500.0 + 97500.1) / 2 = 97500.05; vwap is 0.06 above it
    assert r.impact_bps == pytest.approx(0.06 / 97500.05 * 1e4)
    assert r.levels_consumed == 2
    assert r.quantity_filled == 5.0 and r.fully_filled


def test_size_within_the_first_level() -> None:
    r = SIM.walk(example_book(), "buy", 4.5, in_sync=True)
    assert r.levels_consumed == 1 and r.fully_filled
    assert r.vwap == pytest.approx(97500.1) and r.slippage == pytest.approx(0.0)


def test_size_larger_than_the_book_is_not_fully_filled() -> None:
    r = SIM.walk(example_book(), "buy", 10.0, in_sync=True)
    assert r.quantity_filled == pytest.approx(5.5)  # min(10, 4.5 + 1.0)
    assert not r.fully_filled
    assert r.levels_consumed == 2 and r.worst_price == 97500.2
    # (438750.45 + 97500.2) / 5.5
    assert r.vwap == pytest.approx((438750.45 + 97500.2) / 5.5)


def test_sell_eats_bids_from_the_best_down() -> None:
    r = SIM.walk(example_book(), "sell", 3.0, in_sync=True)
    # 2.0 @ 97500.0 + 1.0 @ 97499.8 = 195000.0 + 97499.8 = 292499.8 -> vwap 97499.9333
    assert [(f.price, f.qty) for f in r.fills] == [(97500.0, 2.0), (97499.8, 1.0)]
    assert r.vwap == pytest.approx(292499.8 / 3)
    assert r.best_price == 97500.0 and r.worst_price == 97499.8
    assert r.slippage == pytest.approx(97500.0 - 292499.8 / 3)  # best - vwap >= 0
    assert r.slippage > 0
    assert r.impact_bps == pytest.approx((97500.05 - 292499.8 / 3) / 97500.05 * 1e4)


def test_walk_goes_beyond_the_top_ten_levels() -> None:
    asks = [(f"{100 + i * 0.1:.1f}", "1") for i in range(50)]
    book = make_book([("99.9", "1")], asks)
    r = SIM.walk(book, "buy", 40.0, in_sync=True)
    assert r.levels_consumed == 40 and r.fully_filled and r.worst_price == 103.9


@pytest.mark.parametrize("size", [0, 0.0, -1.0, math.nan, math.inf, -math.inf, 1000.5, "5", True, None])
def test_bad_sizes_raise_invalid_order(size: object) -> None:
    with pytest.raises(InvalidOrder, match="btcusdt: size"):
        SIM.walk(example_book(), "buy", size, in_sync=True)  # type: ignore[arg-type]


def test_bad_side_raises_invalid_order() -> None:
    with pytest.raises(InvalidOrder, match="side must be 'buy' or 'sell'"):
        SIM.walk(example_book(), "bid", 1.0, in_sync=True)


def test_empty_side_and_unsynced_book_raise_book_unavailable() -> None:
    book = make_book([("100.0", "1")], [])
    with pytest.raises(BookUnavailable, match="ask side is empty"):
        SIM.walk(book, "buy", 1.0, in_sync=True)
    r = SIM.walk(book, "sell", 1.0, in_sync=True)  # the bid side is there
    assert r.impact_bps is None  # no mid without asks
    with pytest.raises(BookUnavailable, match="not in sync"):
        SIM.walk(example_book(), "buy", 1.0, in_sync=False)
    assert issubclass(BookUnavailable, ImpactError) and issubclass(InvalidOrder, ImpactError)


def test_curve_equals_individual_walks_in_one_pass() -> None:
    asks = [(f"{100 + i * 0.1:.1f}", f"{0.3 + (i % 7) * 0.41:.3f}") for i in range(200)]
    bids = [(f"{99.9 - i * 0.1:.1f}", f"{0.2 + (i % 5) * 0.37:.3f}") for i in range(200)]
    book = make_book(bids, asks)
    sizes = [5.0, 0.1, 50.0, 0.3, 1.0, 100.0, 1000.0, 0.3, 20.0, 7.77]
    for side in ("buy", "sell"):
        curve = SIM.curve(book, side, sizes, in_sync=True)
        assert [p.size for p in curve] == sizes
        for point, size in zip(curve, sizes, strict=True):
            r = SIM.walk(book, side, size, in_sync=True)
            assert (point.quantity_filled, point.vwap, point.worst_price) == (
                r.quantity_filled,
                r.vwap,
                r.worst_price,
            )
            assert (point.slippage, point.slippage_bps, point.impact_bps) == (
                r.slippage,
                r.slippage_bps,
                r.impact_bps,
            )
            assert (point.levels_consumed, point.fully_filled) == (r.levels_consumed, r.fully_filled)
    assert not SIM.curve(book, "buy", [1000.0], in_sync=True)[0].fully_filled


def test_curve_validates_like_walk() -> None:
    with pytest.raises(InvalidOrder):
        SIM.curve(example_book(), "buy", [1.0, -1.0], in_sync=True)
    with pytest.raises(BookUnavailable):
        SIM.curve(example_book(), "buy", [1.0], in_sync=False)
