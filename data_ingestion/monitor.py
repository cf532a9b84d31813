"""Feed monitoring: what /health, /metrics and the dashboard's feed panel show.

Per symbol: message and depth-event rates, processing latency per message (mean,
p50, p99 and a histogram), exchange-to-local lag, reconnects, time in sync, last
message age. Per process: RSS against its baseline. The hot path only bumps
counters and appends to bounded deques; percentiles are computed when read.
"""

from __future__ import annotations

import bisect
import logging
import os
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

log = logging.getLogger("monitor")

# Processing-latency histogram bounds, seconds (Prometheus convention: le).
LATENCY_BUCKETS_S = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(slots=True)
class FeedMonitor:
    """Counters of one symbol's feed. Times: ``*_ns`` monotonic or epoch as named."""

    symbol: str
    messages: int = 0
    depth_events: int = 0
    trades: int = 0
    book_tickers: int = 0
    malformed: int = 0
    reconnects: int = 0
    stale_reconnects: int = 0
    snapshot_errors: int = 0
    last_message_mono_ns: int = 0
    latency_ns: deque[int] = field(default_factory=lambda: deque(maxlen=4096))
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1024))
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0
    latency_count: int = 0
    _rate_samples: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=16))
    in_sync_since_ns: int | None = None
    in_sync_total_ns: int = 0
    started_ns: int = 0

    def on_message(self, mono_ns: int) -> None:
        self.messages += 1
        self.last_message_mono_ns = mono_ns

    def on_depth_processed(self, latency_ns: int, recv_ms: float, event_ms: int | None) -> None:
        """One depth message: its processing time and exchange-to-local lag."""
        self.depth_events += 1
        self.latency_ns.append(latency_ns)
        sec = latency_ns / 1e9
        self.latency_sum_s += sec
        self.latency_count += 1
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS_S, sec)] += 1
        if event_ms is not None:
            self.lag_ms.append(recv_ms - event_ms)

    def set_in_sync(self, in_sync: bool, mono_ns: int) -> None:
        if in_sync and self.in_sync_since_ns is None:
            self.in_sync_since_ns = mono_ns
        elif not in_sync and self.in_sync_since_ns is not None:
            self.in_sync_total_ns += mono_ns - self.in_sync_since_ns
            self.in_sync_since_ns = None

    def time_in_sync_pct(self, mono_ns: int) -> float:
        total = self.in_sync_total_ns
        if self.in_sync_since_ns is not None:
            total += mono_ns - self.in_sync_since_ns
        elapsed = mono_ns - self.started_ns
        return 100.0 * total / elapsed if elapsed > 0 else 0.0

    def rates(self, mono_ns: int) -> tuple[float, float]:
        """(messages/s, depth events/s) over the last ~10 s of samples."""
        samples = self._rate_samples
        samples.append((mono_ns, self.messages, self.depth_events))
        while len(samples) > 2 and mono_ns - samples[0][0] > 10_000_000_000:
            samples.popleft()
        t0, m0, d0 = samples[0]
        dt = (mono_ns - t0) / 1e9
        if dt <= 0:
            return 0.0, 0.0
        return (self.messages - m0) / dt, (self.depth_events - d0) / dt

    def summary(self, mono_ns: int) -> dict[str, Any]:
        lat = list(self.latency_ns)
        lags = list(self.lag_ms)
        msg_rate, depth_rate = self.rates(mono_ns)
        age = (mono_ns - self.last_message_mono_ns) / 1e9 if self.last_message_mono_ns else None
        p50, p99 = _pct(lat, 0.5), _pct(lat, 0.99)
        return {
            "messages": self.messages,
            "depth_events": self.depth_events,
            "trades": self.trades,
            "book_tickers": self.book_tickers,
            "malformed_messages": self.malformed,
            "messages_per_s": round(msg_rate, 2),
            "depth_events_per_s": round(depth_rate, 2),
            "latency_avg_ms": round(statistics.fmean(lat) / 1e6, 4) if lat else None,
            "latency_p50_ms": round(p50 / 1e6, 4) if p50 is not None else None,
            "latency_p99_ms": round(p99 / 1e6, 4) if p99 is not None else None,
            "lag_ms": round(statistics.fmean(lags), 1) if lags else None,
            "lag_p99_ms": round(p, 1) if (p := _pct(lags, 0.99)) is not None else None,
            "reconnect_count": self.reconnects,
            "stale_reconnects": self.stale_reconnects,
            "snapshot_errors": self.snapshot_errors,
            "time_in_sync_pct": round(self.time_in_sync_pct(mono_ns), 2),
            "last_message_age_s": round(age, 3) if age is not None else None,
        }


@dataclass(slots=True)
class StreamStats:
    """One context stream of a symbol (forceOrder, markPrice, the open interest
    polls): what /health shows per stream. Bumped per message; rates read on demand."""

    messages: int = 0
    malformed: int = 0  # counted and skipped
    errors: int = 0  # polls: failed requests
    skipped: int = 0  # polls: not sent, the REST weight budget was kept for snapshots
    last_mono_ns: int = 0
    _samples: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=16))

    def on_message(self, mono_ns: int) -> None:
        self.messages += 1
        self.last_mono_ns = mono_ns

    def rate(self, mono_ns: int) -> float:
        """Messages a second over the last ~60 s of reads (the streams push once a
        second or less)."""
        samples = self._samples
        samples.append((mono_ns, self.messages))
        while len(samples) > 2 and mono_ns - samples[0][0] > 60_000_000_000:
            samples.popleft()
        t0, m0 = samples[0]
        dt = (mono_ns - t0) / 1e9
        return (self.messages - m0) / dt if dt > 0 else 0.0

    def summary(self, mono_ns: int) -> dict[str, Any]:
        age = (mono_ns - self.last_mono_ns) / 1e9 if self.last_mono_ns else None
        return {
            "messages": self.messages,
            "messages_per_s": round(self.rate(mono_ns), 3),
            "last_message_age_s": round(age, 3) if age is not None else None,
            "malformed_messages": self.malformed,
            "errors": self.errors,
            "skipped": self.skipped,
        }


class ProcessMonitor:
    """RSS of this process against the baseline taken once the process is warm."""

    def __init__(self, warn_growth: float = 0.5) -> None:
        self._proc = psutil.Process(os.getpid())
        self.baseline_mb: float | None = None
        self.warn_growth = warn_growth
        self.warned = False

    def rss_mb(self) -> float:
        return self._proc.memory_info().rss / (1024 * 1024)

    def set_baseline(self) -> None:
        self.baseline_mb = self.rss_mb()

    def summary(self) -> dict[str, Any]:
        rss = self.rss_mb()
        growth = None
        if self.baseline_mb:
            growth = rss / self.baseline_mb - 1.0
            if growth > self.warn_growth and not self.warned:
                self.warned = True
                log.warning("memory: RSS %.1f MB is %.0f%% above its baseline %.1f MB",
                            rss, 100 * growth, self.baseline_mb)
        return {
            "rss_mb": round(rss, 1),
            "rss_baseline_mb": round(self.baseline_mb, 1) if self.baseline_mb else None,
            "rss_growth_pct": round(100 * growth, 1) if growth is not None else None,
            "cpu_percent": self._proc.cpu_percent(interval=None),
        }
