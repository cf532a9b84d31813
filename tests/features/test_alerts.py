"""Alerts over their life (features/alerts.py): one id from birth to end, the changes
of docs/metrics.md ("Alerts") with their near misses, the significance worked out by
hand, and the same definitions checked on every frame of the real BTCUSDT recording."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from config import Settings, SymbolSpec
from features.alerts import AlertTracker, group_by_price, rank_key, select
from features.frame import FrameAlert
from features.liquidity_detection import WALL, WALL_REMOVED, Alert, Level, LiquidityDetector
from features.trade import Trade

S = 1_000_000_000
SETTINGS = Settings()
BTC = SymbolSpec(0.1, 0.001, 1, 3, 20)
BEST_BID, BEST_ASK = 61800.0, 61800.1
MID = (BEST_BID + BEST_ASK) / 2  # 61800.05


def ladder(best: float, step: float, sizes: dict[int, float] | None = None, n: int = 20) -> list[Level]:
    """n levels from ``best`` stepping by ``step`` (negative for bids), 1.0 each except ``sizes``."""
    sizes = sizes or {}
    return [(round(best + i * step, 1), sizes.get(i, 1.0)) for i in range(n)]


class Run:
    """A detector and the tracker over it, fed by hand-made 1 Hz samples."""

    def __init__(self, bid_step: float = -0.1) -> None:
        self.det = LiquidityDetector("btcusdt", SETTINGS)
        self.tracker = AlertTracker("btcusdt", SETTINGS, BTC)
        self.bid_step = bid_step
        self.detections: list[Alert] = []

    def sample(self, t: int, bids: dict[int, float] | None = None, asks: dict[int, float] | None = None,
               trades: Sequence[Trade] = (), bid_levels: list[Level] | None = None) -> list[FrameAlert]:
        b = bid_levels if bid_levels is not None else ladder(BEST_BID, self.bid_step, bids)
        a = ladder(BEST_ASK, 0.1, asks)
        events = self.det.on_sample(t * S, b, a, BEST_ASK - BEST_BID, trades)
        self.detections += events
        self.tracker.on_sample(t * S, events, self.det, b, a)
        return self.tracker.frame_alerts()

    def run(self, times: range, bids: dict[int, float] | None = None) -> list[FrameAlert]:
        out: list[FrameAlert] = []
        for t in times:
            out = self.sample(t, bids)
        return out

    def raw(self, kind: str) -> list[Alert]:
        return [a for a in self.detections if a.type == kind]


def only(alerts: list[FrameAlert], kind: str | None = None) -> FrameAlert:
    chosen = [a for a in alerts if kind is None or a.type == kind]
    assert len(chosen) == 1, alerts
    return chosen[0]


def left_price(a: FrameAlert, side: str, price: float | None, ts: float) -> bool:
    """``a`` left ``price`` at ``ts``: removed there, or moved away from it."""
    if a.type != WALL or a.side != side:
        return False
    for before, event in zip(a.events, a.events[1:], strict=False):
        if event.ts == ts and (event.status == "removed" and event.price == price
                               or event.status == "moved" and before.price == price):
            return True
    return False


# --- a wall's life ----------------------------------------------------------------------
def test_a_wall_is_born_with_its_significance_worked_out_by_hand() -> None:
    r = Run()
    assert r.run(range(0, 6), {3: 8.0}) == []  # seen at 0..5 s: 5.0 s is not more than 5 s
    a = only(r.sample(6, {3: 8.0}))
    assert (a.id, a.type, a.status, a.live, a.side, a.price) == ("btcusdt-1", WALL, "born", True, "bid", 61799.7)
    assert a.size == 8.0 and a.multiple == 8.0  # 39 levels of 1 and one of 8: median 1
    assert a.notional == pytest.approx(61799.7 * 8)  # 494,397.6 USDT
    distance = (MID - 61799.7) / MID * 1e4  # 0.35 / 61800.05 * 1e4 = 0.05663 bps
    assert a.distance_bps == pytest.approx(distance) and a.distance_bps == pytest.approx(0.056634, abs=1e-6)
    assert a.depth_share == pytest.approx(8 / 27)  # 19 levels of 1 and the wall, top 20 of the bid side
    assert a.score == pytest.approx(61799.7 * 8 / (1 + distance / 10))
    assert a.peak_notional == a.notional and a.age_s == 6.0 and a.born_ts == 6.0 and a.ts == 6.0
    assert a.price_bin == 617997 // 20  # tick key // BTCUSDT's 20-tick heatmap bin
    assert [(e.status, e.price, e.size) for e in a.events] == [("born", 61799.7, 8.0)]


def test_grown_and_shrunk_by_the_size_step_then_removed_pulled_under_one_id() -> None:
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    assert only(r.sample(7, {3: 11.9})).status == "born"  # x1.49: no change reported
    assert only(r.sample(8, {3: 12.0})).status == "grown"  # x1.5 of the size reported at birth
    assert only(r.sample(9, {3: 8.1})).status == "grown"  # 12 / 8.1 = 1.48: not yet
    assert only(r.sample(10, {3: 8.0})).status == "shrunk"  # 12 / 1.5
    gone = only(r.sample(11, {}))
    assert (gone.id, gone.status, gone.live, gone.reason) == ("btcusdt-1", "removed", False, "pulled")
    assert gone.remaining == 1.0 and gone.traded_qty == 0.0 and gone.peak_notional == pytest.approx(61799.7 * 12)
    assert [(e.status, e.size) for e in gone.events] == [("born", 8.0), ("grown", 12.0), ("shrunk", 8.0),
                                                         ("removed", 8.0)]
    assert r.sample(12, {}) == []  # an ended alert is sent once
    assert [a.id for a in r.tracker.alerts()] == ["btcusdt-1"]  # and kept for GET /alerts


def test_a_wall_eaten_by_trades_at_its_price_is_removed_filled() -> None:
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    sells = [Trade(6 * S + 1, 61799.7, 3.0, "sell"), Trade(6 * S + 2, 61799.7, 1.0, "sell")]  # 4 >= 0.5 * 7
    a = only(r.sample(7, {}, trades=sells))
    assert (a.status, a.reason, a.traded_qty) == ("removed", "filled", 4.0)


def test_a_pulled_wall_reposted_nearby_is_the_same_alert_moved() -> None:
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    moved = only(r.sample(7, {5: 8.5}))  # 61799.7 pulled, 8.5 at 61799.5 the same second
    assert (moved.id, moved.status, moved.live, moved.price, moved.size) == ("btcusdt-1", "moved", True, 61799.5, 8.5)
    assert moved.age_s == 7.0  # the wall's age, over its prices
    for t in range(8, 14):
        alerts = r.sample(t, {5: 8.5})
    # The detector's rule fires again at the new price once it has stood there > 5 s...
    assert [(a.price, a.ts_ns) for a in r.raw(WALL)] == [(61799.7, 6 * S), (61799.5, 13 * S)]
    assert [a.price for a in r.raw(WALL_REMOVED)] == [61799.7]
    # ...and it stays one alert.
    a = only(alerts)
    assert (a.id, a.status, a.price) == ("btcusdt-1", "moved", 61799.5)
    assert [e.status for e in a.events] == ["born", "moved"]


def far_bids(sizes: dict[int, float]) -> list[Level]:
    return ladder(BEST_BID, -2.0, sizes)  # 2 USDT apart: 20 levels span 38 USDT, 6.1 bps


def test_a_move_is_at_most_five_bps() -> None:
    # 61794.0 -> 61764.0: 30 USDT = 4.85 bps of 61800.05 -> moved;
    # 61794.0 -> 61762.0: 32 USDT = 5.18 bps -> removed (a new wall, once it qualifies).
    for idx, moved in ((18, True), (19, False)):
        r = Run()
        for t in range(0, 7):
            r.sample(t, bid_levels=far_bids({3: 8.0}))
        distance = abs(far_bids({})[idx][0] - 61794.0) / MID * 1e4
        a = only(r.sample(7, bid_levels=far_bids({idx: 8.0})))
        assert (a.status == "moved") is moved and (distance <= 5.0) is moved, (idx, distance)


@pytest.mark.parametrize(("new_size", "moved"), [(12.0, True), (12.1, False), (5.34, True), (5.33, False)])
def test_a_move_keeps_about_the_size(new_size: float, moved: bool) -> None:
    # About the same size: within x1.5 of the last size seen (8.0): 5.33..12.0.
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    a = only(r.sample(7, {5: new_size}))
    assert (a.status == "moved") is moved, a


def test_a_level_already_at_wall_size_before_the_pull_is_another_wall() -> None:
    r = Run()
    r.run(range(0, 3), {3: 8.0})
    for t in range(3, 7):
        r.sample(t, {3: 8.0, 5: 8.0})  # 61799.5 at wall size from 3 s on
    a = only(r.sample(7, {5: 8.0}))  # 61799.7 pulled; 61799.5 has been there 4 s > 2 s
    assert (a.status, a.reason) == ("removed", "pulled")
    alerts = r.run(range(8, 10), {5: 8.0})
    assert [(x.id, x.status, x.price) for x in alerts] == [("btcusdt-2", "born", 61799.5)]


def test_a_pulled_wall_back_within_ten_seconds_returns_under_its_id() -> None:
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    assert only(r.sample(7, {})).status == "removed"
    back = r.run(range(8, 15), {3: 8.0})  # back at 8 s, qualifies again at 14 s: 7 s after the pull
    a = only(back)
    assert (a.id, a.status, a.live, a.reason, a.price) == ("btcusdt-1", "returned", True, None, 61799.7)
    assert [e.status for e in a.events] == ["born", "removed", "returned"]
    assert len(r.raw(WALL)) == 2


def test_a_wall_back_later_than_ten_seconds_is_a_new_alert() -> None:
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    r.sample(7, {})
    r.run(range(8, 12), {})
    a = only(r.run(range(12, 19), {3: 8.0}))  # back at 12 s, qualifies at 18 s: 11 s after the pull
    assert (a.id, a.status) == ("btcusdt-2", "born")


def test_a_lost_book_ends_every_live_alert() -> None:
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    r.tracker.end_all(8 * S)
    a = only(r.tracker.frame_alerts())
    assert (a.status, a.live, a.reason, a.ts) == ("removed", False, "resync", 8.0)
    assert r.tracker.frame_alerts() == []


def test_ended_alerts_are_kept_for_the_buffer_then_dropped() -> None:
    r = Run()
    r.run(range(0, 7), {3: 8.0})
    r.sample(7, {})
    r.sample(186, {})
    assert [a.id for a in r.tracker.alerts()] == ["btcusdt-1"]  # ended at 7 s: 179 s ago
    r.sample(187, {})
    assert r.tracker.alerts() == []


# --- layering and exhaustion -----------------------------------------------------------------
def test_layering_is_one_alert_while_its_runs_last() -> None:
    r = Run()
    run4 = {2: 9.0, 3: 9.0, 4: 9.0, 5: 9.0}
    a = only(r.sample(0, asks=run4))
    assert (a.type, a.status, a.side, a.price, a.levels, a.churn, a.multiple) == (
        "LAYERING", "born", "ask", 61800.3, 4, 1.0, 9.0)
    assert a.size == 36.0
    assert a.notional == pytest.approx(9 * (61800.3 + 61800.4 + 61800.5 + 61800.6))
    assert a.distance_bps == pytest.approx((61800.3 - MID) / MID * 1e4)
    assert a.depth_share == pytest.approx(36 / 52)  # 16 levels of 1 and the run
    for t in range(1, 35):  # (its levels are walls too after 5 s: alerts of their own)
        assert only(r.sample(t, asks=run4), "LAYERING").status == "born"  # the same runs: no change
    # 35 s after the first firing (past the 30 s cooldown) the runs move to new prices:
    # churn 1, the detector fires again, the alert refires.
    moved = {8: 9.0, 9: 9.0, 10: 9.0, 11: 9.0}
    a = only(r.sample(35, asks=moved), "LAYERING")
    assert (a.id, a.status, a.price) == ("btcusdt-1", "refired", 61800.9)
    a = only(r.sample(36, asks={}), "LAYERING")
    assert (a.id, a.status, a.live, a.reason) == ("btcusdt-1", "ended", False, "cleared")
    assert [e.status for e in a.events] == ["born", "refired", "ended"]


def test_exhaustion_is_one_alert_per_episode_with_the_missing_depth() -> None:
    r = Run()
    ten = {i: 1.0 for i in range(20)}
    for t in range(11):
        r.sample(t, bid_levels=ladder(BEST_BID, -0.1, ten, n=10))
    thin = ladder(BEST_BID, -0.1, {i: 0.4 for i in range(10)}, n=10)
    events = r.det.on_sample(11 * S, thin, ladder(BEST_ASK, 0.1), 0.3, ())
    r.tracker.on_sample(11 * S, events, r.det, thin, ladder(BEST_ASK, 0.1))
    a = only(r.tracker.frame_alerts())
    assert (a.type, a.status, a.side, a.price) == ("EXHAUSTION", "born", "bid", BEST_BID)
    assert a.size == pytest.approx(6.0)  # mean top-10 depth 10 - 4 now
    assert a.notional == pytest.approx(6.0 * MID) and a.depth_share == pytest.approx(0.6)
    r.sample(12, bid_levels=ladder(BEST_BID, -0.1, ten, n=10))  # spread back to 1 tick: cleared
    assert [(x.status, x.reason) for x in r.tracker.alerts()] == [("ended", "cleared")]


# --- selection, order, groups ---------------------------------------------------------------
def alert(id_: str, live: bool, score: float, peak: float, price: float, price_bin: int, ts: float = 10.0,
          kind: str = WALL, side: str = "bid") -> FrameAlert:
    return FrameAlert(id=id_, type=kind, status="born", live=live, symbol="btcusdt", side=side,  # type: ignore[arg-type]
                      price=price, price_bin=price_bin, ts=ts, born_ts=ts, age_s=6.0, size=1.0, notional=peak,
                      peak_notional=peak, distance_bps=0.0, depth_share=0.1, score=score)


def test_select_filters_and_orders_live_first_then_by_score() -> None:
    held = [
        alert("b-1", False, 900_000.0, 900_000.0, 61700.0, 30850),
        alert("b-2", True, 400_000.0, 400_000.0, 61701.1, 30850, ts=20.0),
        alert("b-3", True, 600_000.0, 600_000.0, 61750.0, 30875, kind="LAYERING", side="ask"),
        alert("b-4", True, 100_000.0, 360_000.0, 61701.9, 30850),  # shrunk: its peak passes the filter
        alert("b-5", True, 340_000.0, 349_999.99, 61640.0, 30820),
    ]
    assert [a.id for a in select(held, min_notional=350_000.0)] == ["b-3", "b-2", "b-4", "b-1"]
    assert [a.id for a in select(held, min_notional=0.0, kinds=("WALL",))] == ["b-2", "b-5", "b-4", "b-1"]
    assert [a.id for a in select(held, since=10.0)] == ["b-2"]  # ts > since
    groups = group_by_price(select(held, min_notional=350_000.0))
    assert [(g.side, g.price_bin, [a.id for a in g.alerts]) for g in groups] == [
        ("ask", 30875, ["b-3"]), ("bid", 30850, ["b-2", "b-4", "b-1"])]
    g = groups[1]
    assert (g.price_low, g.price_high, g.live, g.score) == (61700.0, 61701.9, True, 400_000.0)
    assert rank_key(held[1]) < rank_key(held[0])  # live before ended, whatever the score


# --- the real recording --------------------------------------------------------------------
def test_alerts_on_the_real_recording_follow_their_definitions(btc_file: Path) -> None:
    """Every frame of the BTCUSDT recording: each detector WALL names exactly one live alert
    at its price, each WALL_REMOVED an alert that left that price at that sample, and every
    live wall alert's significance is its definition applied to that frame's book."""
    from bench.alert_rate import frames_of

    ids: set[str] = set()
    raw_raised = 0
    checked = 0
    for frame, feats in frames_of(btc_file):
        by_key: dict[tuple[str, float | None], list[FrameAlert]] = {}
        for a in frame.alerts:
            ids.add(a.id)
            if a.type == WALL:
                by_key.setdefault((a.side, a.price), []).append(a)
        for ev in feats.last_detections:
            raw_raised += ev.type in ("WALL", "LAYERING", "EXHAUSTION")
            if ev.type == WALL:
                assert [a.live for a in by_key.get((ev.side, ev.price), [])] == [True], (ev, frame.alerts)
            elif ev.type == WALL_REMOVED:
                assert any(left_price(a, ev.side, ev.price, frame.timestamp) for a in frame.alerts), (ev, frame)
        mid = frame.mid_price
        assert mid is not None
        for a in frame.alerts:
            if a.type != WALL or not a.live:
                continue
            assert a.price is not None and a.notional is not None and a.peak_notional is not None
            assert a.distance_bps is not None
            levels = (frame.bid_levels if a.side == "bid" else frame.ask_levels)[:SETTINGS.detector_levels]
            assert (a.price, a.size) in levels
            assert a.notional == a.price * a.size
            assert a.distance_bps == abs(a.price - mid) / mid * 1e4
            assert math.isclose(a.depth_share or 0, a.size / sum(q for _, q in levels), rel_tol=1e-12)
            assert a.score == a.notional / (1 + a.distance_bps / SETTINGS.alert_score_half_bps)
            assert a.age_s > SETTINGS.wall_min_age_s and a.peak_notional >= a.notional
            checked += 1
    assert checked > 100  # live wall states checked
    assert len(ids) < raw_raised  # a re-firing folded into its alert
