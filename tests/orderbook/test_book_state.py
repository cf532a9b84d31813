from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderbook.book_state import BookState, MalformedLevel


def make_book() -> BookState:
    book = BookState("btcusdt", 0.1)
    book.apply_snapshot(
        100,
        [["97500.10", "3.5"], ["97500.00", "2.1"], ["97499.50", "1.0"]],
        [["97500.20", "1.8"], ["97500.30", "4.2"]],
    )
    return book


def test_price_strings_map_to_one_tick_key_by_rounding() -> None:
    book = BookState("btcusdt", 0.1)
    # 61800.2 / 0.1 is 618001.9999999999 in binary floating point: truncation
    # would give the wrong key, rounding gives the right one.
    assert int(61800.2 / 0.1) == 618001
    assert book.key("61800.2") == 618002
    assert book.key("61800.20") == book.key("61800.2") == book.key(61800.2)
    assert book.price(618002) == 61800.2


def test_snapshot_sets_levels_best_first_and_band() -> None:
    book = make_book()
    assert book.last_update_id == 100
    assert book.best_bid() == (97500.1, 3.5)
    assert book.best_ask() == (97500.2, 1.8)
    assert book.top(2) == ([(97500.1, 3.5), (97500.0, 2.1)], [(97500.2, 1.8), (97500.3, 4.2)])
    assert book.depth() == (3, 2)
    band = book.snapshot_band
    assert band is not None
    assert (band.bid_low, band.bid_high) == (974995, 975001)
    assert (band.ask_low, band.ask_high) == (975002, 975003)


def test_diff_sets_absolute_quantities_and_zero_deletes() -> None:
    book = make_book()
    book.apply_diff([["97500.10", "0.000"], ["97499.90", "9"]], [["97500.20", "2.5"]], 105)
    assert book.last_update_id == 105
    assert book.level("bid", "97500.10") == 0.0
    assert book.level("bid", "97499.9") == 9.0
    assert book.best_bid() == (97500.0, 2.1)
    assert book.best_ask() == (97500.2, 2.5)


def test_deleting_an_absent_level_is_harmless() -> None:
    book = make_book()
    book.apply_diff([["90000.00", "0"]], [["99999.90", "0.00000000"]], 101)
    assert book.depth() == (3, 2)


def test_later_entry_for_same_price_wins_within_one_event() -> None:
    book = make_book()
    book.apply_diff([["97500.10", "7"], ["97500.10", "1.25"]], [], 101)
    assert book.level("bid", 97500.1) == 1.25


def test_book_is_never_truncated() -> None:
    book = BookState("btcusdt", 0.1)
    bids = [[f"{90000 - i * 0.1:.1f}", "1"] for i in range(3000)]
    asks = [[f"{90000.1 + i * 0.1:.1f}", "1"] for i in range(3000)]
    book.apply_snapshot(1, bids, asks)
    # Eat the top 10 bids: level 11 is now the best and the rest are still there.
    book.apply_diff([[b[0], "0"] for b in bids[:10]], [], 2)
    assert book.depth() == (2990, 3000)
    assert book.best_bid() == (89999.0, 1.0)


def test_totals_and_top_n() -> None:
    book = make_book()
    assert book.total_quantity("bid") == pytest.approx(6.6)
    assert book.total_quantity("ask") == pytest.approx(6.0)
    assert book.top_bids(10) == [(975001, 3.5), (975000, 2.1), (974995, 1.0)]
    assert book.top_asks(1) == [(975002, 1.8)]


def test_empty_book_reads() -> None:
    book = BookState("ethusdt", 0.01)
    assert book.best_bid() is None and book.best_ask() is None
    assert book.top(5) == ([], [])
    assert book.check_integrity().ok


@pytest.mark.parametrize("bad", [["abc", "1"], ["97500.1", "x"], ["97500.1", "-1"], ["97500.1", "nan"], ["1"]])
def test_malformed_level_raises_a_clear_error(bad: list[str]) -> None:
    book = make_book()
    with pytest.raises(MalformedLevel):
        book.apply_diff([bad], [], 101)


def test_snapshot_loads_levels_by_the_diff_rules() -> None:
    # Unsorted, a price given twice (the later entry wins), zero removing a level
    # given before it and a zero for a price never given: as diffs on an empty book.
    bids = [["97499.50", "1.0"], ["97500.10", "3.5"], ["97500.00", "2.1"], ["97499.50", "0.7"],
            ["97500.00", "0"], ["97400.00", "0.000"]]
    asks = [["97500.30", "4.2"], ["97500.20", "1.8"]]
    book = BookState("btcusdt", 0.1)
    book.apply_snapshot(7, bids, asks)
    by_diff = BookState("btcusdt", 0.1)
    by_diff.apply_diff(bids, asks, 7)
    assert book.top(10) == by_diff.top(10) == ([(97500.1, 3.5), (97499.5, 0.7)], [(97500.2, 1.8), (97500.3, 4.2)])
    book.apply_diff([["97499.60", "2"]], [["97500.20", "0"]], 8)  # the sorted keys stay usable
    assert book.top(10) == ([(97500.1, 3.5), (97499.6, 2.0), (97499.5, 0.7)], [(97500.3, 4.2)])
    with pytest.raises(MalformedLevel):
        book.apply_snapshot(9, [["1", "-1"]], [])


def test_malformed_snapshot_leaves_the_book_empty() -> None:
    book = make_book()
    with pytest.raises(MalformedLevel):
        book.apply_snapshot(200, [["1", "1"]], [["oops", "1"]])
    assert book.depth() == (0, 0)
    assert book.last_update_id == 0


def test_integrity_check_reports_a_crossed_book() -> None:
    book = make_book()
    book.apply_diff([["97500.30", "1"]], [], 101)
    report = book.check_integrity()
    assert report.crossed and not report.ok
    # Zero or negative quantities never get stored, so only direct tampering shows them.
    dict.__setitem__(book.asks, 975003, 0.0)
    assert book.check_integrity().bad_ask_levels == 1


def test_tick_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BookState("x", 0.0)


# --- property test: the book against a plain dict model -------------------------

TICK = 0.01
prices = st.integers(min_value=1, max_value=400).map(lambda k: f"{k * TICK + 3000:.2f}")
qtys = st.one_of(st.just("0.000"), st.integers(min_value=1, max_value=50_000).map(lambda q: f"{q / 1000:.3f}"))
levels = st.lists(st.tuples(prices, qtys).map(list), max_size=12)


@settings(max_examples=200, deadline=None)
@given(snapshot_b=levels, snapshot_a=levels, diffs=st.lists(st.tuples(levels, levels), max_size=30))
def test_book_matches_a_dict_model_under_random_diffs(snapshot_b, snapshot_a, diffs) -> None:
    book = BookState("ethusdt", TICK)
    model: dict[str, dict[str, float]] = {"b": {}, "a": {}}

    def model_apply(side: str, lvls: list[list[str]]) -> None:
        for p, q in lvls:
            key = f"{float(p):.2f}"
            if float(q) == 0:
                model[side].pop(key, None)
            else:
                model[side][key] = float(q)

    book.apply_snapshot(1, snapshot_b, snapshot_a)
    model_apply("b", snapshot_b)
    model_apply("a", snapshot_a)
    for i, (b, a) in enumerate(diffs):
        book.apply_diff(b, a, i + 2)
        model_apply("b", b)
        model_apply("a", a)

    got_b = {f"{book.price(k):.2f}": q for k, q in book.bids.items()}
    got_a = {f"{book.price(k):.2f}": q for k, q in book.asks.items()}
    assert got_b == model["b"]
    assert got_a == model["a"]
    if model["b"]:
        best = max(model["b"], key=float)
        assert book.best_bid() == (float(best), model["b"][best])
    if model["a"]:
        best = min(model["a"], key=float)
        assert book.best_ask() == (float(best), model["a"][best])
    assert all(q > 0 and not math.isnan(q) for q in book.bids.values())


def test_price_key_cache_gives_the_computed_key_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import orderbook.book_state as bs

    monkeypatch.setattr(bs, "_MAX_CACHED_KEYS", 3)
    book = BookState("btcusdt", 0.1)
    prices = ["100.0", "100.1", "100.2", "100.3", "100.4"]
    book.apply_diff([[p, "1"] for p in prices], [], 1)
    book.apply_diff([[p, "2"] for p in prices], [], 2)  # the cache is over its bound: cleared first
    assert len(book._keys) <= len(prices)
    assert dict(book.bids) == {book.key(p): 2.0 for p in prices} == {1000: 2.0, 1001: 2.0, 1002: 2.0, 1003: 2.0,
                                                                    1004: 2.0}
