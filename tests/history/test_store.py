"""The metric history: what goes in comes back, averaged per step by hand, gaps
reported where the app was stopped or the book out of sync, never filled in."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from features.frame import (
    AlertEvent,
    BidAsk,
    DepthBands,
    Frame,
    FrameAlert,
    LiquidationSides,
    LiquidationStats,
    LiquidationTotals,
    MarkInfo,
    OpenInterestInfo,
    SyncInfo,
)
from history.store import DERIVATIVES_FIELDS, HistoryStore, band_fields

T0 = 1_764_201_600.0  # 2025-11-27 00:00:00 UTC


def frame(ts: float, mid: float | None, state: str = "synced", seq: int = 0,
          alerts: list[FrameAlert] | None = None) -> Frame:
    synced = state in ("synced", "quiet")
    return Frame(
        symbol="btcusdt", timestamp=ts, ts_event_ms=None, seq=seq, sync=SyncInfo(state=state),
        mid_price=mid if synced else None, spread=0.1 if synced else None,
        imbalance=(mid - 100.0) / 10 if synced and mid is not None else None,
        slope=BidAsk(bid=2.0, ask=3.0) if synced else BidAsk(),
        depth_bands=DepthBands(bid={"5": 1.5, "10": 4.0}, ask={"5": 2.5, "10": 6.0}) if synced else DepthBands(),
        alerts=alerts or [],
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path / "history.sqlite", retain_s=1e9, fields=band_fields((5.0, 10.0)))
    yield s
    s.close()


def feed(store: HistoryStore) -> None:
    """0-59 s in sync (mid 100 + s/10), 60-69 s out of sync, 70-99 s in sync, then
    the app is down 100-200 s, then 200-229 s in sync; frames at 4 Hz (one kept a second)."""
    seq = 0
    for hundredth in range(0, 23000, 25):
        t = hundredth / 100
        if 100 <= t < 200:
            continue
        state = "resyncing" if 60 <= t < 70 else "synced"
        seq += 1
        store.add_frame(frame(T0 + t, 100.0 + t / 10, state, seq))
    store.flush()


def test_coverage_reports_gaps_with_their_reason(store: HistoryStore) -> None:
    feed(store)
    cov = store.coverage("btcusdt")
    assert cov["ranges"] == [[T0, T0 + 59], [T0 + 70, T0 + 99], [T0 + 200, T0 + 229]]
    assert cov["gaps"] == [
        {"from": T0 + 60, "to": T0 + 70, "reason": "book not in sync (resyncing)"},
        {"from": T0 + 99, "to": T0 + 200, "reason": "no data (not running)"},
    ]


def test_series_is_averaged_per_step_and_leaves_gaps_out(store: HistoryStore) -> None:
    feed(store)
    out = store.series("btcusdt", T0, T0 + 230, ["mid_price", "imbalance", "depth_bid_5bps", "slope_ask"], 10)
    assert out["step"] == 10
    # Buckets 0-5 (0-59 s), 7-9 (70-99 s), 20-22 (200-229 s): none for the gaps.
    starts = [round(t - T0) for t in out["t"]]
    assert starts == [0, 10, 20, 30, 40, 50, 70, 80, 90, 200, 210, 220]
    assert out["samples"] == [10] * 12
    for start, mid, imb in zip(starts, out["mid_price"], out["imbalance"], strict=True):
        # The rows kept are the first frame of each second: mid 100 + s/10, s = start..start+9.
        expected = sum(100.0 + s / 10 for s in range(start, start + 10)) / 10
        assert math.isclose(mid, expected, rel_tol=1e-12)
        assert math.isclose(imb, (expected - 100.0) / 10, rel_tol=1e-9)
    assert out["depth_bid_5bps"] == [1.5] * 12 and out["slope_ask"] == [3.0] * 12


def test_series_keeps_to_at_most_max_points(store: HistoryStore) -> None:
    feed(store)
    out = store.series("btcusdt", T0 - 1e6, T0 + 1e6, ["mid_price"], None)
    assert out["step"] == pytest.approx(2e6 / 3000)
    assert len(out["t"]) <= 3000 and sum(out["samples"]) == 60 + 30 + 30


def test_unknown_field_is_refused(store: HistoryStore) -> None:
    with pytest.raises(KeyError):
        store.series("btcusdt", T0, T0 + 1, ["mid_price", "state"], None)


def wall(status: str, ts: float, live: bool = True, size: float = 12.0) -> FrameAlert:
    return FrameAlert(id="btcusdt-1", type="WALL", status=status, live=live, symbol="btcusdt", side="bid",  # type: ignore[arg-type]
                      price=99.5, price_bin=49, ts=ts, born_ts=T0 + 5.0, age_s=ts - T0, size=size,
                      notional=size * 99.5, peak_notional=size * 99.5, distance_bps=5.0, depth_share=0.3,
                      score=size * 99.5 / 1.5, events=[AlertEvent(ts=ts, status=status, price=99.5, size=size)])  # type: ignore[arg-type]


def test_alerts_are_kept_once_per_change(store: HistoryStore) -> None:
    """A frame carries every live alert; the history keeps a state only when it changed."""
    for t, alert in ((5.2, wall("born", T0 + 5)), (6.2, wall("born", T0 + 5)), (7.2, wall("born", T0 + 5)),
                     (10.2, wall("grown", T0 + 10, size=20.0)), (11.2, wall("grown", T0 + 10, size=20.0)),
                     (40.0, wall("removed", T0 + 40, live=False, size=20.0))):
        store.add_frame(frame(T0 + t, 100.0, alerts=[alert]))
    store.flush()
    assert store.alerts_written == 3
    whole = store.alerts("btcusdt", T0, T0 + 60)
    assert [(a["id"], a["status"], a["live"]) for a in whole] == [("btcusdt-1", "removed", False)]
    early = store.alerts("btcusdt", T0, T0 + 20)
    assert [(a["status"], a["size"]) for a in early] == [("grown", 20.0)]
    assert store.alerts("btcusdt", T0 + 50, T0 + 60) == []


def test_retention_drops_what_is_older(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite", retain_s=3600)
    try:
        import time

        now = time.time()
        for t in (now - 7200, now - 3700, now - 100, now - 10):
            store.add_frame(frame(t, 100.0))
        store.flush()
        store.expire_now()
        cov = store.coverage("btcusdt")
        assert [r[0] for r in cov["ranges"]] == [pytest.approx(now - 100, abs=1e-3), pytest.approx(now - 10, abs=1e-3)]
    finally:
        store.close()


def test_a_reopened_store_keeps_its_rows_and_gains_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    first = HistoryStore(path, retain_s=1e9)
    first.add_frame(frame(T0, 100.0))
    first.close()
    second = HistoryStore(path, retain_s=1e9, fields=band_fields((5.0,)))
    try:
        second.add_frame(frame(T0 + 1, 101.0))
        second.flush()
        out = second.series("btcusdt", T0, T0 + 2, ["mid_price", "depth_ask_5bps"], 1)
        assert out["mid_price"] == [100.0, 101.0] and out["depth_ask_5bps"] == [None, 2.5]
    finally:
        second.close()


def liquidations(sell: tuple[int, float], buy: tuple[int, float]) -> LiquidationStats:
    """Liquidation stats whose last_1m window holds ``sell`` and ``buy`` (count, notional)."""
    def sides(scale: int) -> LiquidationSides:
        return LiquidationSides(
            sell=LiquidationTotals(count=sell[0] * scale, qty=0.1 * scale, notional=sell[1] * scale),
            buy=LiquidationTotals(count=buy[0] * scale, qty=0.2 * scale, notional=buy[1] * scale))
    # The 1 s and 5 min windows differ from the 1 min one: only the 1 min one is kept.
    return LiquidationStats(last_1s=sides(0), last_1m=sides(1), last_5m=sides(5))


def derivatives_frame(ts: float, mark_price: float, oi: float, sell: tuple[int, float],
                      buy: tuple[int, float]) -> Frame:
    f = frame(ts, 100.0)
    f.mark = MarkInfo(mark_price=mark_price, index_price=mark_price - 0.05, basis_bps=5.0,
                      mark_mid_bps=(mark_price - 100.0) / 100.0 * 1e4, funding_rate=0.0001,
                      funding_rate_annual=0.1095, age_s=0.4)
    f.open_interest = OpenInterestInfo(open_interest=oi, notional=oi * mark_price, age_s=3.0)
    f.liquidation_stats = liquidations(sell, buy)
    return f


def test_derivatives_are_stored_and_unknown_ones_stay_null(store: HistoryStore) -> None:
    """0-9 s with mark, open interest and liquidations; 10-19 s without any (null, not 0)."""
    for s in range(10):
        store.add_frame(derivatives_frame(T0 + s, 100.01 + s / 100, 5000.0 + s, (s, 1000.0 * s), (1, 250.0)))
    for s in range(10, 20):
        store.add_frame(frame(T0 + s, 100.0))
    store.flush()
    per_second = store.series("btcusdt", T0, T0 + 20, list(DERIVATIVES_FIELDS), 1)
    assert per_second["samples"] == [1] * 20
    assert per_second["mark_price"][:10] == pytest.approx([100.01 + s / 100 for s in range(10)])
    assert per_second["index_price"][3] == pytest.approx(100.04 - 0.05)
    assert per_second["basis_bps"][:10] == [5.0] * 10 and per_second["funding_rate"][:10] == [0.0001] * 10
    assert per_second["mark_mid_bps"][2] == pytest.approx(3.0)
    assert per_second["open_interest"][:10] == [5000.0 + s for s in range(10)]
    assert per_second["liquidation_sell_count_1m"][:10] == list(range(10))
    assert per_second["liquidation_sell_notional_1m"][:10] == [1000.0 * s for s in range(10)]
    assert per_second["liquidation_buy_count_1m"][:10] == [1] * 10
    assert per_second["liquidation_buy_notional_1m"][:10] == [250.0] * 10
    for name in DERIVATIVES_FIELDS:
        assert per_second[name][10:] == [None] * 10, name


def test_a_step_averages_derivatives_over_the_known_seconds_only(store: HistoryStore) -> None:
    """Nulls are left out of an average: 0-9 s known, 10-14 s unknown, step 10 and 15."""
    for s in range(10):
        store.add_frame(derivatives_frame(T0 + s, 100.0 + s, 5000.0 + 10 * s, (s, 100.0 * s), (0, 0.0)))
    for s in range(10, 15):
        store.add_frame(frame(T0 + s, 100.0))
    store.flush()
    out = store.series("btcusdt", T0, T0 + 15, ["mark_price", "open_interest", "liquidation_sell_count_1m",
                                                "liquidation_buy_notional_1m", "mid_price"], 10)
    assert out["samples"] == [10, 5]
    assert out["mark_price"] == [pytest.approx(104.5), None]
    assert out["open_interest"] == [pytest.approx(5045.0), None]
    assert out["liquidation_sell_count_1m"] == [pytest.approx(4.5), None]
    # Known to be zero is 0, not null.
    assert out["liquidation_buy_notional_1m"] == [0.0, None]
    assert out["mid_price"] == [100.0, 100.0]
    whole = store.series("btcusdt", T0, T0 + 15, ["mark_price"], 15)
    # 15 rows, 10 known: the average of the 10, not of 15 with zeros.
    assert whole["samples"] == [15] and whole["mark_price"] == [pytest.approx(104.5)]


def test_an_old_database_gains_the_derivatives_columns(tmp_path: Path) -> None:
    """A file written before the derivatives were kept (its own schema, by hand) opens,
    gains their columns, keeps its rows (null there) and takes new rows with them."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE frames (symbol TEXT NOT NULL, ts REAL NOT NULL, state TEXT NOT NULL, "
                     "in_sync INTEGER NOT NULL, run INTEGER NOT NULL DEFAULT 0, mid_price REAL, spread REAL)")
        conn.execute("INSERT INTO frames (symbol, ts, state, in_sync, run, mid_price, spread) "
                     "VALUES ('btcusdt', ?, 'synced', 1, 1, 99.5, 0.1)", (T0,))
    with sqlite3.connect(path) as conn:
        before = {r[1] for r in conn.execute("PRAGMA table_info(frames)")}
    assert not before & set(DERIVATIVES_FIELDS)
    store = HistoryStore(path, retain_s=1e9)
    try:
        assert set(DERIVATIVES_FIELDS) <= set(store.columns)
        store.add_frame(derivatives_frame(T0 + 1, 100.2, 7000.0, (2, 500.0), (1, 40.0)))
        store.flush()
        out = store.series("btcusdt", T0, T0 + 2, ["mid_price", "mark_price", "open_interest",
                                                   "liquidation_sell_count_1m"], 1)
        assert out["mid_price"] == [99.5, 100.0]
        assert out["mark_price"] == [None, pytest.approx(100.2)]
        assert out["open_interest"] == [None, 7000.0]
        assert out["liquidation_sell_count_1m"] == [None, 2]
    finally:
        store.close()
