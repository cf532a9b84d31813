"""Cont-Kukanov-Stoikov OFI: every branch of e_n, multi-level OFI, the rolling window."""

from __future__ import annotations

import math
import random

import pytest

from features.ofi import OfiTracker, level_ofi, multi_level_ofi

S = 1_000_000_000
ASK_FLAT = ((102.0, 5.0), (102.0, 5.0))  # unchanged ask: -5 + 5 = 0
BID_FLAT = ((100.0, 5.0), (100.0, 5.0))  # unchanged bid: +5 - 5 = 0


@pytest.mark.parametrize(
    ("prev_bid", "bid", "expected"),
    [
        ((100.0, 2.0), (101.0, 3.0), 3.0),  # bid up: + Qb_n = 3
        ((100.0, 2.0), (100.0, 5.0), 3.0),  # bid unchanged: 5 - 2
        ((100.0, 2.0), (99.0, 4.0), -2.0),  # bid down: - Qb_(n-1) = -2
    ],
)
def test_bid_branches(prev_bid: tuple[float, float], bid: tuple[float, float], expected: float) -> None:
    assert level_ofi(prev_bid, bid, *ASK_FLAT) == expected


@pytest.mark.parametrize(
    ("prev_ask", "ask", "expected"),
    [
        ((101.0, 2.0), (102.0, 3.0), 2.0),  # ask up: + Qa_(n-1) = 2
        ((101.0, 2.0), (101.0, 5.0), -3.0),  # ask unchanged: -5 + 2
        ((101.0, 2.0), (100.5, 4.0), -4.0),  # ask down: - Qa_n = -4
    ],
)
def test_ask_branches(prev_ask: tuple[float, float], ask: tuple[float, float], expected: float) -> None:
    assert level_ofi(*BID_FLAT, prev_ask, ask) == expected


def test_multi_level_uses_the_mth_level_and_reads_missing_levels_as_empty() -> None:
    prev_b = [(100.0, 1.0), (99.0, 2.0)]
    prev_a = [(101.0, 1.0), (102.0, 2.0)]
    bids = [(100.0, 1.0), (99.0, 6.0), (98.0, 1.5)]  # level 2 +4, level 3 appears: +1.5
    asks = [(101.0, 1.0)]  # level 2 ask vanished: + Qa_(n-1) = +2
    assert multi_level_ofi(prev_b, prev_a, bids, asks, 4) == [0.0, 6.0, 1.5, 0.0]


def test_window_sum_drops_events_older_than_one_second() -> None:
    t = OfiTracker(levels=2, window_s=1.0)
    assert t.ofi(0) is None  # no state yet
    t.on_book(0, [(100, 1.0), (99, 1.0)], [(101, 1.0), (102, 1.0)])  # first state: no event
    t.on_book(2 * S // 10, [(100, 3.0), (99, 1.0)], [(101, 1.0), (102, 1.0)])  # e = +2
    t.on_book(5 * S // 10, [(100, 3.0), (99, 1.0)], [(101, 4.0), (102, 2.0)])  # e = -3, l2 -1
    t.on_book(11 * S // 10, [(101, 0.5), (100, 3.0)], [(102, 1.0), (103, 1.0)])  # bid up +0.5; ask up +4
    # at 1.1 s the window is (0.1, 1.1]: 2 - 3 + 4.5 = 3.5
    assert t.ofi(11 * S // 10) == pytest.approx(3.5)
    # level 2: 0 + (-1) + (bid 100 > 99: +3; ask 103 > 102: +2) = 4
    assert t.ofi_levels(11 * S // 10) == pytest.approx([3.5, 4.0])
    # at 1.6 s only the 1.1 s event is left
    assert t.ofi(16 * S // 10) == pytest.approx(4.5)
    # at 2.1 s (event exactly 1 s old is out) nothing is left: exactly zero
    assert t.ofi(21 * S // 10) == 0.0
    assert t.ofi_levels(21 * S // 10) == [0.0, 0.0]


def test_depth_delta_is_the_one_second_change_and_equals_ofi_without_price_moves() -> None:
    t = OfiTracker(levels=1, window_s=1.0)
    t.on_book(0, [(100, 1.0)], [(101, 1.0)])  # D = 0
    t.on_book(5 * S // 10, [(100, 3.0)], [(101, 1.0)])  # D = 2
    assert t.depth_delta(5 * S // 10) is None  # no state 1 s old yet
    t.on_book(12 * S // 10, [(100, 3.0)], [(101, 4.0)])  # D = -1
    # base = last state at or before 0.2 s (D = 0): -1 - 0
    assert t.depth_delta(12 * S // 10) == pytest.approx(-1.0)
    assert t.ofi(12 * S // 10) == pytest.approx(-1.0)  # +2 - 3 at fixed prices
    # at 1.6 s the base is the 0.5 s state (D = 2): -1 - 2
    assert t.depth_delta(16 * S // 10) == pytest.approx(-3.0)
    assert t.ofi(16 * S // 10) == pytest.approx(-3.0)


def test_running_sum_does_not_drift_from_the_exact_window_sum() -> None:
    rng = random.Random(7)
    t = OfiTracker(levels=3, window_s=1.0)
    events: list[tuple[int, float]] = []
    prev = None
    for i in range(5000):
        ts = i * S // 20
        bids = [(1000 - j + rng.randint(-1, 1), rng.random() * 10) for j in range(3)]
        asks = [(1002 + j + rng.randint(-1, 1), rng.random() * 10) for j in range(3)]
        bids.sort(reverse=True)
        asks.sort()
        if prev is not None:
            events.append((ts, level_ofi(prev[0][0], bids[0], prev[1][0], asks[0])))
        prev = (bids, asks)
        t.on_book(ts, bids, asks)
    now = 4999 * S // 20
    exact = math.fsum(e for ts, e in events if ts > now - S)
    assert t.ofi(now) == pytest.approx(exact, abs=1e-9)


def test_reset_forgets_the_previous_state() -> None:
    t = OfiTracker(levels=1)
    t.on_book(0, [(100, 1.0)], [(101, 1.0)])
    t.reset()
    t.on_book(S // 10, [(100, 9.0)], [(101, 1.0)])
    assert t.ofi(S // 10) == 0.0  # no e_n across the reset
