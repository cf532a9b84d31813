"""The screener's row on small hand-made books and streams: every value computed
by hand (docs/metrics.md, "Screener"), the messages in Binance's wire shape."""

from __future__ import annotations

import orjson
import pytest

from features.rounding import Decimals
from screener.market import MarketState, changed_rows, without_hist
from screener.rows import HIST_LEN, Liquidation, RowRules, SymbolLatest, build_row, had_burst, round_row, side_sums

T = 1_800_000_000_000  # ms of the row
BIDS = ((100.0, 1.0), (99.95, 2.0), (99.80, 10.0))
ASKS = ((100.05, 1.0), (100.10, 3.0), (100.40, 1.0))


def latest_with_book() -> SymbolLatest:
    return SymbolLatest("abcusdt", Decimals(2, 3), BIDS, ASKS, book_ms=T - 400)


def test_book_figures_by_hand() -> None:
    row = build_row(latest_with_book(), T, focus=False, rules=RowRules())
    # mid 100.025; spread 0.05 / 100.025 * 1e4 bps
    assert row["mid"] == pytest.approx(100.025)
    assert row["spread_bps"] == pytest.approx(0.05 / 100.025 * 1e4)
    # 10 bps under the mid: 99.924975 -> 100.00 x 1 + 99.95 x 2; 25 bps: 99.7749375 -> + 99.80 x 10
    assert row["depth10_bid"] == pytest.approx(299.9)
    assert row["depth25_bid"] == pytest.approx(1297.9)
    # 10 bps over: 100.125025 -> 100.05 + 100.10 x 3; 25 bps: 100.2750625 -> the same (100.40 is beyond)
    assert row["depth10_ask"] == pytest.approx(400.35)
    assert row["depth25_ask"] == pytest.approx(400.35)
    assert row["imbalance20"] == pytest.approx((13 - 5) / 18)
    # bid median size 2 -> walls from 10: the 99.80 level; ask median 1 -> from 5: none
    assert row["walls"] == 1
    wall = row["wall"]
    assert wall["side"] == "bid" and wall["price"] == 99.80 and wall["size"] == 10.0
    assert wall["notional"] == pytest.approx(998.0)
    assert wall["distance_bps"] == pytest.approx(0.225 / 100.025 * 1e4)
    # young, but only 5x its side's median: a wall, not a NEW WALL (that takes 100x)
    assert wall["age_s"] == 0.0 and wall["fresh"] is False
    assert row["stale"] is False and row["focus"] is False
    assert row["spread_hist"][-1] == pytest.approx(4.999, abs=1e-3) and row["spread_hist"][0] is None
    assert len(row["spread_hist"]) == len(row["depth25_hist"]) == HIST_LEN
    assert row["depth25_hist"][-1] == pytest.approx(1698.25)


def test_rounding_as_the_frames() -> None:
    row = round_row(build_row(latest_with_book(), T, focus=True, rules=RowRules()), Decimals(2, 3))
    assert row["mid"] == 100.025  # price decimals + 2
    assert row["spread_bps"] == 4.999  # 4 significant digits
    assert row["imbalance20"] == 0.4444
    assert row["depth25_bid"] == 1297.9  # USDT, 2 decimals
    assert row["wall"]["distance_bps"] == 22.49
    assert row["focus"] is True


def test_wall_age_runs_while_the_level_stays_a_wall_and_resets_when_it_goes() -> None:
    latest = latest_with_book()
    rules = RowRules()
    build_row(latest, T, False, rules)
    row = build_row(latest, T + 61_000, False, rules)
    assert row["wall"]["age_s"] == 61.0 and row["wall"]["fresh"] is False
    latest.bids = ((100.0, 1.0), (99.95, 2.0), (99.80, 3.0))  # no longer a wall
    assert build_row(latest, T + 62_000, False, rules)["wall"] is None
    latest.bids = BIDS
    assert build_row(latest, T + 63_000, False, rules)["wall"]["age_s"] == 0.0


def test_new_wall_needs_youth_and_the_flag_multiple_of_its_sides_median() -> None:
    # bids: median of (1, 2, 2, 3, 250) is 2 -> walls from 10 (5x): the 250 at 99.80;
    # 250 / 2 = 125x, over the flag's 100x
    latest = SymbolLatest("abcusdt", Decimals(2, 3), ((100.0, 1.0), (99.95, 2.0), (99.90, 2.0), (99.85, 3.0),
                                                      (99.80, 250.0)), ASKS, book_ms=T - 400)
    rules = RowRules()
    assert rules.wall_flag_multiple == 100.0
    row = build_row(latest, T, False, rules)
    assert row["walls"] == 1 and row["wall"]["price"] == 99.80 and row["wall"]["fresh"] is True
    assert build_row(latest, T + 59_999, False, rules)["wall"]["fresh"] is True
    assert build_row(latest, T + 60_000, False, rules)["wall"]["fresh"] is False  # 60 s old: no longer new
    # 199.99 / 2 = 99.995x: a wall (counted) but under the flag's multiple; exactly 200 is 100x: flagged
    for size, flagged in ((199.99, False), (200.0, True)):
        young = SymbolLatest("abcusdt", Decimals(2, 3), (*latest.bids[:4], (99.80, size)), ASKS, book_ms=T - 400)
        row = build_row(young, T, False, rules)
        assert row["walls"] == 1 and row["wall"]["fresh"] is flagged, size
    # the multiple is a setting: at 5x the 10-lot wall of BIDS (median 2) is flagged
    assert build_row(latest_with_book(), T, False, RowRules(wall_flag_multiple=5.0))["wall"]["fresh"] is True


def test_side_sums_stop_at_the_band() -> None:
    # 10 bps under 10.00: 9.99; 25 bps: 9.975 (9.97 is beyond, but its quantity counts)
    levels = ((10.0, 1.0), (9.99, 1.0), (9.98, 2.0), (9.97, 5.0))
    assert side_sums(levels, 10.0, True) == pytest.approx((19.99, 39.95, 9.0))
    asks = ((10.0, 1.0), (10.01, 1.0), (10.02, 2.0), (10.03, 5.0))
    assert side_sums(asks, 10.0, False) == pytest.approx((20.01, 40.05, 9.0))


def test_stale_without_a_partial_book_for_more_than_5_s() -> None:
    latest = latest_with_book()
    assert build_row(latest, latest.book_ms + 5_000, False, RowRules())["stale"] is False
    assert build_row(latest, latest.book_ms + 5_001, False, RowRules())["stale"] is True
    empty = build_row(SymbolLatest("xyzusdt"), T, False, RowRules())
    assert empty["stale"] is True and empty["mid"] is None and empty["wall"] is None and empty["walls"] == 0


def test_liquidation_windows_and_bursts() -> None:
    latest = SymbolLatest("abcusdt")
    latest.liquidations.extend([
        Liquidation(T - 301_000, "SELL", 60_000.0),  # beyond 5 min
        Liquidation(T - 100_000, "SELL", 2_000.0),
        Liquidation(T - 10_000, "BUY", 1_000.0),
    ])
    row = build_row(latest, T, False, RowRules())
    assert (row["liq5m_buy"], row["liq5m_sell"]) == (1_000.0, 2_000.0)
    assert row["liq_burst"] is False
    assert len(latest.liquidations) == 2  # the one beyond every window forgotten
    rules = RowRules()
    near = [Liquidation(T - 30_000, "SELL", 60_000.0), Liquidation(T - 26_000, "SELL", 50_000.0)]
    apart = [Liquidation(T - 30_000, "SELL", 60_000.0), Liquidation(T - 24_000, "SELL", 50_000.0)]
    both_sides = [Liquidation(T - 30_000, "SELL", 60_000.0), Liquidation(T - 29_000, "BUY", 50_000.0)]
    old = [Liquidation(T - 70_000, "SELL", 60_000.0), Liquidation(T - 69_000, "SELL", 50_000.0)]
    assert had_burst(near, T, rules) is True
    assert had_burst(apart, T, rules) is False
    assert had_burst(both_sides, T, rules) is False
    assert had_burst(old, T, rules) is False


def wire(stream: str, data: object) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


PARTIAL = {"e": "depthUpdate", "E": 1, "T": 1, "s": "ABCUSDT", "U": 10, "u": 12, "pu": 9,
           "b": [["100.00", "1.000"], ["99.95", "2.000"], ["99.80", "10.000"]],
           "a": [["100.05", "1.000"], ["100.10", "3.000"], ["100.40", "1.000"]]}
MINI = {"e": "24hrMiniTicker", "E": 1, "s": "ABCUSDT", "c": "102.00", "o": "100.00", "h": "103.00", "l": "99.00",
        "v": "1000.000", "q": "101000.50", "x": "a field added later"}
MARK = {"e": "markPriceUpdate", "E": 1, "s": "ABCUSDT", "p": "100.0", "ap": "100.0", "P": "100.0", "i": "100.0",
        "r": "0.00012000", "T": 2}
FORCE = {"e": "forceOrder", "E": 1, "o": {"s": "ABCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "2.000",
                                           "p": "99.00", "ap": "99.50", "X": "FILLED", "l": "2.000", "z": "2.000",
                                           "T": 1}}
TICKER = {"e": "bookTicker", "u": 1, "s": "ABCUSDT", "b": "100.00", "B": "1", "a": "100.05", "A": "1", "T": 1, "E": 1}


def test_wire_messages_make_the_row_and_malformed_ones_are_counted_and_skipped() -> None:
    st = MarketState("@depth20@500ms")
    st.watch("abcusdt", Decimals(2, 3))
    ns = T * 1_000_000
    st.on_raw(wire("abcusdt@depth20@500ms", PARTIAL), ns)
    st.on_raw(wire("!miniTicker@arr", [MINI, {**MINI, "s": "OTHERUSDT"}]), ns)
    st.on_raw(wire("!markPrice@arr@1s", [MARK]), ns)
    st.on_raw(wire("!forceOrder@arr", FORCE), ns)
    st.on_raw(wire("!bookTicker", TICKER), ns)
    bad = [
        wire("abcusdt@depth20@500ms", {**PARTIAL, "b": [["100.00"]]}),  # a level without its quantity
        wire("abcusdt@depth20@500ms", {**PARTIAL, "a": [["abc", "1.0"]]}),  # not a number
        wire("!miniTicker@arr", [{**MINI, "q": "nan"}, {k: v for k, v in MINI.items() if k != "c"}]),
        wire("!miniTicker@arr", {"not": "an array"}),
        b'{"stream":"!miniTicker@arr","data":[',  # cut short
    ]
    for raw in bad:
        st.on_raw(raw, ns + 1)
    assert st.malformed == {"partialDepth": 2, "miniTicker": 3, "envelope": 1}
    assert st.unwatched == 1  # OTHERUSDT's ticker: well formed, not watched
    row = st.rows(T + 100)[0]
    assert row["mid"] == 100.025 and row["walls"] == 1 and row["stale"] is False
    assert row["quote_volume_24h"] == 101000.5
    assert row["change_24h_pct"] == 2.0
    assert row["funding_rate"] == 0.00012
    assert (row["liq5m_buy"], row["liq5m_sell"]) == (0.0, 199.0)  # SELL: 2 x 99.50 closes longs


def test_updates_carry_only_the_rows_that_changed() -> None:
    st = MarketState()
    flat_bids, flat_asks = ((100.0, 1.0), (99.95, 1.0)), ((100.05, 1.0), (100.10, 1.0))  # no wall: no age running
    for sym in ("aaausdt", "bbbusdt"):
        st.watch(sym, Decimals(2, 3))
        st.symbols[sym].bids, st.symbols[sym].asks, st.symbols[sym].book_ms = flat_bids, flat_asks, T
    first = st.rows(T + 1000)
    before = {r["symbol"]: without_hist(r) for r in first}
    st.symbols["bbbusdt"].asks = ((100.06, 1.0),)
    second = st.rows(T + 2000)
    changed = changed_rows(before, second)
    assert [r["symbol"] for r in changed] == ["bbbusdt"]
    assert "spread_hist" not in changed[0]


def test_select_rows_puts_nulls_last_in_either_order_and_counts_before_the_limit() -> None:
    from api.screener import select_rows

    rows = [{"symbol": s, "spread_bps": v, "quote_volume_24h": vol}
            for s, v, vol in (("aaausdt", 2.0, 10.0), ("bbbusdt", None, 20.0), ("cccusdt", 1.0, None),
                              ("dddusdt", 3.0, 30.0))]
    for order, want in (("asc", ["cccusdt", "aaausdt", "dddusdt", "bbbusdt"]),
                        ("desc", ["dddusdt", "aaausdt", "cccusdt", "bbbusdt"])):
        count, got = select_rows(rows, {"sort": "spread_bps", "order": order})
        assert count == 4 and [r["symbol"] for r in got] == want
    count, got = select_rows(rows, {"sort": "symbol", "order": "asc", "limit": "2", "min_volume": "15"})
    assert count == 2 and [r["symbol"] for r in got] == ["bbbusdt", "dddusdt"]  # null volume is below any minimum
    count, got = select_rows(rows, {"q": "C", "sort": "symbol"})
    assert [r["symbol"] for r in got] == ["cccusdt"]


def test_each_second_s_rows_reach_the_alert_rules_over_the_whole_market() -> None:
    """The screener's publisher hands every row it built to the alerting's market rules
    (spread blow-out, depth collapse): a row whose spread blew out is notified."""
    from alerting.rules import parse
    from alerting.service import Alerting
    from api.hub import FrameHub
    from api.screener import ScreenerPublisher

    st = MarketState()
    st.watch("aaausdt", Decimals(2, 3))
    sym = st.symbols["aaausdt"]
    sym.bids, sym.asks, sym.book_ms = ((100.0, 1.0),), ((100.05, 1.0),), T
    alerting = Alerting(parse({"rules": [{"name": "sp", "kind": "spread_blowout", "min_spread_bps": 20,
                                          "cooldown_s": 0}]}), "http://127.0.0.1:8050")
    pub = ScreenerPublisher(st, FrameHub(10, 10, queue_capacity=2), lambda: set(), on_rows=alerting.on_screener_rows)
    pub.tick((T + 1000) * 1_000_000)  # spread 5 bps: nothing
    sym.asks, sym.book_ms = ((100.50, 1.0),), T + 1500  # 50 bps
    pub.tick((T + 2000) * 1_000_000)
    assert len(alerting.intake) == 2
    sent = [n for item in list(alerting.intake) for n in alerting.apply(item)]
    assert [(n.symbol, n.rule) for n in sent] == [("aaausdt", "sp")]
