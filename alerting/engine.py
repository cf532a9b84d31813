"""Rules applied to what the stack sees: the detectors' alerts over their life (each
frame's ``alerts``), and the spread and depth of the focus symbols' frames and of the
screener's rows. Pure: time comes from the data (milliseconds since the epoch), so a
replay and a test behave as live data does.

- Detector kinds (wall, layering, exhaustion, liquidation_burst): an alert's change
  whose status the rule lists in ``events`` (births by default) and that passes its
  thresholds. The first one sent of an alert is subject to the rule's cooldown
  (per rule and symbol); once an alert was sent, its later changes are sent too
  until it ends, without a cooldown.
- spread_blowout and depth_collapse: fire when the condition starts to hold (not
  again until it has stopped holding), and at most once per cooldown.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerting.notification import Notification, dashboard_link
from alerting.rules import (
    DETECTOR_KINDS,
    DepthCollapseRule,
    ExhaustionRule,
    LayeringRule,
    LiquidationBurstRule,
    Rule,
    RuleSet,
    SpreadBlowoutRule,
    WallRule,
)
from features.frame import FrameAlert

END_STATUSES = ("removed", "ended")
MAX_WINDOW_MS = 3_600_000
MIN_BASELINE_SAMPLES = 5  # a median of fewer samples is no baseline
MAX_NOTIFIED = 20_000


@dataclass(slots=True)
class RuleCounters:
    matched: int = 0  # notifications made
    cooldown: int = 0  # matches held back by the cooldown


@dataclass(slots=True)
class _Series:
    """One symbol's spread or depth over the longest window a rule asks for."""

    points: deque[tuple[int, float]] = field(default_factory=deque)

    def add(self, ts_ms: int, value: float, keep_ms: int) -> None:
        if self.points and ts_ms <= self.points[-1][0]:
            return  # the same second again (or older): one value per moment
        self.points.append((ts_ms, value))
        while self.points and self.points[0][0] < ts_ms - keep_ms:
            self.points.popleft()

    def before(self, ts_ms: int, window_ms: int) -> list[float]:
        """Values within ``window_ms`` before ``ts_ms`` (the current one excluded)."""
        return [v for t, v in self.points if ts_ms - window_ms <= t < ts_ms]


class RuleEngine:
    """The rules in force and what they remember (cooldowns, windows, alerts sent)."""

    def __init__(self, rules: RuleSet, dashboard_url: str) -> None:
        self.dashboard_url = dashboard_url
        self.rules = rules
        self.counters: dict[str, RuleCounters] = {}
        self._last_sent: dict[tuple[str, str], int] = {}  # (rule, symbol) -> ts_ms
        self._notified: OrderedDict[tuple[str, str], None] = OrderedDict()  # (rule, alert id)
        self._armed: dict[tuple[str, str, str], bool] = {}  # (rule, source, symbol) -> may fire
        self._spread: dict[tuple[str, str], _Series] = {}  # (source, symbol)
        self._depth: dict[tuple[str, str], _Series] = {}
        self.replace(rules)

    def replace(self, rules: RuleSet) -> None:
        """New rules; what a rule of the same name remembered is kept."""
        self.rules = rules
        names = {r.name for r in rules.rules}
        self.counters = {r.name: self.counters.get(r.name, RuleCounters()) for r in rules.rules}
        self._last_sent = {k: v for k, v in self._last_sent.items() if k[0] in names}
        self._armed = {k: v for k, v in self._armed.items() if k[0] in names}
        for key in [k for k in self._notified if k[0] not in names]:
            del self._notified[key]
        self.detector_rules = [r for r in rules.rules if r.kind_name in DETECTOR_KINDS.values()]
        self.market_rules = [r for r in rules.rules if isinstance(r, SpreadBlowoutRule | DepthCollapseRule)]
        # What the frame tap lets through: (alert type, status) pairs some rule asks for.
        by_kind = {v: k for k, v in DETECTOR_KINDS.items()}
        self.wanted = frozenset((by_kind[r.kind_name], st) for r in self.detector_rules for st in r.events) | \
            frozenset((by_kind[r.kind_name], st) for r in self.detector_rules for st in END_STATUSES)
        windows = [r.window_s for r in self.market_rules]  # type: ignore[attr-defined]
        self._keep_ms = min(MAX_WINDOW_MS, int(max(windows, default=0) * 1000) + 1000)

    def wants_market(self, symbol: str) -> bool:
        return any(r.applies_to(symbol) for r in self.market_rules)

    # --- the detectors' alerts ------------------------------------------------------
    def on_alerts(self, symbol: str, alerts: Iterable[FrameAlert]) -> list[Notification]:
        """Notifications for the alert changes of one frame (births and changes only:
        the tap passes an alert once per change)."""
        out: list[Notification] = []
        for alert in alerts:
            kind = DETECTOR_KINDS.get(alert.type)
            ts_ms = round(alert.ts * 1000)
            for rule in self.detector_rules:
                if rule.kind_name != kind or not rule.applies_to(symbol):
                    continue
                key = (rule.name, alert.id)
                was_sent = key in self._notified
                if alert.status in END_STATUSES:
                    self._notified.pop(key, None)
                if alert.status not in rule.events:
                    continue
                if not was_sent:
                    if alert.status in END_STATUSES or not passes(rule, alert):
                        continue
                    if self._cooling(rule, symbol, ts_ms):
                        continue
                    if alert.status not in END_STATUSES:
                        self._notified[key] = None
                        while len(self._notified) > MAX_NOTIFIED:
                            self._notified.popitem(last=False)
                self.counters[rule.name].matched += 1
                out.append(self._from_alert(rule, symbol, alert, ts_ms))
        return out

    def _cooling(self, rule: Rule, symbol: str, ts_ms: int) -> bool:
        """True (and counted) while the rule's cooldown for ``symbol`` runs; else starts it."""
        last = self._last_sent.get((rule.name, symbol))
        if last is not None and ts_ms - last < rule.cooldown_s * 1000:
            self.counters[rule.name].cooldown += 1
            return True
        self._last_sent[(rule.name, symbol)] = ts_ms
        return False

    def _from_alert(self, rule: Rule, symbol: str, a: FrameAlert, ts_ms: int) -> Notification:
        notional = a.notional
        values: dict[str, float | None] = {}
        detail = ""
        if a.burst is not None:
            notional = a.burst.notional
            values = {"count": float(a.burst.count), "largest_notional": a.burst.largest_notional}
            liq = "longs" if a.burst.liquidation_side == "sell" else "shorts"
            detail = f"{a.burst.count} {liq} liquidated"
        if a.type == "LAYERING" and a.levels is not None:
            values["levels"] = float(a.levels)
            detail = f"{a.levels} levels"
        if a.reason:
            detail = f"{detail} ({a.reason})".strip()
        return Notification(
            symbol=symbol, kind=rule.kind_name, status=a.status, rule=rule.name, ts_ms=ts_ms,
            link=dashboard_link(self.dashboard_url, symbol, ts_ms), destinations=tuple(rule.destinations),
            side=a.side, price=a.price, size=a.size, notional=notional, distance_bps=a.distance_bps,
            alert_id=a.id, detail=detail, values=values,
        )

    # --- spread and depth ------------------------------------------------------------
    def on_market(self, source: str, symbol: str, ts_ms: int, spread_bps: float | None,
                  depth25_usdt: float | None) -> list[Notification]:
        """One moment of a symbol's spread (bps) and depth within 25 bps (both sides,
        USDT); ``source`` ("frame" or "screener") keeps each cadence's windows apart."""
        out: list[Notification] = []
        key = (source, symbol)
        for rule in self.market_rules:
            if not rule.applies_to(symbol):
                continue
            if isinstance(rule, SpreadBlowoutRule):
                fired = _spread_blowout(rule, self._spread.get(key), ts_ms, spread_bps)
            else:
                assert isinstance(rule, DepthCollapseRule)
                fired = _depth_collapse(rule, self._depth.get(key), ts_ms, depth25_usdt)
            arm_key = (rule.name, source, symbol)
            if fired is None:
                self._armed[arm_key] = True
                continue
            if not self._armed.get(arm_key, True):
                continue
            self._armed[arm_key] = False
            if self._cooling(rule, symbol, ts_ms):
                continue
            self.counters[rule.name].matched += 1
            detail, values = fired
            out.append(Notification(
                symbol=symbol, kind=rule.kind_name, status="born", rule=rule.name, ts_ms=ts_ms,
                link=dashboard_link(self.dashboard_url, symbol, ts_ms), destinations=tuple(rule.destinations),
                notional=values.get("depth25_usdt") if isinstance(rule, DepthCollapseRule) else None,
                detail=detail, values=values,
            ))
        if spread_bps is not None:
            self._spread.setdefault(key, _Series()).add(ts_ms, spread_bps, self._keep_ms)
        if depth25_usdt is not None:
            self._depth.setdefault(key, _Series()).add(ts_ms, depth25_usdt, self._keep_ms)
        return out

    def on_screener_rows(self, ts_ms: int, rows: Iterable[Mapping[str, Any]]) -> list[Notification]:
        """The screener's rows (GET /screener's ROW shape): spread_blowout and
        depth_collapse over the whole market."""
        out: list[Notification] = []
        if not self.market_rules:
            return out
        for row in rows:
            symbol = str(row.get("symbol", "")).lower()
            if not symbol or not self.wants_market(symbol):
                continue
            bid, ask = row.get("depth25_bid"), row.get("depth25_ask")
            depth = float(bid) + float(ask) if bid is not None and ask is not None else None
            spread = row.get("spread_bps")
            row_ts = row.get("ts")
            out += self.on_market("screener", symbol, int(row_ts) if row_ts is not None else ts_ms,
                                  None if spread is None else float(spread), depth)
        return out


def passes(rule: Rule, a: FrameAlert) -> bool:
    """The rule's thresholds on one alert's state."""
    side = getattr(rule, "side", "both")
    if side != "both" and a.side != side:
        return False
    notional = a.burst.notional if a.burst is not None else a.notional
    min_notional = getattr(rule, "min_notional", 0.0)
    if min_notional > 0 and (notional is None or notional < min_notional):
        return False
    if isinstance(rule, WallRule | LayeringRule) and rule.max_distance_bps is not None and (
            a.distance_bps is None or a.distance_bps > rule.max_distance_bps):
        return False
    if isinstance(rule, LayeringRule) and (a.levels or 0) < rule.min_levels:
        return False
    return isinstance(rule, WallRule | LayeringRule | ExhaustionRule | LiquidationBurstRule)


def _spread_blowout(rule: SpreadBlowoutRule, series: _Series | None, ts_ms: int,
                    spread_bps: float | None) -> tuple[str, dict[str, float | None]] | None:
    if spread_bps is None:
        return None
    if rule.min_spread_bps is not None and spread_bps < rule.min_spread_bps:
        return None
    median = None
    if rule.median_multiple is not None:
        past = series.before(ts_ms, int(rule.window_s * 1000)) if series is not None else []
        if len(past) < MIN_BASELINE_SAMPLES:
            return None
        median = statistics.median(past)
        if median <= 0 or spread_bps < rule.median_multiple * median:
            return None
    detail = f"spread {spread_bps:.2f} bps"
    if median is not None:
        detail += f" = {spread_bps / median:.1f}x its {rule.window_s:g} s median {median:.2f} bps"
    return detail, {"spread_bps": spread_bps, "median_bps": median}


def _depth_collapse(rule: DepthCollapseRule, series: _Series | None, ts_ms: int,
                    depth: float | None) -> tuple[str, dict[str, float | None]] | None:
    if depth is None or series is None:
        return None
    past = series.before(ts_ms, int(rule.window_s * 1000))
    if not past:
        return None
    high = max(past)
    if high <= 0 or high < rule.min_depth_usdt:
        return None
    drop = 100.0 * (1.0 - depth / high)
    if drop < rule.drop_pct:
        return None
    detail = f"depth within 25 bps {depth:,.0f} USDT, {drop:.0f} % below its {rule.window_s:g} s high {high:,.0f}"
    return detail, {"depth25_usdt": depth, "high_usdt": high, "drop_pct": drop}
