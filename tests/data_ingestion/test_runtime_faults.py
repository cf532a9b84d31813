"""The ingestion runtime against the simulated exchange on loopback, fault by fault.

For every fault: the client notices, recovers by itself, counts it, and once it
says "in sync" its book equals the exchange's true book at the same update id.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import pytest_asyncio

from tests.stack import StackHandle, book_mismatches, running_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

SYM, OTHER = "btcusdt", "ethusdt"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def h():
    async with running_stack(
        symbols=(SYM, OTHER),
        push_interval_s=0.5,
        stale_after_s=1.5,
        pong_timeout_s=1.0,  # a 4 s silence outlasts the liveness ping's deadline
        backoff_initial_s=0.1,
        backoff_max_s=2.0,
    ) as handle:
        await handle.wait_synced(30)
        yield handle


async def recovered(h: StackHandle, symbol: str = SYM, timeout: float = 20.0) -> None:
    """In sync again, and the book equals the exchange's at the same update id."""
    await h.wait_synced(timeout, symbols=(symbol,))
    # A few more events applied on top of the new snapshot, then compare.
    feed = h.feed(symbol)
    start = feed.validator.counters.events_applied
    await h.wait_for(lambda: feed.validator.counters.events_applied >= start + 5, 10, "events after resync")
    assert feed.in_sync
    assert book_mismatches(feed, h.sim) == []


async def never_reported_synced_while_wrong(h: StackHandle, seconds: float, symbol: str = SYM) -> None:
    """Sample often: whenever the feed says synced, its book equals the truth."""
    feed = h.feed(symbol)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if feed.in_sync:
            assert book_mismatches(feed, h.sim) == []
        await asyncio.sleep(0.05)


async def test_books_equal_the_exchange_while_in_sync(h: StackHandle) -> None:
    for sym in (SYM, OTHER):
        assert book_mismatches(h.feed(sym), h.sim) == []
    await never_reported_synced_while_wrong(h, 2.0)


async def test_dropped_events_are_a_gap_then_a_resync(h: StackHandle) -> None:
    feed, other = h.feed(SYM), h.feed(OTHER)
    gaps, other_resyncs = feed.validator.counters.gaps, other.validator.counters.resyncs
    h.sim.set_fault(SYM, "drop", count=2)
    await h.wait_for(lambda: feed.validator.counters.gaps > gaps, 10, "a gap")
    await never_reported_synced_while_wrong(h, 1.0)
    await recovered(h)
    # The other symbol's book was never touched.
    assert other.validator.counters.resyncs == other_resyncs and other.in_sync
    assert book_mismatches(other, h.sim) == []


async def test_duplicate_events_are_ignored(h: StackHandle) -> None:
    feed = h.feed(SYM)
    stale, resyncs = feed.validator.counters.dropped_stale, feed.validator.counters.resyncs
    h.sim.set_fault(SYM, "duplicate", count=3)
    await h.wait_for(lambda: feed.validator.counters.dropped_stale >= stale + 3, 10, "duplicates dropped")
    assert feed.validator.counters.resyncs == resyncs  # a duplicate costs nothing
    await recovered(h)


async def test_reordered_events_resync_and_recover(h: StackHandle) -> None:
    feed = h.feed(SYM)
    gaps = feed.validator.counters.gaps
    h.sim.set_fault(SYM, "reorder", count=1)
    await h.wait_for(lambda: feed.validator.counters.gaps > gaps, 10, "the reorder seen as a gap")
    await never_reported_synced_while_wrong(h, 1.0)
    await recovered(h)


@pytest.mark.parametrize("frame", [True, False], ids=["close-frame", "no-close-frame"])
async def test_closed_socket_reconnects_and_resyncs(h: StackHandle, frame: bool) -> None:
    feed = h.feed(SYM)
    reconnects, syncs = feed.monitor.reconnects, feed.validator.counters.syncs
    h.sim.set_fault(SYM, "close", frame=frame)
    await h.wait_for(lambda: feed.monitor.reconnects > reconnects, 10, "a reconnect")
    await h.wait_for(lambda: feed.validator.counters.syncs > syncs, 20, "a new sync")
    await recovered(h)


async def test_silence_is_noticed_by_the_watchdog(h: StackHandle) -> None:
    feed = h.feed(SYM)
    public = next(c for c in h.stack.runtime.connections if c.name.startswith("public"))
    stale, syncs = public.stale_closes, feed.validator.counters.syncs
    h.sim.set_fault(SYM, "silence", seconds=4.0)
    await h.wait_for(lambda: public.stale_closes > stale, 10, "the watchdog firing on the depth connection")
    assert feed.monitor.stale_reconnects > 0
    await h.wait_for(lambda: feed.validator.counters.syncs > syncs, 30, "a new sync after the silence")
    await recovered(h, timeout=30)


@pytest.mark.parametrize("kind", ["json", "fields"])
async def test_malformed_message_is_counted_and_skipped(h: StackHandle, kind: str) -> None:
    feed = h.feed(SYM)
    conn = next(c for c in h.stack.runtime.connections if c.name.startswith("public"))
    before = conn.malformed + feed.validator.counters.malformed + feed.monitor.malformed
    h.sim.set_fault(SYM, "malformed", kind=kind, count=1)
    await h.wait_for(
        lambda: conn.malformed + feed.validator.counters.malformed + feed.monitor.malformed > before,
        10, "the malformed message counted",
    )
    await recovered(h)


async def _force_resync(h: StackHandle) -> None:
    feed = h.feed(SYM)
    gaps = feed.validator.counters.gaps
    h.sim.set_fault(SYM, "drop", count=1)
    await h.wait_for(lambda: feed.validator.counters.gaps > gaps, 10, "a gap")


@pytest.mark.parametrize("fault", ["snapshot_429", "snapshot_418"])
async def test_rate_limited_snapshot_honours_retry_after(h: StackHandle, fault: str) -> None:
    budget = h.stack.runtime.rest.budget
    limited = budget.rate_limited
    h.sim.set_fault(SYM, fault, retry_after=1, count=1)
    t0 = time.monotonic()
    await _force_resync(h)
    await h.wait_for(lambda: budget.rate_limited > limited, 10, f"the {fault} answer")
    await recovered(h)
    # The retry came no sooner than Retry-After.
    assert time.monotonic() - t0 >= 1.0


async def test_server_error_on_snapshot_is_retried(h: StackHandle) -> None:
    feed = h.feed(SYM)
    errors = feed.monitor.snapshot_errors
    h.sim.set_fault(SYM, "snapshot_5xx", status=502, count=2)
    await _force_resync(h)
    await h.wait_for(lambda: feed.monitor.snapshot_errors >= errors + 2, 15, "two failed snapshots")
    await recovered(h)


async def test_slow_snapshot_does_not_stop_the_socket(h: StackHandle) -> None:
    feed = h.feed(SYM)
    h.sim.set_fault(SYM, "snapshot_delay", seconds=2.0, count=1)
    await _force_resync(h)
    buffered_at_gap = feed.validator.counters.events_buffered
    await h.wait_synced(20, symbols=(SYM,))
    # About 10 events a second kept arriving and were buffered during the 2 s download.
    assert feed.validator.counters.events_buffered - buffered_at_gap >= 10
    await recovered(h)


async def test_stale_snapshot_is_refused_and_fetched_again(h: StackHandle) -> None:
    feed = h.feed(SYM)
    refused = feed.validator.counters.snapshots_refused
    h.sim.set_fault(SYM, "snapshot_stale", age_s=30.0, count=1)
    await _force_resync(h)
    await h.wait_for(lambda: feed.validator.counters.snapshots_refused > refused, 10, "the stale snapshot refused")
    await recovered(h)


async def test_early_rotation_is_a_routine_reconnect(h: StackHandle) -> None:
    feed = h.feed(SYM)
    reconnects = feed.monitor.reconnects
    h.sim.set_fault(SYM, "rotate")
    await h.wait_for(lambda: feed.monitor.reconnects > reconnects, 10, "the rotation reconnect")
    await recovered(h)


async def test_no_task_died(h: StackHandle) -> None:
    assert h.stack.tasks.failures == []
    assert {"ws:public#0", "ws:market#0", f"snapshot-sync:{SYM}", "frame-publisher"} <= set(h.stack.tasks.running)
