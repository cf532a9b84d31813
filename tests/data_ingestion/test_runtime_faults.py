"""The ingestion runtime against the simulated exchange on loopback, fault by fault.

For every fault: the client notices, recovers by itself, counts it, and once it
says "in sync" its book equals the exchange's true book at the same update id.
Every wait is for a counted event or a state, with a generous ceiling.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
        await handle.wait_synced()
        yield handle


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def clean_start(h: StackHandle):
    """Each test starts with no fault left on the exchange and both books in sync, so
    that one failing test cannot leave a fault behind for the next."""
    h.leave_clean()
    await h.wait_synced()
    yield
    h.leave_clean()


def check_books(h: StackHandle) -> None:
    """Whenever a feed says it is in sync, its book equals the exchange's."""
    for sym in (SYM, OTHER):
        feed = h.feed(sym)
        if feed.in_sync:
            assert book_mismatches(feed, h.sim) == [], f"{sym} said in sync with a wrong book"


async def watching(h: StackHandle, predicate: Callable[[], bool], what: str) -> None:
    """Wait for ``predicate``, checking the books at every poll meanwhile."""

    def check() -> bool:
        check_books(h)
        return predicate()

    await h.wait_for(check, what=what)


async def recovered(h: StackHandle, symbol: str = SYM) -> None:
    """In sync again, and the book equals the exchange's at the same update id; never
    said in sync with a wrong book on the way."""
    feed = h.feed(symbol)
    await watching(h, lambda: feed.in_sync, f"{symbol} in sync")
    # A few more events applied on top of the new snapshot, then compare.
    start = feed.validator.counters.events_applied
    await watching(h, lambda: feed.in_sync and feed.validator.counters.events_applied >= start + 5,
                   "events after resync")
    assert book_mismatches(feed, h.sim) == []


async def test_books_equal_the_exchange_while_in_sync(h: StackHandle) -> None:
    for sym in (SYM, OTHER):
        assert book_mismatches(h.feed(sym), h.sim) == []
    # Checked over 20 more events of each symbol (counted, not timed).
    applied = {s: h.feed(s).validator.counters.events_applied for s in (SYM, OTHER)}
    await watching(h, lambda: all(h.feed(s).validator.counters.events_applied >= applied[s] + 20
                                  for s in (SYM, OTHER)), "20 events of each symbol")


async def test_dropped_events_are_a_gap_then_a_resync(h: StackHandle) -> None:
    feed, other = h.feed(SYM), h.feed(OTHER)
    gaps, other_resyncs = feed.validator.counters.gaps, other.validator.counters.resyncs
    h.sim.set_fault(SYM, "drop", count=2)
    await h.wait_for(lambda: feed.validator.counters.gaps > gaps, what="a gap")
    await recovered(h)
    # The other symbol's book was never touched.
    assert other.validator.counters.resyncs == other_resyncs and other.in_sync
    assert book_mismatches(other, h.sim) == []


async def test_duplicate_events_are_ignored(h: StackHandle) -> None:
    feed = h.feed(SYM)
    stale, resyncs = feed.validator.counters.dropped_stale, feed.validator.counters.resyncs
    h.sim.set_fault(SYM, "duplicate", count=3)
    await h.wait_for(lambda: feed.validator.counters.dropped_stale >= stale + 3, what="duplicates dropped")
    assert feed.validator.counters.resyncs == resyncs  # a duplicate costs nothing
    await recovered(h)


async def test_reordered_events_resync_and_recover(h: StackHandle) -> None:
    feed = h.feed(SYM)
    gaps = feed.validator.counters.gaps
    h.sim.set_fault(SYM, "reorder", count=1)
    await h.wait_for(lambda: feed.validator.counters.gaps > gaps, what="the reorder seen as a gap")
    await recovered(h)


@pytest.mark.parametrize("frame", [True, False], ids=["close-frame", "no-close-frame"])
async def test_closed_socket_reconnects_and_resyncs(h: StackHandle, frame: bool) -> None:
    feed = h.feed(SYM)
    reconnects, syncs = feed.monitor.reconnects, feed.validator.counters.syncs
    h.sim.set_fault(SYM, "close", frame=frame)
    await h.wait_for(lambda: feed.monitor.reconnects > reconnects, what="a reconnect")
    await h.wait_for(lambda: feed.validator.counters.syncs > syncs, what="a new sync")
    await recovered(h)


async def test_silence_is_noticed_by_the_watchdog(h: StackHandle) -> None:
    feed = h.feed(SYM)
    public = next(c for c in h.stack.runtime.connections if c.name.startswith("public"))
    stale, syncs = public.stale_closes, feed.validator.counters.syncs
    h.sim.set_fault(SYM, "silence", seconds=4.0)
    await h.wait_for(lambda: public.stale_closes > stale, what="the watchdog firing on the depth connection")
    assert feed.monitor.stale_reconnects > 0
    await h.wait_for(lambda: feed.validator.counters.syncs > syncs, what="a new sync after the silence")
    await recovered(h)


@pytest.mark.parametrize("kind", ["json", "fields"])
async def test_malformed_message_is_counted_and_skipped(h: StackHandle, kind: str) -> None:
    feed = h.feed(SYM)
    conn = next(c for c in h.stack.runtime.connections if c.name.startswith("public"))
    before = conn.malformed + feed.validator.counters.malformed + feed.monitor.malformed
    h.sim.set_fault(SYM, "malformed", kind=kind, count=1)
    await h.wait_for(
        lambda: conn.malformed + feed.validator.counters.malformed + feed.monitor.malformed > before,
        what="the malformed message counted",
    )
    await recovered(h)


async def _force_resync(h: StackHandle) -> None:
    feed = h.feed(SYM)
    gaps = feed.validator.counters.gaps
    h.sim.set_fault(SYM, "drop", count=1)
    await h.wait_for(lambda: feed.validator.counters.gaps > gaps, what="a gap")


@pytest.mark.parametrize("fault", ["snapshot_429", "snapshot_418"])
async def test_rate_limited_snapshot_honours_retry_after(h: StackHandle, fault: str) -> None:
    assert h.stack.runtime.rest is not None
    budget = h.stack.runtime.rest.budget
    limited = budget.rate_limited
    h.sim.set_fault(SYM, fault, retry_after=1, count=1)
    t0 = time.monotonic()
    await _force_resync(h)
    await h.wait_for(lambda: budget.rate_limited > limited, what=f"the {fault} answer")
    await recovered(h)
    # The retry came no sooner than Retry-After.
    assert time.monotonic() - t0 >= 1.0


async def test_server_error_on_snapshot_is_retried(h: StackHandle) -> None:
    feed = h.feed(SYM)
    errors = feed.monitor.snapshot_errors
    h.sim.set_fault(SYM, "snapshot_5xx", status=502, count=2)
    await _force_resync(h)
    await h.wait_for(lambda: feed.monitor.snapshot_errors >= errors + 2, what="two failed snapshots")
    await recovered(h)


async def test_slow_snapshot_does_not_stop_the_socket(h: StackHandle) -> None:
    feed = h.feed(SYM)
    v, c = feed.validator, feed.validator.counters
    requested = c.snapshots_requested
    # Four seconds: about 40 events, of which 10 must be read while the download runs.
    h.sim.set_fault(SYM, "snapshot_delay", seconds=4.0, count=1)
    await _force_resync(h)
    buffered_at_gap = c.events_buffered

    def buffered_during_download() -> bool:
        if c.snapshots_requested == requested:
            return False  # not asked for yet
        # Asked for and not yet answered: the sync machine still needs its snapshot.
        assert v.needs_snapshot, f"the snapshot came after {c.events_buffered - buffered_at_gap} events buffered"
        return c.events_buffered - buffered_at_gap >= 10

    await h.wait_for(buffered_during_download, what="10 events buffered while the snapshot downloads")
    assert not feed.in_sync
    await recovered(h)


async def test_stale_snapshot_is_refused_and_fetched_again(h: StackHandle) -> None:
    feed = h.feed(SYM)
    refused = feed.validator.counters.snapshots_refused
    h.sim.set_fault(SYM, "snapshot_stale", age_s=30.0, count=1)
    await _force_resync(h)
    await h.wait_for(lambda: feed.validator.counters.snapshots_refused > refused, what="the stale snapshot refused")
    await recovered(h)


async def test_early_rotation_is_a_routine_reconnect(h: StackHandle) -> None:
    feed = h.feed(SYM)
    reconnects = feed.monitor.reconnects
    h.sim.set_fault(SYM, "rotate")
    await h.wait_for(lambda: feed.monitor.reconnects > reconnects, what="the rotation reconnect")
    await recovered(h)


async def test_no_task_died(h: StackHandle) -> None:
    assert h.stack.tasks.failures == []
    assert {"ws:public#0", "ws:market#0", f"snapshot-sync:{SYM}", "frame-publisher"} <= set(h.stack.tasks.running)
