"""Builds one frame per symbol per tick, keeps it for 180 s, and fans it out.

Whole-book work (depth bands, heatmap column, detectors) happens here, at the frame
cadence, never per depth event. Each frame is encoded once; the same string goes
to every subscriber and the same bytes into the history buffer.

A live symbol's frame is built on its first depth event after the tick, not at the
tick itself (``align_s``): the depth stream comes every 100 ms, so a frame built at
the tick shows a book 0 to 100 ms old (50 on average) before it even leaves; built
on the event, it shows the book as that event left it, as soon as it is applied. A
symbol whose event does not come within ``align_s`` (a quiet book, a stalled
stream) gets its frame then; one not in sync gets it at the tick. The tick stays on
its grid, so the cadence does not drift; the per-event cost is one dictionary
lookup while a frame is due, nothing otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from api.hub import FrameHub
from data_ingestion.feed import SymbolFeed
from features.engine import SymbolFeatures
from features.frame import Frame, ReplayState
from features.frame import encode as encode_frame
from features.rounding import Decimals
from history.store import HistoryStore
from state.rolling_buffer import FrameBuffer

log = logging.getLogger("publisher")

FEED_FIELDS = (
    "messages_per_s",
    "depth_events_per_s",
    "lag_ms",
    "latency_p50_ms",
    "latency_p99_ms",
    "gaps",
    "resyncs",
    "reconnect_count",
    "book_ticker_checks",
    "book_ticker_failures",
)


class FramePublisher:
    def __init__(
        self,
        feeds: dict[str, SymbolFeed],
        features: dict[str, SymbolFeatures],
        hub: FrameHub,
        buffer_seconds: float,
        push_interval_s: float,
        replay: bool = False,
        history: HistoryStore | None = None,
        alert_tap: Callable[[Frame], None] | None = None,
        align_s: float = 0.0,
    ) -> None:
        """``alert_tap``: called with each frame built (alerting/service.py); it must not wait.
        ``align_s``: how long a live symbol's frame may wait for its next depth event
        after the tick (0: built at the tick; never more than half the push interval)."""
        self.feeds = feeds
        self.features = features
        self.hub = hub
        self.push_interval_s = push_interval_s
        self.replay = replay
        self.history = history
        self.buffer_seconds = buffer_seconds
        self.alert_tap = alert_tap
        self.buffers = {sym: FrameBuffer(sym, buffer_seconds, push_interval_s) for sym in feeds}
        # Numbers are rounded once, here where the JSON is written, to each symbol's decimals.
        self.decimals = {sym: Decimals.of(features[sym].spec) for sym in feeds}
        self.frames_built = 0
        self.build_ms_last: dict[str, float] = {}
        self.frame_bytes_last: dict[str, int] = {}
        self.align_s = 0.0 if replay else min(max(0.0, align_s), push_interval_s / 2)
        self._due: dict[str, asyncio.TimerHandle] = {}  # symbol -> its deadline, while a frame waits for an event
        self.frames_on_event = 0  # frames built on a depth event (the others at the tick or the deadline)
        if self.align_s > 0:
            for feed in feeds.values():
                feed.after_applied = self._on_applied

    def add_symbol(self, symbol: str) -> None:
        """Frames for a symbol promoted at run time (its feed and features exist)."""
        self.buffers[symbol] = FrameBuffer(symbol, self.buffer_seconds, self.push_interval_s)
        self.decimals[symbol] = Decimals.of(self.features[symbol].spec)
        if self.align_s > 0:
            self.feeds[symbol].after_applied = self._on_applied

    def remove_symbol(self, symbol: str) -> None:
        """No more frames for a released symbol; what it kept is let go."""
        due = self._due.pop(symbol, None)
        if due is not None:
            due.cancel()
        for kept in (self.buffers, self.decimals, self.build_ms_last, self.frame_bytes_last):
            kept.pop(symbol, None)  # type: ignore[attr-defined]

    def build(self, symbol: str) -> tuple[Frame, bytes]:
        """Build, buffer and return one frame of ``symbol`` (and its encoding)."""
        t0 = time.perf_counter()
        feed = self.feeds[symbol]
        mono = time.monotonic_ns()
        info = feed.feed_info(mono)
        compact = {k: info.get(k) for k in FEED_FIELDS}
        compact["reconnects"] = compact.pop("reconnect_count")
        ts_ns = feed.last_ts_ns if self.replay and feed.last_ts_ns else time.time_ns()
        frame = self.features[symbol].build_frame(feed.book, ts_ns, feed.sync_info(mono), compact)
        # A replay says where it stands, so a page can tell "replaying" from "replay
        # finished" with the frame itself (null for live and simulated data).
        frame.replay = ReplayState(finished=feed.replay_finished) if self.replay else None
        encoded = encode_frame(frame, self.decimals[symbol])
        self.buffers[symbol].append(frame, encoded)
        if self.history is not None:
            self.history.add_frame(frame)
        if self.alert_tap is not None:
            try:
                self.alert_tap(frame)
            except Exception:  # the alert rules must never cost a frame
                log.exception("%s: handing the frame to the alert rules failed; the frame goes on", symbol)
        self.frames_built += 1
        self.build_ms_last[symbol] = (time.perf_counter() - t0) * 1000
        self.frame_bytes_last[symbol] = len(encoded)
        return frame, encoded

    def tick(self) -> None:
        """Every symbol's frame, now."""
        for symbol in self.feeds:
            self.publish(symbol)

    def publish(self, symbol: str) -> None:
        """Build ``symbol``'s frame and hand it to its clients."""
        if symbol not in self.feeds:  # released meanwhile
            return
        try:
            _frame, encoded = self.build(symbol)
        except Exception:  # a frame bug must not stop the other symbols or the loop
            log.exception("%s: building a frame failed; skipped", symbol)
            return
        self.hub.publish(symbol, encoded.decode())

    def tick_aligned(self, loop: asyncio.AbstractEventLoop) -> None:
        """The tick when frames wait for their symbol's next depth event: a symbol in
        sync gets its frame on that event or at ``align_s``, whichever comes first; a
        symbol out of sync (no events to wait for) gets it now. A frame still waiting
        from the last tick is built now."""
        for symbol, feed in list(self.feeds.items()):
            late = self._due.pop(symbol, None)
            if late is not None:
                late.cancel()
            if feed.in_sync:
                self._due[symbol] = loop.call_later(self.align_s, self._on_deadline, symbol)
            else:
                self.publish(symbol)

    def _on_applied(self, symbol: str) -> None:
        due = self._due.pop(symbol, None)
        if due is not None:
            due.cancel()
            self.frames_on_event += 1
            try:  # called from the depth stream's reader: nothing may reach it
                self.publish(symbol)
            except Exception:
                log.exception("%s: publishing a frame failed; skipped", symbol)

    def _on_deadline(self, symbol: str) -> None:
        if self._due.pop(symbol, None) is not None:
            self.publish(symbol)

    async def run(self) -> None:
        """Tick on a fixed grid (no drift): every push interval, all symbols."""
        loop = asyncio.get_running_loop()
        interval = self.push_interval_s
        next_at = loop.time()
        try:
            while True:
                if self.align_s > 0:
                    self.tick_aligned(loop)
                else:
                    self.tick()
                next_at += interval
                delay = next_at - loop.time()
                if delay < 0:  # fell behind (a stall): skip the missed ticks, do not burst
                    next_at = loop.time() + interval
                    delay = interval
                await asyncio.sleep(delay)
        finally:  # stopped: no frame built after
            for due in self._due.values():
                due.cancel()
            self._due.clear()
