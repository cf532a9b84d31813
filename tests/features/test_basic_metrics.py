"""Book metrics on hand-made books, every value worked out by hand."""

from __future__ import annotations

import pytest

from features.basic_metrics import book_top_metrics, depth_bands, top_metrics
from orderbook.book_state import BookState

N = 10


def make_book(bids: list[tuple[str, str]], asks: list[tuple[str, str]], tick: float = 0.1) -> BookState:
    book = BookState("testusdt", tick)
    book.apply_snapshot(1, bids, asks)
    return book


# bids 100.0 x 2, 99.9 x 1, 99.8 x 3; asks 100.1 x 1, 100.2 x 2, 100.4 x 4
BIDS = [("100.0", "2"), ("99.9", "1"), ("99.8", "3")]
ASKS = [("100.1", "1"), ("100.2", "2"), ("100.4", "4")]


def test_two_sided_book_metrics_match_hand_arithmetic() -> None:
    m = book_top_metrics(make_book(BIDS, ASKS), N)
    assert m.best_bid == 100.0
    assert m.best_ask == 100.1
    assert m.mid_price == pytest.approx(100.05)  # (100.0 + 100.1) / 2
    assert m.spread == pytest.approx(0.1)  # 100.1 - 100.0
    assert m.spread_bps == pytest.approx(0.1 / 100.05 * 1e4)  # = 9.995 bps
    # weighted mid: (Pb*Qa + Pa*Qb) / (Qb + Qa) = (100.0*1 + 100.1*2) / 3 = 300.2 / 3
    assert m.microprice == pytest.approx(300.2 / 3)
    # imbalance: bids 2+1+3 = 6, asks 1+2+4 = 7 -> (6-7)/13
    assert m.imbalance == pytest.approx(-1 / 13)
    assert m.imbalance_l1 == pytest.approx(1 / 3)  # (2-1)/(2+1)
    assert m.total_bid_volume == 6.0
    assert m.total_ask_volume == 7.0
    # (100.0*2 + 99.9*1 + 99.8*3) / 6 = 599.3 / 6; (100.1*1 + 100.2*2 + 100.4*4) / 7 = 702.1 / 7
    assert m.depth_weighted_bid == pytest.approx(599.3 / 6)
    assert m.depth_weighted_ask == pytest.approx(702.1 / 7)
    assert m.depth_weighted_mid == pytest.approx((599.3 / 6 + 702.1 / 7) / 2)
    assert m.cumulative_bid == [2.0, 3.0, 6.0]
    assert m.cumulative_ask == [1.0, 3.0, 7.0]
    # slope: with u = 1e4 / 100.05, bid distances are 0.05u, 0.15u, 0.25u and cumulative
    # qty 2, 3, 6: dx = -0.1u, 0, 0.1u; sxy = 0.1u * (6 - 2) = 0.4u; sxx = 0.02u^2
    # -> slope = 20 / u = 20 * 100.05 / 1e4 = 0.2001 base per bp.
    assert m.slope_bid == pytest.approx(0.2001)
    # ask distances 0.05u, 0.15u, 0.35u, cumulative 1, 3, 7: in units of 0.01u,
    # dx = -40/3, -10/3, 50/3 and dy = -8/3, -2/3, 10/3 -> sxy = 840/9 * 0.01u,
    # sxx = 4200/9 * 1e-4 u^2 -> slope = 20 / u = 0.2001 as well.
    assert m.slope_ask == pytest.approx(0.2001)


def test_top_n_limits_the_sums() -> None:
    m = book_top_metrics(make_book(BIDS, ASKS), 2)
    assert m.total_bid_volume == 3.0  # 2 + 1
    assert m.total_ask_volume == 3.0  # 1 + 2
    assert m.imbalance == 0.0
    assert m.cumulative_bid == [2.0, 3.0]


def test_one_sided_book_gives_none_for_two_sided_metrics() -> None:
    m = book_top_metrics(make_book(BIDS, []), N)
    assert m.best_bid == 100.0
    assert m.total_bid_volume == 6.0
    assert m.depth_weighted_bid == pytest.approx(599.3 / 6)
    assert m.cumulative_bid == [2.0, 3.0, 6.0]
    for value in (
        m.best_ask,
        m.mid_price,
        m.spread,
        m.spread_bps,
        m.microprice,
        m.imbalance,
        m.imbalance_l1,
        m.total_ask_volume,
        m.depth_weighted_ask,
        m.depth_weighted_mid,
        m.slope_bid,  # needs a mid
        m.slope_ask,
    ):
        assert value is None
    assert m.cumulative_ask == []
    assert depth_bands(make_book(BIDS, []), (5, 10)) is None


def test_empty_book_is_all_none() -> None:
    m = top_metrics([], [], N)
    assert m.cumulative_bid == [] and m.cumulative_ask == []
    values = [getattr(m, f) for f in m.__slots__ if not f.startswith("cumulative")]
    assert values == [None] * len(values)
    assert depth_bands(make_book([], []), (5,)) is None


def test_single_level_side_has_no_slope() -> None:
    m = top_metrics([(100.0, 1.0)], [(100.1, 1.0), (100.2, 1.0)], N)
    assert m.slope_bid is None  # one point: no least-squares line
    assert m.slope_ask is not None


def test_depth_bands_cover_the_whole_book_with_edges_included() -> None:
    # tick 0.01; bids 99.99 down to 98.90 (110 levels) x 1; asks 100.01 up to 101.10 x 2.
    # mid = 100.00, so 5 bps = 0.05: bids 99.95..99.99 (5 levels, the 99.95 edge included).
    bids = [(f"{(9999 - i) / 100:.2f}", "1") for i in range(110)]
    asks = [(f"{(10001 + i) / 100:.2f}", "2") for i in range(110)]
    book = make_book(bids, asks, tick=0.01)
    bands = depth_bands(book, (5, 10, 25, 50, 100))
    # within b bps: b levels a side (99.99 - (b-1)*0.01 .. 99.99), far beyond the top 10
    assert bands == {
        "bid": {"5": 5.0, "10": 10.0, "25": 25.0, "50": 50.0, "100": 100.0},
        "ask": {"5": 10.0, "10": 20.0, "25": 50.0, "50": 100.0, "100": 200.0},
    }


def test_depth_bands_on_the_small_book() -> None:
    # mid 100.05: 5 bps = 0.050025 -> 100.0 and 100.1 (0.05 away); 25 bps = 0.250125 ->
    # bids down to 99.8 (0.25 away), asks up to 100.2; 100.4 is 0.35 away (35 bps).
    bands = depth_bands(make_book(BIDS, ASKS), (5, 25, 50))
    assert bands == {"bid": {"5": 2.0, "25": 6.0, "50": 6.0}, "ask": {"5": 1.0, "25": 3.0, "50": 7.0}}
