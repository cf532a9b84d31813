"""Each rule kind firing and not firing on hand-made alerts, frames and screener
rows; cooldowns; symbol filters; the frame tap passing births and changes once."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import pytest

from alerting.engine import RuleEngine
from alerting.rules import parse
from alerting.service import Alerting
from data_ingestion.tasks import TaskRegistry
from features.frame import AlertEvent, BurstResponse, DepthBands, Frame, FrameAlert, SyncInfo
from tests.waiting import wait_until

BASE = "http://dash.example:8050"
T0 = 1_780_000_000.0  # seconds since the epoch


def rules(*rule: dict[str, Any]) -> Any:
    return parse({"rules": list(rule), "destinations": {}})


def alert(kind: str = "WALL", status: str = "born", *, id: str = "btcusdt-1", symbol: str = "btcusdt",
          side: str = "bid", price: float = 64_000.0, size: float = 10.0, distance_bps: float | None = 3.0,
          ts: float = T0, levels: int | None = None, burst_notional: float | None = None,
          live: bool = True) -> FrameAlert:
    burst = None
    if burst_notional is not None:
        burst = BurstResponse(start_ts=ts - 2, liquidation_side="sell", count=4, qty=burst_notional / price,
                              notional=burst_notional, largest_notional=burst_notional / 2)
    labels: dict[str, Any] = {"type": kind, "status": status, "side": side}  # Literal fields, from plain str
    return FrameAlert(id=id, live=live, symbol=symbol, price=price, **labels,
                      price_bin=None, ts=ts, born_ts=ts, age_s=6.0, size=size, notional=price * size,
                      peak_notional=price * size, distance_bps=distance_bps, depth_share=0.3, score=None,
                      levels=levels, burst=burst, events=[AlertEvent(ts=ts, price=price, size=size,
                                                                     status=labels["status"])])


def test_wall_rule_fires_on_a_big_near_wall_and_not_on_a_small_or_far_one() -> None:
    eng = RuleEngine(rules({"name": "big", "kind": "wall", "min_notional": 500_000, "max_distance_bps": 10,
                            "cooldown_s": 0}), BASE)
    [n] = eng.on_alerts("btcusdt", [alert(size=10.0)])  # 640,000 USDT at 3 bps
    assert (n.kind, n.status, n.side, n.price, n.size, n.notional, n.distance_bps, n.rule) == (
        "wall", "born", "bid", 64_000.0, 10.0, 640_000.0, 3.0, "big")
    assert n.link == f"{BASE}/?symbol=btcusdt&t=2026-05-28T20:26:40.000Z"
    assert eng.on_alerts("btcusdt", [alert(id="btcusdt-2", size=7.0)]) == []  # 448,000 < 500,000
    assert eng.on_alerts("btcusdt", [alert(id="btcusdt-3", distance_bps=12.0)]) == []
    assert eng.on_alerts("btcusdt", [alert(id="btcusdt-4", kind="LAYERING", levels=5)]) == []  # another kind


def test_wall_side_filter() -> None:
    eng = RuleEngine(rules({"name": "asks", "kind": "wall", "side": "ask", "cooldown_s": 0}), BASE)
    assert eng.on_alerts("btcusdt", [alert(side="bid")]) == []
    assert len(eng.on_alerts("btcusdt", [alert(id="btcusdt-2", side="ask")])) == 1


def test_layering_rule_needs_its_levels() -> None:
    eng = RuleEngine(rules({"name": "lay", "kind": "layering", "min_levels": 5, "cooldown_s": 0}), BASE)
    assert eng.on_alerts("btcusdt", [alert("LAYERING", levels=4)]) == []
    [n] = eng.on_alerts("btcusdt", [alert("LAYERING", id="btcusdt-2", levels=5)])
    assert n.kind == "layering" and n.values["levels"] == 5.0 and "5 levels" in n.text()


def test_exhaustion_rule() -> None:
    eng = RuleEngine(rules({"name": "ex", "kind": "exhaustion", "min_notional": 100_000, "cooldown_s": 0}), BASE)
    assert eng.on_alerts("btcusdt", [alert("EXHAUSTION", size=1.0)]) == []  # 64,000
    assert [n.kind for n in eng.on_alerts("btcusdt", [alert("EXHAUSTION", id="btcusdt-2", size=2.0)])] == [
        "exhaustion"]


def test_liquidation_burst_rule_reads_the_bursts_notional() -> None:
    eng = RuleEngine(rules({"name": "liq", "kind": "liquidation_burst", "min_notional": 250_000,
                            "cooldown_s": 0}), BASE)
    assert eng.on_alerts("btcusdt", [alert("LIQUIDATION_BURST", burst_notional=200_000.0)]) == []
    [n] = eng.on_alerts("btcusdt", [alert("LIQUIDATION_BURST", id="btcusdt-2", burst_notional=300_000.0)])
    assert n.notional == 300_000.0 and "4 longs liquidated" in n.text()


def test_symbol_filter_and_all() -> None:
    eng = RuleEngine(rules({"name": "eth", "kind": "wall", "symbols": ["ETHUSDT"], "cooldown_s": 0},
                           {"name": "any", "kind": "wall", "cooldown_s": 0}), BASE)
    assert [n.rule for n in eng.on_alerts("btcusdt", [alert()])] == ["any"]
    assert sorted(n.rule for n in eng.on_alerts("ethusdt", [alert(id="ethusdt-1", symbol="ethusdt")])) == [
        "any", "eth"]


def test_cooldown_per_rule_and_symbol_on_data_time() -> None:
    eng = RuleEngine(rules({"name": "w", "kind": "wall", "cooldown_s": 60}), BASE)
    assert len(eng.on_alerts("btcusdt", [alert(id="b-1", ts=T0)])) == 1
    assert eng.on_alerts("btcusdt", [alert(id="b-2", ts=T0 + 59.9)]) == []  # within 60 s of the last sent
    assert len(eng.on_alerts("ethusdt", [alert(id="e-1", symbol="ethusdt", ts=T0 + 1)])) == 1  # another symbol
    assert len(eng.on_alerts("btcusdt", [alert(id="b-3", ts=T0 + 60)])) == 1
    assert eng.counters["w"].matched == 3 and eng.counters["w"].cooldown == 1


def test_changes_of_an_alert_sent_are_sent_without_cooldown_and_others_not() -> None:
    eng = RuleEngine(rules({"name": "w", "kind": "wall", "cooldown_s": 600, "events": ["born", "removed"]}), BASE)
    assert len(eng.on_alerts("btcusdt", [alert(id="b-1", ts=T0)])) == 1
    assert eng.on_alerts("btcusdt", [alert(id="b-2", ts=T0 + 1)]) == []  # cooled down: never told
    [gone] = eng.on_alerts("btcusdt", [alert(id="b-1", status="removed", ts=T0 + 5, live=False)])
    assert gone.status == "removed" and gone.alert_id == "b-1"
    assert eng.on_alerts("btcusdt", [alert(id="b-2", status="removed", ts=T0 + 6, live=False)]) == []
    assert eng.on_alerts("btcusdt", [alert(id="b-1", status="grown", ts=T0 + 7)]) == []  # not asked


def test_spread_blowout_by_level_and_by_median_multiple() -> None:
    eng = RuleEngine(rules({"name": "lvl", "kind": "spread_blowout", "min_spread_bps": 5, "cooldown_s": 0},
                           {"name": "mul", "kind": "spread_blowout", "median_multiple": 4, "window_s": 60,
                            "cooldown_s": 0}), BASE)
    ms = int(T0 * 1000)
    for i in range(10):  # a calm spread of 1 bps
        assert eng.on_market("frame", "btcusdt", ms + i * 1000, 1.0, None) == []
    assert eng.on_market("frame", "btcusdt", ms + 10_000, 3.9, None) == []  # < 4 x median 1, < 5 bps
    [n] = eng.on_market("frame", "btcusdt", ms + 11_000, 4.0, None)  # 4 x median 1.0
    assert (n.rule, n.kind, n.values["median_bps"]) == ("mul", "spread_blowout", 1.0)
    fired = eng.on_market("frame", "btcusdt", ms + 12_000, 6.0, None)  # still blown: mul stays quiet
    assert [x.rule for x in fired] == ["lvl"]
    assert eng.on_market("frame", "btcusdt", ms + 13_000, 6.5, None) == []  # lvl holds too: once per episode
    assert eng.on_market("frame", "btcusdt", ms + 14_000, 1.0, None) == []  # cleared: both re-armed
    # The median of the last 60 s is still 1 bps (11 calm samples, 4 blown ones).
    assert [x.rule for x in eng.on_market("frame", "btcusdt", ms + 15_000, 7.0, None)] == ["lvl", "mul"]


def test_spread_blowout_needs_a_baseline() -> None:
    eng = RuleEngine(rules({"name": "mul", "kind": "spread_blowout", "median_multiple": 2, "cooldown_s": 0}), BASE)
    ms = int(T0 * 1000)
    for i in range(4):
        eng.on_market("frame", "btcusdt", ms + i * 1000, 1.0, None)
    assert eng.on_market("frame", "btcusdt", ms + 4000, 50.0, None) == []  # 4 samples: no median yet


def test_depth_collapse_against_the_windows_high() -> None:
    eng = RuleEngine(rules({"name": "dc", "kind": "depth_collapse", "drop_pct": 50, "window_s": 10,
                            "min_depth_usdt": 1e6, "cooldown_s": 0}), BASE)
    ms = int(T0 * 1000)
    for i, depth in enumerate((4e6, 3e6, 2.5e6)):
        assert eng.on_market("frame", "btcusdt", ms + i * 1000, None, depth) == []
    [n] = eng.on_market("frame", "btcusdt", ms + 3000, None, 2e6)  # 50 % below the high 4e6
    assert n.values == {"depth25_usdt": 2e6, "high_usdt": 4e6, "drop_pct": 50.0}
    # 20 s later the 4e6 left the window: the high is 2e6 and 1.5e6 is only 25 % below it.
    for i in range(4, 23):
        eng.on_market("frame", "btcusdt", ms + i * 1000, None, 2e6)
    assert eng.on_market("frame", "btcusdt", ms + 23_000, None, 1.5e6) == []


def test_depth_collapse_ignores_thin_books() -> None:
    eng = RuleEngine(rules({"name": "dc", "kind": "depth_collapse", "drop_pct": 50, "min_depth_usdt": 1e6,
                            "cooldown_s": 0}), BASE)
    ms = int(T0 * 1000)
    eng.on_market("frame", "btcusdt", ms, None, 9e5)
    assert eng.on_market("frame", "btcusdt", ms + 1000, None, 1e5) == []


def row(symbol: str, ts_ms: int, spread: float | None, bid: float | None, ask: float | None) -> dict[str, Any]:
    return {"symbol": symbol, "ts": ts_ms, "mid": 1.0, "spread_bps": spread, "depth10_bid": None,
            "depth10_ask": None, "depth25_bid": bid, "depth25_ask": ask, "imbalance20": 0.0, "wall": None,
            "walls": 0, "liq5m_buy": 0.0, "liq5m_sell": 0.0, "liq_burst": False, "funding_rate": None,
            "quote_volume_24h": 1e9, "change_24h_pct": 0.0, "focus": False, "stale": False}


def test_screener_rows_run_spread_and_depth_rules_over_the_market() -> None:
    eng = RuleEngine(rules({"name": "dc", "kind": "depth_collapse", "drop_pct": 60, "cooldown_s": 0},
                           {"name": "sp", "kind": "spread_blowout", "min_spread_bps": 20,
                            "symbols": ["dogeusdt"], "cooldown_s": 0}), BASE)
    ms = int(T0 * 1000)
    assert eng.on_screener_rows(ms, [row("dogeusdt", ms, 2.0, 5e5, 5e5), row("xrpusdt", ms, 30.0, 1e6, 1e6)]) == []
    out = eng.on_screener_rows(ms + 1000, [row("dogeusdt", ms + 1000, 25.0, 2e5, 1e5),  # 70 % below 1e6
                                           row("xrpusdt", ms + 1000, 30.0, None, 1e6),  # unknown depth
                                           row("solusdt", ms + 1000, 99.0, 1.0, 1.0)])
    assert sorted((n.symbol, n.rule) for n in out) == [("dogeusdt", "dc"), ("dogeusdt", "sp")]
    dc = next(n for n in out if n.rule == "dc")
    assert dc.values["high_usdt"] == 1e6 and dc.values["depth25_usdt"] == 3e5
    assert dc.link == f"{BASE}/?symbol=dogeusdt&t=2026-05-28T20:26:41.000Z"


def frame(symbol: str, ts: float, alerts: list[FrameAlert], spread: float | None = 1.0,
          depth: float | None = None) -> Frame:
    bands = DepthBands(bid={"25": depth / 2 / 100.0}, ask={"25": depth / 2 / 100.0}) if depth else DepthBands()
    return Frame(symbol=symbol, timestamp=ts, ts_event_ms=None, seq=1, sync=SyncInfo(state="synced"),
                 mid_price=100.0, spread_bps=spread, depth_bands=bands, alerts=alerts)


@pytest.mark.asyncio
async def test_the_frame_tap_passes_each_change_once_and_the_depth_in_usdt() -> None:
    al = Alerting(parse({"rules": [{"name": "w", "kind": "wall", "events": ["born", "grown"], "cooldown_s": 0},
                                   {"name": "dc", "kind": "depth_collapse", "drop_pct": 50, "symbols": ["ethusdt"],
                                    "cooldown_s": 0}]}), BASE)
    born = alert(id="b-1", ts=T0)
    al.offer_frame(frame("btcusdt", T0, [born]))
    al.offer_frame(frame("btcusdt", T0 + 1, [born]))  # the same state again: nothing new
    grown = alert(id="b-1", status="grown", ts=T0 + 2, size=20.0)
    al.offer_frame(frame("btcusdt", T0 + 2, [grown]))
    grown_again = alert(id="b-1", status="grown", ts=T0 + 4, size=40.0)  # same status, a later change
    al.offer_frame(frame("btcusdt", T0 + 4, [grown_again]))
    al.offer_frame(frame("btcusdt", T0 + 5, [alert("LAYERING", id="b-2", ts=T0 + 5, levels=9)]))  # no rule
    assert [d.alerts[0].status for d in al.intake] == ["born", "grown", "grown"]  # type: ignore[union-attr]
    sent = [n for d in list(al.intake) for n in al.apply(d)]
    assert [(n.status, n.size) for n in sent] == [("born", 10.0), ("grown", 20.0), ("grown", 40.0)]
    al.intake.clear()
    al.offer_frame(frame("ethusdt", T0, [], depth=4e6))
    al.offer_frame(frame("ethusdt", T0 + 1, [], depth=1e6))
    digests = list(al.intake)
    assert [d.depth25_usdt for d in digests] == [4e6, 1e6]  # type: ignore[union-attr]
    assert [n.rule for d in digests for n in al.apply(d)] == ["dc"]


def test_the_intake_is_bounded_and_counts_what_it_drops() -> None:
    al = Alerting(parse({"rules": [{"name": "w", "kind": "wall", "cooldown_s": 0}]}), BASE, intake_bound=2)
    for i in range(5):
        al.offer_frame(frame("btcusdt", T0 + i, [alert(id=f"b-{i}", ts=T0 + i)]))
    assert len(al.intake) == 2 and al.intake_dropped == 3


class _IntakeFailingOnce(deque[Any]):
    """An intake whose first take raises, as a bug outside a rule's own code would."""

    failed = False

    def popleft(self) -> Any:
        if not self.failed:
            self.failed = True
            raise RuntimeError("intake broken")
        return super().popleft()


@pytest.mark.asyncio
async def test_the_rules_task_that_dies_is_restarted_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    al = Alerting(parse({"rules": [{"name": "w", "kind": "wall", "cooldown_s": 0, "destinations": ["x"]}],
                         "destinations": {"x": {"url": "http://127.0.0.1:9/refused"}}}), BASE)
    al.intake = _IntakeFailingOnce()
    tasks = TaskRegistry(backoff_s=(0.0,))
    al.start(tasks)
    try:
        assert tasks.running == ["alerting-rules", "alerts-to-x"]  # both under the registry given
        with caplog.at_level(logging.ERROR, logger="tasks"):
            al.offer_frame(frame("btcusdt", T0, [alert(id="b-1", ts=T0)]))
            await wait_until(lambda: al.notifications == 1, what="the digest the first run died on, applied")
        assert al.workers["x"].status()["queued"] == 1  # routed to its destination (which refuses: it stays)
        assert tasks.restarts == {"alerting-rules": 1}
        assert sum("task alerting-rules died" in r.getMessage() for r in caplog.records) == 1
        assert "alerting-rules" in tasks.running
    finally:
        await al.stop()
