"""Alerts over their life (docs/metrics.md, "Alerts").

The detectors (features/liquidity_detection.py) fire on their rules, unchanged: WALL
when a level has stood at wall size for more than 5 s, WALL_REMOVED when it goes,
LAYERING and EXHAUSTION when their conditions hold. :class:`AlertTracker` folds
those events into one alert per wall, layering run or exhaustion episode, whose id
stays the same from birth to end:

- A wall is **born** with the detector's WALL. It has **grown** or **shrunk** when
  its size moved by a factor ``alert_size_step`` since the size last reported. When
  it is pulled, a level of about its size (within that factor) that reached wall
  size at most ``alert_move_window_s`` before, within ``alert_move_bps`` of it on the
  same side, is the same wall **moved**; so is a WALL that fires within that
  distance at most ``alert_return_s`` after a pull, for a level that reached wall
  size after it (**returned** when at the same price). Otherwise it is **removed**:
  pulled, filled or out of view, as the detector judges it.
- A layering alert is born with LAYERING and lives while its side has runs; a new
  LAYERING on that side meanwhile **refired** it; it **ended** when the runs went.
- An exhaustion alert is born with EXHAUSTION and ended when the condition cleared.
- A liquidation burst alert (LIQUIDATION_BURST) is born when forced orders on one
  side reach the burst threshold (features/derivatives.py); it grows with the
  liquidations that follow, carries the liquidity response of the side they hit
  (depth before, its minimum, drain, refill time), and ends when every band that
  held depth before has refilled (reason ``refilled``), after the watch time
  without refill (``not_refilled``), or ``unmeasured`` when no band held depth
  just before it (or no book was in sync).

Every live alert is refreshed at every 1 Hz sample with its significance: size,
notional (USDT), distance from mid (bps), share of its side's top-20 depth, age and
the score that orders alerts. Time is an argument (integer ns); nothing here reads
a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from msgspec import Meta, Struct

from config import Settings, SymbolSpec
from features.derivatives import RESPONSE_BANDS, Burst
from features.frame import AlertEvent, BurstResponse, FrameAlert
from features.liquidity_detection import (
    ASK,
    BID,
    EXHAUSTION,
    LAYERING,
    WALL,
    WALL_REMOVED,
    Alert,
    Level,
    LiquidityDetector,
    Removal,
    WallLevel,
)
from features.rounding import PRICE, QUOTE, TIME

LIQUIDATION_BURST = "LIQUIDATION_BURST"
KINDS = (WALL, LAYERING, EXHAUSTION, LIQUIDATION_BURST)

BORN = "born"
GROWN = "grown"
SHRUNK = "shrunk"
MOVED = "moved"
RETURNED = "returned"
REFIRED = "refired"
REMOVED = "removed"  # the end of a wall
ENDED = "ended"  # the end of a layering or exhaustion alert

PULLED = "pulled"
CLEARED = "cleared"
RESYNC = "resync"

MAX_EVENTS = 8  # the first change of an alert's life and the latest ones
_NS = 1_000_000_000


@dataclass(slots=True)
class _Life:
    """One alert, as the tracker keeps it between samples (full precision)."""

    id: str
    type: str
    side: str
    price: float | None
    born_ns: int
    first_ns: int  # origin of the age
    ts_ns: int  # the latest sample it was refreshed at
    size: float = 0.0
    ref_size: float = 0.0  # the size at the latest reported change
    status: str = BORN
    live: bool = True
    ended_ns: int | None = None
    reason: str | None = None
    notional: float | None = None
    peak_notional: float | None = None
    distance_bps: float | None = None
    depth_share: float | None = None
    score: float | None = None
    multiple: float | None = None
    levels: int | None = None
    churn: float | None = None
    remaining: float | None = None
    traded_qty: float | None = None
    events: list[AlertEvent] = field(default_factory=list)
    burst: BurstResponse | None = None


@dataclass(frozen=True, slots=True)
class _Sample:
    ts_ns: int
    mid: float | None
    median: float | None
    levels: dict[str, Sequence[Level]]
    depth: dict[str, float]  # sum of the sampled (top-20) quantities of each side


class AlertTracker:
    """The alerts of one symbol over their life, one call per detector sample."""

    def __init__(self, symbol: str, settings: Settings, spec: SymbolSpec) -> None:
        self.symbol = symbol.lower()
        self.s = settings
        self._tick = spec.tick_size
        self._bin_ticks = max(1, spec.heatmap_bin_ticks)
        self._keep_ns = round(settings.buffer_seconds * _NS)
        self._count = 0
        self._live: list[_Life] = []
        self._ended: deque[_Life] = deque()  # ended in the last buffer_seconds, oldest end first
        self._unsent: list[_Life] = []  # ended since the last frame
        self._born_now: list[_Life] = []
        self.last_ts_ns: int | None = None
        self._bursts: dict[int, _Life] = {}  # burst id -> its alert, while live

    # --- per sample ------------------------------------------------------------------
    def on_sample(
        self,
        ts_ns: int,
        events: Sequence[Alert],
        detector: LiquidityDetector,
        bids: Sequence[Level],
        asks: Sequence[Level],
    ) -> list[FrameAlert]:
        """Fold one sample's detector events into the alerts; ``bids``/``asks`` are the
        levels the detector sampled (best first). Returns the alerts born."""
        mid = (bids[0][0] + asks[0][0]) / 2.0 if bids and asks else None
        smp = _Sample(
            ts_ns, mid, detector.median, {BID: bids, ASK: asks},
            {BID: sum(q for _, q in bids), ASK: sum(q for _, q in asks)},
        )
        self._born_now = []
        self._walls(smp, events, detector)
        self._layering(smp, events, detector)
        self._exhaustion(smp, events, detector)
        self._expire(ts_ns)
        self.last_ts_ns = ts_ns
        return [self._struct(x) for x in self._born_now]

    def on_bursts(self, ts_ns: int, bursts: Iterable[Burst], mid: float | None) -> list[FrameAlert]:
        """Fold the liquidation bursts being measured (features/derivatives.py) into
        their alerts at a frame; returns the alerts born."""
        born: list[_Life] = []
        for burst in bursts:
            life = self._bursts.get(burst.id)
            if life is None:
                if burst.finished and burst.outcome is None:
                    continue
                start_ns = burst.start_ms * 1_000_000
                self._count += 1
                life = _Life(f"{self.symbol}-{self._count}", LIQUIDATION_BURST, burst.hit, burst.avg_price,
                             ts_ns, start_ns, ts_ns)
                self._live.append(life)
                self._bursts[burst.id] = life
                born.append(life)
                change: str | None = BORN
            else:
                change = None
            if not life.live:
                continue
            life.price = burst.avg_price
            life.size = burst.qty
            life.burst = _burst_struct(burst)
            smp = _Sample(ts_ns, mid, None, {}, {})
            self._refresh(life, smp, burst.notional, None, change)
            if burst.finished:
                assert burst.outcome is not None
                self._end(life, ENDED, burst.outcome, ts_ns)
                del self._bursts[burst.id]
        self._expire(ts_ns)
        return [self._struct(x) for x in born]

    def end_all(self, ts_ns: int | None = None, reason: str = RESYNC) -> None:
        """End every live alert (the book lost sync: what became of them is unknown), at
        ``ts_ns`` or else at the latest sample."""
        if ts_ns is None:
            ts_ns = self.last_ts_ns
        if ts_ns is None:
            return
        for life in list(self._live):
            self._end(life, REMOVED if life.type == WALL else ENDED, reason, ts_ns)
        self._bursts.clear()
        self._expire(ts_ns)

    # --- what is shown ---------------------------------------------------------------
    def frame_alerts(self) -> list[FrameAlert]:
        """For the next frame: every live alert and every alert ended since the previous frame."""
        out = [self._struct(x) for x in self._live] + [self._struct(x) for x in self._unsent]
        self._unsent = []
        return out

    def alerts(self) -> list[FrameAlert]:
        """Every live alert and every alert ended in the last buffer_seconds."""
        return [self._struct(x) for x in self._live] + [self._struct(x) for x in self._ended]

    # --- walls -----------------------------------------------------------------------
    def _walls(self, smp: _Sample, events: Sequence[Alert], detector: LiquidityDetector) -> None:
        walls_now = {(w.side, w.price): w for w in detector.wall_levels()}
        removed = {(a.side, a.price): a for a in events if a.type == WALL_REMOVED}
        lives = [x for x in self._live if x.type == WALL]
        claimed: set[tuple[str, float]] = {(x.side, x.price) for x in lives if x.price is not None}
        for life in lives:
            assert life.price is not None
            key = (life.side, life.price)
            now = walls_now.get(key)
            if now is not None:
                self._refresh_wall(life, now.size, smp)
                continue
            raw = removed.get(key)
            if raw is not None:
                d = raw.details
                removal = Removal(d["reason"], d["remaining"], d["traded_qty"])
            else:  # a moved wall that had not qualified at its new price yet
                removal = detector.removal(life.side, life.price, life.size)
            if removal.reason == PULLED:
                target = self._moved_to(life, walls_now.values(), claimed, smp)
                if target is not None:
                    claimed.discard(key)
                    claimed.add((target.side, target.price))
                    life.price = target.price
                    self._refresh_wall(life, target.size, smp, MOVED)
                    continue
            life.remaining, life.traded_qty = removal.remaining, removal.traded_qty
            self._end(life, REMOVED, removal.reason, smp.ts_ns)
        for a in events:
            if a.type != WALL or a.price is None or (a.side, a.price) in claimed:
                continue  # a wall that moved here and now qualifies: the same alert
            key = (a.side, a.price)
            level = walls_now[key]
            back = self._returning(level, smp)
            if back is not None:
                status = RETURNED if back.price == level.price else MOVED
                self._revive(back)
                back.price = level.price
                self._refresh_wall(back, level.size, smp, status)
            else:
                life = self._born(WALL, a.side, a.price, smp.ts_ns, level.first_ns)
                self._refresh_wall(life, level.size, smp, BORN)
            claimed.add(key)

    def _refresh_wall(self, life: _Life, size: float, smp: _Sample, change: str | None = None) -> None:
        assert life.price is not None
        life.size = size
        life.multiple = size / smp.median if smp.median else None
        depth = smp.depth[life.side]
        self._refresh(life, smp, life.price * size, size / depth if depth > 0 else None, change)

    def _similar(self, size: float, ref: float) -> bool:
        step = self.s.alert_size_step
        return ref / step <= size <= ref * step

    def _near(self, a: float, b: float, mid: float | None) -> bool:
        return mid is not None and mid > 0 and abs(a - b) / mid * 1e4 <= self.s.alert_move_bps

    def _moved_to(
        self, life: _Life, walls_now: Iterable[WallLevel], claimed: set[tuple[str, float]], smp: _Sample
    ) -> WallLevel | None:
        """The level a pulled wall moved to: same side, unclaimed, at wall size for at most
        alert_move_window_s, about the same size, within alert_move_bps; the nearest."""
        assert life.price is not None
        window_ns = round(self.s.alert_move_window_s * _NS)
        best: WallLevel | None = None
        for w in walls_now:
            if w.side != life.side or (w.side, w.price) in claimed or smp.ts_ns - w.first_ns > window_ns:
                continue
            if not self._near(w.price, life.price, smp.mid) or not self._similar(w.size, life.size):
                continue
            if best is None or abs(w.price - life.price) < abs(best.price - life.price):
                best = w
        return best

    def _returning(self, level: WallLevel, smp: _Sample) -> _Life | None:
        """A wall pulled at most alert_return_s ago, near ``level`` and of about its size,
        for a level that reached wall size after the pull (give or take the move
        window): the wall came back. The most recently pulled one."""
        window_ns = round(self.s.alert_move_window_s * _NS)
        return_ns = round(self.s.alert_return_s * _NS)
        for life in reversed(self._ended):
            if life.type != WALL or life.side != level.side or life.reason != PULLED or life.price is None:
                continue
            assert life.ended_ns is not None
            if smp.ts_ns - life.ended_ns > return_ns or level.first_ns < life.ended_ns - window_ns:
                continue
            if self._near(level.price, life.price, smp.mid) and self._similar(level.size, life.size):
                return life
        return None

    def _revive(self, life: _Life) -> None:
        self._ended.remove(life)
        if life in self._unsent:
            self._unsent.remove(life)
        life.live, life.ended_ns, life.reason = True, None, None
        life.remaining = life.traded_qty = None
        self._live.append(life)

    # --- layering ----------------------------------------------------------------------
    def _layering(self, smp: _Sample, events: Sequence[Alert], detector: LiquidityDetector) -> None:
        for side in (BID, ASK):
            fired = next((a for a in events if a.type == LAYERING and a.side == side), None)
            life = self._live_of(LAYERING, side)
            runs = detector.layering_levels(side)
            change: str | None = None
            if life is None:
                if fired is None or not runs:
                    continue
                life = self._born(LAYERING, side, runs[0][0], smp.ts_ns, smp.ts_ns)
                change = BORN
            elif not runs:
                self._end(life, ENDED, CLEARED, smp.ts_ns)
                continue
            elif fired is not None:
                change = REFIRED
            if fired is not None:
                life.churn = float(fired.details["churn"])
            life.price = runs[0][0]  # runs are best first: the level nearest the mid
            life.size = sum(q for _, q in runs)
            life.levels = len(runs)
            life.multiple = min(q for _, q in runs) / smp.median if smp.median else None
            depth = smp.depth[side]
            self._refresh(life, smp, sum(p * q for p, q in runs), life.size / depth if depth > 0 else None, change)

    # --- exhaustion ----------------------------------------------------------------------
    def _exhaustion(self, smp: _Sample, events: Sequence[Alert], detector: LiquidityDetector) -> None:
        for side in (BID, ASK):
            fired = any(a.type == EXHAUSTION and a.side == side for a in events)
            life = self._live_of(EXHAUSTION, side)
            state = detector.exhaustion_state(side)
            change: str | None = None
            if life is None:
                if not fired:
                    continue
                life = self._born(EXHAUSTION, side, None, smp.ts_ns, smp.ts_ns)
                change = BORN
            elif not state.active:
                self._end(life, ENDED, CLEARED, smp.ts_ns)
                continue
            levels = smp.levels[side]
            life.price = levels[0][0] if levels else None
            mean_depth = state.mean_depth or 0.0
            life.size = max(mean_depth - (state.depth or 0.0), 0.0)
            notional = life.size * smp.mid if smp.mid is not None else None
            self._refresh(life, smp, notional, life.size / mean_depth if mean_depth > 0 else None, change)

    # --- common --------------------------------------------------------------------------
    def _live_of(self, kind: str, side: str) -> _Life | None:
        return next((x for x in self._live if x.type == kind and x.side == side), None)

    def _born(self, kind: str, side: str, price: float | None, ts_ns: int, first_ns: int) -> _Life:
        self._count += 1
        life = _Life(f"{self.symbol}-{self._count}", kind, side, price, ts_ns, first_ns, ts_ns)
        self._live.append(life)
        self._born_now.append(life)
        return life

    def _refresh(
        self, life: _Life, smp: _Sample, notional: float | None, share: float | None, change: str | None
    ) -> None:
        """Significance at this sample (docs/metrics.md, "Alerts"), then the change it
        makes: the one given, else grown / shrunk by the size step."""
        life.ts_ns = smp.ts_ns
        life.notional = notional
        if notional is not None:
            life.peak_notional = max(life.peak_notional or 0.0, notional)
        mid = smp.mid
        life.distance_bps = abs(life.price - mid) / mid * 1e4 if life.price is not None and mid else None
        life.depth_share = share
        if notional is None:
            life.score = None
        else:
            distance = life.distance_bps or 0.0
            life.score = notional / (1.0 + distance / self.s.alert_score_half_bps)
        if change is None and life.ref_size > 0.0:
            step = self.s.alert_size_step
            if life.size >= life.ref_size * step:
                change = GROWN
            elif life.size <= life.ref_size / step:
                change = SHRUNK
        if change is not None:
            self._event(life, change, smp.ts_ns)

    def _event(self, life: _Life, status: str, ts_ns: int) -> None:
        life.status = status
        life.ref_size = life.size
        life.events.append(AlertEvent(ts=ts_ns / _NS, status=status, price=life.price, size=life.size))  # type: ignore[arg-type]
        if len(life.events) > MAX_EVENTS:
            del life.events[1]  # keep the birth and the latest changes

    def _end(self, life: _Life, status: str, reason: str, ts_ns: int) -> None:
        life.live = False
        life.reason = reason
        life.ended_ns = ts_ns
        life.ts_ns = ts_ns
        self._event(life, status, ts_ns)
        self._live.remove(life)
        self._ended.append(life)
        self._unsent.append(life)

    def _expire(self, now_ns: int) -> None:
        start = now_ns - self._keep_ns
        while self._ended and (self._ended[0].ended_ns or 0) <= start:
            self._ended.popleft()

    def _price_bin(self, price: float | None) -> int | None:
        return None if price is None else round(price / self._tick) // self._bin_ticks

    def _struct(self, x: _Life) -> FrameAlert:
        return FrameAlert(
            id=x.id, type=x.type, status=x.status, live=x.live, symbol=self.symbol, side=x.side,  # type: ignore[arg-type]
            price=x.price, price_bin=self._price_bin(x.price), ts=x.ts_ns / _NS, born_ts=x.born_ns / _NS,
            age_s=(x.ts_ns - x.first_ns) / _NS, size=x.size, notional=x.notional, peak_notional=x.peak_notional,
            distance_bps=x.distance_bps, depth_share=x.depth_share, score=x.score, multiple=x.multiple,
            levels=x.levels, churn=x.churn, reason=x.reason, remaining=x.remaining, traded_qty=x.traded_qty,
            events=list(x.events), burst=x.burst,
        )


def _burst_struct(b: Burst) -> BurstResponse:
    ten, twenty_five = RESPONSE_BANDS
    return BurstResponse(
        start_ts=b.start_ms / 1000.0, liquidation_side=b.side, count=b.count, qty=b.qty,  # type: ignore[arg-type]
        notional=b.notional, largest_notional=b.largest_notional,
        depth_before_10bps=b.before.get(ten), depth_before_25bps=b.before.get(twenty_five),
        depth_min_10bps=b.low.get(ten), depth_min_25bps=b.low.get(twenty_five),
        drain_pct_10bps=b.drain_pct(ten), drain_pct_25bps=b.drain_pct(twenty_five),
        refill_s_10bps=b.refill_s.get(ten), refill_s_25bps=b.refill_s.get(twenty_five),
        refilled=b.outcome == "refilled",
    )


# --- selection, order and groups: what GET /alerts and the dashboard panel show ---------------


def rank_key(a: FrameAlert) -> tuple[int, float, float, str]:
    """Live alerts first, then by score (highest first), the newest, the id."""
    return (0 if a.live else 1, -(a.score or 0.0), -a.born_ts, a.id)


def select(
    alerts: Iterable[FrameAlert], since: float | None = None, min_notional: float = 0.0,
    kinds: Iterable[str] = KINDS,
) -> list[FrameAlert]:
    """The alerts of ``kinds`` whose state is newer than ``since`` (seconds since the
    epoch) and whose peak notional reached ``min_notional`` (USDT), in rank order."""
    wanted = set(kinds)
    chosen = [
        a for a in alerts
        if a.type in wanted and (since is None or a.ts > since) and (a.peak_notional or 0.0) >= min_notional
    ]
    chosen.sort(key=rank_key)
    return chosen


class AlertGroup(Struct, kw_only=True):
    """The alerts of one side in one heatmap price bin, best first."""

    side: Literal["bid", "ask"]
    price_bin: int | None
    price_low: Annotated[float | None, Meta(description="lowest price of its alerts"), PRICE]
    price_high: Annotated[float | None, Meta(description="highest price of its alerts"), PRICE]
    live: Annotated[bool, Meta(description="at least one of its alerts is live")]
    score: Annotated[float | None, Meta(description="its best alert's score"), QUOTE]
    alerts: list[FrameAlert]


def group_by_price(ranked: Sequence[FrameAlert]) -> list[AlertGroup]:
    """Groups by side and price bin, in the rank order of their best alert; ``ranked``
    comes from :func:`select`."""
    groups: dict[tuple[str, int | None], list[FrameAlert]] = {}
    for a in ranked:
        groups.setdefault((a.side, a.price_bin), []).append(a)
    out = []
    for (side, price_bin), members in groups.items():
        prices = [a.price for a in members if a.price is not None]
        out.append(AlertGroup(
            side=side, price_bin=price_bin,  # type: ignore[arg-type]
            price_low=min(prices) if prices else None, price_high=max(prices) if prices else None,
            live=any(a.live for a in members), score=members[0].score, alerts=members,
        ))
    return out


class AlertsAnswer(Struct, kw_only=True):
    """``GET /alerts/{symbol}``: the alerts the dashboard's panel shows with the same filter."""

    symbol: str
    since: Annotated[float | None, Meta(description="only alerts whose state is newer (ts > since)"), TIME]
    min_notional: Annotated[float, Meta(description="USDT; an alert shows when its peak_notional reached it"),
                            QUOTE]
    default_min_notional: Annotated[float, Meta(description="the default of min_notional"), QUOTE]
    kinds: list[str]
    total: Annotated[int, Meta(description="alerts held (live, or ended in the last 180 s) before the filters")]
    shown: Annotated[int, Meta(description="alerts in the groups")]
    groups: list[AlertGroup]
