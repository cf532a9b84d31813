"""Heatmap columns, volume profile with running sums, trade and alert windows."""

from __future__ import annotations

import random

import pytest

from orderbook.book_state import BookState
from state.level_history import BinnedSizes, LevelHistory, RecentEvents, heatmap_column

S = 1_000_000_000


def test_heatmap_column_sums_the_whole_book_per_absolute_bin() -> None:
    book = BookState("testusdt", 0.1)
    # bin width 5 ticks = 0.5; keys: 99.9 -> 999 (bin 199), 100.1 -> 1001 (bin 200)
    book.apply_snapshot(
        1,
        [("99.9", "1"), ("99.6", "2"), ("99.4", "4"), ("97.0", "8")],
        [("100.1", "1.5"), ("100.4", "0.5"), ("100.5", "3"), ("110.0", "9")],
    )
    col = heatmap_column(book, bin_ticks=5, bins=4)
    assert col is not None
    # mid key (999 + 1001) // 2 = 1000 -> bin 200; 4 bins centred: 198, 199, 200, 201
    assert col.bin0 == 198 and col.bin_size == 0.5
    # bin 198 [99.0, 99.5): 99.4 x 4; bin 199 [99.5, 100.0): 99.9 + 99.6 = 3;
    # bin 200 [100.0, 100.5): 100.1 + 100.4 = 2; bin 201 [100.5, 101.0): 3
    assert col.sizes == (4.0, 3.0, 2.0, 3.0)
    assert heatmap_column(BookState("x", 0.1), 5, 4) is None


def test_volume_profile_counts_absent_bins_as_zero_and_expires() -> None:
    h = LevelHistory(window_s=3.0, max_columns=10)
    h.add_column(0, BinnedSizes(10, 0.5, (1.0, 2.0)))  # bins 10, 11
    h.add_column(1 * S, BinnedSizes(11, 0.5, (4.0, 6.0)))  # bins 11, 12
    p = h.profile()
    assert p is not None
    # bin 10: (1 + 0) / 2; bin 11: (2 + 4) / 2; bin 12: (0 + 6) / 2
    assert (p.bin0, p.sizes) == (10, (0.5, 3.0, 3.0))
    h.add_column(3 * S, BinnedSizes(12, 0.5, (3.0, 3.0)))  # the 0 s column is now 3 s old: out
    p = h.profile()
    assert p is not None
    # bin 11: 4 / 2; bin 12: (6 + 3) / 2; bin 13: 3 / 2
    assert (p.bin0, p.sizes) == (11, (2.0, 4.5, 1.5))
    surface = h.surface()
    assert surface is not None
    assert surface["times"] == [1.0, 3.0] and surface["bin0"] == 11
    assert surface["sizes"] == [[4.0, 6.0, 0.0], [0.0, 3.0, 3.0]]


def test_running_sums_match_a_brute_force_mean() -> None:
    rng = random.Random(3)
    h = LevelHistory(window_s=180.0, max_columns=180)
    cols = []
    for t in range(600):
        col = BinnedSizes(1000 + rng.randint(-20, 20), 5.0, tuple(rng.random() * 3 for _ in range(120)))
        cols.append(col)
        h.add_column(t * S, col)
    kept = cols[-180:]
    assert len(h) == 180
    expected: dict[int, float] = {}
    for c in kept:
        for i, q in enumerate(c.sizes):
            expected[c.bin0 + i] = expected.get(c.bin0 + i, 0.0) + q
    p = h.profile()
    assert p is not None
    assert p.bin0 == min(expected)
    for i, mean in enumerate(p.sizes):
        assert mean == pytest.approx(expected.get(p.bin0 + i, 0.0) / 180, abs=1e-12)


def test_recent_events_keep_the_window_and_a_hard_bound() -> None:
    ev: RecentEvents[str] = RecentEvents(window_s=180.0, max_items=1000)
    for t in range(400):
        ev.add(t * S, f"e{t}")
    assert ev.items()[0] == "e220" and len(ev) == 180  # (219 s, 399 s]
    assert ev.since(397 * S) == ["e398", "e399"]
    burst: RecentEvents[int] = RecentEvents(window_s=180.0, max_items=10)
    for i in range(100):
        burst.add(0, i)
    assert list(burst) == list(range(90, 100))
