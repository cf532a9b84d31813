"""The derivatives context of one symbol (docs/metrics.md, "Derivatives context"):
liquidations, mark price and funding, open interest, and how the book's liquidity
answers a liquidation burst.

Per message only the value is kept (a liquidation appended, the latest mark price,
an open-interest poll appended); windows, changes and the burst's response are
computed at the frame cadence from what was kept. No I/O, no clock: every time is an
argument, integer ns for local receive times and integer ms for the exchange's.

Binance sends at most the latest liquidation of a symbol in each 1000 ms, so every
count and sum over liquidations here is a lower bound of what was liquidated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from config import Settings

_NS = 1_000_000_000
FUNDING_INTERVALS_PER_YEAR = 3 * 365  # Binance's 8-hour schedule: 00:00, 08:00, 16:00 UTC
# Liquidation windows (name, seconds) and open-interest change horizons.
LIQUIDATION_WINDOWS: tuple[tuple[str, float], ...] = (("1s", 1.0), ("1m", 60.0), ("5m", 300.0))
OPEN_INTEREST_HORIZONS: tuple[tuple[str, float], ...] = (("1m", 60.0), ("5m", 300.0), ("1h", 3600.0))
# The depth bands (bps of mid) whose response to a burst is measured.
RESPONSE_BANDS: tuple[str, ...] = ("10", "25")
RESPONSE_BANDS_BPS: tuple[float, ...] = (10.0, 25.0)
MAX_PENDING = 10_000  # liquidations held for the next frame when frames stop for a while
MAX_KEPT = 20_000  # liquidations kept for the windows (5 min; Binance sends at most one a second)

SELL = "sell"  # the forced order sells: a long is closed, it sells into the bids
BUY = "buy"  # the forced order buys: a short is closed, it buys from the asks

# Ends of a burst's response (the alert's reason when it ends).
REFILLED = "refilled"
NOT_REFILLED = "not_refilled"
UNMEASURED = "unmeasured"  # no in-sync book just before the burst: nothing to compare with


def hit_side(liquidation_side: str) -> str:
    """The book side a forced order eats: a SELL sells into the bids."""
    return "bid" if liquidation_side == SELL else "ask"


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One forced order as received (forceOrder)."""

    ts_ns: int  # local receive time
    side: str  # SELL or BUY, lower case: the forced order's side
    price: float  # average price of its fills
    qty: float  # filled quantity, base asset
    trade_time_ms: int  # the exchange's time of the order (o.T)

    @property
    def notional(self) -> float:
        return self.price * self.qty


@dataclass(slots=True)
class Totals:
    """Liquidations of one side in one window."""

    count: int = 0
    qty: float = 0.0
    notional: float = 0.0
    largest: Liquidation | None = None  # by notional


@dataclass(frozen=True, slots=True)
class MarkState:
    """The latest markPriceUpdate."""

    ts_ns: int
    mark: float
    index: float
    settle: float | None
    funding_rate: float | None
    next_funding_ms: int | None
    event_time_ms: int


@dataclass(slots=True)
class Burst:
    """A liquidation burst and the liquidity response of the side it hit.

    ``before``: depth within each band of the hit side at the last frame before the
    burst's first liquidation (exchange time), None for a band that held nothing then
    (or with no book): that band is not measured, it has nothing to drain or refill;
    ``low``: its minimum since then, until it refilled; ``refill_s``: seconds from the
    first liquidation to the first frame back at ``liquidation_refill_share`` of before
    (0 when it never fell below that)."""

    id: int
    side: str  # the forced orders' side (sell / buy)
    start_ms: int
    last_ms: int
    count: int = 0
    qty: float = 0.0
    notional: float = 0.0
    largest_notional: float = 0.0
    before: dict[str, float | None] = field(default_factory=dict)
    low: dict[str, float | None] = field(default_factory=dict)
    dipped: dict[str, bool] = field(default_factory=dict)
    refill_s: dict[str, float | None] = field(default_factory=dict)
    done: dict[str, bool] = field(default_factory=dict)
    finished: bool = False
    outcome: str | None = None  # REFILLED, NOT_REFILLED or UNMEASURED once finished
    last_sample_ms: int | None = None

    @property
    def hit(self) -> str:
        return hit_side(self.side)

    @property
    def avg_price(self) -> float | None:
        return self.notional / self.qty if self.qty > 0 else None

    def measured_bands(self) -> list[str]:
        """The bands that held depth just before the burst: only they decide ``refilled``."""
        return [b for b in RESPONSE_BANDS if self.before.get(b) is not None]

    def drain_pct(self, band: str) -> float | None:
        """(before - minimum) / before, in %: 100 when the band emptied, 0 when it never
        went below before (negative never: a band only deeper than before drained 0)."""
        before, low = self.before.get(band), self.low.get(band)
        if before is None or low is None or before <= 0:
            return None
        return max(0.0, (before - low) / before * 100.0)

    def add(self, liq: Liquidation) -> None:
        self.count += 1
        self.qty += liq.qty
        self.notional += liq.notional
        self.largest_notional = max(self.largest_notional, liq.notional)
        self.last_ms = max(self.last_ms, liq.trade_time_ms)


Bands = Mapping[str, Mapping[str, float]]  # {"bid": {"10": q, "25": q}, "ask": {...}}


class BurstTracker:
    """Finds liquidation bursts and measures the liquidity response of the side they
    hit, from the frames' depth samples (one per frame, timed by the exchange time of
    the book's last applied event)."""

    def __init__(self, settings: Settings) -> None:
        self.threshold = settings.liquidation_burst_notional_usdt
        self.window_ms = round(settings.liquidation_burst_window_s * 1000)
        self.share = settings.liquidation_refill_share
        self.watch_ms = round(settings.liquidation_burst_watch_s * 1000)
        # Depth samples kept to find "just before" a burst found up to a window late.
        self._keep_ms = self.window_ms + 30_000
        self._samples: deque[tuple[int, Bands]] = deque()
        self._recent: dict[str, deque[Liquidation]] = {SELL: deque(), BUY: deque()}
        self.live: list[Burst] = []
        self._count = 0

    def reset(self) -> None:
        """The book lost sync: its samples no longer follow each other; bursts being
        measured are dropped (their alerts end with the resync)."""
        self._samples.clear()
        self.live = []

    def on_sample(self, t_ms: int, bands: Bands | None) -> None:
        """One frame's depth within the response bands, per side (None: no book)."""
        if bands is None:
            return
        samples = self._samples
        if samples and t_ms < samples[-1][0]:
            return  # never out of order
        samples.append((t_ms, bands))
        while samples and samples[0][0] < t_ms - self._keep_ms:
            samples.popleft()
        for burst in self.live:
            self._measure(burst, t_ms, bands)

    def on_liquidations(self, liquidations: Iterable[Liquidation]) -> list[Burst]:
        """The liquidations received since the last call, in order; returns the bursts
        born."""
        born: list[Burst] = []
        for liq in liquidations:
            recent = self._recent[liq.side]
            recent.append(liq)
            while recent and recent[0].trade_time_ms < liq.trade_time_ms - self.window_ms:
                recent.popleft()
            current = next((b for b in self.live if b.side == liq.side and not b.finished
                            and liq.trade_time_ms - b.last_ms <= self.window_ms), None)
            if current is not None:
                current.add(liq)
                continue
            if sum(x.notional for x in recent) < self.threshold:
                continue
            self._count += 1
            burst = Burst(self._count, liq.side, recent[0].trade_time_ms, recent[0].trade_time_ms)
            for x in recent:
                burst.add(x)
            recent.clear()
            self._begin(burst)
            self.live.append(burst)
            born.append(burst)
        return born

    def _begin(self, burst: Burst) -> None:
        """The depth just before the burst, then every sample since its start."""
        before = None
        for t_ms, bands in self._samples:
            if t_ms >= burst.start_ms:
                break
            before = bands
        for band in RESPONSE_BANDS:
            value = before[burst.hit].get(band) if before is not None else None
            measured = value is not None and value > 0
            burst.before[band] = value if measured else None
            burst.low[band] = None
            burst.dipped[band] = False
            burst.refill_s[band] = None
            burst.done[band] = not measured  # nothing to follow: out of the refilled decision
        for t_ms, bands in self._samples:
            if t_ms >= burst.start_ms:
                self._measure(burst, t_ms, bands)

    def _measure(self, burst: Burst, t_ms: int, bands: Bands) -> None:
        if burst.finished or t_ms < burst.start_ms:
            return
        burst.last_sample_ms = t_ms
        depth = bands[burst.hit]
        for band in RESPONSE_BANDS:
            if burst.done[band]:
                continue
            before = burst.before[band]
            assert before is not None
            value = depth.get(band)
            if value is None:
                continue
            low = burst.low[band]
            burst.low[band] = value if low is None else min(low, value)
            target = self.share * before
            if value < target:
                burst.dipped[band] = True
            elif burst.dipped[band]:
                burst.refill_s[band] = (t_ms - burst.start_ms) / 1000.0
                burst.done[band] = True
            elif t_ms > burst.last_ms + self.window_ms:
                burst.refill_s[band] = 0.0  # never below the share of before: nothing to refill
                burst.done[band] = True

    def settle(self, t_ms: int | None) -> list[Burst]:
        """Bursts whose response is complete (or watched long enough) at exchange time
        ``t_ms`` are finished; returns every burst live before the call (the finished
        ones for the last time)."""
        out = list(self.live)
        for burst in out:
            if burst.finished:
                continue
            measured = burst.measured_bands()
            if t_ms is not None and not measured and t_ms > burst.last_ms + self.window_ms:
                burst.finished, burst.outcome = True, UNMEASURED
            elif measured and all(burst.done[b] for b in measured):
                burst.finished, burst.outcome = True, REFILLED
            elif t_ms is not None and t_ms - burst.start_ms > self.watch_ms:
                burst.finished, burst.outcome = True, NOT_REFILLED
        self.live = [b for b in self.live if not b.finished]
        return out


class DerivativesContext:
    """Liquidations, mark price and open interest of one symbol, as received."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.watched = False  # the liquidation stream is subscribed (or a recording carries it)
        self._kept: deque[Liquidation] = deque(maxlen=MAX_KEPT)
        self._pending: deque[Liquidation] = deque(maxlen=MAX_PENDING)  # for the next frame
        self._unscanned: deque[Liquidation] = deque(maxlen=MAX_PENDING)  # for the burst tracker
        self.mark: MarkState | None = None
        # (receive ns, open interest): the polls of the last hour and a bit.
        self._oi: deque[tuple[int, float]] = deque()
        self.bursts = BurstTracker(settings)

    # --- per message ------------------------------------------------------------------
    def on_liquidation(self, liq: Liquidation) -> None:
        self.watched = True
        self._kept.append(liq)
        self._pending.append(liq)
        self._unscanned.append(liq)

    def on_mark_price(self, mark: MarkState) -> None:
        self.mark = mark

    def on_open_interest(self, ts_ns: int, open_interest: float) -> None:
        oi = self._oi
        oi.append((ts_ns, open_interest))
        horizon = ts_ns - round((OPEN_INTEREST_HORIZONS[-1][1] + 120.0) * _NS)
        while len(oi) > 2 and oi[1][0] <= horizon:
            oi.popleft()

    # --- per frame ----------------------------------------------------------------------
    def take_frame_liquidations(self) -> list[Liquidation]:
        """The liquidations received since the previous frame (then forgotten here)."""
        out = list(self._pending)
        self._pending.clear()
        return out

    def take_unscanned(self) -> list[Liquidation]:
        out = list(self._unscanned)
        self._unscanned.clear()
        return out

    def windows(self, now_ns: int) -> dict[str, dict[str, Totals]] | None:
        """Per window (received in the last 1 s, 1 min, 5 min) and forced-order side:
        count, quantity, notional and the largest. None while liquidations are not
        watched (no stream, a recording without them): zero would be a claim."""
        if not self.watched:
            return None
        out = {name: {SELL: Totals(), BUY: Totals()} for name, _ in LIQUIDATION_WINDOWS}
        starts = [(name, now_ns - round(seconds * _NS)) for name, seconds in LIQUIDATION_WINDOWS]
        kept = self._kept
        oldest = starts[-1][1]
        while kept and kept[0].ts_ns <= oldest - 60 * _NS:  # a minute of slack, then forgotten
            kept.popleft()
        for liq in reversed(kept):
            if liq.ts_ns <= oldest:
                break
            if liq.ts_ns > now_ns:
                continue
            for name, start in starts:
                if liq.ts_ns > start:
                    t = out[name][liq.side]
                    t.count += 1
                    t.qty += liq.qty
                    t.notional += liq.notional
                    if t.largest is None or liq.notional > t.largest.notional:
                        t.largest = liq
        return out

    def mark_figures(self, now_ns: int, mid: float | None) -> dict[str, float | None] | None:
        """Mark, index, basis, mark - mid, funding; None before the first update or once
        the last one is ``mark_stale_after_s`` old."""
        m = self.mark
        if m is None or now_ns - m.ts_ns > self.settings.mark_stale_after_s * _NS:
            return None
        next_s = m.next_funding_ms / 1000.0 if m.next_funding_ms else None
        return {
            "mark_price": m.mark,
            "index_price": m.index,
            "estimated_settle_price": m.settle,
            "basis_bps": (m.mark - m.index) / m.index * 1e4,
            "mark_mid_bps": (m.mark - mid) / mid * 1e4 if mid else None,
            "funding_rate": m.funding_rate,
            "funding_rate_annual": m.funding_rate * FUNDING_INTERVALS_PER_YEAR if m.funding_rate is not None
            else None,
            "next_funding_time": next_s,
            "funding_in_s": max(0.0, next_s - now_ns / _NS) if next_s is not None else None,
            "age_s": max(0.0, (now_ns - m.ts_ns) / _NS),
        }

    def open_interest_figures(self, now_ns: int, price: float | None) -> dict[str, float | None] | None:
        """The latest open interest, its notional at ``price`` and its change over each
        horizon: latest minus the last poll at or before (latest poll time - horizon);
        None for a horizon the polls do not reach back to. None before the first poll."""
        oi = self._oi
        if not oi:
            return None
        t_last, last = oi[-1]
        out: dict[str, float | None] = {
            "open_interest": last,
            "notional": last * price if price else None,
            "age_s": max(0.0, (now_ns - t_last) / _NS),
        }
        for name, seconds in OPEN_INTEREST_HORIZONS:
            cut = t_last - round(seconds * _NS)
            then = None
            for t, value in reversed(oi):
                if t <= cut:
                    then = value
                    break
            out[f"change_{name}"] = last - then if then is not None else None
            out[f"change_{name}_pct"] = (last - then) / then * 100.0 if then else None
        return out
