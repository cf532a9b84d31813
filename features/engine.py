"""Per-symbol feature engine: the pure glue between the ingestion runtime and the
frames of docs/frames.md.

The runtime calls :meth:`SymbolFeatures.on_depth_applied` after every applied depth
event (cheap: top-N metrics and OFI), :meth:`SymbolFeatures.on_trade` on every trade
and :meth:`SymbolFeatures.build_frame` once per push tick (depth bands, heatmap
column, volume profile, and the detectors on a 1 Hz sample). No I/O, no clock: every
time is an argument in integer ns.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from config import Settings, SymbolSpec
from features.alerts import AlertTracker
from features.basic_metrics import depth_bands, top_metrics
from features.derivatives import (
    BUY,
    RESPONSE_BANDS,
    RESPONSE_BANDS_BPS,
    SELL,
    DerivativesContext,
    Liquidation,
    MarkState,
    Totals,
)
from features.frame import (
    BidAsk,
    BidAskLists,
    Binned,
    DepthBands,
    Frame,
    FrameAlert,
    FrameWall,
    LiquidationPrint,
    LiquidationSides,
    LiquidationStats,
    LiquidationTotals,
    MarkInfo,
    OpenInterestInfo,
    SyncInfo,
    TradePrint,
)
from features.liquidity_detection import Alert, LiquidityDetector
from features.ofi import OfiTracker
from features.trade import Trade
from orderbook.book_state import BookState
from orderbook.sequence_validator import TRUSTED_STATES
from state.level_history import BinnedSizes, LevelHistory, RecentEvents, heatmap_column
from state.rolling_buffer import frames_for

_NS = 1_000_000_000
# Trades held for the next frame when frames stop being built for a while: bounded.
MAX_PENDING_TRADES = 50_000


def _binned(sizes: BinnedSizes | None) -> Binned | None:
    return None if sizes is None else Binned(bin0=sizes.bin0, bin_size=sizes.bin_size, sizes=list(sizes.sizes))


def _totals(t: Totals) -> LiquidationTotals:
    big = t.largest
    return LiquidationTotals(count=t.count, qty=t.qty, notional=t.notional,
                             largest_notional=big.notional if big else None, largest_qty=big.qty if big else None,
                             largest_price=big.price if big else None)


class SymbolFeatures:
    """Everything computed for one symbol between two frames, and the frame itself."""

    def __init__(self, symbol: str, settings: Settings, spec: SymbolSpec | None = None) -> None:
        self.symbol = symbol.lower()
        self.settings = settings
        self.spec = spec if spec is not None else settings.spec(self.symbol)
        self.ofi = OfiTracker(settings.top_n, settings.ofi_window_s)
        self.detector = LiquidityDetector(self.symbol, settings)
        self.levels = LevelHistory(
            settings.buffer_seconds, frames_for(settings.buffer_seconds, settings.push_interval_s)
        )
        self.trade_history: RecentEvents[Trade] = RecentEvents(settings.buffer_seconds)
        self.alerts = AlertTracker(self.symbol, settings, self.spec)
        # Alerts born in the last buffer_seconds (their later changes keep their id).
        self.alert_history: RecentEvents[FrameAlert] = RecentEvents(settings.buffer_seconds, max_items=10_000)
        # The detectors' own events at the latest sample (docs/metrics.md's rules, before
        # they are folded into alerts); empty when the latest frame ran no sample.
        self.last_detections: list[Alert] = []
        self.seq = 0
        self._ts_event_ms: int | None = None
        self._frame_trades: deque[Trade] = deque(maxlen=MAX_PENDING_TRADES)
        self._sample_trades: deque[Trade] = deque(maxlen=MAX_PENDING_TRADES)
        self._last_sample_slot: int | None = None
        self._was_synced = False
        self._snapshot_band: object | None = None  # identity of the book's last snapshot
        self.derivatives = DerivativesContext(settings)
        # The response bands the depth bands of the frame may not hold already.
        self._extra_bands = tuple(b for b in RESPONSE_BANDS_BPS if b not in settings.depth_bands_bps)

    # --- event path -------------------------------------------------------------------
    def on_depth_applied(self, book: BookState, ts_ns: int, event_time_ms: int | None = None) -> None:
        """After one applied depth event: the OFI state (O(N)). A new snapshot under the
        book (seen by its ``snapshot_band``) resets the flow first.

        The book metrics are a pure function of the current book, so they are computed
        when read (every frame) from the same state: identical values, without paying
        for them on events nobody reads. OFI is path-dependent, so it sees every state."""
        band = book.snapshot_band
        if band is not self._snapshot_band:
            # A new REST snapshot was applied since the last event (a resync between two
            # frames): the flow must not difference across it.
            if self._snapshot_band is not None:
                self.on_resync(ts_ns)
            self._snapshot_band = band
        n = self.settings.top_n
        bids = book.top_bids(n)
        asks = book.top_asks(n)
        self.ofi.on_book(ts_ns, bids, asks)  # integer tick keys: exact price comparisons
        if event_time_ms is not None:
            self._ts_event_ms = int(event_time_ms)

    def on_trade(self, ts_ns: int, price: float, qty: float, side: str, nq: float | None = None) -> None:
        """One public trade; ``side`` is the aggressor, "buy" or "sell"; ``nq`` the
        quantity without RPI fills when the exchange sent it (carried, not used)."""
        trade = Trade(ts_ns, float(price), float(qty), side, nq)
        self._frame_trades.append(trade)
        self._sample_trades.append(trade)
        self.trade_history.add(ts_ns, trade)

    def on_liquidation(self, ts_ns: int, side: str, price: float, qty: float, trade_time_ms: int) -> None:
        """One liquidation (forceOrder): the forced order's side ("sell" closes a long),
        its average fill price and filled quantity."""
        self.derivatives.on_liquidation(Liquidation(ts_ns, side, float(price), float(qty), int(trade_time_ms)))

    def on_mark_price(self, ts_ns: int, mark: float, index: float, settle: float | None, funding_rate: float | None,
                      next_funding_ms: int | None, event_time_ms: int) -> None:
        self.derivatives.on_mark_price(MarkState(ts_ns, mark, index, settle, funding_rate, next_funding_ms,
                                                 event_time_ms))

    def on_open_interest(self, ts_ns: int, open_interest: float) -> None:
        self.derivatives.on_open_interest(ts_ns, open_interest)

    def watch_liquidations(self) -> None:
        """The liquidation stream is subscribed: a window without any is a zero, not unknown."""
        self.derivatives.watched = True

    def on_resync(self, ts_ns: int | None = None) -> None:
        """The book lost sync: the next state does not follow the last one, so the
        flow (OFI) and the detectors start again from nothing, and every live alert
        ends (reason ``resync``, at ``ts_ns`` or else at the latest sample)."""
        self.ofi.reset()
        self.detector.reset()
        self.derivatives.bursts.reset()
        self.alerts.end_all(ts_ns)
        self._last_sample_slot = None
        self._sample_trades.clear()

    # --- frame path ---------------------------------------------------------------------
    def build_frame(self, book: BookState, ts_ns: int, sync: dict[str, Any], feed: dict[str, Any]) -> Frame:
        """The frame of docs/frames.md at ``ts_ns``. ``sync`` and ``feed`` come from the
        runtime and are copied in as they are. When ``sync["state"]`` is not a trusted
        one ("synced", or "quiet": in sync on a live connection) every metric is None,
        the level lists are empty and no detector runs."""
        self.seq += 1
        in_sync = sync.get("state") in TRUSTED_STATES
        self.last_detections = []
        if not in_sync and self._was_synced:
            self.on_resync(ts_ns)
        self._was_synced = in_sync
        s = self.settings
        trades = [TradePrint(ts=t.ts_ns / 1e9, price=t.price, qty=t.qty, side=t.side, nq=t.nq)  # type: ignore[arg-type]
                  for t in self._frame_trades]
        self._frame_trades.clear()
        frame = Frame(symbol=self.symbol, timestamp=ts_ns / 1e9, ts_event_ms=self._ts_event_ms, seq=self.seq,
                      sync=SyncInfo(**sync), trades=trades, feed=dict(feed))  # every metric null so far
        if not in_sync:
            self.levels.expire(ts_ns)
            self._derivatives(frame, ts_ns, None, None)
            frame.volume_profile = _binned(self.levels.profile())
            frame.alerts = self.alerts.frame_alerts()  # those the resync ended
            return frame

        n = s.top_n
        m = top_metrics(*book.top(n), n)
        self._maybe_sample(book, ts_ns, m.spread)
        bands = depth_bands(book, s.depth_bands_bps)
        response = bands
        if self._extra_bands and bands is not None:
            extra = depth_bands(book, self._extra_bands)
            if extra is not None:
                response = {side: {**bands[side], **extra[side]} for side in bands}
        self._derivatives(frame, ts_ns, m.mid_price, response)
        column = heatmap_column(book, self.spec.heatmap_bin_ticks, s.heatmap_bins)
        if column is not None:
            self.levels.add_column(ts_ns, column)
        else:
            self.levels.expire(ts_ns)
        bid_levels, ask_levels = book.top(s.frame_levels)
        frame.best_bid = m.best_bid
        frame.best_ask = m.best_ask
        # Full precision here: numbers are rounded once, when the frame is encoded.
        frame.mid_price = m.mid_price
        frame.spread = m.spread
        frame.spread_bps = m.spread_bps
        frame.microprice = m.microprice
        frame.imbalance = m.imbalance
        frame.imbalance_l1 = m.imbalance_l1
        frame.ofi = self.ofi.ofi(ts_ns)
        frame.ofi_levels = self.ofi.ofi_levels(ts_ns)
        frame.depth_delta = self.ofi.depth_delta(ts_ns)
        frame.total_bid_volume = m.total_bid_volume
        frame.total_ask_volume = m.total_ask_volume
        frame.depth_weighted_price = BidAsk(bid=m.depth_weighted_bid, ask=m.depth_weighted_ask)
        frame.depth_weighted_mid = m.depth_weighted_mid
        frame.slope = BidAsk(bid=m.slope_bid, ask=m.slope_ask)
        frame.cumulative_depth = BidAskLists(bid=m.cumulative_bid, ask=m.cumulative_ask)
        frame.depth_bands = DepthBands(**bands) if bands is not None else DepthBands()
        frame.bid_levels = bid_levels
        frame.ask_levels = ask_levels
        frame.walls = [FrameWall(**w.to_dict()) for w in self.detector.walls()]
        frame.alerts = self.alerts.frame_alerts()
        frame.heatmap = _binned(column)
        frame.volume_profile = _binned(self.levels.profile())
        return frame

    def _derivatives(self, frame: Frame, ts_ns: int, mid: float | None,
                     bands: dict[str, dict[str, float]] | None) -> None:
        """Liquidations since the last frame, their windows, mark price and funding, open
        interest; the liquidation bursts measured against this frame's depth (timed by
        the exchange time of the book's last event) and folded into their alerts."""
        d = self.derivatives
        frame.liquidations = [
            LiquidationPrint(ts=x.ts_ns / 1e9, trade_ts=x.trade_time_ms / 1000.0, side=x.side,  # type: ignore[arg-type]
                             price=x.price, qty=x.qty, notional=x.notional)
            for x in d.take_frame_liquidations()
        ]
        windows = d.windows(ts_ns)
        if windows is not None:
            sides = {name: LiquidationSides(sell=_totals(w[SELL]), buy=_totals(w[BUY])) for name, w in windows.items()}
            frame.liquidation_stats = LiquidationStats(last_1s=sides["1s"], last_1m=sides["1m"], last_5m=sides["5m"])
        mark = d.mark_figures(ts_ns, mid)
        if mark is not None:
            frame.mark = MarkInfo(**mark)  # type: ignore[arg-type]
        price = mark["mark_price"] if mark is not None else mid
        oi = d.open_interest_figures(ts_ns, price)
        if oi is not None:
            frame.open_interest = OpenInterestInfo(**oi)  # type: ignore[arg-type]
        t_ms = self._ts_event_ms
        tracker = d.bursts
        if bands is not None and t_ms is not None:
            tracker.on_sample(t_ms, {side: {b: bands[side][b] for b in RESPONSE_BANDS if b in bands[side]}
                                     for side in ("bid", "ask")})
        tracker.on_liquidations(d.take_unscanned())
        for born in self.alerts.on_bursts(ts_ns, tracker.settle(t_ms), mid):
            self.alert_history.add(ts_ns, born)

    def _maybe_sample(self, book: BookState, ts_ns: int, spread: float | None) -> None:
        """Run the detectors at most once per wall-clock second (a 1 Hz sample whatever
        the push interval, robust to jitter in the tick times), and fold their events
        into the alerts."""
        slot = ts_ns // _NS
        if slot == self._last_sample_slot:
            return
        self._last_sample_slot = slot
        bids, asks = book.top(self.settings.detector_levels)
        events = self.detector.on_sample(ts_ns, bids, asks, spread, list(self._sample_trades))
        self._sample_trades.clear()
        self.last_detections = events
        for born in self.alerts.on_sample(ts_ns, events, self.detector, bids, asks):
            self.alert_history.add(ts_ns, born)
        self.alert_history.expire(ts_ns)
        self.trade_history.expire(ts_ns)

    def alert_list(self) -> list[FrameAlert]:
        """Every live alert and every alert ended in the last buffer_seconds, at full precision."""
        return self.alerts.alerts()

    def profile(self) -> BinnedSizes | None:
        return self.levels.profile()
