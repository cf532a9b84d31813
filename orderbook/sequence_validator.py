"""The Binance USDT-M futures sync rules as a pure state machine, one per symbol.

No I/O, no clock: the ingestion runtime feeds it decoded depth events and REST
snapshots and reads ``needs_snapshot`` to know when to fetch one. The rules, from
Binance's "How to manage a local order book correctly" (futures):

1. Buffer the stream's events while there is no snapshot.
2. A snapshot older than the first buffered event cannot be bridged: refuse it
   and ask for another.
3. Drop every event with ``u < lastUpdateId`` (futures: ``<``, spot uses ``<=``).
4. The first applied event must satisfy ``U <= lastUpdateId <= u``.
5. Every later event must satisfy ``pu == u`` of the previous event; otherwise the
   book is invalid: mark it out of sync, keep buffering, fetch a new snapshot.

A duplicate or stale event (``u`` at or below the last applied ``u``) is ignored:
applying it again could only undo newer updates.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from orderbook.book_state import BookState, MalformedLevel
from wire.binance import DepthSnapshot, DepthUpdate


class SyncState(enum.StrEnum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"  # never synced yet
    SYNCED = "synced"
    RESYNCING = "resyncing"  # was synced, lost continuity


class DisplayState(enum.StrEnum):
    """What a book is, as shown to users: the sync machine's state refined by the
    liveness of its connection."""

    AWAITING_SNAPSHOT = "awaiting_snapshot"
    SYNCED = "synced"
    RESYNCING = "resyncing"
    # In sync, its connection alive (answering pings or carrying other streams), but
    # this symbol has sent nothing for a while: depth streams push only on change.
    QUIET = "quiet"
    # In sync by the rules, but its connection has gone silent past the liveness
    # probe's deadline: events may be missing, so it is not served.
    STALE = "stale"

    @property
    def trusted(self) -> bool:
        """Can the book be served and its metrics computed?"""
        return self is DisplayState.SYNCED or self is DisplayState.QUIET


TRUSTED_STATES = frozenset({DisplayState.SYNCED.value, DisplayState.QUIET.value})


class EventOutcome(enum.Enum):
    APPLIED = "applied"
    BUFFERED = "buffered"  # waiting for a snapshot
    DROPPED_STALE = "dropped_stale"  # duplicate or older than the book
    GAP = "gap"  # pu chain broken: now resyncing
    MALFORMED = "malformed"  # ids missing or levels unparsable
    OTHER_SYMBOL = "other_symbol"


class SnapshotOutcome(enum.Enum):
    SYNCED = "synced"  # bridged and in sync
    PENDING = "pending"  # newer than every buffered event: waits for the bridging one
    REFUSED_TOO_OLD = "refused_too_old"  # older than the buffered stream
    REFUSED_MALFORMED = "refused_malformed"
    GAP_IN_BUFFER = "gap_in_buffer"  # bridged, but the buffered events break the pu chain
    IGNORED = "ignored"  # no snapshot was wanted


@dataclass(slots=True)
class SyncCounters:
    events_applied: int = 0
    events_buffered: int = 0
    dropped_before_sync: int = 0  # u < lastUpdateId while bridging
    dropped_stale: int = 0  # duplicates / reordered events behind the book
    malformed: int = 0
    other_symbol: int = 0
    gaps: int = 0
    resyncs: int = 0  # times the book went from synced to resyncing
    syncs: int = 0  # times the book reached synced
    snapshots_requested: int = 0
    snapshots_refused: int = 0
    buffer_overflows: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}  # type: ignore[attr-defined]


class SequenceValidator:
    """Applies depth events and snapshots to ``book`` by the futures rules."""

    def __init__(self, symbol: str, book: BookState, max_buffer: int = 20_000) -> None:
        self.symbol = symbol.lower()
        self._symbol_upper = self.symbol.upper()
        self.book = book
        self.state = SyncState.AWAITING_SNAPSHOT
        self.reason = "waiting for the first snapshot"
        self.counters = SyncCounters()
        self._buffer: deque[DepthUpdate] = deque(maxlen=max_buffer)
        self._pending_snapshot_id: int | None = None  # accepted snapshot waiting to bridge
        self._last_u: int | None = None  # u of the last applied event (or None before)

    # --- state ---------------------------------------------------------------------
    @property
    def in_sync(self) -> bool:
        return self.state is SyncState.SYNCED

    @property
    def needs_snapshot(self) -> bool:
        """True while a (new) snapshot would help: not synced and none pending."""
        return self.state is not SyncState.SYNCED and self._pending_snapshot_id is None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def note_snapshot_requested(self) -> None:
        """The runtime asked the exchange for a snapshot (counted here)."""
        self.counters.snapshots_requested += 1

    def invalidate(self, reason: str) -> None:
        """Force a resync (a failed integrity check, a reconnect that lost events)."""
        self._go_out_of_sync(reason)

    def _go_out_of_sync(self, reason: str) -> None:
        if self.state is SyncState.SYNCED:
            self.counters.resyncs += 1
            self.state = SyncState.RESYNCING
        self.reason = reason
        self._pending_snapshot_id = None
        self._buffer.clear()

    # --- events ----------------------------------------------------------------------
    def on_depth_event(self, event: DepthUpdate) -> EventOutcome:
        """Feed one decoded ``depthUpdate`` (typed at the edge: its ids are integers)."""
        U = event.first_update_id
        u = event.final_update_id
        pu = event.prev_final_update_id
        if U > u:
            self.counters.malformed += 1
            return EventOutcome.MALFORMED
        s = event.symbol
        if s and s != self._symbol_upper and s.lower() != self.symbol:
            self.counters.other_symbol += 1
            return EventOutcome.OTHER_SYMBOL

        if self.state is SyncState.SYNCED:
            last = self._last_u
            if pu == last:
                return self._apply(event, u)
            if last is not None and u <= last:
                self.counters.dropped_stale += 1
                return EventOutcome.DROPPED_STALE
            self.counters.gaps += 1
            self._go_out_of_sync(f"pu gap (expected {last}, got {pu})")
            self._buffer.append(event)
            self.counters.events_buffered += 1
            return EventOutcome.GAP

        if self._pending_snapshot_id is not None:
            # A snapshot newer than everything buffered is waiting for its bridge.
            return self._bridge_pending(event)
        if len(self._buffer) == self._buffer.maxlen:
            self.counters.buffer_overflows += 1
        self._buffer.append(event)
        self.counters.events_buffered += 1
        return EventOutcome.BUFFERED

    def _apply(self, event: DepthUpdate, u: int) -> EventOutcome:
        try:
            self.book.apply_diff(event.bids, event.asks, u)
        except MalformedLevel:
            self.counters.malformed += 1
            self._go_out_of_sync("malformed levels in a depth event")
            return EventOutcome.MALFORMED
        self._last_u = u
        self.counters.events_applied += 1
        return EventOutcome.APPLIED

    def _bridge_pending(self, event: DepthUpdate) -> EventOutcome:
        last_id = self._pending_snapshot_id
        assert last_id is not None
        U, u = event.first_update_id, event.final_update_id
        if u < last_id:
            self.counters.dropped_before_sync += 1
            return EventOutcome.DROPPED_STALE
        if U <= last_id:
            outcome = self._apply(event, u)
            if outcome is EventOutcome.APPLIED:
                self._pending_snapshot_id = None
                self._mark_synced()
            return outcome
        # The stream has moved past the snapshot without a bridging event.
        self.counters.snapshots_refused += 1
        self._pending_snapshot_id = None
        self.book.clear()
        self.reason = f"snapshot {last_id} not bridged (next event starts at U={U})"
        self._buffer.append(event)
        self.counters.events_buffered += 1
        return EventOutcome.BUFFERED

    def _mark_synced(self) -> None:
        self.state = SyncState.SYNCED
        self.counters.syncs += 1
        self.reason = f"in sync at update id {self._last_u}"

    # --- checkpoints (history) -----------------------------------------------------------
    def resume_from_checkpoint(
        self, last_update_id: int, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]
    ) -> None:
        """Start from a book this validator's own kind wrote while in sync at
        ``last_update_id`` (a history checkpoint): unlike a REST snapshot, the next
        event continues the chain (its ``pu`` is ``last_update_id``), so the book is
        in sync at once and the usual pu rule checks every event after it.

        Raises MalformedLevel (state left awaiting a snapshot) when a level does not parse."""
        self._buffer.clear()
        self._pending_snapshot_id = None
        try:
            self.book.apply_snapshot(last_update_id, bids, asks)
        except MalformedLevel:
            self.state = SyncState.AWAITING_SNAPSHOT
            self.reason = "checkpoint with malformed levels refused"
            self._last_u = None
            raise
        self._last_u = int(last_update_id)
        self.state = SyncState.SYNCED
        self.reason = f"in sync from a checkpoint at update id {last_update_id}"

    # --- snapshots -------------------------------------------------------------------
    def on_snapshot(self, snapshot: DepthSnapshot) -> SnapshotOutcome:
        """Feed a decoded REST ``/fapi/v1/depth`` body."""
        if self.state is SyncState.SYNCED:
            return SnapshotOutcome.IGNORED
        last_id = snapshot.last_update_id
        buffer = self._buffer
        while buffer and buffer[0].final_update_id < last_id:
            buffer.popleft()
            self.counters.dropped_before_sync += 1
        if buffer and buffer[0].first_update_id > last_id:
            self.counters.snapshots_refused += 1
            self.reason = (
                f"snapshot {last_id} older than the buffered stream "
                f"(first event U={buffer[0].first_update_id}); fetching another"
            )
            return SnapshotOutcome.REFUSED_TOO_OLD

        try:
            self.book.apply_snapshot(last_id, snapshot.bids, snapshot.asks)
        except MalformedLevel:
            self.counters.snapshots_refused += 1
            self.reason = "snapshot with malformed levels refused"
            return SnapshotOutcome.REFUSED_MALFORMED
        self._last_u = None

        if not buffer:
            self._pending_snapshot_id = last_id
            self.reason = f"snapshot {last_id} waiting for its bridging event"
            return SnapshotOutcome.PENDING

        # buffer[0] bridges: U <= lastUpdateId <= u. Then the pu chain must hold.
        events = list(buffer)
        buffer.clear()
        first = events[0]
        if self._apply(first, first.final_update_id) is not EventOutcome.APPLIED:
            return SnapshotOutcome.GAP_IN_BUFFER
        for i in range(1, len(events)):
            ev = events[i]
            if ev.final_update_id <= self._last_u:  # type: ignore[operator]
                self.counters.dropped_stale += 1
                continue
            if ev.prev_final_update_id != self._last_u:
                self.counters.gaps += 1
                self.reason = f"pu gap inside the buffer (expected {self._last_u}, got {ev.prev_final_update_id})"
                self.book.clear()
                buffer.extend(events[i:])
                return SnapshotOutcome.GAP_IN_BUFFER
            if self._apply(ev, ev.final_update_id) is not EventOutcome.APPLIED:
                return SnapshotOutcome.GAP_IN_BUFFER
        self._mark_synced()
        return SnapshotOutcome.SYNCED
