"""One symbol's feed: its book, its sync machine, its snapshot loop, its checks.

The connections hand decoded events to :class:`SymbolFeed`; it never does network
I/O itself except through the REST client it is given for snapshots. A gap in this
symbol resyncs this symbol only; the socket keeps being read meanwhile (the
snapshot loop is its own task).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from config import Settings, SymbolSpec
from data_ingestion.backoff import Backoff
from data_ingestion.monitor import FeedMonitor, StreamStats
from data_ingestion.recording import BookCheckpointLine
from data_ingestion.rest import RestClient, RestError, RestrictedLocation
from orderbook.book_state import BookState
from orderbook.sequence_validator import DisplayState, EventOutcome, SequenceValidator, SnapshotOutcome, SyncState
from orderbook.ticker_check import TickerCrossCheck
from wire.binance import (
    AggTrade,
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    ForceOrder,
    MarkPriceUpdate,
    OpenInterest,
    Trade,
)

log = logging.getLogger("feed")


class FeatureSink(Protocol):
    """What the feed tells the feature engine (features.engine implements it)."""

    def on_depth_applied(self, book: BookState, ts_ns: int, event_time_ms: int | None = None) -> None: ...

    def on_trade(self, ts_ns: int, price: float, qty: float, side: str, nq: float | None = None) -> None: ...

    def on_liquidation(self, ts_ns: int, side: str, price: float, qty: float, trade_time_ms: int) -> None: ...

    def on_mark_price(self, ts_ns: int, mark: float, index: float, settle: float | None, funding_rate: float | None,
                      next_funding_ms: int | None, event_time_ms: int) -> None: ...

    def on_open_interest(self, ts_ns: int, open_interest: float) -> None: ...

    def watch_liquidations(self) -> None: ...


class Link(Protocol):
    """The connection carrying a symbol's depth stream, as far as liveness goes."""

    last_heard_mono_ns: int  # when it last received any frame (data, pong), monotonic


class RawSink(Protocol):
    """Where raw messages go when recording."""

    def write(self, symbol: str, ts_ns: int, raw: bytes | str) -> None: ...


# The context streams of a symbol, as /health names them.
FORCE_ORDER_STREAM = "forceOrder"
MARK_PRICE_STREAM = "markPrice"
OPEN_INTEREST_POLL = "openInterest"
CONTEXT_STREAMS = (FORCE_ORDER_STREAM, MARK_PRICE_STREAM, OPEN_INTEREST_POLL)


def _finite(text: str) -> float:
    """A decimal string as a finite float; ValueError otherwise."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not finite: {text!r}")
    return value


class SymbolFeed:
    """Book + sync state machine + bookTicker cross-check + monitoring of one symbol."""

    def __init__(
        self,
        symbol: str,
        spec: SymbolSpec,
        settings: Settings,
        features: FeatureSink | None = None,
        recorder: RawSink | None = None,
    ) -> None:
        self.symbol = symbol.lower()
        self.spec = spec
        self.settings = settings
        self.book = BookState(self.symbol, spec.tick_size, spec.price_decimals)
        self.validator = SequenceValidator(self.symbol, self.book)
        self.ticker_check = TickerCrossCheck(self.book)
        self.monitor = FeedMonitor(self.symbol, started_ns=time.monotonic_ns())
        self.features = features
        self.recorder = recorder
        self.connected = False
        self.last_ts_ns: int = 0  # local receive time (epoch ns) of the last message
        self.last_event_ms: int = 0  # exchange event time E of the last applied depth event
        self.replay_finished = False  # a finished replay keeps its book; it is not stale
        self.link: Link | None = None  # set by the connection carrying the depth stream
        # Called with the symbol after each applied depth event, once the event is
        # processed (the frame publisher builds a frame that is due on it).
        self.after_applied: Callable[[str], None] | None = None
        # (u, raw) of the last applied depth messages: the log of a bookTicker mismatch
        # shows the raw event it was checked against.
        self._recent_depth_raw: deque[tuple[int, bytes | str]] = deque(maxlen=64)
        self.last_ticker_mismatch: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._last_state = self.validator.state
        # Liquidations, mark price and open interest: per stream counters for /health.
        self.context = {name: StreamStats() for name in CONTEXT_STREAMS}

    # --- history ----------------------------------------------------------------------
    def checkpoint_line(self) -> bytes | None:
        """The whole book as a recording's checkpoint line (docs/recording.md), or None
        when it is not in sync: a reader seeking into history starts from it and
        applies the depth events recorded after it. Called by the recorder once a
        minute; the prices are written with the tick's decimals, the quantities as
        the shortest text that reads back to the same float."""
        if not self.validator.in_sync:
            return None
        book = self.book
        fmt = f"{{:.{book.price_decimals}f}}".format
        tick = book.tick_size

        def levels(side: Any, reverse: bool) -> list[tuple[str, str]]:
            keys = reversed(side.keys()) if reverse else side.keys()
            return [(fmt(k * tick), repr(side[k])) for k in keys]

        return BookCheckpointLine(symbol=self.symbol.upper(), last_update_id=book.last_update_id,
                                  event_time_ms=self.last_event_ms, bids=levels(book.bids, True),
                                  asks=levels(book.asks, False)).encode()

    # --- state for the API ----------------------------------------------------------
    @property
    def in_sync(self) -> bool:
        return self.validator.in_sync

    def display_state(self, mono_ns: int | None = None) -> DisplayState:
        """The sync machine's state, refined by liveness: a synced book that has been
        silent for ``stale_after_s`` is ``quiet`` while its connection is alive (it
        answers the liveness ping or carries other streams), ``stale`` once the
        connection itself has been silent past the ping's deadline."""
        state = self.validator.state
        if state is not SyncState.SYNCED:
            return DisplayState(state.value)
        last = self.monitor.last_message_mono_ns
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        s = self.settings
        if last and now - last <= s.stale_after_s * 1e9:
            return DisplayState.SYNCED
        if self.replay_finished:
            return DisplayState.SYNCED
        link = self.link
        if link is None:  # a replay: no connection to lose
            return DisplayState.QUIET if last else DisplayState.STALE
        heard = link.last_heard_mono_ns
        if heard and now - heard <= (s.stale_after_s + s.pong_timeout_s) * 1e9:
            return DisplayState.QUIET
        return DisplayState.STALE

    def sync_info(self, mono_ns: int | None = None) -> dict[str, Any]:
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        last = self.monitor.last_message_mono_ns
        return {
            "state": self.display_state(now).value,
            "reason": self.validator.reason,
            "last_update_id": self.book.last_update_id or None,
            "last_message_age_s": round((now - last) / 1e9, 3) if last else None,
        }

    def feed_info(self, mono_ns: int | None = None) -> dict[str, Any]:
        now = time.monotonic_ns() if mono_ns is None else mono_ns
        c = self.validator.counters
        return {
            **self.monitor.summary(now),
            "gaps": c.gaps,
            "resyncs": c.resyncs,
            "syncs": c.syncs,
            "events_applied": c.events_applied,
            "dropped_before_sync": c.dropped_before_sync,
            "dropped_stale": c.dropped_stale,
            "snapshots_requested": c.snapshots_requested,
            "snapshots_refused": c.snapshots_refused,
            "book_ticker_checks": self.ticker_check.checks,
            "book_ticker_failures": self.ticker_check.failures,
            "book_ticker_last_mismatch": self.last_ticker_mismatch,
            "bid_levels": len(self.book.bids),
            "ask_levels": len(self.book.asks),
            "streams": {name: st.summary(now) for name, st in self.context.items()},
        }

    # --- events (hot path) ---------------------------------------------------------------
    def on_depth(self, event: DepthUpdate, t0_ns: int, recv_ns: int, raw: bytes | str | None = None) -> EventOutcome:
        """One decoded depthUpdate; ``t0_ns`` (perf counter) is when its bytes arrived,
        ``raw`` the message as received (kept briefly for the log of a mismatch)."""
        outcome = self.validator.on_depth_event(event)
        e_ms = event.event_time_ms or None
        if outcome is EventOutcome.APPLIED:
            self.last_event_ms = event.event_time_ms
            u = event.final_update_id
            if raw is not None:
                self._recent_depth_raw.append((u, raw))
            if self.ticker_check.on_applied(u) is False:
                self._on_ticker_mismatch()
            elif self.features is not None:
                self.features.on_depth_applied(self.book, recv_ns, e_ms)
        elif outcome is EventOutcome.GAP:
            log.warning("%s: %s; resyncing from a new snapshot", self.symbol, self.validator.reason)
        elif outcome is EventOutcome.MALFORMED:
            log.warning("%s: malformed depth event skipped (%s)", self.symbol, self.validator.reason)
        if self.validator.state is not self._last_state:
            self._state_changed()
        if outcome is not EventOutcome.APPLIED and self.validator.needs_snapshot:
            self._wake.set()
        self.monitor.on_depth_processed(time.perf_counter_ns() - t0_ns, recv_ns / 1e6, e_ms)
        if outcome is EventOutcome.APPLIED and self.after_applied is not None and self.validator.in_sync:
            self.after_applied(self.symbol)
        return outcome

    def on_book_ticker(self, ticker: BookTicker, raw: bytes | str | None = None) -> None:
        self.monitor.book_tickers += 1
        if self.validator.in_sync and self.ticker_check.on_book_ticker(ticker, raw) is False:
            self._on_ticker_mismatch()

    def on_trade(self, trade: AggTrade | Trade, recv_ns: int) -> None:
        """aggTrade (or trade): the buyer being the maker means the seller was the
        aggressor."""
        self.monitor.trades += 1
        if self.features is None:
            return
        try:
            price, qty = float(trade.price), float(trade.qty)
            raw_nq = trade.qty_without_rpi
            nq = float(raw_nq) if raw_nq is not None else None
        except ValueError:
            self.monitor.malformed += 1
            return
        self.features.on_trade(recv_ns, price, qty, "sell" if trade.buyer_is_maker else "buy", nq)

    # --- derivatives context (per message: parse, check, hand over; no aggregation) ---------------
    def on_stream_malformed(self, stream: str) -> None:
        """A message of a context stream that did not decode: counted and skipped."""
        st = self.context.get(stream)
        if st is not None:
            st.malformed += 1

    def on_force_order(self, event: ForceOrder, recv_ns: int) -> None:
        """One liquidation: the forced order's side (SELL closes a long, selling into
        the bids), its filled quantity and average price. Numbers that are not finite
        and positive make it malformed: counted, skipped."""
        st = self.context[FORCE_ORDER_STREAM]
        st.on_message(time.monotonic_ns())
        o = event.order
        try:
            filled = _finite(o.filled_qty)
            avg = _finite(o.avg_price)
            price = avg if avg > 0 else _finite(o.price)
            if filled < 0 or price <= 0:
                raise ValueError("negative quantity or price")
        except ValueError:
            st.malformed += 1
            return
        if self.features is not None and filled > 0:
            self.features.on_liquidation(recv_ns, "sell" if o.side == "SELL" else "buy", price, filled,
                                         o.trade_time_ms)

    def on_mark_price(self, event: MarkPriceUpdate, recv_ns: int) -> None:
        """Mark and index price, funding rate and the next funding time; an empty
        funding rate or a zero time (delivery contracts) is unknown, not zero."""
        st = self.context[MARK_PRICE_STREAM]
        st.on_message(time.monotonic_ns())
        try:
            mark, index = _finite(event.mark_price), _finite(event.index_price)
            settle = _finite(event.estimated_settle_price) if event.estimated_settle_price else None
            rate = _finite(event.funding_rate) if event.funding_rate else None
            if mark <= 0 or index <= 0:
                raise ValueError("mark or index price not positive")
        except ValueError:
            st.malformed += 1
            return
        if self.features is not None:
            self.features.on_mark_price(recv_ns, mark, index, settle, rate, event.next_funding_time_ms or None,
                                        event.event_time_ms)

    def on_open_interest(self, body: OpenInterest, recv_ns: int) -> None:
        st = self.context[OPEN_INTEREST_POLL]
        st.on_message(time.monotonic_ns())
        try:
            oi = _finite(body.open_interest)
            if oi < 0:
                raise ValueError("negative open interest")
        except ValueError:
            st.malformed += 1
            return
        if self.features is not None:
            self.features.on_open_interest(recv_ns, oi)

    def on_context(self, data: object, recv_ns: int) -> bool:
        """A recorded context message (replay, history): handled as live; False when
        ``data`` is none of them."""
        if isinstance(data, ForceOrder):
            if self.features is not None:
                self.features.watch_liquidations()
            self.on_force_order(data, recv_ns)
        elif isinstance(data, MarkPriceUpdate):
            self.on_mark_price(data, recv_ns)
        elif isinstance(data, OpenInterest):
            self.on_open_interest(data, recv_ns)
        else:
            return False
        return True

    async def run_open_interest_poll(self, rest: RestClient) -> None:
        """``GET /fapi/v1/openInterest`` every ``open_interest_poll_s``, at low
        priority: a poll the weight budget keeps for snapshots is skipped, never queued."""
        st = self.context[OPEN_INTEREST_POLL]
        interval = self.settings.open_interest_poll_s
        while True:
            try:
                got = await rest.open_interest(self.symbol)
            except RestrictedLocation as exc:
                st.errors += 1
                log.error("%s: %s; no more open interest polls", self.symbol, exc)
                return
            except RestError as exc:
                st.errors += 1
                log.warning("%s: open interest poll failed (%s); next in %.0f s", self.symbol, exc, interval)
                got = None
            else:
                if got is None:
                    st.skipped += 1
            if got is not None:
                body, raw = got
                recv_ns = time.time_ns()
                if self.recorder is not None:
                    self.recorder.write(self.symbol, recv_ns, raw)
                self.on_open_interest(body, recv_ns)
            await asyncio.sleep(interval)

    def _on_ticker_mismatch(self) -> None:
        """Log both raw messages; resync only after ``ticker_mismatches_to_resync``
        consecutive mismatches (one can come from orders the depth stream leaves out)."""
        check = self.ticker_check
        m = check.last_failure
        assert m is not None
        depth_raw = next((r for u, r in reversed(self._recent_depth_raw) if u == m.update_id), None)
        s = self.settings
        limit = s.ticker_mismatches_to_resync
        resync = not s.ticker_check_count_only and limit > 0 and check.consecutive_failures >= limit
        log.error(
            "%s: bookTicker check failed at u=%d (%d in a row; exchange %s, book %s); %s\n"
            "  bookTicker: %s\n  depth event: %s",
            self.symbol, m.update_id, check.consecutive_failures, m.book_ticker, m.book,
            "resyncing" if resync else "book kept (count only)" if s.ticker_check_count_only or limit <= 0
            else f"book kept until {limit} in a row",
            _text(m.raw), _text(depth_raw),
        )
        self.last_ticker_mismatch = {
            **m.as_dict(),
            "consecutive": check.consecutive_failures,
            "resynced": resync,
            "at_ms": time.time_ns() // 1_000_000,
        }
        if not resync:
            return
        self.validator.invalidate(f"bookTicker cross-check failed {check.consecutive_failures} times in a row")
        self._state_changed()
        self._wake.set()

    def _state_changed(self) -> None:
        state = self.validator.state
        self._last_state = state
        self.monitor.set_in_sync(state is SyncState.SYNCED, time.monotonic_ns())
        if state is SyncState.SYNCED:
            self.ticker_check.reset()
            log.info("%s: %s", self.symbol, self.validator.reason)

    # --- connection events -----------------------------------------------------------------
    def on_connected(self) -> None:
        self.connected = True
        self._wake.set()

    def on_disconnected(self, reason: str) -> None:
        """Events may have been lost: the book can no longer be trusted."""
        self.connected = False
        self.validator.invalidate(f"connection lost ({reason})")
        self._state_changed()

    # --- snapshots ---------------------------------------------------------------------------
    def on_snapshot_body(self, body: DepthSnapshot) -> SnapshotOutcome:
        outcome = self.validator.on_snapshot(body)
        if outcome not in (SnapshotOutcome.SYNCED, SnapshotOutcome.PENDING):
            log.info("%s: snapshot %s: %s", self.symbol, outcome.value, self.validator.reason)
        if self.validator.state is not self._last_state:
            self._state_changed()  # on sync this resets the bookTicker check
        if outcome is SnapshotOutcome.SYNCED:
            self.ticker_check.on_applied(self.book.last_update_id)
        return outcome

    async def run_snapshot_sync(self, rest: RestClient) -> None:
        """Fetch snapshots whenever the sync machine needs one, within the weight budget."""
        backoff = Backoff(0.5, self.settings.backoff_max_s, 2.0, self.settings.backoff_jitter)
        min_buffered = self.settings.first_snapshot_min_buffered
        while True:
            await self._wake.wait()
            self._wake.clear()
            v = self.validator
            if not (self.connected and v.needs_snapshot and v.buffered >= min_buffered):
                continue
            v.note_snapshot_requested()
            try:
                body, raw = await rest.depth_snapshot(self.symbol, self.settings.snapshot_limit)
            except RestrictedLocation as exc:
                self.monitor.snapshot_errors += 1
                self.validator.invalidate(str(exc))
                self._state_changed()
                log.error("%s: %s; no more snapshot requests", self.symbol, exc)
                return
            except RestError as exc:
                self.monitor.snapshot_errors += 1
                delay = exc.retry_after if exc.retry_after is not None else backoff.next_delay()
                log.warning("%s: snapshot request failed (%s); retrying in %.1f s", self.symbol, exc, delay)
                await asyncio.sleep(delay)
                self._wake.set()
                continue
            if self.recorder is not None:
                self.recorder.write(self.symbol, time.time_ns(), raw)
            outcome = self.on_snapshot_body(body)
            if outcome in (SnapshotOutcome.SYNCED, SnapshotOutcome.PENDING):
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next_delay())
                self._wake.set()


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return "(no longer held)"
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
