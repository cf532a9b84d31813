"""``--source replay``: recordings played through the same feed code as live.

Speed 1 plays in real time (by the recorded receive times), X plays X times
faster, 0 as fast as possible (yielding to the event loop now and then so the API
stays responsive). Snapshots come from the recording. When the files end, the
books stay as they are and the feed says the replay finished. A file cut short (a
crash while recording) plays up to its last complete line, and says so in the log
and in /health (``replay.truncated_files``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from data_ingestion.feed import SymbolFeed
from data_ingestion.recording import CHECKPOINT, FILTERS, ReadStats, read_recording, symbol_of
from wire.binance import AggTrade, BookTicker, DepthSnapshot, DepthUpdate, Trade

log = logging.getLogger("replay")

# Lines of this project's recorder that are not messages: the filters (read before
# the replay starts) and the book checkpoints (the replay rebuilds the book itself).
_HEAD_KINDS = (FILTERS, CHECKPOINT)


@dataclass(slots=True)
class ReplayProgress:
    files: tuple[str, ...]
    speed: float
    stats: ReadStats
    messages: int = 0
    finished: bool = False
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None

    def as_dict(self) -> dict[str, object]:
        total = self.stats.bytes_total
        return {
            "files": list(self.files),
            "speed": self.speed,
            "messages": self.messages,
            "progress_pct": round(100.0 * self.stats.bytes_read / total, 1) if total else None,
            "finished": self.finished,
            "truncated_files": self.stats.truncated,  # cut short (a crash): played up to their last complete line
            "recorded_span_s": round((self.last_ts_ns - self.first_ts_ns) / 1e9, 1)
            if self.first_ts_ns is not None and self.last_ts_ns is not None else None,
        }


async def play(feed: SymbolFeed, files: Sequence[str], speed: float, progress: ReplayProgress) -> None:
    """Play ``files`` (one symbol, in order) into ``feed``."""
    feed.connected = True
    loop_start = time.monotonic()
    first_ts: int | None = None
    n = 0
    for msg in read_recording(files, progress.stats):
        if msg.kind in _HEAD_KINDS or symbol_of(msg) not in (None, feed.symbol):
            continue
        ts = msg.ts_recv_ns
        if first_ts is None:
            first_ts = ts
            progress.first_ts_ns = progress.first_ts_ns or ts
        progress.last_ts_ns = ts
        if speed > 0:
            ahead = (ts - first_ts) / 1e9 / speed - (time.monotonic() - loop_start)
            if ahead > 0.002:
                await asyncio.sleep(ahead)
        elif n % 256 == 0:
            await asyncio.sleep(0)
        n += 1
        progress.messages += 1
        data = msg.data
        feed.last_ts_ns = ts
        if isinstance(data, DepthUpdate):
            feed.monitor.on_message(time.monotonic_ns())
            feed.on_depth(data, time.perf_counter_ns(), ts, msg.raw)
        elif isinstance(data, DepthSnapshot):
            feed.on_snapshot_body(data)
        elif isinstance(data, BookTicker):
            feed.monitor.on_message(time.monotonic_ns())
            feed.on_book_ticker(data, msg.raw)
        elif isinstance(data, AggTrade | Trade):
            feed.monitor.on_message(time.monotonic_ns())
            feed.on_trade(data, ts)
        else:  # liquidations, mark price, open interest (others: skipped)
            feed.on_context(data, ts)
    log.info("%s: replay finished (%d messages, state %s)", feed.symbol, n, feed.validator.state.value)
