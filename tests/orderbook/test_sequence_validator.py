"""Scenario tests of the futures sync rules."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from orderbook.book_state import BookState
from orderbook.sequence_validator import EventOutcome, SequenceValidator, SnapshotOutcome, SyncState
from wire.binance import DepthSnapshot, DepthUpdate, event_decoder, snapshot_decoder


def ev(U: int, u: int, pu: int, b: list | None = None, a: list | None = None, s: str = "BTCUSDT") -> DepthUpdate:
    """A depth event as the wire gives it, decoded at the edge."""
    raw = {"e": "depthUpdate", "E": 0, "T": 0, "s": s, "U": U, "u": u, "pu": pu, "b": b or [], "a": a or []}
    event = event_decoder.decode(orjson.dumps(raw))
    assert isinstance(event, DepthUpdate)
    return event


def snap(last: int, b: list | None = None, a: list | None = None) -> DepthSnapshot:
    raw = {"lastUpdateId": last, "bids": b or [["100.0", "1"]], "asks": a or [["100.1", "1"]]}
    return snapshot_decoder.decode(orjson.dumps(raw))


def fresh() -> SequenceValidator:
    return SequenceValidator("btcusdt", BookState("btcusdt", 0.1))


def test_events_are_buffered_until_a_snapshot_arrives() -> None:
    v = fresh()
    assert v.state is SyncState.AWAITING_SNAPSHOT and v.needs_snapshot
    assert v.on_depth_event(ev(10, 20, 5)) is EventOutcome.BUFFERED
    assert v.buffered == 1 and v.book.depth() == (0, 0)


def test_snapshot_older_than_first_buffered_event_is_refused() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 5))
    assert v.on_snapshot(snap(8)) is SnapshotOutcome.REFUSED_TOO_OLD
    assert v.counters.snapshots_refused == 1
    assert v.needs_snapshot and not v.in_sync
    assert v.book.depth() == (0, 0)


def test_bridging_event_syncs_and_earlier_events_are_dropped() -> None:
    v = fresh()
    v.on_depth_event(ev(1, 9, 0, b=[["99.0", "5"]]))  # u < lastUpdateId: dropped
    v.on_depth_event(ev(10, 20, 9, b=[["100.0", "2"]]))  # U <= 15 <= u: bridges
    v.on_depth_event(ev(21, 30, 20, a=[["100.1", "3"]]))
    assert v.on_snapshot(snap(15)) is SnapshotOutcome.SYNCED
    assert v.in_sync and v.state is SyncState.SYNCED
    assert v.counters.dropped_before_sync == 1
    assert v.book.level("bid", "99.0") == 0.0  # the dropped event was not applied
    assert v.book.level("bid", "100.0") == 2.0
    assert v.book.level("ask", "100.1") == 3.0
    assert v.book.last_update_id == 30


def test_drop_rule_uses_strictly_less_than() -> None:
    # An event whose u equals lastUpdateId is kept and bridges (futures: u < L drops; spot uses <=).
    v = fresh()
    v.on_depth_event(ev(10, 15, 9, b=[["100.0", "7"]]))
    assert v.on_snapshot(snap(15)) is SnapshotOutcome.SYNCED
    assert v.book.level("bid", "100.0") == 7.0
    assert v.counters.dropped_before_sync == 0


def test_snapshot_newer_than_buffer_waits_for_its_bridge() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    assert v.on_snapshot(snap(25)) is SnapshotOutcome.PENDING
    assert not v.in_sync and not v.needs_snapshot
    assert v.on_depth_event(ev(21, 24, 20)) is EventOutcome.DROPPED_STALE
    assert v.on_depth_event(ev(25, 31, 24, b=[["100.0", "4"]])) is EventOutcome.APPLIED
    assert v.in_sync and v.book.level("bid", "100.0") == 4.0


def test_pending_snapshot_not_bridged_is_refused() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(25))
    assert v.on_depth_event(ev(30, 40, 29)) is EventOutcome.BUFFERED
    assert v.needs_snapshot and v.counters.snapshots_refused == 1
    assert v.book.depth() == (0, 0)


def test_gap_in_pu_chain_triggers_resync_then_sync_again() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    assert v.on_depth_event(ev(21, 30, 20)) is EventOutcome.APPLIED
    # Event 31..40 is lost: the next one names 40 as its predecessor.
    assert v.on_depth_event(ev(41, 50, 40, b=[["100.0", "9"]])) is EventOutcome.GAP
    assert v.state is SyncState.RESYNCING and not v.in_sync and v.needs_snapshot
    assert v.counters.gaps == 1 and v.counters.resyncs == 1
    assert "expected 30, got 40" in v.reason
    assert v.on_depth_event(ev(51, 60, 50, b=[["100.0", "8"]])) is EventOutcome.BUFFERED
    assert v.on_snapshot(snap(45, b=[["100.0", "1"], ["99.9", "1"]])) is SnapshotOutcome.SYNCED
    assert v.in_sync and v.counters.syncs == 2
    assert v.book.level("bid", "100.0") == 8.0
    assert v.book.last_update_id == 60


def test_gap_inside_the_buffer_asks_for_another_snapshot() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_depth_event(ev(31, 40, 30))  # 21..30 missing
    assert v.on_snapshot(snap(15)) is SnapshotOutcome.GAP_IN_BUFFER
    assert not v.in_sync and v.needs_snapshot
    assert v.book.depth() == (0, 0)
    assert v.on_snapshot(snap(35)) is SnapshotOutcome.SYNCED


def test_duplicate_event_is_ignored_without_corrupting_the_book() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    first = ev(21, 30, 20, b=[["100.0", "3"]])
    v.on_depth_event(first)
    v.on_depth_event(ev(31, 40, 30, b=[["100.0", "5"]]))
    assert v.on_depth_event(first) is EventOutcome.DROPPED_STALE
    assert v.in_sync and v.book.level("bid", "100.0") == 5.0
    assert v.counters.dropped_stale == 1 and v.counters.gaps == 0


def test_reordered_events_cause_a_resync_not_a_wrong_book() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    late = ev(21, 30, 20, b=[["100.0", "3"]])
    early = ev(31, 40, 30, b=[["100.0", "5"]])
    assert v.on_depth_event(early) is EventOutcome.GAP
    assert not v.in_sync
    v.on_depth_event(late)
    assert v.on_snapshot(snap(35)) is SnapshotOutcome.SYNCED
    assert v.book.level("bid", "100.0") == 5.0


def test_event_for_another_symbol_is_ignored() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    assert v.on_depth_event(ev(21, 30, 20, s="ETHUSDT", b=[["100.0", "3"]])) is EventOutcome.OTHER_SYMBOL
    assert v.in_sync and v.book.level("bid", "100.0") == 1.0
    assert v.counters.other_symbol == 1


def test_empty_diffs_advance_the_chain() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    assert v.on_depth_event(ev(21, 30, 20)) is EventOutcome.APPLIED
    assert v.on_depth_event(ev(31, 40, 30)) is EventOutcome.APPLIED
    assert v.book.last_update_id == 40 and v.book.depth() == (1, 1)


def test_malformed_ids_are_counted_and_skipped() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    # Ids that are not integers never get past the edge: decoding refuses them.
    with pytest.raises(msgspec.ValidationError):
        event_decoder.decode(b'{"e": "depthUpdate", "u": "x"}')
    with pytest.raises(msgspec.ValidationError):
        event_decoder.decode(b'{"e":"depthUpdate","U":true,"u":2,"pu":1,"b":[],"a":[]}')
    # Ids of the right type that make no sense are the sync machine's to refuse.
    assert v.on_depth_event(ev(50, 40, 20)) is EventOutcome.MALFORMED
    assert v.in_sync and v.counters.malformed == 1
    assert v.on_depth_event(ev(21, 30, 20)) is EventOutcome.APPLIED


def test_malformed_levels_force_a_resync() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    assert v.on_depth_event(ev(21, 30, 20, b=[["100.0", "oops"]])) is EventOutcome.MALFORMED
    assert not v.in_sync and v.needs_snapshot and v.counters.resyncs == 1


def test_malformed_snapshot_is_refused() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    with pytest.raises(msgspec.ValidationError):
        snapshot_decoder.decode(b'{"bids": []}')
    assert v.on_snapshot(snap(15, b=[["x", "1"]])) is SnapshotOutcome.REFUSED_MALFORMED
    assert v.needs_snapshot and not v.in_sync
    assert v.on_snapshot(snap(15)) is SnapshotOutcome.SYNCED


def test_snapshot_while_synced_is_ignored() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    assert v.on_snapshot(snap(99, b=[["1.0", "1"]])) is SnapshotOutcome.IGNORED
    assert v.book.level("bid", "100.0") == 1.0


def test_invalidate_forces_a_resync() -> None:
    v = fresh()
    v.on_depth_event(ev(10, 20, 9))
    v.on_snapshot(snap(15))
    v.invalidate("bookTicker mismatch")
    assert v.state is SyncState.RESYNCING and v.reason == "bookTicker mismatch" and v.needs_snapshot
