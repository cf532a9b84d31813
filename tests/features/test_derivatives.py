"""The derivatives context by hand (docs/metrics.md, "Derivatives context"): liquidation
windows, mark price and funding, open interest changes, and the liquidity response to
a liquidation burst with its alert."""

from __future__ import annotations

import pytest

from config import Settings
from features.alerts import LIQUIDATION_BURST, AlertTracker, select
from features.derivatives import (
    NOT_REFILLED,
    REFILLED,
    UNMEASURED,
    BurstTracker,
    DerivativesContext,
    Liquidation,
    MarkState,
)
from features.engine import SymbolFeatures

S = 1_000_000_000
SETTINGS = Settings()  # threshold 100,000 USDT in 5 s, refilled at 90 %, watched 120 s


def liq(ts_s: float, side: str, price: float, qty: float, t_ms: int | None = None) -> Liquidation:
    return Liquidation(round(ts_s * S), side, price, qty, t_ms if t_ms is not None else round(ts_s * 1000))


def test_liquidation_windows_count_sum_and_name_the_largest_per_side() -> None:
    ctx = DerivativesContext(SETTINGS)
    now = 1_000.0
    assert ctx.windows(round(now * S)) is None  # not watched: unknown, not zero
    for x in (liq(now - 400, "sell", 10.0, 1.0), liq(now - 200, "buy", 50.0, 4.0), liq(now - 30, "sell", 200.0, 2.0),
              liq(now - 0.5, "sell", 100.0, 1.0)):
        ctx.on_liquidation(x)
    w = ctx.windows(round(now * S))
    assert w is not None
    s1, b1 = w["1s"]["sell"], w["1s"]["buy"]
    assert (s1.count, s1.qty, s1.notional) == (1, 1.0, 100.0) and b1.count == 0 and b1.largest is None
    s60 = w["1m"]["sell"]
    assert (s60.count, s60.qty, s60.notional) == (2, 3.0, 500.0)
    assert s60.largest is not None and (s60.largest.price, s60.largest.qty, s60.largest.notional) == (200.0, 2.0, 400.0)
    s300, b300 = w["5m"]["sell"], w["5m"]["buy"]
    assert (s300.count, s300.notional) == (2, 500.0)  # the one 400 s ago is out of every window
    assert (b300.count, b300.qty, b300.notional) == (1, 4.0, 200.0)
    assert [x.notional for x in ctx.take_frame_liquidations()] == [10.0, 200.0, 400.0, 100.0]
    assert ctx.take_frame_liquidations() == []  # each liquidation is in one frame only


def test_mark_price_basis_funding_and_its_countdown() -> None:
    ctx = DerivativesContext(SETTINGS)
    next_funding_ms = 1_699_977_600_000  # 08:00 UTC: a multiple of 8 h
    now_ns = (next_funding_ms - 3_600_000) * 1_000_000
    assert ctx.mark_figures(now_ns, 100.25) is None
    ctx.on_mark_price(MarkState(now_ns - 2 * S, 100.5, 100.0, 100.2, 0.0001, next_funding_ms, 0))
    m = ctx.mark_figures(now_ns, 100.25)
    assert m is not None
    assert m["basis_bps"] == pytest.approx(50.0)  # (100.5 - 100) / 100 * 1e4
    assert m["mark_mid_bps"] == pytest.approx(24.93765586)  # (100.5 - 100.25) / 100.25 * 1e4
    assert m["funding_rate_annual"] == pytest.approx(0.1095)  # 0.0001 x 3 x 365
    assert m["funding_in_s"] == pytest.approx(3600.0) and m["next_funding_time"] == 1_699_977_600.0
    assert m["age_s"] == pytest.approx(2.0)
    assert ctx.mark_figures(now_ns, None)["mark_mid_bps"] is None  # type: ignore[index]
    assert ctx.mark_figures(now_ns + 8 * S, 100.25) is not None  # 10 s old
    assert ctx.mark_figures(now_ns + 9 * S, 100.25) is None  # 11 s old: stale, null


def test_open_interest_changes_over_one_minute_five_minutes_and_an_hour() -> None:
    ctx = DerivativesContext(SETTINGS)
    assert ctx.open_interest_figures(0, 2.0) is None
    for t in range(3000, 3601, 10):
        ctx.on_open_interest(t * S, 1000.0 + t / 10)
    oi = ctx.open_interest_figures(3601 * S, 2.0)
    assert oi is not None
    assert oi["open_interest"] == 1360.0 and oi["notional"] == 2720.0 and oi["age_s"] == pytest.approx(1.0)
    assert oi["change_1m"] == pytest.approx(6.0)  # 1360 - 1354 (the poll at 3540 s)
    assert oi["change_1m_pct"] == pytest.approx(6.0 / 1354 * 100)
    assert oi["change_5m"] == pytest.approx(30.0)  # - 1330 (3300 s)
    assert oi["change_1h"] is None and oi["change_1h_pct"] is None  # the polls start 600 s before: unknown
    ctx2 = DerivativesContext(SETTINGS)
    for t in range(0, 3601, 10):
        ctx2.on_open_interest(t * S, 1000.0 + t / 10)
    assert ctx2.open_interest_figures(3601 * S, None)["change_1h"] == pytest.approx(360.0)  # type: ignore[index]


def sample(tracker: BurstTracker, t_ms: int, bid10: float, bid25: float, ask10: float = 5.0,
           ask25: float = 20.0) -> None:
    tracker.on_sample(t_ms, {"bid": {"10": bid10, "25": bid25}, "ask": {"10": ask10, "25": ask25}})


def test_a_burst_of_sell_liquidations_drains_the_bids_then_they_refill() -> None:
    t = BurstTracker(SETTINGS)
    sample(t, 0, 10.0, 40.0)
    assert t.on_liquidations([liq(0.5, "sell", 60_000.0, 1.0)]) == []  # 60,000 USDT: under the threshold
    sample(t, 1000, 6.0, 30.0)
    born = t.on_liquidations([liq(1.5, "sell", 50_000.0, 1.0)])  # 110,000 USDT within 5 s
    assert len(born) == 1
    b = born[0]
    assert (b.side, b.hit, b.start_ms, b.count, b.qty, b.notional) == ("sell", "bid", 500, 2, 2.0, 110_000.0)
    assert b.before == {"10": 10.0, "25": 40.0}  # the frame before the first liquidation
    sample(t, 2000, 4.0, 32.0)
    sample(t, 3000, 9.0, 35.0)  # 10 bps back to 90 % of 10: refilled 2.5 s after the first liquidation
    assert t.settle(3000) == [b] and not b.finished
    assert b.refill_s == {"10": 2.5, "25": None}
    sample(t, 4000, 3.0, 36.0)  # 25 bps back to 36 = 90 % of 40; 10 bps no longer watched
    assert t.settle(4000) == [b] and b.finished and b.outcome == REFILLED and t.live == []
    assert b.low == {"10": 4.0, "25": 30.0}
    assert b.drain_pct("10") == pytest.approx(60.0) and b.drain_pct("25") == pytest.approx(25.0)
    assert b.refill_s == {"10": 2.5, "25": 3.5}


def test_near_misses_and_the_other_endings_of_a_burst() -> None:
    t = BurstTracker(SETTINGS)
    sample(t, 0, 10.0, 40.0)
    assert t.on_liquidations([liq(1, "buy", 99_999.0, 1.0)]) == []  # 1 USDT short of the threshold
    assert t.on_liquidations([liq(7, "buy", 2.0, 1.0)]) == []  # the first is 6 s old: out of the window
    # A buy burst hits the asks; they never fall under 90 %: nothing to refill (0 s).
    born = t.on_liquidations([liq(8, "buy", 100_000.0, 1.0)])
    assert len(born) == 1 and born[0].hit == "ask" and born[0].start_ms == 7000
    sample(t, 9000, 10.0, 40.0, ask10=4.8, ask25=19.0)
    sample(t, 13_001, 10.0, 40.0, ask10=5.0, ask25=20.0)  # past the last liquidation + 5 s
    t.settle(13_001)
    assert born[0].outcome == REFILLED and born[0].refill_s == {"10": 0.0, "25": 0.0}
    # Drained and never back within the watch time: not refilled.
    born = t.on_liquidations([liq(20, "sell", 200_000.0, 1.0)])
    sample(t, 21_000, 1.0, 5.0)
    sample(t, 140_000, 2.0, 6.0)
    t.settle(140_000)
    assert not born[0].finished  # watched 120 s from its first liquidation
    t.settle(141_000)
    assert born[0].finished and born[0].outcome == NOT_REFILLED and born[0].refill_s == {"10": None, "25": None}
    # No book before it (resync): unmeasured, once its liquidations are over.
    t.reset()
    born = t.on_liquidations([liq(200, "sell", 200_000.0, 1.0)])
    assert born[0].before == {"10": None, "25": None} and born[0].drain_pct("10") is None
    t.settle(204_000)
    assert not born[0].finished
    t.settle(205_001)
    assert born[0].finished and born[0].outcome == UNMEASURED


def test_a_band_empty_before_the_burst_is_not_measured_and_the_other_decides() -> None:
    # The bids hold nothing within 10 bps before the burst (a gap at the touch), 40 within 25.
    t = BurstTracker(SETTINGS)
    sample(t, 0, 0.0, 40.0)
    (b,) = t.on_liquidations([liq(0.5, "sell", 110_000.0, 1.0)])
    assert b.before == {"10": None, "25": 40.0} and b.measured_bands() == ["25"]
    sample(t, 1000, 2.0, 20.0)  # 10 bps filling from nothing is no refill; 25 bps drained to 20
    assert t.settle(1000) == [b] and not b.finished
    sample(t, 2000, 0.0, 35.0)  # 35 < 36 = 90 % of 40: not back yet
    assert t.settle(2000) == [b] and not b.finished
    sample(t, 3000, 0.0, 36.0)  # at 90 % of 40, 2.5 s after the first liquidation (500 ms)
    assert t.settle(3000) == [b] and b.finished and b.outcome == REFILLED
    assert b.refill_s == {"10": None, "25": 2.5} and b.low == {"10": None, "25": 20.0}
    assert b.drain_pct("10") is None and b.drain_pct("25") == pytest.approx(50.0)
    # The alert says which band was not measured: its before is null, and it is refilled on the other.
    features = SymbolFeatures("btcusdt", SETTINGS)
    alerts = AlertTracker("btcusdt", SETTINGS, features.spec)
    (a,) = alerts.on_bursts(3 * S, [b], mid=110_000.0)
    assert a.burst is not None and a.burst.refilled
    assert (a.burst.depth_before_10bps, a.burst.refill_s_10bps, a.burst.drain_pct_10bps) == (None, None, None)
    assert (a.burst.depth_before_25bps, a.burst.refill_s_25bps) == (40.0, 2.5)


def test_the_burst_alert_lives_from_birth_to_refill_and_is_filtered_by_kind() -> None:
    features = SymbolFeatures("btcusdt", SETTINGS)
    alerts = AlertTracker("btcusdt", SETTINGS, features.spec)
    t = BurstTracker(SETTINGS)
    sample(t, 0, 10.0, 40.0)
    t.on_liquidations([liq(0.5, "sell", 60_000.0, 1.0), liq(1.5, "sell", 50_000.0, 1.0)])
    born = alerts.on_bursts(2 * S, t.settle(2000), mid=60_000.0)
    assert len(born) == 1
    a = born[0]
    assert (a.type, a.status, a.side, a.live) == (LIQUIDATION_BURST, "born", "bid", True)
    assert a.notional == 110_000.0 and a.size == 2.0 and a.price == 55_000.0  # average price of the burst
    assert a.burst is not None and a.burst.depth_before_10bps == 10.0 and a.burst.refill_s_10bps is None
    t.on_liquidations([liq(3, "sell", 60_000.0, 1.0)])  # its quantity grows x1.5 since reported: grown
    sample(t, 3000, 3.0, 10.0)
    alerts.on_bursts(3 * S, t.settle(3000), mid=60_000.0)
    (live,) = alerts.alerts()
    assert live.status == "grown" and live.burst is not None and live.burst.count == 3
    assert live.burst.drain_pct_10bps == pytest.approx(70.0)
    sample(t, 9000, 9.5, 38.0)
    alerts.on_bursts(9 * S, t.settle(9000), mid=60_000.0)
    (ended,) = alerts.alerts()
    assert (ended.id, ended.status, ended.live, ended.reason) == (a.id, "ended", False, "refilled")
    assert ended.burst is not None and ended.burst.refilled and ended.burst.refill_s_10bps == 8.5
    assert select(alerts.alerts(), kinds=("WALL",)) == []
    assert [x.id for x in select(alerts.alerts(), kinds=(LIQUIDATION_BURST,))] == [a.id]
