"""The metric history: each symbol's frame scalars once a second, and every alert,
in an embedded SQLite database (WAL mode: one writer, readers never blocked).

Writes never touch the event loop's time: the publisher hands each frame's row to
a queue (:meth:`HistoryStore.add_frame`, a few microseconds) and a writer thread
inserts and commits them in batches. Reads (the ``/history`` endpoints) open their
own connection per call, in a worker thread.

Gaps are facts: a second without a row (the app was not running) or a row whose
book was not in sync is a gap, reported as such by :meth:`coverage` and never
filled in by the series of :meth:`series`.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from features.frame import Frame
from orderbook.sequence_validator import TRUSTED_STATES

log = logging.getLogger("history")

# The frame scalars kept, as (column, how to read it from a Frame).
BASE_FIELDS: tuple[str, ...] = (
    "mid_price", "best_bid", "best_ask", "spread", "spread_bps", "microprice", "imbalance", "ofi",
    "depth_delta", "total_bid_volume", "total_ask_volume", "depth_weighted_mid", "slope_bid", "slope_ask",
)
# The derivatives context of a frame (docs/frames.md: mark, open_interest,
# liquidation_stats), flat: its own field names, the liquidation figures as
# liquidation_<side>_<figure>_1m (the last_1m window; sell = longs liquidated).
# Null whenever the frame has null: no markPrice update yet, no open interest poll,
# the liquidation stream not watched. Never 0 for unknown.
LIQUIDATION_FIELDS: tuple[str, ...] = tuple(
    f"liquidation_{side}_{figure}_1m" for side in ("sell", "buy") for figure in ("count", "notional"))
DERIVATIVES_FIELDS: tuple[str, ...] = (
    "mark_price", "index_price", "basis_bps", "mark_mid_bps", "funding_rate", "open_interest", *LIQUIDATION_FIELDS,
)
MAX_POINTS = 3000  # a series is downsampled to at most this many points
COMMIT_EVERY_S = 2.0
RETENTION_EVERY_S = 60.0
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def band_fields(bands_bps: Iterable[float]) -> tuple[str, ...]:
    """Column names of the depth bands: depth_bid_5bps, depth_ask_5bps, ..."""
    out = []
    for b in bands_bps:
        key = f"{b:g}".replace(".", "_")
        out += [f"depth_bid_{key}bps", f"depth_ask_{key}bps"]
    return tuple(out)


def _band_key(b: str) -> str:
    try:
        return f"{float(b):g}".replace(".", "_")
    except ValueError:
        return b


@dataclass(frozen=True, slots=True)
class Gap:
    start: float  # seconds since the epoch
    end: float
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"from": round(self.start, 3), "to": round(self.end, 3), "reason": self.reason}


def frame_row(frame: Frame) -> dict[str, Any]:
    """The scalars of ``frame`` kept in the history, by column name."""
    row: dict[str, Any] = {name: getattr(frame, name, None) for name in BASE_FIELDS if hasattr(frame, name)}
    row["slope_bid"] = frame.slope.bid
    row["slope_ask"] = frame.slope.ask
    for side in ("bid", "ask"):
        bands = getattr(frame.depth_bands, side) or {}
        for key, value in bands.items():
            row[f"depth_{side}_{_band_key(key)}bps"] = value
    row.update(derivatives_row(frame))
    return row


def derivatives_row(frame: Frame) -> dict[str, float | None]:
    """The DERIVATIVES_FIELDS of ``frame``, None where the frame has null."""
    mark, oi, liq = frame.mark, frame.open_interest, frame.liquidation_stats
    row: dict[str, float | None] = {
        "mark_price": mark.mark_price if mark is not None else None,
        "index_price": mark.index_price if mark is not None else None,
        "basis_bps": mark.basis_bps if mark is not None else None,
        "mark_mid_bps": mark.mark_mid_bps if mark is not None else None,
        "funding_rate": mark.funding_rate if mark is not None else None,
        "open_interest": oi.open_interest if oi is not None else None,
    }
    for side in ("sell", "buy"):
        totals = getattr(liq.last_1m, side) if liq is not None else None
        row[f"liquidation_{side}_count_1m"] = totals.count if totals is not None else None
        row[f"liquidation_{side}_notional_1m"] = totals.notional if totals is not None else None
    return row


class HistoryStore:
    """One SQLite file of frame rows (``frames``) and alerts (``alerts``)."""

    def __init__(self, path: str | Path, retain_s: float, fields: Sequence[str] = (),
                 gap_after_s: float = 3.0) -> None:
        self.path = Path(path)
        self.retain_s = retain_s
        self.gap_after_s = gap_after_s
        self.fields: tuple[str, ...] = tuple(dict.fromkeys([*BASE_FIELDS, *DERIVATIVES_FIELDS, *fields]))
        for name in self.fields:
            if not _NAME.fullmatch(name):
                raise ValueError(f"not a column name: {name!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._queue: queue.SimpleQueue[tuple[str, Any] | None] = queue.SimpleQueue()
        self._last_second: dict[str, int] = {}
        self._alert_seen: dict[str, tuple[object, ...]] = {}  # alert id -> its last state stored
        # Rows of one process run carry its id: the time between two runs is a gap
        # however short it was (the app was not running), never joined.
        self.run_id = time.time_ns() // 1_000_000
        self.rows_written = 0
        self.alerts_written = 0
        self.errors = 0
        self.last_error: str | None = None
        self._create()
        self._thread = threading.Thread(target=self._writer, name="history-writer", daemon=True)
        self._thread.start()

    # --- schema -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _create(self) -> None:
        with closing(self._connect()) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS frames (symbol TEXT NOT NULL, ts REAL NOT NULL, "
                         "state TEXT NOT NULL, in_sync INTEGER NOT NULL, run INTEGER NOT NULL DEFAULT 0)")
            conn.execute("CREATE INDEX IF NOT EXISTS frames_by_time ON frames (symbol, ts)")
            have = {r[1] for r in conn.execute("PRAGMA table_info(frames)")}
            for name in self.fields:
                if name not in have:
                    conn.execute(f"ALTER TABLE frames ADD COLUMN {name} REAL")
            conn.execute("CREATE TABLE IF NOT EXISTS alerts (symbol TEXT NOT NULL, ts REAL NOT NULL, id TEXT, "
                         "type TEXT NOT NULL, side TEXT, price REAL, body TEXT NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (symbol, ts)")
            conn.commit()
            self.columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(frames)"))

    # --- writing (event loop side: cheap) ------------------------------------------
    def add_frame(self, frame: Frame) -> None:
        """Keep ``frame``'s scalars (the first frame of each second) and its alerts."""
        second = int(frame.timestamp)
        for alert in frame.alerts:
            # A frame carries every live alert: keep a state only when it changed.
            changed = (alert.status, alert.events[-1].ts if alert.events else alert.ts, alert.live)
            if self._alert_seen.get(alert.id) == changed:
                continue
            self._alert_seen[alert.id] = changed
            if not alert.live:
                self._alert_seen.pop(alert.id, None)
            self._queue.put(("alert", (frame.symbol, alert.ts, alert.id, alert.type, alert.side, alert.price,
                                       msgspec.json.encode(alert).decode())))
        if self._last_second.get(frame.symbol) == second:
            return
        self._last_second[frame.symbol] = second
        row = frame_row(frame)
        values = [row.get(name) for name in self.fields]
        state = frame.sync.state
        self._queue.put(("frame", (frame.symbol, frame.timestamp, state, int(state in TRUSTED_STATES), self.run_id,
                                   *values)))

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    # --- the writer thread -----------------------------------------------------------
    def _writer(self) -> None:
        conn = self._connect()
        cols = ", ".join(["symbol", "ts", "state", "in_sync", "run", *self.fields])
        insert_frame = f"INSERT INTO frames ({cols}) VALUES ({', '.join('?' * (5 + len(self.fields)))})"
        insert_alert = "INSERT INTO alerts (symbol, ts, id, type, side, price, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
        last_commit = last_retention = time.monotonic()
        pending = 0
        try:
            while True:
                try:
                    item = self._queue.get(timeout=COMMIT_EVERY_S)
                except queue.Empty:
                    item = ("tick", None)
                if item is None:
                    break
                kind, data = item
                try:
                    if kind == "frame":
                        conn.execute(insert_frame, data)
                        self.rows_written += 1
                        pending += 1
                    elif kind == "alert":
                        conn.execute(insert_alert, data)
                        self.alerts_written += 1
                        pending += 1
                    now = time.monotonic()
                    if kind == "flush":
                        conn.commit()
                        pending, last_commit = 0, now
                        data.set()
                    elif pending and now - last_commit >= COMMIT_EVERY_S:
                        conn.commit()
                        pending, last_commit = 0, now
                    if now - last_retention >= RETENTION_EVERY_S:
                        self._expire(conn)
                        last_retention = now
                except sqlite3.Error as exc:  # disk full, a locked file: count, keep going
                    if kind == "flush":
                        data.set()
                    self.errors += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if self.errors == 1 or self.errors % 1000 == 0:
                        log.error("history: writing failed (%d so far): %s", self.errors, exc)
                    with suppress(sqlite3.Error):
                        conn.rollback()
                    pending = 0
        finally:
            with suppress(sqlite3.Error):
                conn.commit()
            conn.close()

    def _expire(self, conn: sqlite3.Connection) -> None:
        cutoff = time.time() - self.retain_s
        conn.execute("DELETE FROM frames WHERE ts < ?", (cutoff,))
        conn.execute("DELETE FROM alerts WHERE ts < ?", (cutoff,))
        conn.commit()

    def expire_now(self) -> None:
        """Apply the retention at once (the writer does it every minute)."""
        with closing(self._connect()) as conn:
            self._expire(conn)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is committed (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(("flush", done))
        # The writer commits on its own cadence; a flush marker forces it.
        if not done.wait(timeout):
            raise TimeoutError("history writer did not flush")

    # --- reading (worker threads) ---------------------------------------------------
    def symbols(self) -> list[str]:
        with closing(self._connect()) as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT symbol FROM frames ORDER BY symbol")]

    def span(self, symbol: str) -> tuple[float, float] | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT MIN(ts), MAX(ts) FROM frames WHERE symbol = ?", (symbol,)).fetchone()
        return None if row is None or row[0] is None else (float(row[0]), float(row[1]))

    def coverage(self, symbol: str, start: float | None = None, end: float | None = None) -> dict[str, Any]:
        """Ranges where the book was in sync with a row every second or so, and the
        gaps between them with their reason."""
        lo = -math.inf if start is None else start
        hi = math.inf if end is None else end
        ranges: list[list[float]] = []
        gaps: list[Gap] = []
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT ts, in_sync, state, run FROM frames WHERE symbol = ? AND ts >= ? "
                                "AND ts <= ? ORDER BY ts", (symbol, lo, hi))
            cur: list[float] | None = None
            bad: tuple[float, float, str] | None = None
            prev_ts: float | None = None
            prev_run = None
            for ts, in_sync, state, run in rows:
                if prev_ts is not None and (ts - prev_ts > self.gap_after_s or run != prev_run):
                    if cur is not None:
                        ranges.append(cur)
                        cur = None
                    if bad is not None:
                        gaps.append(Gap(bad[0], bad[1], bad[2]))
                        bad = None
                    gaps.append(Gap(prev_ts, ts, "no data (not running)"))
                if in_sync:
                    if bad is not None:
                        gaps.append(Gap(bad[0], ts, bad[2]))
                        bad = None
                    if cur is None:
                        cur = [ts, ts]
                    cur[1] = ts
                else:
                    if cur is not None:
                        ranges.append(cur)
                        cur = None
                    reason = f"book not in sync ({state})"
                    bad = (bad[0] if bad is not None else ts, ts, bad[2] if bad is not None else reason)
                prev_ts, prev_run = ts, run
            if cur is not None:
                ranges.append(cur)
            if bad is not None:
                gaps.append(Gap(bad[0], bad[1], bad[2]))
        return {
            "symbol": symbol,
            "ranges": [[round(a, 3), round(b, 3)] for a, b in ranges],
            "gaps": [g.as_dict() for g in gaps],
        }

    def series(
        self, symbol: str, start: float, end: float, fields: Sequence[str], step: float | None
    ) -> dict[str, Any]:
        """``fields`` between ``start`` and ``end``, averaged over buckets of ``step``
        seconds (at least the span / MAX_POINTS, at least 1 s); only seconds whose
        book was in sync count, and a bucket without any is left out, not filled.
        A null (unknown: no mark price yet, say) is left out of its bucket's average,
        and a bucket whose values of a field are all null gives null, never 0."""
        unknown = [f for f in fields if f not in self.columns or f in ("symbol", "ts", "state", "in_sync", "run")]
        if unknown:
            raise KeyError(", ".join(unknown))
        span = max(0.0, end - start)
        bucket = max(1.0, step or 0.0, span / MAX_POINTS)
        cols = ", ".join(f"AVG({f})" for f in fields)
        sql = (f"SELECT CAST((ts - ?) / ? AS INTEGER) AS b, MIN(ts), COUNT(*){', ' + cols if cols else ''} "
               "FROM frames WHERE symbol = ? AND ts >= ? AND ts < ? AND in_sync = 1 GROUP BY b ORDER BY b")
        with closing(self._connect()) as conn:
            rows = conn.execute(sql, (start, bucket, symbol, start, end)).fetchall()
        out: dict[str, Any] = {"symbol": symbol, "from": start, "to": end, "step": bucket, "fields": list(fields),
                               "t": [round(start + r[0] * bucket, 3) for r in rows],
                               "samples": [r[2] for r in rows]}
        for i, f in enumerate(fields):
            out[f] = [r[3 + i] for r in rows]
        return out

    def alerts(self, symbol: str, start: float, end: float, limit: int = 10_000) -> list[dict[str, Any]]:
        """Every alert with a change in [start, end), in its latest state within the
        range (its ``events`` tell its life), ordered by that change's time."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT body FROM alerts WHERE rowid IN (SELECT MAX(rowid) FROM alerts WHERE symbol = ? AND ts >= ? "
                "AND ts < ? GROUP BY id) ORDER BY ts LIMIT ?", (symbol, start, end, limit)).fetchall()
        return [msgspec.json.decode(r[0]) for r in rows]

